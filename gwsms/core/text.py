# -*- test-case-name: tests.test_core_text -*-
"""
Exact SMS text handling (3GPP TS 23.038, TS 23.040, SMPP 3.4 5.2.19): pure,
no I/O, no reactor.

Mobile terminated (towards an SMSC):
  - L{choose_coding} picks C{data_coding} and an L{Encoder} for a text;
  - L{split} cuts it into L{Segment}s (C{short_message} incl. UDH,
    C{esm_class}, TLVs, C{data_coding}) by one concatenation method:
    C{"udh8"}, C{"udh16"}, C{"sar"} or C{"payload"}.

Mobile originated (from an SMSC):
  - L{decode_sm} turns one C{short_message} into a L{Decoded};
  - L{mo_part} reads the concatenation data of one deliver_sm (UDH IE 0x00 /
    0x08, SAR TLVs, C{message_payload}) into a L{MoPart};
  - L{Reassembler} collects parts and hands back whole L{Message}s,
    decoded only after the payloads are concatenated.

The receiving side lives in L{gwsms.core.inbound} and the reassembly state
in L{gwsms.core.reassembly} (to keep modules small); both are re-exported
here, so C{text.decode_sm}, C{text.parse_udh}, C{text.Reassembler} work.

Sizes, in the units the air interface counts (septets for GSM, octets for
everything else), per part: GSM 160 single / 153 with an 8-bit-reference UDH
(6 octets) / 152 with a 16-bit one (7 octets); UCS-2 70 / 67 / 66
characters (a character outside the BMP counts two); Latin-1 (data_coding
3) 140 / 134 / 133.  SAR parts carry no UDH, but the SMSC usually turns the
TLVs into a UDH on the air interface, so they are sized as the UDH the SMSC
would have to add: 8-bit sizes when C{ref} < 256, else 16-bit sizes.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import NamedTuple

from gwsms.core import gsm
from gwsms.core.inbound import (  # re-exported: see __all__
    DC0_CHARSETS,
    DC_BINARY,
    DC_BINARY_4,
    DC_DEFAULT,
    DC_IA5,
    DC_LATIN1,
    DC_UCS2,
    ESM_UDHI,
    Decoded,
    MalformedUdh,
    MoPart,
    Udh,
    coding_of,
    decode_payload,
    decode_sm,
    mo_part,
    parse_udh,
)
from gwsms.core.inbound import _check_choice
from gwsms.core.reassembly import Message, Reassembler

__all__ = [
    "DC0_CHARSETS", "DC_BINARY", "DC_BINARY_4", "DC_DEFAULT", "DC_IA5", "DC_LATIN1",
    "DC_UCS2", "ESM_UDHI", "GSM", "GSM_ASCII", "GSM_LATIN1", "LATIN1", "MAX_PARTS",
    "METHODS", "PREFERENCES", "UCS2", "Decoded", "Encoder", "MalformedUdh", "Message",
    "MoPart", "Reassembler", "Segment", "TextError", "TooLong", "Udh", "body_to_text",
    "choose_coding", "coding_of", "decode_payload", "decode_sm", "mo_part", "parse_udh",
    "split", "udh_concat8", "udh_concat16",
]

#: Concatenation methods for L{split}.
METHODS = ("udh8", "udh16", "sar", "payload")
#: Coding preferences for L{choose_coding}.
PREFERENCES = ("gsm", "latin1", "ucs2")
#: Octets of user data in one SMS.
USER_DATA_OCTETS = 140
UDH8_OCTETS = 6  # 05 00 03 ref total seq
UDH16_OCTETS = 7  # 06 08 04 ref_hi ref_lo total seq
MAX_PARTS = 255


class TextError(ValueError):
    """Text that cannot be encoded, decoded or split as asked."""


class TooLong(TextError):
    """
    A text needs more parts than allowed (the gateway answers 413).

    @ivar parts_needed: parts the text would take.
    @ivar max_parts: the limit.
    """

    def __init__(self, parts_needed: int, max_parts: int) -> None:
        self.parts_needed = parts_needed
        self.max_parts = max_parts
        TextError.__init__(
            self, f"message needs {parts_needed} parts, at most {max_parts} allowed"
        )


@dataclass(frozen=True)
class Encoder:
    """
    How a text becomes C{short_message} octets, and how it is counted.

    @ivar name: C{"gsm"}, C{"gsm-ascii"} / C{"gsm-latin1"} (GSM text sent as
        ASCII / Latin-1 octets to an SMSC whose data_coding 0 means that),
        C{"latin1"} or C{"ucs2"}.
    @ivar septets: whether the air interface counts septets (GSM) rather
        than octets.
    """

    name: str
    charset: str  # Python codec, or "gsm"
    septets: bool

    def __call__(self, text: str) -> bytes:
        return self.encode(text)

    def encode(self, text: str) -> bytes:
        """
        @return: the octets for C{short_message}.
        @raise TextError: (or L{gsm.NotGsm}) if a character does not fit.
        """
        if self.charset == "gsm":
            return gsm.encode(text)
        try:
            return text.encode(self.charset)
        except UnicodeEncodeError as e:
            char = text[e.start]
            raise TextError(
                f"character {char!r} (U+{ord(char):04X}) at index {e.start} "
                f"does not fit {self.name}"
            ) from None

    def units(self, text: str) -> int:
        """
        @return: septets (GSM) or octets the text takes on the air interface.
        """
        if self.septets:
            return gsm.septet_length(text)
        if self.charset == "utf-16-be":
            return len(text.encode("utf-16-be", "surrogatepass"))
        return len(text)

    def capacity(self, udh_octets: int = 0) -> int:
        """
        @param udh_octets: size of the UDH including its length octet (0: none).
        @return: units that fit in one SMS next to that header.
        """
        octets = USER_DATA_OCTETS - udh_octets
        if self.septets:
            return octets * 8 // 7
        if self.charset == "utf-16-be":
            return octets - octets % 2
        return octets


GSM = Encoder("gsm", "gsm", True)
GSM_ASCII = Encoder("gsm-ascii", "ascii", True)
GSM_LATIN1 = Encoder("gsm-latin1", "latin-1", True)
LATIN1 = Encoder("latin1", "latin-1", False)
UCS2 = Encoder("ucs2", "utf-16-be", False)


def choose_coding(
    text: str, prefer: str = "gsm", dc0_charset: str = "gsm"
) -> tuple[int, Encoder]:
    """
    Choose the data_coding and encoder for a text.

      - C{prefer="ucs2"}: always UCS-2 (8).
      - C{prefer="latin1"}: Latin-1 (3) when every character fits Latin-1,
        else as C{"gsm"}.
      - C{prefer="gsm"}: data_coding 0 when every character is in the GSM
        alphabet (and, when C{dc0_charset} is C{"ascii"} / C{"latin1"}, also
        in that character set, since the SMSC converts it to GSM), else
        UCS-2 (8).

    @param text: the text.
    @param prefer: C{"gsm"}, C{"latin1"} or C{"ucs2"}.
    @param dc0_charset: what data_coding 0 means on the SMSC: C{"gsm"},
        C{"ascii"} or C{"latin1"}.
    @return: C{(data_coding, encoder)}; C{encoder(text) -> bytes}.
    @raise ValueError: for an unknown C{prefer} / C{dc0_charset}.
    """
    _check_choice("prefer", prefer, PREFERENCES)
    _check_choice("dc0_charset", dc0_charset, DC0_CHARSETS)
    if prefer == "ucs2":
        return DC_UCS2, UCS2
    if prefer == "latin1" and _fits_latin1(text):
        return DC_LATIN1, LATIN1
    if gsm.fits(text):
        if dc0_charset == "gsm":
            return DC_DEFAULT, GSM
        if dc0_charset == "latin1" and _fits_latin1(text):
            return DC_DEFAULT, GSM_LATIN1
        if dc0_charset == "ascii" and text.isascii():
            return DC_DEFAULT, GSM_ASCII
    return DC_UCS2, UCS2


def _fits_latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


class Segment(NamedTuple):
    """
    One submit_sm worth of a message.

    A named tuple, as L{gwsms.core.numbers.Address}: the SIP -> SMPP lane
    makes one per message, and a frozen dataclass costs about 9,000 more
    instructions to make (its C{__init__} sets each field through
    C{object.__setattr__}).

    @ivar short_message: octets including the UDH, if any (empty for the
        C{"payload"} method, whose text is in C{tlvs["message_payload"]}).
    @ivar esm_class: C{0x40} (UDHI) when C{short_message} starts with a UDH,
        else 0; OR it into the PDU's esm_class.
    @ivar tlvs: TLVs by SMPP name (C{sar_*}, C{message_payload}).
    @ivar data_coding: for the PDU.
    @ivar text: the piece of text this segment carries.
    """

    short_message: bytes
    esm_class: int
    tlvs: dict
    data_coding: int = 0
    text: str = ""


def udh_concat8(ref: int, total: int, seq: int) -> bytes:
    """@return: a UDH with IE 0x00 (8-bit reference): 05 00 03 ref total seq."""
    return bytes((5, 0x00, 3, ref, total, seq))


def udh_concat16(ref: int, total: int, seq: int) -> bytes:
    """@return: a UDH with IE 0x08 (16-bit reference): 06 08 04 ref total seq."""
    return bytes((6, 0x08, 4, ref >> 8, ref & 0xFF, total, seq))


def _chunks(text: str, encoder: Encoder, capacity: int) -> list[tuple[str, bytes]]:
    """
    Cut C{text} greedily into pieces of at most C{capacity} units without
    splitting an escape pair (GSM) or a surrogate pair (UCS-2).

    @return: C{(piece, octets)} pairs; octets as C{encoder} encodes the piece.
    """
    if encoder.septets:
        septets = gsm.encode(text)
        pieces = []
        start = 0
        while start < len(septets):
            end = min(start + capacity, len(septets))
            if end < len(septets) and septets[end - 1] == gsm.ESCAPE:
                end -= 1  # 0x1B only ever introduces an escape pair here
            piece = gsm.decode(septets[start:end])
            data = septets[start:end] if encoder is GSM else encoder.encode(piece)
            pieces.append((piece, data))
            start = end
        return pieces
    if encoder.charset == "utf-16-be":
        data = text.encode("utf-16-be", "surrogatepass")
        pieces = []
        start = 0
        while start < len(data):
            end = min(start + capacity, len(data))
            if end < len(data) and 0xD8 <= data[end - 2] <= 0xDB:
                end -= 2  # never leave a high surrogate at the end of a part
            chunk = data[start:end]
            pieces.append((chunk.decode("utf-16-be", "surrogatepass"), chunk))
            start = end
        return pieces
    return [(text[i : i + capacity], encoder.encode(text[i : i + capacity]))
            for i in range(0, len(text), capacity)]


def _body(data: bytes, encoder: Encoder, gsm_packed: bool, udh: bytes) -> bytes:
    if gsm_packed and encoder is GSM:
        fill = gsm.fill_bits_after(len(udh)) if udh else 0
        packed = gsm.pack(data, fill)
        if len(udh) + len(packed) > USER_DATA_OCTETS:
            packed = gsm.pack(data, fill, cr_padding=False)
        data = packed
    return udh + data


def split(
    text: str,
    *,
    method: str = "udh8",
    max_parts: int = MAX_PARTS,
    ref: int = 0,
    dc0_charset: str = "gsm",
    prefer: str = "gsm",
    gsm_packed: bool = False,
) -> list[Segment]:
    """
    Split a text into the submit_sm segments of one message.

    A text that fits one SMS gives one segment with no UDH and no TLVs,
    whatever the method.  Otherwise:
      - C{"udh8"} / C{"udh16"}: each part's C{short_message} starts with a
        concatenation UDH (IE 0x00 / 0x08), C{esm_class} 0x40;
      - C{"sar"}: no UDH; TLVs C{sar_msg_ref_num}, C{sar_total_segments},
        C{sar_segment_seqnum}; parts sized as described in the module doc;
      - C{"payload"}: one segment, empty C{short_message}, the whole text in
        the C{message_payload} TLV (C{max_parts} still applies, counting
        8-bit-reference UDH parts, since the SMSC splits it so).
    No part ends inside a GSM escape pair or a UTF-16 surrogate pair.

    @param text: the message text.
    @param method: C{"udh8"}, C{"udh16"}, C{"sar"} or C{"payload"}.
    @param max_parts: at most this many parts (1-255).
    @param ref: concatenation reference chosen by the caller: 0-255 for
        C{"udh8"}, 0-65535 for C{"udh16"} / C{"sar"}.
    @param dc0_charset: see L{choose_coding}.
    @param prefer: see L{choose_coding}.
    @param gsm_packed: send GSM text packed 7-bit (with fill bits after the
        UDH) instead of one septet per octet.
    @return: the segments, in order.
    @raise TooLong: if more than C{max_parts} parts are needed.
    @raise ValueError: for a bad method, limit or reference.
    """
    _check_choice("method", method, METHODS)
    if not 1 <= max_parts <= MAX_PARTS:
        raise ValueError(f"max_parts must be 1-{MAX_PARTS}, not {max_parts}")
    ref_limit = 0xFF if method == "udh8" else 0xFFFF
    if not 0 <= ref <= ref_limit:
        raise ValueError(f"ref must be 0-{ref_limit} for {method}, not {ref}")
    data_coding, encoder = choose_coding(text, prefer, dc0_charset)
    encoded = encoder.encode(text)
    # GSM text sent as ASCII / Latin-1 still counts septets on the air
    units = len(encoded) if encoder in (GSM, UCS2, LATIN1) else encoder.units(text)
    if units <= encoder.capacity(0):
        return [Segment(_body(encoded, encoder, gsm_packed, b""), 0, {}, data_coding, text)]
    if method == "udh16" or (method == "sar" and ref > 0xFF):
        udh_octets = UDH16_OCTETS
    else:
        udh_octets = UDH8_OCTETS
    pieces = _chunks(text, encoder, encoder.capacity(udh_octets))
    total = len(pieces)
    if total > max_parts:
        raise TooLong(total, max_parts)
    if method == "payload":
        payload = gsm.pack(encoded) if gsm_packed and encoder is GSM else encoded
        return [Segment(b"", 0, {"message_payload": payload}, data_coding, text)]
    segments = []
    for seq, (piece, data) in enumerate(pieces, 1):
        if method == "sar":
            tlvs = {
                "sar_msg_ref_num": ref,
                "sar_total_segments": total,
                "sar_segment_seqnum": seq,
            }
            body = _body(data, encoder, gsm_packed, b"")
            segments.append(Segment(body, 0, tlvs, data_coding, piece))
        else:
            make = udh_concat8 if method == "udh8" else udh_concat16
            body = _body(data, encoder, gsm_packed, make(ref, total, seq))
            segments.append(Segment(body, ESM_UDHI, {}, data_coding, piece))
    return segments


def body_to_text(body: bytes, charset: str | None = None) -> str:
    """
    Decode a SIP message body by its Content-Type charset.

    @param body: the body octets.
    @param charset: the charset parameter, or C{None} / empty for UTF-8.
    @return: the text.
    @raise TextError: naming an unknown charset or the first octet that is
        not valid in it.
    """
    name = (charset or "utf-8").strip().strip('"')
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise TextError(f"unknown charset {name!r}") from None
    if not getattr(info, "_is_text_encoding", True):
        raise TextError(f"unknown charset {name!r}")
    try:
        return body.decode(info.name)
    except UnicodeDecodeError as e:
        raise TextError(f"body is not valid {name}: octet {e.start} ({e.reason})") from None
