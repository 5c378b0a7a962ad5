# -*- test-case-name: tests.test_core_gsm -*-
"""
The GSM 03.38 default alphabet and its extension table (3GPP TS 23.038
section 6.2.1), as septets.

Pure: no I/O, no reactor, no state besides the constant tables built when
the module is imported.

Two wire forms exist:
  - I{unpacked}: one septet per octet (the high bit clear).  This is what
    SMPP usually carries in C{short_message} for C{data_coding} 0, and what
    L{encode} / L{decode} produce and read.
  - I{packed}: septets packed LSB first into octets (TS 23.038 6.1.2.1), as
    on the air interface.  L{pack} / L{unpack} convert between the two,
    with C{fill_bits} for the septet alignment after a user data header.

A character of the extension table (C{^ { } \\ [ ~ ] | EUR} and form feed)
is sent as the escape septet 0x1B followed by its code, so it counts as two
septets (L{septet_length}).
"""

from __future__ import annotations

import codecs
import re

#: The escape septet that introduces an extension table character.
ESCAPE = 0x1B

#: Default alphabet, septet value -> character.  0x1B (escape) decodes to a
#: space when nothing follows it (TS 23.038: shown as a space by receivers
#: without the extension table).
DEFAULT_ALPHABET = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(DEFAULT_ALPHABET) == 128

#: Extension table: septet after 0x1B -> character.
EXTENSION = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "\u20ac",
}

#: Characters of the extension table (each costs two septets).
EXTENSION_CHARS = frozenset(EXTENSION.values())

#: Every character that L{encode} accepts.
CHARACTERS = frozenset(DEFAULT_ALPHABET.replace("\x1b", "")) | EXTENSION_CHARS

_REPLACEMENT = "\ufffd"

# str.translate table: character -> its septet(s) as text below U+0080.
# Every code point below 0x80 is mapped explicitly (to U+FFFF when not GSM)
# so that a non-GSM ASCII character such as "`" cannot pass through
# unchanged; anything not in the table stays above 0x7F, so the ASCII
# encoding after the translation fails exactly when a character is not GSM.
# (translate has a fast path for ASCII text, the common case.)
_ENCODE = {code: "\uffff" for code in range(0x80)}
for _septet, _char in enumerate(DEFAULT_ALPHABET):
    if _septet != ESCAPE:
        _ENCODE[ord(_char)] = chr(_septet)
for _septet, _char in EXTENSION.items():
    _ENCODE[ord(_char)] = chr(ESCAPE) + chr(_septet)

# codecs.charmap_decode table: octet -> character; octets above 0x7F are not
# septets and decode to U+FFFD.
_DECODE = DEFAULT_ALPHABET + _REPLACEMENT * 128
del _septet, _char

# The first character that is not GSM.
_NOT_GSM = re.compile("[^" + re.escape("".join(sorted(CHARACTERS))) + "]")


class NotGsm(ValueError):
    """
    Text contains a character outside the default alphabet and extension
    table.

    @ivar char: the first character that does not fit.
    @ivar index: its index in the text.
    """

    def __init__(self, char: str, index: int) -> None:
        self.char = char
        self.index = index
        ValueError.__init__(
            self,
            f"character {char!r} (U+{ord(char):04X}) at index {index} "
            "is not in the GSM 03.38 alphabet",
        )


def encode(text: str) -> bytes:
    """
    Encode text as unpacked GSM septets (one per octet).

    @param text: the text.
    @return: the septets; an extension character becomes C{0x1B, code}.
    @raise NotGsm: naming the first character that does not fit.
    """
    try:
        return text.translate(_ENCODE).encode("ascii")
    except UnicodeEncodeError:
        bad = _NOT_GSM.search(text)
        raise NotGsm(bad.group(), bad.start()) from None


def fits(text: str) -> bool:
    """
    @return: whether every character of C{text} is in the default alphabet or
        the extension table.
    """
    return _NOT_GSM.search(text) is None


def septet_length(text: str) -> int:
    """
    @return: the number of septets C{text} takes (extension characters count
        two).
    @raise NotGsm: if a character does not fit.
    """
    bad = _NOT_GSM.search(text)
    if bad is not None:
        raise NotGsm(bad.group(), bad.start())
    return len(text) + sum(text.count(char) for char in EXTENSION_CHARS)


def char_septets(char: str) -> int:
    """
    @return: 1 or 2, the septets one character takes.
    @raise NotGsm: if it does not fit.
    """
    if char in EXTENSION_CHARS:
        return 2
    if char in CHARACTERS:
        return 1
    raise NotGsm(char, 0)


