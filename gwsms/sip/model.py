# -*- test-case-name: tests.test_sip_message -*-
"""
SIP message objects: L{Request}, L{Response}, L{make_response} (RFC 3261
section 8.2.6), reason phrases and branch/tag/Call-ID generators.

Pure code: no I/O.  Header values are kept as text and parsed into
L{Via}/L{NameAddr}/L{SipURI} only when asked (cached per value).
Everything public is re-exported by L{gwsms.sip.message}; import from there.
"""

from __future__ import annotations

import re
import secrets
from typing import Iterable

from gwsms.sip.headers import Headers, SipParseError
from gwsms.sip.uri import GenericURI, NameAddr, SipURI, Via, parse_uri

__all__ = [
    "Message",
    "Request",
    "Response",
    "make_response",
    "reason_phrase",
    "generate_branch",
    "generate_tag",
    "generate_call_id",
    "BRANCH_MAGIC",
]

#: RFC 3261 branch magic cookie
BRANCH_MAGIC = "z9hG4bK"

_REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated",
    200: "OK", 202: "Accepted", 204: "No Notification",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily",
    305: "Use Proxy", 380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    406: "Not Acceptable", 407: "Proxy Authentication Required",
    408: "Request Timeout", 409: "Conflict", 410: "Gone", 411: "Length Required",
    412: "Conditional Request Failed", 413: "Request Entity Too Large",
    414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 417: "Unknown Resource-Priority",
    420: "Bad Extension", 421: "Extension Required",
    422: "Session Interval Too Small", 423: "Interval Too Brief",
    424: "Bad Location Information", 428: "Use Identity Header",
    429: "Provide Referrer Identity", 430: "Flow Failed",
    433: "Anonymity Disallowed", 436: "Bad Identity-Info",
    437: "Unsupported Certificate", 438: "Invalid Identity Header",
    439: "First Hop Lacks Outbound Support", 440: "Max-Breadth Exceeded",
    469: "Bad Info Package", 470: "Consent Needed",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete",
    485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending",
    493: "Undecipherable", 494: "Security Agreement Required",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out",
    505: "Version Not Supported", 513: "Message Too Large",
    555: "Push Notification Service Not Supported",
    580: "Precondition Failure",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
    606: "Not Acceptable", 607: "Unwanted", 608: "Rejected",
}
_CLASS_REASONS = {1: "Provisional", 2: "Success", 3: "Redirection",
                  4: "Client Error", 5: "Server Error", 6: "Global Failure"}


