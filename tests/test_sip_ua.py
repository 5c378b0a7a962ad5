"""
Tests for L{gwsms.sip.ua}: the MESSAGE UAS decisions and the MESSAGE UAC,
with fake transactions (no sockets).
"""

from __future__ import annotations

import dataclasses

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from gwsms.config import SipConfig
from gwsms.sip import digest
from gwsms.sip.interfaces import IMessageHandler, IncomingMessage, RejectingMessageHandler, SipAnswer
from gwsms.sip.message import Request, make_response, parse_message
from gwsms.sip.resolver import ResolveError, Target
from gwsms.sip.transport import Peer
from gwsms.sip.ua import MessageUAC, MessageUAS, parse_content_type, parse_cpim

SOURCE = Peer("udp", "192.0.2.77", 5060)


def joined(response, name):
    return ", ".join(response.headers.get_all(name))
TRUSTED = Peer("udp", "10.1.1.1", 5060)


def request(method="MESSAGE", body=b"hello", content_type="text/plain;charset=UTF-8",
            extra=(), uri="sip:+4930123@gw.example", max_forwards="70", cseq=1):
    headers = [
        ("Via", "SIP/2.0/UDP 192.0.2.77:5060;branch=z9hG4bK-test%d" % cseq),
        ("From", "<sip:alice@example.org>;tag=abc"),
        ("To", f"<{uri}>"),
        ("Call-ID", "call-1@example.org"),
        ("CSeq", f"{cseq} {method}"),
    ]
    if max_forwards is not None:
        headers.append(("Max-Forwards", max_forwards))
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    headers += list(extra)
    # Round-trip through the wire form, as the transport would deliver it.
    return parse_message(Request(method, uri, headers, body).to_bytes())


@implementer(IMessageHandler)
class RecordingHandler:
    def __init__(self, answer=SipAnswer(202, "Accepted")):
        self.messages = []
        self.answer = answer
        self.pending = None

    def message_received(self, message):
        self.messages.append(message)
        if self.pending is not None:
            return self.pending
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class FakeTxn:
    def __init__(self):
        self.responses = []

    def respond(self, response):
        self.responses.append(response)


class FakeUsers:
    def __init__(self):
        self.users = {}

    def add(self, username, password, realm):
        from gwsms.store.sip import SipUser

        self.users[(username, realm)] = SipUser(
            username, realm,
            digest.compute_ha1("MD5", username, realm, password),
            digest.compute_ha1("SHA-256", username, realm, password),
        )

    def get(self, username, realm):
        return defer.succeed(self.users.get((username, realm)))


