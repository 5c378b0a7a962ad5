"""
Tests for L{gwsms.sip.reuseport}: listening sockets shared by worker
processes (real sockets on 127.0.0.1; both members of a group receive).
"""

from __future__ import annotations

import select
import socket

from twisted.internet import defer, error as ierror, protocol, reactor as global_reactor
from twisted.trial import unittest

from gwsms.sip import reuseport
from gwsms.sip.transport import TransportLayer

if not reuseport.supported():  # pragma: no cover
    skip = "no SO_REUSEPORT on this platform"


def _senders(count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    return socks


class BoundSocketTests(unittest.TestCase):
    def test_two_udp_sockets_share_a_port_and_both_receive(self):
        """
        Two sockets bound to one port both get datagrams when many source
        ports send (the kernel hashes the source address and port).
        """
        a = reuseport.bound_socket(socket.SOCK_DGRAM, "127.0.0.1", 0)
        self.addCleanup(a.close)
        port = a.getsockname()[1]
        b = reuseport.bound_socket(socket.SOCK_DGRAM, "127.0.0.1", port)
        self.addCleanup(b.close)
        self.assertEqual(b.getsockname()[1], port)
        senders = _senders(64)
        for s in senders:
            self.addCleanup(s.close)
            s.sendto(b"x%d" % s.getsockname()[1], ("127.0.0.1", port))
        got = {a: set(), b: set()}
        while sum(len(v) for v in got.values()) < len(senders):
            ready, _, _ = select.select([a, b], [], [], 5.0)
            self.assertTrue(ready, "timed out waiting for datagrams")
            for sock in ready:
                data, source = sock.recvfrom(100)
                self.assertEqual(data, b"x%d" % source[1])
                got[sock].add(source[1])
        self.assertTrue(got[a] and got[b], f"one socket got nothing: {got}")
        self.assertEqual(got[a] | got[b], {s.getsockname()[1] for s in senders})
        self.assertFalse(got[a] & got[b])

    def test_same_source_same_socket(self):
        """Every datagram of one source lands on the same member."""
        a = reuseport.bound_socket(socket.SOCK_DGRAM, "127.0.0.1", 0)
        self.addCleanup(a.close)
        port = a.getsockname()[1]
        b = reuseport.bound_socket(socket.SOCK_DGRAM, "127.0.0.1", port)
        self.addCleanup(b.close)
        (sender,) = _senders(1)
        self.addCleanup(sender.close)
        for i in range(10):
            sender.sendto(b"%d" % i, ("127.0.0.1", port))
        seen = []
        while len(seen) < 10:
            ready, _, _ = select.select([a, b], [], [], 5.0)
            self.assertTrue(ready, "timed out waiting for datagrams")
            for sock in ready:
                sock.recvfrom(100)
                seen.append(sock)
        self.assertEqual(len(set(seen)), 1)

    def test_port_taken_without_reuseport(self):
        """A port held by a socket without SO_REUSEPORT: CannotListenError."""
        plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(plain.close)
        plain.bind(("127.0.0.1", 0))
        port = plain.getsockname()[1]
        e = self.assertRaises(ierror.CannotListenError, reuseport.bound_socket,
                              socket.SOCK_DGRAM, "127.0.0.1", port)
        self.assertEqual(e.port, port)

    def test_stream_socket_listens(self):
        """Two TCP listeners on one port; a client connects."""
        a = reuseport.bound_socket(socket.SOCK_STREAM, "127.0.0.1", 0)
        self.addCleanup(a.close)
        port = a.getsockname()[1]
        b = reuseport.bound_socket(socket.SOCK_STREAM, "127.0.0.1", port)
        self.addCleanup(b.close)
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.addCleanup(client.close)
        ready, _, _ = select.select([a, b], [], [], 5.0)
        self.assertEqual(len(ready), 1)
        conn, _ = ready[0].accept()
        conn.close()


class _Collect(protocol.DatagramProtocol):
    def __init__(self, sink: list, name: str):
        self.sink = sink
        self.name = name

    def datagramReceived(self, data, addr):
        self.sink.append((self.name, data))


class AdoptedPortTests(unittest.TestCase):
    """The reactor side: L{reuseport.listen_udp} / L{reuseport.listen_tcp}."""

    @defer.inlineCallbacks
    def test_listen_udp_twice(self):
        got: list = []
        p1 = reuseport.listen_udp(global_reactor, 0, _Collect(got, "one"), "127.0.0.1")
        self.addCleanup(p1.stopListening)
        port = p1.getHost().port
        p2 = reuseport.listen_udp(global_reactor, port, _Collect(got, "two"), "127.0.0.1")
        self.addCleanup(p2.stopListening)
        self.assertEqual(p2.getHost().port, port)
        senders = _senders(64)
        for s in senders:
            self.addCleanup(s.close)
            s.sendto(b"hello", ("127.0.0.1", port))
        for _ in range(500):
            if len(got) >= 64:
                break
            yield _later(0.01)
        self.assertEqual(len(got), 64)
        self.assertEqual({name for name, _ in got}, {"one", "two"})

    @defer.inlineCallbacks
    def test_listen_tcp_twice(self):
        factory = protocol.Factory.forProtocol(protocol.Protocol)
        p1 = reuseport.listen_tcp(global_reactor, 0, factory, interface="127.0.0.1")
        self.addCleanup(p1.stopListening)
        port = p1.getHost().port
        p2 = reuseport.listen_tcp(global_reactor, port, factory, interface="127.0.0.1")
        self.addCleanup(p2.stopListening)
        self.assertEqual((p1.getHost().port, p2.getHost().port), (port, port))
        yield p2.stopListening()
        yield p1.stopListening()

    @defer.inlineCallbacks
    def test_transport_layer_reuse_and_prefer(self):
        """
        C{TransportLayer.listen(reuse_port=True)} shares the port; a
        C{prefer=True} listener is the one requests are sent from.
        """
        first = TransportLayer(global_reactor)
        self.addCleanup(first.stop)
        p1 = first.listen("udp:127.0.0.1:0", reuse_port=True)
        port = p1.getHost().port
        second = TransportLayer(global_reactor)
        self.addCleanup(second.stop)
        p2 = second.listen(f"udp:127.0.0.1:{port}", reuse_port=True)
        self.assertEqual(p2.getHost().port, port)
        private = second.listen("udp:127.0.0.1:0", prefer=True)
        chosen = second._listener_for("udp", "127.0.0.1")
        self.assertEqual(chosen.port, private.getHost().port)
        self.assertNotEqual(chosen.port, port)
        yield defer.succeed(None)


def _later(seconds: float) -> defer.Deferred:
    d = defer.Deferred()
    global_reactor.callLater(seconds, d.callback, None)
    return d
