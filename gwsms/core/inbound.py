# -*- test-case-name: tests.test_core_text -*-
"""
Received SMS user data (3GPP TS 23.038, TS 23.040, SMPP 3.4 5.2.19): data
coding classes, user data headers, decoding, and the concatenation facts of
one received PDU.  Pure: no I/O, no reactor.

L{gwsms.core.text} re-exports everything here; use it from there.
"""

from __future__ import annotations

from dataclasses import dataclass

from gwsms.core import gsm

#: C{data_coding} values (SMPP 3.4 5.2.19).
DC_DEFAULT = 0x00
DC_IA5 = 0x01
DC_BINARY = 0x02
DC_LATIN1 = 0x03
DC_BINARY_4 = 0x04
DC_UCS2 = 0x08

#: C{esm_class} bit: short_message starts with a user data header.
ESM_UDHI = 0x40

#: What data_coding 0 means on an SMSC (C{SmscLink.dc0_charset}).
DC0_CHARSETS = ("gsm", "ascii", "latin1")

# SMPP 3.4 data_coding values that name a character set Python can decode
# (JIS/KS C codes are sent as raw two-octet codes: shift them into EUC).
_OTHER_CHARSETS = {
    0x05: "jis-x-0208",
    0x06: "iso-8859-5",
    0x07: "iso-8859-8",
    0x0A: "iso-2022-jp",
    0x0D: "jis-x-0212",
    0x0E: "ks-c-5601",
}


class MalformedUdh(ValueError):
    """A user data header whose lengths do not add up."""


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")


@dataclass(frozen=True)
class Udh:
    """
    A parsed user data header (TS 23.040 9.2.3.24).

    @ivar concat_ref: concatenation reference, or C{None} when the header
        has no valid concatenation IE.
    @ivar concat_total: number of parts, or C{None}.
    @ivar concat_seq: this part's number (1-based), or C{None}.
    @ivar ref_bits: 8 (IE 0x00) or 16 (IE 0x08), or C{None}.
    @ivar ies: every IE as C{(iei, value)}, in order.
    @ivar length: octets of the header including its length octet.
    """

    concat_ref: int | None
    concat_total: int | None
    concat_seq: int | None
    ies: tuple = ()
    length: int = 1
    ref_bits: int | None = None


def parse_udh(data: bytes) -> Udh:
    """
    Parse the user data header at the start of C{data}.

    Unknown IEs (port addressing 0x05, national language shift 0x24/0x25,
    ...) are skipped by their length and kept in C{ies}.  A concatenation IE
    with a total or sequence number of 0, or a sequence number above the
    total, is ignored as TS 23.040 says; when several are present the last
    valid one counts.

    @param data: C{short_message} (or C{message_payload}) octets.
    @return: the header; its C{length} tells where the user data starts.
    @raise MalformedUdh: when the header is empty or a length overruns.
    """
    if not data:
        raise MalformedUdh("user data header missing")
    end = data[0] + 1
    if end > len(data):
        raise MalformedUdh(f"UDH length {data[0]} exceeds the {len(data) - 1} octets present")
    ies = []
    ref = total = seq = bits = None
    index = 1
    while index < end:
        if index + 2 > end:
            raise MalformedUdh(f"UDH information element at octet {index} is truncated")
        iei, length = data[index], data[index + 1]
        value = bytes(data[index + 2 : index + 2 + length])
        if index + 2 + length > end:
            raise MalformedUdh(
                f"UDH information element 0x{iei:02X} length {length} overruns the header"
            )
        ies.append((iei, value))
        index += 2 + length
        if iei == 0x00 and length == 3:
            candidate = (value[0], value[1], value[2], 8)
        elif iei == 0x08 and length == 4:
            candidate = ((value[0] << 8) | value[1], value[2], value[3], 16)
        else:
            continue
        if 1 <= candidate[2] <= candidate[1]:
            ref, total, seq, bits = candidate
    return Udh(ref, total, seq, tuple(ies), end, bits)


@dataclass(frozen=True)
class Decoded:
    """
    One decoded message (or part).

    @ivar text: the text, or C{None} when the data coding is binary.
    @ivar data: the user data octets, after the UDH (as on the wire).
    @ivar udh: the parsed UDH, or C{None}.
    @ivar binary: the data coding says 8-bit data: pass C{data} on as
        application/octet-stream (or hex), never as text.
    @ivar charset: C{"gsm"}, C{"ascii"}, C{"latin1"}, C{"ucs2"},
        C{"binary"} or another SMPP character set (C{"iso-8859-5"}, ...).
    @ivar malformed_udh: UDHI was set but the header did not parse; the
        whole C{short_message} was decoded as one message.
    @ivar message_class: GSM message class 0-3 from the data coding, or C{None}.
    """

    text: str | None
    data: bytes
    udh: Udh | None = None
    binary: bool = False
    charset: str = "gsm"
    malformed_udh: bool = False
    message_class: int | None = None


