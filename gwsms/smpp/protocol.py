# -*- test-case-name: tests.test_smpp_protocol -*-
"""
The SMPP session layer, shared by both ends of a connection.

L{SMPPProtocol} turns the byte stream into PDUs (C{command_length}
framing), numbers outgoing requests, matches responses to them, bounds how
many may be outstanding (the window) and runs the SMPP 3.4 section 7.2
timers on an injected clock (the keep-alive timers are in L{gwsms.smpp.timers}):

  - session-init: a connection not bound within C{session_init_timeout}
    is closed;
  - response: a request not answered within C{response_timeout} fails
    with L{SMPPTimeoutError};
  - enquire-link: after C{enquire_link_interval} seconds with nothing
    received an C{enquire_link} is sent; no answer within
    C{response_timeout} closes the connection;
  - inactivity: when C{inactivity_timeout} > 0 and no PDU other than
    C{enquire_link}/C{enquire_link_resp} arrived for that long, the session
    is unbound and closed.

It answers what any SMPP entity must answer (C{enquire_link}, C{unbind},
malformed and unknown PDUs) and hands every other request to
L{SMPPProtocol.request_received}, which subclasses override.  It contains
no application logic.
"""

from __future__ import annotations

import collections

from twisted.internet import defer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from gwsms.smpp import pdu as smpp_pdu
from gwsms.smpp.constants import RESPONSE_BIT, CommandId, CommandStatus
from gwsms.smpp.errors import (  # noqa: F401 (SMPPError re-exported)
    SMPPConnectionLost,
    SMPPError,
    SMPPGenericNack,
    SMPPProtocolError,
    SMPPTimeoutError,
    command_name,
    status_name,
)
from gwsms.smpp.timers import SessionTimers

#: Highest sequence_number; the next one after it is 1 again.
MAX_SEQUENCE = 0x7FFFFFFF
HEADER_LENGTH = 16

_pack_header = smpp_pdu.HEADER.pack
_ENQUIRE_LINK_RESP = int(CommandId.enquire_link_resp)
_UNBIND_RESP = int(CommandId.unbind_resp)
_SUBMIT_SM = int(CommandId.submit_sm)
_SUBMIT_SM_RESP = int(CommandId.submit_sm_resp)
# plain ints for the per-PDU comparisons (an enum member is a class
# attribute look-up each time)
_GENERIC_NACK = int(CommandId.generic_nack)
_ENQUIRE_LINK = int(CommandId.enquire_link)
_UNBIND = int(CommandId.unbind)
_KNOWN = {int(c) for c in CommandId}
#: Requests that have no response PDU.
_NO_RESPONSE = {int(CommandId.outbind), int(CommandId.alert_notification)}
#: Received PDUs that do not count as activity for the inactivity timer.
_KEEPALIVE = {int(CommandId.enquire_link), int(CommandId.enquire_link_resp)}


class _Pending:
    """
    One request waiting for its response: a response timer of its own
    (C{timer}), or, for the hot path's requests (L{send_request_to}), only a
    C{deadline} that the session's one sweep timer checks.
    """

    __slots__ = ("deferred", "timer", "command_id", "windowed", "deadline", "timeout")

    def __init__(self, deferred, timer, command_id: int, windowed: bool,
                 deadline: float = 0.0, timeout: float = 0.0):
        self.deferred = deferred
        self.timer = timer
        self.command_id = command_id
        self.windowed = windowed
        self.deadline = deadline
        self.timeout = timeout


class _FastResponse:
    """
    A C{submit_sm_resp} read without the codec (status, message_id, no
    TLVs): what L{gwsms.smpp.esme.ESMEProtocol} reads of a response.
    """

    __slots__ = ("command_status", "sequence_number", "message_id")
    command_id = 0x80000004
    command = "submit_sm_resp"
    tlvs = None

    def __init__(self, status: int, seq: int, message_id):
        self.command_status = status
        self.sequence_number = seq
        self.message_id = message_id

    @property
    def params(self) -> dict:
        return {} if self.message_id is None else {"message_id": self.message_id}


