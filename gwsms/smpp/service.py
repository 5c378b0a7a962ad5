# -*- test-case-name: tests.test_smpp_service -*-
"""
Keeps the configured SMSC sessions up.

One L{SmppService} owns every SMSC link.  An enabled transceiver,
transmitter or receiver link gets a supervisor that connects (TCP or TLS,
host names or IP addresses), binds, and after any failure or lost
connection tries again with capped exponential backoff and jitter; a bind
refused for its credentials waits C{auth_failure_delay}, so a wrong
password does not hammer the SMSC.  Outbind links wait for the SMSC: the
service listens on C{smpp.outbind_listen}, checks the system_id/password of
an incoming C{outbind} and binds as receiver on that connection.

Twisted's C{ClientService} is not used because a connection lost while
C{prepareConnection} (the bind) is pending has no transition in its state
machine (C{automat.NoTransition} raised from C{connectionLost}), it cannot
tell a refused bind from a refused connection, and it stops by closing the
socket instead of unbinding.
"""

from __future__ import annotations

import hmac
import random as _random
from collections import Counter

from twisted.application.service import MultiService
from twisted.internet import defer, endpoints
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from gwsms.smpp import tls
from gwsms.smpp.backoff import AUTH, CONNECT, Backoff, FailureSeries
from gwsms.smpp.link import SessionType, SmscLink

#: Bind statuses that mean "your credentials are wrong": ESME_RBINDFAIL,
#: ESME_RINVPASWD, ESME_RINVSYSID (many SMSCs answer RBINDFAIL for both).
AUTH_STATUSES = frozenset({0x0D, 0x0E, 0x0F})

_BOUND_STATES = ("bound_trx", "bound_tx", "bound_rx")


class NoSuchLink(KeyError):
    """No link of that name is configured."""

    def __str__(self) -> str:
        return f"no smsc link named {self.args[0]!r}"


class LinkDown(Exception):
    """The link exists but cannot take a submit now (not bound, or receive-only)."""


def _describe(failure: Failure) -> str:
    """A short, secret-free reason for logs and C{last_error}."""
    status = getattr(failure.value, "status", None)
    if status is not None:
        return f"bind refused: {_status_name(status)}"
    text = failure.getErrorMessage() or failure.type.__name__
    return f"{failure.type.__name__}: {text}"


def _status_name(status: int) -> str:
    try:
        from gwsms.smpp.constants import CommandStatus

        return f"{CommandStatus(status).name} (0x{status:02X})"
    except (ImportError, ValueError):
        return f"0x{status:02X}"


def _default_protocol_factory(link, clock, sink, max_command_length):
    from gwsms.smpp.esme import ESMEProtocol

    return ESMEProtocol(link, clock, sink, max_command_length=max_command_length)


class _Gate(Protocol):
    """
    Stands between a transport and the ESME protocol: forwards everything,
    sets TCP_NODELAY, and tells the owning session when the connection is
    gone.  For outbind it also reads the first PDU (C{outbind}) itself.
    """

    def __init__(self, inner, on_lost) -> None:
        self.inner = inner
        self._on_lost = on_lost

    def connectionMade(self) -> None:
        for candidate in (self.transport, getattr(self.transport, "transport", None)):
            set_no_delay = getattr(candidate, "setTcpNoDelay", None)
            if set_no_delay is not None:
                try:
                    set_no_delay(True)
                except Exception:
                    pass
                break
        if self.inner is not None:
            self.inner.makeConnection(self.transport)

    def dataReceived(self, data: bytes) -> None:
        self.inner.dataReceived(data)

    def connectionLost(self, reason=None) -> None:
        try:
            if self.inner is not None:
                self.inner.connectionLost(reason)
        finally:
            on_lost, self._on_lost = self._on_lost, None
            if on_lost is not None:
                on_lost(self.inner, reason)