class UASTests(SynchronousTestCase):
    def setUp(self):
        self.config = SipConfig(domain="gw.example", max_message_size=1000, trusted=("10.0.0.0/8",),
                                user_agent="gwsms-test")
        self.handler = RecordingHandler()
        self.uas = MessageUAS(self.config, self.handler)

    def answer(self, req, source=SOURCE, uas=None):
        txn = FakeTxn()
        (uas or self.uas).request_received(req, source, txn)
        self.assertEqual(len(txn.responses), 1)
        return txn.responses[0]

    def test_message_accepted(self):
        response = self.answer(request(extra=[("Subject", "hi")]))
        self.assertEqual(response.status, 202)
        self.assertEqual(response.body, b"")
        self.assertIsNone(response.headers.get("Contact"))
        self.assertIsNotNone(response.to.tag)
        [message] = self.handler.messages
        self.assertIsInstance(message, IncomingMessage)
        self.assertEqual(message.sender_uri, "sip:alice@example.org")
        self.assertEqual(message.recipient_uri, "sip:+4930123@gw.example")
        self.assertEqual(message.content_type, "text/plain")
        self.assertEqual(message.charset, "utf-8")
        self.assertEqual(message.text(), "hello")
        self.assertEqual(message.recipient_user, "+4930123")
        self.assertEqual(message.sender_user, "alice")
        self.assertIsNone(message.authenticated_user)
        self.assertEqual(message.request.headers.get("Subject"), "hi")
        self.assertEqual(message.source, SOURCE)

    def test_charset_param(self):
        self.answer(request(body="Grüße".encode("latin-1"), content_type='text/plain; charset="ISO-8859-1"'))
        self.assertEqual(self.handler.messages[0].text(), "Grüße")

    CPIM = (
        b"From: MR SANDERS <im:piglet@100akerwood.com>\r\n"
        b"To: Depressed Donkey <im:eeyore@100akerwood.com>\r\n"
        b"DateTime: 2000-12-13T13:40:00-08:00\r\n"
        b"\r\n"
        b"Content-type: text/plain; charset=ISO-8859-1\r\n"
        b"Content-ID: <1234567890@foo.com>\r\n"
        b"\r\n"
        b"Gr\xfc\xdfe from the wood."
    )

    def test_cpim_unwrapped(self):
        self.assertEqual(self.answer(request(body=self.CPIM, content_type="message/cpim")).status, 202)
        [message] = self.handler.messages
        self.assertEqual(message.content_type, "message/cpim")
        self.assertEqual(message.charset, "iso-8859-1")
        self.assertEqual(message.text(), "Grüße from the wood.")
        self.assertEqual(message.request.body, self.CPIM)

    def test_cpim_non_text_content(self):
        body = self.CPIM.replace(b"text/plain; charset=ISO-8859-1", b"image/png")
        response = self.answer(request(body=body, content_type="message/cpim"))
        self.assertEqual(response.status, 415)

    def test_cpim_malformed(self):
        response = self.answer(request(body=b"no blank line", content_type="message/cpim"))
        self.assertEqual(response.status, 400)
        self.assertIn("blank line", response.reason)

    def test_unsupported_type(self):
        response = self.answer(request(content_type="application/im-iscomposing+xml"))
        self.assertEqual(response.status, 415)
        self.assertEqual(joined(response, "Accept"), "text/plain, message/cpim")
        self.assertEqual(self.handler.messages, [])

    def test_unknown_charset(self):
        self.assertEqual(self.answer(request(content_type="text/plain;charset=klingon")).status, 415)
        self.assertEqual(self.answer(request(content_type="text/plain;charset=base64", cseq=2)).status, 415)

    def test_content_encoding(self):
        response = self.answer(request(extra=[("Content-Encoding", "gzip")]))
        self.assertEqual(response.status, 415)
        self.assertEqual(response.headers.get("Accept-Encoding"), "identity")

    def test_body_without_type(self):
        self.assertEqual(self.answer(request(content_type=None)).status, 415)

    def test_empty_body_accepted(self):
        self.assertEqual(self.answer(request(body=b"", content_type=None)).status, 202)
        self.assertEqual(self.handler.messages[0].body, b"")

    def test_too_large(self):
        self.assertEqual(self.answer(request(body=b"x" * 1001)).status, 413)
        self.assertEqual(self.answer(request(body=b"x" * 1000, cseq=2)).status, 202)

    def test_max_forwards(self):
        self.assertEqual(self.answer(request(max_forwards="0")).status, 483)
        self.assertEqual(self.answer(request(max_forwards=None)).status, 202)
        self.assertEqual(self.answer(request(method="OPTIONS", max_forwards="0")).status, 200)

    def test_options(self):
        response = self.answer(request(method="OPTIONS", body=b"", content_type=None))
        self.assertEqual(response.status, 200)
        self.assertEqual(joined(response, "Allow"), "MESSAGE, OPTIONS, ACK, CANCEL")
        self.assertEqual(joined(response, "Accept"), "text/plain, message/cpim")
        self.assertIsNotNone(response.to.tag)

    def test_register_without_registrar(self):
        response = self.answer(request(method="REGISTER", body=b"", content_type=None))
        self.assertEqual(response.status, 405)
        self.assertNotIn("REGISTER", joined(response, "Allow"))

    def test_invite_405(self):
        response = self.answer(request(method="INVITE", body=b"", content_type=None))
        self.assertEqual(response.status, 405)
        self.assertEqual(joined(response, "Allow"), "MESSAGE, OPTIONS, ACK, CANCEL")
        self.assertEqual(self.answer(request(method="SUBSCRIBE", body=b"", content_type=None)).status, 405)

    def test_unknown_method_501(self):
        self.assertEqual(self.answer(request(method="FROBNICATE", body=b"", content_type=None)).status, 501)

    def test_ack_ignored(self):
        txn = FakeTxn()
        self.uas.request_received(request(method="ACK", body=b"", content_type=None), SOURCE, txn)
        self.assertEqual(txn.responses, [])

    def test_require_420(self):
        response = self.answer(request(extra=[("Require", "100rel, foo")]))
        self.assertEqual(response.status, 420)
        self.assertEqual(joined(response, "Unsupported"), "100rel, foo")

    def test_unsupported_uri_scheme(self):
        self.assertEqual(self.answer(request(uri="mailto:a@b.example")).status, 416)

    def test_handler_refusal_headers_kept(self):
        self.handler.answer = SipAnswer(480, None, (("Retry-After", "60"),))
        response = self.answer(request())
        self.assertEqual((response.status, response.reason), (480, "Temporarily Unavailable"))
        self.assertEqual(response.headers.get("Retry-After"), "60")

    def test_contact_stripped_from_2xx(self):
        self.handler.answer = SipAnswer(200, "OK", (("Contact", "<sip:x@y>"), ("X-Id", "42")))
        response = self.answer(request())
        self.assertIsNone(response.headers.get("Contact"))
        self.assertEqual(response.headers.get("X-Id"), "42")

    def test_handler_exception_500(self):
        self.handler.answer = RuntimeError("boom")
        self.assertEqual(self.answer(request()).status, 500)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_handler_bad_answer_500(self):
        self.handler.answer = SipAnswer(100)
        self.assertEqual(self.answer(request()).status, 500)

    def test_answer_waits_for_handler(self):
        self.handler.pending = defer.Deferred()
        txn = FakeTxn()
        self.uas.request_received(request(), SOURCE, txn)
        self.assertEqual(txn.responses, [])
        self.handler.pending.callback(SipAnswer(202))
        self.assertEqual([r.status for r in txn.responses], [202])

    def test_respond_callable_when_no_txn(self):
        sent = []
        self.uas.respond = lambda req, resp: sent.append(resp)
        self.uas.request_received(request(), SOURCE)
        self.assertEqual([r.status for r in sent], [202])

    def test_rejecting_handler(self):
        handler = RejectingMessageHandler()
        verifyObject(IMessageHandler, handler)
        uas = MessageUAS(self.config, handler)
        response = self.answer(request(), uas=uas)
        self.assertEqual(response.status, 480)
        self.assertIsNotNone(response.headers.get("Retry-After"))

    def test_auth_required_without_authenticator(self):
        self.assertRaises(ValueError, MessageUAS, dataclasses.replace(self.config, auth=True), self.handler)


class UASAuthTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1000)
        self.users = FakeUsers()
        self.users.add("alice", "pw", "gw.example")
        self.config = SipConfig(domain="gw.example", auth=True, realm="gw.example",
                                trusted=("10.0.0.0/8",))
        self.auth = digest.DigestAuthenticator(self.clock, "gw.example", self.users)
        self.handler = RecordingHandler()
        self.uas = MessageUAS(self.config, self.handler, authenticator=self.auth)

    def answer(self, req, source=SOURCE):
        txn = FakeTxn()
        self.uas.request_received(req, source, txn)
        return txn.responses[0]

    def test_challenge_then_success(self):
        first = self.answer(request())
        self.assertEqual(first.status, 401)
        challenges = first.headers.get_all("WWW-Authenticate")
        self.assertEqual(len(challenges), 2)
        self.assertIn("SHA-256", challenges[0])
        self.assertEqual(self.handler.messages, [])
        value = digest.build_authorization(challenges, "MESSAGE", "sip:+4930123@gw.example", "alice", "pw")
        second = self.answer(request(cseq=2, extra=[("Authorization", value)]))
        self.assertEqual(second.status, 202)
        self.assertEqual(self.handler.messages[0].authenticated_user, "alice")

    def test_wrong_password_challenged_again(self):
        challenges = self.answer(request()).headers.get_all("WWW-Authenticate")
        value = digest.build_authorization(challenges, "MESSAGE", "sip:+4930123@gw.example", "alice", "bad")
        self.assertEqual(self.answer(request(cseq=2, extra=[("Authorization", value)])).status, 401)
        self.assertEqual(self.handler.messages, [])

    def test_stale(self):
        challenges = self.answer(request()).headers.get_all("WWW-Authenticate")
        self.clock.advance(400)
        value = digest.build_authorization(challenges, "MESSAGE", "sip:+4930123@gw.example", "alice", "pw")
        response = self.answer(request(cseq=2, extra=[("Authorization", value)]))
        self.assertEqual(response.status, 401)
        self.assertIn("stale=true", response.headers.get("WWW-Authenticate"))

    def test_trusted_skips(self):
        self.assertEqual(self.answer(request(), source=TRUSTED).status, 202)
        self.assertIsNone(self.handler.messages[0].authenticated_user)

    def test_options_not_challenged(self):
        self.assertEqual(self.answer(request(method="OPTIONS", body=b"", content_type=None)).status, 200)

    def test_register_challenged_and_passed_to_registrar(self):
        seen = []

        class Registrar:
            def register(self, req, source, user):
                seen.append(user)
                return defer.succeed(make_response(req, 200))

        uas = MessageUAS(self.config, self.handler, authenticator=self.auth, registrar=Registrar())
        txn = FakeTxn()
        reg = request(method="REGISTER", body=b"", content_type=None, uri="sip:gw.example")
        uas.request_received(reg, SOURCE, txn)
        self.assertEqual(txn.responses[0].status, 401)
        value = digest.build_authorization(txn.responses[0].headers.get_all("WWW-Authenticate"),
                                           "REGISTER", "sip:gw.example", "alice", "pw")
        reg2 = request(method="REGISTER", body=b"", content_type=None, uri="sip:gw.example", cseq=2,
                       extra=[("Authorization", value)])
        uas.request_received(reg2, SOURCE, txn)
        self.assertEqual(txn.responses[1].status, 200)
        self.assertIsNotNone(txn.responses[1].to.tag)
        self.assertEqual(seen, ["alice"])
        self.assertIn("REGISTER", uas.allow)


