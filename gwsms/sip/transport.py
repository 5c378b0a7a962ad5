# -*- test-case-name: tests.test_sip_transport -*-
"""
SIP transports: UDP, TCP and TLS (RFC 3261 section 18, RFC 3581 rport).

The L{TransportLayer} owns the listening ports and the open stream
connections.  It hands every parsed message to its transaction layer with
C{transaction_layer.message_received(message, source)} and sends messages
with L{TransportLayer.send}.  Nothing here knows about transactions or the
transaction user; the codec lives in L{gwsms.sip.message}, the protocols
in L{gwsms.sip.wire} (re-exported here).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from twisted.internet import defer, endpoints
from twisted.internet.ssl import optionsForClientTLS
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory

from gwsms.sip import message as sipmsg
from gwsms.sip import reuseport
from gwsms.sip.wire import (
    DEFAULT_PORTS,
    RELIABLE,
    TRANSPORTS,
    Peer,
    SipDatagramProtocol,
    SipStreamFactory,
    SipStreamProtocol,
    TransportError,
    _hostport,
    _LogLimiter,
    _same_host,
    build_bad_request,
    is_ip,
    parse_listen_spec,
    replace_top_via,
    top_via,
)

_WILDCARDS = ("", "0.0.0.0", "::")

__all__ = [
    "DEFAULT_PORTS", "RELIABLE", "TRANSPORTS", "Peer", "SipDatagramProtocol",
    "SipStreamFactory", "SipStreamProtocol", "TransportError", "TransportLayer",
    "build_bad_request", "is_ip", "listen", "parse_listen_spec", "replace_top_via",
    "top_via",
]


@dataclass
class _Listener:
    transport: str
    host: str  # advertised in Via sent-by
    port: int
    listening_port: object
    protocol: SipDatagramProtocol | None = None
    bound: str = ""  # the address bound to

    @property
    def ipv6(self) -> bool:
        return ":" in self.bound


class TransportLayer:
    """
    Owns SIP listening ports and stream connections; routes messages in
    both directions.

    @ivar transaction_layer: receives C{message_received(message, source)}.
    @ivar stats: counters (received, sent, bad_answered, dropped, oversize,
        keepalives, send_errors, connections).
    """

    _log = Logger()

    def __init__(self, reactor, transaction_layer=None, max_message_size: int = 65535,
                 idle_timeout: float = 600.0, tls_client_creator=None,
                 connect_timeout: float = 10.0, log_interval: float = 10.0,
                 udp_receive_buffer: int = 0):
        """
        @param reactor: IReactorTime + IReactorTCP + IReactorUDP (used for
            timers, listening and connecting).
        @param transaction_layer: object with C{message_received(message,
            source)}; may be set later as C{.transaction_layer}.
        @param max_message_size: larger messages are dropped (UDP) or close
            the connection (TCP/TLS).
        @param idle_timeout: seconds after which an unused stream connection
            is closed (0 = never).
        @param tls_client_creator: C{callable(hostname) ->
            IOpenSSLClientConnectionCreator}; default C{optionsForClientTLS}
            (system trust store, hostname verification on).
        @param connect_timeout: TCP connect timeout in seconds.
        @param log_interval: minimum seconds between identical drop logs.
        @param udp_receive_buffer: SO_RCVBUF of UDP listeners in bytes (0:
            the kernel's default).
        """
        self.reactor = self.clock = reactor
        self.transaction_layer = transaction_layer
        self.max_message_size = max_message_size
        self.idle_timeout = idle_timeout
        self.udp_receive_buffer = udp_receive_buffer
        self.connect_timeout = connect_timeout
        self._tls_client_creator = tls_client_creator or (lambda name: optionsForClientTLS(name))
        self._limiter = _LogLimiter(reactor, log_interval)
        self._listeners: list[_Listener] = []
        self._connections: dict[tuple, SipStreamProtocol] = {}
        self._connecting: dict[tuple, defer.Deferred] = {}
        self._all_connections: set[SipStreamProtocol] = set()
        #: raw-datagram handlers tried before parsing, in order:
        #: C{handler(protocol, data, addr) -> bool}; C{True} means the
        #: datagram was consumed (answered, absorbed or queued) and is not
        #: parsed.  The hot-path lanes (L{gwsms.core.fastmt},
        #: L{gwsms.core.fastmo}) register here; anything they do not
        #: recognise goes through the full parser and transaction layer.
        self.fast_paths: list = []
        self.stats = dict.fromkeys(
            ("received", "sent", "bad_answered", "dropped", "oversize", "keepalives",
             "send_errors", "connections"), 0)

    # -- listening ---------------------------------------------------------

    def listen(self, spec: str, tls_options=None, advertised_host: str | None = None,
               reuse_port: bool = False, prefer: bool = False):
        """
        Open a listening port.

        @param spec: C{"udp:HOST:PORT"}, C{"tcp:HOST:PORT"} or
            C{"tls:HOST:PORT"}; port 0 lets the OS choose.
        @param tls_options: server TLS options (e.g. C{CertificateOptions}),
            required for C{tls:}.
        @param advertised_host: host for the Via sent-by of requests sent
            via this listener (default: the bound address, or the
            connection's local address when bound to a wildcard).
        @param reuse_port: bind with C{SO_REUSEPORT} (L{gwsms.sip.reuseport}),
            sharing the port with other worker processes.
        @param prefer: send new requests from this listener rather than
            from those opened before (a worker's private UDP port, so that
            the answers come back to it and not to another worker).
        @return: the listening port (C{IListeningPort}).
        @raise ValueError: bad spec or C{tls:} without C{tls_options}.
        """
        transport, host, port = parse_listen_spec(spec)
        proto = None
        if transport == "udp":
            proto = SipDatagramProtocol(self)
            if reuse_port:
                listening = reuseport.listen_udp(self.reactor, port, proto, host,
                                                 self.max_message_size + 1)
            else:
                listening = self.reactor.listenUDP(port, proto, interface=host,
                                                   maxPacketSize=self.max_message_size + 1)
            if self.udp_receive_buffer:
                self._grow_receive_buffer(listening)
        else:
            if transport == "tcp":
                factory = SipStreamFactory(self, "tcp")
            elif tls_options is None:
                raise ValueError(f"SIP listen spec {spec!r} needs TLS certificate options")
            else:
                factory = TLSMemoryBIOFactory(tls_options, False, SipStreamFactory(self, "tls"))
            if reuse_port:
                listening = reuseport.listen_tcp(self.reactor, port, factory, interface=host)
            else:
                listening = self.reactor.listenTCP(port, factory, interface=host)
        actual = listening.getHost()
        bound_host = host if host not in _WILDCARDS else getattr(actual, "host", host)
        actual_port = getattr(actual, "port", port)
        if transport == "udp" and advertised_host is None and bound_host in _WILDCARDS:
            advertised_host = socket.gethostname()
            self._log.warn("SIP {spec} listens on all interfaces; Via sent-by will be"
                           " {host!r} (pass advertised_host to choose)",
                           spec=spec, host=advertised_host)
        listener = _Listener(transport, advertised_host or bound_host, actual_port,
                             listening, proto, bound_host)
        if proto is not None:
            proto.sent_by = (listener.host, listener.port)
        if prefer:
            self._listeners.insert(0, listener)
        else:
            self._listeners.append(listener)
        self._log.info("SIP listening on {transport}:{hostport}", transport=transport,
                       hostport=_hostport(bound_host, actual_port))
        return listening

    def _grow_receive_buffer(self, listening) -> None:
        sock = getattr(listening, "socket", None)
        if sock is None:
            return
        wanted = self.udp_receive_buffer
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, wanted)
            # Linux reports twice the size asked for (bookkeeping included)
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < wanted:
                force = getattr(socket, "SO_RCVBUFFORCE", None)
                if force is not None:
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, force, wanted)
                    except OSError:
                        pass  # not privileged: what rmem_max allows
            got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        except OSError as e:
            self._log.info("cannot set the SIP UDP receive buffer: {error}", error=e)
            return
        if got < wanted:
            self._log.info("SIP UDP receive buffer is {got} bytes, not {wanted}: raise "
                           "net.core.rmem_max to allow more", got=got // 2, wanted=wanted)

    def has_listener(self, transport: str) -> bool:
        """@return: whether a listener for C{transport} is open."""
        return any(item.transport == transport for item in self._listeners)

    def udp_sender(self, ipv6: bool = False):
        """
        The UDP listener requests to an address family go from (as
        L{send} picks it), for the hot-path lanes that send on its socket.

        @return: its L{SipDatagramProtocol}, or C{None} when there is no
            UDP listener.
        """
        listener = self._listener_for("udp", "::" if ipv6 else "0.0.0.0")
        return None if listener is None else listener.protocol

    def _listener_for(self, transport: str, host: str | None = None) -> _Listener | None:
        """@return: the first listener of C{transport} of C{host}'s address family."""
        family6 = host is not None and ":" in host
        fallback = None
        for item in self._listeners:
            if item.transport != transport:
                continue
            if host is None or item.ipv6 == family6:
                return item
            fallback = fallback or item
        return fallback

    def stop(self) -> defer.Deferred:
        """
        Stop listening and close every stream connection.

        @return: Deferred that fires when the ports are closed.
        """
        waits = []
        for listener in self._listeners:
            waits.append(defer.maybeDeferred(listener.listening_port.stopListening))
        self._listeners = []
        for conn in list(self._all_connections):
            conn.transport.loseConnection()
        for attempt, _waiters in list(self._connecting.values()):
            attempt.cancel()
        return defer.DeferredList(waits, consumeErrors=True)

    # -- incoming ----------------------------------------------------------

    def log_limited(self, key: str, fmt: str, failure: bool = False, **kw) -> None:
        """Log C{fmt} at info level unless the same key was logged recently."""
        suppressed = self._limiter.check(key)
        if suppressed is None:
            return
        if suppressed:
            fmt += " ({suppressed} similar lines suppressed)"
        if failure:
            self._log.failure(fmt, suppressed=suppressed, **kw)
        else:
            self._log.info(fmt, suppressed=suppressed, **kw)

    def drop(self, key: str, fmt: str, **kw) -> None:
        """Count a dropped message and log it (rate-limited)."""
        self.stats["dropped"] += 1
        if key == "oversize":
            self.stats["oversize"] += 1
        self.log_limited(key, fmt, **kw)

    def bad_message(self, data: bytes, err, source: Peer) -> None:
        """
        A message did not parse: answer it (400, or the error's 4xx/5xx
        status) if it was a readable request, else drop it with a log line.

        @param data: the raw message (may be empty on streams).
        @param err: the L{sipmsg.SipParseError} (its C{.message} is the
            partly parsed message, if any).
        @param source: where it came from (answers go straight back there).
        """
        reason = getattr(err, "reason", None) or str(err)
        response = _error_response(getattr(err, "message", None), err)
        if response is None and data:
            response = build_bad_request(data, reason)
        where = _hostport(source.host, source.port)
        if response is None:
            self.drop("unparseable", "dropped unparseable SIP message from {transport}:{source}:"
                      " {reason}", transport=source.transport, source=where, reason=reason)
            return
        self.log_limited("bad-request", "answered a bad SIP request from"
                         " {transport}:{source}: {reason}", transport=source.transport,
                         source=where, reason=reason)
        try:
            self._write(source, response)
        except TransportError as e:
            self.stats["send_errors"] += 1
            self.log_limited("send-error", "could not answer a bad request: {error}", error=e)
            return
        self.stats["bad_answered"] += 1

    def message_received(self, msg, source: Peer) -> None:
        """
        Apply RFC 3261 18.2.1 / RFC 3581 to requests (received, rport) and
        pass the message to the transaction layer.
        """
        if isinstance(msg, sipmsg.Request):
            via = top_via(msg)
            if via is None:
                self.drop("no-via", "dropped {method} without a valid Via from {source}",
                          method=msg.method, source=_hostport(source.host, source.port))
                return
            params = via.params
            changed = False
            has_rport = "rport" in params
            if has_rport and not params["rport"]:
                params["rport"] = str(source.port)
                changed = True
            if has_rport or not _same_host(via.host, source.host):
                if params.get("received") != source.host:
                    params["received"] = source.host
                    changed = True
            if changed:
                replace_top_via(msg, via)
            if source.reliable and source.connection is not None and "alias" in params:
                self._connections.setdefault(
                    (source.transport, via.host.strip("[]").lower(),
                     via.port or DEFAULT_PORTS[source.transport]), source.connection)
        if self.transaction_layer is None:
            self.drop("no-tu", "dropped SIP message: no transaction layer")
            return
        try:
            self.transaction_layer.message_received(msg, source)
        except Exception:
            self.stats["dropped"] += 1
            self._log.failure("transaction layer failed on a message from {source}",
                              source=_hostport(source.host, source.port))

    def connection_made(self, conn: SipStreamProtocol) -> None:
        """Index a new stream connection under its remote address."""
        self.stats["connections"] += 1
        self._all_connections.add(conn)
        self._connections.setdefault(conn.peer.key, conn)

    def connection_lost(self, conn: SipStreamProtocol) -> None:
        """Forget a closed stream connection (every alias)."""
        self._all_connections.discard(conn)
        for key in [k for k, v in self._connections.items() if v is conn]:
            del self._connections[key]

    def connection_to(self, peer: Peer) -> SipStreamProtocol | None:
        """@return: an open connection to C{peer}, or L{None}."""
        conn = peer.connection
        if isinstance(conn, SipStreamProtocol) and conn.connected_:
            return conn
        conn = self._connections.get(peer.key)
        return conn if conn is not None and conn.connected_ else None

    # -- outgoing ----------------------------------------------------------

    def send(self, msg, peer: Peer) -> defer.Deferred:
        """
        Send a request to C{peer}, or a response to where RFC 3261 18.2.2
        says (C{peer} is then the source of the request).

        Requests get their top Via's transport and sent-by set to our
        listener (plus C{rport} on UDP); a request without Via gets one
        (the transaction layer normally adds it with the branch).

        @return: Deferred firing with the L{Peer} used (with its connection)
            or failing with L{TransportError}.
        """
        try:
            if isinstance(msg, sipmsg.Response):
                target = self.response_target(msg, peer)
            else:
                target = peer
            if target.reliable:
                conn = self.connection_to(target)
                if conn is None:
                    return self._connect(target).addCallback(self._send_on, msg, target)
                return defer.succeed(self._send_on(conn, msg, target))
            return defer.succeed(self._send_udp(msg, target))
        except TransportError as e:
            self.stats["send_errors"] += 1
            return defer.fail(e)

    def response_target(self, response, source: Peer | None) -> Peer:
        """
        Where to send a response (RFC 3261 18.2.2, RFC 3581).

        @param source: the L{Peer} the request came from (its connection is
            reused while it is open).
        @raise TransportError: the Via is missing or names another transport.
        """
        via = top_via(response)
        if via is None:
            raise TransportError("response has no valid Via")
        # the transport the request really came over wins over what its Via says
        transport = source.transport if source is not None else via.transport.lower()
        if transport not in TRANSPORTS:
            raise TransportError(f"response Via transport {via.transport!r} not supported")
        params = via.params
        try:
            if transport in RELIABLE:
                conn = source.connection if source is not None else None
                if isinstance(conn, SipStreamProtocol) and conn.connected_:
                    return source
                return Peer(transport, params.get("received") or via.host,
                            via.port or DEFAULT_PORTS[transport], server_name=via.host)
            conn = source.connection if source is not None else None
            if params.get("maddr"):
                return Peer("udp", params["maddr"], via.port or 5060, connection=conn)
            if params.get("received"):
                port = params.get("rport") or via.port or 5060
                return Peer("udp", params["received"], int(port), connection=conn)
            return Peer("udp", via.host, via.port or 5060, connection=conn)
        except ValueError as e:
            raise TransportError(f"cannot route response by its Via: {e}") from None

    def _stamp_via(self, msg, transport: str, sent_by: tuple[str, int]) -> None:
        via = top_via(msg)
        params = dict(via.params) if via is not None else {
            "branch": sipmsg.generate_branch()}
        if transport == "udp":
            params.setdefault("rport", None)
        value = sipmsg.Via(transport, sent_by[0], sent_by[1], params)
        if via is None:
            msg.headers.add("Via", str(value), prepend=True)
        else:
            replace_top_via(msg, value)

    def _send_udp(self, msg, target: Peer) -> Peer:
        conn = target.connection
        if not isinstance(conn, SipDatagramProtocol) or conn.transport is None:
            listener = self._listener_for("udp", target.host)
            if listener is None:
                raise TransportError("no UDP listener to send from")
            conn = listener.protocol
        if isinstance(msg, sipmsg.Request):
            self._stamp_via(msg, "udp", conn.sent_by or ("0.0.0.0", 0))
        conn.send_bytes(msg.to_bytes(), target.host, target.port)
        self.stats["sent"] += 1
        return Peer("udp", target.host, target.port, connection=conn)

    def _send_on(self, conn: SipStreamProtocol, msg, target: Peer) -> Peer:
        if isinstance(msg, sipmsg.Request):
            listener = self._listener_for(conn.transport_name, conn.peer.host)
            if listener is not None and listener.host not in _WILDCARDS:
                sent_by = (listener.host, listener.port)
            else:
                local = conn.transport.getHost()
                sent_by = (getattr(local, "host", "0.0.0.0"),
                           listener.port if listener else getattr(local, "port", 0))
            self._stamp_via(msg, conn.transport_name, sent_by)
        try:
            conn.send_bytes(msg.to_bytes())
        except TransportError:
            self.stats["send_errors"] += 1
            raise
        self.stats["sent"] += 1
        return conn.peer

    def _write(self, target: Peer, data: bytes) -> None:
        conn = target.connection
        if isinstance(conn, SipDatagramProtocol):
            conn.send_bytes(data, target.host, target.port)
        elif isinstance(conn, SipStreamProtocol):
            conn.send_bytes(data)
        else:
            raise TransportError("no connection to answer on")

    def _connect(self, target: Peer) -> defer.Deferred:
        """
        Open (or join an attempt to open) a connection to C{target}.

        @return: Deferred firing with the L{SipStreamProtocol}, or failing
            with L{TransportError}.
        """
        key = target.key
        waiter: defer.Deferred = defer.Deferred()
        pending = self._connecting.get(key)
        if pending is not None:
            pending[1].append(waiter)
            return waiter
        waiters = [waiter]
        attempt = self._open(target)
        self._connecting[key] = (attempt, waiters)

        def done(result):
            if self._connecting.get(key, (None,))[0] is attempt:
                del self._connecting[key]
            if isinstance(result, SipStreamProtocol):
                self._connections[key] = result
                for item in waiters:
                    item.callback(result)
                return None
            self.stats["send_errors"] += 1
            err = TransportError(f"cannot connect to {target.transport}:"
                                 f"{_hostport(target.host, target.port)}: "
                                 f"{result.getErrorMessage()}")
            self.log_limited("connect-failed", "{error}", error=err)
            for item in waiters:
                item.errback(err)
            return None
        attempt.addBoth(done)
        attempt.addErrback(lambda f: self._log.failure("connect bookkeeping failed", f))
        return waiter

    def _open(self, target: Peer) -> defer.Deferred:
        host = target.host
        try:
            version = ipaddress.ip_address(host).version
        except ValueError:
            version = None
        if version == 4:
            endpoint = endpoints.TCP4ClientEndpoint(self.reactor, host, target.port,
                                                    timeout=self.connect_timeout)
        elif version == 6:
            endpoint = endpoints.TCP6ClientEndpoint(self.reactor, host, target.port,
                                                    timeout=self.connect_timeout)
        else:
            endpoint = endpoints.HostnameEndpoint(self.reactor, host, target.port,
                                                  timeout=self.connect_timeout)
        if target.transport == "tls":
            endpoint = endpoints.wrapClientTLS(
                self._tls_client_creator(target.server_name or host), endpoint)
        self._log.debug("connecting to SIP {transport}:{hostport}", transport=target.transport,
                        hostport=_hostport(host, target.port))
        return endpoint.connect(SipStreamFactory(self, target.transport, outbound=True))


def _error_response(partial, err) -> bytes | None:
    """
    @return: the wire form of an error response to the partly parsed
        request C{partial}, or L{None} when it cannot be answered.
    """
    if not isinstance(partial, sipmsg.Request) or partial.method == "ACK":
        return None
    headers = partial.headers
    if any(headers.get(name) is None for name in ("Via", "From", "To", "Call-ID", "CSeq")):
        return None
    status = err.status if 400 <= getattr(err, "status", 0) <= 699 else 400
    reason = "".join(c if " " <= c <= "~" else "?" for c in str(err.reason))[:120]
    try:
        response = sipmsg.make_response(partial, status, reason or None,
                                         to_tag=sipmsg.generate_tag())
        return response.to_bytes()
    except (sipmsg.SipError, ValueError, UnicodeError):
        return None


def listen(reactor, spec: str, transaction_layer, tls_options=None):
    """
    Open a SIP listener for C{spec} on the transaction layer's transport.

    @param reactor: must be the reactor the transport layer was built with.
    @param spec: C{"udp:HOST:PORT"} / C{"tcp:HOST:PORT"} / C{"tls:HOST:PORT"}.
    @param transaction_layer: a C{TransactionLayer} (its C{.transport} is
        used) or a L{TransportLayer}.
    @param tls_options: server TLS options for C{tls:}.
    @return: the listening port.
    @raise ValueError: bad spec.
    """
    layer = transaction_layer if isinstance(transaction_layer, TransportLayer) \
        else transaction_layer.transport
    if layer.reactor is not reactor:
        raise ValueError("listen(): reactor differs from the transport layer's")
    return layer.listen(spec, tls_options)
