# -*- test-case-name: tests.test_core_fastmo -*-
"""
The SMPP -> SIP lane: the common MO message on a short path.

What it takes (L{FastMoLane.take}; everything else goes to
L{gwsms.core.mo.MoFlow} unchanged): a C{deliver_sm} that is no receipt,
has no UDH, SAR or C{message_payload} (a single-part message), a text
C{data_coding} (GSM, ASCII, Latin-1, UCS-2, ...; binary goes the slow
way), addresses that map to SIP users, and a target as the slow path
chooses it: the destination's registered contact (when C{[sip]
registrar} is on) whose REGISTER came over UDP from an IP address (it is
sent there), else the MO route's C{sip_uri}, else C{[sip] outbound_uri},
when that is a plain C{sip:} URI with an IP literal host over UDP (no
C{transport} other than C{udp}, no C{maddr}); and a request of at most
1300 bytes.  A message stored whose target turns out otherwise (a TCP
registration, no target) is handed to the slow path's delivery.

The path, per batch of deliver_sm (those that come until the writer
seals it, L{gwsms.store.batch.BatchWriter.write_batch}):

  1. one group-commit write (L{gwsms.store.lane.mo_lane_insert}: the
     row as the slow path stores it, next attempt after C{_GRACE}, the
     same duplicate key); after the commit the deliver_sm_resp is
     answered (a duplicate is answered but not sent again);
  2. the SIP MESSAGE, exactly as L{gwsms.sip.ua.MessageUAC} builds it
     (see L{gwsms.core.mo}), from a template, sent with C{sendto} on the
     SIP UDP listener's socket (its receive buffer, C{[sip]
     udp_receive_buffer}, holds the answers to a burst), on the reactor
     turn after the answers to
     the SMSC; its Via branch starts with L{PREFIX};
  3. the answers, retransmissions and timeouts: L{gwsms.sip.fastuac}
     (RFC 3261 17.1.2 on raw datagrams, one timer sweep, no per-message
     Deferred or timer);
  4. a 2xx becomes C{delivered} in one batched UPDATE; a timeout, a
     transport error, 408, 480 and 5xx are handed to the retry machinery
     (L{gwsms.core.mo.MoFlow._retry}: state C{queued}, C{attempts},
     C{next_attempt_at} with backoff, a history row), 401/407 to the slow
     path (which answers the challenge), other answers end it C{failed}.

While the lane has a message in flight its id is in C{MoFlow.active}, so
the queue runner never starts it a second time.
"""

from __future__ import annotations

import socket
import struct
from hashlib import sha1

from twisted.internet import defer
from twisted.logger import Logger

from gwsms.core.inbound import ESM_UDHI
from gwsms.core.mo import _GRACE, RETRY_STATUSES, ROK, single_text, sip_user, target_uri
from gwsms.sip.fastuac import (
    PREFIX, UdpTransactions, lane_target, reason_of)
from gwsms.sip.message import SipError, SipURI
from gwsms.sip.registrar import binding_peer
from gwsms.sip.wire import is_ip
from gwsms.smpp.constants import CommandId, CommandStatus
from gwsms.store.batch import Batch
from gwsms.store.lane import MO_LANE_COLUMNS, mo_lane_delivered, mo_lane_insert
from gwsms.store.messages import MO, dedup_key

__all__ = ["PREFIX", "FastMoLane", "lane_target"]

#: RFC 3261 18.1.1: larger requests do not go over UDP (the slow path moves them)
UDP_SIZE_LIMIT = 1300
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
#: index of next_attempt_at in the values of MO_LANE_COLUMNS
_NEXT_AT = MO_LANE_COLUMNS.index("next_attempt_at")


class _Batch(Batch):
    """The items of one lane write (L{BatchWriter.write_batch})."""

    __slots__ = ("now", "sendings")

    def __init__(self, now: float):
        super().__init__()
        self.now = now
        self.sendings: list = []


def _insert_batch(txn, batch: _Batch, window: float) -> list:
    return mo_lane_insert(txn, [(item[0], item[1]) for item in batch], batch.now, window)


