# -*- test-case-name: tests.test_sip_transport -*-
"""
SIP on the wire: L{Peer}, the UDP and TCP/TLS protocols, and the helpers
they share (listen specs, Via rewriting, 400 for unparseable requests,
rate-limited drop logs).  The L{gwsms.sip.transport.TransportLayer} ties
them together; import the public names from L{gwsms.sip.transport}.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import re
import secrets
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from twisted.internet import error as ierror
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.logger import Logger

from gwsms.sip import message as sipmsg

if TYPE_CHECKING:  # pragma: no cover
    from gwsms.sip.transport import TransportLayer

TRANSPORTS = ("udp", "tcp", "tls")
RELIABLE = frozenset({"tcp", "tls"})
DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}

#: a stream that sends more bad messages than this in a row is closed
MAX_BAD_IN_ROW = 20

_SPEC_RE = re.compile(r"^(udp|tcp|tls):(?:(\[[0-9A-Fa-f:.]+\]|[^:\[\]]*):)?(\d{1,5})$")


class TransportError(Exception):
    """
    A message could not be sent (connection refused or lost, unroutable
    address, no listener for the transport, ...).
    """


@dataclass(frozen=True)
class Peer:
    """
    The remote end of a SIP hop.

    @ivar transport: C{"udp"}, C{"tcp"} or C{"tls"}.
    @ivar host: IP address (UDP needs one) or host name, without brackets.
    @ivar port: port number.
    @ivar connection: the L{SipStreamProtocol} or L{SipDatagramProtocol} a
        message arrived on (not part of equality), or L{None}.
    @ivar server_name: name to verify the TLS certificate against when it
        differs from C{host} (e.g. the SIP domain after DNS resolution).
    """

    transport: str
    host: str
    port: int
    connection: object = field(default=None, compare=False, repr=False)
    server_name: str | None = field(default=None, compare=False)

    def __post_init__(self):
        transport = str(self.transport).lower()
        if transport not in TRANSPORTS:
            raise ValueError(f"unknown SIP transport {self.transport!r}")
        object.__setattr__(self, "transport", transport)
        object.__setattr__(self, "host", str(self.host).strip("[]"))
        object.__setattr__(self, "port", int(self.port))
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} out of range")

    @property
    def reliable(self) -> bool:
        """C{True} for TCP and TLS."""
        return self.transport in RELIABLE

    @property
    def key(self) -> tuple[str, str, int]:
        """C{(transport, host, port)}: how connections are indexed."""
        return (self.transport, self.host.lower(), self.port)


def parse_listen_spec(spec: str) -> tuple[str, str, int]:
    """
    Parse C{"udp:HOST:PORT"}, C{"tcp:HOST:PORT"}, C{"tls:HOST:PORT"}
    (IPv6 as C{"udp:[::1]:5060"}; C{"udp:5060"} listens on all interfaces).

    @return: C{(transport, host, port)} with the host unbracketed.
    @raise ValueError: naming the spec when it is malformed.
    """
    match = _SPEC_RE.match(spec.strip()) if isinstance(spec, str) else None
    if match is None:
        raise ValueError(
            f"bad SIP listen spec {spec!r}: expected udp|tcp|tls:HOST:PORT")
    transport, host, port = match.group(1), match.group(2) or "", int(match.group(3))
    if port > 65535:
        raise ValueError(f"bad SIP listen spec {spec!r}: port {port} out of range")
    host = host.strip("[]")
    return transport, host, port


@functools.lru_cache(maxsize=4096)
def _ip(host: str):
    """@return: the C{ipaddress} object of an IP literal (brackets allowed),
    else L{None}; cached: the same few peers come back for every message."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_ip(host: str) -> bool:
    """C{True} if C{host} is an IPv4 or IPv6 literal."""
    return _ip(host) is not None


def _same_host(a: str, b: str) -> bool:
    if a == b:
        return True
    ip_a, ip_b = _ip(a), _ip(b)
    if ip_a is not None and ip_b is not None:
        return ip_a == ip_b
    if (ip_a is None) != (ip_b is None):
        return False
    return a.strip("[]").lower() == b.strip("[]").lower()