def reason_phrase(status: int) -> str:
    """
    @param status: SIP status code 100-699.
    @return: the standard reason phrase (or a generic one for its class).
    """
    return _REASONS.get(status) or _CLASS_REASONS.get(status // 100, "Unknown")


def generate_branch() -> str:
    """
    @return: a new RFC 3261 branch (C{z9hG4bK} + 64 random bits in hex).
    """
    return BRANCH_MAGIC + secrets.token_hex(8)


def generate_tag() -> str:
    """
    @return: a new random From/To tag (64 random bits in hex).
    """
    return secrets.token_hex(8)


def generate_call_id(host: str | None = None) -> str:
    """
    @param host: optional host to append as C{@host}.
    @return: a new random Call-ID (96 random bits in hex).
    """
    value = secrets.token_hex(12)
    return f"{value}@{host}" if host else value


class Message:
    """
    Common part of L{Request} and L{Response}.

    The parsed views (L{top_via}, L{from_}, L{to}, L{cseq}, ...) are parsed
    on first use and cached per header value; the objects returned are
    shared, so copy one before changing it, or write it back (e.g.
    C{headers.replace_first("Via", str(via))}).

    @ivar headers: L{Headers} (used as given, not copied).
    @ivar body: raw body bytes (never decoded).
    """

    __slots__ = ("headers", "body", "_cache")

    def __init__(self, headers: Headers | Iterable | None, body: bytes) -> None:
        if not isinstance(headers, Headers):
            headers = Headers(headers)
        self.headers = headers
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.body = bytes(body)
        self._cache: dict = {}

    is_request = False

    def _parsed(self, name: str, parser):  # type: ignore[no-untyped-def]
        raw = self.headers.get(name)
        if raw is None:
            return None
        key = (name, raw)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = parser(raw)
        return found

    @property
    def call_id(self) -> str | None:
        """
        @return: the Call-ID value or C{None}.
        """
        return self.headers.get("Call-ID")

    @property
    def cseq(self) -> tuple[int, str]:
        """
        @return: C{(number, method)} of the CSeq header.
        @raise SipParseError: when CSeq is missing or malformed.
        """
        found = self._parsed("CSeq", _parse_cseq)
        if found is None:
            raise SipParseError(400, "Missing CSeq header")
        return found

    @property
    def top_via(self) -> Via | None:
        """
        @return: the first Via (L{Via}), C{None} when there is none.
        @raise SipParseError: when it is malformed.
        """
        return self._parsed("Via", Via.parse)

    @property
    def vias(self) -> list[Via]:
        """
        @return: every Via value, top first.
        @raise SipParseError: when one is malformed.
        """
        return [Via.parse(v) for v in self.headers.get_all("Via")]

    @property
    def from_(self) -> NameAddr | None:
        """
        @return: the From header as L{NameAddr}, C{None} when absent.
        @raise SipParseError: when malformed.
        """
        return self._parsed("From", NameAddr.parse)

    @property
    def to(self) -> NameAddr | None:
        """
        @return: the To header as L{NameAddr}, C{None} when absent.
        @raise SipParseError: when malformed.
        """
        return self._parsed("To", NameAddr.parse)

    @property
    def contacts(self) -> list[NameAddr]:
        """
        @return: every Contact value (possibly the wildcard C{*}).
        @raise SipParseError: when one is malformed.
        """
        return [NameAddr.parse(v) for v in self.headers.get_all("Contact")]

    @property
    def content_type(self) -> str | None:
        """
        @return: the Content-Type value (with its parameters) or C{None}.
        """
        return self.headers.get("Content-Type")

    def _int_header(self, name: str) -> int | None:
        value = self.headers.get(name)
        if value is None:
            return None
        value = value.strip()
        if not value.isdigit() or not value.isascii():
            raise SipParseError(400, f"Bad {name} value")
        return int(value)

    @property
    def max_forwards(self) -> int | None:
        """
        @return: Max-Forwards as int, C{None} when absent.
        @raise SipParseError: when not a number.
        """
        return self._int_header("Max-Forwards")

    @property
    def expires(self) -> int | None:
        """
        @return: the Expires header as int, C{None} when absent.
        @raise SipParseError: when not a number.
        """
        return self._int_header("Expires")

    def _first_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """
        Serialise; Content-Length is set (or overwritten in place) to the
        exact body length.  Does not change this object.

        @return: the wire form.
        """
        clen = f"Content-Length: {len(self.body)}\r\n"
        lines = [self._first_line(), "\r\n"]
        done = False
        for key, name, value in self.headers._items:
            if key == "content-length":
                if not done:
                    lines.append(clen)
                    done = True
                continue
            lines.append(f"{name}: {value}\r\n")
        if not done:
            lines.append(clen)
        lines.append("\r\n")
        return "".join(lines).encode("utf-8", "surrogateescape") + self.body

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    def _headers_for_eq(self) -> list:
        return [(k, v) for k, _, v in self.headers._items if k != "content-length"]


class Request(Message):
    """
    A SIP request.

    @ivar method: the method (case-sensitive, e.g. C{"MESSAGE"}).
    @ivar uri: the Request-URI as text.
    """

    __slots__ = ("method", "uri")
    is_request = True

    def __init__(
        self,
        method: str,
        uri: str | SipURI,
        headers: Headers | Iterable | None = None,
        body: bytes = b"",
    ) -> None:
        """
        @param method: request method token.
        @param uri: Request-URI (text or L{SipURI}).
        @param headers: L{Headers} or C{(name, value)} pairs.
        @param body: body bytes (str is encoded as UTF-8).
        @raise ValueError: for a method that is not a token or a URI with
            whitespace.
        """
        Message.__init__(self, headers, body)
        uri = str(uri)
        if not isinstance(method, str) or not _METHOD_RE.match(method):
            raise ValueError(f"Invalid SIP method {method!r}")
        if not uri or any(c in uri for c in " \t\r\n\x00"):
            raise ValueError(f"Invalid Request-URI {uri[:64]!r}")
        self.method = method
        self.uri = uri

    @property
    def request_uri(self) -> SipURI | GenericURI:
        """
        @return: the Request-URI parsed (cached).
        @raise SipParseError: when malformed.
        """
        key = ("", self.uri)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = parse_uri(self.uri)
        return found

    def _first_line(self) -> str:
        return f"{self.method} {self.uri} SIP/2.0"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return (
            self.method == other.method
            and self.uri == other.uri
            and self.body == other.body
            and self._headers_for_eq() == other._headers_for_eq()
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri} call_id={self.call_id!r}>"


class Response(Message):
    """
    A SIP response.

    @ivar status: status code 100-699.
    @ivar reason: reason phrase.
    """

    __slots__ = ("status", "reason")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | Iterable | None = None,
        body: bytes = b"",
    ) -> None:
        """
        @param status: status code.
        @param reason: reason phrase; default from L{reason_phrase}.
        @param headers: L{Headers} or C{(name, value)} pairs.
        @param body: body bytes.
        @raise ValueError: for a status outside 100-699 or CR/LF in reason.
        """
        Message.__init__(self, headers, body)
        status = int(status)
        if not 100 <= status <= 699:
            raise ValueError(f"SIP status code out of range: {status}")
        if reason is None:
            reason = reason_phrase(status)
        elif "\r" in reason or "\n" in reason:
            raise ValueError("CR or LF in SIP reason phrase")
        self.status = status
        self.reason = reason

    @property
    def is_final(self) -> bool:
        """
        @return: C{True} for a final (>= 200) response.
        """
        return self.status >= 200

    def _first_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Response):
            return NotImplemented
        return (
            self.status == other.status
            and self.reason == other.reason
            and self.body == other.body
            and self._headers_for_eq() == other._headers_for_eq()
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason} call_id={self.call_id!r}>"

