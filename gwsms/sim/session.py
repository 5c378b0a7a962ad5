# -*- test-case-name: tests.test_sim_smsc -*-
"""
One SMPP session of the simulated SMSC (L{gwsms.sim.smsc}): framing,
answering requests through its factory's policy, and sending deliver_sm
within a window.

It has its own small session code (not L{gwsms.smpp.protocol}) so that it
tests gwsms's ESME against an implementation that does not share its
session logic.
"""

from collections import deque

from twisted.internet import defer, error, protocol
from twisted.logger import Logger

from gwsms.smpp import pdu as smpp_pdu
from gwsms.smpp.constants import INTERFACE_VERSION_34, RESPONSE_BIT, CommandId, CommandStatus

C = CommandId
S = CommandStatus
_HEADER = smpp_pdu.HEADER
RECEIVER_STATES = ("bound_rx", "bound_trx")
TRANSMITTER_STATES = ("bound_tx", "bound_trx")
_BIND_STATES = {C.bind_transmitter: "bound_tx", C.bind_receiver: "bound_rx", C.bind_transceiver: "bound_trx"}
_RESPONSES = frozenset(int(c) for c in CommandId if c & RESPONSE_BIT)


class NoReceiverError(Exception):
    """
    No receiver-capable bind is available for a deliver_sm.
    """


class ResponseTimeout(Exception):
    """
    The ESME did not answer a request in time.
    """