class _Session:
    """What every link has: its row, the current protocol, state, counters."""

    _log = Logger()

    def __init__(self, owner: "SmppService", link: SmscLink) -> None:
        self.owner = owner
        self.link = link
        self.proto = None
        self.phase = "stopped"  # stopped, disabled, waiting, connecting, binding, bound, unbinding, listening
        self.bound_since: float | None = None
        self.last_error: str | None = None
        self._totals: Counter = Counter()
        self._close_waiters: list[defer.Deferred] = []

    @property
    def clock(self):
        return self.owner._reactor

    # -- reporting -------------------------------------------------------
    def counters(self) -> dict:
        out = Counter(self._totals)
        stats = getattr(self.proto, "stats", None) or {}
        for key, value in stats.items():
            if isinstance(value, (int, float)):
                out[key] += value
        return dict(out)

    def state_name(self) -> str:
        if self.phase == "bound" and self.proto is not None:
            return str(getattr(self.proto, "state", "bound"))
        return self.phase

    def describe(self) -> dict:
        return {
            "name": self.link.name,
            "session_type": self.link.session_type.name.lower(),
            "enabled": self.link.enabled,
            "state": self.state_name(),
            "host": self.link.ip,
            "port": self.link.port,
            "tls": self.link.tls,
            "bound_since": self.bound_since,
            "counters": self.counters(),
            "last_error": self.last_error,
        }

    def is_bound(self) -> bool:
        return (
            self.phase == "bound"
            and self.proto is not None
            and getattr(self.proto, "state", "bound_trx") in _BOUND_STATES
        )

    # -- protocol lifecycle ---------------------------------------------
    def _retire(self, proto) -> None:
        """Fold a finished protocol's counters into the totals."""
        stats = getattr(proto, "stats", None) or {}
        for key, value in stats.items():
            if isinstance(value, (int, float)):
                self._totals[key] += value
        if proto is self.proto:
            self.proto = None
            self.bound_since = None

    def _fire_closed(self) -> None:
        waiters, self._close_waiters = self._close_waiters, []
        for d in waiters:
            d.callback(None)

    def _close_proto(self, proto, timeout: float) -> defer.Deferred:
        """
        Unbind C{proto} gracefully if it is bound, close it, and fire when
        its connection is gone (at most about C{timeout} seconds later).
        """
        waiter: defer.Deferred = defer.Deferred()
        self._close_waiters.append(waiter)
        transport = getattr(proto, "transport", None)

        def force_close():
            if transport is not None and not waiter.called:
                abort = getattr(transport, "abortConnection", None)
                (abort or transport.loseConnection)()

        hard_stop = self.clock.callLater(timeout + 1.0, force_close)

        def cleanup(result):
            if hard_stop.active():
                hard_stop.cancel()
            return result

        waiter.addBoth(cleanup)
        if getattr(proto, "state", None) in _BOUND_STATES:
            d = defer.maybeDeferred(proto.unbind, timeout)

            def unbound_failed(f):
                self._log.info(
                    "smsc {link}: unbind did not complete cleanly: {why}",
                    link=self.link.name,
                    why=f.getErrorMessage(),
                )

            d.addErrback(unbound_failed)
            d.addBoth(lambda _: transport and transport.loseConnection())
            d.addErrback(lambda f: self._log.failure("closing smsc connection", f))
        elif transport is not None:
            transport.loseConnection()
        return waiter


class _SupervisorFactory(Factory):
    noisy = False

    def __init__(self, supervisor: "_Supervisor", gen: int) -> None:
        self._supervisor = supervisor
        self._gen = gen

    def buildProtocol(self, addr):
        return self._supervisor._build(self._gen)


