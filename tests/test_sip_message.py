# -*- test-case-name: tests.test_sip_message -*-
"""
Tests for L{gwsms.sip.message}: parsing (whole datagram, stream, byte by byte),
serialisation, errors and limits, stream resync and keep-alives, make_response.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from gwsms.sip.message import (
    BRANCH_MAGIC,
    PING,
    PONG,
    GenericURI,
    Headers,
    KeepAlive,
    NameAddr,
    Request,
    Response,
    SipError,
    SipParseError,
    SipURI,
    StreamParser,
    Via,
    generate_branch,
    generate_call_id,
    generate_tag,
    is_keepalive,
    make_response,
    parse_message,
    reason_phrase,
)


def _msg(*lines: str, body: bytes = b"") -> bytes:
    head = "\r\n".join(lines).replace("{len}", str(len(body)))
    return head.encode("utf-8") + b"\r\n\r\n" + body


SOFTPHONE_MESSAGE_BODY = "Hallo Welt, grüße aus dem Softphone \U0001F600".encode("utf-8")
SOFTPHONE_MESSAGE = _msg(
    "MESSAGE sip:+4917612345678@gw.example.net SIP/2.0",
    "Via: SIP/2.0/UDP [2001:db8::10]:5062;branch=z9hG4bK-524287-1---a1b2c3d4;rport",
    "Max-Forwards: 70",
    'From: "Jörg \\"JJ\\" Müller" <sip:joerg@example.com>;tag=8f2a1c',
    'To: "SMS Gateway" <sip:+4917612345678@gw.example.net>',
    "Call-ID: ZjE3YzQ4MjM0NzQ2ZGI1OWY0NTcx",
    "CSeq: 2 MESSAGE",
    "Contact: <sip:joerg@[2001:db8::10]:5062;transport=udp>",
    "User-Agent: Zoiper v2.10.17.3",
    "Content-Type: text/plain;charset=UTF-8",
    "Content-Length: {len}",
    body=SOFTPHONE_MESSAGE_BODY,
)

OPTIONS_PING = _msg(
    "OPTIONS sip:gw.example.net:5060 SIP/2.0",
    "Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bK3a5f.0a1b2c3d4e5f60718293a4b5c6d7e8f9.0",
    "From: <sip:pinger@proxy.example.net>;tag=0aef47d1b2c3",
    "To: <sip:gw.example.net:5060>",
    "Call-ID: 7b1c5e2d-4f3a-11ee-9c4b-0242ac120002",
    "CSeq: 10 OPTIONS",
    "Max-Forwards: 70",
    "Accept: application/sdp, text/plain",
    "Content-Length: 0",
)

REGISTER_CONTACTS = _msg(
    "REGISTER sip:example.com SIP/2.0",
    "Via: SIP/2.0/TCP 192.0.2.33:49152;branch=z9hG4bKnashds7;alias",
    "Max-Forwards: 70",
    "From: Bob <sip:bob@example.com>;tag=456248",
    "To: Bob <sip:bob@example.com>",
    "Call-ID: 843817637684230@998sdasdh09",
    "CSeq: 1826 REGISTER",
    'Contact: <sip:bob@192.0.2.33:49152;transport=tcp>;expires=3600;q=0.7;'
    '+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"',
    "Contact: <sip:bob@198.51.100.7>;expires=60, <mailto:bob@example.com>;q=0.1",
    'Contact: "Bob, mobile" <tel:+14155551234>;q=0.5',
    "Expires: 7200",
    "Supported: path, outbound, gruu",
    "Content-Length: 0",
)

OK_REGISTER = _msg(
    "SIP/2.0 200 OK",
    "Via: SIP/2.0/TCP 192.0.2.33:49152;branch=z9hG4bKnashds7;received=203.0.113.9",
    "From: Bob <sip:bob@example.com>;tag=456248",
    "To: Bob <sip:bob@example.com>;tag=2493k59kd",
    "Call-ID: 843817637684230@998sdasdh09",
    "CSeq: 1826 REGISTER",
    "Contact: <sip:bob@192.0.2.33:49152;transport=tcp>;expires=3600",
    "Date: Sat, 13 Nov 2010 23:29:00 GMT",
    "Content-Length: 0",
)

ACCEPTED = _msg(
    "SIP/2.0 202 Accepted",
    "Via: SIP/2.0/UDP gw.example.net;branch=z9hG4bK776asdhds;received=192.0.2.4;rport=5066",
    "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKfirst",
    'From: "SMS GW" <sip:+491701111111@gw.example.net>;tag=a6c85cf',
    "To: <sip:alice@example.com>;tag=1928301774",
    "Call-ID: a84b4c76e66710@gw.example.net",
    "CSeq: 314159 MESSAGE",
    "Server: Kamailio (5.7.2 (x86_64/linux))",
    "Content-Length: 0",
)

UNAUTHORIZED = _msg(
    "SIP/2.0 401 Unauthorized",
    "Via: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bK74bf9;rport=5060;received=192.0.2.4",
    "From: <sip:gw@example.com>;tag=9fxced76sl",
    "To: <sip:+15551234@example.com>;tag=b6d5a0",
    "Call-ID: 3848276298220188511@gw.example.com",
    "CSeq: 1 MESSAGE",
    'WWW-Authenticate: Digest realm="example.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41", '
    "algorithm=SHA-256",
    'WWW-Authenticate: Digest realm="example.com", qop="auth", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", algorithm=MD5',
    "Content-Length: 0",
)

COMPACT = _msg(
    "MESSAGE sip:user@example.org SIP/2.0",
    "v: SIP/2.0/TCP client.example.org:5060;branch=z9hG4bKcompact1",
    "f: <sip:sender@example.org>;tag=abc",
    "t: <sip:user@example.org>",
    "i: compact-1@client.example.org",
    "CSeq: 7 MESSAGE",
    "m: <sip:sender@client.example.org;transport=tcp>",
    "k: path",
    "s: a subject, with a comma",
    "c: text/plain",
    "l: {len}",
    body=b"compact form",
)

FOLDED = _msg(
    "MESSAGE sip:user@example.org SIP/2.0",
    "Via: SIP/2.0/UDP host.example.org:5060",
    "  ;branch=z9hG4bKfold1",
    "From: <sip:a@example.org>",
    "\t;tag=f1",
    "To: <sip:user@example.org>",
    "Call-ID: fold-1",
    "CSeq: 1",
    "   MESSAGE",
    "Subject: first line",
    "   second line",
    "Content-Type: text/plain",
    "Content-Length: {len}",
    body=b"folded",
)

MULTI_VIA = _msg(
    "MESSAGE sip:+15550001111@gw.example.net;user=phone SIP/2.0",
    "Via: SIP/2.0/UDP edge.example.net:5060;branch=z9hG4bK.edge;rport=5060;received=198.51.100.2,"
    " SIP/2.0/TCP core.example.net;branch=z9hG4bK.core",
    "Via: SIP/2.0/TLS [2001:db8::5]:5061;branch=z9hG4bK.ua;rport",
    "Record-Route: <sip:edge.example.net;lr>, <sip:core.example.net;lr;transport=tcp>",
    "Route: <sip:gw.example.net;lr>",
    "Max-Forwards: 68",
    "From: <sip:alice@example.net>;tag=mv1",
    "To: <sip:+15550001111@gw.example.net;user=phone>",
    "Call-ID: multi-via-1@example.net",
    "CSeq: 42 MESSAGE",
    "Content-Type: text/plain",
    "Content-Length: {len}",
    body=b"multi via",
)

TEL_URIS = _msg(
    "MESSAGE tel:+4915112345678;phone-context=+49 SIP/2.0",
    "Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKtel1",
    "Max-Forwards: 70",
    "From: <tel:+4930123456;phone-context=example.com>;tag=t1",
    "To: <tel:+4915112345678;phone-context=+49>",
    "P-Asserted-Identity: <sip:+4930123456@example.com;user=phone>, <tel:+4930123456>",
    "Call-ID: tel-1",
    "CSeq: 1 MESSAGE",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Length: {len}",
    body=b"tel",
)

CPIM_BODY = (
    b"From: <sip:alice@example.com>\r\n"
    b"To: <sip:bob@example.com>\r\n"
    b"DateTime: 2026-11-27T10:00:00Z\r\n"
    b"NS: imdn <urn:ietf:params:imdn>\r\n"
    b"imdn.Message-ID: 34jk324j\r\n"
    b"imdn.Disposition-Notification: positive-delivery\r\n"
    b"\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 9\r\n"
    b"\r\n"
    b"Hi Bob \xe2\x9c\x93"
)
CPIM = _msg(
    "MESSAGE sip:bob@example.com SIP/2.0",
    "Via: SIP/2.0/TLS alice-pc.example.com:5061;branch=z9hG4bKcpim",
    "Max-Forwards: 70",
    "From: <sip:alice@example.com>;tag=cp1",
    "To: <sip:bob@example.com>",
    "Call-ID: cpim-1@alice-pc.example.com",
    "CSeq: 3 MESSAGE",
    "Content-Type: message/cpim",
    "Content-Length: {len}",
    body=CPIM_BODY,
)

CORPUS = {
    "softphone_message": SOFTPHONE_MESSAGE,
    "options_ping": OPTIONS_PING,
    "register_contacts": REGISTER_CONTACTS,
    "ok_register": OK_REGISTER,
    "accepted": ACCEPTED,
    "unauthorized": UNAUTHORIZED,
    "compact": COMPACT,
    "folded": FOLDED,
    "multi_via": MULTI_VIA,
    "tel_uris": TEL_URIS,
    "cpim": CPIM,
}


class CorpusParsingTests(SynchronousTestCase):
    """
    Each corpus message parsed as a whole datagram.  Subclasses override
    L{parse} to push the same bytes through L{StreamParser}.
    """

    def parse(self, data: bytes) -> Request | Response:
        """
        @return: the one message parsed from C{data}.
        """
        return parse_message(data)

    def test_softphone_message(self) -> None:
        m = self.parse(SOFTPHONE_MESSAGE)
        self.assertIsInstance(m, Request)
        self.assertEqual(m.method, "MESSAGE")
        self.assertEqual(m.uri, "sip:+4917612345678@gw.example.net")
        self.assertEqual(m.request_uri.user, "+4917612345678")
        self.assertEqual(m.request_uri.host, "gw.example.net")
        via = m.top_via
        self.assertEqual((via.transport, via.host, via.port), ("UDP", "2001:db8::10", 5062))
        self.assertEqual(via.branch, "z9hG4bK-524287-1---a1b2c3d4")
        self.assertIn("rport", via.params)
        self.assertIsNone(via.rport)
        self.assertEqual(m.from_.display_name, 'Jörg "JJ" Müller')
        self.assertEqual(m.from_.tag, "8f2a1c")
        self.assertEqual(str(m.from_.uri), "sip:joerg@example.com")
        self.assertEqual(m.to.display_name, "SMS Gateway")
        self.assertIsNone(m.to.tag)
        self.assertEqual(m.call_id, "ZjE3YzQ4MjM0NzQ2ZGI1OWY0NTcx")
        self.assertEqual(m.cseq, (2, "MESSAGE"))
        self.assertEqual(m.max_forwards, 70)
        self.assertEqual(m.content_type, "text/plain;charset=UTF-8")
        self.assertEqual(m.body, SOFTPHONE_MESSAGE_BODY)
        self.assertEqual(m.contacts[0].uri.host, "2001:db8::10")
        self.assertEqual(m.headers.get("user-agent"), "Zoiper v2.10.17.3")

    def test_options_ping(self) -> None:
        m = self.parse(OPTIONS_PING)
        self.assertEqual(m.method, "OPTIONS")
        self.assertEqual(m.request_uri.port, 5060)
        self.assertIsNone(m.request_uri.user)
        self.assertEqual(m.headers.get_all("Accept"), ["application/sdp", "text/plain"])
        self.assertEqual(m.body, b"")
        self.assertEqual(m.cseq, (10, "OPTIONS"))

    def test_register_contacts(self) -> None:
        m = self.parse(REGISTER_CONTACTS)
        contacts = m.contacts
        self.assertEqual(len(contacts), 4)
        self.assertEqual(contacts[0].params["expires"], "3600")
        self.assertEqual(contacts[0].params["q"], "0.7")
        self.assertEqual(
            contacts[0].params["+sip.instance"],
            '"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"',
        )
        self.assertEqual(contacts[0].uri.transport, "tcp")
        self.assertEqual(contacts[1].params, {"expires": "60"})
        self.assertEqual(str(contacts[1].uri), "sip:bob@198.51.100.7")
        self.assertIsInstance(contacts[2].uri, GenericURI)
        self.assertEqual(str(contacts[2].uri), "mailto:bob@example.com")
        self.assertEqual(contacts[3].display_name, "Bob, mobile")
        self.assertEqual(contacts[3].uri.scheme, "tel")
        self.assertEqual(m.expires, 7200)
        self.assertEqual(m.headers.get_all("Supported"), ["path", "outbound", "gruu"])
        self.assertEqual(m.from_.display_name, "Bob")

    def test_ok_register(self) -> None:
        m = self.parse(OK_REGISTER)
        self.assertIsInstance(m, Response)
        self.assertEqual((m.status, m.reason), (200, "OK"))
        self.assertTrue(m.is_final)
        self.assertEqual(m.top_via.received, "203.0.113.9")
        self.assertEqual(m.to.tag, "2493k59kd")
        # Date contains a comma that is not a list separator
        self.assertEqual(m.headers.get_all("Date"), ["Sat, 13 Nov 2010 23:29:00 GMT"])

    def test_accepted_two_vias(self) -> None:
        m = self.parse(ACCEPTED)
        self.assertEqual(m.status, 202)
        self.assertEqual([v.branch for v in m.vias], ["z9hG4bK776asdhds", "z9hG4bKfirst"])
        self.assertEqual(m.top_via.rport, 5066)
        self.assertEqual(m.headers.get("Server"), "Kamailio (5.7.2 (x86_64/linux))")

    def test_unauthorized(self) -> None:
        m = self.parse(UNAUTHORIZED)
        self.assertEqual((m.status, m.reason), (401, "Unauthorized"))
        challenges = m.headers.get_all("WWW-Authenticate")
        self.assertEqual(len(challenges), 2)
        self.assertTrue(challenges[0].startswith('Digest realm="example.com", qop="auth,auth-int"'))
        self.assertTrue(challenges[0].endswith("algorithm=SHA-256"))
        self.assertTrue(challenges[1].endswith("algorithm=MD5"))
        self.assertEqual(m.headers.get("www-authenticate"), challenges[0])

    def test_compact(self) -> None:
        m = self.parse(COMPACT)
        self.assertEqual(m.call_id, "compact-1@client.example.org")
        self.assertEqual(m.from_.tag, "abc")
        self.assertEqual(m.top_via.transport, "TCP")
        self.assertEqual(m.headers.get("Content-Type"), "text/plain")
        self.assertEqual(m.headers.get("Supported"), "path")
        self.assertEqual(m.headers.get("Subject"), "a subject, with a comma")
        self.assertEqual(m.body, b"compact form")
        names = [name for name, _ in m.headers]
        self.assertEqual(
            names,
            ["Via", "From", "To", "Call-ID", "CSeq", "Contact", "Supported", "Subject",
             "Content-Type", "Content-Length"],
        )

    def test_folded(self) -> None:
        m = self.parse(FOLDED)
        self.assertEqual(m.top_via.branch, "z9hG4bKfold1")
        self.assertEqual(m.from_.tag, "f1")
        self.assertEqual(m.cseq, (1, "MESSAGE"))
        self.assertEqual(m.headers.get("Subject"), "first line second line")
        self.assertEqual(m.body, b"folded")

    def test_multi_via(self) -> None:
        m = self.parse(MULTI_VIA)
        vias = m.vias
        self.assertEqual([v.transport for v in vias], ["UDP", "TCP", "TLS"])
        self.assertEqual([v.branch for v in vias], ["z9hG4bK.edge", "z9hG4bK.core", "z9hG4bK.ua"])
        self.assertEqual(vias[2].host, "2001:db8::5")
        self.assertEqual(vias[2].port, 5061)
        self.assertEqual(m.top_via.received, "198.51.100.2")
        self.assertEqual(len(m.headers.get_all("Record-Route")), 2)
        self.assertEqual(m.headers.get("Record-Route"), "<sip:edge.example.net;lr>")
        self.assertEqual(m.request_uri.params, {"user": "phone"})
        self.assertEqual(m.max_forwards, 68)

    def test_tel_uris(self) -> None:
        m = self.parse(TEL_URIS)
        self.assertEqual(m.request_uri.scheme, "tel")
        self.assertEqual(m.request_uri.user, "+4915112345678")
        self.assertEqual(m.request_uri.params, {"phone-context": "+49"})
        self.assertEqual(m.from_.uri.params["phone-context"], "example.com")
        self.assertEqual(m.from_.tag, "t1")
        pai = m.headers.get_all("P-Asserted-Identity")
        self.assertEqual(pai, ["<sip:+4930123456@example.com;user=phone>", "<tel:+4930123456>"])

    def test_cpim(self) -> None:
        m = self.parse(CPIM)
        self.assertEqual(m.content_type, "message/cpim")
        self.assertEqual(m.body, CPIM_BODY)
        self.assertEqual(m.top_via.transport, "TLS")

    def test_round_trip_all(self) -> None:
        """
        parse(to_bytes()) equals the parsed message; canonical messages
        serialise back byte for byte.
        """
        for name, data in CORPUS.items():
            m = self.parse(data)
            again = self.parse(m.to_bytes())
            self.assertEqual(again, m, name)
            self.assertEqual(again.to_bytes(), m.to_bytes(), name)
            if name not in ("compact", "folded"):
                self.assertEqual(m.to_bytes(), data, name)


class StreamCorpusParsingTests(CorpusParsingTests):
    """
    The corpus through L{StreamParser.feed} in one chunk.
    """

    def feed(self, parser: StreamParser, data: bytes) -> list:
        return parser.feed(data)

    def parse(self, data: bytes) -> Request | Response:
        parser = StreamParser()
        items = self.feed(parser, data)
        self.assertEqual(len(items), 1, items)
        self.assertEqual(parser.buffered, 0)
        if isinstance(items[0], SipParseError):
            raise items[0]
        return items[0]


class ByteByByteCorpusParsingTests(StreamCorpusParsingTests):
    """
    The corpus through L{StreamParser.feed} one byte at a time.
    """

    def feed(self, parser: StreamParser, data: bytes) -> list:
        items = []
        for i in range(len(data)):
            items.extend(parser.feed(data[i : i + 1]))
        return items


class SplitCorpusParsingTests(StreamCorpusParsingTests):
    """
    The corpus through L{StreamParser.feed} in 7-byte pieces, and all
    messages back to back with keep-alives in between.
    """

    def feed(self, parser: StreamParser, data: bytes) -> list:
        items = []
        for i in range(0, len(data), 7):
            items.extend(parser.feed(data[i : i + 7]))
        return items

    def test_back_to_back(self) -> None:
        whole = b"".join(PING + data for data in CORPUS.values())
        items = self.feed(StreamParser(), whole)
        self.assertEqual(len(items), 2 * len(CORPUS))
        self.assertEqual(items[0::2], [KeepAlive()] * len(CORPUS))
        self.assertEqual(items[1::2], [parse_message(d) for d in CORPUS.values()])


def _replace(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data, old
    return data.replace(old, new, 1)


class ErrorTests(SynchronousTestCase):
    """
    Malformed input raises L{SipParseError} with the status to answer and a
    reason naming the problem (datagram and stream alike).
    """

    def assert_error(self, data: bytes, status: int, words: str, **kw: object) -> SipParseError:
        """
        Check C{data} fails with C{status} and a reason containing C{words},
        both as a datagram and on a stream.
        """
        e = self.assertRaises(SipParseError, parse_message, data, **kw)
        self.assertEqual(e.status, status, e.reason)
        self.assertIn(words.lower(), e.reason.lower())
        if not data.endswith(b"\r\n\r\n") and b"\r\n\r\n" in data:
            items = StreamParser(**kw).feed(data)  # type: ignore[arg-type]
            self.assertIsInstance(items[0], SipParseError)
            self.assertEqual(items[0].status, status)
        return e

    def test_is_sip_error(self) -> None:
        e = SipParseError(400, "Bad thing")
        self.assertIsInstance(e, SipError)
        self.assertEqual((e.status, e.reason), (400, "Bad thing"))
        self.assertEqual(str(e), "400 Bad thing")
        e2 = SipError("Forbidden here", 403)
        self.assertEqual((e2.status, e2.reason), (403, "Forbidden here"))

    def test_bad_version_request(self) -> None:
        self.assert_error(_replace(OPTIONS_PING, b"5060 SIP/2.0", b"5060 SIP/3.0"), 505, "version")

    def test_bad_version_response(self) -> None:
        self.assert_error(_replace(OK_REGISTER, b"SIP/2.0 200", b"SIP/1.0 200"), 505, "version")

    def test_status_out_of_range(self) -> None:
        self.assert_error(_replace(OK_REGISTER, b"SIP/2.0 200", b"SIP/2.0 700"), 400, "status")
        self.assert_error(_replace(OK_REGISTER, b"SIP/2.0 200", b"SIP/2.0 099"), 400, "status")
        self.assert_error(_replace(OK_REGISTER, b"SIP/2.0 200", b"SIP/2.0 2000"), 400, "status")
        self.assert_error(_replace(OK_REGISTER, b"SIP/2.0 200", b"SIP/2.0 2x0"), 400, "status")

    def test_utf8_reason(self) -> None:
        m = parse_message(_replace(OK_REGISTER, b"200 OK", "200 Très bien".encode()))
        self.assertEqual(m.reason, "Très bien")
        self.assertIn("200 Très bien".encode(), m.to_bytes())

    def test_invalid_utf8_kept(self) -> None:
        """
        Bytes that are not UTF-8 in header values survive a round trip.
        """
        data = _replace(OPTIONS_PING, b"Max-Forwards: 70", b"Subject: caf\xe9 \xff\r\nMax-Forwards: 70")
        m = parse_message(data)
        self.assertEqual(m.to_bytes(), data)
        self.assertIn("caf", m.headers.get("Subject"))

    def test_bad_method(self) -> None:
        self.assert_error(_replace(OPTIONS_PING, b"OPTIONS sip", b"OPT@ONS sip"), 400, "method")

    def test_bad_request_line(self) -> None:
        self.assert_error(_replace(OPTIONS_PING, b"OPTIONS sip:", b"OPTIONS  sip:"), 400, "request line")
        self.assert_error(_replace(OPTIONS_PING, b"OPTIONS sip:gw.example.net:5060", b"OPTIONS gw"),
                          400, "Request-URI")
        self.assert_error(b"HELLO\r\n\r\n", 400, "request line")

    def test_missing_headers(self) -> None:
        for line, name in ((b"Call-ID: 7b1c5e2d-4f3a-11ee-9c4b-0242ac120002\r\n", "Call-ID"),
                           (b"CSeq: 10 OPTIONS\r\n", "CSeq"),
                           (b"To: <sip:gw.example.net:5060>\r\n", "To"),
                           (b"From: <sip:pinger@proxy.example.net>;tag=0aef47d1b2c3\r\n", "From")):
            e = self.assert_error(_replace(OPTIONS_PING, line, b""), 400, f"missing {name}")
            self.assertIsInstance(e.message, Request)
        no_via = b"".join(line for line in ACCEPTED.splitlines(keepends=True)
                          if not line.startswith(b"Via:"))
        e = self.assert_error(no_via, 400, "missing Via")
        self.assertIsInstance(e.message, Response)

    def test_validate_off(self) -> None:
        m = parse_message(_replace(OPTIONS_PING, b"CSeq: 10 OPTIONS\r\n", b""), validate=False)
        self.assertIsNone(m.headers.get("CSeq"))
        self.assertRaises(SipParseError, lambda: m.cseq)

    def test_cseq(self) -> None:
        self.assert_error(_replace(OPTIONS_PING, b"CSeq: 10 OPTIONS", b"CSeq: 10 MESSAGE"), 400,
                          "does not match")
        self.assert_error(_replace(OPTIONS_PING, b"CSeq: 10 OPTIONS", b"CSeq: ten OPTIONS"), 400, "CSeq")
        self.assert_error(_replace(OPTIONS_PING, b"CSeq: 10 OPTIONS", b"CSeq: 4294967296 OPTIONS"),
                          400, "CSeq")

    def test_bad_via(self) -> None:
        e = self.assert_error(_replace(OPTIONS_PING, b"Via: SIP/2.0/UDP 198", b"Via: SIP/2.0 198"), 400, "Via")
        self.assertIsInstance(e.message, Request)

    def test_header_without_colon(self) -> None:
        self.assert_error(_replace(OPTIONS_PING, b"Max-Forwards: 70", b"Max-Forwards 70"), 400, "colon")

    def test_bad_header_name(self) -> None:
        self.assert_error(_replace(OPTIONS_PING, b"Max-Forwards: 70", b"Max Forwards: 70"), 400, "header name")

    def test_continuation_first(self) -> None:
        self.assert_error(_replace(OPTIONS_PING, b"\r\nVia:", b"\r\n Via:"), 400, "continuation")

    def test_continuation_after_empty_line(self) -> None:
        """
        Found by the fuzz test: an empty line (bare LF) then a continuation.
        """
        data = _replace(OPTIONS_PING, b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\n y\r\n\n x\r\n")
        self.assertRaises(SipParseError, parse_message, data)

    def test_stray_cr(self) -> None:
        self.assert_error(_replace(OPTIONS_PING, b"Max-Forwards: 70", b"Max-Forwards: 7\r0"), 400, "CR")

    def test_bad_content_length(self) -> None:
        self.assert_error(_replace(OPTIONS_PING, b"Content-Length: 0", b"Content-Length: zero"),
                          400, "Content-Length")
        self.assert_error(_replace(OPTIONS_PING, b"Content-Length: 0", b"Content-Length: -1"),
                          400, "Content-Length")
        self.assert_error(
            _replace(OPTIONS_PING, b"Content-Length: 0", b"Content-Length: 0\r\nl: 5"), 400, "Conflicting")

    def test_udp_body_shorter(self) -> None:
        """
        RFC 3261 18.3: a datagram whose body is shorter than Content-Length
        is rejected with 400.
        """
        e = self.assertRaises(SipParseError, parse_message, COMPACT[:-1])
        self.assertEqual(e.status, 400)
        self.assertIn("shorter than Content-Length", e.reason)

    def test_udp_body_longer(self) -> None:
        """
        A longer body is truncated to Content-Length.
        """
        m = parse_message(COMPACT + b"trailing junk")
        self.assertEqual(m.body, b"compact form")

    def test_udp_without_content_length(self) -> None:
        data = _replace(COMPACT, b"l: 12\r\n", b"")
        self.assertEqual(parse_message(data).body, b"compact form")

    def test_bare_lf(self) -> None:
        m = parse_message(COMPACT.replace(b"\r\n", b"\n"))
        self.assertEqual(m.call_id, "compact-1@client.example.org")
        self.assertEqual(m.body, b"compact form")

    def test_empty(self) -> None:
        self.assertRaises(SipParseError, parse_message, b"")
        self.assertRaises(SipParseError, parse_message, b"\r\n\r\n")

    def test_is_keepalive(self) -> None:
        for data in (b"\r\n", b"\r\n\r\n", b"\x00\x00\x00\x00", b" ", b""):
            self.assertTrue(is_keepalive(data), data)
        for data in (OPTIONS_PING, b"\r\nX", b"\r\n" * 20):
            self.assertFalse(is_keepalive(data), data)

    def test_leading_crlf(self) -> None:
        self.assertEqual(parse_message(b"\r\n\r\n" + COMPACT), parse_message(COMPACT))

    def test_max_size(self) -> None:
        e = self.assertRaises(SipParseError, parse_message, SOFTPHONE_MESSAGE, max_size=100)
        self.assertEqual(e.status, 513)
        self.assertIn("limit 100", e.reason)
        self.assertEqual(parse_message(SOFTPHONE_MESSAGE, max_size=None).call_id,
                         "ZjE3YzQ4MjM0NzQ2ZGI1OWY0NTcx")

    def test_max_headers(self) -> None:
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(300))
        data = _replace(OPTIONS_PING, b"Content-Length: 0", many + b"Content-Length: 0")
        e = self.assert_error(data, 400, "too many header fields")
        self.assertIn("256", e.reason)
        self.assertEqual(len(parse_message(data, max_headers=400).headers), 308)

    def test_max_line(self) -> None:
        data = _replace(OPTIONS_PING, b"Content-Length: 0", b"X-Long: " + b"a" * 9000 + b"\r\nContent-Length: 0")
        e = self.assert_error(data, 400, "header line too long")
        self.assertIn("8192", e.reason)
        long_uri = _replace(OPTIONS_PING, b"sip:gw.example.net:5060 ", b"sip:" + b"g" * 9000 + b" ")
        self.assert_error(long_uri, 400, "start line too long")
        self.assertEqual(parse_message(data, max_line=10000).headers.get("X-Long"), "a" * 9000)


class StreamTests(SynchronousTestCase):
    """
    L{StreamParser} framing, keep-alives and resynchronisation.
    """

    def test_ping(self) -> None:
        parser = StreamParser()
        self.assertEqual(parser.feed(PING), [KeepAlive()])
        self.assertEqual(parser.feed(PING + PING), [KeepAlive(), KeepAlive()])
        self.assertEqual(parser.buffered, 0)

    def test_ping_byte_by_byte(self) -> None:
        parser = StreamParser()
        self.assertEqual(parser.feed(b"\r"), [])
        self.assertEqual(parser.feed(b"\n"), [])
        self.assertEqual(parser.feed(b"\r"), [])
        self.assertEqual(parser.feed(b"\n"), [KeepAlive()])

    def test_pong_skipped(self) -> None:
        """
        A single CRLF (a pong, or stray CRLF before a message) is dropped.
        """
        parser = StreamParser()
        self.assertEqual(parser.feed(PONG), [])
        self.assertEqual(parser.feed(COMPACT), [parse_message(COMPACT)])
        self.assertEqual(parser.feed(PONG + COMPACT), [parse_message(COMPACT)])

    def test_ping_then_message(self) -> None:
        parser = StreamParser()
        self.assertEqual(parser.feed(PING + COMPACT + PING),
                         [KeepAlive(), parse_message(COMPACT), KeepAlive()])

    def test_partial_body_waits(self) -> None:
        parser = StreamParser()
        self.assertEqual(parser.feed(COMPACT[:-3]), [])
        self.assertEqual(parser.buffered, 3 * 0 + len(b"compact form") - 3)
        self.assertEqual(parser.feed(COMPACT[-3:]), [parse_message(COMPACT)])
        self.assertEqual(parser.buffered, 0)

    def test_body_exact(self) -> None:
        """
        The body is cut at Content-Length exactly; what follows is the next
        message even if the body contains CRLFCRLF.
        """
        parser = StreamParser()
        items = parser.feed(CPIM + COMPACT)
        self.assertEqual(items, [parse_message(CPIM), parse_message(COMPACT)])
        self.assertEqual(items[0].body, CPIM_BODY)

    def test_missing_content_length(self) -> None:
        data = _replace(OPTIONS_PING, b"Content-Length: 0\r\n", b"")
        items = StreamParser().feed(data + COMPACT)
        self.assertIsInstance(items[0], SipParseError)
        self.assertIn("Content-Length", items[0].reason)
        self.assertIsInstance(items[0].message, Request)
        self.assertEqual(items[1:], [parse_message(COMPACT)])

    def test_resync_skips_body(self) -> None:
        """
        A bad header block whose Content-Length is readable: its body is
        skipped (even when it looks like a message) and parsing goes on.
        """
        bad = _replace(MULTI_VIA, b"MESSAGE sip:", b"MES SAGE sip:")
        bad = bad.replace(b"multi via", b"\r\n\r\nX\r\n")
        self.assertEqual(len(b"\r\n\r\nX\r\n"), len(b"multi via") - 2)
        bad = bad.replace(b"Content-Length: 9", b"Content-Length: 7")
        for feed in (lambda p, d: p.feed(d), _feed_bytes):
            items = feed(StreamParser(), bad + COMPACT + bad + ACCEPTED)
            self.assertEqual(len(items), 4, items)
            self.assertIsInstance(items[0], SipParseError)
            self.assertEqual(items[1], parse_message(COMPACT))
            self.assertIsInstance(items[2], SipParseError)
            self.assertEqual(items[3], parse_message(ACCEPTED))

    def test_resync_invalid_message_skips_body(self) -> None:
        """
        A well-formed header block failing validation (no Call-ID) also has
        its body skipped.
        """
        bad = _replace(COMPACT, b"i: compact-1@client.example.org\r\n", b"")
        items = StreamParser().feed(bad + bad + OPTIONS_PING)
        self.assertEqual([type(i) for i in items], [SipParseError, SipParseError, Request])
        self.assertIn("Call-ID", items[0].reason)

    def test_resync_garbage(self) -> None:
        """
        Garbage without a readable Content-Length is dropped up to the next
        blank line.
        """
        garbage = b"\x00\xff\x16\x03\x01 binary junk\r\nmore\r\n\r\n"
        for feed in (lambda p, d: p.feed(d), _feed_bytes):
            items = feed(StreamParser(), garbage + OPTIONS_PING + garbage + COMPACT)
            self.assertEqual([type(i) for i in items], [SipParseError, Request, SipParseError, Request])

    def test_header_block_too_large(self) -> None:
        """
        No blank line within max_size: 513, then bytes are dropped until a
        blank line and parsing resumes.
        """
        parser = StreamParser(max_size=1024)
        items = parser.feed(b"X" * 2000)
        self.assertEqual(len(items), 1)
        self.assertEqual(items[0].status, 513)
        self.assertIn("1024", items[0].reason)
        self.assertLess(parser.buffered, 4)
        self.assertEqual(parser.feed(b"X" * 5000), [])
        self.assertLess(parser.buffered, 4)
        self.assertEqual(parser.feed(b"tail\r\n\r\n" + OPTIONS_PING), [parse_message(OPTIONS_PING)])

    def test_oversize_header_block(self) -> None:
        """
        A complete header block over max_size: 513, bytes up to its blank
        line are dropped whatever the segmentation, and parsing resumes.
        """
        big = _replace(COMPACT, b"s: a subject", b"s: " + b"x" * 1500)
        big = big.replace(b"compact form", b"junk\r\n\r\n").replace(b"l: 12", b"l: 8")
        for feed in (lambda p, d: p.feed(d), _feed_bytes):
            items = feed(StreamParser(max_size=1024), big + OPTIONS_PING)
            self.assertEqual([type(i) for i in items], [SipParseError, SipParseError, Request])
            self.assertEqual(items[0].status, 513)
            self.assertIn("1024", items[0].reason)

    def test_content_length_too_large(self) -> None:
        parser = StreamParser(max_size=2048)
        big = _replace(OPTIONS_PING, b"Content-Length: 0", b"Content-Length: 999999999")
        items = parser.feed(big + b"body\r\n\r\n" + COMPACT)
        self.assertEqual(items[0].status, 513)
        self.assertIn("Content-Length 999999999", items[0].reason)
        self.assertEqual(items[1:], [parse_message(COMPACT)])

    def test_content_length_over_limit_skipped(self) -> None:
        """
        A body that makes the message too large but is itself within
        max_size is skipped exactly.
        """
        parser = StreamParser(max_size=1000)
        body = b"\r\n\r\n" + b"b" * 900
        big = _replace(COMPACT, b"l: 12", b"l: %d" % len(body)).replace(b"compact form", body)
        items = parser.feed(big + COMPACT)
        self.assertEqual(items[0].status, 513)
        self.assertIsInstance(items[0].message, Request)
        self.assertEqual(items[1:], [parse_message(COMPACT)])

    def test_limits_on_stream(self) -> None:
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(20))
        data = _replace(OPTIONS_PING, b"Content-Length: 0", many + b"Content-Length: 0")
        items = StreamParser(max_headers=10).feed(data + COMPACT)
        self.assertEqual(items[0].status, 400)
        self.assertIn("limit 10", items[0].reason)
        self.assertEqual(items[1:], [parse_message(COMPACT)])
        items = StreamParser(max_line=70).feed(SOFTPHONE_MESSAGE + COMPACT)
        self.assertIn("too long", items[0].reason)
        self.assertEqual(items[1:], [parse_message(COMPACT)])

    def test_no_content_length_needed_for_zero(self) -> None:
        self.assertEqual(StreamParser().feed(OPTIONS_PING)[0].body, b"")


def _feed_bytes(parser: StreamParser, data: bytes) -> list:
    items = []
    for i in range(len(data)):
        items.extend(parser.feed(data[i : i + 1]))
    return items


class HeadersTests(SynchronousTestCase):
    """
    L{Headers}: ordered, case-insensitive multi-map.
    """

    def test_case_and_compact(self) -> None:
        h = Headers([("i", "abc"), ("CALL-id", "def"), ("v", "SIP/2.0/UDP a")])
        self.assertEqual(h.get("Call-ID"), "abc")
        self.assertEqual(h.get("i"), "abc")
        self.assertEqual(h.get_all("call-id"), ["abc", "def"])
        self.assertEqual(h.items()[0], ("Call-ID", "abc"))
        self.assertIn("VIA", h)
        self.assertNotIn("Route", h)
        self.assertEqual(h.get("Route", "none"), "none")

    def test_unknown_name_kept(self) -> None:
        h = Headers()
        h.add("X-Custom-Thing", "1")
        self.assertEqual(h.items(), [("X-Custom-Thing", "1")])
        self.assertEqual(h.get("x-custom-thing"), "1")

    def test_list_splitting(self) -> None:
        h = Headers()
        h.add("Contact", '"Doe, John" <sip:j@a;p=1,2>;q=0.1, <sip:k@b>')
        h.add("Contact", "<sip:l@c>")
        self.assertEqual(h.get_all("m"), ['"Doe, John" <sip:j@a;p=1,2>;q=0.1', "<sip:k@b>", "<sip:l@c>"])
        self.assertEqual(h.get("Contact"), '"Doe, John" <sip:j@a;p=1,2>;q=0.1')
        h.add("Authorization", 'Digest username="a", realm="b"')
        self.assertEqual(h.get_all("Authorization"), ['Digest username="a", realm="b"'])
        h.add("Subject", "a, b")
        self.assertEqual(h.get_all("Subject"), ["a, b"])

    def test_quote_inside_angle_brackets(self) -> None:
        h = Headers([("Route", '<sip:a@b;x=">, <sip:c@d>')])
        self.assertEqual(h.get_all("Route"), ['<sip:a@b;x=">', "<sip:c@d>"])

    def test_escaped_quote_in_list(self) -> None:
        h = Headers([("Contact", r'"a \", b" <sip:x@y>, <sip:z@w>')])
        self.assertEqual(h.get_all("Contact"), [r'"a \", b" <sip:x@y>', "<sip:z@w>"])

    def test_set_and_remove(self) -> None:
        h = Headers([("Via", "v1"), ("To", "t"), ("Via", "v2"), ("From", "f")])
        h.set("via", "v3")
        self.assertEqual(h.items(), [("Via", "v3"), ("To", "t"), ("From", "f")])
        h.set("Expires", "10")
        self.assertEqual(h.items()[-1], ("Expires", "10"))
        self.assertEqual(h.remove("TO"), 1)
        self.assertEqual(h.remove("To"), 0)
        self.assertEqual(len(h), 3)

    def test_add_prepend(self) -> None:
        h = Headers([("Max-Forwards", "70"), ("Via", "v1")])
        h.add("Via", "v0", prepend=True)
        self.assertEqual(h.get_all("Via"), ["v0", "v1"])
        self.assertEqual(h.items()[1], ("Via", "v0"))
        h.add("Route", "<sip:r>", prepend=True)
        self.assertEqual(h.items()[0], ("Route", "<sip:r>"))

    def test_replace_and_remove_first(self) -> None:
        h = Headers([("Via", "v1, v2"), ("Via", "v3")])
        h.replace_first("Via", "v1;received=1.2.3.4")
        self.assertEqual(h.get_all("Via"), ["v1;received=1.2.3.4", "v2", "v3"])
        self.assertEqual(h.remove_first("Via"), "v1;received=1.2.3.4")
        self.assertEqual(h.get_all("Via"), ["v2", "v3"])
        self.assertRaises(KeyError, h.replace_first, "Route", "x")
        self.assertIsNone(h.remove_first("Route"))

    def test_equality_and_copy(self) -> None:
        h = Headers({"To": "a", "From": "b"})
        c = h.copy()
        self.assertEqual(h, c)
        c.add("Via", "x")
        self.assertNotEqual(h, c)
        self.assertEqual(len(h), 2)

    def test_repr_hides_credentials(self) -> None:
        h = Headers([("Authorization", 'Digest username="u", response="secret"')])
        self.assertNotIn("secret", repr(h))


class BuildTests(SynchronousTestCase):
    """
    Building and serialising messages; make_response; generators.
    """

    def test_request_to_bytes(self) -> None:
        r = Request("MESSAGE", SipURI.parse("sip:+491@gw"), [
            ("Via", "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1"),
            ("Content-Length", "999"),
            ("Content-Type", "text/plain"),
        ], "grüße")
        data = r.to_bytes()
        self.assertTrue(data.startswith(b"MESSAGE sip:+491@gw SIP/2.0\r\n"))
        self.assertIn(b"Content-Length: 7\r\nContent-Type", data)
        self.assertTrue(data.endswith(b"\r\n\r\ngr\xc3\xbc\xc3\x9fe"))
        self.assertEqual(r.headers.get("Content-Length"), "999")  # not modified
        self.assertEqual(bytes(r), data)

    def test_content_length_added(self) -> None:
        r = Response(200, headers=[("Call-ID", "x")], body=b"\x00\xff")
        self.assertEqual(r.reason, "OK")
        self.assertEqual(r.to_bytes(), b"SIP/2.0 200 OK\r\nCall-ID: x\r\nContent-Length: 2\r\n\r\n\x00\xff")

    def test_reason_phrases(self) -> None:
        self.assertEqual(reason_phrase(202), "Accepted")
        self.assertEqual(reason_phrase(481), "Call/Transaction Does Not Exist")
        self.assertEqual(reason_phrase(513), "Message Too Large")
        self.assertEqual(reason_phrase(499), "Client Error")
        self.assertEqual(Response(429).reason, "Provide Referrer Identity")

    def test_make_response(self) -> None:
        req = parse_message(MULTI_VIA)
        resp = make_response(req, 202, to_tag="gwtag")
        self.assertEqual((resp.status, resp.reason), (202, "Accepted"))
        self.assertEqual(resp.headers.get_all("Via"), req.headers.get_all("Via"))
        self.assertEqual(resp.to.tag, "gwtag")
        self.assertEqual(resp.to.uri, req.to.uri)
        self.assertEqual(resp.from_, req.from_)
        self.assertEqual(resp.call_id, req.call_id)
        self.assertEqual(resp.cseq, (42, "MESSAGE"))
        self.assertNotIn("Record-Route", resp.headers)
        self.assertNotIn("Max-Forwards", resp.headers)
        self.assertEqual(parse_message(resp.to_bytes()), resp)

    def test_make_response_keeps_existing_tag(self) -> None:
        req = parse_message(OK_REGISTER.replace(b"SIP/2.0 200 OK", b"MESSAGE sip:b@c SIP/2.0")
                            .replace(b"1826 REGISTER", b"1826 MESSAGE"))
        resp = make_response(req, 200, to_tag="other")
        self.assertEqual(resp.to.tag, "2493k59kd")

    def test_make_response_extra(self) -> None:
        req = parse_message(OPTIONS_PING)
        resp = make_response(req, 200, "Fine", headers={"Allow": "MESSAGE, OPTIONS"},
                             body=b"x")
        self.assertEqual(resp.reason, "Fine")
        self.assertEqual(resp.headers.get_all("Allow"), ["MESSAGE", "OPTIONS"])
        self.assertIn(b"Content-Length: 1\r\n", resp.to_bytes())
        self.assertIsNone(resp.to.tag)
        self.assertRaises(ValueError, make_response, req, 99)

    def test_make_response_trying_timestamp(self) -> None:
        req = parse_message(_replace(OPTIONS_PING, b"Max-Forwards: 70", b"Timestamp: 54"))
        self.assertEqual(make_response(req, 100).headers.get("Timestamp"), "54")
        self.assertNotIn("Timestamp", make_response(req, 200).headers)

    def test_injection_refused(self) -> None:
        """
        Values that would break the framing are refused when building.
        """
        h = Headers()
        self.assertRaises(ValueError, h.add, "Subject", "x\r\nEvil: 1")
        self.assertRaises(ValueError, h.set, "Subject", "x\nEvil: 1")
        self.assertRaises(ValueError, h.add, "Bad Name", "x")
        self.assertRaises(ValueError, h.add, "Name:", "x")
        h.add("Via", "a")
        self.assertRaises(ValueError, h.replace_first, "Via", "b\r\nX: y")
        self.assertRaises(ValueError, Request, "MES SAGE", "sip:a@b")
        self.assertRaises(ValueError, Request, "MESSAGE", "sip:a@b SIP/2.0\r\n")
        self.assertRaises(ValueError, Response, 200, "OK\r\nX: y")
        self.assertRaises(ValueError, Response, 1000)
        req = parse_message(OPTIONS_PING)
        self.assertRaises(ValueError, make_response, req, 200, to_tag="a\r\nb")
        na = NameAddr("sip:a@b", "line1\r\nline2")
        self.assertEqual(str(na), '"line1  line2" <sip:a@b>')

    def test_generators(self) -> None:
        branches = {generate_branch() for _ in range(100)}
        self.assertEqual(len(branches), 100)
        for b in branches:
            self.assertTrue(b.startswith(BRANCH_MAGIC))
            self.assertGreaterEqual(len(b), len(BRANCH_MAGIC) + 16)
        self.assertEqual(len({generate_tag() for _ in range(100)}), 100)
        cid = generate_call_id("gw.example.net")
        self.assertTrue(cid.endswith("@gw.example.net"))
        self.assertNotEqual(generate_call_id(), generate_call_id())
        self.assertNotIn("@", generate_call_id())

    def test_mutation_and_cache(self) -> None:
        """
        Parsed values are cached per header value, so changing a header
        is seen by the properties.
        """
        m = parse_message(COMPACT)
        self.assertEqual(m.from_.tag, "abc")
        m.headers.set("From", "<sip:x@y>;tag=new")
        self.assertEqual(m.from_.tag, "new")
        via = m.top_via
        via.params["received"] = "192.0.2.1"
        m.headers.replace_first("Via", str(via))
        self.assertEqual(parse_message(m.to_bytes()).top_via.received, "192.0.2.1")

    def test_name_addr_types(self) -> None:
        m = parse_message(SOFTPHONE_MESSAGE)
        self.assertIsInstance(m.from_, NameAddr)
        self.assertIsInstance(m.top_via, Via)
        self.assertIsInstance(m.request_uri, SipURI)