class SMPPProtocol(SessionTimers, Protocol):
    """
    SMPP framing, sequence numbers, window and timers.

    @ivar name: label used in log lines (the link name).
    @ivar stats: counters: C{received}, C{sent} (PDUs), C{malformed},
        C{generic_nack_sent}, C{generic_nack_received}, C{timeouts},
        C{unmatched} (responses matching no request), C{errors},
        C{enquire_link_sent}.
    @ivar close_reason: why this side closed the connection (L{str}), or
        L{None} while open / when the peer closed it.
    @ivar outstanding: C{sequence_number -> _Pending} (Deferred, response
        DelayedCall, ...) of the requests in flight; read-only for callers.
    """

    _log = Logger()

    def __init__(
        self,
        clock,
        *,
        name: str = "smpp",
        window: int = 10,
        response_timeout: float = 60.0,
        enquire_link_interval: float = 30.0,
        inactivity_timeout: float = 0.0,
        session_init_timeout: float = 10.0,
        max_command_length: int = 65536,
    ):
        """
        @param clock: an C{IReactorTime}; every timer runs on it.
        @param name: label for log lines.
        @param window: at most this many windowed requests outstanding.
        @param response_timeout: seconds to wait for each response (> 0).
        @param enquire_link_interval: idle seconds before an enquire_link is
            sent; 0 disables it.
        @param inactivity_timeout: seconds without traffic before the session
            is unbound; 0 disables it.
        @param session_init_timeout: seconds to get bound after connecting;
            0 disables it.
        @param max_command_length: larger C{command_length} values close the
            connection.
        """
        self.clock = clock
        self.name = name
        self.window = max(1, int(window))
        self.response_timeout = float(response_timeout)
        self.enquire_link_interval = float(enquire_link_interval)
        self.inactivity_timeout = float(inactivity_timeout)
        self.session_init_timeout = float(session_init_timeout)
        self.max_command_length = int(max_command_length)
        self.close_reason: str | None = None
        self.outstanding: dict[int, _Pending] = {}
        self.stats: dict[str, int] = dict.fromkeys(
            (
                "received",
                "sent",
                "malformed",
                "generic_nack_sent",
                "generic_nack_received",
                "timeouts",
                "unmatched",
                "errors",
                "enquire_link_sent",
            ),
            0,
        )
        self._buffer = bytearray()
        self._next_sequence = 1
        self._in_window = 0
        self._sweep_call = None
        self._queue: collections.deque = collections.deque()
        self._connected = False
        self._closing = False
        self._bound = False
        self._last_received = 0.0
        self._last_activity = 0.0
        self._session_init_call = None
        self._enquire_call = None
        self._inactivity_call = None
        self._enquire_pending = False

    # ------------------------------------------------------------------
    # Public API

    @property
    def is_open(self) -> bool:
        """True from connectionMade until we start closing / connectionLost."""
        return self._connected and not self._closing

    @property
    def queued(self) -> int:
        """Number of windowed requests waiting for a free window slot."""
        return len(self._queue)

    def window_free(self) -> int:
        """
        @return: how many more windowed requests would go out right now.
        """
        return max(0, self.window - self._in_window - len(self._queue))

    def send_request(
        self,
        request,
        *,
        windowed: bool = True,
        timeout: float | None = None,
        encoded: bytes | None = None,
    ) -> defer.Deferred:
        """
        Send a request PDU; a fresh sequence_number is assigned when it
        is written (and stored in C{request.sequence_number}).

        @param request: a request C{Pdu}.
        @param windowed: counts against the window (and waits in FIFO order
            for a slot when it is full).  Session management (bind,
            enquire_link, unbind) passes L{False}.
        @param timeout: response timer in seconds; default C{response_timeout}.
        @param encoded: C{encode(request)} if the caller already has it (its
            sequence_number is overwritten); saves encoding twice.
        @return: Deferred firing with the response C{Pdu} whatever its
            command_status; failing with L{SMPPTimeoutError},
            L{SMPPConnectionLost}, L{SMPPGenericNack} or
            L{SMPPProtocolError}; or with the codec's error when the PDU
            cannot be encoded.
        """
        if not self.is_open:
            return defer.fail(
                SMPPConnectionLost(
                    f"smsc {self.name}: not connected, {request.command} not sent"
                )
            )
        try:
            data = bytearray(smpp_pdu.encode(request) if encoded is None else encoded)
        except Exception as e:
            return defer.fail(e)
        d = defer.Deferred(self._cancel_request)
        if windowed and (self._in_window >= self.window or self._queue):
            self._queue.append((request, data, d, timeout))
        else:
            self._transmit(request, data, d, windowed, timeout)
        return d

    def send_request_to(self, sink, request, encoded: bytes, windowed: bool = True) -> None:
        """
        L{send_request} without a Deferred (the hot path): the response
        goes to C{sink.callback(response)}, a failure to
        C{sink.errback(exception)}; the session must be open.

        @param sink: an object with C{callback} and C{errback}.
        @param request: the request C{Pdu} (its C{command_id} is used and
            its C{sequence_number} set).
        @param encoded: the request's bytes.
        """
        data = bytearray(encoded)
        if windowed and (self._in_window >= self.window or self._queue):
            self._queue.append((request, data, sink, None))
        else:
            self._transmit(request, data, sink, windowed, None)

    def send_pdu(self, pdu) -> None:
        """
        Write a PDU as it is (responses; no sequence number assigned).

        @param pdu: the C{Pdu} to encode and write.
        """
        self._write(smpp_pdu.encode(pdu))

    def send_error_response(self, command_id: int, sequence_number: int, status: int):
        """
        Answer a request with an error status and no body (SMPP 3.4: the
        body of a _resp is not returned when command_status is non-zero).
        Requests that have no response are answered with C{generic_nack}.

        @param command_id: the request's command_id.
        @param sequence_number: the request's sequence_number.
        @param status: the command_status to answer with.
        """
        if command_id in _KNOWN and not command_id & RESPONSE_BIT and (
            command_id not in _NO_RESPONSE
        ):
            resp = command_id | RESPONSE_BIT
        else:
            resp = int(CommandId.generic_nack)
            self.stats["generic_nack_sent"] += 1
        self._write(_pack_header(HEADER_LENGTH, resp, status & 0xFFFFFFFF, sequence_number))

    def close_connection(self, reason: str) -> None:
        """
        Close the connection now, logging C{reason} (kept in
        C{close_reason}).  Outstanding requests fail when the transport
        reports the loss.
        """
        if self._closing or not self._connected:
            return
        self._closing = True
        self.close_reason = reason
        self._log.info("smsc {name}: closing connection: {reason}", name=self.name, reason=reason)
        self._cancel_timers()
        self.transport.loseConnection()

    # ------------------------------------------------------------------
    # Hooks for subclasses

    def request_received(self, request) -> None:
        """
        A request other than enquire_link / unbind arrived.  The default
        answers C{ESME_RINVCMDID} (C{generic_nack} for requests without a
        response).  Overrides must answer every request that has a response.
        """
        self._log.info(
            "smsc {name}: unsupported {command} seq={seq} refused",
            name=self.name,
            command=request.command,
            seq=request.sequence_number,
        )
        if request.command_id in _NO_RESPONSE:
            return
        self.send_error_response(
            request.command_id, request.sequence_number, CommandStatus.ESME_RINVCMDID
        )

    def unbind_received(self, request) -> None:
        """The peer sent unbind; unbind_resp is already written; we close next."""

    def window_changed(self) -> None:
        """A window slot may have become free (after a response/timeout)."""

    def session_closed(self, reason: Failure) -> None:
        """Called at the end of connectionLost, after all requests failed."""

    # ------------------------------------------------------------------
    # Twisted Protocol

    def connectionMade(self) -> None:
        self._connected = True
        now = self.clock.seconds()
        self._last_received = self._last_activity = now
        if self.session_init_timeout > 0 and not self._bound:
            self._session_init_call = self.clock.callLater(
                self.session_init_timeout, self._session_init_expired
            )

    def dataReceived(self, data: bytes) -> None:
        if self._closing or not self._connected:
            return
        buf = self._buffer
        if buf or data.__class__ is not bytes:
            # the start of a PDU came before: read on from it once the PDU is
            # whole (one copy per whole PDU, however small the reads)
            buf += data
            if len(buf) < 4:
                return
            length = int.from_bytes(buf[:4], "big")
            if HEADER_LENGTH <= length <= self.max_command_length and len(buf) < length:
                return
            data = bytes(buf)
            buf.clear()
        offset = 0
        end = len(data)
        try:
            while end - offset >= 4:
                length = int.from_bytes(data[offset : offset + 4], "big")
                if length < HEADER_LENGTH or length > self.max_command_length:
                    self._framing_error(data, offset, length)
                    return
                if end - offset < length:
                    break
                frame = data[offset : offset + length]
                offset += length
                self._frame_received(frame)
                if self._closing:
                    return
        finally:
            # what is left (part of a PDU) waits for the next read
            if self._closing:
                buf.clear()
            elif offset < end:
                buf += data[offset:]

    def connectionLost(self, reason: Failure = None) -> None:
        was_connected = self._connected
        self._connected = False
        self._closing = True
        self._cancel_timers()
        self._buffer.clear()
        outstanding, self.outstanding = self.outstanding, {}
        queued = list(self._queue)
        self._queue.clear()
        self._in_window = 0
        why = self.close_reason or (
            reason.getErrorMessage() if reason is not None else "connection lost"
        )
        for pending in outstanding.values():
            if pending.timer is not None and pending.timer.active():
                pending.timer.cancel()
            pending.deferred.errback(
                SMPPConnectionLost(f"smsc {self.name}: connection lost ({why})")
            )
        for _request, _data, d, _timeout in queued:
            d.errback(SMPPConnectionLost(f"smsc {self.name}: connection lost ({why})"))
        if was_connected:
            self.session_closed(reason)

    # ------------------------------------------------------------------
    # Receiving

    def _framing_error(self, buf, offset, length) -> None:
        seq = 0
        if len(buf) - offset >= HEADER_LENGTH:
            seq = int.from_bytes(buf[offset + 12 : offset + 16], "big")
        self.stats["malformed"] += 1
        self.stats["errors"] += 1
        self.send_error_response(0, seq, CommandStatus.ESME_RINVCMDLEN)
        self.close_connection(
            f"invalid command_length {length} (must be 16..{self.max_command_length})"
        )

    def _cancel_timers(self) -> None:
        super()._cancel_timers()
        self._cancel_call("_sweep_call")

    def _frame_received(self, frame: bytes) -> None:
        self.stats["received"] += 1
        command_id = int.from_bytes(frame[4:8], "big")
        now = self.clock.seconds()
        self._last_received = now
        if command_id not in _KEEPALIVE:
            self._last_activity = now
        if command_id == _SUBMIT_SM_RESP and self._fast_response(frame):
            return
        try:
            request = smpp_pdu.decode(frame)
        except smpp_pdu.PduError as e:
            self._malformed_received(frame, e.status, str(e))
            return
        except Exception as e:  # a codec defect must not kill the session
            self._log.error(
                "smsc {name}: codec error decoding {command}: {error!r}",
                name=self.name,
                command=command_name(command_id),
                error=e,
            )
            self._malformed_received(frame, CommandStatus.ESME_RSYSERR, repr(e))
            return
        try:
            self._pdu_received(request)
        except Exception:
            self._log.failure(
                "smsc {name}: error handling {command}",
                name=self.name,
                command=command_name(command_id),
            )

    def _fast_response(self, frame: bytes) -> bool:
        """
        A C{submit_sm_resp} to a hot-path request (L{send_request_to})
        that is just a message id (or no body with an error status): read
        it without the codec.

        @return: C{False} when the full decoder must read it.
        """
        seq = int.from_bytes(frame[12:16], "big")
        pending = self.outstanding.get(seq)
        if pending is None or pending.timer is not None or pending.command_id != _SUBMIT_SM:
            return False
        status = int.from_bytes(frame[8:12], "big")
        size = len(frame)
        if size == HEADER_LENGTH:
            if not status:
                return False
            message_id = None
        else:
            end = frame.find(b"\0", HEADER_LENGTH)
            if end != size - 1 or end - HEADER_LENGTH > 64:
                return False  # TLVs, or not one C-Octet string of 65
            message_id = frame[HEADER_LENGTH:end].decode("latin-1")
        self._finish(seq, pending)
        pending.deferred.callback(_FastResponse(status, seq, message_id))
        self.window_changed()
        return True

    def _malformed_received(self, frame: bytes, status, message: str) -> None:
        command_id = int.from_bytes(frame[4:8], "big")
        seq = int.from_bytes(frame[12:16], "big")
        status = int(status) if status else int(CommandStatus.ESME_RSYSERR)
        self.stats["malformed"] += 1
        self.stats["errors"] += 1
        self._log.warn(
            "smsc {name}: malformed {command} seq={seq}: {message}",
            name=self.name,
            command=command_name(command_id),
            seq=seq,
            message=message,
        )
        if command_id & RESPONSE_BIT:
            pending = self.outstanding.get(seq)
            if pending is not None and (
                command_id == CommandId.generic_nack
                or command_id == pending.command_id | RESPONSE_BIT
            ):
                self._finish(seq, pending)
                pending.deferred.errback(
                    SMPPProtocolError(
                        f"malformed {command_name(command_id)}: {message}", status
                    )
                )
                self.window_changed()
            return
        self.send_error_response(command_id, seq, status)

    def _pdu_received(self, request) -> None:
        command_id = request.command_id
        if command_id == _GENERIC_NACK:
            self._generic_nack_received(request)
        elif command_id & RESPONSE_BIT:
            self._response_received(request)
        elif command_id == _ENQUIRE_LINK:
            self._write(_pack_header(HEADER_LENGTH, _ENQUIRE_LINK_RESP, 0, request.sequence_number))
        elif command_id == _UNBIND:
            self._write(_pack_header(HEADER_LENGTH, _UNBIND_RESP, 0, request.sequence_number))
            self.unbind_received(request)
            self.close_connection("peer sent unbind")
        else:
            self.request_received(request)

    def _response_received(self, response) -> None:
        seq = response.sequence_number
        pending = self.outstanding.get(seq)
        if pending is None or response.command_id != pending.command_id | RESPONSE_BIT:
            self.stats["unmatched"] += 1
            self._log.info(
                "smsc {name}: dropping {command} seq={seq}: no matching request",
                name=self.name,
                command=response.command,
                seq=seq,
            )
            return
        self._finish(seq, pending)
        pending.deferred.callback(response)
        self.window_changed()

    def _generic_nack_received(self, nack) -> None:
        self.stats["generic_nack_received"] += 1
        self.stats["errors"] += 1
        seq = nack.sequence_number
        pending = self.outstanding.get(seq)
        self._log.warn(
            "smsc {name}: generic_nack {status} seq={seq}{what}",
            name=self.name,
            status=status_name(nack.command_status),
            seq=seq,
            what="" if pending else " (matches no request)",
        )
        if pending is None:
            return
        self._finish(seq, pending)
        pending.deferred.errback(
            SMPPGenericNack(nack.command_status, command_name(pending.command_id))
        )
        self.window_changed()

    # ------------------------------------------------------------------
    # Sending

    def _write(self, data: bytes) -> None:
        self.stats["sent"] += 1
        self.transport.write(data)

    def _allocate_sequence(self) -> int:
        seq = self._next_sequence
        while seq in self.outstanding:
            seq = seq + 1 if seq < MAX_SEQUENCE else 1
        self._next_sequence = seq + 1 if seq < MAX_SEQUENCE else 1
        return seq

    def _transmit(self, request, data: bytearray, d, windowed: bool, timeout) -> None:
        seq = self._allocate_sequence()
        request.sequence_number = seq
        data[12:16] = seq.to_bytes(4, "big")
        if timeout is None:
            timeout = self.response_timeout
        if d.__class__ is defer.Deferred:
            timer = self.clock.callLater(timeout, self._request_timed_out, seq, timeout)
            self.outstanding[seq] = _Pending(d, timer, request.command_id, windowed)
        else:
            # hot path: no timer per request, the sweep checks the deadline
            self.outstanding[seq] = _Pending(d, None, request.command_id, windowed,
                                             self.clock.seconds() + timeout, timeout)
            if self._sweep_call is None:
                self._sweep_call = self.clock.callLater(timeout, self._sweep_deadlines)
        if windowed:
            self._in_window += 1
        self._write(bytes(data))

    def _finish(self, seq: int, pending: _Pending) -> None:
        """Remove a request from the map, stop its timer, refill the window."""
        del self.outstanding[seq]
        timer = pending.timer
        if timer is not None and timer.active():
            timer.cancel()
        if pending.windowed:
            self._in_window -= 1
            self._pump_queue()

    def _pump_queue(self) -> None:
        while self._queue and self._in_window < self.window and self.is_open:
            request, data, d, timeout = self._queue.popleft()
            self._transmit(request, data, d, True, timeout)

    def _sweep_deadlines(self) -> None:
        """Time out the hot path's requests past their deadline; re-arm."""
        self._sweep_call = None
        now = self.clock.seconds()
        expired = []
        earliest = None
        for seq, pending in self.outstanding.items():
            if pending.timer is None:
                if pending.deadline <= now:
                    expired.append((seq, pending.timeout))
                elif earliest is None or pending.deadline < earliest:
                    earliest = pending.deadline
        for seq, timeout in expired:
            self._request_timed_out(seq, timeout)
        if earliest is not None and self._sweep_call is None and self._connected:
            # at most a tenth of the timeout late, never a timer per request
            delay = max(earliest - now, self.response_timeout / 10.0, 0.001)
            self._sweep_call = self.clock.callLater(delay, self._sweep_deadlines)

    def _request_timed_out(self, seq: int, timeout: float) -> None:
        pending = self.outstanding.get(seq)
        if pending is None:
            return
        self._finish(seq, pending)
        self.stats["timeouts"] += 1
        self.stats["errors"] += 1
        command = command_name(pending.command_id)
        self._log.warn(
            "smsc {name}: no response to {command} seq={seq} within {timeout}s",
            name=self.name,
            command=command,
            seq=seq,
            timeout=timeout,
        )
        pending.deferred.errback(SMPPTimeoutError(command, seq, timeout))
        self.window_changed()

    def _cancel_request(self, d) -> None:
        for i, item in enumerate(self._queue):
            if item[2] is d:
                del self._queue[i]
                return
        for seq, pending in self.outstanding.items():
            if pending.deferred is d:
                self._finish(seq, pending)
                self.window_changed()
                return
