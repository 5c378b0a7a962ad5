# -*- test-case-name: tests.test_sip_message -*-
"""
SIP message codec: bytes <-> L{Request}/L{Response} (RFC 3261 sections 7,
18.3, 20 and 25; RFC 3428; RFC 3581; RFC 5626 keep-alives).

Pure code: no I/O, no reactor.  This is the one module to import from; it
re-exports the objects defined in L{gwsms.sip.headers} (L{Headers},
L{SipError}, L{SipParseError}, L{Via}), L{gwsms.sip.uri} (L{SipURI},
L{NameAddr}) and L{gwsms.sip.model} (L{Request}, L{Response}, L{make_response},
generators).

  - L{parse_message}C{(data)} parses one datagram (L{is_keepalive} tells
    CRLF/NUL keep-alive datagrams apart first).
  - L{StreamParser}C{(max_size)}C{.feed(data)} frames a TCP/TLS stream by
    Content-Length and returns messages, L{KeepAlive} items (answer with
    L{PONG}) and L{SipParseError} items (the stream resynchronises).
  - Header values stay text until asked: C{msg.top_via}, C{msg.from_},
    C{msg.to}, C{msg.contacts}, C{msg.cseq}, C{msg.request_uri} parse on
    first use and are cached per value.

Errors: L{SipParseError} with C{.status} (400; 505 for a SIP version other
than 2.0; 513 over a size limit; 416 for an unsupported URI scheme),
C{.reason} (names the problem; no CR/LF, fit for a reason phrase) and
C{.message} (the partly parsed message when the header block was readable,
so a 400 can still be answered).
"""

from __future__ import annotations

import re

from gwsms.sip.headers import (
    COMPACT_FORMS,
    LIST_HEADERS,
    Headers,
    SipError,
    SipParseError,
    _CANON,
    canonical_name,
    split_list,
)
from gwsms.sip.model import (
    _KNOWN_METHODS,
    _METHOD_RE,
    BRANCH_MAGIC,
    Message,
    Request,
    Response,
    _parse_cseq,
    generate_branch,
    generate_call_id,
    generate_tag,
    make_response,
    reason_phrase,
)
from gwsms.sip.uri import GenericURI, NameAddr, SipURI, Via, parse_uri

__all__ = [
    "SipError",
    "SipParseError",
    "Headers",
    "COMPACT_FORMS",
    "LIST_HEADERS",
    "split_list",
    "SipURI",
    "GenericURI",
    "NameAddr",
    "Via",
    "parse_uri",
    "Message",
    "Request",
    "Response",
    "KeepAlive",
    "parse_message",
    "is_keepalive",
    "StreamParser",
    "make_response",
    "reason_phrase",
    "generate_branch",
    "generate_tag",
    "generate_call_id",
    "BRANCH_MAGIC",
    "PING",
    "PONG",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_MAX_HEADERS",
    "DEFAULT_MAX_LINE",
]

#: RFC 5626 keep-alive ping (double CRLF) and pong (single CRLF)
PING = b"\r\n\r\n"
PONG = b"\r\n"

DEFAULT_MAX_SIZE = 65535
DEFAULT_MAX_HEADERS = 256
DEFAULT_MAX_LINE = 8192


class KeepAlive:
    """
    A RFC 5626 CRLFCRLF ping seen on a stream; the transport should answer
    with L{PONG} (one CRLF).  Returned by L{StreamParser.feed}.
    """

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeepAlive)

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "KeepAlive()"


