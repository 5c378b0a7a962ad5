"""
Tests for L{gwsms.sip.transport} (and L{gwsms.sip.wire}): listen specs,
UDP and TCP framing, RFC 3261 18.2.2 / RFC 3581 response routing, stream
connections; plus an integration test over real loopback sockets.
"""

import datetime
import ipaddress

import socket

from twisted.internet import defer, error, ssl, task
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import DatagramProtocol, Protocol, ClientFactory
from twisted.internet.testing import FakeDatagramTransport, MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest

from gwsms.sip import message as sipmsg
from gwsms.sip.transaction import TransactionLayer
from gwsms.sip.transport import (
    Peer,
    SipDatagramProtocol,
    SipStreamProtocol,
    TransportError,
    TransportLayer,
    build_bad_request,
    listen,
    parse_listen_spec,
)


def raw_request(method="MESSAGE", via="SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bKa1;rport",
                call_id="c1@x", body=b"hello", extra=b"", cseq=1):
    head = (f"{method} sip:bob@example.com SIP/2.0\r\n"
            f"Via: {via}\r\n"
            "Max-Forwards: 70\r\n"
            "From: <sip:alice@example.com>;tag=f1\r\n"
            "To: <sip:bob@example.com>\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: {cseq} {method}\r\n").encode()
    return head + extra + f"Content-Length: {len(body)}\r\n\r\n".encode() + body


class FakeUDPPort:
    def __init__(self, protocol, interface, port):
        self.protocol = protocol
        self.address = IPv4Address("UDP", interface or "0.0.0.0", port or 40000)
        self.transport = FakeDatagramTransport()
        protocol.makeConnection(self.transport)
        self.stopped = False

    def getHost(self):
        return self.address

    def stopListening(self):
        self.stopped = True
        self.protocol.doStop()


class FakeReactor(MemoryReactorClock):
    """MemoryReactorClock with a fake listenUDP."""

    def __init__(self):
        super().__init__()
        self.udp_ports = []

    def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):
        fake = FakeUDPPort(protocol, interface, port)
        self.udp_ports.append(fake)
        return fake


class NoDelayTransport(StringTransport):
    nodelay = None

    def setTcpNoDelay(self, enabled):
        self.nodelay = enabled


class Recorder:
    """Stands in for the transaction layer."""

    def __init__(self):
        self.messages = []

    def message_received(self, msg, source):
        self.messages.append((msg, source))


class AnsweringTU:
    def __init__(self, status=200):
        self.status = status
        self.requests = []

    def request_received(self, request, source, txn):
        self.requests.append((request, source))
        if self.status:
            txn.respond(sipmsg.make_response(request, self.status, to_tag="tu1"))


class ListenSpecTests(unittest.SynchronousTestCase):
    def test_valid(self):
        self.assertEqual(parse_listen_spec("udp:127.0.0.1:5060"), ("udp", "127.0.0.1", 5060))
        self.assertEqual(parse_listen_spec("tcp:[::1]:5060"), ("tcp", "::1", 5060))
        self.assertEqual(parse_listen_spec("tls:0.0.0.0:0"), ("tls", "0.0.0.0", 0))
        self.assertEqual(parse_listen_spec("udp:5060"), ("udp", "", 5060))
        self.assertEqual(parse_listen_spec("tcp:sip.example.com:5080"),
                         ("tcp", "sip.example.com", 5080))

    def test_invalid(self):
        for spec in ("sctp:1.2.3.4:5060", "udp:1.2.3.4", "udp:1.2.3.4:99999",
                     "tcp:[::1]:x", "", "udp::1:5060", None):
            e = self.assertRaises(ValueError, parse_listen_spec, spec)
            self.assertIn(repr(spec), str(e))

    def test_tls_needs_options(self):
        layer = TransportLayer(FakeReactor())
        e = self.assertRaises(ValueError, layer.listen, "tls:127.0.0.1:5061")
        self.assertIn("tls:127.0.0.1:5061", str(e))

    def test_listen_helper_uses_transaction_layers_transport(self):
        reactor = FakeReactor()
        layer = TransportLayer(reactor)
        txn = TransactionLayer(reactor, transport=layer)
        port = listen(reactor, "tcp:127.0.0.1:0", txn)
        self.assertEqual(reactor.tcpServers[0][3], "127.0.0.1")
        self.assertIs(port, layer._listeners[0].listening_port)
        self.assertTrue(layer.has_listener("tcp"))
        self.assertRaises(ValueError, listen, reactor, "bogus", txn)


