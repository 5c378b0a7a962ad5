# -*- test-case-name: tests.test_smpp_service -*-
"""
The per-link machinery behind L{gwsms.smpp.service.SmppService}.

A L{LinkSupervisor} keeps one transceiver/transmitter/receiver link up:
connect, bind, and after any failure or lost connection try again with
capped exponential backoff and jitter; a bind refused for its credentials
waits at least C{auth_failure_delay}, and a failure series is logged once
(L{gwsms.smpp.backoff.FailureSeries}).  An L{OutbindSlot} is an outbind
link: L{OutbindFactory} serves the outbind listener, reads the SMSC's
C{outbind}, checks system_id/password and binds as receiver on that
connection.  Both unbind gracefully when stopped.

Twisted's C{ClientService} is not used because a connection lost while
C{prepareConnection} (the bind) is pending has no transition in its state
machine (C{automat.NoTransition} raised from C{connectionLost}), it cannot
tell a refused bind from a refused connection, and it stops by closing the
socket instead of unbinding.
"""

from __future__ import annotations

import hmac
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from twisted.internet import defer
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from gwsms.smpp import pdu as smpp_pdu
from gwsms.smpp.backoff import AUTH, CONNECT, Backoff, FailureSeries
from gwsms.smpp.constants import CommandStatus
from gwsms.smpp.link import SmscLink


@dataclass(frozen=True)
class SessionContext:
    """
    What the per-link sessions need from the service.

    @ivar clock: C{IReactorTime} for every timer.
    @ivar backoff: the reconnect schedule.
    @ivar new_protocol: C{callable(link) -> ESME protocol}.
    @ivar endpoint_for: C{callable(link) -> IStreamClientEndpoint}.
    @ivar find_outbind_slot: C{callable(system_id) -> OutbindSlot | None}.
    @ivar outbind_timeout: seconds an incoming connection may take to send
        its C{outbind}.
    """

    clock: object
    backoff: Backoff
    new_protocol: Callable
    endpoint_for: Callable
    find_outbind_slot: Callable
    outbind_timeout: float = 10.0


#: Bind statuses that mean "your credentials are wrong": ESME_RBINDFAIL,
#: ESME_RINVPASWD, ESME_RINVSYSID (many SMSCs answer RBINDFAIL for both).
AUTH_STATUSES = frozenset({0x0D, 0x0E, 0x0F})

_BOUND_STATES = ("bound_trx", "bound_tx", "bound_rx")


def _describe(failure: Failure) -> str:
    """A short, secret-free reason for logs and C{last_error}."""
    status = getattr(failure.value, "status", None)
    if status is not None:
        return f"bind refused: {_status_name(status)}"
    text = failure.getErrorMessage() or failure.type.__name__
    return f"{failure.type.__name__}: {text}"


def _status_name(status: int) -> str:
    try:
        return f"{CommandStatus(status).name} (0x{status:02X})"
    except ValueError:
        return f"0x{status:02X}"


class SessionGate(Protocol):
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


