# -*- test-case-name: tests.test_sip_reuseport -*-
"""
SIP listening sockets several processes share (C{[gateway] workers > 1}).

Twisted's C{listenUDP} / C{listenTCP} cannot set C{SO_REUSEPORT}, so the
socket is made here (C{SO_REUSEADDR} + C{SO_REUSEPORT}, non-blocking,
bound, listening for streams) and handed to the reactor with
C{adoptDatagramPort} / C{adoptStreamPort}.  Every process of the group binds
the same address and port; the kernel spreads datagrams and connections
over them by a hash of the source and destination address and port, so all
packets of one peer reach the same process.
"""

from __future__ import annotations

import socket

from twisted.internet import error as ierror

#: listen backlog of shared stream sockets
BACKLOG = 128


def supported() -> bool:
    """@return: whether this platform has C{SO_REUSEPORT}."""
    return hasattr(socket, "SO_REUSEPORT")


def bound_socket(kind: int, host: str, port: int) -> socket.socket:
    """
    A non-blocking socket bound with C{SO_REUSEADDR} and C{SO_REUSEPORT}.

    @param kind: C{socket.SOCK_DGRAM} or C{socket.SOCK_STREAM} (then also
        listening).
    @param host: an IPv4 or IPv6 address (C{""} = all IPv4 addresses).
    @param port: the port (0 lets the OS choose; the others of the group
        then need the port it chose).
    @return: the socket; the caller closes it (after adopting it).
    @raise twisted.internet.error.CannotListenError: no C{SO_REUSEPORT},
        or the bind failed (address in use by a socket without it, ...).
    """
    host = host.strip("[]")
    if not supported():
        raise ierror.CannotListenError(host, port, OSError("SO_REUSEPORT is not available"))
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setblocking(False)
        sock.bind((host or "0.0.0.0", port))
        if kind == socket.SOCK_STREAM:
            sock.listen(BACKLOG)
    except OSError as e:
        sock.close()
        raise ierror.CannotListenError(host, port, e) from None
    return sock


def listen_udp(reactor, port: int, protocol, interface: str = "",
               max_packet_size: int = 8192):
    """
    Like C{reactor.listenUDP}, on a shared (C{SO_REUSEPORT}) socket.

    @param reactor: an C{IReactorSocket}.
    @return: the C{IListeningPort}.
    @raise twisted.internet.error.CannotListenError: see L{bound_socket}.
    """
    sock = bound_socket(socket.SOCK_DGRAM, interface, port)
    try:
        return reactor.adoptDatagramPort(sock.fileno(), sock.family, protocol,
                                         max_packet_size)
    finally:
        sock.close()  # the reactor holds its own duplicate


def listen_tcp(reactor, port: int, factory, interface: str = ""):
    """
    Like C{reactor.listenTCP}, on a shared (C{SO_REUSEPORT}) socket.

    @param reactor: an C{IReactorSocket}.
    @return: the C{IListeningPort}.
    @raise twisted.internet.error.CannotListenError: see L{bound_socket}.
    """
    sock = bound_socket(socket.SOCK_STREAM, interface, port)
    try:
        return reactor.adoptStreamPort(sock.fileno(), sock.family, factory)
    finally:
        sock.close()
