# -*- test-case-name: tests.test_sip_message,tests.test_sip_uri -*-
"""
SIP errors, the SIP header multi-map (RFC 3261 sections 7.3 and 20) and
header-value grammar shared by all headers: parameters, quoted strings and
L{Via} (RFC 3261 section 20.42, RFC 3581 rport).

Pure code: no I/O, no reactor.  L{gwsms.sip.message} re-exports everything
public from here; import from there.
"""

from __future__ import annotations

import re
from typing import Iterable, Iterator

__all__ = [
    "SipError",
    "SipParseError",
    "Headers",
    "COMPACT_FORMS",
    "LIST_HEADERS",
    "canonical_name",
    "split_list",
    "parse_params",
    "format_params",
    "quote_string",
    "unquote_string",
    "Via",
]


class SipError(Exception):
    """
    A SIP-level failure that maps onto a SIP response status.

    @ivar status: the SIP status code to answer with (400, 413, 513, ...).
    @ivar reason: a short human-readable reason naming what is wrong; fit to
        be used as the reason phrase of the response.
    """

    def __init__(self, status: int = 400, reason: str | None = None) -> None:
        """
        @param status: SIP status code (an int).  For convenience the
            arguments may also be given as C{(reason, status)}.
        @param reason: text naming what is wrong.
        """
        if isinstance(status, str):  # tolerate SipError("why", 400)
            status, reason = (reason if isinstance(reason, int) else 400), status
        self.status = status
        self.reason = reason if reason is not None else "Error"
        Exception.__init__(self, status, self.reason)

    def __str__(self) -> str:
        return f"{self.status} {self.reason}"


class SipParseError(SipError):
    """
    Bytes that are not a valid SIP message (or a header value that is not
    valid for its header).  C{status} is 400 unless a limit was exceeded
    (513 Message Too Large).

    @ivar message: the partly parsed L{Request}/L{Response} when the start
        line and header block could be read (so a transport can still build
        an error response), else C{None}.
    """

    def __init__(
        self, status: int = 400, reason: str | None = None, message: object = None
    ) -> None:
        SipError.__init__(self, status, reason)
        self.message = message


#: compact header forms (RFC 3261 section 7.3.3 and later RFCs)
COMPACT_FORMS = {
    "i": "Call-ID",
    "f": "From",
    "t": "To",
    "v": "Via",
    "l": "Content-Length",
    "c": "Content-Type",
    "m": "Contact",
    "k": "Supported",
    "s": "Subject",
    "e": "Content-Encoding",
    "o": "Event",
    "r": "Refer-To",
    "u": "Allow-Events",
    "a": "Accept-Contact",
    "b": "Referred-By",
    "d": "Request-Disposition",
    "j": "Reject-Contact",
    "x": "Session-Expires",
    "y": "Identity",
}

_KNOWN = (
    "Accept Accept-Contact Accept-Encoding Accept-Language Alert-Info Allow "
    "Allow-Events Authentication-Info Authorization Call-ID Call-Info Contact "
    "Content-Disposition Content-Encoding Content-Language Content-Length "
    "Content-Type CSeq Date Error-Info Event Expires From Identity In-Reply-To "
    "Max-Forwards Min-Expires MIME-Version Organization P-Asserted-Identity "
    "P-Preferred-Identity Path Priority Privacy Proxy-Authenticate "
    "Proxy-Authorization Proxy-Require Reason Record-Route Refer-To Referred-By "
    "Reject-Contact Reply-To Request-Disposition Require Retry-After Route "
    "Server Service-Route Session-Expires Subject Supported Timestamp To "
    "Unsupported User-Agent Via Warning WWW-Authenticate History-Info "
    "Security-Client Security-Server Security-Verify RSeq RAck SIP-ETag "
    "SIP-If-Match Subscription-State Min-SE"
).split()

#: lower-case name -> (lookup key, canonical spelling)
_CANON: dict[str, tuple[str, str]] = {}
for _name in _KNOWN:
    _CANON[_name.lower()] = (_name.lower(), _name)
for _short, _name in COMPACT_FORMS.items():
    _CANON[_short] = (_name.lower(), _name)
del _name, _short

