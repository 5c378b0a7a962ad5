# -*- test-case-name: tests.test_smpp_esme,tests.test_smpp_flow -*-
"""
The ESME (client) side of an SMPP session: bind, submit, receive.

One L{ESMEProtocol} is one TCP connection to (or, for outbind, from) one
SMSC described by an C{SmscLink}.  It binds as the link's session type,
sends C{submit_sm} under a window and a token-bucket rate, backs off when
the SMSC throttles, and hands every C{deliver_sm}/C{data_sm} to an
C{IDeliverySink}, answering only when the sink has answered.  Reconnecting
is the supervisor's job (C{gwsms.smpp.service}), not this class's.

Life cycle, visible in L{ESMEProtocol.state} and reported to
C{on_state_change(link_name, state)}::

    connecting -> binding -> bound_trx | bound_tx | bound_rx
               -> unbinding -> closed        (any state may go to closed)

For an outbind link the connection is opened by the SMSC; the protocol
waits in C{connecting} for C{outbind}, checks its system_id/password
against the link, and sends C{bind_receiver} on the same connection.
"""

from __future__ import annotations

import collections
import hmac
from typing import Callable, NamedTuple

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from gwsms.smpp import pdu as smpp_pdu
from gwsms.smpp.constants import CommandId, CommandStatus
from gwsms.smpp.errors import (
    BindError,
    NotBoundError,
    SMPPConnectionLost,
    SMPPError,
    SMPPGenericNack,
    status_name,
)
from gwsms.smpp.flow import SubmitPacer, TokenBucket  # noqa: F401 (re-exported)
from gwsms.smpp.link import SessionType, SmscLink
from gwsms.smpp.protocol import SMPPProtocol, _pack_header

STATES = ("connecting", "binding", "bound_trx", "bound_tx", "bound_rx", "unbinding", "closed")
TRANSMIT_STATES = frozenset(("bound_trx", "bound_tx"))
RECEIVE_STATES = frozenset(("bound_trx", "bound_rx"))

_BIND = {
    SessionType.TRANSCEIVER: ("bind_transceiver", "bound_trx"),
    SessionType.TRANSMITTER: ("bind_transmitter", "bound_tx"),
    SessionType.RECEIVER: ("bind_receiver", "bound_rx"),
    SessionType.OUTBIND: ("bind_receiver", "bound_rx"),
}
S = CommandStatus
_THROTTLE_STATUSES = frozenset((int(S.ESME_RTHROTTLED), int(S.ESME_RMSGQFUL)))
_DELIVERIES = frozenset((int(CommandId.deliver_sm), int(CommandId.data_sm)))
_DELIVER_SM = int(CommandId.deliver_sm)
_DELIVER_SM_RESP = int(CommandId.deliver_sm_resp)
_ESME_COUNTERS = (
    "submitted", "submit_ok", "submit_failed", "submit_errors", "throttled", "delivered",
    "deliver_failed",
)


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison of credentials."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class SubmitResult(NamedTuple):
    """
    The final answer to a submit: a named tuple, as
    L{gwsms.core.text.Segment}, since one is made per C{submit_sm_resp}
    (1,400 instructions per message fewer than a frozen dataclass;
    bench/README.md).

    @ivar status: C{submit_sm_resp} command_status (0 = accepted).
    @ivar message_id: the SMSC's message id when accepted, else L{None}.
    """

    status: int
    message_id: str | None

    @property
    def ok(self) -> bool:
        return self.status == CommandStatus.ESME_ROK


class _Submit:
    __slots__ = ("request", "encoded", "deferred", "attempts", "ticket")

    def __init__(self, request, encoded: bytes, deferred, ticket: int):
        self.request = request
        self.encoded = encoded
        self.deferred = deferred
        self.attempts = 0
        self.ticket = ticket  # submission order, kept across retries


