# -*- test-case-name: tests.test_core_mo -*-
"""
SMPP -> SIP (mobile originated): a deliver_sm / data_sm becomes a stored
message and then a SIP MESSAGE.

Acknowledgement: the C{deliver_sm_resp} (ESME_ROK) is sent only after the
message (or, for a part of a long message, the part) has been committed, so
an SMSC never loses a message the gateway acknowledged.  A deliver_sm the
SMSC sends again (same SMSC, addresses and content within C{dedup_window})
is acknowledged again but delivered only once.

Long messages (UDH IE 0x00 / 0x08, SAR TLVs; C{message_payload} carries a
whole message) are reassembled: every part is stored in C{mo_fragments}
before it is acknowledged, parts may come in any order and twice, and the
state is reloaded at start.  After C{reassembly_timeout} what arrived is
delivered with C{[...]} where parts are missing, or dropped, as configured.

The SIP MESSAGE::

    MESSAGE sip:<dest>@<target host> SIP/2.0
    From: <sip:<source>@<domain>>       (TON 1 -> "+" digits)
    To: <sip:<dest>@<domain>>
    Content-Type: text/plain;charset=UTF-8   (binary: hex, or
                                              application/octet-stream)
    X-SMSC: <connection name>
    X-Gwsms-Message-Id: <id in the message store>

Target: the registered contact of the destination number (registrar), else
the MO route's C{sip_uri} (L{gwsms.core.routing.RoutingTable.mo_target}),
else C{[sip] outbound_uri}; a target URI without a user part gets the
destination number as its user.  2xx ends it as delivered; 408, 480, 5xx,
timeouts and transport errors are retried with backoff (C{retry_initial}
doubling to C{retry_max}) until C{mo_ttl}; other answers (404, 403, 488,
6xx, ...) end it as failed.  At most one delivery is in flight per message.
A crash between a 2xx and the commit of "delivered" sends it again after
the restart, with the same C{X-Gwsms-Message-Id}.
"""

from __future__ import annotations

import json

from twisted.internet import defer
from twisted.logger import Logger

from gwsms.core import gsm, numbers, text
from gwsms.core.reassembly import Reassembler
from gwsms.smpp.constants import CommandStatus
from gwsms.store.messages import MO, dedup_key

ROK = int(CommandStatus.ESME_ROK)
#: SIP statuses after which an MO delivery is tried again
RETRY_STATUSES = frozenset({408, 480})
#: what stands where parts of a partially reassembled message are missing
GAP = "[...]"
BINARY_TYPE = "application/octet-stream"
#: seconds before the queue runner may take up a message just received
_GRACE = 5.0


def _frag_key(link: str, source: str, dest: str, ref: int, total: int) -> str:
    return json.dumps([link, source, dest, ref, total], separators=(",", ":"))


def _reassembly_key(link: str, source: str, dest: str, ref: int, total: int) -> str:
    return dedup_key(MO, "reassembly", link, source, dest, ref, total)


def target_uri(target: str, user: str) -> str:
    """
    @param target: a SIP URI (route C{sip_uri} or C{outbound_uri}).
    @param user: the destination user part.
    @return: C{target} with C{user} as its user part when it has none.
    """
    scheme, sep, rest = target.partition(":")
    if not sep or "@" in rest.split(";", 1)[0]:
        return target
    return f"{scheme}:{user}@{rest}"


def sip_user(addr: str, ton: int):
    """
    L{numbers.smpp_to_sip_user} with its common case (ASCII digits) inline,
    for the lane (L{gwsms.core.fastmo}).

    @return: the user part, or C{None} for an address it refuses.
    """
    if addr.isdigit() and addr.isascii():
        return "+" + addr if ton == numbers.TON_INTERNATIONAL else addr
    try:
        return numbers.smpp_to_sip_user(addr, ton, 0)
    except numbers.AddressError:
        return None


#: data_coding -> charset L{single_text} decodes inline (the rest:
#: L{text.decode_payload}); C{None}: what C{dc0_charset} says
_INLINE_CODINGS = {0: None, 1: "ascii", 3: "latin1", 8: "ucs2"}


def single_text(payload: bytes, data_coding: int, dc0_charset: str):
    """
    The text of a single-part message without UDH, exactly as
    C{text.mo_part(...).decode(dc0_charset)} gives it, with the common
    codings inline (for the lane, L{gwsms.core.fastmo}).

    @return: the text, or C{None} for a binary coding.
    """
    charset = _INLINE_CODINGS.get(data_coding, "") if type(data_coding) is int else ""
    if charset is None:
        charset = dc0_charset
    if charset == "gsm":
        return gsm.decode(payload)
    if charset == "latin1":
        return payload.decode("latin-1")
    if charset == "ucs2":
        return payload.decode("utf-16-be", "replace")
    if charset == "ascii":
        return payload.decode("ascii", "replace")
    decoded = text.decode_payload(payload, data_coding, dc0_charset)
    return None if decoded.binary else decoded.text


