# -*- test-case-name: tests.test_sim_smsc -*-
"""
One SMPP session of the simulated SMSC (L{gwsms.sim.smsc}): framing,
answering requests through its factory's policy, and sending deliver_sm
within a window.

It has its own small session code (not L{gwsms.smpp.protocol}) so that it
tests gwsms's ESME against an implementation that does not share its
session logic.

The benchmark drives it at 10,000+ PDUs per second next to the gateway,
so the common cases take a lean lane on the raw bytes: a well-formed
submit_sm (no TLVs) is checked by scanning its C-Octet strings and
answered from the header alone, a deliver_sm_resp to a raw request
(L{SmscProtocol.send_raw}) is matched by its header, and every answer of
one C{dataReceived} goes out in one write.  Anything else (receipts
asked for, recording, malformed input, every other command) goes through
the full codec L{gwsms.smpp.pdu} as before.  Outstanding requests share
one response timer per session (armed for the oldest), not one per PDU.
"""

from collections import deque

from twisted.internet import defer, error, protocol, tcp
from twisted.logger import Logger

from gwsms.smpp import pdu as smpp_pdu
from gwsms.smpp.constants import INTERFACE_VERSION_34, RESPONSE_BIT, CommandId, CommandStatus

C = CommandId
S = CommandStatus
_HEADER = smpp_pdu.HEADER
_HEADER_PACK = _HEADER.pack
_HEADER_UNPACK = _HEADER.unpack_from
RECEIVER_STATES = ("bound_rx", "bound_trx")
TRANSMITTER_STATES = ("bound_tx", "bound_trx")
_BIND_STATES = {C.bind_transmitter: "bound_tx", C.bind_receiver: "bound_rx", C.bind_transceiver: "bound_trx"}
_RESPONSES = frozenset(int(c) for c in CommandId if c & RESPONSE_BIT)
_SUBMIT_SM = int(C.submit_sm)
_DELIVER_SM_RESP = int(C.deliver_sm_resp)


class NoReceiverError(Exception):
    """
    No receiver-capable bind is available for a deliver_sm.
    """


class ResponseTimeout(Exception):
    """
    The ESME did not answer a request in time.
    """


