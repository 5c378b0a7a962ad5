"""
Unit tests for L{gwsms.smpp.service}: no sockets, no sleeping.

The ESME protocol is replaced by L{FakeESME}, which follows the session
helper's contract (bind / bind_receiver_after_outbind / submit / unbind /
state / stats) and lets each test decide how the SMSC answers.
"""


from twisted.internet import defer, error
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from gwsms.config import SmppConfig
from gwsms.smpp import tls
from gwsms.smpp.link import SessionType, SmscLink
from gwsms.smpp.service import LinkDown, NoSuchLink, SmppService

_BOUND = {
    SessionType.TRANSCEIVER: "bound_trx",
    SessionType.TRANSMITTER: "bound_tx",
    SessionType.RECEIVER: "bound_rx",
    SessionType.OUTBIND: "bound_rx",
}


class FakeBindError(Exception):
    def __init__(self, status):
        super().__init__(f"bind failed with 0x{status:02x}")
        self.status = status


class FakeESME(Protocol):
    """Stand-in for esme.ESMEProtocol; records what the service asks of it."""

    def __init__(self, link, clock, sink, max_command_length):
        self.link = link
        self.clock = clock
        self.sink = sink
        self.max_command_length = max_command_length
        self.state = "connecting"
        self.stats = {"submitted": 0}
        self.bind_calls = []
        self.bind_d = None
        self.unbind_calls = []
        self.unbind_d = None
        self.submits = []
        self.received = b""

    def connectionMade(self):
        self.state = "binding"

    def dataReceived(self, data):
        self.received += data

    def bind(self):
        self.bind_calls.append("bind")
        self.bind_d = defer.Deferred()
        return self.bind_d

    def bind_receiver_after_outbind(self):
        self.bind_calls.append("after_outbind")
        self.bind_d = defer.Deferred()
        return self.bind_d

    def accept_bind(self):
        self.state = _BOUND[self.link.session_type]
        self.bind_d.callback("bind_resp")

    def refuse_bind(self, status):
        self.state = "closed"
        self.bind_d.errback(FakeBindError(status))

    def submit(self, params, tlvs=None):
        self.submits.append((params, tlvs))
        self.stats["submitted"] += 1
        return defer.succeed(("ok", "id-%d" % len(self.submits)))

    def unbind(self, timeout):
        self.unbind_calls.append(timeout)
        self.state = "unbinding"
        self.unbind_d = defer.Deferred()
        return self.unbind_d

    def connectionLost(self, reason=None):
        self.state = "closed"
        if self.bind_d is not None and not self.bind_d.called:
            self.bind_d.errback(error.ConnectionLost("lost while binding"))


def make_link(name="acme", port=2775, **kw):
    kw.setdefault("ip", "127.0.0.1")
    kw.setdefault("system_id", "gw")
    kw.setdefault("password", "secret")
    return SmscLink(name=name, port=port, **kw)


