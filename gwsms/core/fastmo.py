# -*- test-case-name: tests.test_core_fastmo -*-
"""
The SMPP -> SIP lane: the common MO message on a short path.

What it takes (L{FastMoLane.take}; everything else goes to
L{gwsms.core.mo.MoFlow} unchanged): a C{deliver_sm} that is no receipt,
has no UDH, SAR or C{message_payload} (a single-part message), a text
C{data_coding} (GSM, ASCII, Latin-1, UCS-2, ...; binary goes the slow
way), addresses that map to SIP users, no registrar configured, and a
target (the MO route's C{sip_uri}, else C{[sip] outbound_uri}) that is a
plain C{sip:} URI with an IP literal host over UDP (no C{transport} other
than C{udp}, no C{maddr}) and a request of at most 1300 bytes.

The path, per batch of deliver_sm collected in one reactor turn:

  1. one group-commit write (L{gwsms.store.messages.mo_lane_insert}: the
     row as the slow path stores it, next attempt after C{_GRACE}, the
     same duplicate key); after the commit the deliver_sm_resp is
     answered (a duplicate is answered but not sent again);
  2. the SIP MESSAGE, exactly as L{gwsms.sip.ua.MessageUAC} builds it
     (see L{gwsms.core.mo}), from a template, sent with C{sendto} on the
     SIP UDP listener's socket; its Via branch starts with L{PREFIX};
  3. responses are recognised on the raw datagram
     (C{TransportLayer.fast_paths}: status line, top Via branch, CSeq);
     RFC 3261 17.1.2 non-INVITE client transaction over UDP: Timer E
     retransmits (T1 doubling to T2; T2 after a 1xx), Timer F (64*T1)
     gives up, late and retransmitted responses are absorbed.  One
     periodic sweep over a timer wheel runs the timers (no timer per
     message), and only while transactions are open;
  4. a 2xx becomes C{delivered} in one batched UPDATE; a timeout, a
     transport error, 408, 480 and 5xx are handed to the retry machinery
     (L{gwsms.core.mo.MoFlow._retry}: state C{queued}, C{attempts},
     C{next_attempt_at} with backoff, a history row), 401/407 to the slow
     path (which answers the challenge), other answers end it C{failed}.

While the lane has a message in flight its id is in C{MoFlow.active}, so
the queue runner never starts it a second time.
"""

from __future__ import annotations

import os
import re
import socket
import struct
from hashlib import sha1

from twisted.internet import defer, task
from twisted.logger import Logger

from gwsms.core import numbers
from gwsms.core.inbound import ESM_UDHI, decode_payload
from gwsms.core.mo import _GRACE, RETRY_STATUSES, ROK, target_uri
from gwsms.smpp.constants import CommandId, CommandStatus
from gwsms.store.messages import MO, dedup_key, mo_lane_delivered, mo_lane_insert

#: the Via branch prefix of the lane's requests (RFC 3261 magic cookie + "gwf")
PREFIX = "z9hG4bKgwf"
_PREFIX_B = PREFIX.encode("ascii")
#: RFC 3261 18.1.1: larger requests do not go over UDP (the slow path moves them)
UDP_SIZE_LIMIT = 1300
#: the timer wheel's slots per T1
_SLOTS_PER_T1 = 4
#: parsed targets remembered (cleared when full)
_TARGET_CACHE = 1024
_DELIVER_SM = int(CommandId.deliver_sm)
_APPN = int(CommandStatus.ESME_RX_T_APPN)
#: TLVs that make a deliver_sm a part of a long message (slow path)
_CONCAT_TLVS = frozenset({"message_payload", "sar_msg_ref_num", "sar_total_segments",
                          "sar_segment_seqnum"})
#: esm_class bits that send a deliver_sm the slow way: the message type
#: (receipts, acknowledgements; RECEIPT_KINDS) and UDHI
_NOT_PLAIN_ESM = 0x3C | ESM_UDHI
_LEN = struct.Struct(">I").pack
_TOP_VIA = re.compile(rb"\r?\n(?:via|v)[ \t]*:[ \t]*([^\r\n]*)", re.I).search
_CSEQ = re.compile(rb"\r?\n(?:cseq)[ \t]*:[ \t]*\d+[ \t]+([A-Za-z]+)", re.I).search


