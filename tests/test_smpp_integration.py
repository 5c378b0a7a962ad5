"""
Integration tests: L{gwsms.smpp.service.SmppService} with the real ESME
protocol against SMSCs gwsms did not write, over real sockets on 127.0.0.1
(ports chosen by the OS).

Peers (tests/peers/):
  - smsc.pl: Net::SMPP (Debian libnet-smpp-perl).
  - twisted_smsc.py: the server side of smpp.twisted3 (Jasmin's txsmpp fork).

Each peer runs in its own process, prints "PORT <n>" and one line per
event; tests wait on those lines and on the service's state, every wait
bounded by L{TIMEOUT}.  Tests are skipped only when a peer is missing.
"""

import os
import shutil
import subprocess
import sys

from twisted.internet import defer, error, protocol, task
from twisted.logger import Logger
from twisted.trial.unittest import SkipTest, TestCase
from zope.interface import implementer

from gwsms.config import SmppConfig
from gwsms.smpp.interfaces import IDeliverySink
from gwsms.smpp.link import SessionType, SmscLink

TIMEOUT = 20.0
PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers")


def _perl_smpp_missing():
    perl = shutil.which("perl")
    if perl is None:
        return "perl is not installed"
    probe = subprocess.run([perl, "-MNet::SMPP", "-e", "1"], capture_output=True)
    if probe.returncode != 0:
        return "Net::SMPP is not installed (apt-get install libnet-smpp-perl)"
    return None


def _twisted_smpp_missing():
    try:
        import smpp.twisted.server  # noqa: F401
    except Exception as e:  # ImportError, or breakage against this Twisted
        return f"smpp.twisted3 server unavailable: {e}"
    return None


PERL_MISSING = _perl_smpp_missing()
TWISTED_SMPP_MISSING = _twisted_smpp_missing()


def _wait_until(reactor, predicate, timeout=TIMEOUT, what="condition", interval=0.02):
    """Fire when C{predicate()} is true; fail with a clear message after C{timeout}."""
    deadline = reactor.seconds() + timeout

    def check():
        if predicate():
            return True
        if reactor.seconds() > deadline:
            raise defer.TimeoutError(f"timed out after {timeout}s waiting for {what}")
        return task.deferLater(reactor, interval, check)

    return defer.maybeDeferred(check)


class PeerProcess(protocol.ProcessProtocol):
    """A peer SMSC child process: its stdout lines, its stdin commands."""

    _log = Logger()

    def __init__(self, reactor, argv, name):
        self.reactor = reactor
        self.argv = argv
        self.name = name
        self.lines: list[str] = []
        self.ended = defer.Deferred()
        self._buffer = b""
        self._waiters: list = []
        self.stderr = b""

    def start(self):
        self.reactor.spawnProcess(self, self.argv[0], self.argv, env=os.environ.copy())
        return self.wait_for(lambda line: line.startswith("PORT "), "PORT line").addCallback(
            lambda line: int(line.split()[1])
        )

    def outReceived(self, data):
        self._buffer += data
        while b"\n" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\n", 1)
            line = raw.decode("utf-8", "replace").rstrip("\r")
            self.lines.append(line)
            for waiter in list(self._waiters):
                predicate, d = waiter
                if predicate(line):
                    self._waiters.remove(waiter)
                    d.callback(line)

    def errReceived(self, data):
        self.stderr += data

    def processEnded(self, reason):
        for predicate, d in self._waiters:
            d.errback(RuntimeError(f"{self.name} exited: {self.stderr.decode(errors='replace')[-500:]}"))
        self._waiters = []
        self.ended.callback(None)

    def wait_for(self, predicate, what, timeout=TIMEOUT):
        """Fire with the first line (seen so far or later) matching C{predicate}."""
        for line in self.lines:
            if predicate(line):
                return defer.succeed(line)
        if self.ended.called:
            return defer.fail(RuntimeError(f"{self.name} already exited"))
        d = defer.Deferred()
        entry = (predicate, d)
        self._waiters.append(entry)

        def timed_out():
            if entry in self._waiters:
                self._waiters.remove(entry)
                d.errback(defer.TimeoutError(
                    f"{self.name}: no {what} within {timeout}s; got {self.lines[-10:]}"
                ))

        call = self.reactor.callLater(timeout, timed_out)
        d.addBoth(lambda r: (call.active() and call.cancel(), r)[1])
        return d

    def send(self, command):
        self.transport.write(command.encode("ascii") + b"\n")

    def count(self, prefix):
        return sum(1 for line in self.lines if line.startswith(prefix))

    def kill(self):
        """Kill -9 and fire when the process is gone."""
        if not self.ended.called:
            try:
                self.transport.signalProcess("KILL")
            except error.ProcessExitedAlready:
                pass
        return self.ended