class ReceiveBufferTests(unittest.TestCase):
    """[sip] udp_receive_buffer on a real UDP listener (127.0.0.1, port 0)."""

    def listen(self, size):
        from twisted.internet import reactor

        layer = TransportLayer(reactor, udp_receive_buffer=size)
        port = layer.listen("udp:127.0.0.1:0")
        self.addCleanup(port.stopListening)
        return port.socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)

    def test_grown(self):
        default = self.listen(0)
        wanted = 1024 * 1024
        got = self.listen(wanted)
        # Linux reports twice what was set; an unprivileged process on a
        # host with a low rmem_max gets at least more than the default
        self.assertGreater(got, default)


class PeerTests(unittest.SynchronousTestCase):
    def test_peer(self):
        a = Peer("UDP", "[::1]", "5060", connection=object())
        self.assertEqual((a.transport, a.host, a.port), ("udp", "::1", 5060))
        self.assertEqual(a, Peer("udp", "::1", 5060))
        self.assertFalse(a.reliable)
        self.assertTrue(Peer("tls", "h", 1).reliable)
        self.assertEqual(Peer("tcp", "Host.Example", 5).key, ("tcp", "host.example", 5))
        self.assertRaises(ValueError, Peer, "sctp", "h", 1)


class UDPBase(unittest.SynchronousTestCase):
    def setUp(self):
        self.reactor = FakeReactor()
        self.layer = TransportLayer(self.reactor, max_message_size=2000)
        self.layer.listen("udp:127.0.0.1:5060")
        self.events = []
        self.layer._log = self.layer._log.__class__(observer=self.events.append)
        self.udp = self.reactor.udp_ports[0]
        self.proto = self.udp.protocol
        self.assertIsInstance(self.proto, SipDatagramProtocol)
        self.assertEqual(self.proto.sent_by, ("127.0.0.1", 5060))

    def written(self):
        return [(sipmsg.parse_message(data, validate=False), addr)
                for data, addr in self.udp.transport.written]