class ServiceTestBase(SynchronousTestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.protocols = []

    def build(self, links, **config):
        config.setdefault("reconnect_initial", 1.0)
        config.setdefault("reconnect_max", 60.0)
        config.setdefault("auth_failure_delay", 300.0)
        config.setdefault("shutdown_timeout", 5.0)
        self.config = SmppConfig(**config)

        def factory(link, clock, sink, max_command_length):
            proto = FakeESME(link, clock, sink, max_command_length)
            self.protocols.append(proto)
            return proto

        self.sink = object()
        self.service = SmppService(
            self.reactor,
            self.config,
            self.sink,
            links,
            random=lambda: 0.5,  # jitter factor exactly 1
            protocol_factory=factory,
        )
        return self.service

    def connect(self, index=-1):
        """Complete the TCP connection of the C{index}-th attempt."""
        host, port, factory, timeout, bind = self.reactor.tcpClients[index]
        wrapper = factory.buildProtocol(None)
        transport = StringTransport()
        wrapper.makeConnection(transport)
        return wrapper, transport, self.protocols[-1]

    def refuse(self, index=-1):
        connector = self.reactor.connectors[index]
        factory = self.reactor.tcpClients[index][2]
        factory.clientConnectionFailed(
            connector, Failure(error.ConnectionRefusedError("refused"))
        )

    def attempts(self):
        return [(h, p) for h, p, *_ in self.reactor.tcpClients]

    def state_of(self, name):
        for row in self.service.state():
            if row["name"] == name:
                return row
        raise AssertionError(f"no state row for {name}")


class ConnectTests(ServiceTestBase):
    def test_connects_and_binds(self):
        """Starting the service connects each enabled link and binds it."""
        link = make_link(port=2775, session_type=SessionType.TRANSCEIVER)
        self.build([link]).startService()
        self.assertEqual(self.attempts(), [("127.0.0.1", 2775)])
        self.assertEqual(self.state_of("acme")["state"], "connecting")
        wrapper, transport, proto = self.connect()
        self.assertEqual(proto.bind_calls, ["bind"])
        self.assertIs(proto.link, link)
        self.assertEqual(proto.max_command_length, 65536)
        self.assertIs(proto.sink, self.sink)
        self.assertIs(proto.clock, self.reactor)
        self.assertEqual(self.state_of("acme")["state"], "binding")
        self.reactor.advance(12.5)
        proto.accept_bind()
        row = self.state_of("acme")
        self.assertEqual(row["state"], "bound_trx")
        self.assertEqual(row["bound_since"], 12.5)
        self.assertEqual(row["session_type"], "transceiver")
        self.assertEqual((row["host"], row["port"]), ("127.0.0.1", 2775))
        self.assertIsNone(row["last_error"])

    def test_disabled_link_not_connected(self):
        self.build([make_link(enabled=False)]).startService()
        self.assertEqual(self.attempts(), [])
        self.assertEqual(self.state_of("acme")["state"], "disabled")

    def test_backoff_schedule(self):
        """Refused connections are retried after 1, 2, 4, 8 ... seconds."""
        self.build([make_link()]).startService()
        expected = 1
        for delay in (1.0, 2.0, 4.0, 8.0, 16.0):
            self.refuse()
            self.assertEqual(self.state_of("acme")["state"], "waiting")
            self.reactor.advance(delay - 0.01)
            self.assertEqual(len(self.attempts()), expected)
            self.reactor.advance(0.02)
            expected += 1
            self.assertEqual(len(self.attempts()), expected)
        self.assertIn("refused", self.state_of("acme")["last_error"])

    def test_backoff_capped(self):
        self.build([make_link()], reconnect_max=5.0).startService()
        for _ in range(6):
            self.refuse()
            self.reactor.advance(5.0)
        n = len(self.attempts())
        self.refuse()
        self.reactor.advance(4.99)
        self.assertEqual(len(self.attempts()), n)
        self.reactor.advance(0.02)
        self.assertEqual(len(self.attempts()), n + 1)

    def test_auth_failure_waits_longer(self):
        """A bind refused with ESME_RINVPASWD waits auth_failure_delay."""
        self.build([make_link()], auth_failure_delay=300.0).startService()
        wrapper, transport, proto = self.connect()
        proto.refuse_bind(0x0E)
        self.assertTrue(transport.disconnecting)
        self.assertIn("ESME_RINVPASWD", self.state_of("acme")["last_error"])
        self.reactor.advance(299.0)
        self.assertEqual(len(self.attempts()), 1)
        self.reactor.advance(1.5)
        self.assertEqual(len(self.attempts()), 2)

    def test_other_bind_failure_short_delay(self):
        self.build([make_link()]).startService()
        wrapper, transport, proto = self.connect()
        proto.refuse_bind(0x08)  # ESME_RSYSERR
        self.assertTrue(transport.disconnecting)
        self.reactor.advance(1.01)
        self.assertEqual(len(self.attempts()), 2)

    def test_reconnect_after_lost_connection(self):
        """A bound session that drops reconnects after the initial delay."""
        self.build([make_link()]).startService()
        for _ in range(3):  # build up a long backoff first
            self.refuse()
            self.reactor.advance(10)
        wrapper, transport, proto = self.connect()
        proto.accept_bind()
        wrapper.connectionLost(Failure(error.ConnectionDone()))
        row = self.state_of("acme")
        self.assertEqual(row["state"], "waiting")
        self.assertIsNone(row["bound_since"])
        self.assertIn("connection lost", row["last_error"])
        n = len(self.attempts())
        self.reactor.advance(1.01)
        self.assertEqual(len(self.attempts()), n + 1)

    def test_lost_while_binding(self):
        """Losing the connection during the bind schedules one retry."""
        self.build([make_link()]).startService()
        wrapper, transport, proto = self.connect()
        wrapper.connectionLost(Failure(error.ConnectionLost()))
        self.assertEqual(self.state_of("acme")["state"], "waiting")
        self.reactor.advance(1.01)
        self.assertEqual(len(self.attempts()), 2)
        self.reactor.advance(100)
        self.assertEqual(len(self.attempts()), 2)

    def test_one_log_line_per_series(self):
        self.build([make_link()]).startService()
        with capturedLogs() as events:
            for _ in range(5):
                self.refuse()
                self.reactor.advance(60)
            wrapper, transport, proto = self.connect()
            proto.accept_bind()
        from twisted.logger import formatEvent

        text = [formatEvent(e) for e in events if e.get("log_namespace", "").startswith("gwsms")]
        refused = [t for t in text if "refused" in t]
        self.assertEqual(len(refused), 1, text)
        self.assertTrue(any("recovered after 5 failed attempt(s)" in t for t in text), text)
        self.assertFalse(any("secret" in t for t in text))

    def test_hostname_and_tls_endpoints(self):
        svc = self.build([])
        plain = svc._endpoint_for(make_link(ip="smsc.example.net"))
        self.assertEqual(type(plain).__name__, "HostnameEndpoint")
        v6 = svc._endpoint_for(make_link(ip="::1"))
        self.assertEqual(type(v6).__name__, "TCP6ClientEndpoint")
        wrapped = svc._endpoint_for(make_link(tls=True))
        self.assertEqual(type(wrapped).__name__, "_WrapperEndpoint")

    def test_tls_connection_attempt(self):
        """A TLS link still connects over TCP to the configured address."""
        self.build([make_link(tls=True, port=3550)]).startService()
        self.assertEqual(self.attempts(), [("127.0.0.1", 3550)])

    def test_tls_bad_ca_file_is_a_connect_failure(self):
        self.build([make_link(tls=True)], tls_ca="/nonexistent/ca.pem").startService()
        row = self.state_of("acme")
        self.assertEqual(row["state"], "waiting")
        self.assertIn("/nonexistent/ca.pem", row["last_error"])


class TlsOptionsTests(SynchronousTestCase):
    def test_verify_by_default(self):
        opts = tls.client_tls_options(make_link(ip="smsc.example.net", tls=True))
        self.assertEqual(opts._hostnameASCII, "smsc.example.net")

    def test_verify_ip(self):
        opts = tls.client_tls_options(make_link(tls=True))
        self.assertEqual(opts._hostnameASCII, "127.0.0.1")
        self.assertFalse(opts._hostnameIsDnsName)

    def test_no_verify(self):
        opts = tls.client_tls_options(make_link(tls=True, tls_verify=False))
        self.assertFalse(opts.verify)

    def test_ca_file_errors(self):
        e = self.assertRaises(tls.TLSConfigError, tls.load_trust_root, "/nonexistent/x.pem")
        self.assertIn("/nonexistent/x.pem", str(e))
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("not a certificate\n")
        e = self.assertRaises(tls.TLSConfigError, tls.load_trust_root, path)
        self.assertIn("no PEM certificate", str(e))


class SubmitAndStateTests(ServiceTestBase):
    def test_submit_errors(self):
        links = [
            make_link("tx", session_type=SessionType.TRANSMITTER),
            make_link("rx", session_type=SessionType.RECEIVER, port=2776),
            make_link("off", enabled=False, port=2777),
        ]
        self.build(links).startService()
        self.failureResultOf(self.service.submit("nope", {}), NoSuchLink)
        f = self.failureResultOf(self.service.submit("tx", {}), LinkDown)
        self.assertIn("connecting", str(f.value))
        self.failureResultOf(self.service.submit("rx", {}), LinkDown)
        f = self.failureResultOf(self.service.submit("off", {}), LinkDown)
        self.assertIn("disabled", str(f.value))
        self.assertIn("nope", str(self.failureResultOf(self.service.submit("nope", {})).value))

    def test_submit_on_bound_link(self):
        self.build([make_link(session_type=SessionType.TRANSMITTER)]).startService()
        wrapper, transport, proto = self.connect()
        proto.accept_bind()
        result = self.successResultOf(
            self.service.submit("acme", {"destination_addr": "123"}, {"message_payload": b"x"})
        )
        self.assertEqual(result, ("ok", "id-1"))
        self.assertEqual(proto.submits, [({"destination_addr": "123"}, {"message_payload": b"x"})])
        self.assertEqual(self.state_of("acme")["counters"], {"submitted": 1})

    def test_counters_survive_reconnect(self):
        self.build([make_link()]).startService()
        wrapper, transport, proto = self.connect()
        proto.accept_bind()
        self.service.submit("acme", {})
        self.service.submit("acme", {})
        wrapper.connectionLost(Failure(error.ConnectionDone()))
        self.reactor.advance(1.01)
        wrapper, transport, proto = self.connect()
        proto.accept_bind()
        self.service.submit("acme", {})
        self.assertEqual(self.state_of("acme")["counters"], {"submitted": 3})

    def test_state_rows(self):
        self.build([make_link("b", port=2), make_link("a", port=1, enabled=False)])
        rows = self.service.state()
        self.assertEqual([r["name"] for r in rows], ["a", "b"])
        self.assertEqual(
            set(rows[0]),
            {"name", "session_type", "enabled", "state", "host", "port", "tls",
             "bound_since", "counters", "last_error"},
        )
        self.assertNotIn("secret", repr(rows))

    def test_duplicate_names(self):
        e = self.assertRaises(ValueError, self.build, [make_link("a"), make_link("a")])
        self.assertIn("'a'", str(e))


class StopAndReloadTests(ServiceTestBase):
    def bound(self, links):
        self.build(links).startService()
        out = {}
        for i, link in enumerate(links):
            wrapper, transport, proto = self.connect(i)
            proto.accept_bind()
            out[link.name] = (wrapper, transport, proto)
        return out

    def test_stop_unbinds_gracefully(self):
        s = self.bound([make_link("a", port=1), make_link("b", port=2)])
        d = self.service.stopService()
        for name, (wrapper, transport, proto) in s.items():
            self.assertEqual(proto.unbind_calls, [5.0])
        self.assertNoResult(d)
        # The SMSC answers the unbinds; the ESME closes.
        for name, (wrapper, transport, proto) in s.items():
            proto.unbind_d.callback(None)
            self.assertTrue(transport.disconnecting)
            wrapper.connectionLost(Failure(error.ConnectionDone()))
        self.successResultOf(d)
        self.assertEqual({r["state"] for r in self.service.state()}, {"stopped"})
        self.reactor.advance(1000)
        self.assertEqual(len(self.attempts()), 2)  # no reconnect

    def test_stop_aborts_after_timeout(self):
        s = self.bound([make_link()])
        wrapper, transport, proto = s["acme"]
        aborted = []
        transport.abortConnection = lambda: aborted.append(True)
        d = self.service.stopService()
        self.reactor.advance(5.0)
        self.assertNoResult(d)
        self.reactor.advance(1.01)
        self.assertEqual(aborted, [True])
        wrapper.connectionLost(Failure(error.ConnectionLost()))
        self.successResultOf(d)

    def test_stop_while_waiting(self):
        self.build([make_link()]).startService()
        self.refuse()
        self.successResultOf(self.service.stopService())
        self.reactor.advance(1000)
        self.assertEqual(len(self.attempts()), 1)
        self.assertEqual(self.state_of("acme")["state"], "stopped")

    def test_stop_while_connecting(self):
        self.build([make_link()]).startService()
        self.successResultOf(self.service.stopService())
        self.reactor.advance(1000)
        self.assertEqual(len(self.attempts()), 1)
        self.assertTrue(self.reactor.connectors[0].stoppedConnecting)
        self.assertEqual(self.state_of("acme")["state"], "stopped")

    def test_reload_diff(self):
        """Only changed rows re-bind; unchanged sessions are not touched."""
        keep, change, remove = make_link("keep", port=1), make_link("change", port=2), make_link("remove", port=3)
        s = self.bound([keep, change, remove])
        result = self.service.reload(
            [keep.replace(id=7), change.replace(port=20), make_link("new", port=4)]
        )
        self.assertEqual(
            result,
            {"added": ["new"], "removed": ["remove"], "changed": ["change"], "unchanged": ["keep"]},
        )
        self.assertEqual(s["keep"][2].unbind_calls, [])
        self.assertFalse(s["keep"][1].disconnecting)
        self.assertEqual(self.state_of("keep")["state"], "bound_trx")
        self.assertEqual(s["change"][2].unbind_calls, [5.0])
        self.assertEqual(s["remove"][2].unbind_calls, [5.0])
        self.assertNotIn("remove", self.service.link_names())
        # "new" connects right away; "change" waits until its old session is closed.
        self.assertEqual(self.attempts()[3:], [("127.0.0.1", 4)])
        s["change"][2].unbind_d.callback(None)
        s["change"][0].connectionLost(Failure(error.ConnectionDone()))
        self.assertEqual(self.attempts()[4:], [("127.0.0.1", 20)])
        self.assertEqual(self.state_of("change")["port"], 20)

    def test_reload_message_options_do_not_rebind(self):
        """coding / concat / max_parts / data coding changes keep the session."""
        s = self.bound([make_link("a", port=1)])
        new = make_link("a", port=1, coding="ucs2", concat="sar", max_parts=3,
                        default_data_coding=3, dc0_charset="latin1")
        result = self.service.reload([new])
        self.assertEqual(result["unchanged"], ["a"])
        self.assertEqual(result["changed"], [])
        self.assertEqual(s["a"][2].unbind_calls, [])
        self.assertFalse(s["a"][1].disconnecting)
        self.assertEqual(self.state_of("a")["state"], "bound_trx")
        self.assertEqual(self.service._sessions["a"].link, new)

    def test_reload_enable_flip(self):
        s = self.bound([make_link("a", port=1)])
        result = self.service.reload([make_link("a", port=1, enabled=False)])
        self.assertEqual(result["changed"], ["a"])
        self.assertEqual(s["a"][2].unbind_calls, [5.0])
        s["a"][2].unbind_d.callback(None)
        s["a"][0].connectionLost(Failure(error.ConnectionDone()))
        self.reactor.advance(100)
        self.assertEqual(len(self.attempts()), 1)
        self.assertEqual(self.state_of("a")["state"], "disabled")
        result = self.service.reload([make_link("a", port=1)])
        self.assertEqual(result["changed"], ["a"])
        self.assertEqual(len(self.attempts()), 2)

    def test_reload_before_start(self):
        self.build([make_link("a", port=1)])
        result = self.service.reload([make_link("b", port=2)])
        self.assertEqual(result, {"added": ["b"], "removed": ["a"], "changed": [], "unchanged": []})
        self.assertEqual(self.attempts(), [])
        self.service.startService()
        self.assertEqual(self.attempts(), [("127.0.0.1", 2)])


class OutbindTests(ServiceTestBase):
    def setUp(self):
        super().setUp()
        self.link = make_link("ob", port=0, session_type=SessionType.OUTBIND, system_id="smsc1", password="pw1")
        self.build([self.link], outbind_listen=("tcp:2776:interface=127.0.0.1",)).startService()
        port, self.factory, backlog, interface = self.reactor.tcpServers[0]
        self.assertEqual((port, interface), (2776, "127.0.0.1"))

    def incoming(self, data):
        proto = self.factory.buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        proto.dataReceived(data)
        return proto, transport

    def outbind_bytes(self, system_id="smsc1", password="pw1", extra=b""):
        from gwsms.smpp import pdu

        return pdu.encode(pdu.make("outbind", 1, system_id=system_id, password=password)) + extra

    def test_outbind_binds_receiver(self):
        self.assertEqual(self.state_of("ob")["state"], "listening")
        self.assertEqual(self.attempts(), [])
        data = self.outbind_bytes(extra=b"\x00\x00")
        proto, transport = self.incoming(data[:10])
        self.assertEqual(self.protocols, [])
        proto.dataReceived(data[10:])
        esme = self.protocols[0]
        self.assertIs(esme.link, self.link)
        self.assertIs(esme.transport, transport)
        self.assertEqual(esme.bind_calls, ["after_outbind"])
        self.assertEqual(esme.received, b"\x00\x00")
        esme.accept_bind()
        self.assertEqual(self.state_of("ob")["state"], "bound_rx")
        proto.dataReceived(b"more")
        self.assertEqual(esme.received, b"\x00\x00more")
        proto.connectionLost(Failure(error.ConnectionDone()))
        self.assertEqual(self.state_of("ob")["state"], "listening")

    def test_wrong_password(self):
        with capturedLogs() as events:
            proto, transport = self.incoming(self.outbind_bytes(password="bad"))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.protocols, [])
        from twisted.logger import formatEvent

        text = " ".join(formatEvent(e) for e in events)
        self.assertIn("wrong password", text)
        self.assertNotIn("bad", text.replace("bad command", ""))

    def test_unknown_system_id(self):
        proto, transport = self.incoming(self.outbind_bytes(system_id="other"))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.protocols, [])

    def test_not_outbind(self):
        from gwsms.smpp import pdu

        proto, transport = self.incoming(pdu.encode(pdu.make("enquire_link", 1)))
        self.assertTrue(transport.disconnecting)

    def test_no_outbind_in_time(self):
        proto, transport = self.incoming(b"")
        self.reactor.advance(10.01)
        self.assertTrue(transport.disconnecting)

    def test_stop_unbinds_outbind_session(self):
        proto, transport = self.incoming(self.outbind_bytes())
        esme = self.protocols[0]
        esme.accept_bind()
        d = self.service.stopService()
        self.assertEqual(esme.unbind_calls, [5.0])
        esme.unbind_d.callback(None)
        proto.connectionLost(Failure(error.ConnectionDone()))
        self.successResultOf(d)
        self.assertEqual(self.state_of("ob")["state"], "stopped")

    def test_bad_listen_string(self):
        e = self.assertRaises(
            ValueError, self.build, [], outbind_listen=("bogus:1234",)
        )
        self.assertIn("bogus:1234", str(e))