def _hostport(host: str, port: int | None) -> str:
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return host if port is None else f"{host}:{port}"


def top_via(message):
    """
    @return: the parsed top L{sipmsg.Via} of C{message}, or L{None} if it
        has none or it does not parse.
    """
    try:
        return message.top_via
    except (sipmsg.SipError, ValueError):
        return None


def replace_top_via(message, via) -> None:
    """Replace the top Via of C{message} by C{via} (a Via or text)."""
    message.headers.replace_first("Via", str(via))


class _LogLimiter:
    """
    Lets one line per key through every C{interval} seconds and counts the
    ones it holds back, so a flood of garbage does not flood the log.
    """

    def __init__(self, clock, interval: float):
        self._clock = clock
        self._interval = interval
        self._state: dict[str, list] = {}

    def check(self, key: str) -> int | None:
        """
        @return: L{None} to suppress, else the number suppressed since the
            last line that went through.
        """
        now = self._clock.seconds()
        state = self._state.get(key)
        if state is None:
            if len(self._state) > 1000:
                self._state.clear()
            self._state[key] = [now, 0]
            return 0
        if now - state[0] >= self._interval:
            suppressed = state[1]
            state[0], state[1] = now, 0
            return suppressed
        state[1] += 1
        return None


_HEADER_ALIASES = {"v": "via", "f": "from", "t": "to", "i": "call-id"}
_REQUEST_LINE_RE = re.compile(rb"^([A-Za-z0-9.!%*_+`'~-]+) +(\S+) +SIP/2\.0\s*$")


def build_bad_request(data: bytes, reason: str) -> bytes | None:
    """
    Build a 400 response for a request that did not parse, if the request
    line and the Via, From, To, Call-ID and CSeq headers are readable.

    @param data: the raw message (only its head is looked at).
    @param reason: what is wrong, used in the reason phrase.
    @return: the response bytes, or L{None} if no response can be built
        (a response, an ACK, or too broken).
    """
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    match = _REQUEST_LINE_RE.match(lines[0])
    if match is None or match.group(1).upper() == b"ACK":
        return None
    found: dict[str, list[bytes]] = {}
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t") or b":" not in line:
            continue
        name, _, value = line.partition(b":")
        name = name.strip().lower().decode("latin-1")
        name = _HEADER_ALIASES.get(name, name)
        if name in ("via", "from", "to", "call-id", "cseq"):
            value = value.strip()
            if not value or any(c < 0x20 or c == 0x7F for c in value):
                return None
            found.setdefault(name, []).append(value)
    if any(name not in found for name in ("via", "from", "to", "call-id", "cseq")):
        return None
    if len(found["from"]) > 1 or len(found["to"]) > 1 or len(found["call-id"]) > 1:
        return None
    to = found["to"][0]
    if b";tag=" not in to.lower().replace(b" ", b""):
        to += b";tag=" + secrets.token_hex(8).encode()
    phrase = "Bad Request (" + re.sub(r"[^\x20-\x7e]", "?", reason)[:100] + ")"
    out = [b"SIP/2.0 400 " + phrase.encode("ascii")]
    out += [b"Via: " + via for via in found["via"]]
    out += [b"From: " + found["from"][0], b"To: " + to,
            b"Call-ID: " + found["call-id"][0], b"CSeq: " + found["cseq"][0],
            b"Content-Length: 0", b"", b""]
    return b"\r\n".join(out)


def _set_nodelay(transport) -> None:
    for _ in range(3):
        if transport is None:
            return
        setter = getattr(transport, "setTcpNoDelay", None)
        if setter is not None:
            try:
                setter(True)
            except (OSError, AttributeError):
                pass
            return
        transport = getattr(transport, "transport", None)