def _sip_user(addr: str, ton: int):
    """
    L{numbers.smpp_to_sip_user}, with its common case (ASCII digits) inline.

    @return: the user part, or C{None} (no address: the slow path decides).
    """
    if addr.isdigit() and addr.isascii():
        return "+" + addr if ton == numbers.TON_INTERNATIONAL else addr
    try:
        return numbers.smpp_to_sip_user(addr, ton, 0)
    except numbers.AddressError:
        return None


def lane_target(uri: str):
    """
    Whether a target URI can go the lane's way, and where.

    @param uri: the SIP target with its user part (L{target_uri}).
    @return: C{(request-URI text, host, port)} or C{None} (slow path).
    """
    from gwsms.sip.message import SipURI
    from gwsms.sip.wire import is_ip

    try:
        parsed = SipURI.parse(uri)
    except Exception:
        return None
    if getattr(parsed, "scheme", "") != "sip":
        return None
    params = {str(k).lower(): v for k, v in (parsed.params or {}).items()}
    if params.get("maddr") or (params.get("transport") or "udp").lower() != "udp":
        return None
    host = parsed.host.strip("[]")
    if not is_ip(host):
        return None
    return str(parsed), host, parsed.port or 5060


class _Tx:
    """One open client transaction of the lane (RFC 3261 17.1.2, UDP)."""

    __slots__ = ("branch", "message_id", "data", "addr", "sock", "interval", "next_e",
                 "deadline", "proceeding", "done", "row", "uri", "sip_to")

    def __init__(self, branch, message_id, data, addr, sock, row, uri, sip_to):
        self.branch = branch
        self.message_id = message_id
        self.data = data
        self.addr = addr
        self.sock = sock
        self.row = row
        self.uri = uri
        self.sip_to = sip_to
        self.interval = 0.0
        self.next_e = 0.0
        self.deadline = 0.0
        self.proceeding = False
        self.done = False