_KNOWN_METHODS = frozenset(
    "MESSAGE OPTIONS REGISTER INVITE ACK BYE CANCEL INFO NOTIFY SUBSCRIBE PUBLISH "
    "REFER UPDATE PRACK".split()
)
_METHOD_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")

def _parse_cseq(value: str, method: str | None = None) -> tuple[int, str]:
    number, _, rest = value.strip().partition(" ")
    rest = rest.strip()
    if not number.isdigit() or not number.isascii() or len(number) > 10:
        raise SipParseError(400, "Malformed CSeq header")
    n = int(number)
    if n >= 2**31:
        raise SipParseError(400, "CSeq number out of range")
    if rest != method and rest not in _KNOWN_METHODS and not _METHOD_RE.match(rest):
        raise SipParseError(400, "Malformed CSeq method")
    return n, rest

def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    headers: Headers | Iterable | dict | None = None,
    body: bytes = b"",
    to_tag: str | None = None,
) -> Response:
    """
    Build a response to C{request} per RFC 3261 section 8.2.6: all Via
    values in order, From, To (with C{to_tag} added when the To has no
    tag), Call-ID, CSeq, and Timestamp for 100 Trying.

    @param request: the L{Request} answered.
    @param status: status code 100-699.
    @param reason: reason phrase (default per L{reason_phrase}).
    @param headers: extra headers, as L{Headers}, pairs or a dict.
    @param body: body bytes.
    @param to_tag: tag to add to To when it has none.
    @return: a new L{Response}.
    @raise ValueError: for a bad status, reason, tag or extra header.
    """
    if not 100 <= int(status) <= 699:
        raise ValueError(f"SIP status code out of range: {status}")
    if to_tag is not None and not _METHOD_RE.match(to_tag):
        raise ValueError(f"Invalid To tag {to_tag!r}")
    src = request.headers
    items = []
    copied = ("via", "from", "to", "call-id", "cseq", "timestamp") if status == 100 else \
        ("via", "from", "to", "call-id", "cseq")
    for key, name, value in src._items:
        if key in copied:
            if key == "to" and to_tag is not None:
                try:
                    has_tag = request.to is not None and request.to.tag is not None
                except SipParseError:
                    has_tag = ";tag=" in value.lower()
                if not has_tag:
                    value = f"{value};tag={to_tag}"
            items.append((key, name, value))
    out = Headers._from_parsed(items)
    if headers is not None:
        if isinstance(headers, Headers):
            headers = headers.items()
        elif isinstance(headers, dict):
            headers = headers.items()
        for name, value in headers:
            out.add(name, value)
    return Response(status, reason, out, body)
