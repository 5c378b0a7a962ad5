# -*- test-case-name: tests.test_sim_smsc -*-
"""
A fast simulated SMSC for demos, tests and benchmarks.

L{SimulatedSMSC} is a C{ServerFactory}: listen on it with any stream
endpoint.  ESMEs bind (transmitter, receiver or transceiver), submit
(submit_sm, submit_multi, data_sm), query and keep the link alive; the
simulator answers with increasing message ids, optionally injects
ESME_RTHROTTLED every Nth submit_sm, sends delivery receipts and
mobile-originated deliver_sm at a configured rate to receiver-capable
binds, and can connect out to send an outbind.  It keeps counters and
(optionally) every received submit_sm.  All timers use the injected clock.

The session itself is L{gwsms.sim.session.SmscProtocol}.
"""

import time
from collections import OrderedDict, deque

from twisted.internet import defer, protocol, task
from twisted.logger import Logger

from gwsms.sim.session import RECEIVER_STATES, NoReceiverError, ResponseTimeout, SmscProtocol
from gwsms.smpp import pdu as smpp_pdu
from gwsms.smpp.constants import ESM_CLASS_DELIVERY_RECEIPT, CommandId, CommandStatus, MessageState

S = CommandStatus
_HEADER_PACK = smpp_pdu.HEADER.pack
_SUBMIT_SM_RESP = int(CommandId.submit_sm_resp)
_DELIVER_SM = int(CommandId.deliver_sm)
_COUNTERS = ("binds", "bind_failures", "submits", "throttled", "dlr_sent", "mo_sent", "mo_acked", "mo_failed")


def format_receipt(message_id, submitted, done, text, stat="DELIVRD", err=0):
    """
    The de-facto standard delivery receipt text (SMPP 3.4 appendix B).

    @param message_id: the message id returned in submit_sm_resp.
    @param submitted: submit time, POSIX seconds.
    @param done: completion time, POSIX seconds.
    @param text: the original short_message (bytes); the first 20 octets
        are quoted.
    @return: the receipt as bytes.
    """
    fmt = "%y%m%d%H%M"
    return (
        "id:%s sub:001 dlvrd:%03d submit date:%s done date:%s stat:%s err:%03d text:"
        % (
            message_id,
            1 if stat == "DELIVRD" else 0,
            time.strftime(fmt, time.gmtime(submitted)),
            time.strftime(fmt, time.gmtime(done)),
            stat,
            err,
        )
    ).encode("ascii") + bytes(text[:20])