@implementer(IDeliverySink)
class RecordingSink:
    def __init__(self):
        self.received = []

    def deliver_received(self, link_name, pdu):
        self.received.append((link_name, pdu))
        return 0


class IntegrationBase(TestCase):
    timeout = 60

    def setUp(self):
        # Integration tests run on the real reactor trial runs; everything
        # under test gets it passed in.
        from twisted.internet import reactor

        self.reactor = reactor
        self.sink = RecordingSink()
        self.services = []

    @defer.inlineCallbacks
    def start_peer(self, argv, name, port=0):
        peer = PeerProcess(self.reactor, argv + ["--port", str(port)], name)
        self.addCleanup(peer.kill)
        port = yield peer.start()
        return peer, port

    def start_perl(self, *args, port=0):
        if PERL_MISSING:
            raise SkipTest(PERL_MISSING)
        argv = [shutil.which("perl"), os.path.join(PEERS, "smsc.pl"), *args]
        return self.start_peer(argv, "smsc.pl", port)

    def start_twisted_peer(self, *args):
        if TWISTED_SMPP_MISSING:
            raise SkipTest(TWISTED_SMPP_MISSING)
        argv = [sys.executable, os.path.join(PEERS, "twisted_smsc.py"), *args]
        return self.start_peer(argv, "twisted_smsc.py")

    def make_service(self, links, **config):
        from gwsms.smpp.service import SmppService

        config.setdefault("reconnect_initial", 0.2)
        config.setdefault("reconnect_max", 1.0)
        config.setdefault("shutdown_timeout", 2.0)
        service = SmppService(self.reactor, SmppConfig(**config), self.sink, links)
        self.services.append(service)
        self.addCleanup(lambda: service.running and service.stopService())
        return service

    def row(self, service, name):
        return next(r for r in service.state() if r["name"] == name)

    def wait_state(self, service, name, state):
        return _wait_until(
            self.reactor,
            lambda: self.row(service, name)["state"] == state,
            what=f"{name} to be {state} (now {self.row(service, name)})",
        )


def link(name, port, session_type=SessionType.TRANSCEIVER, **kw):
    kw.setdefault("system_id", "gw")
    kw.setdefault("password", "pw")
    kw.setdefault("enquire_link_interval", 5.0)
    return SmscLink(name=name, ip="127.0.0.1", port=port, session_type=session_type, **kw)


