# -*- test-case-name: tests.test_core_cpim -*-
"""
message/cpim (RFC 3862) bodies, and the RFC 5438 IMDN headers in them.

A message/cpim body is::

    From: <sip:alice@example.com>          <- message headers (CPIM)
    To: <sip:bob@example.com>
    DateTime: 2024-01-01T12:00:00Z
    NS: imdn <urn:ietf:params:imdn>
    imdn.Message-ID: 34jk324j
    imdn.Disposition-Notification: positive-delivery, negative-delivery
                                           <- empty line
    Content-Type: text/plain; charset=utf-8 <- MIME headers of the content
                                           <- empty line
    Hello                                  <- content (bytes, untouched)

Lines end in CRLF; LF alone is accepted on input.  Also accepted: the
single-block form some RCS clients send (the C{Content-*} headers mixed
into the message headers, one empty line, then the content), and folded
(continued) header lines.

Header values are kept as text exactly as received (no CPIM backslash
unescaping); building refuses values containing CR, LF or NUL.

Pure code: no I/O.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field

__all__ = [
    "CpimError",
    "CpimMessage",
    "IMDN_NS",
    "parse_cpim",
    "build_cpim",
    "wants_imdn",
    "imdn_message_id",
    "parse_content_type",
]

#: The namespace URN of the RFC 5438 CPIM header extensions.
IMDN_NS = "urn:ietf:params:imdn"

_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_NS_RE = re.compile(r"\s*(?:([^\s<>.]+)\s*)?<([^<>\s]+)>\s*\Z")
_BAD_VALUE_RE = re.compile(r"[\r\n\x00]")


class CpimError(ValueError):
    """
    A message/cpim body that cannot be parsed or built; the message says
    what is wrong (and on which line).
    """


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """
    @param value: a Content-Type value, e.g. C{'text/plain; charset="UTF-8"'}.
    @return: (lower-case media type, parameters with lower-case names and
        unquoted values).
    """
    parts = value.split(";")
    media = parts[0].strip().lower()
    params: dict[str, str] = {}
    for part in parts[1:]:
        name, eq, val = part.partition("=")
        name = name.strip().lower()
        if not name:
            continue
        val = val.strip()
        if len(val) >= 2 and val[0] == val[-1] == '"':
            val = val[1:-1]
        params[name] = val
    return media, params


@dataclass
class CpimMessage:
    """
    A parsed message/cpim body.

    @ivar headers: the message headers in order, as (name, value) pairs,
        names as received (C{"From"}, C{"NS"}, C{"imdn.Message-ID"}, ...).
    @ivar content_type: the content's Content-Type value, as received.
    @ivar content_headers: the content's MIME headers in order (including
        Content-Type).
    @ivar content: the content, bytes untouched.
    """

    headers: list[tuple[str, str]]
    content_type: str
    content_headers: list[tuple[str, str]] = field(default_factory=list)
    content: bytes = b""

    @property
    def ns(self) -> dict[str, str]:
        """
        The namespace declarations (C{NS} headers): prefix -> URN; the
        default namespace (C{NS: <urn>}) has the prefix C{""}.

        @raise CpimError: for a malformed NS header.
        """
        out: dict[str, str] = {}
        for name, value in self.headers:
            if name.lower() == "ns":
                m = _NS_RE.match(value)
                if m is None:
                    raise CpimError(f"malformed NS header {value[:60]!r}: "
                                    "expected 'prefix <urn>' or '<urn>'")
                out[m.group(1) or ""] = m.group(2)
        return out

    def get_all(self, name: str) -> list[str]:
        """
        @param name: a header name, matched case-insensitively and
            literally (C{"To"}, or C{"imdn.Message-ID"} with its prefix).
        @return: the values of every such message header, in order.
        """
        lname = name.lower()
        return [v for n, v in self.headers if n.lower() == lname]

    def get(self, name: str) -> str | None:
        """
        @return: the first value of message header C{name}, or C{None}.
        """
        values = self.get_all(name)
        return values[0] if values else None

    def get_ns(self, urn: str, name: str, fallback_prefix: str | None = None) -> list[str]:
        """
        Values of a namespaced header, whatever prefix the sender bound to
        the namespace.

        @param urn: the namespace, e.g. L{IMDN_NS}.
        @param name: the header name inside it, e.g. C{"Message-ID"}.
        @param fallback_prefix: a prefix to accept when no NS header binds
            any prefix to C{urn} and this prefix is not bound to another
            one (senders that forget the NS declaration).
        @return: the values in order (empty when absent).
        """
        ns = self.ns
        prefixes = {p.lower() for p, u in ns.items() if u == urn}
        if not prefixes and fallback_prefix is not None and fallback_prefix not in ns:
            prefixes = {fallback_prefix.lower()}
        lname = name.lower()
        out = []
        for hname, value in self.headers:
            prefix, dot, local = hname.partition(".")
            if dot and prefix.lower() in prefixes and local.lower() == lname:
                out.append(value)
            elif not dot and "" in prefixes and hname.lower() == lname:
                out.append(value)
        return out

    def content_header(self, name: str) -> str | None:
        """
        @return: the first value of the content's MIME header C{name}
            (case-insensitive), or C{None}.
        """
        lname = name.lower()
        for n, v in self.content_headers:
            if n.lower() == lname:
                return v
        return None

    @property
    def media_type(self) -> str:
        """The content's media type, lower-case, without parameters."""
        return parse_content_type(self.content_type)[0]

    @property
    def charset(self) -> str | None:
        """The C{charset} parameter of the content type, or C{None}."""
        return parse_content_type(self.content_type)[1].get("charset")

    def text(self) -> str:
        """
        @return: the content decoded with its charset (UTF-8 by default).
        @raise CpimError: for an unknown charset or undecodable content.
        """
        charset = self.charset or "utf-8"
        try:
            codecs.lookup(charset)
        except LookupError:
            raise CpimError(f"unknown charset {charset[:40]!r} in CPIM content") from None
        try:
            return self.content.decode(charset)
        except UnicodeDecodeError as e:
            raise CpimError(f"CPIM content is not valid {charset}: {e.reason} "
                            f"at byte {e.start}") from None