class SipDatagramProtocol(DatagramProtocol):
    """
    SIP over UDP: one message per datagram, parsed with C{parse_message}.

    @ivar sent_by: C{(host, port)} to put in the Via of requests sent from
        this socket (set by L{TransportLayer.listen}).
    """

    noisy = False  # no log line per connection / start

    _log = Logger()

    def __init__(self, layer: TransportLayer):
        """
        @param layer: the L{TransportLayer} that receives the messages.
        """
        self.layer = layer
        self.sent_by: tuple[str, int] | None = None
        #: datagrams not sent because the socket buffer was full (EAGAIN)
        self.send_dropped = 0

    def datagramReceived(self, data, addr):
        layer = self.layer
        layer.stats["received"] += 1
        if len(data) > layer.max_message_size:
            layer.drop("oversize", "dropped a {size}-byte UDP datagram from {source}"
                       " (max {max})", size=len(data), source=_hostport(addr[0], addr[1]),
                       max=layer.max_message_size)
            return
        if sipmsg.is_keepalive(data):
            layer.stats["keepalives"] += 1
            return
        for fast in layer.fast_paths:
            if fast(self, data, addr):
                return
        source = Peer("udp", addr[0], addr[1], connection=self)
        try:
            msg = sipmsg.parse_message(data)
        except sipmsg.SipError as e:
            layer.bad_message(data, e, source)
            return
        except Exception:
            layer.stats["dropped"] += 1
            layer.log_limited("parser-crash", "parser failed on a datagram from {source}",
                              failure=True, source=_hostport(addr[0], addr[1]))
            return
        layer.message_received(msg, source)

    def send_bytes(self, data: bytes, host: str, port: int) -> None:
        """
        Send one datagram.

        @raise TransportError: the host is not an IP address or the socket
            refused the datagram.
        """
        transport = self.transport
        if transport is None:
            raise TransportError("UDP socket is closed")
        ip = _ip(host)
        if ip is None:
            raise TransportError(f"UDP target {host!r} is not an IP address")
        sock = getattr(transport, "socket", None)
        if sock is None or (sock.family == socket.AF_INET6) != (ip.version == 6):
            # not a plain UDP port (or the wrong family): its own checks
            try:
                transport.write(data, (host.strip("[]"), port))
            except (OSError, ierror.MessageLengthError, ierror.CannotListenError,
                    ierror.InvalidAddressError) as e:
                raise TransportError(f"UDP send to {_hostport(host, port)} failed: {e}") from e
            return
        # the hot path: the address is known to be an IP literal of the
        # socket's family, so skip the port's per-call re-validation
        try:
            sock.sendto(data, (host.strip("[]") if ip.version == 6 else host, port))
        except BlockingIOError:
            # socket buffer full: lost like any datagram (the sender
            # retransmits); never a reason to end the transaction
            self.send_dropped += 1
        except InterruptedError:
            self.send_bytes(data, host, port)
        except OSError as e:
            if e.errno == errno.ECONNREFUSED:
                return  # an earlier datagram's ICMP error, as twisted ignores it
            raise TransportError(f"UDP send to {_hostport(host, port)} failed: {e}") from e