class PerlSmscTests(IntegrationBase):
    @defer.inlineCallbacks
    def check_bind(self, session_type, bind_word, state):
        peer, port = yield self.start_perl("--system-id", "gw", "--password", "pw")
        service = self.make_service([link("perl", port, session_type)])
        service.startService()
        yield peer.wait_for(lambda l: l == f"BIND {bind_word} gw 0", f"{bind_word} bind")
        yield self.wait_state(service, "perl", state)
        row = self.row(service, "perl")
        self.assertIsNotNone(row["bound_since"])
        yield service.stopService()
        yield peer.wait_for(lambda l: l.startswith("UNBIND gw"), "unbind")
        self.assertEqual(self.row(service, "perl")["state"], "stopped")

    def test_transceiver(self):
        return self.check_bind(SessionType.TRANSCEIVER, "transceiver", "bound_trx")

    def test_transmitter(self):
        return self.check_bind(SessionType.TRANSMITTER, "transmitter", "bound_tx")

    def test_receiver(self):
        return self.check_bind(SessionType.RECEIVER, "receiver", "bound_rx")

    @defer.inlineCallbacks
    def test_outbind(self):
        """The SMSC connects to our listener, sends outbind; we bind_receiver."""
        peer, _ = yield self.start_perl()
        ob = link("ob", 0, SessionType.OUTBIND, system_id="smsc1", password="obpw")
        service = self.make_service([ob], outbind_listen=("tcp:0:interface=127.0.0.1",))
        service.startService()
        [address] = service.outbind_addresses()
        self.assertEqual(self.row(service, "ob")["state"], "listening")
        peer.send(f"outbind 127.0.0.1 {address.port} smsc1 obpw")
        yield peer.wait_for(lambda l: l == "BIND receiver smsc1 0", "bind_receiver after outbind")
        yield self.wait_state(service, "ob", "bound_rx")
        # Deliveries flow on the outbind session too.
        peer.send("deliver 4915100 4930200 " + b"via outbind".hex())
        yield peer.wait_for(lambda l: l.startswith("DELIVER_RESP "), "deliver_sm_resp")
        self.assertEqual([pdu.params["short_message"] for _, pdu in self.sink.received], [b"via outbind"])
        yield service.stopService()
        yield peer.wait_for(lambda l: l.startswith("UNBIND smsc1"), "unbind")

    @defer.inlineCallbacks
    def test_outbind_wrong_password(self):
        peer, _ = yield self.start_perl()
        ob = link("ob", 0, SessionType.OUTBIND, system_id="smsc1", password="obpw")
        service = self.make_service([ob], outbind_listen=("tcp:0:interface=127.0.0.1",))
        service.startService()
        [address] = service.outbind_addresses()
        peer.send(f"outbind 127.0.0.1 {address.port} smsc1 wrong")
        yield peer.wait_for(lambda l: l.startswith("CLOSED "), "connection closed by gwsms")
        self.assertEqual(peer.count("BIND "), 0)
        self.assertEqual(self.row(service, "ob")["state"], "listening")

    @defer.inlineCallbacks
    def test_outbind_port_in_use_fails_startup(self):
        first = self.make_service([], outbind_listen=("tcp:0:interface=127.0.0.1",))
        first.startService()
        [address] = first.outbind_addresses()
        second = self.make_service([], outbind_listen=(f"tcp:{address.port}:interface=127.0.0.1",))
        self.assertRaises(error.CannotListenError, second.startService)
        self.assertEqual(second.outbind_addresses(), [])
        yield first.stopService()

    @defer.inlineCallbacks
    def test_rebinds_after_smsc_restart(self):
        """Kill the SMSC, start it again on the same port: the link re-binds by itself."""
        peer, port = yield self.start_perl()
        service = self.make_service([link("perl", port)])
        service.startService()
        yield self.wait_state(service, "perl", "bound_trx")
        yield peer.kill()
        yield _wait_until(
            self.reactor,
            lambda: self.row(service, "perl")["state"] in ("waiting", "connecting"),
            what="the link to notice the dead SMSC",
        )
        self.assertIn("connection lost", self.row(service, "perl")["last_error"])
        peer2, port2 = yield self.start_perl(port=port)
        self.assertEqual(port2, port)
        yield peer2.wait_for(lambda l: l == "BIND transceiver gw 0", "re-bind")
        yield self.wait_state(service, "perl", "bound_trx")
        result = yield service.submit("perl", {"destination_addr": "4930100", "short_message": b"after restart"})
        self.assertEqual(result.status, 0)
        yield peer2.wait_for(lambda l: l.startswith("SUBMIT "), "submit after restart")
        yield service.stopService()

    @defer.inlineCallbacks
    def test_smsc_unbind_and_drop_then_rebind(self):
        """An unbind from the SMSC, then an abrupt close: the link re-binds each time."""
        peer, port = yield self.start_perl()
        service = self.make_service([link("perl", port)])
        service.startService()
        yield self.wait_state(service, "perl", "bound_trx")
        peer.send("unbind")
        yield peer.wait_for(lambda l: l == "UNBIND_RESP", "unbind_resp from gwsms")
        yield _wait_until(self.reactor, lambda: peer.count("BIND transceiver gw 0") == 2, what="re-bind after unbind")
        yield self.wait_state(service, "perl", "bound_trx")
        peer.send("drop")
        yield _wait_until(self.reactor, lambda: peer.count("BIND transceiver gw 0") == 3, what="re-bind after drop")
        yield self.wait_state(service, "perl", "bound_trx")
        yield service.stopService()

    @defer.inlineCallbacks
    def test_throttled_submits_delivered_exactly_once(self):
        """Every 5th submit_sm is answered ESME_RTHROTTLED; all 50 arrive once."""
        peer, port = yield self.start_perl("--throttle", "5")
        service = self.make_service([link("perl", port, window=10)])
        service.startService()
        yield self.wait_state(service, "perl", "bound_trx")
        texts = [f"message {i:02d}".encode() for i in range(50)]
        results = yield defer.gatherResults(
            [
                service.submit("perl", {"source_addr": "gwsms", "destination_addr": "4930100", "short_message": t})
                for t in texts
            ],
            consumeErrors=True,
        )
        self.assertEqual([r.status for r in results], [0] * 50)
        self.assertEqual(len({r.message_id for r in results}), 50)
        yield _wait_until(self.reactor, lambda: peer.count("SUBMIT ") >= 50, what="50 SUBMIT lines")
        accepted = [bytes.fromhex(l.split(" ")[4]) for l in peer.lines if l.startswith("SUBMIT ")]
        self.assertEqual(sorted(accepted), sorted(texts))
        throttled = [bytes.fromhex(l.split(" ")[3]) for l in peer.lines if l.startswith("THROTTLED ")]
        self.assertGreaterEqual(len(throttled), 10)
        self.assertTrue(set(throttled) <= set(texts))
        counters = self.row(service, "perl")["counters"]
        self.assertEqual(counters.get("throttled"), len(throttled))
        yield service.stopService()

    @defer.inlineCallbacks
    def test_deliver_sm_reaches_sink_and_is_acked(self):
        peer, port = yield self.start_perl()
        service = self.make_service([link("perl", port, SessionType.RECEIVER)])
        service.startService()
        yield self.wait_state(service, "perl", "bound_rx")
        peer.send("deliver 4915100 4930200 " + "hello from perl".encode().hex())
        line = yield peer.wait_for(lambda l: l.startswith("DELIVER_RESP "), "deliver_sm_resp")
        self.assertEqual(line.split()[2], "0")
        [(name, pdu)] = self.sink.received
        self.assertEqual(name, "perl")
        self.assertEqual(pdu.command, "deliver_sm")
        self.assertEqual(pdu.params["source_addr"], "4915100")
        self.assertEqual(pdu.params["destination_addr"], "4930200")
        self.assertEqual(pdu.params["short_message"], b"hello from perl")
        yield service.stopService()

    @defer.inlineCallbacks
    def test_wrong_password_backs_off(self):
        peer, port = yield self.start_perl("--system-id", "gw", "--password", "right")
        service = self.make_service([link("perl", port, password="wrong")], auth_failure_delay=60.0)
        service.startService()
        yield peer.wait_for(lambda l: l == "BIND transceiver gw 14", "refused bind")
        yield _wait_until(
            self.reactor,
            lambda: "ESME_RINVPASWD" in (self.row(service, "perl")["last_error"] or ""),
            what="last_error to name ESME_RINVPASWD",
        )
        self.assertEqual(self.row(service, "perl")["state"], "waiting")
        # The ordinary backoff (0.2 s) would have retried by now; auth backoff does not.
        yield task.deferLater(self.reactor, 0.5, lambda: None)
        self.assertEqual(peer.count("BIND "), 1)
        yield service.stopService()

    @defer.inlineCallbacks
    def test_reload_rebinds_only_changed(self):
        peer_a, port_a = yield self.start_perl()
        peer_b, port_b = yield self.start_perl()
        a, b = link("a", port_a), link("b", port_b)
        service = self.make_service([a, b])
        service.startService()
        yield self.wait_state(service, "a", "bound_trx")
        yield self.wait_state(service, "b", "bound_trx")
        since_a = self.row(service, "a")["bound_since"]
        result = service.reload([a, b.replace(system_type="new")])
        self.assertEqual(result["changed"], ["b"])
        self.assertEqual(result["unchanged"], ["a"])
        yield peer_b.wait_for(lambda l: l.startswith("UNBIND gw"), "unbind of changed link")
        yield _wait_until(self.reactor, lambda: peer_b.count("BIND transceiver gw 0") == 2, what="re-bind of b")
        yield self.wait_state(service, "b", "bound_trx")
        self.assertEqual(peer_a.count("BIND "), 1)
        self.assertEqual(peer_a.count("UNBIND"), 0)
        self.assertEqual(self.row(service, "a")["bound_since"], since_a)
        yield service.stopService()