class _Supervisor(_Session):
    """Connects, binds and reconnects one transceiver/transmitter/receiver link."""

    _log = Logger()

    def __init__(self, owner, link) -> None:
        super().__init__(owner, link)
        self._series = FailureSeries(link.name)
        self._attempts = 0
        self._gen = 0
        self._retry = None
        self._connecting = None
        self._running = False

    def start(self) -> None:
        if self._running:
            return
        self._running = True
        self._connect()

    def _connect(self) -> None:
        self._retry = None
        self._gen += 1
        gen = self._gen
        self.phase = "connecting"
        factory = _SupervisorFactory(self, gen)
        try:
            endpoint = self.owner._endpoint_for(self.link)
            d = endpoint.connect(factory)
        except Exception as e:  # bad TLS CA file, bad address, ...
            self._failed(gen, CONNECT, f"cannot connect: {e}")
            return
        self._connecting = d
        d.addCallbacks(self._connected, self._connect_failed, (gen,), None, (gen,))
        d.addErrback(self._log.failure, "smsc {link}: supervisor error", link=self.link.name)

    def _build(self, gen):
        proto = self.owner._protocol_factory(
            self.link, self.clock, self.owner._sink, self.owner._config.max_command_length
        )
        return _Gate(proto, lambda inner, reason: self._lost(gen, inner, reason))

    def _connected(self, gate, gen) -> None:
        self._connecting = None
        if gen != self._gen:
            gate.transport.loseConnection()
            return
        self.proto = gate.inner
        self.phase = "binding"
        d = defer.maybeDeferred(self.proto.bind)
        d.addCallbacks(self._bound, self._bind_failed, (gen,), None, (gen,))
        d.addErrback(self._log.failure, "smsc {link}: supervisor error", link=self.link.name)

    def _connect_failed(self, failure: Failure, gen) -> None:
        self._connecting = None
        self._failed(gen, CONNECT, f"connect to {self.link.ip}:{self.link.port} failed: {_describe(failure)}")

    def _bound(self, _resp, gen) -> None:
        if gen != self._gen:
            return
        self.phase = "bound"
        self.bound_since = self.clock.seconds()
        self.last_error = None
        self._attempts = 0
        recovered = self._series.recovered()
        self._log.info(
            "{prefix}: bound as {kind} to {host}:{port}",
            prefix=recovered or f"smsc {self.link.name}",
            kind=self.link.session_type.name.lower(),
            host=self.link.ip,
            port=self.link.port,
        )

    def _bind_failed(self, failure: Failure, gen) -> None:
        if gen != self._gen:
            return
        status = getattr(failure.value, "status", None)
        kind = AUTH if status in AUTH_STATUSES else CONNECT
        self._failed(gen, kind, _describe(failure))

    def _lost(self, gen, proto, reason) -> None:
        phase = self.phase
        self._retire(proto)
        self._fire_closed()
        if gen != self._gen or not self._running:
            return
        why = reason.getErrorMessage() if isinstance(reason, Failure) else "connection closed"
        if phase == "bound":
            self._failed(gen, CONNECT, f"connection lost: {why}")
        else:
            self._failed(gen, CONNECT, f"connection lost while {self.phase}: {why}")

    def _failed(self, gen, kind: str, reason: str) -> None:
        """End attempt C{gen}: close what is left of it and schedule the next."""
        if gen != self._gen or not self._running:
            return
        self._gen += 1  # later events of this attempt are stale
        proto, self.proto = self.proto, None
        if proto is not None:
            transport = getattr(proto, "transport", None)
            if transport is not None:
                transport.loseConnection()
        self.bound_since = None
        self.last_error = reason
        self._attempts += 1
        delay = self.owner._backoff.delay(self._attempts, kind)
        message = self._series.failed(reason)
        if message is not None:
            self._log.warn("{text}; next attempt in {delay:.1f}s", text=message, delay=delay)
        self.phase = "waiting"
        self._retry = self.clock.callLater(delay, self._retry_now)

    def _retry_now(self) -> None:
        try:
            self._connect()
        except Exception:
            self._log.failure("smsc {link}: reconnect failed", link=self.link.name)

    def stop(self, timeout: float) -> defer.Deferred:
        """
        Stop reconnecting; unbind gracefully if bound.

        @param timeout: seconds allowed for the unbind.
        @return: Deferred firing (with None) once the connection is closed.
        """
        self._running = False
        self._gen += 1
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self._connecting is not None:
            connecting, self._connecting = self._connecting, None
            connecting.cancel()
        proto = self.proto
        if proto is None:
            self.phase = "stopped"
            return defer.succeed(None)
        self.phase = "unbinding"
        gen = self._gen
        d = self._close_proto(proto, timeout)

        def done(_):
            if self._gen == gen and not self._running:
                self.phase = "stopped"

        return d.addCallback(done)