#: headers whose value is a comma-separated list (RFC 3261 section 7.3.1);
#: headers such as WWW-Authenticate, Authorization or Date contain commas
#: that are not separators and are never split.
LIST_HEADERS = frozenset(
    n.lower()
    for n in (
        "Via Contact Route Record-Route Path Service-Route Allow Supported "
        "Require Proxy-Require Unsupported Accept Accept-Encoding "
        "Accept-Language Content-Encoding Content-Language Allow-Events "
        "Alert-Info Call-Info Error-Info In-Reply-To Warning "
        "P-Asserted-Identity P-Preferred-Identity History-Info Accept-Contact "
        "Reject-Contact Request-Disposition Security-Client Security-Server "
        "Security-Verify Reason P-Associated-URI Diversion Recv-Info"
    ).split()
)

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")


def canonical_name(name: str) -> tuple[str, str]:
    """
    Map a header name to its lookup key and the spelling used on output.

    @param name: a header name as received or given by the caller
        (any case, compact or long form).
    @return: C{(key, spelling)}: C{key} is lower case and expanded
        (C{"i"} -> C{"call-id"}), C{spelling} the canonical name for known
        headers (C{"Call-ID"}) or C{name} itself for unknown ones.
    """
    lower = name.lower()
    found = _CANON.get(lower)
    if found is not None:
        return found
    return lower, name


def _key(name: str) -> str:
    lower = name.lower()
    found = _CANON.get(lower)
    return found[0] if found is not None else lower


def _checked_name(name: str) -> tuple[str, str]:
    if not isinstance(name, str) or not _TOKEN_RE.match(name):
        raise ValueError(f"Invalid SIP header name {name!r}")
    return canonical_name(name)


def _checked_value(name: str, value: object) -> str:
    text = str(value).strip()
    if "\r" in text or "\n" in text or "\x00" in text:
        raise ValueError(f"CR, LF or NUL in the value of SIP header {name}")
    return text


def split_list(value: str) -> list[str]:
    """
    Split a comma-separated header value, ignoring commas inside quoted
    strings and inside C{<...>}.

    @param value: one header field value.
    @return: the stripped, non-empty elements.
    """
    if "," not in value:
        return [value]
    return [p for p in (e.strip() for e in _LIST_ELEMENT_RE.findall(value)) if p]


#: one list element: quoted strings (unterminated: to the end), <...> and
#: any other character but a comma
_LIST_ELEMENT_RE = re.compile(r'(?:"(?:[^"\\]|\\.)*"?|<[^>]*>?|[^",<])+')


