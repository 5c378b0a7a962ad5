# -*- test-case-name: tests.test_core_fastmt -*-
"""
The SIP -> SMPP hot path ("MT lane").

Most traffic is the same shape: a MESSAGE over UDP with a plain-text body
from a trusted proxy, one SMS long, routed to a bound SMSC.  For that shape
the full machinery (parsing every header into objects, a server
transaction with its timers, the UAS, L{gwsms.core.mt.MtFlow} and
L{gwsms.core.mtjob.MtJob} with their Deferreds) costs about ten times the
work itself.  L{FastMtLane} sits in L{gwsms.sip.transport.TransportLayer}'s
C{fast_paths} and does the same job on the raw datagram:

  1. scan the head once for the headers it needs (Via, From, To, Call-ID,
     CSeq, Content-Type, Content-Length, Max-Forwards, Require,
     Content-Encoding); anything it does not handle exactly like the full
     path (folded headers, a To tag, CPIM, another charset, a multi-part
     text, authentication needed, no bound SMSC, overload, ...) is
     I{declined} and goes through the full parser, transaction layer and
     UAS unchanged;
  2. absorb retransmissions (RFC 3261 17.2.3 matching on the top Via,
     which carries the branch and sent-by, and the method), re-sending the
     final answer once there is one;
  3. store the message with the same group-committed write as the full
     path (L{gwsms.store.messages}: duplicate recognition by Call-ID, CSeq,
     From tag and sender; the row, its part, the dedup key);
  4. submit the C{submit_sm} (L{gwsms.smpp.esme.ESMEProtocol.submit_then}:
     the same window, rate and throttling), record the SMSC's message id
     (same write as the full path) and answer 202;
  5. hand every other outcome (a temporary SMSC error, a timeout, a lost
     connection) to an L{gwsms.core.mtjob.MtJob}, exactly as if the full
     path had met it, so retries, C{down_wait}, C{queue_when_down} and the
     answer table stay in one place.

A declined transaction is remembered as declined, so its retransmissions
go to the full path too.  Transactions are kept two generations of Timer J
(64*T1) in two dicts rotated by one timer: nothing outlives it by more than
one period, and there is no timer per message.  A completed transaction
keeps only its status line; a retransmission is answered from its own
(identical) header fields.  The transactions still waiting for their answer
are kept apart, in two small dicts rotated the same way, so that the two
big ones (a generation at 8,000/s holds a quarter of a million keys) hold
only octets and the "declined" marker: CPython's collector does not track
a dict that never held an object it tracks, so it never walks them (in
C{make bench}'s 8,000/s step a young collection that did took 5-10 ms).
"""

from __future__ import annotations

import collections
import os
import re
import socket
import struct
from functools import partial

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from gwsms.core import numbers, text
from gwsms.core.mtjob import ACCEPTED, TEMPORARY, coding_preference, on_link, \
    permanent_answer, split_for, split_options
from gwsms.sip.interfaces import SipAnswer
from gwsms.sip.rawsip import CALL_ID, CENC, CLEN, CSEQ, CTYPE, FROM, MAXF, PLAIN_TEXT, REQUIRE, \
    TO, TO_TAG, VIA, name_addr, response_echo, scan_request, status_line
from gwsms.sip.uri import parse_uri
from gwsms.smpp.constants import CommandId
from gwsms.smpp.pdu import HEADER
from gwsms.store.batch import Batch
from gwsms.store.lane import insert_many, submitted_many
from gwsms.store.messages import MT, _update, mt_dedup_key