class _OutbindSlot(_Session):
    """An outbind link: waits for the SMSC to connect and send C{outbind}."""

    _log = Logger()

    def start(self) -> None:
        self.phase = "listening"

    def accept(self, gate: _Gate, inner) -> None:
        """A valid C{outbind} for this link arrived on C{gate}'s connection."""
        old = self.proto
        if old is not None and getattr(old, "transport", None) is not None:
            self._log.info("smsc {link}: new outbind replaces the current session", link=self.link.name)
            old.transport.loseConnection()
        self.proto = inner
        self.phase = "binding"
        bind = getattr(inner, "bind_receiver_after_outbind", None) or inner.bind
        d = defer.maybeDeferred(bind)

        def bound(_):
            if self.proto is inner:
                self.phase = "bound"
                self.bound_since = self.clock.seconds()
                self.last_error = None
                self._log.info("smsc {link}: bound as receiver after outbind", link=self.link.name)

        def failed(f):
            if self.proto is inner:
                self.last_error = _describe(f)
                self._log.warn(
                    "smsc {link}: bind_receiver after outbind failed: {why}",
                    link=self.link.name,
                    why=self.last_error,
                )
                if inner.transport is not None:
                    inner.transport.loseConnection()

        d.addCallbacks(bound, failed)
        d.addErrback(self._log.failure, "smsc {link}: outbind error", link=self.link.name)

    def lost(self, inner, reason) -> None:
        """The connection of C{inner} is gone."""
        was_current = inner is self.proto
        self._retire(inner)
        if was_current and self.phase not in ("unbinding", "stopped"):
            self.phase = "listening"
            why = reason.getErrorMessage() if isinstance(reason, Failure) else "closed"
            self.last_error = f"connection lost: {why}"
            self._log.info(
                "smsc {link}: outbind session closed ({why}); waiting for the next outbind",
                link=self.link.name, why=why,
            )
        self._fire_closed()

    def stop(self, timeout: float) -> defer.Deferred:
        proto = self.proto
        if proto is None:
            self.phase = "stopped"
            return defer.succeed(None)
        self.phase = "unbinding"

        def done(_):
            self.phase = "stopped"

        return self._close_proto(proto, timeout).addCallback(done)


class _OutbindGate(_Gate):
    """Reads the first PDU of an incoming connection; it must be C{outbind}."""

    _log = Logger()

    def __init__(self, service: "SmppService") -> None:
        super().__init__(None, None)
        self._service = service
        self._buffer = b""
        self._slot = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self._timeout = self._service._reactor.callLater(
            self._service._outbind_timeout, self._give_up
        )

    def _give_up(self) -> None:
        self._log.warn("outbind: no outbind PDU from {peer} in time", peer=self.transport.getPeer())
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.dataReceived(data)
            return
        self._buffer += data
        if len(self._buffer) < 16:
            return
        length = int.from_bytes(self._buffer[:4], "big")
        if length < 16 or length > 256:  # an outbind is at most 41 octets
            return self._reject("not an outbind PDU (bad command_length)")
        if len(self._buffer) < length:
            return
        raw, rest = self._buffer[:length], self._buffer[length:]
        self._buffer = b""
        if self._timeout.active():
            self._timeout.cancel()
        try:
            from gwsms.smpp import pdu as pdu_mod

            request = pdu_mod.decode(raw)
        except Exception as e:
            return self._reject(f"undecodable first PDU ({e})")
        if request.command != "outbind":
            return self._reject(f"first PDU is {request.command}, not outbind")
        system_id = request.params.get("system_id", "")
        slot = self._service._outbind_slot(system_id)
        if slot is None:
            return self._reject(f"outbind for unknown system_id {system_id!r}")
        password = str(request.params.get("password", ""))
        if not hmac.compare_digest(password.encode("latin-1"), slot.link.password.encode("latin-1")):
            return self._reject(f"outbind for {slot.link.name}: wrong password")
        self._slot = slot
        self.inner = self._service._protocol_factory(
            slot.link, self._service._reactor, self._service._sink,
            self._service._config.max_command_length,
        )
        self._on_lost = slot.lost
        self.inner.makeConnection(self.transport)
        slot.accept(self, self.inner)
        if rest:
            self.inner.dataReceived(rest)

    def _reject(self, why: str) -> None:
        self._log.warn("outbind from {peer} refused: {why}", peer=self.transport.getPeer(), why=why)
        self._buffer = b""
        self.transport.loseConnection()

    def connectionLost(self, reason=None) -> None:
        timeout = getattr(self, "_timeout", None)
        if timeout is not None and timeout.active():
            timeout.cancel()
        super().connectionLost(reason)


class _OutbindFactory(Factory):
    noisy = False
    def __init__(self, service: "SmppService") -> None:
        self._service = service

    def buildProtocol(self, addr):
        return _OutbindGate(self._service)