def coding_of(data_coding: int, dc0_charset: str = "gsm") -> tuple[str, int | None]:
    """
    What a data_coding value means (SMPP 3.4 5.2.19, TS 23.038 4).

    @param data_coding: 0-255.
    @param dc0_charset: what 0 means on the SMSC (C{"gsm"}, C{"ascii"},
        C{"latin1"}).
    @return: C{(charset, message_class)}; charset is one of those of
        L{Decoded.charset}; message_class 0-3 or C{None}.
    """
    _check_choice("dc0_charset", dc0_charset, DC0_CHARSETS)
    if data_coding == DC_DEFAULT:
        return dc0_charset, None
    if data_coding == DC_IA5:
        return "ascii", None
    if data_coding == DC_LATIN1:
        return "latin1", None
    if data_coding == DC_UCS2:
        return "ucs2", None
    if data_coding in _OTHER_CHARSETS:
        return _OTHER_CHARSETS[data_coding], None
    if data_coding < 0x10:
        return "binary", None  # 2, 4 octet unspecified; 9 pictogram; reserved
    if data_coding < 0x80:
        # General data coding / automatic deletion groups (00xx / 01xx):
        # bit 5 compressed, bit 4 class meaningful, bits 3-2 alphabet.
        message_class = data_coding & 0x03 if data_coding & 0x10 else None
        if data_coding & 0x20:
            return "binary", message_class  # compressed: not decodable here
        alphabet = (data_coding >> 2) & 0x03
        return ("gsm", "binary", "ucs2", "binary")[alphabet], message_class
    if 0xC0 <= data_coding <= 0xDF:
        return "gsm", None  # message waiting indication, GSM 7-bit
    if 0xE0 <= data_coding <= 0xEF:
        return "ucs2", None  # message waiting indication, UCS-2
    if data_coding >= 0xF0:
        return ("binary" if data_coding & 0x04 else "gsm"), data_coding & 0x03
    return "binary", None  # 0x80-0xBF reserved


def _decode_text(data: bytes, charset: str, gsm_packed: bool, fill_bits: int) -> str:
    if charset == "gsm":
        if gsm_packed:
            return gsm.decode(gsm.unpack(data, None, fill_bits))
        return gsm.decode(data)
    if charset == "ascii":
        return data.decode("ascii", "replace")
    if charset == "latin1":
        return data.decode("latin-1")
    if charset == "ucs2":
        return data.decode("utf-16-be", "replace")
    if charset in ("jis-x-0208", "ks-c-5601"):  # raw codes: shift into EUC
        euc = bytes(b | 0x80 for b in data)
        return euc.decode("euc_jp" if charset == "jis-x-0208" else "euc_kr", "replace")
    if charset == "jis-x-0212":
        pairs = zip(data[::2], data[1::2])
        euc = b"".join(bytes((0x8F, a | 0x80, b | 0x80)) for a, b in pairs)
        return euc.decode("euc_jp", "replace") + ("\ufffd" if len(data) % 2 else "")
    return data.decode(charset, "replace")


def decode_payload(
    data: bytes, data_coding: int, dc0_charset: str = "gsm", *, gsm_packed: bool = False
) -> Decoded:
    """
    Decode user data that carries no UDH (a whole or reassembled message).

    Never raises for any octets: bad sequences become U+FFFD.

    @param data: the octets (GSM: septets, one per octet, unless C{gsm_packed}).
    @param data_coding: the PDU's data_coding.
    @param dc0_charset: what data_coding 0 means on the SMSC.
    @param gsm_packed: GSM data is packed 7-bit.
    @return: a L{Decoded} (C{text=None, binary=True} for binary codings).
    """
    charset, message_class = coding_of(data_coding, dc0_charset)
    if charset == "binary":
        return Decoded(None, bytes(data), None, True, charset, False, message_class)
    text = _decode_text(data, charset, gsm_packed, 0)
    return Decoded(text, bytes(data), None, False, charset, False, message_class)


def _split_udh(data: bytes, esm_class: int):
    """
    Split the user data header off C{data} when C{esm_class} says there is one.

    @return: C{(udh or None, the rest, malformed)}; a malformed UDH leaves
        C{data} whole.
    """
    if not esm_class & ESM_UDHI:
        return None, data, False
    try:
        udh = parse_udh(data)
    except MalformedUdh:
        return None, data, True
    return udh, data[udh.length :], False