#: texts whose octets are the same in ASCII and in the GSM 03.38 default
#: alphabet (no @ $ _ ` and none of the extension table's [ \\ ] ^ { | } ~)
_GSM_AS_ASCII = re.compile(rb"[A-Za-z0-9 !\"#%&'()*+,\-./:;<=>?\r\n]*\Z").match
#: a From value in its usual form, C{<sip:...>;tag=...} (printable ASCII,
#: no space in the URI or tag): what L{name_addr} gives for it, read at once
_PLAIN_FROM = re.compile(rb"[ \t]*<(sip:[!-;=?-~]*)>[ \t]*;[ \t]*tag=([!-:<-~]+)[ \t]*\Z").match
#: a sip: URI of a plain number (C{+} and up to 20 ASCII digits, no
#: parameter): what L{_user} and L{_number} give for it, read at once
_NUMBER_URI = re.compile(r"sip:(\+?([0-9]{1,%d}))@[^;]*\Z" % numbers.MAX_ADDR_LENGTH).match
_DECLINED = object()  # a transaction handed to the full path
_ACCEPTED_LINE = status_line(ACCEPTED)
#: the keys of a lane transaction's C{extras} in an L{MtJob}'s row
_EXTRAS = ("sip_from_user", "dest_user", "_source", "_dest", "_candidates", "_segments")
_SUBMIT_SM = int(CommandId.submit_sm)
_U32 = struct.Struct("=I").unpack
#: Linux socket option: the socket's memory accounting (first: bytes queued)
_SO_MEMINFO = getattr(socket, "SO_MEMINFO", 55)
_TAG_SALT = os.urandom(4).hex().encode("ascii")


class _SubmitRequest:
    """What the SMPP session needs of a request it sends (no Pdu object)."""

    __slots__ = ("sequence_number",)
    command_id = _SUBMIT_SM
    command = "submit_sm"

    def __init__(self):
        self.sequence_number = 0


def encode_submit_sm(source, dest, esm_class: int, registered_delivery: int,
                     data_coding: int, short_message: bytes) -> bytes:
    """
    A C{submit_sm} without TLVs, every other field at its default, as
    L{gwsms.smpp.pdu.encode} makes it (sequence_number 0).

    @param source: the source L{numbers.Address}.
    @param dest: the destination L{numbers.Address}.
    @raise ValueError: an address or the text does not fit its field.
    """
    src = source.addr.encode("latin-1")
    dst = dest.addr.encode("latin-1")
    if len(src) > 20 or len(dst) > 20 or len(short_message) > 254:
        raise ValueError("submit_sm field too long")
    try:
        # service_type, source, destination, esm_class, protocol_id,
        # priority_flag, schedule_delivery_time, validity_period,
        # registered_delivery, replace_if_present_flag, data_coding,
        # sm_default_msg_id, sm_length, short_message
        body = b"\x00%c%c%s\x00%c%c%s\x00%c\x00\x00\x00\x00%c\x00%c\x00%c%s" % (
            source.ton, source.npi, src, dest.ton, dest.npi, dst, esm_class,
            registered_delivery, data_coding, len(short_message), short_message)
    except OverflowError:
        raise ValueError("submit_sm field out of range (0..255)") from None
    return HEADER.pack(16 + len(body), _SUBMIT_SM, 0, 0) + body


class _Txn:
    """One MESSAGE on the lane, from the datagram to the answer."""

    __slots__ = ("key", "protocol", "target", "echo", "to_index", "record", "dedup", "extras",
                 "id", "link", "submit", "written", "others", "live")

    # L{gwsms.core.mt.MtFlow.duplicate_answer} treats a live lane transaction
    # like a job: a duplicate MESSAGE waits for the same answer
    @property
    def waiters(self) -> bool:
        """Whether the answer is still to come."""
        return self.echo is not None

    def add_waiter(self) -> defer.Deferred:
        d = defer.Deferred()
        if self.others is None:
            self.others = []
        self.others.append(d)
        return d


class _Inserts(Batch):
    """New messages to store, and the lane transactions they belong to."""

    __slots__ = ("owners",)

    def __init__(self):
        super().__init__()
        self.owners: list[_Txn] = []