def decode(data: bytes) -> str:
    """
    Decode unpacked GSM septets (one per octet).  Never raises.

    An escape followed by a code that is not in the extension table decodes
    as the default-alphabet character of that code (TS 23.038 6.2.1.1); a
    trailing escape decodes as a space; an octet above 0x7F decodes as
    U+FFFD.

    @param data: the septets.
    @return: the text.
    """
    table = _DECODE
    if ESCAPE not in data:
        return codecs.charmap_decode(data, "strict", table)[0]
    runs = bytes(data).split(b"\x1b")
    out = [codecs.charmap_decode(runs[0], "strict", table)[0]]
    consumed = False  # the escape before this run was itself an escaped code
    last = len(runs) - 1
    for index in range(1, len(runs)):
        run = runs[index]
        if consumed:
            out.append(codecs.charmap_decode(run, "strict", table)[0])
            consumed = False
        elif run:
            out.append(EXTENSION.get(run[0]) or table[run[0]])
            out.append(codecs.charmap_decode(run[1:], "strict", table)[0])
        else:  # escape, escape (shown as a space) or a trailing escape
            out.append(" ")
            consumed = index < last
    return "".join(out)


def pack(septets: bytes, fill_bits: int = 0, cr_padding: bool = True) -> bytes:
    """
    Pack septets into octets, least significant bit first (TS 23.038
    6.1.2.1.1).

    @param septets: unpacked septets (each below 0x80).
    @param fill_bits: zero bits before the first septet (0-6), used after a
        user data header so that the septets start on a septet boundary;
        see L{fill_bits_after}.
    @param cr_padding: when the last octet would have 7 spare bits, put a
        CR there instead of zeros (which would read as "@"), and when the
        text ends with a CR on an octet boundary add a second CR (TS 23.038
        6.1.2.3.1).  Needed only when the receiver does not know the septet
        count.
    @return: the packed octets.
    @raise ValueError: for a value above 0x7F or bad C{fill_bits}.
    """
    if not 0 <= fill_bits <= 6:
        raise ValueError(f"fill_bits must be 0-6, not {fill_bits}")
    if septets and max(septets) > 0x7F:
        raise ValueError("a septet must be below 0x80")
    count = len(septets)
    if not count:
        return b""
    if cr_padding:
        spare = (8 - (fill_bits + 7 * count) % 8) % 8
        if spare == 7 or (spare == 0 and septets[-1] == 0x0D):
            septets = bytes(septets) + b"\r"
            count += 1
    value = 0
    shift = fill_bits
    for septet in septets:
        value |= septet << shift
        shift += 7
    return value.to_bytes((shift + 7) // 8, "little")


def unpack(data: bytes, count: int | None = None, fill_bits: int = 0) -> bytes:
    """
    Unpack octets into septets (one per octet).

    @param data: packed octets.
    @param count: number of septets; C{None} means as many as fit, dropping
        a final CR that ends exactly on the last octet boundary (the padding
        that L{pack} adds with C{cr_padding}).
    @param fill_bits: bits to skip before the first septet (0-6).
    @return: the septets.
    @raise ValueError: if C{count} septets do not fit in C{data}.
    """
    if not 0 <= fill_bits <= 6:
        raise ValueError(f"fill_bits must be 0-6, not {fill_bits}")
    bits = len(data) * 8 - fill_bits
    available = max(bits, 0) // 7
    value = int.from_bytes(data, "little") >> fill_bits
    if count is None:
        count = available
        trim = bits > 0 and bits % 7 == 0 and count and (value >> 7 * (count - 1)) & 0x7F == 0x0D
        if trim:
            count -= 1
    elif count > available:
        raise ValueError(f"{len(data)} octets hold {available} septets, not {count}")
    return bytes((value >> (7 * i)) & 0x7F for i in range(count))


def packed_length(septets: int, fill_bits: int = 0) -> int:
    """
    @return: octets needed for C{septets} septets after C{fill_bits} bits.
    """
    if not septets:
        return 0
    return (fill_bits + 7 * septets + 7) // 8


def fill_bits_after(udh_octets: int) -> int:
    """
    @param udh_octets: length of the user data header including its length
        octet (UDHL + 1).
    @return: the fill bits (0-6) that align the first septet after a header
        of that size on a septet boundary (TS 23.040 9.2.3.24).
    """
    return (7 - (udh_octets * 8) % 7) % 7