# --- parsing --------------------------------------------------------------

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
_CL_SCAN_RE = re.compile(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*([0-9]{1,10})[ \t]*\r?$")


#: exact spellings seen on the wire -> (key, canonical spelling); read-only
_EXACT_NAMES: dict[str, tuple[str, str]] = {}
for _lower, _found in _CANON.items():
    _EXACT_NAMES[_lower] = _found
    _EXACT_NAMES[_found[1]] = _found
    _EXACT_NAMES[_lower.title()] = _found
    if len(_lower) == 1:
        _EXACT_NAMES[_lower.upper()] = _found
del _lower, _found


class _Folded(Exception):
    """
    Internal: a continuation line was met; unfold and parse again.
    """


def _unfold(lines: list[str]) -> list[str]:
    unfolded: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            if not unfolded or not unfolded[-1]:
                raise SipParseError(400, "Continuation line before first header")
            unfolded[-1] = unfolded[-1].rstrip(" \t") + " " + line.strip(" \t")
        else:
            unfolded.append(line)
    return unfolded


def _slow_header(line: str) -> tuple[str, str, str]:
    if line[:1] in (" ", "\t"):
        raise _Folded()
    name, sep, value = line.partition(":")
    if not sep:
        raise SipParseError(400, f"Malformed header line (no colon): {line[:40]!r}")
    name = name.rstrip(" \t")
    if not (name.isascii() and name.replace("-", "").isalnum()) and not _TOKEN_RE.match(name):
        raise SipParseError(400, f"Malformed header name: {name[:40]!r}")
    key, spelling = canonical_name(name)
    return key, spelling, value.strip(" \t")

def _parse_head(head: bytes, max_headers: int, max_line: int) -> Message:
    """
    Parse a start line and header block (without the empty line).
    """
    text = head.decode("utf-8", "surrogateescape")
    lines = text.split("\r\n")
    if text.count("\n") != len(lines) - 1:
        # bare LF line ends (tolerated)
        lines = [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]
        if any("\r" in ln for ln in lines):
            raise SipParseError(400, "Stray CR in header block")
    elif text.count("\r") != len(lines) - 1:
        raise SipParseError(400, "Stray CR in header block")
    first = lines[0]
    if len(first) > max_line:
        raise SipParseError(400, f"Start line too long (limit {max_line})")
    header_lines = lines[1:]
    if len(header_lines) > max_headers:
        raise SipParseError(400, f"Too many header fields (limit {max_headers})")
    exact = _EXACT_NAMES.get
    try:
        items = [
            (f[0], f[1], p[2].strip(" \t"))
            if (f := exact((p := line.partition(":"))[0])) is not None
            else _slow_header(line)
            for line in header_lines
        ]
    except _Folded:
        header_lines = _unfold(header_lines)
        if len(header_lines) > max_headers:
            raise SipParseError(400, f"Too many header fields (limit {max_headers})") from None
        try:
            items = [_slow_header(line) for line in header_lines]
        except _Folded:  # pragma: no cover -- _unfold leaves no such line
            raise SipParseError(400, "Malformed header folding") from None
    if len(text) > max_line and max(map(len, header_lines), default=0) > max_line:
        raise SipParseError(400, f"Header line too long (limit {max_line})")
    headers = Headers._from_parsed(items)
    # start line
    if first[:4].upper() == "SIP/":
        version, _, rest = first.partition(" ")
        if version.upper() != "SIP/2.0":
            raise SipParseError(505, f"Unsupported SIP version {version[:16]!r}")
        code, _, reason = rest.partition(" ")
        if len(code) != 3 or not code.isdigit() or not code.isascii():
            raise SipParseError(400, f"Malformed status code {code[:16]!r}")
        status = int(code)
        if not 100 <= status <= 699:
            raise SipParseError(400, f"Status code out of range: {status}")
        msg: Message = Response.__new__(Response)
        msg.status = status
        msg.reason = reason
    else:
        parts = first.split(" ")
        if len(parts) != 3:
            raise SipParseError(400, f"Malformed request line: {first[:64]!r}")
        method, uri, version = parts
        if method not in _KNOWN_METHODS and not _METHOD_RE.match(method):
            raise SipParseError(400, f"Malformed method {method[:16]!r}")
        if version.upper() != "SIP/2.0":
            if version[:4].upper() == "SIP/":
                raise SipParseError(505, f"Unsupported SIP version {version[:16]!r}")
            raise SipParseError(400, f"Malformed request line: {first[:64]!r}")
        if ":" not in uri or not uri[0].isalpha():
            raise SipParseError(400, f"Malformed Request-URI {uri[:64]!r}")
        msg = Request.__new__(Request)
        msg.method = method
        msg.uri = uri
    msg.headers = headers
    msg.body = b""
    msg._cache = {}
    return msg


def _clen_value(value: str, msg: Message) -> int:
    value = value.strip()
    if not value.isdigit() or not value.isascii() or len(value) > 10:
        raise SipParseError(400, f"Bad Content-Length value {value[:16]!r}", msg)
    return int(value)


def _content_length(msg: Message) -> tuple[int | None, dict[str, str]]:
    """
    @return: (Content-Length or C{None} when absent, first value by key).
    @raise SipParseError: for a bad or conflicting Content-Length.
    """
    items = msg.headers._items
    firsts = {k: v for k, _, v in reversed(items)}
    raw = firsts.get("content-length")
    clen = None
    if raw is not None:
        clen = _clen_value(raw, msg)
        if len(firsts) != len(items):
            for key, _, value in items:
                if key == "content-length" and _clen_value(value, msg) != clen:
                    raise SipParseError(400, "Conflicting Content-Length headers", msg)
    return clen, firsts


def _validate(msg: Message, firsts: dict[str, str]) -> None:
    """
    Check the headers every transaction needs: Via/From/To/Call-ID/CSeq
    present, CSeq and the top Via parse (cached on the message), the CSeq
    method matches the request method.

    @param firsts: first value by header key, from L{_content_length}.
    @raise SipParseError: naming the problem, with C{.message} set.
    """
    for key, name in _REQUIRED:
        if key not in firsts:
            raise SipParseError(400, f"Missing {name} header", msg)
    cache = msg._cache
    is_request = msg.is_request
    try:
        raw = firsts["cseq"]
        method = msg.method if is_request else None  # type: ignore[attr-defined]
        cseq = cache[("CSeq", raw)] = _parse_cseq(raw, method)
        raw = firsts["via"]
        if "," in raw:
            raw = (split_list(raw) or [raw])[0]
        cache[("Via", raw)] = Via.parse(raw)
    except SipParseError as e:
        raise SipParseError(e.status, e.reason, msg) from None
    if is_request and cseq[1] != method:
        raise SipParseError(400, "CSeq method does not match request method", msg)


_REQUIRED = (("via", "Via"), ("from", "From"), ("to", "To"), ("call-id", "Call-ID"),
             ("cseq", "CSeq"))


def _find_head_end(data: bytes | bytearray, start: int = 0) -> tuple[int, int]:
    """
    @return: (index of the blank line, length of the separator) or (-1, 0).
    """
    idx = data.find(b"\r\n\r\n", start)
    if idx >= 0:
        return idx, 4
    # bare-LF line ends (tolerated; only looked for when there is no CRLFCRLF)
    return data.find(b"\n\n", start), 2


def _find_stream_head_end(data: bytearray, start: int) -> tuple[int, int]:
    """
    Like L{_find_head_end} but the earliest of CRLFCRLF and LFLF, so that
    the split does not depend on how the stream was segmented.
    """
    idx = data.find(b"\r\n\r\n", start)
    lf = data.find(b"\n\n", start, idx if idx >= 0 else len(data))
    if lf >= 0:
        return lf, 2
    return idx, 4


def is_keepalive(data: bytes) -> bool:
    """
    Whether a datagram is a keep-alive rather than a message: only CR, LF,
    spaces or NULs (CRLF and CRLFCRLF as sent by many UAs over UDP, NUL
    bytes as sent by some NAT keep-alive implementations).

    @param data: a datagram.
    @return: C{True} for a keep-alive (to be ignored, not answered).
    """
    return len(data) <= 16 and not data.strip(b"\r\n \x00")


def parse_message(
    data: bytes,
    max_size: int | None = DEFAULT_MAX_SIZE,
    max_headers: int = DEFAULT_MAX_HEADERS,
    max_line: int = DEFAULT_MAX_LINE,
    validate: bool = True,
) -> Request | Response:
    """
    Parse one whole message (one UDP datagram).

    Content-Length is optional; when present a longer body is truncated to
    it and a shorter one is an error (RFC 3261 section 18.3).

    @param data: the datagram.
    @param max_size: size limit in bytes (C{None}: no limit) -> 513.
    @param max_headers: header line limit -> 400.
    @param max_line: line length limit -> 400.
    @param validate: check Via/From/To/Call-ID/CSeq are present and that
        CSeq and the top Via parse.
    @return: a L{Request} or L{Response}.
    @raise SipParseError: naming what is wrong; C{.message} holds the
        partly parsed message when the header block was readable.
    """
    if max_size is not None and len(data) > max_size:
        raise SipParseError(513, f"Message Too Large ({len(data)} bytes, limit {max_size})")
    start = 0
    while data.startswith(b"\r\n", start):
        start += 2
    end, sep = _find_head_end(data, start)
    if end < 0:
        # no blank line: header block up to the end (tolerated on UDP)
        head = data[start:].rstrip(b"\r\n")
        if not head:
            raise SipParseError(400, "Empty message")
        body = b""
    else:
        head = data[start:end]
        body = data[end + sep:]
    msg = _parse_head(bytes(head), max_headers, max_line)
    clen, firsts = _content_length(msg)
    if validate:
        _validate(msg, firsts)
    if clen is not None:
        if clen > len(body):
            raise SipParseError(
                400, f"Body shorter than Content-Length ({len(body)} < {clen})", msg)
        if clen < len(body):
            body = body[:clen]
    msg.body = bytes(body)
    return msg


class StreamParser:
    """
    Frames SIP messages on a stream (TCP/TLS) by Content-Length.

    L{feed} returns, in order, L{Request}/L{Response} objects, L{KeepAlive}
    items for RFC 5626 CRLFCRLF pings, and L{SipParseError} instances for
    malformed messages; after an error the parser resynchronises at the
    next message (skipping the bad message's body when its Content-Length
    is readable, else dropping bytes up to the next blank line).
    """

    _HEAD, _BODY, _SKIP, _DISCARD = range(4)

    def __init__(
        self,
        max_size: int = DEFAULT_MAX_SIZE,
        max_headers: int = DEFAULT_MAX_HEADERS,
        max_line: int = DEFAULT_MAX_LINE,
        validate: bool = True,
    ) -> None:
        """
        @param max_size: limit for one message (header block + body).
        @param max_headers: header line limit.
        @param max_line: line length limit.
        @param validate: as for L{parse_message}.
        """
        self.max_size = max_size
        self.max_headers = max_headers
        self.max_line = max_line
        self.validate = validate
        self._buf = bytearray()
        self._state = self._HEAD
        self._scan = 0          # where to resume searching for the blank line
        self._pending: Message | None = None
        self._need = 0          # body bytes wanted (BODY) or to skip (SKIP)

    @property
    def buffered(self) -> int:
        """
        @return: bytes held waiting for the rest of a message.
        """
        return len(self._buf)

    def feed(self, data: bytes) -> list[Request | Response | KeepAlive | SipParseError]:
        """
        @param data: bytes received.
        @return: the complete items now available, in order.
        """
        buf = self._buf
        buf += data
        out: list = []
        pos = 0
        n = len(buf)
        while pos < n:
            state = self._state
            if state == self._HEAD:
                # leading CRLFs: CRLFCRLF is a ping; a lone CRLF (pong) is skipped
                c = buf[pos]
                if c == 13 or c == 10:
                    if buf.startswith(b"\r\n\r\n", pos):
                        out.append(KeepAlive())
                        pos += 4
                        continue
                    rem = bytes(buf[pos : pos + 4])
                    if len(rem) < 4 and b"\r\n\r\n".startswith(rem):
                        break  # maybe the start of a ping: wait for more
                    pos += 2 if buf.startswith(b"\r\n", pos) else 1
                    continue
                end, sep = _find_stream_head_end(buf, max(pos, self._scan))
                if (end - pos if end >= 0 else n - pos - 3) > self.max_size:
                    # the same decision whatever the segmentation: drop
                    # everything up to the blank line ending this block
                    out.append(SipParseError(
                        513, f"Message Too Large (header block exceeds {self.max_size} bytes)"))
                    self._state = self._DISCARD
                    self._scan = 0
                    continue
                if end < 0:
                    self._scan = max(pos, n - 3)
                    break
                self._scan = 0
                head = bytes(buf[pos:end])
                pos = end + sep
                item = self._head_received(head)
                if item is not None:
                    out.append(item)
            elif state == self._BODY:
                if n - pos < self._need:
                    break
                msg = self._pending
                assert msg is not None
                msg.body = bytes(buf[pos : pos + self._need])
                pos += self._need
                self._pending = None
                self._state = self._HEAD
                out.append(msg)
            elif state == self._SKIP:
                take = min(self._need, n - pos)
                pos += take
                self._need -= take
                if self._need == 0:
                    self._state = self._HEAD
            else:  # _DISCARD: drop up to and including the next blank line
                end, sep = _find_stream_head_end(buf, pos)
                if end < 0:
                    pos = max(pos, n - 3)
                    break
                pos = end + sep
                self._state = self._HEAD
        del buf[:pos]
        self._scan = max(0, self._scan - pos)
        return out

    def _head_received(self, head: bytes) -> Message | SipParseError | None:
        try:
            msg = _parse_head(head, self.max_headers, self.max_line)
            clen, firsts = _content_length(msg)
        except SipParseError as e:
            m = _CL_SCAN_RE.search(head)
            if m is not None and int(m.group(1)) <= self.max_size:
                self._need = int(m.group(1))
                self._state = self._SKIP if self._need else self._HEAD
            return e
        if clen is None:
            return SipParseError(400, "Missing Content-Length on stream transport", msg)
        if len(head) + clen > self.max_size:
            # skip a body of bounded size; else resynchronise at a blank line
            if clen <= self.max_size:
                self._need = clen
                self._state = self._SKIP
            else:
                self._state = self._DISCARD
            return SipParseError(
                513, f"Message Too Large (Content-Length {clen}, limit {self.max_size})", msg)
        if self.validate:
            try:
                _validate(msg, firsts)
            except SipParseError as e:
                self._need = clen
                self._state = self._SKIP if clen else self._HEAD
                return e
        if clen == 0:
            return msg
        self._pending = msg
        self._need = clen
        self._state = self._BODY
        return None