class FastMtLane(service.Service):
    """
    The SIP -> SMPP hot path; a C{TransportLayer.fast_paths} handler.

    @ivar stats: C{taken} (MESSAGEs handled), C{declined} (handed to the
        full path), C{absorbed} (retransmissions), C{answered},
        C{handed_over} (outcomes given to an L{MtJob}).
    """

    _log = Logger()

    def __init__(self, clock, gateway, sip_config, smpp, trusted=(), t1: float = 0.5) -> None:
        """
        @param clock: C{IReactorTime}.
        @param gateway: the L{gwsms.core.gateway.Gateway} (its C{mt} flow
            and context: config, store, routing, links).
        @param sip_config: the C{[sip]} config (C{auth}).
        @param smpp: the L{gwsms.smpp.service.SmppService} (C{transmitter}).
        @param trusted: a container of source IPs that skip authentication
            (L{gwsms.sip.digest.TrustedSources}).
        @param t1: RFC 3261 T1; transactions are kept 64*T1 (Timer J) to
            absorb retransmissions.
        """
        self.clock = clock
        self.flow = gateway.mt
        self.ctx = gateway.mt.ctx
        self.auth = bool(getattr(sip_config, "auth", False))
        self.trusted = trusted
        self.smpp = smpp
        self.period = 64 * t1
        #: answered (status line), shed (status line) or declined
        #: (C{_DECLINED}) transactions, this generation and the one before;
        #: never an object the collector tracks (see the module docstring)
        self._txns: dict[bytes, object] = {}
        self._old: dict[bytes, object] = {}
        #: transactions waiting for their answer (L{_Txn}), this generation
        #: and the one before
        self._live: dict[bytes, _Txn] = {}
        self._live_old: dict[bytes, _Txn] = {}
        self._rotation = None
        self._inserts = self._submits = None
        self.stats = dict.fromkeys(("taken", "declined", "absorbed", "answered",
                                    "handed_over", "shed"), 0)
        config = self.ctx.config
        #: bytes waiting in the SIP UDP socket beyond which new MESSAGEs
        #: are answered 503 at once (0: off); see L{_check_overload}
        self.max_backlog = int(getattr(config, "max_backlog", 0) or 0)
        #: seconds the oldest taken MESSAGE may wait for its answer (0: off)
        self.max_delay = float(getattr(config, "max_delay", 0) or 0)
        self._inflight: collections.deque = collections.deque()
        self.shedding = False
        self._seen = 0
        self._shed_line = status_line(SipAnswer(
            503, "Service Unavailable (overloaded)",
            (("Retry-After", str(getattr(config, "retry_after", 60))),)))

    # -- life -------------------------------------------------------------
    def startService(self) -> None:
        """Start rotating the transaction generations."""
        service.Service.startService(self)
        if self._rotation is None:
            self._rotation = task.LoopingCall(self.rotate)
            self._rotation.clock = self.clock
            self._rotation.start(self.period, now=False)

    def stopService(self) -> None:
        service.Service.stopService(self)
        if self._rotation is not None and self._rotation.running:
            self._rotation.stop()
        self._rotation = None

    def rotate(self) -> None:
        """Forget the transactions of the generation before last."""
        self._old = self._txns
        self._txns = {}
        self._live_old = self._live
        self._live = {}

    def __len__(self) -> int:
        return len(self._txns) + len(self._old) + len(self._live) + len(self._live_old)

    # -- the datagram -----------------------------------------------------
    def __call__(self, protocol, data: bytes, addr) -> bool:
        """
        L{gwsms.sip.transport.TransportLayer.fast_paths} handler.

        @return: C{True} when the lane took the datagram.
        """
        scanned = scan_request(data, b"MESSAGE")
        if scanned is None:
            return False
        end, lines, request_line, vias, found = scanned
        top = found[VIA]
        key = top
        txns = self._txns
        state = txns.get(key)
        if state is None:
            state = self._old.get(key)
            if state is None:
                state = self._live.get(key)
                if state is None:
                    state = self._live_old.get(key)
        if state is not None:
            if state is _DECLINED:
                return False
            self.stats["absorbed"] += 1
            if state.__class__ is bytes:
                # completed: the same answer again, built from this copy
                echo, to_index, target = response_echo(lines, vias, found, addr)
                if echo is not None:
                    self._send(protocol, state, echo, to_index, key, target)
            return True
        # a new transaction
        if self.max_backlog or self.max_delay:
            self._seen += 1
            if not self._seen & 15 or self.shedding:
                self._check_overload(protocol)
            if self.shedding:
                echo, to_index, target = response_echo(lines, vias, found, addr)
                if echo is not None:
                    txns[key] = self._shed_line
                    self.flow.shed += 1
                    self.stats["shed"] += 1
                    self._send(protocol, self._shed_line, echo, to_index, key, target)
                    return True
        txn = self._prepare(data, end, lines, vias, found, top, addr, request_line[1])
        if txn is None:
            txns[key] = _DECLINED
            self.stats["declined"] += 1
            return False
        txn.key = key
        txn.protocol = protocol
        self._live[key] = txn
        self._inflight.append(txn)
        self.stats["taken"] += 1
        self.flow.pending += 1  # counted like the full path's stores (overload)
        record = txn.record
        store = self.ctx.store
        if store.owner is not None:
            record["owner"] = store.owner
        batch = self._inserts
        if batch is None or batch.sealed:
            batch = self._inserts = _Inserts()
            store.writer.write_batch(batch, partial(self._stored_batch, batch), insert_many,
                                     self.ctx.config.dedup_window)
        batch.append((record, txn.dedup, txn.written))
        batch.owners.append(txn)
        return True

    def _stored_batch(self, batch, ok: bool, results) -> None:
        for index, txn in enumerate(batch.owners):
            try:
                self.stored(txn, ok, results[index] if ok else results)
            except Exception:
                self._log.failure("mt lane: after storing a message")

    def _prepare(self, data, end, lines, vias, found, top, addr, ruri):
        """@return: a L{_Txn} ready to store, or C{None}: decline."""
        ctx = self.ctx
        config = ctx.config
        flow = self.flow
        if found[REQUIRE] is not None:
            return None
        maxf = found[MAXF]
        if maxf is not None and (not maxf.isdigit() or int(maxf) == 0):
            return None
        cenc = found[CENC]
        if cenc is not None and cenc.lower() != b"identity":
            return None
        ctype = found[CTYPE]
        charset = None if ctype is None else PLAIN_TEXT.get(ctype.replace(b" ", b"").lower())
        if charset is None:
            return None
        body = data[end + 4:]
        clen = found[CLEN]
        if clen is not None:
            if not clen.isdigit() or int(clen) > len(body):
                return None
            body = body[:int(clen)]
        host = addr[0]
        if self.auth and host not in self.trusted:
            return None
        if flow.pending + len(flow.active) >= config.max_pending or ctx.lag.overloaded():
            return None
        # header fields to copy into the answer
        echo, to_index, target = response_echo(lines, vias, found, addr)
        if echo is None:
            return None
        to_line = lines[found[TO]]
        if TO_TAG.search(to_line):
            return None  # in a dialog: the full path
        from_line = lines[found[FROM]]
        sender_uri, from_tag = _uri_and_tag(from_line[from_line.find(b":") + 1:])
        if sender_uri is None or not sender_uri.startswith("sip:"):
            return None
        if "%" in sender_uri:
            # stored (and in the dedup key) as the full path has it: parsed
            try:
                sender_uri = str(parse_uri(sender_uri))
            except Exception:
                return None
        try:
            ruri_text = ruri.decode("utf-8")
            if not ruri_text.startswith("sip:"):
                return None
            sender_user, source = _mapped(sender_uri, True)
            dest_user, dest = _mapped(ruri_text, False)
        except (numbers.AddressError, UnicodeDecodeError, ValueError):
            return None
        routing = ctx.routing
        candidates = routing.mt_candidates(dest.addr, source.addr)
        if not candidates:
            return None
        name = candidates[0]
        link = ctx.links.get(name)
        if link is None or self.smpp is None or self.smpp.transmitter(name) is None:
            return None
        method = split_options(link, config)[0]
        ref = flow.next_ref(method)
        try:
            body_text = body.decode(charset)
            if len(body) <= 160 and _GSM_AS_ASCII(body) is not None and \
                    coding_preference(link, body_text) == "gsm":
                # the same octets in ASCII and GSM 03.38 (and so in every
                # dc0_charset): what text.split gives for it, without it
                segments = [text.Segment(body, 0, {}, text.DC_DEFAULT, body_text)]
            else:
                segments = split_for(body_text, link, config, ref)
        except (UnicodeDecodeError, text.TextError, ValueError):
            return None
        if len(segments) != 1:
            return None  # long messages: the full path
        segment = segments[0]
        if segment.tlvs:
            return None
        registered = config.registered_delivery
        if routing.has_registered_delivery:
            route = routing.mt_route(dest.addr, source.addr, name)
            if route is not None and route.registered_delivery is not None:
                registered = route.registered_delivery
        if config.receipts == "text":
            registered = registered or 1
        try:
            sms_source = on_link(source, link.src_ton, link.src_npi)
            sms_dest = on_link(dest, link.dst_ton, link.dst_npi)
            encoded = encode_submit_sm(sms_source, sms_dest, segment.esm_class, registered,
                                       segment.data_coding, segment.short_message)
        except (ValueError, TypeError, UnicodeEncodeError):
            return None
        call_id_line = lines[found[CALL_ID]]
        call_id = call_id_line[call_id_line.find(b":") + 1:].strip().decode("utf-8", "replace")
        cseq_line = lines[found[CSEQ]]
        cseq = cseq_line[cseq_line.find(b":") + 1:].strip().decode("utf-8", "replace")
        if not cseq.endswith(" MESSAGE"):
            return None
        now = ctx.clock.seconds()
        txn = _Txn()
        txn.target = target
        txn.echo = echo
        txn.to_index = to_index
        txn.link = name
        txn.submit = encoded
        txn.id = 0
        txn.others = None
        txn.live = True
        txn.written = now
        txn.record = {
            "direction": MT, "state": "queued",
            "source_addr": source.addr, "source_ton": source.ton, "source_npi": source.npi,
            "dest_addr": dest.addr, "dest_ton": dest.ton, "dest_npi": dest.npi,
            "smsc": name, "sip_from": sender_uri, "sip_to": ruri_text, "call_id": call_id,
            "body": body_text, "content_type": "text/plain",
            "data_coding": segment.data_coding, "concat_ref": ref, "parts_total": 1,
            "registered_delivery": registered, "expires_at": now + config.mt_ttl,
            "next_attempt_at": now + config.down_wait + 1.0,
        }
        txn.dedup = mt_dedup_key(call_id, cseq, from_tag, sender_uri)
        # what an MtJob needs besides the row (L{_row}), if it takes over
        txn.extras = (sender_user, dest_user, source, dest, candidates, (name, segments))
        return txn

    def _check_overload(self, protocol) -> None:
        """
        Overload, by two measures of the backlog:

          - what waits in the socket's receive buffer (Linux
            C{SO_MEMINFO}, the kernel's own accounting, ~1.3 KiB per small
            datagram; C{max_backlog} bytes): past the knee the backlog is
            there, not in the loop;
          - how long the oldest MESSAGE the lane took has been waiting for
            its answer (C{max_delay} seconds): the queues after the
            socket (the commit, the SMPP window).

        From either limit until both are below half of theirs, new
        MESSAGEs are answered 503 at once: the gateway keeps carrying what
        it can, where answers that come too late would be retransmitted
        and collapse it.
        """
        queued = 0
        if self.max_backlog:
            sock = getattr(protocol.transport, "socket", None)
            try:
                queued = _U32(sock.getsockopt(socket.SOL_SOCKET, _SO_MEMINFO, 4))[0]
            except (OSError, struct.error, AttributeError, TypeError):
                self.max_backlog = 0  # not Linux: no such measure
        age = 0.0
        inflight = self._inflight
        while inflight and not inflight[0].live:
            inflight.popleft()
        if inflight and self.max_delay:
            age = self.clock.seconds() - inflight[0].written
        if self.shedding:
            if (queued * 2 < self.max_backlog or not self.max_backlog) and \
                    (age * 2 < self.max_delay or not self.max_delay):
                self.shedding = False
                self._log.info("SIP backlog down ({queued} bytes waiting, oldest answer "
                               "{age:.3f} s): taking MESSAGEs again ({shed} answered 503 so far)",
                               queued=queued, age=age, shed=self.stats["shed"])
        elif (self.max_backlog and queued > self.max_backlog) or \
                (self.max_delay and age > self.max_delay):
            self.shedding = True
            self._log.warn("overload: {queued} bytes waiting in the SIP socket, oldest answer "
                           "due for {age:.3f} s ([gateway] max_backlog / max_delay): answering "
                           "new MESSAGEs 503 until both halve", queued=queued, age=age)

    # -- stored, submitted ------------------------------------------------
    def stored(self, txn: _Txn, ok: bool, result) -> None:
        self.flow.pending -= 1
        if not ok:
            self._log.failure("storing an MT message failed", result)
            self._answer(txn, SipAnswer(503, "Service Unavailable (message store)",
                                        (("Retry-After", str(self.ctx.config.retry_after)),)))
            return
        message_id, existing = result
        if existing is not None:
            answer = self.flow.duplicate_answer(message_id, existing)
            if isinstance(answer, SipAnswer):
                self._answer(txn, answer)
            else:
                answer.addCallback(lambda a: self._answer(txn, a))
                answer.addErrback(lambda f: self._log.failure("mt duplicate answer", f))
            return
        txn.id = txn.record["id"] = message_id
        self.flow.active[message_id] = txn
        if self.ctx.config.sip_reply != "submitted":
            self._answer(txn, ACCEPTED)
        proto = self.smpp.transmitter(txn.link)
        if proto is None or not proto.submit_then(txn_submitted(self, txn), _SubmitRequest(),
                                                  txn.submit):
            self._hand_over(txn)

    def submitted(self, txn: _Txn, outcome) -> None:
        if isinstance(outcome, Failure):
            self._hand_over(txn)
            return
        status = outcome.status
        if status == 0:
            ctx = self.ctx
            now = ctx.clock.seconds()
            txn.written = now
            batch = self._submits
            if batch is None or batch.sealed:
                batch = self._submits = Batch()
                ctx.store.writer.write_batch(batch, _logged_write, submitted_many)
            batch.append((txn.id, txn.link, outcome.message_id or "", now,
                          bool(txn.record["registered_delivery"])))
            self._end(txn)
            if txn.echo is not None:
                self._answer(txn, ACCEPTED)
        elif status in TEMPORARY:
            self._hand_over(txn)
        else:
            answer = permanent_answer(status)
            ctx = self.ctx
            now = ctx.clock.seconds()
            txn.written = now
            ctx.store.writer.write_then(
                _logged_write, _update, txn.id, now,
                {"state": "failed", "sip_status": answer.status, "last_error": answer.reason},
                "failed", answer.reason, None)
            self._end(txn)
            if txn.echo is not None:
                self._answer(txn, answer)
            elif ctx.notify is not None:
                ctx.notify(self._row(txn), "undeliverable")

    def _row(self, txn: _Txn) -> dict:
        row = dict(txn.record, id=txn.id, attempts=0, created_at=txn.written,
                   updated_at=txn.written)
        row.update(zip(_EXTRAS, txn.extras))
        return row

    def _hand_over(self, txn: _Txn) -> None:
        """Give the message to an L{MtJob} (retries, down_wait, answers)."""
        self.stats["handed_over"] += 1
        txn.live = False  # its wait is the full path's (down_wait), not overload
        flow = self.flow
        if flow.active.get(txn.id) is txn:
            del flow.active[txn.id]
        row = self._row(txn)
        if txn.echo is None:
            flow.start_job(row, None)
            return
        answer = defer.Deferred()
        answer.addCallback(lambda a: self._answer(txn, a))
        answer.addErrback(lambda f: self._log.failure("mt {id}: answer", f, id=txn.id))
        flow.start_job(row, answer)

    def _end(self, txn: _Txn) -> None:
        flow = self.flow
        if flow.active.get(txn.id) is txn:
            del flow.active[txn.id]
            self.ctx.job_ended(txn.record, txn.written)

    # -- answering --------------------------------------------------------
    def _answer(self, txn: _Txn, answer: SipAnswer) -> None:
        echo = txn.echo
        if echo is None:
            return  # answered already (sip_reply = accepted)
        txn.echo = None
        txn.live = False
        others, txn.others = txn.others, None
        for d in others or ():
            d.callback(answer)
        line = _ACCEPTED_LINE if answer is ACCEPTED else status_line(answer)
        # kept from now on as its status line, in this generation (Timer J
        # runs from the final answer)
        key = txn.key
        for live in (self._live, self._live_old):
            if live.get(key) is txn:
                del live[key]
                self._txns[key] = line
                break
        self.stats["answered"] += 1
        self._send(txn.protocol, line, echo, txn.to_index, txn.key, txn.target)

    def _send(self, protocol, line: bytes, echo, to_index, key, target) -> None:
        # the same To tag for every copy of this answer (retransmissions)
        echo[to_index] += b";tag=%x%s" % (hash(key) & 0xFFFFFFFFFFFF, _TAG_SALT)
        data = b"".join((line, b"\r\n".join(echo), b"\r\nContent-Length: 0\r\n\r\n"))
        transport = protocol.transport
        sock = getattr(transport, "socket", None)
        try:
            if sock is None:
                transport.write(data, target)
            else:
                sock.sendto(data, target)
        except BlockingIOError:
            protocol.send_dropped += 1  # lost like any datagram: the client retransmits
        except OSError as e:
            self._log.info("could not answer a MESSAGE to {host}:{port}: {error}",
                           host=target[0], port=target[1], error=e)