def _read_block(data: bytes, pos: int, what: str) -> tuple[list[tuple[str, str]], int, bool]:
    """
    Read header lines from C{pos} up to an empty line.

    @return: (headers, position after the empty line, whether an empty
        line ended the block (C{False}: the data ended)).
    """
    headers: list[tuple[str, str]] = []
    lineno = 0
    while pos < len(data):
        eol = data.find(b"\n", pos)
        if eol < 0:
            line, pos = data[pos:], len(data)
        else:
            line, pos = data[pos:eol], eol + 1
        if line.endswith(b"\r"):
            line = line[:-1]
        lineno += 1
        if not line:
            return headers, pos, True
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise CpimError(f"{what} line {lineno} is not UTF-8: {line[:60]!r}") from None
        if text[0] in " \t":
            if not headers:
                raise CpimError(f"{what} line {lineno} starts with white space: "
                                f"{text[:60]!r}")
            name, value = headers[-1]
            headers[-1] = (name, (value + " " + text.strip()).strip())
            continue
        name, colon, value = text.partition(":")
        name = name.strip()
        if not colon or not _NAME_RE.match(name):
            raise CpimError(f"malformed {what} line {lineno}: {text[:60]!r} "
                            "(expected 'Name: value')")
        headers.append((name, value.strip()))
    return headers, pos, False


def parse_cpim(body: bytes) -> CpimMessage:
    """
    Parse a message/cpim body.

    @param body: the SIP (or MSRP) body whose Content-Type is message/cpim.
    @return: a L{CpimMessage}.  The content runs to the end of C{body};
        when the content headers carry a Content-Length and only white
        space follows that many bytes, the white space is dropped.
    @raise CpimError: malformed header lines, a message-header block not
        ended by an empty line, or no Content-Type for the content.
    """
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise CpimError(f"CPIM body must be bytes, not {type(body).__name__}")
    data = bytes(body)
    if not data.strip():
        raise CpimError("CPIM body is empty")
    headers, pos, ended = _read_block(data, 0, "CPIM header")
    if any(n.lower() == "content-type" for n, _ in headers):
        # Single-block form: Content-* headers among the message headers.
        content_headers = [(n, v) for n, v in headers if n.lower().startswith("content-")]
        headers = [(n, v) for n, v in headers if not n.lower().startswith("content-")]
        if not ended:
            pos = len(data)
    else:
        if not ended:
            raise CpimError("CPIM message headers are not followed by an empty line "
                            "and content headers")
        content_headers, pos, ended = _read_block(data, pos, "CPIM content header")
    content_type = next((v for n, v in content_headers if n.lower() == "content-type"), None)
    if not content_type:
        raise CpimError("CPIM content has no Content-Type header")
    content = data[pos:]
    length = next((v for n, v in content_headers if n.lower() == "content-length"), None)
    if length is not None and length.strip().isdigit():
        n = int(length)
        if n < len(content) and not content[n:].strip():
            content = content[:n]
    message = CpimMessage(headers, content_type, content_headers, content)
    _ = message.ns  # validates the NS headers (raises CpimError)
    return message