class LinkSession:
    """What every link has: its row, the current protocol, state, counters."""

    _log = Logger()

    def __init__(self, context: "SessionContext", link: SmscLink) -> None:
        self.context = context
        self.link = link
        self.proto = None
        self.phase = "stopped"  # stopped, disabled, waiting, connecting, binding, bound, unbinding, listening
        self.bound_since: float | None = None
        self.last_error: str | None = None
        self._totals: Counter = Counter()
        self._close_waiters: list[defer.Deferred] = []

    @property
    def clock(self):
        return self.context.clock

    # -- reporting -------------------------------------------------------
    def counters(self) -> dict:
        """@return: the ESME counters summed over every connection of this link."""
        out = Counter(self._totals)
        stats = getattr(self.proto, "stats", None) or {}
        for key, value in stats.items():
            if isinstance(value, (int, float)):
                out[key] += value
        return dict(out)

    def state_name(self) -> str:
        """
        @return: the ESME state (C{bound_trx}, ...) while bound, otherwise
            the supervisor phase (C{stopped}, C{disabled}, C{waiting},
            C{connecting}, C{binding}, C{unbinding}, C{listening}).
        """
        if self.phase == "bound" and self.proto is not None:
            return str(getattr(self.proto, "state", "bound"))
        return self.phase

    def describe(self) -> dict:
        """@return: the row for C{SmppService.state()} (no secrets)."""
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
        """@return: whether the current connection is bound."""
        return (
            self.phase == "bound"
            and self.proto is not None
            and self.proto.state in _BOUND_STATES
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

    def __init__(self, supervisor: "LinkSupervisor", gen: int) -> None:
        self._supervisor = supervisor
        self._gen = gen

    def buildProtocol(self, addr):
        return self._supervisor._build(self._gen)


class LinkSupervisor(LinkSession):
    """Connects, binds and reconnects one transceiver/transmitter/receiver link."""

    _log = Logger()

    def __init__(self, context, link) -> None:
        super().__init__(context, link)
        self._series = FailureSeries(link.name)
        self._attempts = 0
        self._gen = 0
        self._retry = None
        self._connecting = None
        self._running = False

    def start(self) -> None:
        """Connect now, and keep reconnecting until L{stop}."""
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
            endpoint = self.context.endpoint_for(self.link)
            d = endpoint.connect(factory)
        except Exception as e:  # bad TLS CA file, bad address, ...
            self._failed(gen, CONNECT, f"cannot connect: {e}")
            return
        self._connecting = d
        d.addCallbacks(self._connected, self._connect_failed, (gen,), None, (gen,))
        d.addErrback(lambda f: self._log.failure("smsc {link}: supervisor error", f, link=self.link.name))

    def _build(self, gen):
        proto = self.context.new_protocol(self.link)
        return SessionGate(proto, lambda inner, reason: self._lost(gen, inner, reason))

    def _connected(self, gate, gen) -> None:
        self._connecting = None
        if gen != self._gen:
            gate.transport.loseConnection()
            return
        self.proto = gate.inner
        self.phase = "binding"
        d = defer.maybeDeferred(self.proto.bind)
        d.addCallbacks(self._bound, self._bind_failed, (gen,), None, (gen,))
        d.addErrback(lambda f: self._log.failure("smsc {link}: supervisor error", f, link=self.link.name))

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
            self._failed(gen, CONNECT, f"connection lost while {phase}: {why}")

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
        delay = self.context.backoff.delay(self._attempts, kind)
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


class OutbindSlot(LinkSession):
    """An outbind link: waits for the SMSC to connect and send C{outbind}."""

    _log = Logger()

    def start(self) -> None:
        """Accept outbinds for this link from now on."""
        self.phase = "listening"

    def accept(self, gate: SessionGate, inner) -> None:
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
        d.addErrback(lambda f: self._log.failure("smsc {link}: outbind error", f, link=self.link.name))

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
        """
        Unbind the current session, if any, gracefully.

        @param timeout: seconds allowed for the unbind.
        @return: Deferred firing (with None) once the connection is closed.
        """
        proto = self.proto
        if proto is None:
            self.phase = "stopped"
            return defer.succeed(None)
        self.phase = "unbinding"

        def done(_):
            self.phase = "stopped"

        return self._close_proto(proto, timeout).addCallback(done)


class _OutbindGate(SessionGate):
    """Reads the first PDU of an incoming connection; it must be C{outbind}."""

    _log = Logger()

    def __init__(self, context: "SessionContext") -> None:
        super().__init__(None, None)
        self._context = context
        self._buffer = b""
        self._slot = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self._timeout = self._context.clock.callLater(
            self._context.outbind_timeout, self._give_up
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
            request = smpp_pdu.decode(raw)
        except Exception as e:
            return self._reject(f"undecodable first PDU ({e})")
        if request.command != "outbind":
            return self._reject(f"first PDU is {request.command}, not outbind")
        system_id = request.params.get("system_id", "")
        slot = self._context.find_outbind_slot(system_id)
        if slot is None:
            return self._reject(f"outbind for unknown system_id {system_id!r}")
        password = str(request.params.get("password", ""))
        if not hmac.compare_digest(password.encode("latin-1"), slot.link.password.encode("latin-1")):
            return self._reject(f"outbind for {slot.link.name}: wrong password")
        self._slot = slot
        self.inner = self._context.new_protocol(slot.link)
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


class OutbindFactory(Factory):
    noisy = False
    def __init__(self, context: "SessionContext") -> None:
        self._context = context

    def buildProtocol(self, addr):
        return _OutbindGate(self._context)