def txn_submitted(lane: FastMtLane, txn: _Txn):
    return lambda outcome: lane.submitted(txn, outcome)


def _logged_write(ok: bool, result) -> None:
    if not ok:
        FastMtLane._log.failure("mt lane: recording a submit outcome failed", result)


def _uri_and_tag(value: bytes):
    """L{name_addr}, the usual form of a From value read at once."""
    plain = _PLAIN_FROM(value)
    if plain is None:
        return name_addr(value)
    return plain[1].decode("ascii"), plain[2].decode("ascii")


def _mapped(uri: str, alphanumeric: bool):
    """
    @return: C{(user part, SMPP address)} of a sip: URI, as L{_user},
        L{_number} and L{numbers.sip_user_to_smpp} (TON/NPI 0 by default)
        give them.
    @raise numbers.AddressError: the user part is not an address.
    """
    plain = _NUMBER_URI(uri)
    if plain is not None:
        user, digits = plain.groups()
        if len(user) == len(digits):
            return user, numbers.Address(user, 0, 0)
        return user, numbers.Address(digits, numbers.TON_INTERNATIONAL, numbers.NPI_ISDN)
    user = _user(uri)
    return user, _number(user) or numbers.sip_user_to_smpp(
        user, default_ton=0, default_npi=0, alphanumeric=alphanumeric)


def _user(uri: str) -> str:
    """The user part of a plain sip: URI (else L{numbers.user_from_uri})."""
    at = uri.find("@")
    user = uri[4:at] if at > 4 else ""
    if not user or ";" in user or "%" in user or ";" in uri[at:]:
        return numbers.user_from_uri(uri)
    return user


def _number(user: str):
    """
    The SMPP address of a plain number (C{+} and up to 20 ASCII digits),
    as L{numbers.sip_user_to_smpp} maps it; C{None} for anything else.
    """
    if user[:1] == "+":
        digits = user[1:]
        if digits.isdigit() and digits.isascii() and len(digits) <= numbers.MAX_ADDR_LENGTH:
            return numbers.Address(digits, numbers.TON_INTERNATIONAL, numbers.NPI_ISDN)
    elif user.isdigit() and user.isascii() and len(user) <= numbers.MAX_ADDR_LENGTH:
        return numbers.Address(user, 0, 0)
    return None