class FakeTransactions:
    def __init__(self):
        self.sent = []
        self.answers = []

    def send_request(self, req, peer):
        self.sent.append((req, peer))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            return defer.fail(answer)
        if isinstance(answer, int):
            answer = make_response(req, answer, to_tag="t")
        elif callable(answer):
            answer = answer(req)
        return defer.succeed(answer)


class FakeSipResolver:
    def __init__(self, targets=None):
        self.targets = targets
        self.asked = []

    def resolve_uri(self, uri):
        self.asked.append(str(uri))
        if self.targets is None:
            return defer.fail(ResolveError(f"{uri.host}: nothing"))
        return defer.succeed(list(self.targets))


class UACTests(SynchronousTestCase):
    def setUp(self):
        self.config = SipConfig(domain="gw.example", user_agent="gwsms-test",
                                outbound_username="gw", outbound_password="secret")
        self.txns = FakeTransactions()
        self.resolver = FakeSipResolver([Target("udp", "192.0.2.9", 5060)])
        self.uac = MessageUAC(self.config, self.txns, self.resolver)

    def test_request_shape(self):
        self.txns.answers = [202]
        response = self.successResultOf(
            self.uac.send_message("sip:bob@192.0.2.9", "+4930123", None, "hi ✓", extra_headers=[("X-A", "1")])
        )
        self.assertEqual(response.status, 202)
        [(req, peer)] = self.txns.sent
        self.assertEqual(peer, Peer("udp", "192.0.2.9", 5060))
        self.assertEqual(req.method, "MESSAGE")
        self.assertEqual(req.uri, "sip:bob@192.0.2.9")
        self.assertEqual(str(req.from_.uri), "sip:+4930123@gw.example")
        self.assertIsNotNone(req.from_.tag)
        self.assertEqual(str(req.to.uri), "sip:bob@192.0.2.9")
        self.assertIsNone(req.to.tag)
        self.assertEqual(req.cseq, (1, "MESSAGE"))
        self.assertEqual(req.max_forwards, 70)
        self.assertTrue(req.top_via.branch.startswith("z9hG4bK"))
        self.assertEqual(req.headers.get("User-Agent"), "gwsms-test")
        self.assertEqual(req.headers.get("Content-Type"), "text/plain;charset=UTF-8")
        self.assertEqual(req.headers.get("X-A"), "1")
        self.assertEqual(req.body, "hi ✓".encode())
        self.assertTrue(req.call_id.endswith("@gw.example"))
        # the wire form parses back
        self.assertEqual(parse_message(req.to_bytes()).method, "MESSAGE")

    def test_retry_on_401_with_credentials(self):
        auth = digest.DigestAuthenticator(task.Clock(), "far.example", FakeUsers())

        def challenge(req):
            return make_response(req, 401, headers=[("WWW-Authenticate", c) for c in auth.challenges()],
                                 to_tag="x")

        self.txns.answers = [challenge, 200]
        response = self.successResultOf(self.uac.send_message("sip:bob@192.0.2.9", "gw", "sip:bob@far.example", "x"))
        self.assertEqual(response.status, 200)
        (first, _), (second, _) = self.txns.sent
        self.assertEqual(second.call_id, first.call_id)
        self.assertEqual(second.cseq, (2, "MESSAGE"))
        self.assertEqual(second.from_.tag, first.from_.tag)
        self.assertNotEqual(second.top_via.branch, first.top_via.branch)
        users = FakeUsers()
        users.add("gw", "secret", "far.example")
        auth._users = users
        result = self.successResultOf(
            auth.authenticate("MESSAGE", second.uri, second.headers.get_all("Authorization"), second.body)
        )
        self.assertEqual(result.username, "gw")

    def test_407_uses_proxy_authorization(self):
        def challenge(req):
            return make_response(req, 407, headers=[("Proxy-Authenticate", 'Digest realm="p", nonce="n", qop="auth"')])

        self.txns.answers = [challenge, 202]
        self.successResultOf(self.uac.send_message("sip:bob@192.0.2.9", "gw", None, "x"))
        second = self.txns.sent[1][0]
        self.assertIn('realm="p"', second.headers.get("Proxy-Authorization"))
        self.assertIsNone(second.headers.get("Authorization"))

    def test_only_one_retry(self):
        def challenge(req):
            return make_response(req, 401, headers=[("WWW-Authenticate", 'Digest realm="r", nonce="n"')])

        self.txns.answers = [challenge, challenge]
        response = self.successResultOf(self.uac.send_message("sip:bob@192.0.2.9", "gw", None, "x"))
        self.assertEqual(response.status, 401)
        self.assertEqual(len(self.txns.sent), 2)

    def test_no_credentials_no_retry(self):
        uac = MessageUAC(SipConfig(domain="gw.example"), self.txns, self.resolver)
        self.txns.answers = [401]
        self.assertEqual(self.successResultOf(uac.send_message("sip:b@192.0.2.9", "gw", None, "x")).status, 401)
        self.assertEqual(len(self.txns.sent), 1)

    def test_large_goes_tcp(self):
        self.txns.answers = [200, 200]
        self.successResultOf(self.uac.send_message("sip:bob@192.0.2.9", "gw", None, "y" * 1300))
        self.assertEqual(self.txns.sent[0][1].transport, "tcp")
        self.successResultOf(self.uac.send_message("sip:bob@192.0.2.9", "gw", None, "y" * 100))
        self.assertEqual(self.txns.sent[1][1].transport, "udp")

    def test_large_forced_udp_stays(self):
        self.txns.answers = [200]
        self.successResultOf(self.uac.send_message("sip:bob@192.0.2.9;transport=udp", "gw", None, "y" * 1400))
        self.assertEqual(self.txns.sent[0][1].transport, "udp")

    def test_failover_to_next_target(self):
        from gwsms.sip.transport import TransportError

        self.resolver.targets = [Target("tcp", "192.0.2.1", 5060), Target("tcp", "192.0.2.2", 5060)]
        self.txns.answers = [TransportError("refused"), 200]
        self.assertEqual(self.successResultOf(self.uac.send_message("sip:b@example.org", "gw", None, "x")).status, 200)
        self.assertEqual([p.host for _r, p in self.txns.sent], ["192.0.2.1", "192.0.2.2"])
        self.assertNotEqual(self.txns.sent[0][0].top_via.branch, self.txns.sent[1][0].top_via.branch)

    def test_timeout_fails(self):
        from gwsms.sip.transaction import TimeoutError as SipTimeout

        self.txns.answers = [SipTimeout("Timer F")]
        self.failureResultOf(self.uac.send_message("sip:b@192.0.2.9", "gw", None, "x"), SipTimeout)
        self.assertEqual(self.uac.stats["failed"], 1)

    def test_resolve_failure(self):
        self.resolver.targets = None
        self.failureResultOf(self.uac.send_message("sip:b@nowhere.invalid", "gw", None, "x"), ResolveError)

    def test_bad_uri(self):
        from gwsms.sip.message import SipError

        self.failureResultOf(self.uac.send_message("sip:", "gw", None, "x"), SipError)

    def test_explicit_peer_skips_resolution(self):
        self.txns.answers = [200]
        peer = Peer("tcp", "198.51.100.7", 40000)
        self.successResultOf(self.uac.send_message("sip:bob@10.0.0.9", "gw", None, "x", peer=peer))
        self.assertEqual(self.resolver.asked, [])
        self.assertEqual(self.txns.sent[0][1], peer)
        self.assertEqual(self.txns.sent[0][0].uri, "sip:bob@10.0.0.9")

    def test_outbound_uri_default(self):
        uac = MessageUAC(SipConfig(domain="gw.example", outbound_uri="sip:proxy.example;transport=tcp"),
                         self.txns, self.resolver)
        self.txns.answers = [202]
        self.successResultOf(uac.send_message(None, "+4930123", "+4940999", "x"))
        req = self.txns.sent[0][0]
        self.assertEqual(req.uri, "sip:proxy.example;transport=tcp")
        self.assertEqual(str(req.to.uri), "sip:+4940999@gw.example")
        self.assertEqual(self.resolver.asked, ["sip:proxy.example;transport=tcp"])

    def test_no_uri_no_outbound(self):
        uac = MessageUAC(SipConfig(domain="gw.example"), self.txns, self.resolver)
        f = self.failureResultOf(uac.send_message("", "gw", None, "x"), ValueError)
        self.assertIn("outbound_uri", str(f.value))

    def test_password_not_in_repr(self):
        self.assertNotIn("secret", repr(self.uac))