class _Then:
    """
    Stands where a Deferred would (a submit's outcome, a request's
    response) for L{ESMEProtocol.submit_then}: hands the outcome to a
    plain callable, without the Deferred machinery.
    """

    __slots__ = ("done", "args")

    def __init__(self, done, args=()):
        self.done = done
        self.args = args

    def callback(self, result) -> None:
        self.done(result, *self.args)

    def errback(self, failure) -> None:
        self.done(failure if isinstance(failure, Failure) else Failure(failure), *self.args)


class ESMEProtocol(SMPPProtocol):
    """
    One ESME session to one SMSC.

    Usable by the supervisor as::

        proto = ESMEProtocol(link, reactor, sink, max_command_length,
                             on_state_change=callback)
        # after connectionMade:
        proto.bind()            # Deferred[Pdu]; BindError when refused
        proto.submit(params)    # Deferred[SubmitResult]
        proto.unbind(timeout)   # Deferred[None], fires once closed

    @ivar link: the C{SmscLink} served.
    @ivar state: one of L{STATES}.
    @ivar bound_since: clock time of the successful bind, or L{None}.
    @ivar stats: the L{SMPPProtocol} counters plus C{submitted},
        C{submit_ok}, C{submit_failed} (final non-zero status),
        C{submit_errors} (timeouts, connection lost), C{throttled},
        C{delivered}, C{deliver_failed} (sink error or refusal).
    @ivar on_state_change: L{None} or C{callable(link_name, state)}, called
        after every state change (exceptions it raises are logged).
    @ivar pacer: the L{SubmitPacer} (rate, throttle pause, congestion).
    @cvar max_throttle_attempts: a submit throttled this many times
        resolves with the throttle status instead of being retried again.
    """

    _log = Logger()

    max_throttle_attempts = 50

    def __init__(
        self,
        link: SmscLink,
        clock,
        sink,
        max_command_length: int = 65536,
        *,
        on_state_change: Callable[[str, str], None] | None = None,
    ):
        """
        @param link: the link to serve (its window and timers are used).
        @param clock: C{IReactorTime} for every timer.
        @param sink: an C{IDeliverySink} for deliver_sm / data_sm.
        @param max_command_length: bigger PDUs close the connection.
        @param on_state_change: see the class docstring.
        """
        super().__init__(
            clock,
            name=link.name,
            window=link.window,
            response_timeout=link.response_timeout,
            enquire_link_interval=link.enquire_link_interval,
            inactivity_timeout=link.inactivity_timeout,
            session_init_timeout=link.session_init_timeout,
            max_command_length=max_command_length,
        )
        self.link = link
        self.sink = sink
        self.state = "connecting"
        self.bound_since: float | None = None
        self.on_state_change = on_state_change
        self.stats.update(dict.fromkeys(_ESME_COUNTERS, 0))
        self._submits: collections.deque[_Submit] = collections.deque()
        self._pump_call = None
        self._pending_deliveries = 0
        self._outbind_waiters: list[defer.Deferred] = []
        self._closed_waiters: list[defer.Deferred] = []
        self._drain_call = None
        self._unbind_deadline = 0.0
        self._unbind_sent = False
        self.pacer = SubmitPacer(link.max_rate, link.window, clock.seconds())

    # ------------------------------------------------------------------
    # State

    def _set_state(self, state: str) -> None:
        if state == self.state:
            return
        self.state = state
        self._log.info("smsc {name}: {state}", name=self.name, state=state)
        callback = self.on_state_change
        if callback is not None:
            try:
                callback(self.name, state)
            except Exception:
                self._log.failure("smsc {name}: state callback failed", name=self.name)

    # ------------------------------------------------------------------
    # Bind

    def bind(self) -> defer.Deferred:
        """
        Bind as the link's session type.  For an outbind link nothing is
        sent: the Deferred waits for the SMSC's outbind and fires with the
        bind_receiver_resp.

        @return: Deferred firing with the successful bind response C{Pdu};
            failing with L{BindError} (refused; the connection is closed),
            C{SMPPTimeoutError}, C{SMPPConnectionLost}, or C{SMPPError}
            when not in state C{connecting}.
        """
        if not self.is_open:
            return defer.fail(SMPPConnectionLost(f"smsc {self.name}: not connected"))
        if self.state != "connecting":
            return defer.fail(SMPPError(f"smsc {self.name}: cannot bind in state {self.state}"))
        if self.link.session_type is SessionType.OUTBIND:
            d = defer.Deferred()
            self._outbind_waiters.append(d)
            return d
        return self._send_bind(*_BIND[self.link.session_type])

    def bind_receiver_after_outbind(self) -> defer.Deferred:
        """
        Send bind_receiver on this (SMSC-opened) connection.  Called
        automatically when a valid outbind arrives; public for callers that
        validate the outbind themselves.

        @return: as L{bind}.
        """
        return self._send_bind("bind_receiver", "bound_rx")

    def _send_bind(self, command: str, bound_state: str) -> defer.Deferred:
        if self.state != "connecting" or not self.is_open:
            return defer.fail(SMPPError(f"smsc {self.name}: cannot bind in state {self.state}"))
        link = self.link
        request = smpp_pdu.make(
            command,
            system_id=link.system_id,
            password=link.password,
            system_type=link.system_type,
            interface_version=link.interface_version,
            addr_ton=link.src_ton,
            addr_npi=link.src_npi,
            address_range=link.address_range,
        )
        self._set_state("binding")
        d = self.send_request(request, windowed=False)
        d.addCallbacks(self._bind_answered, self._bind_failed, callbackArgs=(command, bound_state))
        return d

    def _bind_answered(self, response, command: str, bound_state: str):
        if response.command_status != CommandStatus.ESME_ROK:
            error = BindError(response.command_status, self.name)
            self._log.warn("{error}", error=error)
            self.stats["errors"] += 1
            self.close_connection(str(error))
            raise error
        self.bound_since = self.clock.seconds()
        self._set_state(bound_state)
        self.mark_bound()
        self._log.info(
            "smsc {name}: {command} accepted by {smsc!r}",
            name=self.name,
            command=command,
            smsc=response.params.get("system_id", ""),
        )
        self._pump_submits()
        return response

    def _bind_failed(self, failure: Failure):
        if failure.check(SMPPGenericNack):
            failure = Failure(BindError(failure.value.status, self.name))
        self.close_connection(f"bind failed: {failure.getErrorMessage()}")
        return failure

    # ------------------------------------------------------------------
    # Incoming requests

    def request_received(self, request) -> None:
        command_id = request.command_id
        if command_id in _DELIVERIES:
            self._delivery_received(request)
        elif command_id == CommandId.outbind:
            self._outbind_received(request)
        elif command_id == CommandId.alert_notification:
            addr = request.params.get("source_addr", "")
            self._log.info("smsc {name}: alert_notification for {a!r}", name=self.name, a=addr)
        else:
            super().request_received(request)

    def _delivery_received(self, request) -> None:
        if self.state not in RECEIVE_STATES:
            self._log.info(
                "smsc {name}: {pdu.command} seq={pdu.sequence_number} refused in state {state}",
                name=self.name, pdu=request, state=self.state,
            )
            status = S.ESME_RX_T_APPN if self.state == "unbinding" else S.ESME_RINVBNDSTS
            self.send_error_response(request.command_id, request.sequence_number, status)
            return
        self.stats["delivered"] += 1
        self._pending_deliveries += 1
        then = getattr(self.sink, "deliver_then", None)
        if then is not None:
            # the hot path: the answer without a Deferred when the sink takes it
            try:
                if then(self.name, request, _Then(self._delivery_answered, (request,)).callback):
                    return
            except Exception:
                self._log.failure("smsc {name}: deliver_then failed; the full way",
                                  name=self.name)
        d = defer.maybeDeferred(self.sink.deliver_received, self.name, request)
        d.addErrback(self._sink_failed, request)
        d.addCallback(self._answer_delivery, request)
        d.addErrback(lambda f: self._log.failure("smsc {name}: delivery", f, name=self.name))

    def _sink_failed(self, failure: Failure, request) -> int:
        self._log.failure(
            "smsc {name}: delivery sink failed for {pdu.command} seq={pdu.sequence_number}",
            failure, name=self.name, pdu=request,
        )
        return int(CommandStatus.ESME_RX_T_APPN)

    def _delivery_answered(self, status, request) -> None:
        try:
            self._answer_delivery(status, request)
        except Exception:
            self._log.failure("smsc {name}: answering a delivery", name=self.name)

    def _answer_delivery(self, status, request) -> None:
        self._pending_deliveries -= 1
        if not isinstance(status, int) or not 0 <= status <= 0xFFFFFFFF:
            self._log.error(
                "smsc {name}: sink returned {status!r}, not a command_status", name=self.name,
                status=status,
            )
            status = int(CommandStatus.ESME_RX_T_APPN)
        if status:
            self.stats["deliver_failed"] += 1
        if self._connected:
            if request.command_id == _DELIVER_SM:
                # its one field, message_id, unused (NULL), whatever the
                # status: the bytes the codec makes of request.response()
                self._write(_pack_header(17, _DELIVER_SM_RESP, status,
                                         request.sequence_number) + b"\0")
            else:
                self.send_pdu(request.response(command_status=int(status)))
        else:
            self._log.info(
                "smsc {name}: connection gone; {pdu.command} seq={pdu.sequence_number} not "
                "answered (the SMSC will deliver it again)", name=self.name, pdu=request,
            )
        self._maybe_drained()

    def _outbind_received(self, request) -> None:
        system_id = request.params.get("system_id", "")
        password = request.params.get("password", "")
        if self.state != "connecting" or self._bound:
            self._log.warn("smsc {name}: outbind in state {s} refused", name=self.name,
                           s=self.state)
            status = CommandStatus.ESME_RINVBNDSTS
            self.send_error_response(request.command_id, request.sequence_number, status)
            return
        link = self.link
        if (
            link.session_type is not SessionType.OUTBIND
            or not _same(system_id, link.system_id)
            or not _same(password, link.password)
        ):
            self.stats["errors"] += 1
            error = BindError(CommandStatus.ESME_RINVPASWD, self.name)
            self._log.warn(
                "smsc {name}: outbind from system_id {system_id!r} refused: unknown "
                "system_id or wrong password",
                name=self.name,
                system_id=system_id,
            )
            self.close_connection("outbind refused: unknown system_id or wrong password")
            self._fire_outbind_waiters(Failure(error))
            return
        d = self.bind_receiver_after_outbind()
        d.addBoth(self._fire_outbind_waiters)
        d.addErrback(
            lambda f: self._log.info(
                "smsc {name}: bind_receiver after outbind failed: {why}",
                name=self.name, why=f.getErrorMessage(),
            )
        )

    def _fire_outbind_waiters(self, result):
        waiters, self._outbind_waiters = self._outbind_waiters, []
        for d in waiters:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(result)
        return result

    # ------------------------------------------------------------------
    # Submit

    def submit(self, params: dict, tlvs: dict | None = None) -> defer.Deferred:
        """
        Send a submit_sm, respecting the window, the link's max_rate, and
        throttling by the SMSC: a response with ESME_RTHROTTLED or
        ESME_RMSGQFUL pauses this session's submits (adaptive pause) and
        re-sends the same PDU with a new sequence_number afterwards.

        @param params: submit_sm mandatory parameters by spec name
            (missing ones take the spec defaults).
        @param tlvs: optional parameters by spec name.
        @return: Deferred firing with L{SubmitResult} (whatever the final
            status); failing with L{NotBoundError} (not bound for transmit,
            or unbinding), the codec's error for bad params,
            C{SMPPTimeoutError} or C{SMPPConnectionLost} (the SMSC may or
            may not have the message).
        """
        if self.state not in TRANSMIT_STATES or not self.is_open:
            error = NotBoundError(f"smsc {self.name}: cannot submit, session is {self.state}")
            return defer.fail(error)
        try:
            request = smpp_pdu.make("submit_sm", tlvs=tlvs, **params)
            encoded = smpp_pdu.encode(request)
        except Exception as e:
            return defer.fail(e)
        item = _Submit(request, encoded, defer.Deferred(), self.stats["submitted"])
        self.stats["submitted"] += 1
        self._submits.append(item)
        self._pump_submits()
        return item.deferred

    def submit_then(self, done, request, encoded: bytes) -> bool:
        """
        L{submit} for the hot path: the same window, rate, throttling and
        retries, but the outcome goes to C{done(outcome)} (a
        L{SubmitResult}, or a L{Failure} as L{submit}'s Deferred would
        fail) and no Deferred is made on the way.

        @param request: the submit_sm C{Pdu} (or an object with
            C{command_id}, C{command} and a writable C{sequence_number}).
        @param encoded: its bytes (the sequence_number is overwritten).
        @return: C{False} (and C{done} is never called) when the session
            cannot submit now (not bound for transmit, or unbinding).
        """
        if self.state not in TRANSMIT_STATES or not self.is_open:
            return False
        item = _Submit(request, encoded, _Then(done), self.stats["submitted"])
        self.stats["submitted"] += 1
        self._submits.append(item)
        self._pump_submits()
        return True

    @property
    def pending_submits(self) -> int:
        """Submits accepted but not yet sent (waiting for rate/window/pause)."""
        return len(self._submits)

    def effective_window(self) -> int:
        """@return: the window, reduced while the SMSC reports congestion."""
        return self.pacer.effective_window(self.clock.seconds())

    def _pump_submits(self) -> None:
        if self._pump_call is not None:
            return
        pacer = self.pacer
        while self._submits and self.state in TRANSMIT_STATES and self.is_open:
            now = self.clock.seconds()
            wait = pacer.delay(now)
            if wait > 0:
                self._pump_call = self.clock.callLater(wait, self._pump_later)
                return
            if self._in_window + self.queued >= pacer.effective_window(now):
                return  # window_changed() calls us again
            pacer.take(now)
            self._send_submit(self._submits.popleft())

    def _pump_later(self) -> None:
        self._pump_call = None
        self._pump_submits()

    def window_changed(self) -> None:
        self._pump_submits()
        self._maybe_drained()

    def _send_submit(self, item: _Submit) -> None:
        item.attempts += 1
        if item.deferred.__class__ is _Then and self.is_open:
            # hot path: the response goes straight to _submit_answered
            self.send_request_to(_Then(self._submit_outcome, (item,)), item.request,
                                 item.encoded)
            return
        d = self.send_request(item.request, encoded=item.encoded)
        d.addCallbacks(
            self._submit_answered, self._submit_failed, callbackArgs=(item,), errbackArgs=(item,)
        )
        d.addErrback(lambda f: self._log.failure("smsc {name}: submit", f, name=self.name))

    def _submit_outcome(self, outcome, item: _Submit) -> None:
        try:
            if isinstance(outcome, Failure):
                self._submit_failed(outcome, item)
            else:
                self._submit_answered(outcome, item)
        except Exception:
            self._log.failure("smsc {name}: submit", name=self.name)

    def _submit_answered(self, response, item: _Submit) -> None:
        self._note_congestion(response)
        status = response.command_status
        if status in _THROTTLE_STATUSES and self._throttled(item, status):
            return
        if status == 0:  # ESME_ROK
            self.stats["submit_ok"] += 1
            self.pacer.succeeded()
            # a hot-path response has it as an attribute, a decoded Pdu in params
            message_id = getattr(response, "message_id", None)
            if message_id is None:
                message_id = response.params.get("message_id")
        else:
            self.stats["submit_failed"] += 1
            message_id = None
        item.deferred.callback(SubmitResult(int(status), message_id))

    def _submit_failed(self, failure: Failure, item: _Submit) -> None:
        if failure.check(SMPPGenericNack) and failure.value.status in _THROTTLE_STATUSES:
            if self._throttled(item, failure.value.status):
                return
        self.stats["submit_errors"] += 1
        item.deferred.errback(failure)

    def _throttled(self, item: _Submit, status: int) -> bool:
        """Re-queue a throttled submit; False when it must not be retried."""
        self.stats["throttled"] += 1
        if item.attempts >= self.max_throttle_attempts or self.state not in TRANSMIT_STATES:
            return False
        pause = self.pacer.throttled(self.clock.seconds())
        if pause is not None:
            self._log.info(
                "smsc {name}: {status}; pausing submits for {pause:.2f}s",
                name=self.name,
                status=status_name(status),
                pause=pause,
            )
        # Back to the front of the queue, in original submission order.
        position = 0
        for position, other in enumerate(self._submits):
            if other.ticket > item.ticket:
                break
        else:
            position = len(self._submits)
        self._submits.insert(position, item)
        self._pump_submits()  # a pump already scheduled re-checks the pause
        return True

    def _note_congestion(self, response) -> None:
        tlvs = response.tlvs
        value = tlvs.get("congestion_state") if tlvs else None
        if isinstance(value, int) and self.pacer.note_congestion(value, self.clock.seconds()):
            self._log.info(
                "smsc {name}: congestion_state {value}; slowing down", name=self.name, value=value
            )

    def _fail_submits(self, error: Exception) -> None:
        self._cancel_call("_pump_call")
        items = list(self._submits)
        self._submits.clear()
        for item in items:
            self.stats["submit_errors"] += 1
            item.deferred.errback(error)

    # ------------------------------------------------------------------
    # Unbind and close

    def unbind(self, timeout: float = 5.0) -> defer.Deferred:
        """
        Unbind gracefully: refuse new submits (L{NotBoundError}), fail the
        ones not yet sent, wait for outstanding responses and pending
        delivery answers, send C{unbind}, wait for C{unbind_resp}, close.
        The whole sequence takes at most C{timeout} seconds (the last
        C{min(timeout/2, 1)} are kept for the unbind_resp); requests still
        outstanding then fail with C{SMPPConnectionLost}.

        @param timeout: upper bound in seconds.
        @return: Deferred firing with L{None} once the connection is lost
            (never fails).
        """
        if not self._connected:
            return defer.succeed(None)
        d = defer.Deferred()
        self._closed_waiters.append(d)
        if self.state == "unbinding" or self._closing:
            return d
        was_bound = self._bound
        self._set_state("unbinding")
        self._fail_submits(NotBoundError(f"smsc {self.name}: unbinding, submit not sent"))
        if not was_bound:
            self.close_connection("closed before bind completed")
            return d
        now = self.clock.seconds()
        self._unbind_deadline = now + timeout
        reserve = min(timeout / 2.0, 1.0)
        self._drain_call = self.clock.callLater(timeout - reserve, self._send_unbind)
        self._maybe_drained()
        return d

    def _maybe_drained(self) -> None:
        if (
            self.state == "unbinding"
            and self._drain_call is not None
            and self._in_window == 0
            and not self.queued
            and self._pending_deliveries == 0
        ):
            self._send_unbind()

    def _send_unbind(self) -> None:
        self._cancel_call("_drain_call")
        if self._unbind_sent or not self.is_open:
            return
        self._unbind_sent = True
        remaining = max(self._unbind_deadline - self.clock.seconds(), 0.001)
        self.unbind_and_close("unbound", timeout=remaining)

    def session_inactive(self) -> None:
        self.unbind(self.response_timeout)

    def unbind_received(self, request) -> None:
        self._set_state("unbinding")
        self._fail_submits(NotBoundError(f"smsc {self.name}: SMSC unbound, submit not sent"))

    def _cancel_timers(self) -> None:
        super()._cancel_timers()
        self._cancel_call("_pump_call")
        self._cancel_call("_drain_call")

    def session_closed(self, reason: Failure) -> None:
        self._fail_submits(SMPPConnectionLost(f"smsc {self.name}: connection lost"))
        self._fire_outbind_waiters(
            Failure(SMPPConnectionLost(f"smsc {self.name}: connection lost before bind"))
        )
        self._set_state("closed")
        waiters, self._closed_waiters = self._closed_waiters, []
        for d in waiters:
            d.callback(None)