class SipStreamProtocol(Protocol):
    """
    SIP over one TCP or TLS connection (Content-Length framing by
    C{StreamParser}).  CRLFCRLF pings are answered with a CRLF pong.

    @ivar peer: the remote end as a L{Peer} with C{connection=self}.
    @ivar in_use: how many transactions hold this connection open; the idle
        timer does not close a connection in use.
    """

    _log = Logger()

    def __init__(self, layer: TransportLayer, transport_name: str, outbound: bool = False):
        """
        @param layer: the L{TransportLayer}.
        @param transport_name: C{"tcp"} or C{"tls"}.
        @param outbound: C{True} when we opened the connection.
        """
        self.layer = layer
        self.transport_name = transport_name
        self.outbound = outbound
        self.peer: Peer | None = None
        self.in_use = 0
        self._owners: set = set()
        self._bad_in_row = 0
        self.connected_ = False
        self._parser = sipmsg.StreamParser(layer.max_message_size)
        self._idle_call = None
        self._last_activity = 0.0

    def connectionMade(self):
        _set_nodelay(self.transport)
        address = self.transport.getPeer()
        self.peer = Peer(self.transport_name, getattr(address, "host", "?"),
                         getattr(address, "port", 0), connection=self)
        self.connected_ = True
        self._last_activity = self.layer.clock.seconds()
        if self.layer.idle_timeout:
            self._idle_call = self.layer.clock.callLater(self.layer.idle_timeout, self._idle_check)
        self.layer.connection_made(self)

    def hold(self, owner=None) -> None:
        """
        Mark the connection in use (a transaction depends on it).

        @param owner: if given, its C{connection_lost(connection, reason)}
            is called should the connection close while held.
        """
        self.in_use += 1
        if owner is not None:
            self._owners.add(owner)

    def release(self, owner=None) -> None:
        """Undo one L{hold}."""
        self.in_use = max(0, self.in_use - 1)
        self._owners.discard(owner)

    def _idle_check(self):
        self._idle_call = None
        now = self.layer.clock.seconds()
        left = self._last_activity + self.layer.idle_timeout - now
        if left > 0 or self.in_use:
            self._idle_call = self.layer.clock.callLater(
                left if left > 0 else self.layer.idle_timeout, self._idle_check)
            return
        self._log.info("closing idle SIP {transport} connection to {peer}",
                       transport=self.transport_name, peer=self._peer_text())
        self.transport.loseConnection()

    def _peer_text(self) -> str:
        return _hostport(self.peer.host, self.peer.port) if self.peer else "?"

    def dataReceived(self, data):
        self._last_activity = self.layer.clock.seconds()
        try:
            items = self._parser.feed(data)
        except Exception:
            self._log.failure("SIP stream parser failed; closing {peer}", peer=self._peer_text())
            self.transport.loseConnection()
            return
        for item in items:
            if not self.connected_ or self.transport.disconnecting:
                return
            self._handle_item(item)

    def _handle_item(self, item) -> None:
        layer = self.layer
        if isinstance(item, sipmsg.KeepAlive):
            layer.stats["keepalives"] += 1
            self.transport.write(sipmsg.PONG)
        elif isinstance(item, sipmsg.SipError):
            layer.stats["received"] += 1
            self._bad_in_row += 1
            if item.status == 513 or self._bad_in_row > MAX_BAD_IN_ROW:
                layer.stats["dropped"] += 1
                if item.status == 513:
                    layer.stats["oversize"] += 1
                reason = item.reason if item.status == 513 else \
                    f"{self._bad_in_row} bad messages in a row (last: {item.reason})"
                self._log.info("closing SIP {transport} connection from {peer}: {reason}",
                               transport=self.transport_name, peer=self._peer_text(),
                               reason=reason)
                self.transport.loseConnection()
                return
            layer.bad_message(b"", item, self.peer)
        else:
            self._bad_in_row = 0
            layer.stats["received"] += 1
            layer.message_received(item, self.peer)

    def send_bytes(self, data: bytes) -> None:
        """
        Write one serialised message.

        @raise TransportError: the connection is closed.
        """
        if not self.connected_ or self.transport.disconnecting:
            raise TransportError(f"{self.transport_name} connection to {self._peer_text()} closed")
        self._last_activity = self.layer.clock.seconds()
        self.transport.write(data)

    def connectionLost(self, reason=None):
        self.connected_ = False
        if self._parser.buffered or getattr(self._parser, "_pending", None) is not None:
            self.layer.drop("partial", "SIP {transport} connection from {peer} closed with"
                            " {size} bytes of an incomplete message", size=self._parser.buffered,
                            transport=self.transport_name, peer=self._peer_text())
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.cancel()
        self._idle_call = None
        self.layer.connection_lost(self)
        owners, self._owners = self._owners, set()
        for owner in owners:
            try:
                owner.connection_lost(self, reason)
            except Exception:
                self._log.failure("connection_lost handler failed")


class SipStreamFactory(Factory):
    """Builds L{SipStreamProtocol}s for one transport (C{"tcp"} or C{"tls"})."""

    noisy = False  # no log line per connection / start

    def __init__(self, layer: TransportLayer, transport_name: str, outbound: bool = False):
        self.layer = layer
        self.transport_name = transport_name
        self.outbound = outbound

    def buildProtocol(self, addr):
        return SipStreamProtocol(self.layer, self.transport_name, self.outbound)

