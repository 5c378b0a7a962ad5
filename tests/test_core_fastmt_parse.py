"""
The SIP -> SMPP lane's shortcuts on the raw datagram give what the general
code gives: L{gwsms.sip.rawsip.scan_request}'s header-name spellings and
L{gwsms.sip.rawsip.response_echo}'s Via parameters.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from gwsms.sip.headers import SipParseError
from gwsms.sip.message import parse_message
from gwsms.sip.rawsip import CALL_ID, CLEN, CSEQ, CTYPE, FROM, MAXF, TO, VIA, name_addr, \
    response_echo, scan_request

ADDR = ("10.0.0.1", 5062)
HEADERS = [
    ("Via", "v", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1"),
    ("From", "f", "<sip:+4930123@example.org>;tag=t1"),
    ("To", "t", "<sip:+4915112345678@gw.example>"),
    ("Call-ID", "i", "call-1@example.org"),
    ("CSeq", None, "1 MESSAGE"),
    ("Max-Forwards", None, "70"),
    ("Contact", "m", "<sip:10.0.0.1:5060>"),
    ("User-Agent", None, "test"),
    ("Content-Type", "c", "text/plain;charset=UTF-8"),
    ("Content-Length", "l", "5"),
]


def message(names) -> bytes:
    """A MESSAGE whose header lines use C{names} (one per L{HEADERS} entry)."""
    head = [b"MESSAGE sip:+4915112345678@gw.example SIP/2.0"]
    for name, (_full, _compact, value) in zip(names, HEADERS):
        head.append(name.encode("ascii") + b": " + value.encode("ascii"))
    return b"\r\n".join(head) + b"\r\n\r\nhello"


def spellings(index):
    full, compact, _value = HEADERS[index]
    forms = [full, full.lower(), full.upper(), full.swapcase(), full + " ", full + "\t"]
    if compact:
        forms += [compact, compact.upper(), compact + " "]
    return st.sampled_from(forms)


def values(scanned, data):
    """What a scan found, as values (line indexes replaced by the lines' values)."""
    _end, lines, _request_line, vias, found = scanned
    out = list(found)
    for slot in (FROM, TO, CALL_ID, CSEQ):
        line = lines[found[slot]]
        out[slot] = line[line.find(b":") + 1:].strip()
    return out, [lines[i][lines[i].find(b":") + 1:].strip() for i in vias]


class ScanSpellingTests(SynchronousTestCase):
    canonical = message([h[0] for h in HEADERS])

    @settings(max_examples=300, deadline=None)
    @given(st.tuples(*(spellings(i) for i in range(len(HEADERS)))))
    def test_any_spelling_same_fields(self, names):
        expected = values(scan_request(self.canonical, b"MESSAGE"), self.canonical)
        data = message(names)
        self.assertEqual(values(scan_request(data, b"MESSAGE"), data), expected)

    def test_fields(self):
        found, vias = values(scan_request(self.canonical, b"MESSAGE"), self.canonical)
        self.assertEqual(found[VIA], b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1")
        self.assertEqual(found[CALL_ID], b"call-1@example.org")
        self.assertEqual(found[CTYPE], b"text/plain;charset=UTF-8")
        self.assertEqual((found[CLEN], found[MAXF]), (b"5", b"70"))
        self.assertEqual(vias, [found[VIA]])

    def test_repeated_single_header(self):
        for name in ("Call-ID", "call-id", "i", "CALL-ID "):
            data = self.canonical.replace(b"\r\n\r\n", b"\r\n%s: other\r\n\r\n" % name.encode())
            self.assertIsNone(scan_request(data, b"MESSAGE"), name)

    def test_repeated_other_headers_kept(self):
        data = self.canonical.replace(b"\r\n\r\n", b"\r\nContact: <sip:b@h>\r\nX-A: 1\r\n\r\n")
        self.assertIsNotNone(scan_request(data, b"MESSAGE"))

    def test_folded_line(self):
        for fold in (b" ", b"\t"):
            for name in (b"Contact", b"Via", b"Call-ID", b"X-Other"):
                data = self.canonical.replace(b"\r\n\r\n", b"\r\n%s%s: x\r\n\r\n" % (fold, name))
                self.assertIsNone(scan_request(data, b"MESSAGE"), (fold, name))

    def test_line_without_colon(self):
        data = self.canonical.replace(b"\r\n\r\n", b"\r\nContact <sip.b@h>\r\n\r\n")
        self.assertIsNone(scan_request(data, b"MESSAGE"))

    def test_malformed_name(self):
        """The parser answers these 400: the lane leaves them to it."""
        for line in (b"Contact <sip:b@h>", b"X Y: z", b"Via\x0b: SIP/2.0/UDP h;branch=z9hG4bK-2",
                     b"X(1): y"):
            data = self.canonical.replace(b"\r\n\r\n", b"\r\n%s\r\n\r\n" % line)
            self.assertIsNone(scan_request(data, b"MESSAGE"), line)
            with self.assertRaises(SipParseError):
                parse_message(data)

    def test_bare_line_ends(self):
        """A bare LF or CR in the head: the parser's rules, not the lane's."""
        for old, new in ((b"Call-ID: call-1@example.org", b"Call-ID: call-1\nX-A: b"),
                         (b"Call-ID: call-1@example.org", b"Call-ID: call-1\rb"),
                         (b"\r\nTo:", b"\nTo:")):
            data = self.canonical.replace(old, new)
            self.assertIsNone(scan_request(data, b"MESSAGE"), new)


class EchoTests(SynchronousTestCase):
    def echo(self, via):
        data = message([h[0] for h in HEADERS]).replace(
            b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1", via)
        scanned = scan_request(data, b"MESSAGE")
        return response_echo(scanned[1], scanned[3], scanned[4], ADDR)

    def test_parameter_names_in_any_case(self):
        for rport in (b"rport", b"RPORT", b"RPort", b" rport "):
            for branch in (b"branch", b"BRANCH", b"Branch", b"branch "):
                echo, _to, target = self.echo(
                    b"SIP/2.0/UDP 10.0.0.1:5060;%s=z9hG4bK-1;%s;received=9.9.9.9" % (branch, rport))
                self.assertEqual(echo[0], b"Via: SIP/2.0/UDP 10.0.0.1:5060;%s=z9hG4bK-1;rport=5062"
                                          b";received=10.0.0.1" % branch, (branch, rport))
                self.assertEqual(target, ADDR)

    def test_declined(self):
        for via in (b"SIP/2.0/UDP 10.0.0.1:5060;BRANCH=old-1",
                    b"SIP/2.0/UDP 10.0.0.1:5060;branch",
                    b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1;MAddr=239.1.1.1",
                    b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1;maddr"):
            self.assertEqual(self.echo(via), (None, None, None), via)

    def test_other_parameters_kept(self):
        echo, _to, target = self.echo(b"SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-1;ttl=3;x")
        self.assertEqual(echo[0], b"Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-1;ttl=3;x")
        self.assertEqual(target, ("10.0.0.1", 5060))
