# -*- test-case-name: tests.test_core_fastmt -*-
"""
SIP on the raw datagram, for the hot-path lanes (L{gwsms.core.fastmt}).

Only what a lane needs, read once with plain byte operations: the header
fields of a request (L{scan_request}), the fields a response copies with
the top Via stamped (L{response_echo}), a From/To value's URI and tag
(L{name_addr}) and shared status lines (L{status_line}).  Anything these
functions do not recognise is C{None}: the full parser
(L{gwsms.sip.message}) and its precise errors take over.
"""

from __future__ import annotations

import re

from gwsms.sip.interfaces import SipAnswer

#: header slots of L{scan_request}'s C{found} list
VIA, FROM, TO, CALL_ID, CSEQ, CTYPE, CLEN, MAXF, REQUIRE, CENC = range(10)
#: header names read (full and compact forms) -> slot
NAMES = {
    b"via": VIA, b"v": VIA, b"from": FROM, b"f": FROM, b"to": TO, b"t": TO,
    b"call-id": CALL_ID, b"i": CALL_ID, b"cseq": CSEQ, b"content-type": CTYPE,
    b"c": CTYPE, b"content-length": CLEN, b"l": CLEN, b"max-forwards": MAXF,
    b"require": REQUIRE, b"content-encoding": CENC, b"e": CENC,
}
#: Content-Type values of plain text (lower case, spaces removed) -> codec
PLAIN_TEXT = {b"text/plain": "utf-8", b"text/plain;charset=utf-8": "utf-8",
              b"text/plain;charset=\"utf-8\"": "utf-8", b"text/plain;charset=us-ascii": "ascii"}
#: a header name (RFC 3261 25.1 token)
_TOKEN = re.compile(rb"[A-Za-z0-9\-.!%*_+`'~]+\Z").match
#: a tag parameter in a To value
TO_TAG = re.compile(rb";[ \t]*tag[ \t]*=", re.IGNORECASE)


def _spellings(name: bytes) -> set:
    return {name, name.upper(), b"-".join(part.capitalize() for part in name.split(b"-"))}


#: header names as they are usually spelt -> slot (L{NAMES}'), or L{_OTHER}
#: for common names the lane does not read: one dictionary look-up per
#: line for these, the general rules (any case, space before the colon)
#: for the rest
_OTHER = -1
_SPELT = {form: slot for name, slot in NAMES.items() for form in _spellings(name)}
_SPELT.update({b"Call-ID": CALL_ID, b"CSeq": CSEQ})
_SPELT.update((form, _OTHER) for name in (
    b"contact", b"user-agent", b"allow", b"supported", b"expires", b"date", b"subject",
    b"accept", b"record-route", b"route", b"p-asserted-identity", b"server", b"priority",
    b"timestamp", b"organization", b"allow-events", b"accept-contact", b"x-sender")
    for form in _spellings(name))
#: slots whose line index is kept (copied into responses); the others keep the value
_BY_LINE = frozenset((FROM, TO, CALL_ID, CSEQ))


def scan_request(data: bytes, method: bytes):
    """
    Read the header fields of a C{method} request.

    @return: C{(end of head, head lines, request line parts, indexes of
        the Via lines, found)} where C{found[slot]} is the top Via value,
        the line index of From / To / Call-ID / CSeq, or the stripped value
        of the others (C{None}: absent); or C{None} when the datagram is
        not such a request, has a folded, malformed or repeated single
        header, or lacks Via, From, To, Call-ID or CSeq.
    """
    if not data.startswith(method + b" "):
        return None
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = data[:end]
    lines = head.split(b"\r\n")
    if head.count(b"\n") != len(lines) - 1 or head.count(b"\r") != len(lines) - 1:
        return None  # a bare LF or CR: the parser's job
    request_line = lines[0].split(b" ")
    if len(request_line) != 3 or request_line[2] != b"SIP/2.0":
        return None
    found = [None] * 10
    vias = []
    spelt = _SPELT.get
    names = NAMES.get
    by_line = _BY_LINE
    for index in range(1, len(lines)):
        name, colon, value = lines[index].partition(b":")
        if not name or not colon:
            return None  # malformed: the parser's job
        slot = spelt(name)
        if slot is None:
            if name[0] in (32, 9):
                return None  # folded: the parser's job
            name = name.rstrip(b" \t")
            if not _TOKEN(name):
                return None  # not a header name: the parser answers 400
            slot = names(name.lower())
            if slot is None:
                continue
        if slot == VIA:
            vias.append(index)
            if len(vias) == 1:
                found[VIA] = value.strip()
        elif slot == _OTHER:
            continue
        elif found[slot] is not None:
            return None  # a repeated single header: let the parser judge
        else:
            found[slot] = index if slot in by_line else value.strip()
    if found[VIA] is None or found[FROM] is None or found[TO] is None or \
            found[CALL_ID] is None or found[CSEQ] is None:
        return None
    return end, lines, request_line, vias, found