class DatagramTests(UDPBase):
    def setUp(self):
        UDPBase.setUp(self)
        self.tu = AnsweringTU()
        self.txn = TransactionLayer(self.reactor, tu=self.tu, transport=self.layer)

    def test_rport_and_received(self):
        """RFC 3581: received + rport filled in; response goes to them."""
        self.proto.datagramReceived(raw_request(), ("198.51.100.1", 6000))
        request, source = self.tu.requests[0]
        self.assertEqual(source, Peer("udp", "198.51.100.1", 6000))
        via = request.top_via
        self.assertEqual(via.params["received"], "198.51.100.1")
        self.assertEqual(via.params["rport"], "6000")
        [(response, addr)] = self.written()
        self.assertEqual(response.status, 200)
        self.assertEqual(addr, ("198.51.100.1", 6000))
        self.assertEqual(response.top_via.params["rport"], "6000")
        self.assertEqual(response.top_via.params["received"], "198.51.100.1")

    def test_received_without_rport_uses_sent_by_port(self):
        via = "SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bKa2"
        self.proto.datagramReceived(raw_request(via=via), ("198.51.100.1", 6000))
        [(response, addr)] = self.written()
        self.assertEqual(addr, ("198.51.100.1", 5070))
        self.assertEqual(response.top_via.params["received"], "198.51.100.1")
        self.assertNotIn("rport", response.top_via.params)

    def test_same_host_no_received(self):
        via = "SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKa3"
        self.proto.datagramReceived(raw_request(via=via), ("198.51.100.1", 6000))
        [(response, addr)] = self.written()
        self.assertEqual(addr, ("198.51.100.1", 5060))
        self.assertNotIn("received", response.top_via.params)

    def test_maddr(self):
        via = "SIP/2.0/UDP 198.51.100.1:5062;branch=z9hG4bKa4;maddr=203.0.113.9"
        self.proto.datagramReceived(raw_request(via=via), ("198.51.100.1", 6000))
        self.assertEqual(self.written()[0][1], ("203.0.113.9", 5062))

    def test_duplicate_datagram_absorbed(self):
        data = raw_request()
        for _ in range(3):
            self.proto.datagramReceived(data, ("198.51.100.1", 6000))
        self.assertEqual(len(self.tu.requests), 1)
        self.assertEqual([r.status for r, _ in self.written()], [200, 200, 200])

    def test_bad_request_answered_400(self):
        data = raw_request().replace(b"CSeq: 1 MESSAGE", b"CSeq: one MESSAGE")
        self.proto.datagramReceived(data, ("198.51.100.1", 6000))
        self.assertEqual(self.tu.requests, [])
        [(response, addr)] = self.written()
        self.assertEqual(response.status, 400)
        self.assertIn("CSeq", response.reason)
        self.assertEqual(addr, ("198.51.100.1", 6000))
        self.assertIsNotNone(response.to.tag)
        self.assertEqual(self.layer.stats["bad_answered"], 1)

    def test_bad_header_line_salvaged(self):
        data = raw_request(extra=b"this line has no colon\r\n")
        self.proto.datagramReceived(data, ("198.51.100.1", 6000))
        [(response, _)] = self.written()
        self.assertEqual(response.status, 400)
        self.assertEqual(response.call_id, "c1@x")

    def test_garbage_dropped_rate_limited_log(self):
        for i in range(20):
            self.proto.datagramReceived(b"\x00\x01garbage %d" % i, ("198.51.100.1", 6000))
        self.assertEqual(self.udp.transport.written, [])
        self.assertEqual(self.layer.stats["dropped"], 20)
        self.assertEqual(len(self.events), 1)
        self.reactor.advance(11)
        self.proto.datagramReceived(b"junk", ("198.51.100.1", 6000))
        self.assertEqual(len(self.events), 2)
        self.assertEqual(self.events[1]["suppressed"], 19)

    def test_bad_ack_not_answered(self):
        data = raw_request("ACK").replace(b"Call-ID: c1@x\r\n", b"")
        self.proto.datagramReceived(data, ("198.51.100.1", 6000))
        self.assertEqual(self.udp.transport.written, [])
        self.assertEqual(self.layer.stats["dropped"], 1)

    def test_oversize_dropped(self):
        self.proto.datagramReceived(raw_request(body=b"x" * 2100), ("198.51.100.1", 6000))
        self.assertEqual(self.udp.transport.written, [])
        self.assertEqual(self.layer.stats["oversize"], 1)
        self.assertEqual(self.tu.requests, [])

    def test_keepalive_ignored(self):
        self.proto.datagramReceived(b"\r\n\r\n", ("198.51.100.1", 6000))
        self.assertEqual(self.layer.stats["keepalives"], 1)
        self.assertEqual(self.layer.stats["dropped"], 0)

    def test_stray_response_dropped(self):
        data = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKzz\r\n"
                b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\n"
                b"CSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n")
        self.proto.datagramReceived(data, ("198.51.100.1", 6000))
        self.assertEqual(self.txn.stats["stray_responses"], 1)

    def test_send_request_stamps_via(self):
        req = sipmsg.parse_message(raw_request(via="SIP/2.0/UDP x;branch=z9hG4bKout"))
        d = self.txn.send_request(req, Peer("udp", "203.0.113.5", 5060))
        [(data, addr)] = self.udp.transport.written
        self.assertEqual(addr, ("203.0.113.5", 5060))
        sent = sipmsg.parse_message(data)
        self.assertEqual(str(sent.top_via), "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKout;rport")
        # the response comes back and fires the Deferred
        response = sipmsg.make_response(sent, 202, to_tag="r")
        self.proto.datagramReceived(response.to_bytes(), ("203.0.113.5", 5060))
        self.assertEqual(self.successResultOf(d).status, 202)

    def test_listener_by_address_family(self):
        self.layer.listen("udp:[::1]:5062")
        v6 = self.reactor.udp_ports[1]
        self.successResultOf(self.layer.send(sipmsg.parse_message(raw_request()),
                                             Peer("udp", "2001:db8::5", 5060)))
        self.assertEqual(v6.transport.written[0][1], ("2001:db8::5", 5060))
        sent = sipmsg.parse_message(v6.transport.written[0][0])
        self.assertEqual((sent.top_via.host, sent.top_via.port), ("::1", 5062))
        self.successResultOf(self.layer.send(sipmsg.parse_message(raw_request()),
                                             Peer("udp", "192.0.2.5", 5060)))
        self.assertEqual(self.udp.transport.written[0][1], ("192.0.2.5", 5060))

    def test_wildcard_udp_advertises_a_name(self):
        self.layer.listen("udp:0.0.0.0:5064", advertised_host="gw.example.com")
        self.assertEqual(self.reactor.udp_ports[1].protocol.sent_by, ("gw.example.com", 5064))

    def test_udp_to_hostname_fails(self):
        req = sipmsg.parse_message(raw_request())
        d = self.layer.send(req, Peer("udp", "sip.example.com", 5060))
        self.failureResultOf(d, TransportError)

    def test_no_udp_listener(self):
        layer = TransportLayer(FakeReactor())
        d = layer.send(sipmsg.parse_message(raw_request()), Peer("udp", "192.0.2.1", 5060))
        self.assertIn("no UDP listener", str(self.failureResultOf(d, TransportError).value))

    def test_stop(self):
        self.successResultOf(self.layer.stop())
        self.assertTrue(self.udp.stopped)
        self.assertFalse(self.layer.has_listener("udp"))


