"""
The SIP -> SMPP lane's shortcuts on the raw datagram give what the general
code gives: L{gwsms.sip.rawsip.scan_request}'s header-name spellings,
L{gwsms.sip.rawsip.response_echo}'s Via parameters, the lane's usual From
form (L{gwsms.core.fastmt._uri_and_tag}), plain number URIs
(L{gwsms.core.fastmt._mapped}), the MT duplicate key
(L{gwsms.store.messages.mt_dedup_key}) and the C{submit_sm} bytes.
"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from gwsms.core import numbers
from gwsms.core.fastmt import _mapped, _number, _uri_and_tag, _user, encode_submit_sm
from gwsms.sip.headers import SipParseError
from gwsms.sip.message import parse_message
from gwsms.sip.rawsip import CALL_ID, CLEN, CSEQ, CTYPE, FROM, MAXF, TO, VIA, name_addr, \
    response_echo, scan_request
from gwsms.store.messages import MT, dedup_key, mt_dedup_key

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


FROM_PARTS = st.lists(st.sampled_from([
    b"<", b">", b";", b"tag", b"TAG", b"=", b" ", b"\t", b'"', b"\\", b"sip:", b"sips:",
    b"+4930123", b"@", b"example.org", b"%41", b"a", b"\xc3\xa4", b"\xff", b"Bob", b"lr",
]), max_size=14).map(b"".join)


class FromTests(SynchronousTestCase):
    @settings(max_examples=2000, deadline=None)
    @given(FROM_PARTS)
    @example(b" <sip:+4930123@example.org>;tag=t1")
    @example(b"<sip:+4930123@example.org> ; tag=a=b ")
    @example(b"<sip:+4930123@example.org>;tag=t1;tag=t2")
    @example(b"<sip:+4930123@example.org>;TAG=t1")
    @example(b'"Bob" <sip:+4930123@example.org>;tag=t1')
    def test_as_name_addr(self, value):
        self.assertEqual(_uri_and_tag(value), name_addr(value))

    def test_usual_form(self):
        self.assertEqual(_uri_and_tag(b" <sip:+4930123@example.org:5060>;tag=1234b5"),
                         ("sip:+4930123@example.org:5060", "1234b5"))


def general(uri, alphanumeric):
    """What the lane did before the shortcut (and still does for other URIs)."""
    user = _user(uri)
    return user, _number(user) or numbers.sip_user_to_smpp(
        user, default_ton=0, default_npi=0, alphanumeric=alphanumeric)


URI_USERS = st.lists(st.sampled_from(["+", "0", "49", "1234567890", "%2B", ";", "a", "٣", "-"]),
                     max_size=8).map("".join)
URI_HOSTS = st.lists(st.sampled_from(["gw.example", ":5060", ";user=phone", "%41", "@", "1"]),
                     max_size=4).map("".join)


class NumberUriTests(SynchronousTestCase):
    def outcome(self, fn, *args):
        try:
            return fn(*args)
        except numbers.AddressError as e:
            return ("AddressError", str(e))

    @settings(max_examples=1500, deadline=None)
    @given(URI_USERS, URI_HOSTS, st.booleans())
    @example("+4915112345678", "127.0.0.1", False)
    @example("+" + "1" * 20, "h", True)
    @example("+" + "1" * 21, "h", True)
    @example("1" * 20, "h", False)
    @example("1" * 21, "h", False)
    def test_as_general(self, user, host, alphanumeric):
        uri = "sip:%s@%s" % (user, host)
        self.assertEqual(self.outcome(_mapped, uri, alphanumeric),
                         self.outcome(general, uri, alphanumeric))

    def test_plain_numbers(self):
        self.assertEqual(_mapped("sip:+4915112345678@gw.example", False),
                         ("+4915112345678", numbers.Address("4915112345678", 1, 1)))
        self.assertEqual(_mapped("sip:0151123@gw.example:5060", True),
                         ("0151123", numbers.Address("0151123", 0, 0)))


class DedupKeyTests(SynchronousTestCase):
    @settings(max_examples=500, deadline=None)
    @given(st.text(), st.text(), st.text(), st.text())
    @example("call-1", "1 MESSAGE", "t1", "sip:+4930123@example.org")
    @example("\ud800x", "", "\udfff", "é€")
    def test_as_dedup_key(self, call_id, cseq, tag, uri):
        self.assertEqual(mt_dedup_key(call_id, cseq, tag, uri),
                         dedup_key(MT, call_id, cseq, tag, uri))


class EncodeRangeTests(SynchronousTestCase):
    def test_out_of_range_octet(self):
        source = numbers.Address("4930123", 1, 1)
        dest = numbers.Address("4915112345678", 1, 1)
        for args in ((256, 0, 0), (0, 256, 0), (0, 0, -1)):
            with self.assertRaises(ValueError):
                encode_submit_sm(source, dest, *args, b"hi")
        with self.assertRaises(ValueError):
            encode_submit_sm(numbers.Address("4930123", 300, 1), dest, 0, 0, 0, b"hi")
