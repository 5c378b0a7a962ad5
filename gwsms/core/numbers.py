# -*- test-case-name: tests.test_core_numbers -*-
"""
Address mapping between SIP users and SMPP (addr, TON, NPI) triples.

SIP -> SMPP (L{sip_user_to_smpp}):
  - C{+4915112345678} (after removing the RFC 3966 visual separators
    C{- . ( )} and spaces) -> TON 1 (international) / NPI 1 (E.164),
    digits without the C{+};
  - other digit strings (C{12345}, C{015112345678}) -> the connection's
    default TON/NPI, which the caller passes (C{src_ton}/C{src_npi} of the
    L{gwsms.smpp.link.SmscLink} for a source, C{dst_ton}/C{dst_npi} for a
    destination; see L{source_address} / L{destination_address});
  - an alphanumeric sender (at least one letter, up to 11 characters of
    C{A-Z a-z 0-9}, space and C{. - _ & '}) -> TON 5 / NPI 0;
  - C{tel:} URIs and C{sip:}/C{sips:} URIs (with or without
    C{user=phone}) are accepted too; their user part is taken first.

SMPP -> SIP (L{smpp_to_sip_user}): TON 1 -> C{"+"} + digits, everything
else as it is, escaped for use as a SIP URI user part.

Pure code: no I/O.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import quote, unquote

from gwsms.sip.headers import SipParseError
from gwsms.sip.uri import GenericURI, NameAddr, parse_uri

__all__ = [
    "AddressError",
    "Address",
    "MAX_ADDR_LENGTH",
    "MAX_ADDR_LENGTH_DATA_SM",
    "MAX_ALPHANUMERIC_LENGTH",
    "TON_INTERNATIONAL",
    "TON_ALPHANUMERIC",
    "NPI_UNKNOWN",
    "NPI_ISDN",
    "sip_user_to_smpp",
    "smpp_to_sip_user",
    "user_from_uri",
    "source_address",
    "destination_address",
]

TON_INTERNATIONAL = 1
TON_ALPHANUMERIC = 5
NPI_UNKNOWN = 0
NPI_ISDN = 1

#: source_addr / destination_addr of submit_sm / deliver_sm are C-Octet
#: strings of at most 21 octets including the NUL: 20 characters.
MAX_ADDR_LENGTH = 20
#: data_sm addresses: 65 octets including the NUL.
MAX_ADDR_LENGTH_DATA_SM = 64
#: What a handset can show as an alphanumeric sender (GSM TS 23.040).
MAX_ALPHANUMERIC_LENGTH = 11


class AddressError(ValueError):
    """
    An address that cannot be mapped; the message names the address and
    what is wrong with it.
    """


class Address(NamedTuple):
    """
    An SMPP address.

    @ivar addr: the C{source_addr} / C{destination_addr} text.
    @ivar ton: type of number (SMPP 3.4 5.2.5).
    @ivar npi: numbering plan indicator (SMPP 3.4 5.2.6).
    """

    addr: str
    ton: int
    npi: int


_VISUAL_SEPARATORS = re.compile(r"[\-.() \t]")
_NUMBER_RE = re.compile(r"(\+?)([0-9]+)\Z")
_ALNUM_RE = re.compile(r"[A-Za-z0-9 .\-_&']+\Z")
_LETTER_RE = re.compile(r"[A-Za-z]")
_URI_SCHEME_RE = re.compile(r"\s*<?\s*(sips?|tel|im|pres):", re.IGNORECASE)
# What may stay unescaped in a SIP URI user part (RFC 3261 25.1:
# unreserved / user-unreserved); quote() adds letters, digits and "_.-~".
_USER_SAFE = "!*'()&=+$,;?/"


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _unquote(text: str, original: str) -> str:
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise AddressError(f"bad %-escape in address {_shown(original)}: "
                           "not UTF-8") from None


def user_from_uri(uri_text: str) -> str:
    """
    Take the user part out of a URI.

    @param uri_text: C{sip:}/C{sips:} URI (C{user=phone} or not), C{tel:}
        URI, C{im:}/C{pres:} URI, optionally in name-addr form
        (C{"Bob" <sip:bob@example.com>;tag=1}).
    @return: the user part, percent-decoded.  For C{tel:} URIs and
        C{user=phone} SIP URIs, telephone-subscriber parameters
        (C{;phone-context=...}, C{;isub=...}, C{;ext=...}) are dropped.
    @raise AddressError: not such a URI, malformed, or without a user part.
    """
    text = uri_text.strip()
    try:
        if "<" in text:
            uri = NameAddr.parse(text).uri
        else:
            uri = parse_uri(text)
    except SipParseError as e:
        raise AddressError(f"bad URI {_shown(uri_text)}: {e.reason}") from None
    if isinstance(uri, GenericURI):
        if uri.scheme not in ("im", "pres"):
            raise AddressError(
                f"unsupported URI scheme {uri.scheme!r} in {_shown(uri_text)}: "
                "expected sip:, sips:, tel:, im: or pres:"
            )
        user, at, _host = uri.rest.partition("@")
        if not at or not user:
            raise AddressError(f"URI {_shown(uri_text)} has no user part")
        return _unquote(user, uri_text)
    if not uri.user:
        raise AddressError(f"URI {_shown(uri_text)} has no user part")
    user = uri.user
    if uri.scheme != "tel" and (uri.params.get("user") or "").lower() == "phone":
        user = user.split(";", 1)[0]
    return user


def _map_user(user: str, default_ton: int, default_npi: int, max_length: int,
              alphanumeric: bool, original: str) -> Address:
    user = user.strip()
    if not user:
        raise AddressError(f"empty address {_shown(original)}")
    compact = _VISUAL_SEPARATORS.sub("", user)
    m = _NUMBER_RE.match(compact)
    if m is not None:
        plus, digits = m.groups()
        if plus:
            address = Address(digits, TON_INTERNATIONAL, NPI_ISDN)
        else:
            address = Address(digits, default_ton, default_npi)
    elif compact.startswith("+"):
        raise AddressError(
            f"bad international number {_shown(original)}: expected '+' followed by digits"
        )
    elif _ALNUM_RE.match(user) and _LETTER_RE.search(user):
        if not alphanumeric:
            raise AddressError(
                f"bad destination {_shown(original)}: an alphanumeric address can "
                "only be a sender"
            )
        if len(user) > MAX_ALPHANUMERIC_LENGTH:
            raise AddressError(
                f"alphanumeric sender {_shown(original)} is {len(user)} characters "
                f"long; at most {MAX_ALPHANUMERIC_LENGTH} allowed"
            )
        address = Address(user, TON_ALPHANUMERIC, NPI_UNKNOWN)
    else:
        raise AddressError(
            f"bad address {_shown(original)}: neither a phone number nor an "
            f"alphanumeric sender (letters, digits, space, . - _ & ')"
        )
    if len(address.addr) > max_length:
        raise AddressError(
            f"address {_shown(original)} is {len(address.addr)} characters long; "
            f"SMPP allows at most {max_length}"
        )
    return address


def sip_user_to_smpp(
    user: str,
    *,
    default_ton: int,
    default_npi: int,
    max_length: int = MAX_ADDR_LENGTH,
    alphanumeric: bool = True,
) -> Address:
    """
    Map a SIP user part (or a whole sip:/sips:/tel: URI) to an SMPP address.

    @param user: a URI user part as it appears in a URI (percent-escaped,
        e.g. C{"%2B4915112345678"} or C{"+49-151-123"}), or a URI
        (C{"tel:+49-151-123;phone-context=..."},
        C{"sip:+4915123@example.com;user=phone"}), decoded once.
    @param default_ton: TON for numbers without C{+} (the link's
        C{src_ton} for a source, C{dst_ton} for a destination).
    @param default_npi: NPI for numbers without C{+}.
    @param max_length: longest C{addr} allowed: L{MAX_ADDR_LENGTH} (20) for
        submit_sm / deliver_sm, L{MAX_ADDR_LENGTH_DATA_SM} (64) for data_sm.
    @param alphanumeric: whether an alphanumeric address (TON 5) is
        acceptable; pass C{False} for destinations.
    @return: an L{Address}.
    @raise AddressError: empty, malformed, too long, or alphanumeric where
        not allowed; the message names the address.
    """
    if not isinstance(user, str):
        raise AddressError(f"address must be text, not {type(user).__name__}")
    if _URI_SCHEME_RE.match(user) or "<" in user:
        decoded = user_from_uri(user)
    else:
        decoded = _unquote(user, user)
        # A tel-style user part may carry ;phone-context=... parameters.
        head = decoded.split(";", 1)[0]
        if _NUMBER_RE.match(_VISUAL_SEPARATORS.sub("", head)):
            decoded = head
    return _map_user(decoded, default_ton, default_npi, max_length, alphanumeric, user)


def smpp_to_sip_user(addr: str, ton: int, npi: int) -> str:
    """
    Map an SMPP address to a SIP URI user part.

    @param addr: C{source_addr} / C{destination_addr}.
    @param ton: its TON: 1 (international) with digits gives
        C{"+"} + digits (never C{"++"}); 5 (alphanumeric) and every other
        TON give C{addr} as it is.
    @param npi: its NPI (not needed for the mapping; kept for symmetry).
    @return: the user part, percent-escaped where a SIP URI user part needs
        it (C{"Acme Shop"} -> C{"Acme%20Shop"}), ready to be placed between
        C{"sip:"} and C{"@"}.  (L{gwsms.sip.uri.SipURI} escapes by itself:
        give it C{urllib.parse.unquote} of this value.)
    @raise AddressError: when C{addr} is empty.
    """
    text = addr.strip().strip("\x00")
    if not text:
        raise AddressError("empty SMPP address")
    if ton == TON_INTERNATIONAL:
        digits = text.lstrip("+")
        if digits.isascii() and digits.isdigit():
            return "+" + digits
    return quote(text, safe=_USER_SAFE)


def source_address(user: str, link: object, max_length: int = MAX_ADDR_LENGTH) -> Address:
    """
    L{sip_user_to_smpp} for a sender on a link.

    @param user: the SIP user part or URI of the sender.
    @param link: a L{gwsms.smpp.link.SmscLink} (its C{src_ton}/C{src_npi}
        are the defaults).
    @param max_length: see L{sip_user_to_smpp}.
    @return: an L{Address}; alphanumeric senders are allowed.
    @raise AddressError: see L{sip_user_to_smpp}.
    """
    return sip_user_to_smpp(user, default_ton=link.src_ton, default_npi=link.src_npi,
                            max_length=max_length, alphanumeric=True)


def destination_address(user: str, link: object,
                        max_length: int = MAX_ADDR_LENGTH) -> Address:
    """
    L{sip_user_to_smpp} for a recipient on a link.

    @param user: the SIP user part or URI of the recipient.
    @param link: a L{gwsms.smpp.link.SmscLink} (its C{dst_ton}/C{dst_npi}
        are the defaults).
    @param max_length: see L{sip_user_to_smpp}.
    @return: an L{Address}; an alphanumeric destination is refused.
    @raise AddressError: see L{sip_user_to_smpp}.
    """
    return sip_user_to_smpp(user, default_ton=link.dst_ton, default_npi=link.dst_npi,
                            max_length=max_length, alphanumeric=False)