def scan_submit_sm(buf, pos, end):
    """
    Check a submit_sm body the way the full decoder would, without
    decoding it: every C-Octet string terminated within its maximum size,
    sm_length <= 254 and the short message ending the PDU exactly (no
    TLVs).

    @param buf: bytes or bytearray holding the PDU.
    @param pos: offset of the body (after the 16-octet header).
    @param end: offset just after the PDU.
    @return: the registered_delivery octet, or -1 when the full decoder
        must look at it (TLVs present, or malformed).
    """
    find = buf.find
    q = find(0, pos, pos + 6)  # service_type
    if q < 0:
        return -1
    q = find(0, q + 3, q + 24)  # (ton, npi) source_addr
    if q < 0:
        return -1
    q = find(0, q + 3, q + 24)  # (ton, npi) destination_addr
    if q < 0:
        return -1
    q = find(0, q + 4, q + 21)  # (esm_class, protocol_id, priority_flag) schedule_delivery_time
    if q < 0:
        return -1
    q = find(0, q + 1, q + 18)  # validity_period
    if q < 0 or q + 6 > end:
        return -1
    # registered_delivery, replace_if_present_flag, data_coding, sm_default_msg_id, sm_length
    length = buf[q + 5]
    if length > 254 or q + 6 + length != end:
        return -1
    return buf[q + 1]


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
        # seq -> (deadline, Deferred or None, raw callback or None, its argument)
        self._outstanding = {}
        # (command_id or None, body bytes or request Pdu, Deferred, callback, argument)
        self._queue = deque()
        self._pending = []
        self._timer = None
        self._socket = None
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
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            try:
                set_no_delay(True)
            except OSError:
                pass
        # Only a plain TCP connection: a wrapper (TLS) forwards attribute
        # look-ups to the TCP transport below it, whose socket must not be
        # written to directly.
        if isinstance(self.transport, tcp.Connection) and hasattr(self.transport, "_tempDataLen"):
            self._socket = self.transport.socket
        if self._outbind is not None:
            system_id, password = self._outbind
            self.state = "outbound"
            self._write(
                smpp_pdu.encode(smpp_pdu.make("outbind", self._next_sequence(), system_id=system_id,
                                              password=password))
            )

    def connectionLost(self, reason=protocol.connectionDone):
        self.state = "closed"
        self._socket = None
        self.factory.session_ended(self)
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        outstanding, self._outstanding = self._outstanding, {}
        queue, self._queue = self._queue, deque()
        self._pending.clear()
        for _, d, fn, arg in outstanding.values():
            self._fail(d, fn, arg, error.ConnectionLost("SMPP session closed"))
        for _, _, d, fn, arg in queue:
            self._fail(d, fn, arg, error.ConnectionLost("SMPP session closed"))

    def _fail(self, d, fn, arg, exc):
        if d is not None:
            d.errback(exc)
        else:
            fn(arg, exc)

    def _write(self, data):
        """
        Send now when Twisted holds nothing back for this connection (one
        system call, no extra reactor round for the write), else queue it
        behind what Twisted holds.
        """
        sock = self._socket
        transport = self.transport
        if sock is not None and not transport._tempDataLen and not transport.dataBuffer \
                and transport.connected and not transport.disconnecting:
            try:
                sent = sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                sent = 0  # Twisted's own write reports the error
            if sent == len(data):
                return
            data = data[sent:]
        transport.write(data)

    # -- receiving ---------------------------------------------------------

    def dataReceived(self, data):
        buf = self._buffer
        buf += data
        out = self._pending
        pos, size = 0, len(buf)
        limit = self.factory.max_command_length
        factory = self.factory
        fast_submit = not factory.record and self.state in TRANSMITTER_STATES
        outstanding = self._outstanding
        while size - pos >= 16:
            length, cid, status, seq = _HEADER_UNPACK(buf, pos)
            if length < 16 or length > limit:
                self._log.warn("closing session: command_length {length}", length=length)
                out.append(_HEADER_PACK(16, C.generic_nack, S.ESME_RINVCMDLEN, 0))
                self._flush()
                self._buffer = bytearray()
                self.transport.loseConnection()
                return
            end = pos + length
            if end > size:
                break
            if cid == _SUBMIT_SM and fast_submit:
                registered = scan_submit_sm(buf, pos + 16, end)
                if registered >= 0 and (registered & 3 != 1 or not factory.dlr):
                    out.append(factory.fast_submit(seq))
                    pos = end
                    continue
            elif cid == _DELIVER_SM_RESP and (length == 16 or buf.find(0, pos + 16, pos + 81) == end - 1):
                entry = outstanding.get(seq)
                if entry is not None and entry[1] is None:
                    del outstanding[seq]
                    entry[2](entry[3], status)
                    pos = end
                    continue
            self._handle(bytes(buf[pos:end]), out)
            pos = end
            if self.state == "closed":
                return
        del buf[:pos]
        if self._queue and len(outstanding) < factory.window:
            self._pump()
        if out:
            self._flush()

    def _flush(self):
        # Cleared in place: dataReceived holds the same list while it works.
        out = self._pending
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            self._write(data)

    def _handle(self, data, out):
        try:
            request = smpp_pdu.decode(data)
        except smpp_pdu.PduError as e:
            self._log.info("malformed PDU: {error}", error=str(e))
            cid, seq = e.command_id, e.sequence_number or 0
            resp = (cid or 0) | RESPONSE_BIT
            if cid is not None and not cid & RESPONSE_BIT and resp in _RESPONSES:
                out.append(_HEADER_PACK(16, resp, e.status, seq))
            elif cid is None or not cid & RESPONSE_BIT:
                out.append(_HEADER_PACK(16, C.generic_nack, e.status, seq))
            return
        cid = request.command_id
        if cid & RESPONSE_BIT:
            self._on_response(request)
            return
        handler = self._handlers.get(cid)
        if handler is None:
            out.append(_HEADER_PACK(16, C.generic_nack, S.ESME_RINVCMDID, request.sequence_number))
            return
        handler(request, out)

    def _respond(self, out, request, status=0, **params):
        out.append(smpp_pdu.encode(request.response(status, **params)))

    def _on_bind(self, request, out):
        resp_id = request.command_id | RESPONSE_BIT
        seq = request.sequence_number
        if self.state not in ("open", "outbound"):
            out.append(_HEADER_PACK(16, resp_id, S.ESME_RALYBND, seq))
            return
        status = self.factory.check_credentials(request.params["system_id"], request.params["password"])
        if status:
            out.append(_HEADER_PACK(16, resp_id, status, seq))
            return
        self.state = _BIND_STATES[request.command_id]
        self.system_id = request.params["system_id"]
        resp = smpp_pdu.make(resp_id, seq, system_id=self.factory.server_name,
                             tlvs={"sc_interface_version": INTERFACE_VERSION_34})
        out.append(smpp_pdu.encode(resp))
        self.factory.bound(self)

    def _on_enquire_link(self, request, out):
        out.append(_HEADER_PACK(16, C.enquire_link_resp, 0, request.sequence_number))

    def _on_unbind(self, request, out):
        out.append(_HEADER_PACK(16, C.unbind_resp, 0, request.sequence_number))
        self._flush()
        self.state = "closed"
        self.factory.session_ended(self)
        self.transport.loseConnection()

    def _submit_allowed(self, request, out):
        if self.state not in TRANSMITTER_STATES:
            out.append(_HEADER_PACK(16, request.command_id | RESPONSE_BIT, S.ESME_RINVBNDSTS,
                                    request.sequence_number))
            return False
        return True

    def _on_submit_sm(self, request, out):
        if not self._submit_allowed(request, out):
            return
        factory = self.factory
        if factory.should_throttle():
            out.append(_HEADER_PACK(16, C.submit_sm_resp, S.ESME_RTHROTTLED, request.sequence_number))
            return
        message_id = factory.accept_submit(request, self)
        raw = message_id.encode("ascii")
        out.append(_HEADER_PACK(17 + len(raw), C.submit_sm_resp, 0, request.sequence_number) + raw + b"\0")

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
            out.append(_HEADER_PACK(16, C.query_sm_resp, S.ESME_RQUERYFAIL, request.sequence_number))
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
            return d
        self._queue.append((None, request, d, None, None))
        self._pump()
        self._flush()
        return d

    @property
    def backlog(self):
        """
        @return: requests waiting for room in the window (not yet sent).
        """
        return len(self._queue)

    def send_raw(self, command_id, body, callback, arg):
        """
        Queue a request given as its encoded body, honouring the factory's
        window; nothing is written until L{flush} (so a burst goes out in
        one write).  No Deferred, no timer per request.

        @param command_id: the request's command_id (e.g. deliver_sm).
        @param body: the encoded body (everything after the header).
        @param callback: called as C{callback(arg, result)} exactly once;
            C{result} is the response's command_status (int), or a
            L{ResponseTimeout} / C{ConnectionLost} instance.
        @param arg: passed to C{callback}.
        """
        if self.state == "closed":
            callback(arg, error.ConnectionLost("SMPP session closed"))
            return
        self._queue.append((command_id, body, None, callback, arg))

    def flush(self):
        """
        Write the requests queued by L{send_raw} that the window admits.
        """
        if self.state == "closed":
            return
        self._pump()
        self._flush()

    def _pump(self):
        queue, outstanding, out = self._queue, self._outstanding, self._pending
        window = self.factory.window
        if not queue or len(outstanding) >= window or self.state == "closed":
            return
        deadline = self.factory.clock.seconds() + self.factory.response_timeout
        while queue and len(outstanding) < window:
            cid, body, d, fn, arg = queue.popleft()
            self._sequence = seq = self._sequence % 0x7FFFFFFF + 1
            outstanding[seq] = (deadline, d, fn, arg)
            if cid is None:
                body.sequence_number = seq
                out.append(smpp_pdu.encode(body))
            else:
                out.append(_HEADER_PACK(16 + len(body), cid, 0, seq))
                out.append(body)
        if self._timer is None:
            self._timer = self.factory.clock.callLater(self.factory.response_timeout, self._expire)

    def _expire(self):
        """
        The one response timer: fail every request past its deadline (the
        map is in sending order, so they come first), re-arm for the next.
        """
        self._timer = None
        outstanding = self._outstanding
        now = self.factory.clock.seconds()
        expired = []
        for seq, entry in outstanding.items():
            if entry[0] > now:
                break
            expired.append(seq)
        for seq in expired:
            _, d, fn, arg = outstanding.pop(seq)
            self._fail(d, fn, arg, ResponseTimeout("no response to sequence_number %d" % (seq,)))
        if self.state == "closed":
            return
        if outstanding:
            first = outstanding[next(iter(outstanding))][0]
            self._timer = self.factory.clock.callLater(max(0.0, first - now), self._expire)
        self._pump()
        self._flush()

    def _on_response(self, response):
        entry = self._outstanding.pop(response.sequence_number, None)
        if entry is None:
            self._log.info("unexpected {command} seq {seq}", command=response.command,
                           seq=response.sequence_number)
            return
        _, d, fn, arg = entry
        if d is not None:
            d.callback(response)
        else:
            fn(arg, response.command_status)