class SimulatedSMSC(protocol.ServerFactory):
    """
    Factory and controller of the simulated SMSC.

    @ivar counters: dict of C{binds, bind_failures, submits, throttled,
        dlr_sent, mo_sent, mo_acked, mo_failed}.
    @ivar received: received submit_sm / submit_multi / data_sm PDUs (if
        recording).
    @ivar sessions: open L{SmscProtocol}s.
    """

    protocol = SmscProtocol
    _log = Logger()

    def __init__(self, clock, system_id=None, password=None, dlr=False, dlr_delay=0.0, mo_rate=0,
                 mo_source="4915100000001", mo_dest="12345", throttle_every=0, record=True,
                 record_limit=None, message_id_format="hex", window=10, response_timeout=30.0,
                 server_name="gwsms-sim", max_command_length=65536, history=10000):
        """
        @param clock: an C{IReactorTime}.
        @param system_id: required system_id, or L{None} to accept any.
        @param password: required password, or L{None} to accept any.
        @param dlr: send delivery receipts for submits asking for one.
        @param dlr_delay: seconds between submit and its receipt.
        @param mo_rate: mobile-originated deliver_sm per second (0: none).
        @param mo_source: source_addr of MO messages.
        @param mo_dest: destination_addr of MO messages.
        @param throttle_every: answer every Nth submit_sm ESME_RTHROTTLED
            (0: never).
        @param record: keep received submits in L{received}.
        @param record_limit: keep at most this many (oldest dropped).
        @param message_id_format: C{"hex"} or C{"decimal"}.
        @param window: outstanding deliver_sm per session.
        @param response_timeout: seconds to wait for a deliver_sm_resp.
        @param server_name: system_id in bind responses.
        @param max_command_length: larger PDUs close the session.
        @param history: message states kept for query_sm.
        """
        if message_id_format not in ("hex", "decimal"):
            raise ValueError("message_id_format must be 'hex' or 'decimal'")
        if mo_rate < 0 or throttle_every < 0 or window < 1:
            raise ValueError("mo_rate and throttle_every must be >= 0, window >= 1")
        self.clock = clock
        self.system_id = system_id
        self._password = password
        self.dlr = dlr
        self.dlr_delay = dlr_delay
        self.mo_rate = mo_rate
        self.mo_source = mo_source
        self.mo_dest = mo_dest
        self.throttle_every = throttle_every
        self.record = record
        self.window = window
        self.response_timeout = response_timeout
        self.server_name = server_name
        self.max_command_length = max_command_length
        self._id_format = "%08x" if message_id_format == "hex" else "%d"
        self._id_base = 16 if message_id_format == "hex" else 10
        self._id_resp = self._id_format.encode("ascii") + b"\0"
        self.counters = dict.fromkeys(_COUNTERS, 0)
        self.received = deque(maxlen=record_limit) if record_limit else []
        self.sessions = []
        self._next_id = 0
        self._submit_attempts = 0
        # Accepted ids are ENROUTE while among the last `history` ones;
        # final states (receipts sent) are kept here, also `history` at most.
        self._final = OrderedDict()
        self._history = history
        self._mo_prefixes = {}
        self._dlr_queue = deque()
        self._dlr_timer = None
        self._submit_waiters = []
        self._bind_waiters = []
        self._receiver_index = 0
        self._mo_loop = None
        self._mo_credit = 0.0
        self._mo_last = None
        self._mo_counter = 0

    def __repr__(self):
        return "<SimulatedSMSC system_id=%r sessions=%d>" % (self.system_id, len(self.sessions))

    # -- life cycle ----------------------------------------------------------

    def startFactory(self):
        self.start()

    def stopFactory(self):
        self.stop()

    def start(self):
        """
        Start the MO generator (if C{mo_rate}); called by C{startFactory}.
        """
        if self.mo_rate and self._mo_loop is None:
            self._mo_loop = task.LoopingCall(self._mo_tick)
            self._mo_loop.clock = self.clock
            self._mo_last = self.clock.seconds()
            interval = max(0.01, min(1.0, 1.0 / self.mo_rate))
            self._mo_loop.start(interval, now=False).addErrback(
                lambda f: self._log.failure("MO generator stopped", f)
            )

    def stop(self):
        """
        Stop timers and close every session.
        """
        if self._mo_loop is not None and self._mo_loop.running:
            self._mo_loop.stop()
        self._mo_loop = None
        if self._dlr_timer is not None and self._dlr_timer.active():
            self._dlr_timer.cancel()
        self._dlr_timer = None
        self._dlr_queue.clear()
        for session in list(self.sessions):
            session.transport.loseConnection()

    def build_outbind_protocol(self, system_id="", password=""):
        """
        A protocol that sends outbind once connected and then serves the
        ESME's bind_receiver.

        @return: an L{SmscProtocol}.
        """
        proto = SmscProtocol(outbind=(system_id, password))
        proto.factory = self
        return proto

    def outbind(self, endpoint, system_id="", password=""):
        """
        Connect to an ESME and send outbind.

        @param endpoint: an C{IStreamClientEndpoint} of the ESME.
        @return: Deferred firing with the L{SmscProtocol} once connected.
        """
        return endpoint.connect(_OutbindFactory(self, system_id, password))

    def session_started(self, session):
        self.sessions.append(session)

    def session_ended(self, session):
        if session in self.sessions:
            self.sessions.remove(session)

    # -- policy --------------------------------------------------------------

    def check_credentials(self, system_id, password):
        """
        @return: 0 to accept a bind, else the status to refuse it with.
        """
        if self.system_id is not None and system_id != self.system_id:
            self.counters["bind_failures"] += 1
            return S.ESME_RBINDFAIL
        if self._password is not None and password != self._password:
            self.counters["bind_failures"] += 1
            return S.ESME_RINVPASWD
        return 0

    def bound(self, session):
        self.counters["binds"] += 1
        waiters, self._bind_waiters = self._bind_waiters, []
        for n, d in waiters:
            if self.counters["binds"] >= n:
                d.callback(session)
            else:
                self._bind_waiters.append((n, d))
        if session.state in RECEIVER_STATES and self._dlr_queue:
            self._schedule_dlr(0)

    def should_throttle(self):
        if not self.throttle_every:
            return False
        self._submit_attempts += 1
        if self._submit_attempts % self.throttle_every == 0:
            self.counters["throttled"] += 1
            return True
        return False

    def fast_submit(self, sequence_number):
        """
        Accept a well-formed submit_sm that needs nothing but a message id
        (not recorded, no receipt): the lean lane of
        L{SmscProtocol.dataReceived}.

        @return: the encoded submit_sm_resp (or its ESME_RTHROTTLED).
        """
        if self.throttle_every and self.should_throttle():
            return _HEADER_PACK(16, _SUBMIT_SM_RESP, S.ESME_RTHROTTLED, sequence_number)
        self._next_id = n = self._next_id + 1
        self.counters["submits"] += 1
        if self._submit_waiters:
            self._check_submit_waiters()
        raw = self._id_resp % (n,)
        return _HEADER_PACK(16 + len(raw), _SUBMIT_SM_RESP, 0, sequence_number) + raw

    def accept_submit(self, request, session):
        """
        Record an accepted submit and schedule its receipt.

        @return: the new message id (str).
        """
        self._next_id += 1
        message_id = self._id_format % (self._next_id,)
        counters = self.counters
        counters["submits"] += 1
        if self.record:
            self.received.append(request)
        now = self.clock.seconds()
        if self.dlr and request.params["registered_delivery"] & 0x03 == 1:
            self._dlr_queue.append((now + self.dlr_delay, message_id, now, request, session.system_id))
            if self._dlr_timer is None:
                self._schedule_dlr(self.dlr_delay)
        if self._submit_waiters:
            self._check_submit_waiters()
        return message_id

    def message_state(self, message_id):
        """
        @return: C{(message_state, final_date)} or L{None} if unknown.
        """
        known = self._final.get(message_id)
        if known is not None:
            return known
        try:
            n = int(message_id, self._id_base)
        except ValueError:
            return None
        if self._next_id - self._history < n <= self._next_id and self._id_format % (n,) == message_id:
            return (MessageState.ENROUTE, "")
        return None

    # -- waiting (for tests) -------------------------------------------------

    def wait_for_submits(self, n):
        """
        @return: Deferred firing with the submits counter once at least C{n}
            submits were accepted.
        """
        d = defer.Deferred()
        self._submit_waiters.append((n, d))
        self._check_submit_waiters()
        return d

    def _check_submit_waiters(self):
        count = self.counters["submits"]
        ready = [w for w in self._submit_waiters if count >= w[0]]
        if ready:
            self._submit_waiters = [w for w in self._submit_waiters if count < w[0]]
            for _, d in ready:
                d.callback(count)

    def wait_for_binds(self, n):
        """
        @return: Deferred firing with the session once at least C{n} binds
            succeeded (immediately with the last bound session if so).
        """
        if self.counters["binds"] >= n:
            bound = [s for s in self.sessions if s.state.startswith("bound")]
            return defer.succeed(bound[-1] if bound else None)
        d = defer.Deferred()
        self._bind_waiters.append((n, d))
        return d

    # -- deliver_sm: receipts and MO -----------------------------------------

    def receiver(self, system_id=None):
        """
        Pick a receiver-capable session (round robin), preferring
        C{system_id}.

        @return: an L{SmscProtocol} or L{None}.
        """
        receivers = [s for s in self.sessions if s.state in RECEIVER_STATES]
        if not receivers:
            return None
        if system_id is not None:
            preferred = [s for s in receivers if s.system_id == system_id]
            receivers = preferred or receivers
        self._receiver_index = (self._receiver_index + 1) % len(receivers)
        return receivers[self._receiver_index]

    def has_receiver(self):
        """
        @return: whether a receiver-capable bind is open (without moving
            the round robin of L{receiver}).
        """
        return any(s.state in RECEIVER_STATES for s in self.sessions)

    def send_deliver(self, request, system_id=None):
        """
        Send a deliver_sm to a receiver-capable session.

        @return: Deferred firing with the resp's command_status; fails with
            L{NoReceiverError}, L{ResponseTimeout} or C{ConnectionLost}.
        """
        session = self.receiver(system_id)
        if session is None:
            return defer.fail(NoReceiverError("no receiver-capable bind"))
        return session.send_request(request).addCallback(lambda resp: resp.command_status)

    def send_mo(self, source, dest, text_bytes, data_coding=0, tlvs=None):
        """
        Send one mobile-originated message as deliver_sm.

        @param source: source_addr.
        @param dest: destination_addr.
        @param text_bytes: short_message (up to 254 octets; longer goes in
            message_payload).
        @param data_coding: data_coding.
        @param tlvs: extra TLVs.
        @return: Deferred firing with the deliver_sm_resp command_status.
        """
        tlvs = dict(tlvs or {})
        if len(text_bytes) > 254:
            tlvs["message_payload"] = bytes(text_bytes)
            text_bytes = b""
        request = smpp_pdu.make(
            "deliver_sm", source_addr_ton=1, source_addr_npi=1, source_addr=source, dest_addr_ton=0,
            dest_addr_npi=1, destination_addr=dest, data_coding=data_coding, short_message=bytes(text_bytes),
            tlvs=tlvs,
        )
        session = self.receiver()
        if session is None:
            return defer.fail(NoReceiverError("no receiver-capable bind"))
        self.counters["mo_sent"] += 1
        d = session.send_request(request)
        d.addCallbacks(self._mo_answered, self._mo_failed)
        return d

    def send_mo_many(self, texts, callback=None, arg=None, source=None, dest=None, data_coding=0):
        """
        Send a burst of mobile-originated deliver_sm (the lean lane: the
        body is built from a cached prefix, no L{smpp_pdu.Pdu}, Deferred or
        timer per message; one write per session).

        @param texts: the short_message of each (bytes, at most 254 octets).
        @param callback: called as C{callback(arg, result)} once per
            message: the deliver_sm_resp command_status (int) or a
            L{ResponseTimeout} / C{ConnectionLost} instance; L{None}: only
            count (and log failures).
        @param arg: passed to C{callback}.
        @param source: source_addr (default C{mo_source}).
        @param dest: destination_addr (default C{mo_dest}).
        @param data_coding: data_coding.
        @return: the number of messages sent (0 without a receiver-capable bind).
        @raise ValueError: a text longer than 254 octets.
        """
        receivers = [s for s in self.sessions if s.state in RECEIVER_STATES]
        if not receivers or not texts:
            return 0
        if max(map(len, texts)) > 254:
            raise ValueError("MO text longer than 254 octets (use send_mo)")
        prefix = self._mo_prefix(self.mo_source if source is None else source,
                                 self.mo_dest if dest is None else dest, data_coding)
        burst = (callback, arg)
        done = self._mo_done
        count, index = len(receivers), self._receiver_index
        if count == 1:
            send = receivers[0].send_raw
            for text in texts:
                send(_DELIVER_SM, prefix + bytes((len(text),)) + text, done, burst)
            index = (index + len(texts)) % count
        else:
            for text in texts:
                index = (index + 1) % count
                receivers[index].send_raw(_DELIVER_SM, prefix + bytes((len(text),)) + text, done, burst)
        self._receiver_index = index
        self.counters["mo_sent"] += len(texts)
        for session in receivers:
            session.flush()
        return len(texts)

    def _mo_prefix(self, source, dest, data_coding):
        key = (source, dest, data_coding)
        prefix = self._mo_prefixes.get(key)
        if prefix is None:
            encoded = smpp_pdu.encode(smpp_pdu.make(
                "deliver_sm", source_addr_ton=1, source_addr_npi=1, source_addr=source, dest_addr_ton=0,
                dest_addr_npi=1, destination_addr=dest, data_coding=data_coding, short_message=b""))
            prefix = encoded[16:-1]  # the body up to sm_length
            if len(self._mo_prefixes) >= 64:
                self._mo_prefixes.clear()
            self._mo_prefixes[key] = prefix
        return prefix

    def _mo_done(self, burst, result):
        counters = self.counters
        if result.__class__ is int:
            counters["mo_acked" if result == 0 else "mo_failed"] += 1
        else:
            counters["mo_failed"] += 1
        callback, arg = burst
        if callback is not None:
            callback(arg, result)
        elif result.__class__ is not int:
            self._log.warn("MO deliver_sm failed: {error}", error=str(result))

    def _mo_answered(self, response):
        status = response.command_status
        self.counters["mo_acked" if status == 0 else "mo_failed"] += 1
        return status

    def _mo_failed(self, failure):
        self.counters["mo_failed"] += 1
        return failure

    def _mo_tick(self):
        try:
            now = self.clock.seconds()
            self._mo_credit = min(self._mo_credit + (now - self._mo_last) * self.mo_rate,
                                  max(1.0, self.mo_rate))
            self._mo_last = now
            if not self.has_receiver():
                return
            count = int(self._mo_credit + 1e-9)
            if count < 1:
                return
            self._mo_credit -= count
            first = self._mo_counter + 1
            self._mo_counter += count
            self.send_mo_many([b"MO message %d" % (n,) for n in range(first, first + count)])
        except Exception:
            self._log.failure("MO generator tick failed")

    def _log_send_failure(self, failure, what):
        self._log.warn("{what} deliver_sm failed: {error}", what=what, error=failure.getErrorMessage())

    def _schedule_dlr(self, delay):
        if self._dlr_timer is not None and self._dlr_timer.active():
            self._dlr_timer.cancel()
        self._dlr_timer = self.clock.callLater(max(0.0, delay), self._flush_dlrs)

    def _flush_dlrs(self):
        self._dlr_timer = None
        now = self.clock.seconds()
        queue = self._dlr_queue
        try:
            while queue and queue[0][0] <= now:
                if self.receiver() is None:
                    return  # flushed again when a receiver binds
                _, message_id, submitted, request, system_id = queue.popleft()
                self._send_receipt(message_id, submitted, now, request, system_id)
        except Exception:
            self._log.failure("sending delivery receipts failed")
        if queue:
            self._schedule_dlr(queue[0][0] - now)

    def _send_receipt(self, message_id, submitted, now, request, system_id):
        params = request.params
        text = params.get("short_message") or request.tlvs.get("message_payload", b"")
        receipt = smpp_pdu.make(
            "deliver_sm",
            source_addr_ton=params.get("dest_addr_ton", 0),
            source_addr_npi=params.get("dest_addr_npi", 0),
            source_addr=params.get("destination_addr", ""),
            dest_addr_ton=params["source_addr_ton"],
            dest_addr_npi=params["source_addr_npi"],
            destination_addr=params["source_addr"],
            esm_class=ESM_CLASS_DELIVERY_RECEIPT,
            short_message=format_receipt(message_id, submitted, now, text),
            tlvs={"receipted_message_id": message_id, "message_state": MessageState.DELIVERED},
        )
        final = self._final
        final[message_id] = (MessageState.DELIVERED, time.strftime("%y%m%d%H%M%S", time.gmtime(now)) + "000+")
        if len(final) > self._history:
            final.popitem(last=False)
        self.counters["dlr_sent"] += 1
        self.send_deliver(receipt, system_id).addErrback(self._log_send_failure, "receipt")


class _OutbindFactory(protocol.ClientFactory):
    """
    Builds the outbind sessions of one L{SimulatedSMSC}.
    """

    noisy = False  # no log line per connection / start

    def __init__(self, smsc, system_id, password):
        self._smsc = smsc
        self._credentials = (system_id, password)

    def buildProtocol(self, addr):
        return self._smsc.build_outbind_protocol(*self._credentials)


__all__ = ["SimulatedSMSC", "SmscProtocol", "NoReceiverError", "ResponseTimeout", "format_receipt"]