class _Sending:
    """What a lane transaction needs to record its outcome (C{tx.context})."""

    __slots__ = ("message_id", "values", "uri", "sip_to")

    def __init__(self, message_id, values, uri, sip_to):
        self.message_id = message_id
        self.values = values
        self.uri = uri
        self.sip_to = sip_to


class FastMoLane:
    """
    The SMPP -> SIP lane (see the module docstring).

    @ivar uac: the lane's L{UdpTransactions}.
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
        self.uac = UdpTransactions(ctx.clock, self, t1, t2)
        self._incoming = None  # the open _Batch of deliver_sm to store
        self._delivered = None  # the open _Batch of "delivered" rows
        self._to_send: list = []
        self._send_call = None
        self._targets: dict = {}
        #: C{(dest, source, link): route sip_uri or ""} for L{_routing}
        self._routes: dict = {}
        self._routing = None
        self._key_prefixes: dict = {}
        #: C{is IPv6: (protocol, socket, Via sent-by text)}
        self._senders: dict = {}
        self._stats = dict.fromkeys(
            ("taken", "duplicates", "delivered", "handed_over", "failed", "not_sent"), 0)
        transport_layer.fast_paths.append(self.uac.datagram_received)

    @property
    def stats(self) -> dict:
        """
        Counters: C{taken}, C{duplicates}, C{delivered}, C{handed_over}
        (to the slow path: a challenge, no listener, too large), C{failed},
        C{not_sent} (stored, left to the queue runner: C{max_pending}
        reached), plus the transactions' (L{UdpTransactions.stats}).
        """
        return {**self._stats, **self.uac.stats}

    @property
    def inflight(self) -> dict:
        """@return: the open transactions by branch."""
        return self.uac.inflight

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

    def _target(self, link_name: str, source: str, dest: str, dest_user: str):
        """
        The slow path's target without a registrar (route C{sip_uri}, else
        C{outbound_uri}) when the lane can send to it.

        @return: C{((request-URI, host, port), target URI)} or C{None}.
        """
        ctx = self.ctx
        routing = ctx.routing
        if routing is not self._routing:  # routes reloaded
            self._routing = routing
            self._routes.clear()
        key = (dest, source, link_name)
        route = self._routes.get(key)
        if route is None:
            if len(self._routes) >= _TARGET_CACHE:
                self._routes.clear()
            route = self._routes[key] = routing.mo_target(dest, source, link_name) or ""
        route = route or ctx.sip_config.outbound_uri
        if not route:
            return None
        uri = target_uri(route, dest_user)
        target = self._targets.get(uri)
        if target is None:
            if len(self._targets) >= _TARGET_CACHE:
                self._targets.clear()
            target = self._targets[uri] = lane_target(uri) or False
        return None if target is False else (target, uri)

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
        d = defer.Deferred()
        return d if self.take_then(link_name, pdu, d.callback) else None

    def take_then(self, link_name: str, pdu, answer) -> bool:
        """
        L{take} without a Deferred (L{gwsms.smpp.esme} asks the sink's
        C{deliver_then}).

        @param answer: called once with the command_status to answer,
            after the commit.
        @return: whether the lane took it (else C{answer} is never called).
        """
        if pdu.command_id != _DELIVER_SM:
            return False
        params = pdu.params
        # message type 0 (no receipt, no ack) without UDHI
        if params.get("esm_class", 0) & _NOT_PLAIN_ESM:
            return False
        tlvs = pdu.tlvs
        if tlvs and not _CONCAT_TLVS.isdisjoint(tlvs):
            return False
        ctx = self.ctx
        source = params.get("source_addr", "")
        dest = params.get("destination_addr", "")
        source_ton = params.get("source_addr_ton", 0)
        dest_ton = params.get("dest_addr_ton", 0)
        source_user = sip_user(source, source_ton)
        dest_user = sip_user(dest, dest_ton)
        if source_user is None or dest_user is None:
            return False
        found = self._target(link_name, source, dest, dest_user)
        if found is None:
            if ctx.registrar is None:
                return False
            found = (None, None)  # a registered contact, or the slow path
        target, uri = found
        data_coding = params.get("data_coding", 0)
        payload = bytes(params.get("short_message", b"") or b"")
        link = ctx.links.get(link_name)
        text = single_text(payload, data_coding, getattr(link, "dc0_charset", "gsm"))
        if text is None:
            return False
        now = self.clock.seconds()
        store = ctx.store
        owner = store.owner if store.owner is not None else 0
        body = text
        values = (MO, "queued", now, now, source, source_ton, params.get("source_addr_npi", 0),
                  dest, dest_ton, params.get("dest_addr_npi", 0), link_name, body,
                  "text/plain", data_coding, 0, now + _GRACE, now + ctx.config.mo_ttl, owner)
        key = self._key(link_name, source, dest, data_coding, payload)
        batch = self._incoming
        if batch is None or batch.sealed:
            batch = self._incoming = _Batch(now)
            self.ctx.store.writer.write_batch(batch, self._stored_cb(batch), _insert_batch,
                                              self.ctx.config.dedup_window)
        batch.append((key, values, answer, target, source_user, dest_user, uri))
        self._stats["taken"] += 1
        return True

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
                item[2](_APPN)
            return
        new = []
        for item, message_id in zip(batch, result):
            item[2](ROK)
            if message_id is None:
                self._stats["duplicates"] += 1
            else:
                new.append((message_id, item))
        if new:
            # after this callback the writer starts its next batch: let its
            # commit overlap the sending instead of waiting for it
            self._to_send.extend(new)
            if self._send_call is None:
                self._send_call = self.clock.callLater(0, self._send_stored)

    def _send_stored(self) -> None:
        self._send_call = None
        new, self._to_send = self._to_send, []
        active = self.flow.active
        max_pending = self.ctx.config.max_pending
        registrar = self.ctx.registrar
        for message_id, item in new:
            if len(active) >= max_pending:
                self._stats["not_sent"] += 1  # stored; the queue runner sends it
                continue
            if registrar is not None:
                self._look_up(registrar, message_id, item)
                continue
            try:
                self._start(message_id, item)
            except Exception:
                # stays queued: the queue runner sends it after _GRACE
                self._log.failure("MO lane: sending message {id} failed", id=message_id)

    def _look_up(self, registrar, message_id: int, item) -> None:
        """
        As the slow path: the destination's registered contact first (sent
        to where its REGISTER came from), else the route's target.
        """
        dest_user = item[5]
        d = registrar.lookup(dest_user)

        def failed(failure):
            self._log.warn("registrar lookup of {user} failed: {error}", user=dest_user,
                           error=failure.getErrorMessage())
            return []

        def found(bindings):
            values = item[1]
            if bindings:
                binding = bindings[0]
                contact = binding.contact_uri
                try:
                    peer = binding_peer(binding)
                    request_uri = str(SipURI.parse(contact))
                except (ValueError, SipError):
                    peer = None
                if peer is None or peer.transport != "udp" or not is_ip(peer.host):
                    self._slow(message_id, values, "registered contact not UDP to an IP")
                    return
                self._start(message_id, item, (request_uri, peer.host, peer.port), contact)
            elif item[3] is not None:
                self._start(message_id, item)
            else:
                self._slow(message_id, values, "no registration and no lane target")

        d.addErrback(failed)
        d.addCallback(found)
        d.addErrback(lambda f: self._log.failure("MO lane: message {id} after the registrar"
                                                 " lookup", f, id=message_id))

    # -- sending ------------------------------------------------------------
    def _start(self, message_id: int, item, target=None, uri=None) -> None:
        _key, values, _d, route_target, source_user, dest_user, route_uri = item
        if target is None:
            target, uri = route_target, route_uri
        request_uri, host, port = target
        sender = self._sender(":" in host)
        if sender is None:
            self._slow(message_id, values, "no UDP listener for the lane")
            return
        sock, sent_by = sender
        try:
            body = values[11].encode("utf-8")
        except UnicodeError:
            self._slow(message_id, values, "body not UTF-8 encodable")
            return
        uac = self.uac
        branch = uac.new_branch()
        token = uac.token()
        domain = self.ctx.sip_config.domain
        call_id = f"{token[16:]}@{domain}" if domain else token[16:]
        # exactly what MessageUAC.build_request + TransportLayer send
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
        self.flow.active.add(message_id)
        uac.start(branch, data, (host, port), sock,
                  _Sending(message_id, values, uri, uri[:512]))

    def _sender(self, ipv6: bool):
        """
        @return: C{(socket, Via sent-by)} of the UDP listener new requests
            go from (the one the slow path would use), or C{None}.
        """
        cached = self._senders.get(ipv6)
        if cached is not None and cached[0].transport is not None:
            return cached[1], cached[2]
        # the same choice as TransportLayer.send (its receive buffer is
        # [sip] udp_receive_buffer, set when it started listening)
        protocol = self.layer.udp_sender(ipv6)
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

    def _slow(self, message_id: int, values, why: str) -> None:
        """Give a stored message to the slow path's delivery."""
        self._stats["handed_over"] += 1
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

    def stop(self) -> None:
        """
        Forget the open transactions (their messages stay queued: the
        queue runner sends them again, with the same X-Gwsms-Message-Id);
        collected writes are the writer's already.
        """
        if self._send_call is not None and self._send_call.active():
            self._send_call.cancel()
        self._send_call = None
        self._to_send = []  # stored and queued: sent after the restart
        for tx in self.uac.stop():
            self.flow.active.discard(tx.context.message_id)

    # -- outcomes (UdpTransactions owner) ---------------------------------------
    def final(self, tx, status: int, data: bytes) -> None:
        """A final answer to the lane's MESSAGE C{tx}."""
        sending = tx.context
        if status < 300:
            now = self.clock.seconds()
            batch = self._delivered
            if batch is None or batch.sealed:
                batch = self._delivered = _Batch(now)
                self.ctx.store.writer.write_batch(batch, self._delivered_cb(batch),
                                                  mo_lane_delivered)
            batch.append((now, status, sending.sip_to, sending.message_id))
            batch.sendings.append(sending)
            return
        detail = f"{sending.uri}: {status} {reason_of(data)}"
        row = self._row(sending.message_id, sending.values)
        if status in (401, 407):
            # the slow path answers the challenge with the outbound credentials
            self._stats["handed_over"] += 1
            self.flow.active.discard(sending.message_id)
            self.flow.deliver(row)
        elif status in RETRY_STATUSES or 500 <= status < 600:
            self._job(row, self.flow._retry(row, status, detail))
        else:
            self._stats["failed"] += 1
            self._job(row, self.flow._finish(row, "failed", status, detail))

    def failed(self, tx, detail: str) -> None:
        """Timer F or a send error: the retry machinery takes over."""
        sending = tx.context
        row = self._row(sending.message_id, sending.values)
        self._job(row, self.flow._retry(row, 0, f"{sending.uri}: {detail}"))

    def _delivered_cb(self, batch):
        def written(ok, result):
            done = batch.sendings
            written_at = batch[-1][0] if batch else 0.0
            try:
                if ok:
                    self._stats["delivered"] += len(done)
                else:
                    # they stay queued: the queue runner sends them again
                    self._log.failure("MO lane: recording {n} deliveries failed", result,
                                      n=len(done))
                self._ended(done, written_at)
            except Exception:
                self._log.failure("MO lane: after recording deliveries")
        return written

    def _ended(self, done, written_at: float) -> None:
        active = self.flow.active
        ctx = self.ctx
        # a queue pass may have read a row that became due while it was in
        # flight (only then): remember it as MoFlow.deliver does
        soon = ctx.clock.seconds() + 1.0
        for sending in done:
            active.discard(sending.message_id)
            next_at = sending.values[_NEXT_AT]
            if next_at <= soon:
                ctx.job_ended({"id": sending.message_id, "next_attempt_at": next_at},
                              written_at)

    def _job(self, row: dict, coro) -> None:
        """Run a slow-path outcome recording; the message stays active until it ends."""
        d = defer.ensureDeferred(coro)
        d.addErrback(lambda f: self._log.failure("MO lane: message {id}: recording the"
                                                 " outcome failed", f, id=row["id"]))

        def done(_):
            self.flow.active.discard(row["id"])
            self.ctx.job_ended(row, row.get("_written_at", 0.0))

        d.addBoth(done)
        d.addErrback(lambda f: self._log.failure("MO lane: bookkeeping", f))