class RealEsmeTests(ServiceTestBase):
    """The service driving the real L{gwsms.smpp.esme.ESMEProtocol} over a StringTransport."""

    def build_real(self, links, **config):
        config.setdefault("shutdown_timeout", 5.0)
        self.config = SmppConfig(**config)
        self.service = SmppService(self.reactor, self.config, object(), links, random=lambda: 0.5)
        return self.service

    def sent(self, transport):
        from gwsms.smpp import pdu

        data, out = transport.value(), []
        transport.clear()
        while data:
            length = pdu.HEADER.unpack(data[:16])[0]
            out.append(pdu.decode(data[:length]))
            data = data[length:]
        return out

    def test_bind_and_unbind_on_the_wire(self):
        from gwsms.smpp import pdu

        self.build_real([make_link(session_type=SessionType.TRANSMITTER)]).startService()
        host, port, factory, timeout, bind = self.reactor.tcpClients[0]
        wrapper = factory.buildProtocol(None)
        transport = StringTransport()
        wrapper.makeConnection(transport)
        [request] = self.sent(transport)
        self.assertEqual(request.command, "bind_transmitter")
        self.assertEqual(request.params["system_id"], "gw")
        self.assertEqual(request.params["password"], "secret")
        wrapper.dataReceived(pdu.encode(request.response(system_id="smsc")))
        self.assertEqual(self.state_of("acme")["state"], "bound_tx")
        d = self.service.submit("acme", {"destination_addr": "4930100", "short_message": b"hi"})
        [submit] = self.sent(transport)
        self.assertEqual(submit.command, "submit_sm")
        self.assertEqual(submit.params["short_message"], b"hi")
        wrapper.dataReceived(pdu.encode(submit.response(message_id="abc")))
        result = self.successResultOf(d)
        self.assertEqual((result.status, result.message_id), (0, "abc"))
        stopped = self.service.stopService()
        [unbind] = self.sent(transport)
        self.assertEqual(unbind.command, "unbind")
        wrapper.dataReceived(pdu.encode(unbind.response()))
        self.assertTrue(transport.disconnecting)
        wrapper.connectionLost(Failure(error.ConnectionDone()))
        self.successResultOf(stopped)
        self.assertEqual(self.state_of("acme")["state"], "stopped")

    def test_refused_bind_on_the_wire(self):
        from gwsms.smpp import pdu

        self.build_real([make_link()], auth_failure_delay=120.0).startService()
        host, port, factory, timeout, bind = self.reactor.tcpClients[0]
        wrapper = factory.buildProtocol(None)
        transport = StringTransport()
        wrapper.makeConnection(transport)
        [request] = self.sent(transport)
        self.assertEqual(request.command, "bind_transceiver")
        wrapper.dataReceived(pdu.encode(request.response(command_status=0x0F)))
        self.assertTrue(transport.disconnecting)
        wrapper.connectionLost(Failure(error.ConnectionDone()))
        self.assertIn("ESME_RINVSYSID", self.state_of("acme")["last_error"])
        self.reactor.advance(119)
        self.assertEqual(len(self.reactor.tcpClients), 1)
        self.reactor.advance(2)
        self.assertEqual(len(self.reactor.tcpClients), 2)


class ShutdownDuringReloadTests(ServiceTestBase):
    def test_stop_waits_for_removed_and_does_not_restart_changed(self):
        self.build([make_link("a", port=1), make_link("b", port=2)]).startService()
        sessions = {}
        for i, name in enumerate("ab"):
            wrapper, transport, proto = self.connect(i)
            proto.accept_bind()
            sessions[name] = (wrapper, transport, proto)
        self.service.reload([make_link("b", port=20)])  # a removed, b changed
        d = self.service.stopService()
        for name in "ab":
            sessions[name][2].unbind_d.callback(None)
        sessions["b"][0].connectionLost(Failure(error.ConnectionDone()))
        self.assertNoResult(d)  # "a" (removed) is still closing
        sessions["a"][0].connectionLost(Failure(error.ConnectionDone()))
        self.successResultOf(d)
        self.reactor.advance(100)
        self.assertEqual(len(self.attempts()), 2)  # b was not restarted on port 20