class SmppService(MultiService):
    """
    All SMSC sessions of the gateway, kept up and reloadable.
    """

    _log = Logger()

    def __init__(
        self,
        reactor,
        smpp_config,
        sink,
        links,
        random=_random.random,
        protocol_factory=None,
    ) -> None:
        """
        @param reactor: provides C{IReactorTime}, C{IReactorTCP} (and
            whatever C{smpp_config.outbind_listen} endpoints need).
        @param smpp_config: the C{config.smpp} section
            (L{gwsms.config.SmppConfig}).
        @param sink: the L{gwsms.smpp.interfaces.IDeliverySink} for
            C{deliver_sm} / C{data_sm} from every link.
        @param links: the L{SmscLink} rows (disabled ones are listed by
            L{state} but not connected).
        @param random: random source for backoff jitter (tests fix it).
        @param protocol_factory: C{callable(link, clock, sink,
            max_command_length)} building the ESME protocol; default
            L{gwsms.smpp.esme.ESMEProtocol}.
        @raise ValueError: duplicate link names or a bad C{outbind_listen}
            endpoint string.
        """
        super().__init__()
        self._reactor = reactor
        self._config = smpp_config
        self._sink = sink
        self._backoff = Backoff.from_config(smpp_config, random)
        self._protocol_factory = protocol_factory or _default_protocol_factory
        self._outbind_timeout = 10.0
        self._sessions: dict[str, _Session] = {}
        self._check_unique(links)
        for link in links:
            self._sessions[link.name] = self._make_session(link)
        self._listeners = []
        self._ports: list = []
        for description in smpp_config.outbind_listen:
            try:
                endpoint = endpoints.serverFromString(reactor, description)
            except (ValueError, TypeError, KeyError) as e:
                raise ValueError(f"smpp.outbind_listen {description!r}: {e}") from None
            self._listeners.append((description, endpoint))

    @staticmethod
    def _check_unique(links) -> None:
        seen = set()
        for link in links:
            if link.name in seen:
                raise ValueError(f"duplicate smsc link name {link.name!r}")
            seen.add(link.name)

    def _make_session(self, link: SmscLink) -> _Session:
        if link.session_type is SessionType.OUTBIND:
            session = _OutbindSlot(self, link)
        else:
            session = _Supervisor(self, link)
        session.phase = "stopped" if link.enabled else "disabled"
        return session

    def _endpoint_for(self, link: SmscLink):
        """The client endpoint for C{link}: TCP (IPv4/IPv6/host name), maybe TLS."""
        timeout = link.session_init_timeout or 30.0
        if isIPAddress(link.ip):
            endpoint = endpoints.TCP4ClientEndpoint(self._reactor, link.ip, link.port, timeout=timeout)
        elif isIPv6Address(link.ip):
            endpoint = endpoints.TCP6ClientEndpoint(self._reactor, link.ip, link.port, timeout=timeout)
        else:
            endpoint = endpoints.HostnameEndpoint(self._reactor, link.ip, link.port, timeout=timeout)
        if link.tls:
            endpoint = endpoints.wrapClientTLS(
                tls.client_tls_options(link, self._config.tls_ca), endpoint
            )
        return endpoint

    def _outbind_slot(self, system_id: str):
        for session in self._sessions.values():
            if (
                isinstance(session, _OutbindSlot)
                and session.link.enabled
                and session.link.system_id == system_id
            ):
                return session
        return None

    # -- IService --------------------------------------------------------
    def startService(self) -> None:
        """
        Listen for outbind, then connect every enabled link.

        @raise twisted.internet.error.CannotListenError: an outbind listener
            could not be opened (startup fails rather than running without it).
        """
        factory = _OutbindFactory(self)
        for description, endpoint in self._listeners:
            outcome: list = []
            d = endpoint.listen(factory)
            d.addBoth(outcome.append)
            if outcome and isinstance(outcome[0], Failure):
                for port in self._ports:
                    port.stopListening()
                self._ports = []
                self._log.error(
                    "cannot listen for outbind on {where}: {why}",
                    where=description, why=outcome[0].getErrorMessage(),
                )
                outcome[0].raiseException()
            if outcome:
                self._ports.append(outcome[0])
            else:  # an endpoint that listens asynchronously
                d.addCallback(self._ports.append)
                d.addErrback(self._log.failure, "cannot listen for outbind on {where}", where=description)
        super().startService()
        for session in self._sessions.values():
            if session.link.enabled:
                session.start()

    def stopService(self) -> defer.Deferred:
        """
        Unbind every session gracefully (within C{smpp.shutdown_timeout}),
        then stop the outbind listeners.
        """
        timeout = self._config.shutdown_timeout
        stops = [self._stop_session(s, timeout) for s in self._sessions.values()]
        d = defer.DeferredList(stops, consumeErrors=True)

        def stop_listening(_):
            ports, self._ports = self._ports, []
            return defer.DeferredList(
                [defer.maybeDeferred(port.stopListening) for port in ports],
                consumeErrors=True,
            )

        d.addCallback(stop_listening)
        d.addCallback(lambda _: MultiService.stopService(self))
        d.addErrback(self._log.failure, "stopping smpp service")
        return d

    def _stop_session(self, session: _Session, timeout: float) -> defer.Deferred:
        d = defer.maybeDeferred(session.stop, timeout)
        d.addErrback(self._log.failure, "smsc {link}: stop failed", link=session.link.name)
        return d

    # -- public API ------------------------------------------------------
    def reload(self, links) -> dict:
        """
        Apply a new set of link rows without touching unchanged sessions.

        Removed links are unbound gracefully; changed ones (different
        L{SmscLink.connection_key}, or C{enabled} flipped) are unbound and
        started again with the new row; added ones are started.

        @param links: the complete new list of L{SmscLink}.
        @return: C{{"added": [...], "removed": [...], "changed": [...],
            "unchanged": [...]}} (sorted link names).
        @raise ValueError: duplicate names in C{links}.
        """
        self._check_unique(links)
        new = {link.name: link for link in links}
        result: dict[str, list[str]] = {"added": [], "removed": [], "changed": [], "unchanged": []}
        timeout = self._config.shutdown_timeout
        for name in sorted(set(self._sessions) - set(new)):
            session = self._sessions.pop(name)
            result["removed"].append(name)
            if self.running:
                self._stop_session(session, timeout)
        for name in sorted(new):
            link = new[name]
            old = self._sessions.get(name)
            if old is None:
                result["added"].append(name)
                self._install(link, None)
            elif (
                old.link.connection_key() != link.connection_key()
                or old.link.enabled != link.enabled
            ):
                result["changed"].append(name)
                self._install(link, old)
            else:
                result["unchanged"].append(name)
                old.link = link  # same connection; keep the fresh row (id)
        if any(result[k] for k in ("added", "removed", "changed")):
            self._log.info(
                "smsc reload: added {added}, removed {removed}, changed {changed}, {n} unchanged",
                added=result["added"], removed=result["removed"],
                changed=result["changed"], n=len(result["unchanged"]),
            )
        return result

    def _install(self, link: SmscLink, old: _Session | None) -> None:
        session = self._make_session(link)
        self._sessions[link.name] = session
        if not self.running:
            return
        stopped = self._stop_session(old, self._config.shutdown_timeout) if old else defer.succeed(None)

        def start(_):
            if self._sessions.get(link.name) is session and link.enabled and self.running:
                session.start()

        stopped.addCallback(start)
        stopped.addErrback(self._log.failure, "smsc {link}: restart failed", link=link.name)

    def submit(self, link_name: str, params: dict, tlvs: dict | None = None) -> defer.Deferred:
        """
        Send a C{submit_sm} on a bound link.

        @param link_name: the link's name.
        @param params: C{submit_sm} parameters (SMPP 3.4 names).
        @param tlvs: optional TLVs by name.
        @return: Deferred firing with the ESME's C{SubmitResult}; fails
            with L{NoSuchLink} or L{LinkDown}.
        """
        session = self._sessions.get(link_name)
        if session is None:
            return defer.fail(NoSuchLink(link_name))
        if not session.link.session_type.can_transmit:
            return defer.fail(LinkDown(f"smsc link {link_name!r} is receive-only"))
        if not session.link.enabled:
            return defer.fail(LinkDown(f"smsc link {link_name!r} is disabled"))
        if not session.is_bound():
            return defer.fail(LinkDown(f"smsc link {link_name!r} is {session.state_name()}"))
        return defer.maybeDeferred(session.proto.submit, params, tlvs)

    def state(self) -> list[dict]:
        """
        The state of every link, for the CLI.

        @return: one dict per link, sorted by name: C{name, session_type,
            enabled, state, host, port, tls, bound_since} (epoch seconds or
            None), C{counters} (dict), C{last_error} (str or None).
        """
        return [self._sessions[name].describe() for name in sorted(self._sessions)]

    def outbind_addresses(self) -> list:
        """@return: the C{IAddress} of every open outbind listener."""
        return [port.getHost() for port in self._ports]

    def link_names(self) -> list[str]:
        """@return: names of all configured links, sorted."""
        return sorted(self._sessions)