class Headers:
    """
    Ordered, case-insensitive SIP header multi-map.

    Names are expanded from compact forms (C{"v"} -> C{"Via"}) and known
    headers are re-spelled canonically (C{"call-id"} -> C{"Call-ID"}).
    Each entry is one header line; several values on one line stay on one
    line until changed.  L{get} and L{get_all} split list headers
    (L{LIST_HEADERS}) at commas outside quotes and C{<>}.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] | dict | None = None) -> None:
        """
        @param items: optional initial C{(name, value)} pairs (or a dict).
        """
        self._items: list[tuple[str, str, str]] = []
        if items is not None:
            if isinstance(items, Headers):
                self._items = list(items._items)
                return
            if isinstance(items, dict):
                items = items.items()
            for name, value in items:
                self.add(name, value)

    @classmethod
    def _from_parsed(cls, items: list[tuple[str, str, str]]) -> "Headers":
        h = cls.__new__(cls)
        h._items = items
        return h

    def copy(self) -> "Headers":
        """
        @return: an independent copy.
        """
        return Headers._from_parsed(list(self._items))

    def get(self, name: str, default: str | None = None) -> str | None:
        """
        @param name: header name (any case, compact form allowed).
        @param default: returned when the header is absent.
        @return: the first value (for list headers the first comma-separated
            element, i.e. C{get_all(name)[0]}), or C{default}.
        """
        key = _key(name)
        for k, _, value in self._items:
            if k == key:
                if key in LIST_HEADERS and "," in value:
                    parts = split_list(value)
                    if parts:
                        return parts[0]
                    continue
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """
        @param name: header name.
        @return: all values in order; list headers are split at commas.
        """
        key = _key(name)
        if key in LIST_HEADERS:
            out: list[str] = []
            for k, _, value in self._items:
                if k == key:
                    out.extend(split_list(value))
            return out
        return [value for k, _, value in self._items if k == key]

    def add(self, name: str, value: str, prepend: bool = False) -> None:
        """
        Add a header line.

        @param name: header name.
        @param value: header value (converted with C{str()}).
        @param prepend: put it before the first existing header of that name
            (or at the very top if there is none), as a proxy adds a Via.
        @raise ValueError: for a name that is not a token or a value with
            CR, LF or NUL (header injection).
        """
        key, spelling = _checked_name(name)
        entry = (key, spelling, _checked_value(name, value))
        if prepend:
            for i, item in enumerate(self._items):
                if item[0] == key:
                    self._items.insert(i, entry)
                    return
            self._items.insert(0, entry)
        else:
            self._items.append(entry)

    def set(self, name: str, value: str) -> None:
        """
        Replace every line of this header by one line with C{value}, at the
        position of the first one (appended if absent).

        @param name: header name.
        @param value: the new value.
        @raise ValueError: as for L{add}.
        """
        key, spelling = _checked_name(name)
        entry = (key, spelling, _checked_value(name, value))
        items = self._items
        for i, item in enumerate(items):
            if item[0] == key:
                items[i] = entry
                self._items = items[: i + 1] + [x for x in items[i + 1 :] if x[0] != key]
                return
        items.append(entry)

    def replace_first(self, name: str, value: str) -> None:
        """
        Replace only the first value of a (list) header, e.g. the top Via
        after adding C{received}/C{rport}; other values keep their order.

        @param name: header name.
        @param value: the new first value.
        @raise KeyError: when the header is absent.
        @raise ValueError: as for L{add}.
        """
        key, spelling = _checked_name(name)
        value = _checked_value(name, value)
        for i, (k, sp, old) in enumerate(self._items):
            if k == key:
                if key in LIST_HEADERS and "," in old:
                    rest = split_list(old)[1:]
                    new = [(key, sp, value)] + [(key, sp, r) for r in rest]
                    self._items[i : i + 1] = new
                else:
                    self._items[i] = (key, sp, value)
                return
        raise KeyError(name)

    def remove(self, name: str) -> int:
        """
        Remove every line of a header.

        @param name: header name.
        @return: the number of lines removed.
        """
        key = _key(name)
        before = len(self._items)
        self._items = [x for x in self._items if x[0] != key]
        return before - len(self._items)

    def remove_first(self, name: str) -> str | None:
        """
        Remove the first value of a header (e.g. a client's own top Via).

        @param name: header name.
        @return: the value removed, or C{None} when absent.
        """
        key = _key(name)
        for i, (k, sp, value) in enumerate(self._items):
            if k == key:
                if key in LIST_HEADERS and "," in value:
                    parts = split_list(value)
                    self._items[i : i + 1] = [(key, sp, r) for r in parts[1:]]
                    return parts[0] if parts else None
                del self._items[i]
                return value
        return None

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = _key(name)
        for item in self._items:
            if item[0] == key:
                return True
        return False

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """
        Iterate over C{(name, value)} lines in order, canonical spelling.
        """
        for _, spelling, value in self._items:
            yield spelling, value

    def items(self) -> list[tuple[str, str]]:
        """
        @return: the C{(name, value)} lines in order.
        """
        return [(spelling, value) for _, spelling, value in self._items]

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(k, v) for k, _, v in self._items] == [(k, v) for k, _, v in other._items]

    def __repr__(self) -> str:
        shown = []
        for key, spelling, value in self._items:
            if key in ("authorization", "proxy-authorization"):
                value = value.split(" ", 1)[0] + " <hidden>"
            shown.append((spelling, value))
        return f"Headers({shown!r})"


# --- parameters -----------------------------------------------------------

_PARAM_RE = re.compile(
    r'[ \t]*;[ \t]*([^ \t;=,?"<>]+)(?:[ \t]*=[ \t]*("(?:[^"\\]|\\.)*"|[^ \t;,?"<>]*))?'
)

_PARAM_BAD_RE = re.compile(r'[\x00-\x1f\x7f,?<>]')


def parse_params(text: str, what: str = "header") -> dict[str, str | None]:
    """
    Parse C{;name=value;flag} parameters (quoted values keep their quotes).

    @param text: the parameter string, starting with C{";"} (or empty).
    @param what: used in the error message.
    @return: dict lower-cased name -> value (C{None} for a flag).
    @raise SipParseError: on malformed parameters.
    """
    if not text:
        return {}
    if text[0] == ";" and '"' not in text and " " not in text and "\t" not in text:
        # fast path: no quoting, no whitespace
        if _PARAM_BAD_RE.search(text):
            raise SipParseError(400, f"Malformed {what} parameters")
        params: dict[str, str | None] = {}
        for part in text[1:].split(";"):
            name, eq, value = part.partition("=")
            if not name:
                raise SipParseError(400, f"Malformed {what} parameters")
            params[name.lower()] = value if eq else None
        return params
    params = {}
    pos = 0
    n = len(text)
    match = _PARAM_RE.match
    while pos < n:
        m = match(text, pos)
        if m is None:
            if text[pos:].strip(" \t") == "":
                break
            raise SipParseError(400, f"Malformed {what} parameters")
        params[m.group(1).lower()] = m.group(2)
        pos = m.end()
    return params


def format_params(params: dict[str, str | None]) -> str:
    """
    @param params: as returned by L{parse_params}.
    @return: the C{;name=value} string.
    """
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def quote_string(text: str) -> str:
    """
    @return: C{text} as a SIP quoted-string (escaping C{"} and C{\\}; CR,
        LF and NUL, which a quoted-string cannot carry, become spaces).
    """
    if "\r" in text or "\n" in text or "\x00" in text:
        text = text.replace("\r", " ").replace("\n", " ").replace("\x00", " ")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unquote_string(text: str) -> str:
    """
    @return: the content of a quoted-string (or C{text} unchanged when it is
        not quoted).
    """
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# --- Via ------------------------------------------------------------------

_VIA_RE = re.compile(
    r"[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*/[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)"
    r"[ \t]*/[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_\-.]+)(?:[ \t]*:[ \t]*([0-9]{1,5}))?"
)


class Via:
    """
    One Via value: C{SIP/2.0/UDP host:port;branch=z9hG4bK...;rport}.

    @ivar protocol: C{"SIP/2.0"}.
    @ivar transport: upper-case transport (C{"UDP"}, C{"TCP"}, C{"TLS"}...).
    @ivar host: sent-by host (IPv6 without brackets).
    @ivar port: sent-by port or C{None}.
    @ivar params: lower-case name -> value (C{None} for flags like rport).
    """

    __slots__ = ("protocol", "transport", "host", "port", "params")

    def __init__(
        self,
        transport: str,
        host: str,
        port: int | None = None,
        params: dict | None = None,
        protocol: str = "SIP/2.0",
    ) -> None:
        self.protocol = protocol
        self.transport = transport.upper()
        self.host = host
        self.port = port
        self.params = dict(params) if params else {}

    @classmethod
    def parse(cls, text: str) -> "Via":
        """
        @param text: one Via value.
        @return: a new L{Via}.
        @raise SipParseError: when malformed.
        """
        m = _VIA_RE.match(text)
        if m is None:
            raise SipParseError(400, f"Malformed Via: {text[:64]!r}")
        name, version, transport, host, port = m.groups()
        via = cls.__new__(cls)
        via.protocol = f"{name.upper()}/{version}"
        via.transport = transport.upper()
        if host[0] == "[":
            host = host[1:-1]
            if ":" not in host:
                raise SipParseError(400, "Bad IPv6 reference in Via")
        via.host = host
        if port is not None:
            via.port = int(port)
            if via.port > 65535:
                raise SipParseError(400, "Port out of range in Via")
        else:
            via.port = None
        rest = text[m.end() :]
        via.params = parse_params(rest, "Via") if rest.strip(" \t") else {}
        return via

    @property
    def branch(self) -> str | None:
        """
        @return: the branch parameter or C{None}.
        """
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        """
        @return: the received parameter or C{None}.
        """
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        """
        @return: the rport value as int; C{None} when absent or empty (use
            C{"rport" in via.params} to see whether it was requested).
        """
        value = self.params.get("rport")
        if value is None or not value.isdigit():
            return None
        return int(value)

    def __str__(self) -> str:
        out = f"{self.protocol}/{self.transport} {_format_host(self.host)}"
        if self.port is not None:
            out += f":{self.port}"
        if self.params:
            out += format_params(self.params)
        return out

    def __repr__(self) -> str:
        return f"Via({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Via):
            return NotImplemented
        return (
            self.protocol == other.protocol
            and self.transport == other.transport
            and self.host.lower() == other.host.lower()
            and self.port == other.port
            and self.params == other.params
        )

    __hash__ = None  # type: ignore[assignment]