_BRANCH, _RPORT, _RECEIVED, _MADDR = "branch", "rport", "received", "maddr"
#: the Via parameters L{response_echo} reads (lower case) ...
_VIA_PARAMS = {name.encode("ascii"): name for name in (_BRANCH, _RPORT, _RECEIVED, _MADDR)}
#: ... and as they are usually spelt
_VIA_SPELT = {form: kind for name, kind in _VIA_PARAMS.items() for form in _spellings(name)}


def response_echo(lines, vias, found, addr):
    """
    The header fields a response copies (RFC 3261 8.2.6), with the
    top Via stamped per RFC 3261 18.2.1 / RFC 3581, and where to send
    the response (18.2.2).

    @return: C{(list of lines, index of the To line, (host, port))}, or
        C{(None, None, None)} when the top Via is not one the lane
        handles.
    """
    value = found[VIA]  # the top Via's value, stripped
    if b"," in value:
        return None, None, None  # several values in one Via line
    params = value.split(b";")
    sent = params[0].split()
    if len(sent) != 2 or sent[0].upper() != b"SIP/2.0/UDP":
        return None, None, None
    host, _, port = sent[1].rpartition(b":")
    if not host or host.startswith(b"["):
        host, port = sent[1], b""
        if host.startswith(b"["):
            return None, None, None  # IPv6: the full path
    rport = False
    out = [params[0]]
    ip = addr[0]
    spelt = _VIA_SPELT.get
    for param in params[1:]:
        name, _, val = param.partition(b"=")
        kind = spelt(name)
        if kind is None:
            kind = _VIA_PARAMS.get(name.strip().lower())
        if kind is None:
            pass
        elif kind is _RPORT:
            rport = True
            param = b"rport=%d" % addr[1]
        elif kind is _RECEIVED:
            continue
        elif kind is _MADDR:
            return None, None, None
        elif not val.strip().startswith(b"z9hG4bK"):
            return None, None, None  # RFC 2543 matching: the full path
        out.append(param)
    if rport or host.decode("latin-1") != ip:
        out.append(b"received=" + ip.encode("ascii"))
    if rport:
        target = addr
    else:
        try:
            target = (ip, int(port) if port else 5060)
        except ValueError:
            return None, None, None
    echo = [b"Via: " + b";".join(out)]
    for index in vias[1:]:
        echo.append(lines[index])
    echo.append(lines[found[FROM]])
    to_index = len(echo)
    echo.append(lines[found[TO]])
    echo.append(lines[found[CALL_ID]])
    echo.append(lines[found[CSEQ]])
    return echo, to_index, target


_STATUS_LINES: dict = {}


def status_line(answer: SipAnswer) -> bytes:
    """The status line (and any extra header lines) of an answer, shared per answer."""
    extra = tuple(answer.headers or ())
    key = (int(answer.status), answer.reason, extra)
    line = _STATUS_LINES.get(key)
    if line is None:
        reason = answer.reason or "Accepted"
        line = ("SIP/2.0 %d %s\r\n" % (int(answer.status), reason)
                + "".join("%s: %s\r\n" % item for item in extra)).encode("utf-8")
        if len(_STATUS_LINES) < 256:
            _STATUS_LINES[key] = line
    return line


def name_addr(value: bytes):
    """
    @return: C{(uri text, tag)} of a From value, or C{(None, None)} for a
        form the lane leaves to the parser.
    """
    value = value.strip()
    if value.startswith(b'"'):
        close = value.find(b'"', 1)
        if close < 0 or b"\\" in value[:close]:
            return None, None
        rest = value[close + 1:]
    else:
        rest = value
    lt = rest.find(b"<")
    if lt >= 0:
        gt = rest.find(b">", lt)
        if gt < 0:
            return None, None
        uri = rest[lt + 1:gt]
        params = rest[gt + 1:]
    else:
        uri, _, params = rest.partition(b";")
        params = b";" + params if params else b""
    tag = ""
    for param in params.split(b";"):
        name, _, val = param.partition(b"=")
        if name.strip().lower() == b"tag":
            tag = val.strip().decode("utf-8", "replace")
    try:
        return uri.strip().decode("utf-8"), tag
    except UnicodeDecodeError:
        return None, None