class FastMoLane:
    """
    The SMPP -> SIP lane (see the module docstring).

    @ivar stats: counters: C{taken}, C{duplicates}, C{sent},
        C{retransmissions}, C{delivered}, C{timeouts}, C{handed_over},
        C{failed}, C{absorbed}, C{send_dropped}, C{not_sent} (stored, left
        to the queue runner: no listener or C{max_pending} reached).
    """

    _log = Logger()

    def __init__(self, ctx, flow, transport_layer, t1: float = 0.5, t2: float = 4.0) -> None:
        """
        @param ctx: the L{gwsms.core.gateway.GatewayContext} (clock,
            config, sip_config, store, links, routing, registrar).
        @param flow: the L{gwsms.core.mo.MoFlow} (C{active}, C{_retry},
            C{_finish}, C{deliver}: the slow path).
        @param transport_layer: the SIP L{gwsms.sip.transport.TransportLayer}
            (its UDP listener sends; the lane registers in its
            C{fast_paths}).
        @param t1: RFC 3261 T1 in seconds.  @param t2: T2 in seconds.
        """
        self.ctx = ctx
        self.flow = flow
        self.layer = transport_layer
        self.clock = ctx.clock
        self.t1, self.t2 = t1, t2
        self._slot = t1 / _SLOTS_PER_T1
        self.inflight: dict[str, _Tx] = {}
        self._wheel: dict[int, list] = {}
        self._next_slot = 0
        self._sweep = None
        self._incoming: list = []
        self._flush_call = None
        self._delivered: list = []
        self._delivered_txs: list = []
        self._delivered_call = None
        self._targets: dict = {}
        self._key_prefixes: dict = {}
        #: C{is IPv6: (protocol, socket, Via sent-by text)}
        self._senders: dict = {}
        self._counter = 0
        self._pool: list = []
        self._last_tick = 0.0
        self._process = os.urandom(3).hex()
        self.stats = dict.fromkeys(
            ("taken", "duplicates", "sent", "retransmissions", "delivered", "timeouts",
             "handed_over", "failed", "absorbed", "send_dropped", "not_sent"), 0)
        transport_layer.fast_paths.append(self.datagram_received)

    def _key(self, link_name: str, source, dest, data_coding: int, payload: bytes) -> str:
        """
        C{dedup_key(MO, link_name, source, dest, data_coding, payload)}, the
        slow path's key of a single-part message, computed with fewer steps.
        """
        if not (isinstance(source, str) and isinstance(dest, str)
                and type(data_coding) is int):
            return dedup_key(MO, link_name, source, dest, data_coding, payload)
        prefix = self._key_prefixes.get(link_name)
        if prefix is None:
            if len(self._key_prefixes) >= _TARGET_CACHE:
                self._key_prefixes.clear()
            name = link_name.encode("utf-8", "surrogatepass")
            prefix = self._key_prefixes[link_name] = (
                _LEN(len(MO)) + MO.encode("ascii") + _LEN(len(name)) + name)
        s = source.encode("utf-8", "surrogatepass")
        d = dest.encode("utf-8", "surrogatepass")
        c = str(data_coding).encode("ascii")
        return sha1(b"".join((prefix, _LEN(len(s)), s, _LEN(len(d)), d, _LEN(len(c)), c,
                              _LEN(len(payload)), payload))).hexdigest()

    # -- taking a deliver_sm ----------------------------------------------
    def take(self, link_name: str, pdu):
        """
        Take a deliver_sm on the lane when it is the common case.

        @param link_name: the SMSC connection it came on.
        @param pdu: the L{gwsms.smpp.pdu.Pdu}.
        @return: a Deferred firing with the command_status to answer after
            the commit (never failing), or C{None}: not taken, use the slow
            path.
        """
        if pdu.command_id != _DELIVER_SM:
            return None
        params = pdu.params
        # message type 0 (no receipt, no ack) without UDHI
        if params.get("esm_class", 0) & _NOT_PLAIN_ESM:
            return None
        tlvs = pdu.tlvs
        if tlvs and not _CONCAT_TLVS.isdisjoint(tlvs):
            return None
        ctx = self.ctx
        if ctx.registrar is not None:
            return None
        source = params.get("source_addr", "")
        dest = params.get("destination_addr", "")
        source_ton = params.get("source_addr_ton", 0)
        dest_ton = params.get("dest_addr_ton", 0)
        source_user = _sip_user(source, source_ton)
        dest_user = _sip_user(dest, dest_ton)
        if source_user is None or dest_user is None:
            return None
        route = ctx.routing.mo_target(dest, source, link_name) or ctx.sip_config.outbound_uri
        if not route:
            return None
        uri = target_uri(route, dest_user)
        target = self._targets.get(uri)
        if target is None:
            if len(self._targets) >= _TARGET_CACHE:
                self._targets.clear()
            target = self._targets[uri] = lane_target(uri) or False
        if target is False:
            return None
        data_coding = params.get("data_coding", 0)
        payload = bytes(params.get("short_message", b"") or b"")
        link = ctx.links.get(link_name)
        decoded = decode_payload(payload, data_coding, getattr(link, "dc0_charset", "gsm"))
        if decoded.binary:
            return None
        now = self.clock.seconds()
        store = ctx.store
        owner = store.owner if store.owner is not None else 0
        body = decoded.text
        values = (MO, "queued", now, now, source, source_ton, params.get("source_addr_npi", 0),
                  dest, dest_ton, params.get("dest_addr_npi", 0), link_name, body,
                  "text/plain", data_coding, 0, now + _GRACE, now + ctx.config.mo_ttl, owner)
        key = self._key(link_name, source, dest, data_coding, payload)
        d = defer.Deferred()
        self._incoming.append((key, values, d, target, source_user, dest_user, uri))
        if self._flush_call is None:
            self._flush_call = self.clock.callLater(0, self._flush)
        self.stats["taken"] += 1
        return d

    def _flush(self) -> None:
        self._flush_call = None
        batch, self._incoming = self._incoming, []
        if not batch:
            return
        items = [(key, values) for key, values, *_rest in batch]
        self.ctx.store.writer.write_then(self._stored_cb(batch), mo_lane_insert, items,
                                         self.clock.seconds(), self.ctx.config.dedup_window)

    def flush(self) -> None:
        """Hand what was collected to the writer now (before a drain)."""
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush()
        if self._delivered_call is not None and self._delivered_call.active():
            self._delivered_call.cancel()
        self._write_delivered()

    def _stored_cb(self, batch):
        def stored(ok, result):
            try:
                self._stored(batch, ok, result)
            except Exception:
                self._log.failure("MO lane: after storing a batch")
        return stored

    def _stored(self, batch, ok, result) -> None:
        if not ok:
            self._log.failure("MO lane: storing {n} deliver_sm failed; answering"
                              " ESME_RX_T_APPN (the SMSC delivers them again)", result,
                              n=len(batch))
            for item in batch:
                item[2].callback(_APPN)
            return
        active = self.flow.active
        max_pending = self.ctx.config.max_pending
        for item, message_id in zip(batch, result):
            item[2].callback(ROK)
            if message_id is None:
                self.stats["duplicates"] += 1
                continue
            if len(active) >= max_pending:
                self.stats["not_sent"] += 1  # stored; the queue runner sends it
                continue
            self._start(message_id, item)

    # -- sending ------------------------------------------------------------
    def _start(self, message_id: int, item) -> None:
        key, values, _d, target, source_user, dest_user, uri = item
        request_uri, host, port = target
        sender = self._sender(":" in host)
        if sender is None:
            self._slow(message_id, values, "no UDP listener for the lane")
            return
        sock, sent_by = sender
        self._counter += 1
        branch = f"{PREFIX}{self._process}{self._counter:x}"
        token = self._random()
        domain = self.ctx.sip_config.domain
        try:
            body = values[11].encode("utf-8")
        except UnicodeError:
            self._slow(message_id, values, "body not UTF-8 encodable")
            return
        call_id = f"{token[16:]}@{domain}" if domain else token[16:]
        data = (
            f"MESSAGE {request_uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {sent_by};branch={branch};rport\r\n"
            f"Max-Forwards: 70\r\n"
            f"From: <sip:{source_user}@{domain}>;tag={token[:16]}\r\n"
            f"To: <sip:{dest_user}@{domain}>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 MESSAGE\r\n"
            f"User-Agent: {self.ctx.sip_config.user_agent}\r\n"
            "Content-Type: text/plain;charset=UTF-8\r\n"
            f"X-SMSC: {values[10]}\r\nX-Gwsms-Message-Id: {message_id}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode("utf-8", "surrogateescape") + body
        if len(data) > UDP_SIZE_LIMIT:
            self._slow(message_id, values, "request too large for UDP")
            return
        tx = _Tx(branch, message_id, data, (host, port), sock, values, uri, request_uri[:512])
        now = self.clock.seconds()
        tx.interval = self.t1
        tx.next_e = now + self.t1
        tx.deadline = now + 64 * self.t1
        self.flow.active.add(message_id)
        self.inflight[branch] = tx
        self._schedule(tx, tx.next_e)
        self.stats["sent"] += 1
        self._send(tx)

    def _random(self) -> str:
        """@return: 40 random hex digits (tag + Call-ID), from a pool refilled in bulk."""
        pool = self._pool
        if not pool:
            text = os.urandom(20 * 256).hex()
            pool.extend(text[i:i + 40] for i in range(0, len(text), 40))
        return pool.pop()

    def _sender(self, ipv6: bool):
        """
        @return: C{(socket, Via sent-by)} of the UDP listener new requests
            go from (the one the slow path would use), or C{None}.
        """
        cached = self._senders.get(ipv6)
        if cached is not None and cached[0].transport is not None:
            return cached[1], cached[2]
        # the same choice as TransportLayer._send_udp
        listener = self.layer._listener_for("udp", "::" if ipv6 else "0.0.0.0")
        protocol = getattr(listener, "protocol", None)
        sock = getattr(getattr(protocol, "transport", None), "socket", None)
        if sock is None or protocol.sent_by is None or \
                (sock.family == socket.AF_INET6) != ipv6:
            self._senders.pop(ipv6, None)
            return None
        host, port = protocol.sent_by
        if ":" in host:
            host = f"[{host.strip('[]')}]"
        self._senders[ipv6] = (protocol, sock, f"{host}:{port}")
        return sock, f"{host}:{port}"

    def _send(self, tx: _Tx) -> None:
        try:
            tx.sock.sendto(tx.data, tx.addr)
        except BlockingIOError:
            self.stats["send_dropped"] += 1  # lost like any datagram: Timer E resends
        except InterruptedError:
            self._send(tx)
        except OSError as e:
            self._end(tx)
            self._retry(tx, 0, f"{tx.uri}: UDP send to {tx.addr[0]}:{tx.addr[1]} failed: {e}")

    def _slow(self, message_id: int, values, why: str) -> None:
        """Give a stored message to the slow path's delivery."""
        self.stats["handed_over"] += 1
        self._log.debug("MO lane: message {id} to the slow path ({why})", id=message_id,
                        why=why)
        self.flow.deliver(self._row(message_id, values))

    @staticmethod
    def _row(message_id: int, values) -> dict:
        (_direction, state, _created, _updated, source, source_ton, source_npi, dest,
         dest_ton, dest_npi, smsc, body, content_type, data_coding, _partial, next_at,
         expires_at, owner) = values
        return {"id": message_id, "direction": MO, "state": state, "source_addr": source,
                "source_ton": source_ton, "source_npi": source_npi, "dest_addr": dest,
                "dest_ton": dest_ton, "dest_npi": dest_npi, "smsc": smsc, "body": body,
                "content_type": content_type, "data_coding": data_coding, "attempts": 0,
                "next_attempt_at": next_at, "expires_at": expires_at, "owner": owner}

    # -- timers ---------------------------------------------------------------
    def _schedule(self, tx: _Tx, when: float) -> None:
        # the first slot not before it (and not one the sweep has passed)
        slot = max(-int(-min(when, tx.deadline) // self._slot), self._next_slot)
        bucket = self._wheel.get(slot)
        if bucket is None:
            self._wheel[slot] = [tx]
        else:
            bucket.append(tx)
        if self._sweep is None:
            self._next_slot = int(self.clock.seconds() / self._slot)
            self._last_tick = self.clock.seconds()
            self._sweep = task.LoopingCall(self._tick)
            self._sweep.clock = self.clock
            d = self._sweep.start(self._slot, now=False)
            d.addErrback(lambda f: self._log.failure("MO lane timer sweep stopped", f))

    def _tick(self) -> None:
        try:
            now = self.clock.seconds()
            # A tick more than a slot late means the reactor lagged: answers
            # may wait unread in the socket buffer, so retransmit only after
            # the next poll (timers run before the reactor reads)
            lagging = now - self._last_tick > 2 * self._slot
            self._last_tick = now
            self.sweep(now, retransmit=not lagging)
        except Exception:
            self._log.failure("MO lane timer sweep failed")

    def sweep(self, now: float, retransmit: bool = True) -> None:
        """
        Run the timers due at C{now}: Timer E retransmissions, Timer F
        timeouts; stops the periodic sweep when nothing is open.

        @param retransmit: C{False}: due retransmissions wait for the next
            sweep (the reactor lagged).
        """
        current = int(now / self._slot)
        wheel = self._wheel
        while self._next_slot <= current:
            bucket = wheel.pop(self._next_slot, None)
            self._next_slot += 1
            if not bucket:
                continue
            for tx in bucket:
                if tx.done:
                    continue
                if now >= tx.deadline:
                    self.stats["timeouts"] += 1
                    self._end(tx)
                    self._retry(tx, 0, f"{tx.uri}: no final response to MESSAGE within"
                                f" {64 * self.t1:g} s")
                    continue
                if now >= tx.next_e and retransmit:
                    tx.interval = self.t2 if tx.proceeding else min(2 * tx.interval, self.t2)
                    # from when it was due: the sweep's lateness does not add up
                    tx.next_e = max(tx.next_e + tx.interval, now)
                    self.stats["retransmissions"] += 1
                    self._send(tx)
                if not tx.done:
                    self._schedule(tx, tx.next_e)
        if not self.inflight and not wheel and self._sweep is not None:
            if self._sweep.running:
                self._sweep.stop()
            self._sweep = None

    def stop(self) -> None:
        """Stop the sweep; open transactions are dropped (their messages stay queued)."""
        self.flush()
        for tx in self.inflight.values():
            tx.done = True
            self.flow.active.discard(tx.message_id)
        self.inflight.clear()
        self._wheel.clear()
        if self._sweep is not None and self._sweep.running:
            self._sweep.stop()
        self._sweep = None

    # -- responses -------------------------------------------------------------
    def datagram_received(self, protocol, data: bytes, addr) -> bool:
        """
        C{TransportLayer.fast_paths} handler: a response to one of the
        lane's requests (C{True}: consumed), else C{False}.
        """
        if data[:8] != b"SIP/2.0 " or _PREFIX_B not in data:
            return False
        via = _TOP_VIA(data)
        if via is None:
            return False
        line = via.group(1)
        at = line.find(b"branch=" + _PREFIX_B)
        comma = line.find(b",")
        if at < 0 or (0 <= comma < at):
            return False
        end = at + 7
        stop = len(line)
        for sep in (b";", b",", b" ", b"\t"):
            i = line.find(sep, end)
            if 0 <= i < stop:
                stop = i
        branch = line[end:stop].decode("ascii", "replace")
        cseq = _CSEQ(data)
        if cseq is None or cseq.group(1).upper() != b"MESSAGE":
            return False
        try:
            status = int(data[8:11])
        except ValueError:
            return False
        if not 100 <= status <= 699:
            return False
        tx = self.inflight.get(branch)
        if tx is None:
            self.stats["absorbed"] += 1  # late / retransmitted: Timer K's job
            return True
        if status < 200:
            tx.proceeding = True
            return True
        self._end(tx)
        if status < 300:
            self._delivered.append((self.clock.seconds(), status, tx.sip_to, tx.message_id))
            self._delivered_txs.append(tx)
            if self._delivered_call is None:
                self._delivered_call = self.clock.callLater(0, self._write_delivered)
            return True
        reason = _reason(data)
        detail = f"{tx.uri}: {status} {reason}"
        if status in (401, 407):
            self.stats["handed_over"] += 1
            self.flow.active.discard(tx.message_id)
            self.flow.deliver(self._row(tx.message_id, tx.row))
        elif status in RETRY_STATUSES or 500 <= status < 600:
            self._retry(tx, status, detail)
        else:
            self.stats["failed"] += 1
            row = self._row(tx.message_id, tx.row)
            self._job(tx, row, self.flow._finish(row, "failed", status, detail))
        return True

    def _end(self, tx: _Tx) -> None:
        tx.done = True
        self.inflight.pop(tx.branch, None)

    # -- outcomes ---------------------------------------------------------------
    def _write_delivered(self) -> None:
        self._delivered_call = None
        rows, self._delivered = self._delivered, []
        txs, self._delivered_txs = self._delivered_txs, []
        if not rows:
            return
        self.ctx.store.writer.write_then(self._delivered_cb(txs, rows[-1][0]),
                                         mo_lane_delivered, rows)

    def _delivered_cb(self, txs, written_at):
        def written(ok, result):
            try:
                if not ok:
                    # stays queued: the queue runner sends it again after _GRACE
                    self._log.failure("MO lane: recording {n} deliveries failed", result,
                                      n=len(txs))
                self._ended(txs, written_at)
                if ok:
                    self.stats["delivered"] += len(txs)
            except Exception:
                self._log.failure("MO lane: after recording deliveries")
        return written

    def _ended(self, txs, written_at: float) -> None:
        active = self.flow.active
        ctx = self.ctx
        # a queue pass may have read a row that became due while it was in
        # flight (only then): remember it like MoFlow.deliver does
        soon = ctx.clock.seconds() + 1.0
        for tx in txs:
            active.discard(tx.message_id)
            if tx.row[15] <= soon:
                ctx.job_ended({"id": tx.message_id, "next_attempt_at": tx.row[15]},
                              written_at)

    def _retry(self, tx: _Tx, status: int, detail: str) -> None:
        row = self._row(tx.message_id, tx.row)
        self._job(tx, row, self.flow._retry(row, status, detail))

    def _job(self, tx: _Tx, row: dict, coro) -> None:
        d = defer.ensureDeferred(coro)
        d.addErrback(lambda f: self._log.failure("MO lane: message {id}: recording the"
                                                 " outcome failed", f, id=tx.message_id))

        def done(_):
            self.flow.active.discard(tx.message_id)
            self.ctx.job_ended(row, row.get("_written_at", 0.0))

        d.addBoth(done)
        d.addErrback(lambda f: self._log.failure("MO lane: bookkeeping", f))


def _reason(data: bytes) -> str:
    end = data.find(b"\r\n")
    return data[12:end if end >= 0 else 80].decode("utf-8", "replace").strip()[:80]