class BadRequestTests(unittest.SynchronousTestCase):
    def test_build_bad_request(self):
        out = build_bad_request(raw_request(extra=b"broken\r\n"), "Malformed header line")
        response = sipmsg.parse_message(out)
        self.assertEqual(response.status, 400)
        self.assertEqual(response.reason, "Bad Request (Malformed header line)")
        self.assertEqual(response.cseq, (1, "MESSAGE"))

    def test_not_answerable(self):
        self.assertIsNone(build_bad_request(b"garbage", "x"))
        self.assertIsNone(build_bad_request(raw_request("ACK"), "x"))
        self.assertIsNone(build_bad_request(raw_request().replace(b"Call-ID", b"X-Id"), "x"))
        response = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\nFrom: a\r\nTo: b\r\n"
                    b"Call-ID: c\r\nCSeq: 1 X\r\n\r\n")
        self.assertIsNone(build_bad_request(response, "x"))


class StreamTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.reactor = FakeReactor()
        self.layer = TransportLayer(self.reactor, max_message_size=4000)
        self.tu = AnsweringTU()
        self.txn = TransactionLayer(self.reactor, tu=self.tu, transport=self.layer)
        self.layer.listen("tcp:127.0.0.1:5060")
        self.factory = self.reactor.tcpServers[0][1]

    def connect(self, host="198.51.100.2", port=40001, transport_class=StringTransport):
        proto = self.factory.buildProtocol(IPv4Address("TCP", host, port))
        transport = transport_class(peerAddress=IPv4Address("TCP", host, port),
                                    hostAddress=IPv4Address("TCP", "127.0.0.1", 5060))
        proto.makeConnection(transport)
        return proto, transport

    def responses(self, transport):
        parser = sipmsg.StreamParser(validate=False)
        items = parser.feed(transport.value() + b"\r\n\r\n")  # a ping flushes the last one
        return [item for item in items if not isinstance(item, sipmsg.KeepAlive)]

    def feed_whole(self, proto, data):
        proto.dataReceived(data)

    def test_two_messages(self):
        proto, transport = self.connect()
        data = raw_request(via="SIP/2.0/TCP 192.0.2.7;branch=z9hG4bK1") + \
            raw_request(via="SIP/2.0/TCP 192.0.2.7;branch=z9hG4bK2", call_id="c2@x")
        self.feed(proto, data)
        self.assertEqual([r.call_id for r, _ in self.tu.requests], ["c1@x", "c2@x"])
        request, source = self.tu.requests[0]
        self.assertEqual(source, Peer("tcp", "198.51.100.2", 40001))
        self.assertIs(source.connection, proto)
        self.assertEqual(request.top_via.params["received"], "198.51.100.2")
        statuses = [r.status for r in self.responses(transport)]
        self.assertEqual(statuses, [200, 200])
        self.assertEqual(self.reactor.getDelayedCalls().__len__(), 1)  # only the idle timer

    def feed(self, proto, data):
        self.feed_whole(proto, data)

    def test_ping_pong(self):
        proto, transport = self.connect()
        self.feed(proto, b"\r\n\r\n")
        self.assertEqual(transport.value(), b"\r\n")
        self.assertEqual(self.layer.stats["keepalives"], 1)

    def test_bad_message_then_good(self):
        proto, transport = self.connect()
        bad = raw_request(via="SIP/2.0/TCP 192.0.2.7;branch=z9hG4bK1").replace(
            b"CSeq: 1 MESSAGE", b"CSeq: 1 OPTIONS")
        good = raw_request(via="SIP/2.0/TCP 192.0.2.7;branch=z9hG4bK2", call_id="c2@x")
        self.feed(proto, bad + good)
        items = self.responses(transport)
        self.assertEqual([r.status for r in items], [400, 200])
        self.assertIn("CSeq", items[0].reason)
        self.assertEqual([r.call_id for r, _ in self.tu.requests], ["c2@x"])
        self.assertFalse(transport.disconnecting)

    def test_garbage_stream_closed(self):
        proto, transport = self.connect()
        self.feed(proto, b"garbage\r\n\r\n" * 20)
        self.assertFalse(transport.disconnecting)
        self.feed(proto, b"garbage\r\n\r\n")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.layer.stats["dropped"], 21)

    def test_oversize_closes(self):
        proto, transport = self.connect()
        self.feed(proto, raw_request(body=b"x" * 5000))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.tu.requests, [])
        self.assertEqual(self.layer.stats["oversize"], 1)

    def test_nodelay(self):
        proto, transport = self.connect(transport_class=NoDelayTransport)
        self.assertTrue(transport.nodelay)

    def test_idle_close_unless_in_use(self):
        proto, transport = self.connect()
        proto.hold()
        self.reactor.advance(600)
        self.assertFalse(transport.disconnecting)
        proto.release()
        self.reactor.advance(300)
        self.feed(proto, b"\r\n\r\n")  # activity restarts the idle period
        self.reactor.advance(300)
        self.assertFalse(transport.disconnecting)
        self.reactor.advance(300)
        self.assertTrue(transport.disconnecting)
        proto.connectionLost(Failure(error.ConnectionDone()))
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertEqual(self.layer._connections, {})

    def test_response_reconnects_when_connection_closed(self):
        self.tu.status = None
        proto, transport = self.connect()
        self.feed(proto, raw_request(via="SIP/2.0/TCP 192.0.2.7:5070;branch=z9hG4bK1"))
        request, source = self.tu.requests[0]
        proto.connectionLost(Failure(error.ConnectionDone()))
        self.txn.respond(request, sipmsg.make_response(request, 200, to_tag="z"))
        host, port, factory, _, _ = self.reactor.tcpClients[0]
        self.assertEqual((host, port), ("198.51.100.2", 5070))  # received + sent-by port
        client = factory.buildProtocol(IPv4Address("TCP", host, port))
        out = StringTransport(peerAddress=IPv4Address("TCP", host, port))
        client.makeConnection(out)
        self.assertEqual([r.status for r in self.responses(out)], [200])

    def test_send_request_connects_and_reuses(self):
        peer = Peer("tcp", "203.0.113.5", 5080)
        d1 = self.txn.send_request(sipmsg.parse_message(raw_request()), peer)
        d2 = self.txn.send_request(sipmsg.parse_message(
            raw_request(call_id="c2@x", via="SIP/2.0/UDP x;branch=z9hG4bK2")), peer)
        self.assertEqual(len(self.reactor.tcpClients), 1)  # one connect for both
        host, port, factory, _, _ = self.reactor.tcpClients[0]
        self.assertEqual((host, port), ("203.0.113.5", 5080))
        client = factory.buildProtocol(IPv4Address("TCP", host, port))
        out = StringTransport(peerAddress=IPv4Address("TCP", host, port),
                              hostAddress=IPv4Address("TCP", "127.0.0.1", 45000))
        client.makeConnection(out)
        sent = self.responses(out)
        self.assertEqual([r.call_id for r in sent], ["c1@x", "c2@x"])
        self.assertEqual(sent[0].top_via.transport, "TCP")
        self.assertEqual((sent[0].top_via.host, sent[0].top_via.port), ("127.0.0.1", 5060))
        # a third request reuses the open connection
        self.txn.send_request(sipmsg.parse_message(
            raw_request(call_id="c3@x", via="SIP/2.0/UDP x;branch=z9hG4bK3")), peer)
        self.assertEqual(len(self.reactor.tcpClients), 1)
        # the responses come back on that connection
        proto = client._wrappedProtocol if hasattr(client, "_wrappedProtocol") else client
        self.assertIsInstance(proto, SipStreamProtocol)
        self.assertEqual(proto.in_use, 3)
        for request in sent:
            proto.dataReceived(sipmsg.make_response(request, 200, to_tag="q").to_bytes())
        self.assertEqual(self.successResultOf(d1).status, 200)
        self.assertEqual(self.successResultOf(d2).status, 200)
        self.assertEqual(proto.in_use, 1)

    def test_rfc5923_alias_reuses_inbound_connection(self):
        proto, transport = self.connect()
        self.feed(proto, raw_request(via="SIP/2.0/TCP 192.0.2.7:5070;branch=z9hG4bK1;alias"))
        transport.clear()
        self.txn.send_request(sipmsg.parse_message(
            raw_request(via="SIP/2.0/TCP x;branch=z9hG4bKout", call_id="back@x")),
            Peer("tcp", "192.0.2.7", 5070))
        self.assertEqual(self.reactor.tcpClients, [])
        self.assertEqual([r.call_id for r in self.responses(transport)], ["back@x"])

    def test_no_alias_means_new_connection(self):
        proto, transport = self.connect()
        self.feed(proto, raw_request(via="SIP/2.0/TCP 192.0.2.7:5070;branch=z9hG4bK1"))
        self.txn.send_request(sipmsg.parse_message(raw_request()), Peer("tcp", "192.0.2.7", 5070))
        self.assertEqual(len(self.reactor.tcpClients), 1)

    def test_stop_cancels_connect(self):
        d = self.txn.send_request(sipmsg.parse_message(raw_request()),
                                  Peer("tcp", "203.0.113.5", 5080))
        self.layer.stop()
        self.assertIn("cannot connect", str(self.failureResultOf(d, TransportError).value))
        self.assertEqual(self.layer._connecting, {})

    def test_connection_lost_fails_pending_request(self):
        d = self.txn.send_request(sipmsg.parse_message(raw_request()),
                                  Peer("tcp", "203.0.113.5", 5080))
        host, port, factory, _, _ = self.reactor.tcpClients[0]
        client = factory.buildProtocol(IPv4Address("TCP", host, port))
        client.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", host, port)))
        client.connectionLost(Failure(error.ConnectionLost("peer went away")))
        f = self.failureResultOf(d, TransportError)
        self.assertIn("peer went away", str(f.value))
        self.assertEqual(self.txn.client_transactions, {})
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_connect_failure(self):
        d = self.txn.send_request(sipmsg.parse_message(raw_request()),
                                  Peer("tcp", "203.0.113.5", 5080))
        d2 = self.txn.send_request(sipmsg.parse_message(
            raw_request(via="SIP/2.0/TCP x;branch=z9hG4bK2")), Peer("tcp", "203.0.113.5", 5080))
        self.assertEqual(len(self.reactor.tcpClients), 1)
        _, _, factory, _, _ = self.reactor.tcpClients[0]
        factory.clientConnectionFailed(self.reactor.connectors[0],
                                       Failure(error.ConnectionRefusedError()))
        self.failureResultOf(d, TransportError)
        self.failureResultOf(d2, TransportError)
        self.assertEqual(self.txn.client_transactions, {})
        self.assertEqual(self.layer._connecting, {})
        self.assertEqual(self.reactor.getDelayedCalls(), [])


