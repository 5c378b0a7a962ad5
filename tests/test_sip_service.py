"""
Tests for L{gwsms.sip.service}: configuration errors (no sockets) and
integration over real loopback sockets (port 0): UAC -> UAS over UDP, TCP
and TLS, UDP retransmission absorption, OPTIONS, REGISTER with SQLite.
"""

from __future__ import annotations

import datetime
import os

from twisted.internet import defer, protocol, reactor
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from gwsms.config import SipConfig
from gwsms.sip.interfaces import IMessageHandler, SipAnswer
from gwsms.sip.message import Request, parse_message
from gwsms.sip.service import SipService, SipServiceError, SipStores, load_tls_options
from gwsms.store import migrate
from gwsms.store.database import open_database_sync
from gwsms.store.sip import RegistrationStore, SipUserStore


@implementer(IMessageHandler)
class RecordingHandler:
    """Records messages, answers 202, fires waiters when enough arrived."""

    def __init__(self):
        self.messages = []
        self._waiters = []

    def message_received(self, message):
        self.messages.append(message)
        for count, d in list(self._waiters):
            if len(self.messages) >= count:
                self._waiters.remove((count, d))
                d.callback(self.messages)
        return SipAnswer(202, "Accepted")

    def wait_for(self, count, timeout=10):
        if len(self.messages) >= count:
            return defer.succeed(self.messages)
        d = defer.Deferred()
        self._waiters.append((count, d))
        d.addTimeout(timeout, reactor)
        return d


class NoDNS:
    """An IResolver that must not be used (all targets are IP literals)."""

    def lookupService(self, name, timeout=None):
        raise AssertionError(f"unexpected SRV lookup {name}")

    lookupAddress = lookupIPV6Address = lookupService