class HelpersTests(SynchronousTestCase):
    def test_parse_cpim_lf_only(self):
        headers, media, params, content = parse_cpim(b"From: <im:a@b>\n\nContent-Type: text/plain\n\nhi")
        self.assertEqual((headers, media, params, content), ([("From", "<im:a@b>")], "text/plain", {}, b"hi"))
        self.assertRaises(ValueError, parse_cpim, b"From: x\n\nContent-ID: 1\n\nhi")
        self.assertRaises(ValueError, parse_cpim, b"garbage line\n\nContent-Type: text/plain\n\nhi")

    def test_incoming_message_users(self):
        message = IncomingMessage(None, None, "tel:+4930123", "sip:gw.example", "text/plain", b"")
        self.assertEqual(message.sender_user, "+4930123")
        self.assertIsNone(message.recipient_user)
        self.assertIsNone(IncomingMessage(None, None, "junk", "", "text/plain", b"").sender_user)

    def test_parse_content_type(self):
        self.assertEqual(parse_content_type('Text/Plain ; Charset="UTF-8"'), ("text/plain", {"charset": "UTF-8"}))
        self.assertEqual(parse_content_type(None), ("", {}))


class UASRobustnessTests(SynchronousTestCase):
    """Odd header values get a 4xx or are accepted, never a 500 or a traceback."""

    def test_random_header_values(self):
        from hypothesis import given, settings
        from hypothesis import strategies as st

        from gwsms.sip.message import SipError

        from gwsms.sip.registrar import Registrar
        from gwsms.store import migrate
        from gwsms.store.database import open_database_sync
        from gwsms.store.sip import RegistrationStore

        db = open_database_sync("sqlite::memory:")
        self.addCleanup(db.close)
        self.successResultOf(migrate.upgrade(db))
        clock = task.Clock()
        registrar = Registrar(clock, RegistrationStore(db, clock), "gw.example")
        config = SipConfig(domain="gw.example", registrar=True)
        handler = RecordingHandler()
        uas = MessageUAS(config, handler, registrar=registrar)
        names = st.sampled_from(["Content-Type", "Max-Forwards", "From", "Require", "Content-Encoding",
                                 "To", "Authorization", "Contact", "Expires", "Call-ID"])
        values = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=60)
        methods = st.sampled_from(["MESSAGE", "OPTIONS", "REGISTER", "INVITE", "FOO"])

        @settings(max_examples=300, deadline=None)
        @given(methods, st.lists(st.tuples(names, values), max_size=4), st.binary(max_size=50))
        def check(method, changes, body):
            req = request(method=method, body=body)
            for name, value in changes:
                req.headers.set(name, value)
            try:
                req = parse_message(req.to_bytes())
            except SipError:
                return
            txn = FakeTxn()
            uas.request_received(req, SOURCE, txn)
            self.assertEqual(len(txn.responses), 1)
            self.assertNotEqual(txn.responses[0].status, 500, (method, changes))

        check()
        self.assertEqual(self.flushLoggedErrors(), [])