class TwistedSmscTests(IntegrationBase):
    @defer.inlineCallbacks
    def test_bind_and_submit(self):
        peer, port = yield self.start_twisted_peer("--system-id", "gw", "--password", "pw")
        service = self.make_service([link("tx", port, SessionType.TRANSMITTER)])
        service.startService()
        yield self.wait_state(service, "tx", "bound_tx")
        texts = [f"twisted {i}".encode() for i in range(5)]
        results = yield defer.gatherResults(
            [service.submit("tx", {"destination_addr": "4930100", "short_message": t}) for t in texts],
            consumeErrors=True,
        )
        self.assertEqual([r.status for r in results], [0] * 5)
        yield _wait_until(self.reactor, lambda: peer.count("SUBMIT ") == 5, what="5 SUBMIT lines")
        got = [bytes.fromhex(l.split(" ")[4]) for l in peer.lines if l.startswith("SUBMIT ")]
        self.assertEqual(sorted(got), sorted(texts))
        self.assertEqual(sorted(r.message_id for r in results), sorted(f"t{i}" for i in range(1, 6)))
        yield service.stopService()

    @defer.inlineCallbacks
    def test_wrong_password(self):
        peer, port = yield self.start_twisted_peer("--system-id", "gw", "--password", "pw")
        service = self.make_service([link("tx", port, SessionType.TRANSMITTER, password="bad")])
        service.startService()
        yield _wait_until(
            self.reactor,
            lambda: "ESME_RINVPASWD" in (self.row(service, "tx")["last_error"] or ""),
            what="bind refused with ESME_RINVPASWD",
        )
        yield service.stopService()