def make_cert(directory):
    """A self-signed certificate for 127.0.0.1 (IP SAN); returns (cert, key) paths."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path = os.path.join(directory, "cert.pem")
    key_path = os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


class FakeRegistrations:
    def expire(self, now):
        return defer.succeed(0)


class ConfigErrorTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()

    def build(self, stores=None, **kw):
        return SipService(self.reactor, SipConfig(**kw), RecordingHandler(), stores, resolver=NoDNS())

    def test_tls_without_cert(self):
        e = self.assertRaises(SipServiceError, self.build, listen=("tls:127.0.0.1:0",))
        self.assertIn("tls_cert", str(e))

    def test_tls_unreadable_cert(self):
        e = self.assertRaises(SipServiceError, self.build, listen=("tls:127.0.0.1:0",),
                              tls_cert="/nonexistent/c.pem", tls_key="/nonexistent/k.pem")
        self.assertIn("/nonexistent/c.pem", str(e))

    def test_tls_garbage_cert(self):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("not a certificate")
        e = self.assertRaises(SipServiceError, load_tls_options, path, path)
        self.assertIn("PEM", str(e))

    def test_tls_good_cert_loads(self):
        directory = self.mktemp()
        os.makedirs(directory)
        cert, key = make_cert(directory)
        self.assertIsNotNone(load_tls_options(cert, key))

    def test_auth_needs_user_store(self):
        e = self.assertRaises(SipServiceError, self.build, auth=True)
        self.assertIn("auth", str(e))

    def test_registrar_needs_store(self):
        e = self.assertRaises(SipServiceError, self.build, registrar=True)
        self.assertIn("registrar", str(e))

    def test_bad_trusted(self):
        e = self.assertRaises(SipServiceError, self.build, trusted=("nonsense",))
        self.assertIn("nonsense", str(e))

    def test_bad_listen(self):
        e = self.assertRaises(SipServiceError, self.build, listen=("sctp:1.2.3.4:5",))
        self.assertIn("listen", str(e))

    def test_bad_digest_algorithms(self):
        e = self.assertRaises(SipServiceError, SipService, self.reactor, SipConfig(), RecordingHandler(),
                              resolver=NoDNS(), digest_algorithms=("SHA-512",))
        self.assertIn("SHA-512", str(e))

    def test_md5_only_challenges(self):
        service = SipService(self.reactor, SipConfig(auth=True), RecordingHandler(),
                             SipStores(users=object()), resolver=NoDNS(), digest_algorithms=("MD5",))
        [challenge] = service.authenticator.challenges()
        self.assertIn("algorithm=MD5", challenge)
        self.assertEqual(service.authenticator.realm, "localhost")

    def test_default_resolver_leaves_no_timers(self):
        service = SipService(self.reactor, SipConfig(), RecordingHandler())
        self.assertIsNotNone(service.resolver)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_wiring(self):
        service = self.build(SipStores(users=object(), registrations=object()), auth=True, registrar=True,
                             realm="r.example")
        self.assertIs(service.uas.registrar, service.registrar)
        self.assertEqual(service.authenticator.realm, "r.example")
        self.assertIs(service.transport.transaction_layer, service.transactions)
        self.assertIs(service.transactions.tu, service.uas)

    def test_start_and_stop_on_memory_reactor(self):
        service = self.build(listen=("tcp:127.0.0.1:5998", "tcp:127.0.0.1:5997"), registrar=True,
                             stores=SipStores(registrations=FakeRegistrations()))
        service.startService()
        self.assertEqual([p[0] for p in self.reactor.tcpServers], [5998, 5997])
        self.assertEqual(service.registrar._loop.running, True)
        self.successResultOf(service.stopService())
        self.assertIsNone(service.registrar._loop)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_failed_listen_closes_opened_ports(self):
        class Refusing(MemoryReactorClock):
            def listenTCP(self, port, factory, backlog=50, interface=""):
                if port == 5997:
                    from twisted.internet.error import CannotListenError

                    raise CannotListenError(interface, port, OSError("in use"))
                return MemoryReactorClock.listenTCP(self, port, factory, backlog, interface)

        self.reactor = Refusing()
        service = self.build(listen=("tcp:127.0.0.1:5998", "tcp:127.0.0.1:5997"))
        from twisted.internet.error import CannotListenError

        self.assertRaises(CannotListenError, service.startService)
        self.assertFalse(service.running)
        self.assertEqual(service.addresses(), [])


class UDPClient(protocol.DatagramProtocol):
    def __init__(self):
        self.received = []
        self._waiters = []

    def datagramReceived(self, data, addr):
        self.received.append(parse_message(data))
        for count, d in list(self._waiters):
            if len(self.received) >= count:
                self._waiters.remove((count, d))
                d.callback(self.received)

    def wait_for(self, count, timeout=10):
        if len(self.received) >= count:
            return defer.succeed(self.received)
        d = defer.Deferred()
        self._waiters.append((count, d))
        d.addTimeout(timeout, reactor)
        return d


class IntegrationTests(TestCase):
    timeout = 30

    def setUp(self):
        self.handler = RecordingHandler()
        self.db = open_database_sync("sqlite::memory:")
        self.addCleanup(self.db.close)
        self.successResultOf(migrate.upgrade(self.db))

    def start(self, **kw):
        config = SipConfig(**{"listen": ("udp:127.0.0.1:0", "tcp:127.0.0.1:0"), "domain": "gw.test",
                              "t1": 0.1, "t2": 0.4, "t4": 0.5, **kw})
        stores = SipStores(SipUserStore(self.db), RegistrationStore(self.db, reactor))
        service = SipService(reactor, config, self.handler, stores, resolver=NoDNS(), **self.extra)
        service.startService()
        self.addCleanup(service.stopService)
        return service

    extra: dict = {}

    def udp_client(self):
        client = UDPClient()
        port = reactor.listenUDP(0, client, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return client, port.getHost().port

    @defer.inlineCallbacks
    def test_uac_to_uas_udp_and_tcp(self):
        service = self.start()
        self.assertLessEqual({"udp", "tcp"}, {t for t, _h, _p in service.addresses()})
        for transport in ("udp", "tcp"):
            port = service.port(transport)
            response = yield service.uac.send_message(
                f"sip:+4930999@127.0.0.1:{port};transport={transport}", "+4930123", None, f"hello {transport} ✓")
            self.assertEqual(response.status, 202)
        self.assertEqual([m.text() for m in self.handler.messages], ["hello udp ✓", "hello tcp ✓"])
        self.assertEqual([m.source.transport for m in self.handler.messages], ["udp", "tcp"])
        self.assertEqual(self.handler.messages[0].sender_uri, "sip:+4930123@gw.test")

    @defer.inlineCallbacks
    def test_large_message_moves_to_tcp(self):
        service = self.start()
        # The URI names no transport, so the UAC may move the request to TCP;
        # it points at the TCP listener's port.
        response = yield service.uac.send_message(
            f"sip:+4930999@127.0.0.1:{service.port('tcp')}", "gw", None, "z" * 1500)
        self.assertEqual(response.status, 202)
        self.assertEqual(self.handler.messages[0].source.transport, "tcp")
        self.assertEqual(len(self.handler.messages[0].body), 1500)

    @defer.inlineCallbacks
    def test_udp_retransmission_absorbed(self):
        service = self.start()
        client, client_port = self.udp_client()
        request = Request("MESSAGE", "sip:+4930999@127.0.0.1", [
            ("Via", f"SIP/2.0/UDP 127.0.0.1:{client_port};branch=z9hG4bK-retrans-1;rport"),
            ("Max-Forwards", "70"),
            ("From", "<sip:a@127.0.0.1>;tag=1"),
            ("To", "<sip:+4930999@127.0.0.1>"),
            ("Call-ID", "retrans-1@127.0.0.1"),
            ("CSeq", "1 MESSAGE"),
            ("Content-Type", "text/plain"),
        ], b"once").to_bytes()
        address = ("127.0.0.1", service.port("udp"))
        client.transport.write(request, address)
        yield client.wait_for(1)
        client.transport.write(request, address)
        responses = yield client.wait_for(2)
        self.assertEqual([r.status for r in responses], [202, 202])
        self.assertEqual(responses[0].to.tag, responses[1].to.tag)
        self.assertEqual(responses[0].to_bytes(), responses[1].to_bytes())
        self.assertEqual(len(self.handler.messages), 1)

    @defer.inlineCallbacks
    def test_options_and_register_over_udp(self):
        service = self.start(registrar=True)
        client, client_port = self.udp_client()

        def req(method, cseq, extra=()):
            return Request(method, "sip:gw.test", [
                ("Via", f"SIP/2.0/UDP 127.0.0.1:{client_port};branch=z9hG4bK-r{cseq};rport"),
                ("Max-Forwards", "70"),
                ("From", "<sip:+4930555@gw.test>;tag=1"),
                ("To", "<sip:+4930555@gw.test>"),
                ("Call-ID", "reg@127.0.0.1"),
                ("CSeq", f"{cseq} {method}"),
            ] + list(extra)).to_bytes()

        address = ("127.0.0.1", service.port("udp"))
        client.transport.write(req("OPTIONS", 1), address)
        [options] = yield client.wait_for(1)
        self.assertEqual(options.status, 200)
        self.assertIn("REGISTER", options.headers.get_all("Allow"))
        client.transport.write(req("REGISTER", 2, [("Contact", f"<sip:+4930555@127.0.0.1:{client_port}>"),
                                                  ("Expires", "600")]), address)
        responses = yield client.wait_for(2)
        self.assertEqual(responses[1].status, 200)
        bindings = yield service.registrar.lookup("4930555")
        self.assertEqual([b.contact_uri for b in bindings], [f"sip:+4930555@127.0.0.1:{client_port}"])

    @defer.inlineCallbacks
    def test_uas_rejects_by_default_handler(self):
        from gwsms.sip.interfaces import RejectingMessageHandler

        self.handler = RejectingMessageHandler()
        service = self.start()
        response = yield service.uac.send_message(
            f"sip:x@127.0.0.1:{service.port('udp')}", "gw", None, "x")
        self.assertEqual(response.status, 480)

    @defer.inlineCallbacks
    def test_auth_roundtrip(self):
        """The UAC answers the UAS's own challenge with the outbound credentials."""
        yield SipUserStore(self.db).add("gw", "pw", "gw.test")
        service = self.start(auth=True, realm="gw.test", outbound_username="gw", outbound_password="pw")
        response = yield service.uac.send_message(f"sip:x@127.0.0.1:{service.port('udp')}", "gw", None, "x")
        self.assertEqual(response.status, 202)
        self.assertEqual(self.handler.messages[0].authenticated_user, "gw")
        self.assertEqual(service.authenticator is not None, True)


class TLSIntegrationTests(IntegrationTests):
    """The same service plus a TLS listener; the UAC trusts the test cert."""

    def setUp(self):
        IntegrationTests.setUp(self)
        from twisted.internet import ssl

        directory = self.mktemp()
        os.makedirs(directory)
        self.cert, self.key = make_cert(directory)
        with open(self.cert) as f:
            authority = ssl.Certificate.loadPEM(f.read())
        self.extra = {"tls_client_creator": lambda name: ssl.optionsForClientTLS(name, trustRoot=authority)}

    def start(self, **kw):
        kw.setdefault("listen", ("udp:127.0.0.1:0", "tcp:127.0.0.1:0", "tls:127.0.0.1:0"))
        return IntegrationTests.start(self, tls_cert=self.cert, tls_key=self.key, **kw)

    @defer.inlineCallbacks
    def test_message_over_tls(self):
        service = self.start()
        response = yield service.uac.send_message(
            f"sips:+4930999@127.0.0.1:{service.port('tls')}", "gw", None, "secure")
        self.assertEqual(response.status, 202)
        self.assertEqual(self.handler.messages[0].source.transport, "tls")
