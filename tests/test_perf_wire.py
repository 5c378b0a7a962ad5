"""
Tests for the UDP send fast path of L{gwsms.sip.wire.SipDatagramProtocol}
(straight to the port's socket) and the cached IP literal checks.
"""

import errno
import socket

from twisted.internet import error as ierror
from twisted.trial import unittest

from gwsms.sip import wire
from gwsms.sip.transport import TransportError


class FakeSocket:
    def __init__(self, family=socket.AF_INET, error=None):
        self.family = family
        self.error = error
        self.sent = []

    def sendto(self, data, addr):
        if self.error is not None:
            raise self.error
        self.sent.append((data, addr))
        return len(data)


class FakePort:
    def __init__(self, sock=None):
        if sock is not None:
            self.socket = sock
        self.written = []

    def write(self, data, addr):
        if ":" in addr[0]:
            raise ierror.InvalidAddressError(addr[0], "IPv4 port write() called with IPv6 address")
        self.written.append((data, addr))


def protocol(port):
    proto = wire.SipDatagramProtocol(layer=None)
    proto.transport = port
    return proto


class SendBytesTests(unittest.SynchronousTestCase):
    def test_sends_on_the_socket(self):
        sock = FakeSocket()
        port = FakePort(sock)
        protocol(port).send_bytes(b"SIP/2.0 202 Accepted\r\n\r\n", "127.0.0.1", 5070)
        self.assertEqual(sock.sent, [(b"SIP/2.0 202 Accepted\r\n\r\n", ("127.0.0.1", 5070))])
        self.assertEqual(port.written, [])

    def test_full_buffer_drops_the_datagram(self):
        proto = protocol(FakePort(FakeSocket(error=BlockingIOError(errno.EAGAIN, "busy"))))
        proto.send_bytes(b"x", "127.0.0.1", 5070)
        self.assertEqual(proto.send_dropped, 1)

    def test_connection_refused_ignored(self):
        proto = protocol(FakePort(FakeSocket(error=ConnectionRefusedError(
            errno.ECONNREFUSED, "refused"))))
        proto.send_bytes(b"x", "127.0.0.1", 5070)
        self.assertEqual(proto.send_dropped, 0)

    def test_other_errors_are_transport_errors(self):
        proto = protocol(FakePort(FakeSocket(error=OSError(errno.EMSGSIZE, "too long"))))
        e = self.assertRaises(TransportError, proto.send_bytes, b"x", "127.0.0.1", 5070)
        self.assertIn("127.0.0.1:5070", str(e))

    def test_hostname_refused(self):
        proto = protocol(FakePort(FakeSocket()))
        e = self.assertRaises(TransportError, proto.send_bytes, b"x", "example.com", 5060)
        self.assertIn("not an IP address", str(e))

    def test_wrong_family_goes_through_port_checks(self):
        port = FakePort(FakeSocket(family=socket.AF_INET))
        self.assertRaises(TransportError, protocol(port).send_bytes, b"x", "::1", 5060)

    def test_port_without_socket_uses_write(self):
        port = FakePort()
        protocol(port).send_bytes(b"x", "192.0.2.1", 5060)
        self.assertEqual(port.written, [(b"x", ("192.0.2.1", 5060))])


class SameHostTests(unittest.SynchronousTestCase):
    def test_ip_forms(self):
        self.assertTrue(wire._same_host("::1", "[::1]"))
        self.assertTrue(wire._same_host("0:0::1", "::1"))
        self.assertFalse(wire._same_host("127.0.0.1", "127.0.0.2"))

    def test_names(self):
        self.assertTrue(wire._same_host("Example.COM", "example.com"))
        self.assertFalse(wire._same_host("example.com", "192.0.2.1"))
        self.assertTrue(wire.is_ip("[2001:db8::1]"))
        self.assertFalse(wire.is_ip("example.com"))
