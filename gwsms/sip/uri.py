# -*- test-case-name: tests.test_sip_uri -*-
"""
SIP addresses: L{SipURI} (sip:, sips:, tel:) and L{NameAddr} (From, To,
Contact, Route values) (RFC 3261 sections 19.1, 20, 25; RFC 3966 for
tel:).  L{Via} lives in L{gwsms.sip.headers} and is re-exported here.

Pure code: no I/O.  Everything public is re-exported by
L{gwsms.sip.message}.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from gwsms.sip.headers import (
    SipParseError,
    Via,
    _format_host,
    format_params,
    parse_params,
    quote_string,
    unquote_string,
)

__all__ = ["SipURI", "GenericURI", "NameAddr", "Via", "parse_params", "format_params",
           "quote_string", "unquote_string"]


# --- escaping -------------------------------------------------------------

_HEX = "0123456789ABCDEF"
_UNRESERVED = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()"
)
#: '?' and '/' are legal in a user part but escaped on output, since some
#: parsers split headers off at the first '?'
_USER_SAFE = _UNRESERVED | frozenset("&=+$,;")
_PASSWORD_SAFE = _UNRESERVED | frozenset("&=+$,")


_BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _unescape(text: str, what: str) -> str:
    if "%" not in text:
        return text
    if _BAD_ESCAPE_RE.search(text):
        raise SipParseError(400, f"Bad %-escape in URI {what}")
    raw = unquote_to_bytes(text.encode("utf-8", "surrogateescape"))
    return raw.decode("utf-8", "surrogateescape")


def _escape(text: str, safe: frozenset) -> str:
    for ch in text:
        if ch not in safe:
            break
    else:
        return text
    out = []
    for ch in text:
        if ch in safe:
            out.append(ch)
        else:
            for b in ch.encode("utf-8", "surrogateescape"):
                out.append("%" + _HEX[b >> 4] + _HEX[b & 15])
    return "".join(out)


# --- host[:port] ------------------------------------------------------------

_HOSTPORT_RE = re.compile(
    r"(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9_][A-Za-z0-9_\-.]*))(?::([0-9]{1,5}))?\Z"
)


def _parse_hostport(text: str, what: str) -> tuple[str, int | None]:
    m = _HOSTPORT_RE.match(text)
    if m is None:
        raise SipParseError(400, f"Bad host/port in {what}: {text[:64]!r}")
    v6, host, port = m.groups()
    if v6 is not None:
        if ":" not in v6:
            raise SipParseError(400, f"Bad IPv6 reference in {what}")
        host = v6
    if port is not None:
        port_n = int(port)
        if port_n > 65535:
            raise SipParseError(400, f"Port out of range in {what}")
        return host, port_n
    return host, None


# --- URIs -----------------------------------------------------------------

_URI_BAD_RE = re.compile(r'[\x00-\x20\x7f<>"]')
_DEFAULT_PORTS = {"sip": 5060, "sips": 5061}
_TEL_RE = re.compile(r"\+?[0-9A-Fa-f*#\-.()]+\Z")
_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+\-.]*):")


class GenericURI:
    """
    An absolute URI of a scheme other than sip/sips/tel (im:, mailto:,
    urn:, ...), kept as text.

    @ivar scheme: lower-case scheme.
    @ivar rest: everything after C{"scheme:"}.
    """

    __slots__ = ("scheme", "rest")

    def __init__(self, scheme: str, rest: str) -> None:
        self.scheme = scheme
        self.rest = rest

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"

    def __repr__(self) -> str:
        return f"GenericURI({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GenericURI):
            return NotImplemented
        return self.scheme == other.scheme and self.rest == other.rest

    def __hash__(self) -> int:
        return hash((self.scheme, self.rest))


class SipURI:
    """
    A sip:, sips: or tel: URI.

    @ivar scheme: C{"sip"}, C{"sips"} or C{"tel"}.
    @ivar user: unescaped user part (the number for tel:), or C{None}.
    @ivar password: unescaped password or C{None} (never shown in repr).
    @ivar host: host name, IPv4 address or IPv6 address without brackets
        (C{""} for tel:).
    @ivar port: int or C{None} when absent.
    @ivar params: URI parameters, lower-case name -> value or C{None}.
    @ivar headers: URI headers (C{?a=b&c=d}), name -> value (escaped form).
    """

    __slots__ = ("scheme", "user", "password", "host", "port", "params", "headers")

    def __init__(
        self,
        host: str = "",
        user: str | None = None,
        port: int | None = None,
        params: dict | None = None,
        headers: dict | None = None,
        scheme: str = "sip",
        password: str | None = None,
    ) -> None:
        self.scheme = scheme
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.params = dict(params) if params else {}
        self.headers = dict(headers) if headers else {}

    @classmethod
    def parse(cls, text: str) -> "SipURI":
        """
        Parse a sip:, sips: or tel: URI.

        @param text: the URI (no surrounding C{<>}).
        @return: a new L{SipURI}.
        @raise SipParseError: 416 for another scheme, 400 if malformed.
        """
        text = text.strip()
        colon = text.find(":")
        scheme = text[:colon].lower()
        if scheme not in ("sip", "sips", "tel"):
            if colon > 0 and _SCHEME_RE.match(text):
                raise SipParseError(416, f"Unsupported URI scheme {scheme[:16]!r}")
            raise SipParseError(400, f"Not a URI: {text[:64]!r}")
        rest = text[colon + 1 :]
        uri = cls.__new__(cls)
        uri.scheme = scheme
        uri.password = None
        uri.port = None
        uri.headers = {}
        if scheme == "tel":
            semi = rest.find(";")
            number = rest if semi < 0 else rest[:semi]
            if not _TEL_RE.match(number):
                raise SipParseError(400, f"Bad tel: number {number[:32]!r}")
            uri.user = number
            uri.host = ""
            uri.params = parse_params(rest[semi:], "tel: URI") if semi >= 0 else {}
            return uri
        # '@' cannot appear in parameters or headers, so the userinfo ends at
        # the first one (a user part may contain ';' and '?')
        at = rest.find("@")
        if at >= 0:
            userinfo = rest[:at]
            rest = rest[at + 1 :]
            user, sep, password = userinfo.partition(":")
            if not user:
                raise SipParseError(400, "Empty user part in SIP URI")
            if _URI_BAD_RE.search(userinfo):
                raise SipParseError(400, "Invalid character in SIP URI user part")
            uri.user = _unescape(user, "user")
            if sep:
                uri.password = _unescape(password, "password")
        else:
            uri.user = None
        q = rest.find("?")
        if q >= 0:
            hdrs = rest[q + 1 :]
            rest = rest[:q]
            if _URI_BAD_RE.search(hdrs):
                raise SipParseError(400, "Invalid character in URI headers")
            for pair in hdrs.split("&"):
                name, eq, value = pair.partition("=")
                if not name or not eq:
                    raise SipParseError(400, "Malformed URI headers")
                uri.headers[name] = value
        semi = rest.find(";")
        if semi >= 0:
            uri.params = parse_params(rest[semi:], "URI")
            rest = rest[:semi]
        else:
            uri.params = {}
        uri.host, uri.port = _parse_hostport(rest, "SIP URI")
        return uri

    def __str__(self) -> str:
        if self.scheme == "tel":
            return f"tel:{self.user}{format_params(self.params)}"
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(_escape(self.user, _USER_SAFE))
            if self.password is not None:
                parts.append(":" + _escape(self.password, _PASSWORD_SAFE))
            parts.append("@")
        parts.append(_format_host(self.host))
        if self.port is not None:
            parts.append(f":{self.port}")
        if self.params:
            parts.append(format_params(self.params))
        if self.headers:
            parts.append("?" + "&".join(f"{k}={v}" for k, v in self.headers.items()))
        return "".join(parts)

    def __repr__(self) -> str:
        shown = SipURI(self.host, self.user, self.port, self.params, self.headers,
                       self.scheme, "****" if self.password is not None else None)
        return f"SipURI({str(shown)!r})"

    @property
    def transport(self) -> str:
        """
        @return: the C{transport} parameter lower-cased, else C{"tls"} for
            sips: and C{"udp"} otherwise.
        """
        t = self.params.get("transport")
        if t:
            return t.lower()
        return "tls" if self.scheme == "sips" else "udp"

    @property
    def effective_port(self) -> int | None:
        """
        @return: the port, or the scheme's default (5060/5061) when absent.
        """
        return self.port if self.port is not None else _DEFAULT_PORTS.get(self.scheme)

    @property
    def aor(self) -> str:
        """
        @return: the address-of-record form C{scheme:user@host} (host
            lower-cased; no port, parameters or headers).
        """
        if self.scheme == "tel":
            return f"tel:{self.user}"
        host = _format_host(self.host.lower())
        if self.user is None:
            return f"{self.scheme}:{host}"
        return f"{self.scheme}:{_escape(self.user, _USER_SAFE)}@{host}"

    def copy(self, **changes: object) -> "SipURI":
        """
        @param changes: attributes to replace (host, user, port, params, ...).
        @return: an independent copy with C{changes} applied.
        """
        new = SipURI(self.host, self.user, self.port, self.params, self.headers,
                     self.scheme, self.password)
        for name, value in changes.items():
            setattr(new, name, value)
        return new

    def __eq__(self, other: object) -> bool:
        """
        URI comparison after RFC 3261 section 19.1.4: user and password
        case-sensitive after unescaping, host case-insensitive, an absent
        port differs from an explicit one, user/ttl/method/maddr/transport
        parameters must agree when present in either, other parameters
        when present in both, headers must agree.
        """
        if not isinstance(other, SipURI):
            return NotImplemented
        if (
            self.scheme != other.scheme
            or self.user != other.user
            or self.password != other.password
            or self.host.lower() != other.host.lower()
            or self.port != other.port
        ):
            return False
        p1, p2 = self.params, other.params
        for name in ("user", "ttl", "method", "maddr", "transport"):
            v1, v2 = p1.get(name), p2.get(name)
            if (v1 or "").lower() != (v2 or "").lower() or ((name in p1) != (name in p2)):
                return False
        for name in p1.keys() & p2.keys():
            v1, v2 = p1[name], p2[name]
            if (v1 or "").lower() != (v2 or "").lower():
                return False
        return {k.lower(): v for k, v in self.headers.items()} == {
            k.lower(): v for k, v in other.headers.items()
        }

    def __hash__(self) -> int:
        return hash((self.scheme, self.user, self.host.lower(), self.port))


def parse_uri(text: str) -> SipURI | GenericURI:
    """
    @param text: any absolute URI.
    @return: a L{SipURI} for sip/sips/tel, else a L{GenericURI}.
    @raise SipParseError: when C{text} is not an absolute URI.
    """
    prefix = text[:5].lower()
    if prefix.startswith(("sip:", "tel:")) or prefix == "sips:":
        return SipURI.parse(text)
    m = _SCHEME_RE.match(text)
    if m is None:
        raise SipParseError(400, f"Not a URI: {text[:64]!r}")
    scheme = m.group(1).lower()
    if scheme in ("sip", "sips", "tel"):
        return SipURI.parse(text)
    rest = text[m.end() :]
    if not rest or any(c in rest for c in " \t<>\""):
        raise SipParseError(400, f"Not a URI: {text[:64]!r}")
    return GenericURI(scheme, rest)


# --- name-addr ------------------------------------------------------------

_QUOTED_RE = re.compile(r'"((?:[^"\\]|\\.)*)"', re.S)
_UNESCAPE_QUOTED_RE = re.compile(r"\\(.)", re.S)
_QVALUE_RE = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)\Z")
_DISPLAY_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~ \t]*\Z")


class NameAddr:
    """
    A From/To/Contact/Route style value: C{"Display" <uri>;param=value}, a
    bare addr-spec C{uri;param=value} (the parameters then belong to the
    header, not the URI), or the Contact wildcard C{*}.

    @ivar display_name: unquoted display name, C{None} when absent.
    @ivar uri: L{SipURI} (or L{GenericURI} for other schemes); C{None} for
        the wildcard.
    @ivar params: header parameters (tag, expires, q, ...), lower-case names.
    @ivar wildcard: C{True} for C{Contact: *}.
    """

    __slots__ = ("display_name", "uri", "params", "wildcard")

    def __init__(
        self,
        uri: SipURI | GenericURI | str | None,
        display_name: str | None = None,
        params: dict | None = None,
        wildcard: bool = False,
    ) -> None:
        if isinstance(uri, str):
            uri = parse_uri(uri)
        self.uri = uri
        self.display_name = display_name
        self.params = dict(params) if params else {}
        self.wildcard = wildcard

    @classmethod
    def parse(cls, text: str) -> "NameAddr":
        """
        @param text: one header value (one element of a list header).
        @return: a new L{NameAddr}.
        @raise SipParseError: when malformed.
        """
        text = text.strip()
        if text == "*":
            return cls(None, wildcard=True)
        display = None
        if text.startswith('"'):
            m = _QUOTED_RE.match(text)
            if m is None:
                raise SipParseError(400, "Unterminated quoted display name")
            display = m.group(1)
            if "\\" in display:
                display = _UNESCAPE_QUOTED_RE.sub(r"\1", display)
            i = m.end() - 1
            rest = text[i + 1 :].lstrip(" \t")
            if not rest.startswith("<"):
                raise SipParseError(400, "Display name without <URI>")
        else:
            lt = text.find("<")
            if lt >= 0:
                token = text[:lt]
                if not _DISPLAY_TOKEN_RE.match(token):
                    raise SipParseError(400, "Bad display name")
                token = token.strip(" \t")
                display = token or None
                rest = text[lt:]
            else:
                rest = None
        if rest is not None:
            gt = rest.find(">")
            if gt < 0:
                raise SipParseError(400, "Missing '>' after URI")
            uri = parse_uri(rest[1:gt].strip())
            params = parse_params(rest[gt + 1 :])
        else:
            # bare addr-spec: no ';' '?' ',' inside, parameters are the header's
            semi = text.find(";")
            if semi >= 0:
                uri = parse_uri(text[:semi].rstrip(" \t"))
                params = parse_params(text[semi:])
            else:
                uri = parse_uri(text)
                params = {}
        addr = cls.__new__(cls)
        addr.display_name = display
        addr.uri = uri
        addr.params = params
        addr.wildcard = False
        return addr

    @property
    def tag(self) -> str | None:
        """
        @return: the C{tag} parameter or C{None}.
        """
        return self.params.get("tag")

    @property
    def expires(self) -> int | None:
        """
        @return: the C{expires} parameter as int, C{None} when absent.
        @raise SipParseError: when it is not a number.
        """
        if "expires" not in self.params:
            return None
        value = self.params["expires"] or ""
        if not value.isdigit() or not value.isascii():
            raise SipParseError(400, "Bad expires parameter")
        return int(value)

    @property
    def q(self) -> float | None:
        """
        @return: the C{q} parameter (0 to 1) as float, C{None} when absent.
        @raise SipParseError: when it is not a q-value.
        """
        if "q" not in self.params:
            return None
        value = self.params["q"] or ""
        if not _QVALUE_RE.match(value):
            raise SipParseError(400, "Bad q parameter")
        return float(value)

    def __str__(self) -> str:
        if self.wildcard:
            return "*"
        out = f"<{self.uri}>"
        if self.display_name is not None:
            out = quote_string(self.display_name) + " " + out
        if self.params:
            out += format_params(self.params)
        return out

    def __repr__(self) -> str:
        if self.wildcard:
            return "NameAddr('*')"
        return f"NameAddr({self.display_name!r}, {self.uri!r}, {self.params!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NameAddr):
            return NotImplemented
        return (
            self.wildcard == other.wildcard
            and self.display_name == other.display_name
            and self.uri == other.uri
            and self.params == other.params
        )

    __hash__ = None  # type: ignore[assignment]