def _check_header(name: str, value: str) -> None:
    if not _NAME_RE.match(name):
        raise CpimError(f"invalid CPIM header name {name[:40]!r}")
    if _BAD_VALUE_RE.search(value):
        raise CpimError(f"CPIM header {name} value contains CR, LF or NUL: {value[:40]!r}")


def _addr(uri: str) -> str:
    uri = uri.strip()
    return uri if "<" in uri else f"<{uri}>"


def build_cpim(
    from_uri: str,
    to_uri: "str | list[str]",
    content_type: str,
    content: bytes,
    headers: "list[tuple[str, str]] | tuple" = (),
    ns: "dict[str, str] | None" = None,
    *,
    datetime: str | None = None,
    content_headers: "list[tuple[str, str]] | tuple" = (),
    content_length: bool = True,
) -> bytes:
    """
    Build a message/cpim body (CRLF line ends).

    Order: From, To (one per recipient), DateTime, NS declarations,
    C{headers}; empty line; Content-Type, C{content_headers},
    Content-Length; empty line; content.

    @param from_uri: sender URI (C{"sip:a@example.com"}) or name-addr
        (C{"Alice <im:alice@example.com>"}); a bare URI gets C{<>}.
    @param to_uri: recipient URI / name-addr, or a list of them.
    @param content_type: e.g. C{"text/plain;charset=UTF-8"}.
    @param content: the content bytes.
    @param headers: further message headers, (name, value) in order, names
        with their prefix (C{("imdn.Message-ID", "x1")}).
    @param ns: namespace declarations, prefix -> URN (C{""} for a default
        namespace), e.g. C{{"imdn": IMDN_NS}}.
    @param datetime: DateTime value (RFC 3339), or C{None} to leave it out.
    @param content_headers: further MIME headers of the content.
    @param content_length: add a Content-Length content header.
    @return: the body.
    @raise CpimError: for header names or values that cannot be written.
    """
    if not content_type or not content_type.strip():
        raise CpimError("CPIM content type is empty")
    if not isinstance(content, (bytes, bytearray)):
        raise CpimError(f"CPIM content must be bytes, not {type(content).__name__}")
    lines: list[tuple[str, str]] = [("From", _addr(from_uri))]
    for to in [to_uri] if isinstance(to_uri, str) else to_uri:
        lines.append(("To", _addr(to)))
    if datetime is not None:
        lines.append(("DateTime", datetime))
    for prefix, urn in (ns or {}).items():
        if prefix and not _NAME_RE.match(prefix) or "." in prefix:
            raise CpimError(f"invalid CPIM namespace prefix {prefix[:40]!r}")
        if not urn or _BAD_VALUE_RE.search(urn) or any(c in urn for c in "<> "):
            raise CpimError(f"invalid CPIM namespace URN {urn[:60]!r}")
        lines.append(("NS", f"{prefix} <{urn}>" if prefix else f"<{urn}>"))
    lines.extend(headers)
    mime = [("Content-Type", content_type.strip()), *content_headers]
    if content_length:
        mime.append(("Content-Length", str(len(content))))
    out = []
    for block in (lines, mime):
        for name, value in block:
            _check_header(name, value)
            out.append(f"{name}: {value}\r\n")
        out.append("\r\n")
    return "".join(out).encode("utf-8") + bytes(content)


def imdn_message_id(cpim: CpimMessage) -> str | None:
    """
    @param cpim: a parsed message.
    @return: its C{imdn.Message-ID} (under whatever prefix is bound to
        L{IMDN_NS}), or C{None}.
    """
    values = cpim.get_ns(IMDN_NS, "Message-ID", fallback_prefix="imdn")
    return values[0].strip() if values and values[0].strip() else None


def wants_imdn(cpim: CpimMessage) -> set[str]:
    """
    Which disposition notifications the sender asked for (RFC 5438 §6).

    @param cpim: a parsed message.
    @return: the lower-cased values of every C{Disposition-Notification}
        header in the IMDN namespace, e.g.
        C{{"positive-delivery", "negative-delivery", "display"}}; empty
        when none was asked for or when the message has no
        C{imdn.Message-ID} (a notification cannot refer to it then).
    """
    if imdn_message_id(cpim) is None:
        return set()
    wanted: set[str] = set()
    for value in cpim.get_ns(IMDN_NS, "Disposition-Notification", fallback_prefix="imdn"):
        wanted.update(v.strip().lower() for v in value.split(",") if v.strip())
    return wanted