class StreamByteByByteTests(StreamTests):
    """The same, fed one byte at a time."""

    def feed_whole(self, proto, data):
        for i in range(len(data)):
            proto.dataReceived(data[i:i + 1])


class _Collect(DatagramProtocol):
    def __init__(self):
        self.got = defer.Deferred()

    def datagramReceived(self, data, addr):
        if not self.got.called:
            self.got.callback(data)


class _CollectStream(Protocol):
    def __init__(self):
        self.buffer = b""
        self.got = defer.Deferred()

    def dataReceived(self, data):
        self.buffer += data
        if b"\r\n\r\n" in self.buffer and not self.got.called:
            self.got.callback(self.buffer)


class LoopbackIntegrationTests(unittest.TestCase):
    """Real sockets on 127.0.0.1, OS-chosen ports."""

    def setUp(self):
        from twisted.internet import reactor
        self.reactor = reactor
        self.layer = TransportLayer(reactor)
        self.tu = AnsweringTU(202)
        self.txn = TransactionLayer(reactor, tu=self.tu, transport=self.layer)
        self.udp_port = listen(reactor, "udp:127.0.0.1:0", self.txn)
        self.tcp_port = listen(reactor, "tcp:127.0.0.1:0", self.txn)
        self.addCleanup(self.txn.stop)
        self.addCleanup(self.layer.stop)

    @defer.inlineCallbacks
    def test_udp(self):
        client = _Collect()
        port = self.reactor.listenUDP(0, client, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        local = port.getHost().port
        data = raw_request(via=f"SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bKi1;rport")
        port.write(data, ("127.0.0.1", self.udp_port.getHost().port))
        raw = yield client.got.addTimeout(5, self.reactor)
        response = sipmsg.parse_message(raw)
        self.assertEqual(response.status, 202)
        self.assertEqual(response.top_via.params["rport"], str(local))

    @defer.inlineCallbacks
    def test_tcp(self):
        client = _CollectStream()
        factory = ClientFactory.forProtocol(lambda: client)
        self.reactor.connectTCP("127.0.0.1", self.tcp_port.getHost().port, factory)
        yield task.deferLater(self.reactor, 0.05, lambda: None)
        client.transport.write(raw_request(via="SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKi2"))
        raw = yield client.got.addTimeout(5, self.reactor)
        client.transport.loseConnection()
        self.assertEqual(sipmsg.parse_message(raw).status, 202)
        self.assertEqual(len(self.tu.requests), 1)

    @defer.inlineCallbacks
    def test_udp_client_transaction_to_own_listener(self):
        """Our own UAC side talking to our own UAS side over UDP."""
        request = sipmsg.parse_message(raw_request(via="SIP/2.0/UDP x;branch=z9hG4bKi3"))
        response = yield self.txn.send_request(
            request, Peer("udp", "127.0.0.1", self.udp_port.getHost().port)
        ).addTimeout(5, self.reactor)
        self.assertEqual(response.status, 202)


def make_cert():
    """@return: (server CertificateOptions, trusted Certificate) for 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    server = ssl.PrivateCertificate.loadPEM(cert_pem + key_pem).options()
    return server, ssl.Certificate.loadPEM(cert_pem)


class TLSLoopbackTests(unittest.TestCase):
    """TLS on 127.0.0.1 between our own client and server transports."""

    def setUp(self):
        from twisted.internet import reactor
        self.reactor = reactor
        server_options, self.authority = make_cert()
        self.layer = TransportLayer(reactor)
        self.tu = AnsweringTU(202)
        self.txn = TransactionLayer(reactor, tu=self.tu, transport=self.layer)
        self.port = listen(reactor, "tls:127.0.0.1:0", self.txn, tls_options=server_options)
        self.addCleanup(self.txn.stop)
        self.addCleanup(self.layer.stop)

    def client(self, trusted):
        creator = (lambda name: ssl.optionsForClientTLS(name, trustRoot=self.authority)) \
            if trusted else None
        layer = TransportLayer(self.reactor, tls_client_creator=creator)
        txn = TransactionLayer(self.reactor, transport=layer)
        self.addCleanup(txn.stop)
        self.addCleanup(layer.stop)
        return txn

    @defer.inlineCallbacks
    def test_request_over_tls(self):
        request = sipmsg.parse_message(raw_request(via="SIP/2.0/TLS x;branch=z9hG4bKt1"))
        response = yield self.client(True).send_request(
            request, Peer("tls", "127.0.0.1", self.port.getHost().port)
        ).addTimeout(10, self.reactor)
        self.assertEqual(response.status, 202)
        received, source = self.tu.requests[0]
        self.assertEqual(source.transport, "tls")

    @defer.inlineCallbacks
    def test_untrusted_certificate_fails_fast(self):
        """Hostname/chain verification is on: an untrusted server is refused."""
        request = sipmsg.parse_message(raw_request(via="SIP/2.0/TLS x;branch=z9hG4bKt2"))
        d = self.client(False).send_request(
            request, Peer("tls", "127.0.0.1", self.port.getHost().port))
        try:
            yield d.addTimeout(10, self.reactor)
        except TransportError as e:
            self.assertIn("lost", str(e))
        else:
            self.fail("an untrusted certificate was accepted")
        self.assertEqual(self.tu.requests, [])


class UdpSenderTests(unittest.SynchronousTestCase):
    def test_the_listener_requests_go_from(self):
        layer = TransportLayer(FakeReactor())
        self.assertIsNone(layer.udp_sender())
        layer.listen("tcp:127.0.0.1:0")
        self.assertIsNone(layer.udp_sender())
        layer.listen("udp:127.0.0.1:0")
        layer.listen("udp:[::1]:0")
        v4, v6 = [item.protocol for item in layer._listeners if item.transport == "udp"]
        self.assertIs(layer.udp_sender(), v4)
        self.assertIs(layer.udp_sender(ipv6=True), v6)