def _self_signed(directory, name):
    """Write a self-signed certificate for 127.0.0.1 and its key; return (cert, key) paths."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    os.makedirs(directory, exist_ok=True)
    cert_path = os.path.join(directory, name + ".crt")
    key_path = os.path.join(directory, name + ".key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path


class TlsTests(IntegrationBase):
    """TLS links: a TLS terminator (Twisted, in-process) in front of the perl SMSC."""

    @defer.inlineCallbacks
    def tls_front(self):
        from twisted.internet import endpoints
        from twisted.protocols import portforward

        peer, smsc_port = yield self.start_perl()
        directory = self.mktemp()
        self.cert, key = _self_signed(directory, "smsc")
        self.other_cert, _ = _self_signed(directory, "other")
        endpoint = endpoints.serverFromString(
            self.reactor,
            f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={self.cert}",
        )
        listening = yield endpoint.listen(portforward.ProxyFactory("127.0.0.1", smsc_port))
        self.addCleanup(listening.stopListening)
        return peer, listening.getHost().port

    @defer.inlineCallbacks
    def test_verified_tls(self):
        peer, port = yield self.tls_front()
        service = self.make_service([link("tls", port, tls=True)], tls_ca=self.cert)
        service.startService()
        yield self.wait_state(service, "tls", "bound_trx")
        result = yield service.submit("tls", {"destination_addr": "4930100", "short_message": b"over tls"})
        self.assertEqual(result.status, 0)
        yield peer.wait_for(lambda l: l.startswith("SUBMIT ") and l.endswith(b"over tls".hex()), "submit over TLS")
        yield service.stopService()

    @defer.inlineCallbacks
    def test_untrusted_certificate_refused(self):
        peer, port = yield self.tls_front()
        service = self.make_service([link("tls", port, tls=True)], tls_ca=self.other_cert)
        service.startService()
        yield _wait_until(
            self.reactor,
            lambda: self.row(service, "tls")["last_error"] is not None,
            what="the TLS handshake to fail",
        )
        self.assertNotEqual(self.row(service, "tls")["state"], "bound_trx")
        self.assertIn("certificate verify failed", self.row(service, "tls")["last_error"])
        self.assertEqual(peer.count("BIND "), 0)
        yield service.stopService()

    @defer.inlineCallbacks
    def test_verification_disabled(self):
        peer, port = yield self.tls_front()
        service = self.make_service([link("tls", port, tls=True, tls_verify=False)])
        service.startService()
        yield self.wait_state(service, "tls", "bound_trx")
        yield service.stopService()