def decode_sm(
    short_message: bytes,
    data_coding: int,
    esm_class: int = 0,
    dc0_charset: str = "gsm",
    *,
    gsm_packed: bool = False,
) -> Decoded:
    """
    Decode one C{short_message} (or C{message_payload}) of a deliver_sm /
    data_sm / submit_sm.  Never raises for any octets.

    With UDHI (0x40) in C{esm_class} the UDH is parsed (L{parse_udh}) and
    the text decoded from the octets after it (packed GSM after the fill
    bits).  A malformed UDH leaves C{udh=None}, sets C{malformed_udh} and
    decodes the whole C{short_message} as one message.

    @param short_message: the octets.
    @param data_coding: the PDU's data_coding.
    @param esm_class: the PDU's esm_class.
    @param dc0_charset: what data_coding 0 means on the SMSC.
    @param gsm_packed: GSM data is packed 7-bit.
    @return: a L{Decoded}.
    """
    udh, data, malformed = _split_udh(bytes(short_message), esm_class)
    charset, message_class = coding_of(data_coding, dc0_charset)
    if charset == "binary":
        return Decoded(None, data, udh, True, charset, malformed, message_class)
    fill = gsm.fill_bits_after(udh.length) if udh is not None else 0
    text = _decode_text(data, charset, gsm_packed, fill)
    return Decoded(text, data, udh, False, charset, malformed, message_class)


@dataclass(frozen=True)
class MoPart:
    """
    The concatenation facts of one received PDU.

    @ivar ref: concatenation reference (C{None} for a single message).
    @ivar total: number of parts (1 for a single message).
    @ivar seq: this part's number, 1-based.
    @ivar payload: the user data, UDH removed and packed GSM unpacked to
        septets, ready to be concatenated and passed to L{decode_payload}
        (with C{gsm_packed=False}).
    @ivar data_coding: the PDU's data_coding.
    @ivar method: C{"udh8"}, C{"udh16"}, C{"sar"} or C{"none"}.
    @ivar udh: the parsed UDH or C{None}.
    @ivar malformed: the UDH or the SAR TLVs were invalid; treated as a
        single message.
    """

    ref: int | None
    total: int
    seq: int
    payload: bytes
    data_coding: int
    method: str = "none"
    udh: Udh | None = None
    malformed: bool = False

    @property
    def is_single(self) -> bool:
        return self.total == 1

    def decode(self, dc0_charset: str = "gsm") -> Decoded:
        """@return: the payload decoded on its own (for a single message)."""
        decoded = decode_payload(self.payload, self.data_coding, dc0_charset)
        return Decoded(decoded.text, decoded.data, self.udh, decoded.binary,
                       decoded.charset, self.malformed, decoded.message_class)


def mo_part(
    short_message: bytes,
    data_coding: int,
    esm_class: int = 0,
    tlvs: dict | None = None,
    *,
    dc0_charset: str = "gsm",
    gsm_packed: bool = False,
) -> MoPart:
    """
    Read the concatenation data of a received PDU.

    The user data is C{message_payload} when that TLV is present, else
    C{short_message}.  Concatenation comes from the UDH (IE 0x00 / 0x08)
    when UDHI is set, else from the three SAR TLVs when all are present.

    @param short_message: the PDU's short_message.
    @param data_coding: the PDU's data_coding.
    @param esm_class: the PDU's esm_class.
    @param tlvs: the PDU's TLVs by name.
    @param dc0_charset: what data_coding 0 means on the SMSC (packed
        unpacking applies only to GSM codings).
    @param gsm_packed: GSM data (for GSM codings) is packed 7-bit.
    @return: a L{MoPart}.
    """
    tlvs = tlvs or {}
    udh, data, malformed = _split_udh(
        bytes(tlvs.get("message_payload") or short_message), esm_class
    )
    if gsm_packed and coding_of(data_coding, dc0_charset)[0] == "gsm":
        data = gsm.unpack(data, None, gsm.fill_bits_after(udh.length) if udh else 0)
    if udh is not None and udh.concat_total is not None:
        method = "udh8" if udh.ref_bits == 8 else "udh16"
        return MoPart(udh.concat_ref, udh.concat_total, udh.concat_seq, data,
                      data_coding, method, udh, False)
    sar = [tlvs.get(name) for name in
           ("sar_msg_ref_num", "sar_total_segments", "sar_segment_seqnum")]
    if all(isinstance(v, int) for v in sar):
        ref, total, seq = sar
        if 1 <= seq <= total:
            return MoPart(ref, total, seq, data, data_coding, "sar", udh, malformed)
        malformed = True
    return MoPart(None, 1, 1, data, data_coding, "none", udh, malformed)