class SmscProtocol(protocol.Protocol):
    """
    One SMPP session of the simulator.

    @ivar state: C{"open"}, C{"outbound"} (outbind sent), C{"bound_tx"},
        C{"bound_rx"}, C{"bound_trx"} or C{"closed"}.
    @ivar system_id: the system_id the ESME bound with.
    """

    _log = Logger()

    def __init__(self, outbind=None):
        """
        @param outbind: C{(system_id, password)} to send in an outbind once
            connected, or L{None} for an ESME-initiated session.
        """
        self.state = "open"
        self.system_id = None
        self._outbind = outbind
        self._buffer = bytearray()
        self._sequence = 0
        self._outstanding = {}
        self._queue = deque()
        self._handlers = {
            C.submit_sm: self._on_submit_sm,
            C.bind_transmitter: self._on_bind,
            C.bind_receiver: self._on_bind,
            C.bind_transceiver: self._on_bind,
            C.enquire_link: self._on_enquire_link,
            C.unbind: self._on_unbind,
            C.submit_multi: self._on_submit_multi,
            C.data_sm: self._on_data_sm,
            C.query_sm: self._on_query_sm,
            C.cancel_sm: self._on_cancel_or_replace,
            C.replace_sm: self._on_cancel_or_replace,
        }

    def connectionMade(self):
        self.factory.session_started(self)
        if self._outbind is not None:
            system_id, password = self._outbind
            self.state = "outbound"
            self.transport.write(
                smpp_pdu.encode(smpp_pdu.make("outbind", self._next_sequence(), system_id=system_id,
                                              password=password))
            )

    def connectionLost(self, reason=protocol.connectionDone):
        self.state = "closed"
        self.factory.session_ended(self)
        outstanding, self._outstanding = self._outstanding, {}
        for d, timer in outstanding.values():
            if timer.active():
                timer.cancel()
            d.errback(error.ConnectionLost("SMPP session closed"))
        queue, self._queue = self._queue, deque()
        for _, d in queue:
            d.errback(error.ConnectionLost("SMPP session closed"))

    # -- receiving ---------------------------------------------------------

    def dataReceived(self, data):
        buf = self._buffer
        buf += data
        out = []
        pos, size = 0, len(buf)
        limit = self.factory.max_command_length
        while size - pos >= 16:
            length = int.from_bytes(buf[pos:pos + 4], "big")
            if length < 16 or length > limit:
                self._log.warn("closing session: command_length {length}", length=length)
                out.append(_HEADER.pack(16, C.generic_nack, S.ESME_RINVCMDLEN, 0))
                self.transport.write(b"".join(out))
                self._buffer = bytearray()
                self.transport.loseConnection()
                return
            if size - pos < length:
                break
            self._handle(bytes(buf[pos:pos + length]), out)
            pos += length
            if self.state == "closed":
                return
        del buf[:pos]
        if out:
            self.transport.write(b"".join(out))

    def _handle(self, data, out):
        try:
            request = smpp_pdu.decode(data)
        except smpp_pdu.PduError as e:
            self._log.info("malformed PDU: {error}", error=str(e))
            cid, seq = e.command_id, e.sequence_number or 0
            resp = (cid or 0) | RESPONSE_BIT
            if cid is not None and not cid & RESPONSE_BIT and resp in _RESPONSES:
                out.append(_HEADER.pack(16, resp, e.status, seq))
            elif cid is None or not cid & RESPONSE_BIT:
                out.append(_HEADER.pack(16, C.generic_nack, e.status, seq))
            return
        cid = request.command_id
        if cid & RESPONSE_BIT:
            self._on_response(request)
            return
        handler = self._handlers.get(cid)
        if handler is None:
            out.append(_HEADER.pack(16, C.generic_nack, S.ESME_RINVCMDID, request.sequence_number))
            return
        handler(request, out)

    def _respond(self, out, request, status=0, **params):
        out.append(smpp_pdu.encode(request.response(status, **params)))

    def _on_bind(self, request, out):
        resp_id = request.command_id | RESPONSE_BIT
        seq = request.sequence_number
        if self.state not in ("open", "outbound"):
            out.append(_HEADER.pack(16, resp_id, S.ESME_RALYBND, seq))
            return
        status = self.factory.check_credentials(request.params["system_id"], request.params["password"])
        if status:
            out.append(_HEADER.pack(16, resp_id, status, seq))
            return
        self.state = _BIND_STATES[request.command_id]
        self.system_id = request.params["system_id"]
        resp = smpp_pdu.make(resp_id, seq, system_id=self.factory.server_name,
                             tlvs={"sc_interface_version": INTERFACE_VERSION_34})
        out.append(smpp_pdu.encode(resp))
        self.factory.bound(self)

    def _on_enquire_link(self, request, out):
        out.append(_HEADER.pack(16, C.enquire_link_resp, 0, request.sequence_number))

    def _on_unbind(self, request, out):
        out.append(_HEADER.pack(16, C.unbind_resp, 0, request.sequence_number))
        self.transport.write(b"".join(out))
        del out[:]
        self.state = "closed"
        self.factory.session_ended(self)
        self.transport.loseConnection()

    def _submit_allowed(self, request, out):
        if self.state not in TRANSMITTER_STATES:
            out.append(_HEADER.pack(16, request.command_id | RESPONSE_BIT, S.ESME_RINVBNDSTS,
                                    request.sequence_number))
            return False
        return True

    def _on_submit_sm(self, request, out):
        if not self._submit_allowed(request, out):
            return
        factory = self.factory
        if factory.should_throttle():
            out.append(_HEADER.pack(16, C.submit_sm_resp, S.ESME_RTHROTTLED, request.sequence_number))
            return
        message_id = factory.accept_submit(request, self)
        raw = message_id.encode("ascii")
        out.append(_HEADER.pack(17 + len(raw), C.submit_sm_resp, 0, request.sequence_number) + raw + b"\0")

    def _on_submit_multi(self, request, out):
        if not self._submit_allowed(request, out):
            return
        message_id = self.factory.accept_submit(request, self)
        self._respond(out, request, message_id=message_id, unsuccess_sme=[])

    def _on_data_sm(self, request, out):
        if not self._submit_allowed(request, out):
            return
        message_id = self.factory.accept_submit(request, self)
        self._respond(out, request, message_id=message_id)

    def _on_query_sm(self, request, out):
        if not self._submit_allowed(request, out):
            return
        message_id = request.params["message_id"]
        known = self.factory.message_state(message_id)
        if known is None:
            out.append(_HEADER.pack(16, C.query_sm_resp, S.ESME_RQUERYFAIL, request.sequence_number))
            return
        state, final_date = known
        self._respond(out, request, message_id=message_id, final_date=final_date, message_state=state)

    def _on_cancel_or_replace(self, request, out):
        if not self._submit_allowed(request, out):
            return
        known = self.factory.message_state(request.params["message_id"])
        fail = S.ESME_RCANCELFAIL if request.command_id == C.cancel_sm else S.ESME_RREPLACEFAIL
        self._respond(out, request, 0 if known is not None else fail)

    # -- sending requests --------------------------------------------------

    def _next_sequence(self):
        self._sequence = self._sequence % 0x7FFFFFFF + 1
        return self._sequence

    def send_request(self, request):
        """
        Send a request, honouring the factory's window.

        @param request: a request L{smpp_pdu.Pdu}; its sequence_number is
            assigned here.
        @return: Deferred firing with the response L{smpp_pdu.Pdu}, failing
            with L{ResponseTimeout} or C{ConnectionLost}.
        """
        d = defer.Deferred()
        if self.state == "closed":
            d.errback(error.ConnectionLost("SMPP session closed"))
        elif len(self._outstanding) < self.factory.window:
            self._write_request(request, d)
        else:
            self._queue.append((request, d))
        return d

    def _write_request(self, request, d):
        seq = self._next_sequence()
        request.sequence_number = seq
        timer = self.factory.clock.callLater(self.factory.response_timeout, self._timed_out, seq)
        self._outstanding[seq] = (d, timer)
        self.transport.write(smpp_pdu.encode(request))

    def _timed_out(self, seq):
        d, _ = self._outstanding.pop(seq)
        d.errback(ResponseTimeout("no response to sequence_number %d" % (seq,)))
        self._pump()

    def _on_response(self, response):
        entry = self._outstanding.pop(response.sequence_number, None)
        if entry is None:
            self._log.info("unexpected {command} seq {seq}", command=response.command,
                           seq=response.sequence_number)
            return
        d, timer = entry
        timer.cancel()
        d.callback(response)
        self._pump()

    def _pump(self):
        while self._queue and len(self._outstanding) < self.factory.window and self.state != "closed":
            request, d = self._queue.popleft()
            self._write_request(request, d)