class MoFlow:
    """
    The SMPP -> SIP half of the gateway.
    """

    _log = Logger()

    def __init__(self, ctx) -> None:
        """@param ctx: the L{gwsms.core.gateway.GatewayContext}."""
        self.ctx = ctx
        self.active: set[int] = set()
        self.reassembler = Reassembler(duplicate_window=ctx.config.dedup_window)

    # -- start ------------------------------------------------------------
    def load(self) -> defer.Deferred:
        """Rebuild the reassembly state from the stored fragments."""
        d = self.ctx.store.fragments()

        def loaded(rows):
            for key, seq, total, data_coding, payload, first_seen in rows:
                try:
                    link, source, dest, ref, _total = json.loads(key)
                    self.reassembler.add((link, source, dest, ref), seq, total, payload,
                                         data_coding, first_seen)
                except (ValueError, TypeError) as e:
                    self._log.warn("ignoring stored MO fragment {key!r}: {error}",
                                   key=key, error=e)
            return len(rows)

        return d.addCallback(loaded)

    # -- receiving --------------------------------------------------------
    def deliver_received(self, link_name: str, pdu) -> defer.Deferred:
        """
        Store a deliver_sm / data_sm; fires with the command_status to
        answer after the commit.
        """
        ctx = self.ctx
        params = pdu.params
        link = ctx.links.get(link_name)
        dc0 = getattr(link, "dc0_charset", "gsm")
        now = ctx.clock.seconds()
        data_coding = params.get("data_coding", 0)
        part = text.mo_part(params.get("short_message", b"") or b"", data_coding,
                            params.get("esm_class", 0), pdu.tlvs)
        source = params.get("source_addr", "")
        dest = params.get("destination_addr", "")
        if part.is_single:
            decoded = part.decode(dc0)
            key = dedup_key(MO, link_name, source, dest, data_coding, part.payload)
            return self._store(link_name, params, decoded, False, key, None, now)
        duplicates = self.reassembler.duplicates
        try:
            message = self.reassembler.add((link_name, source, dest, part.ref), part.seq,
                                           part.total, part.payload, part.data_coding, now)
        except ValueError as e:  # e.g. SAR with more than 255 parts: pass it on alone
            self._log.debug("smsc {link}: part not reassembled ({error})", link=link_name,
                            error=e)
            key = dedup_key(MO, link_name, source, dest, data_coding, part.payload, "alone")
            return self._store(link_name, params, part.decode(dc0), False, key, None, now)
        fkey = _frag_key(link_name, source, dest, part.ref, part.total)
        if message is None:
            if self.reassembler.duplicates != duplicates:
                return ctx.store.barrier().addCallback(lambda _: ROK)
            d = ctx.store.add_fragment(fkey, part.seq, part.total, part.data_coding,
                                       part.payload, now)
            return d.addCallback(lambda _: ROK)
        decoded = message.decode(dc0)
        key = (dedup_key(MO, link_name, source, dest, part.ref, part.total, message.payload),
               _reassembly_key(link_name, source, dest, part.ref, part.total))
        return self._store(link_name, params, decoded, False, key, fkey, now)

    def _store(self, link_name, params, decoded, partial, key, fkey, now) -> defer.Deferred:
        ctx = self.ctx
        if decoded.binary:
            body = decoded.data.hex()
            content_type = BINARY_TYPE if ctx.config.binary == "octet-stream" else "text/hex"
        else:
            body = decoded.text
            content_type = "text/plain"
        record = {
            "direction": MO, "state": "queued",
            "source_addr": params.get("source_addr", ""),
            "source_ton": params.get("source_addr_ton", 0),
            "source_npi": params.get("source_addr_npi", 0),
            "dest_addr": params.get("destination_addr", ""),
            "dest_ton": params.get("dest_addr_ton", 0),
            "dest_npi": params.get("dest_addr_npi", 0),
            "smsc": link_name, "body": body, "content_type": content_type,
            "data_coding": params.get("data_coding", 0), "partial": int(partial),
            "expires_at": now + ctx.config.mo_ttl,
            # delivered at once by this process; the queue runner takes it
            # only after a failure or a restart
            "next_attempt_at": now + _GRACE,
        }
        d = ctx.store.add(record, now, key=key, window=ctx.config.dedup_window,
                          fragments_key=fkey, with_parts=False,
                          event="partial" if partial else None)

        def stored(result):
            message_id, existing = result
            if existing is None and len(self.active) < ctx.config.max_pending:
                self.deliver(dict(record, id=message_id, attempts=0))
            # else: stored; the queue runner delivers it when there is room
            return ROK

        return d.addCallback(stored)

    def expire_reassembly(self, now: float) -> None:
        """Hand out (or drop) long messages whose parts did not all come."""
        config = self.ctx.config
        for message in self.reassembler.expired(now, config.reassembly_timeout):
            link, source, dest, ref, total = message.key
            fkey = _frag_key(link, source, dest, ref, total)
            if config.reassembly_partial == "drop":
                self._log.info("smsc {link}: dropping incomplete message from {source} "
                               "(parts {parts} of {total})", link=link, source=source,
                               parts=list(message.parts), total=total)
                d = self.ctx.store.drop_fragments(fkey)
            else:
                link_obj = self.ctx.links.get(link)
                decoded = message.decode(getattr(link_obj, "dc0_charset", "gsm"), gap=GAP)
                params = {"source_addr": source, "destination_addr": dest,
                          "data_coding": message.data_coding}
                # the same key as the complete message: a part the SMSC sent
                # again after the message was delivered (and a restart made
                # us forget it) expires as a duplicate, not as a new message
                key = _reassembly_key(link, source, dest, ref, total)
                d = self._store(link, params, decoded, True, key, fkey, now)
            d.addErrback(lambda f: self._log.failure("storing an expired reassembly", f))

    # -- SIP delivery -----------------------------------------------------
    def backoff(self, attempts: int) -> float:
        config = self.ctx.config
        return min(config.retry_max, config.retry_initial * 2 ** min(attempts - 1, 30))

    def deliver(self, row: dict) -> None:
        """Start the SIP delivery of a stored MO message (unless one runs)."""
        message_id = row["id"]
        if message_id in self.active:
            return
        self.active.add(message_id)
        d = defer.ensureDeferred(self._attempt(row))
        d.addErrback(lambda f: self._log.failure("mo {id}: delivery failed", f, id=message_id))

        def done(_):
            self.active.discard(message_id)
            self.ctx.job_ended(row, row.get("_written_at", 0.0))

        d.addBoth(done)

    async def _target(self, row: dict, dest_user: str):
        """@return: C{(uri, peer)} or C{(None, None)}."""
        ctx = self.ctx
        registrar = ctx.registrar
        if registrar is not None:
            try:
                bindings = await registrar.lookup(dest_user)
            except Exception as e:
                bindings = []
                self._log.warn("registrar lookup of {user} failed: {error}",
                               user=dest_user, error=e)
            for binding in bindings:
                try:
                    from gwsms.sip.registrar import binding_peer

                    return binding.contact_uri, binding_peer(binding)
                except ValueError:
                    return binding.contact_uri, None
        route = ctx.routing.mo_target(row["dest_addr"], row["source_addr"], row["smsc"])
        if route:
            return target_uri(route, dest_user), None
        if ctx.sip_config.outbound_uri:
            return target_uri(ctx.sip_config.outbound_uri, dest_user), None
        return None, None

    async def _attempt(self, row: dict) -> None:
        ctx = self.ctx
        message_id = row["id"]
        domain = ctx.sip_config.domain
        try:
            source_user = numbers.smpp_to_sip_user(row["source_addr"], row["source_ton"],
                                                   row["source_npi"])
            dest_user = numbers.smpp_to_sip_user(row["dest_addr"], row["dest_ton"],
                                                 row["dest_npi"])
        except numbers.AddressError as e:
            await self._finish(row, "failed", 0, f"bad address: {e}")
            return
        uri, peer = await self._target(row, dest_user)
        if uri is None:
            await self._retry(row, 0, "no SIP target (no registration, MO route or outbound_uri)")
            return
        body = row["body"]
        content_type = "text/plain;charset=UTF-8"
        if row["content_type"] == BINARY_TYPE:
            body = bytes.fromhex(body)
            content_type = BINARY_TYPE
        headers = (("X-SMSC", row["smsc"]), ("X-Gwsms-Message-Id", str(message_id)))
        try:
            response = await ctx.uac.send_message(
                uri, f"sip:{source_user}@{domain}", f"sip:{dest_user}@{domain}", body,
                content_type, headers, peer=peer)
        except Exception as e:
            await self._retry(row, 0, f"{uri}: {e or type(e).__name__}")
            return
        status = response.status
        if 200 <= status < 300:
            await self._finish(row, "delivered", status, f"{uri}: {status}")
        elif status in RETRY_STATUSES or 500 <= status < 600:
            await self._retry(row, status, f"{uri}: {status} {response.reason}")
        else:
            await self._finish(row, "failed", status, f"{uri}: {status} {response.reason}")

    async def _finish(self, row, state, status, detail) -> None:
        row["_written_at"] = now = self.ctx.clock.seconds()
        attempts = row.get("attempts", 0) + 1
        # success writes no history row (hot path): state and sip_to say it
        event = None if state == "delivered" else state
        await self.ctx.store.update(row["id"], now, event, detail, state=state,
                                    sip_status=status, attempts=attempts,
                                    sip_to=detail.split(": ", 1)[0][:512],
                                    last_error="" if state == "delivered" else detail)

    async def _retry(self, row, status, detail) -> None:
        row["_written_at"] = now = self.ctx.clock.seconds()
        attempts = row.get("attempts", 0) + 1
        row["attempts"] = attempts
        next_at = now + self.backoff(attempts)
        if row.get("expires_at") and next_at > row["expires_at"]:
            await self.ctx.store.update(row["id"], now, "expired", detail, state="expired",
                                        sip_status=status, attempts=attempts,
                                        last_error=detail)
            return
        await self.ctx.store.update(row["id"], now, "retry", detail, attempts=attempts,
                                    next_attempt_at=next_at, sip_status=status,
                                    last_error=detail)
