# -*- test-case-name: tests.test_core_mt -*-
"""
SIP -> SMPP (mobile terminated): a MESSAGE becomes stored submit_sm parts.

C{MtFlow.message_received} checks and routes the MESSAGE, splits the text,
stores the message (group commit, duplicate recognition by Call-ID, CSeq,
From tag and sender) and then, by C{[gateway] sip_reply}:

  - C{accepted}: answers 202 once the message is stored and submits in the
    background;
  - C{submitted}: submits at once and answers when every part has its
    C{submit_sm_resp} (or C{down_wait} has passed).

SIP answers (the mapping table, also in the README):

  ====================================================  =====================
  situation                                             answer
  ====================================================  =====================
  every part accepted by the SMSC (or stored, accepted) 202 Accepted
  no route for the destination                          404 Not Found
  destination not a number                              484 Address Incomplete
  bad sender address / undecodable body                 400 Bad Request
  more than C{max_parts} parts                          413 Request Entity Too Large
  ESME_RINVDSTADR / ESME_RINVDSTTON / ESME_RINVDSTNPI   404 Not Found
  ESME_RINVSRCADR / ESME_RINVSRCTON / ESME_RINVSRCNPI   403 Forbidden
  ESME_RX_P_APPN / ESME_RX_R_APPN                       403 Forbidden
  ESME_RINVMSGLEN                                       413 Request Entity Too Large
  ESME_RINVDCS (0x104, v5.0) / ESME_RINVESMCLASS       488 Not Acceptable Here
  other permanent SMSC errors                           502 Bad Gateway
  overload (C{max_pending}, C{max_lag}) or store fails   503 with Retry-After
  binds down, throttled, temporary SMSC errors,         202 (kept queued) or, with
  no submit_sm_resp within C{down_wait}                 queue_when_down = false and
                                                        nothing sent yet, 503 with
                                                        Retry-After
  ====================================================  =====================

Temporary errors (ESME_RTHROTTLED, ESME_RMSGQFUL, ESME_RSYSERR,
ESME_RX_T_APPN, ESME_RSUBMITFAIL, ESME_RINVBNDSTS, ESME_RUNKNOWNERR,
timeouts, lost connections) leave the message queued; the queue runner
retries it with backoff until it is submitted or C{mt_ttl} passes.

Exactly-once per part: each part's C{submit_sm_resp} message id is stored
as soon as it arrives and a part with an id is never submitted again, not
after a reconnect nor after a restart.  A part whose C{submit_sm} was in
flight when the gateway died has no id and is submitted again on restart
(at-least-once at that one boundary).  Once a part of a message has been
submitted on one SMSC, the remaining parts go to the same SMSC.
"""

from __future__ import annotations

import itertools
import random as _random

from twisted.internet import defer
from twisted.logger import Logger

from gwsms.core import cpim, numbers, text
from gwsms.core.mtjob import (  # noqa: F401  (re-exported API)
    ACCEPTED,
    PERMANENT,
    TEMPORARY,
    MtJob,
    coding_preference,
    permanent_answer,
    split_for,
    split_options,
    status_name,
)
from gwsms.sip.interfaces import SipAnswer
from gwsms.store.messages import MT, dedup_key

__all__ = ["MtFlow", "MtJob", "ACCEPTED", "PERMANENT", "TEMPORARY", "coding_preference",
           "permanent_answer", "split_for", "split_options", "status_name"]


class _Refused(Exception):
    def __init__(self, answer: SipAnswer):
        super().__init__(answer.reason)
        self.answer = answer


class MtFlow:
    """
    The SIP -> SMPP half of the gateway.
    """

    _log = Logger()

    def __init__(self, ctx, random=_random.random) -> None:
        """
        @param ctx: the L{gwsms.core.gateway.GatewayContext}.
        @param random: random source for the first concatenation reference.
        """
        self.ctx = ctx
        self.active: dict[int, MtJob] = {}
        #: MESSAGEs being stored (not yet a job)
        self.pending = 0
        #: MESSAGEs refused with 503 for overload
        self.shed = 0
        self._refs = itertools.count(int(random() * 65536))

    def backoff(self, attempts: int) -> float:
        """@return: seconds before retry number C{attempts} (1-based)."""
        config = self.ctx.config
        return min(config.retry_max, config.retry_initial * 2 ** min(attempts - 1, 30))

    def message_received(self, message) -> defer.Deferred:
        """
        L{gwsms.sip.interfaces.IMessageHandler.message_received}.

        @return: Deferred firing with the L{SipAnswer}.
        """
        config = self.ctx.config
        if self.pending + len(self.active) >= config.max_pending or self.ctx.lag.overloaded():
            self.shed += 1
            return defer.succeed(SipAnswer(503, "Service Unavailable (overloaded)",
                                           (("Retry-After", str(config.retry_after)),)))
        try:
            record, key, extras = self._prepare(message)
        except _Refused as e:
            return defer.succeed(e.answer)
        now = self.ctx.clock.seconds()
        self.pending += 1
        d = self.ctx.store.add(record, now, key=key, window=config.dedup_window)

        def stored(result):
            self.pending -= 1
            return result

        d.addBoth(stored)
        d.addCallbacks(self._stored, self._store_failed, (record, extras))
        return d

    def _store_failed(self, failure) -> SipAnswer:
        """The message could not be stored: the sender must try again later."""
        self._log.failure("storing an MT message failed", failure)
        return SipAnswer(503, "Service Unavailable (message store)",
                         (("Retry-After", str(self.ctx.config.retry_after)),))

    def _prepare(self, message) -> tuple[dict, str, dict]:
        ctx = self.ctx
        config = ctx.config
        request = message.request
        try:
            body = text.body_to_text(message.body, message.charset)
        except text.TextError as e:
            raise _Refused(SipAnswer(400, f"Bad Request ({e})")) from None
        try:
            sender_user = _uri_user(request, "From", message.sender_uri)
            source = numbers.sip_user_to_smpp(sender_user, default_ton=0, default_npi=0)
        except numbers.AddressError as e:
            raise _Refused(SipAnswer(400, f"Bad Request (sender: {e})")) from None
        try:
            try:
                dest_user = _uri_user(request, "", message.recipient_uri)
            except numbers.AddressError:
                dest_user = numbers.user_from_uri(str(request.to.uri))
            dest = numbers.sip_user_to_smpp(dest_user, default_ton=0, default_npi=0,
                                            alphanumeric=False)
        except numbers.AddressError as e:
            raise _Refused(SipAnswer(484, f"Address Incomplete ({e})")) from None
        candidates = ctx.routing.mt_candidates(dest.addr, source.addr)
        if not candidates:
            raise _Refused(SipAnswer(404, "Not Found (no route)"))
        link = ctx.links.get(candidates[0])
        method = split_options(link, config)[0]
        ref = self.next_ref(method)
        try:
            segments = split_for(body, link, config, ref)
        except text.TooLong as e:
            raise _Refused(SipAnswer(413, f"Request Entity Too Large ({e})")) from None
        except (text.TextError, ValueError) as e:
            raise _Refused(SipAnswer(400, f"Bad Request ({e})")) from None
        imdn_id = imdn_want = imdn_datetime = imdn_to = ""
        if message.content_type == "message/cpim":
            try:
                wrapper = cpim.parse_cpim(request.body)
            except cpim.CpimError:
                wrapper = None
            if wrapper is not None:
                wanted = cpim.wants_imdn(wrapper)
                if wanted:
                    imdn_id = cpim.imdn_message_id(wrapper) or ""
                    imdn_want = ",".join(sorted(wanted))
                    imdn_datetime = wrapper.get("DateTime") or ""
                    imdn_to = wrapper.get("To") or ""
        registered = config.registered_delivery
        if ctx.routing.has_registered_delivery:
            # the route that put the first connection in the list decides
            route = ctx.routing.mt_route(dest.addr, source.addr, candidates[0])
            if route is not None and route.registered_delivery is not None:
                registered = route.registered_delivery
        if config.receipts == "text" or {"positive-delivery", "negative-delivery"} & set(
                imdn_want.split(",")):
            registered = registered or 1
        now = ctx.clock.seconds()
        record = {
            "direction": MT, "state": "queued",
            "source_addr": source.addr, "source_ton": source.ton, "source_npi": source.npi,
            "dest_addr": dest.addr, "dest_ton": dest.ton, "dest_npi": dest.npi,
            "smsc": candidates[0], "sip_from": message.sender_uri,
            "sip_to": message.recipient_uri, "call_id": request.call_id or "",
            "body": body, "content_type": message.content_type,
            "data_coding": segments[0].data_coding, "concat_ref": ref,
            "parts_total": len(segments), "registered_delivery": registered,
            "imdn_id": imdn_id, "imdn_want": imdn_want, "imdn_datetime": imdn_datetime,
            "imdn_to": imdn_to, "expires_at": now + config.mt_ttl,
            # the job submits now; the queue runner (which skips messages
            # with a live job) only after a failure or a restart
            "next_attempt_at": now + config.down_wait + 1.0,
        }
        try:
            from_tag = request.from_.params.get("tag") or ""
        except Exception:
            from_tag = ""
        cseq = request.headers.get("CSeq") or ""
        key = dedup_key(MT, request.call_id or "", cseq, from_tag, message.sender_uri)
        # in-memory only: what the first attempt can reuse
        extras = {"sip_from_user": sender_user, "dest_user": dest_user, "_source": source,
                  "_dest": dest, "_candidates": candidates,
                  "_segments": (candidates[0], segments)}
        return record, key, extras

    def _stored(self, result, record, extras) -> defer.Deferred | SipAnswer:
        message_id, existing = result
        if existing is not None:
            return self.duplicate_answer(message_id, existing)
        row = dict(record, id=message_id, attempts=0, **extras)
        answer = None
        if self.ctx.config.sip_reply == "submitted":
            answer = defer.Deferred()
        job = self.start_job(row, answer)
        if answer is None:
            return ACCEPTED
        return answer if job is not None else ACCEPTED

    def next_ref(self, method: str) -> int:
        """
        @param method: the link's split method (L{gwsms.core.mtjob.split_options}).
        @return: the concatenation reference of the next message: 8 bits
            for C{udh8}, else 16.
        """
        return next(self._refs) % (256 if method == "udh8" else 65536)

    def duplicate_answer(self, message_id: int, row: dict):
        """
        The answer to a MESSAGE the store recognised as a duplicate of
        message C{message_id} (the full path and the lane).

        @param row: the stored message's row.
        @return: a L{SipAnswer}, or a Deferred firing with the answer still
            to come for the original (its job or lane transaction waits).
        """
        job = self.active.get(message_id)
        if job is not None and job.waiters:
            return job.add_waiter()
        if row["state"] in ("failed", "rejected") and row["sip_status"]:
            reason = "Service Unavailable" if row["sip_status"] == 503 else row["last_error"]
            headers = ((("Retry-After", str(self.ctx.config.retry_after)),)
                       if row["sip_status"] == 503 else ())
            return SipAnswer(row["sip_status"], reason or None, headers)
        return ACCEPTED

    def start_job(self, row: dict, answer=None, submitted=None) -> MtJob | None:
        """
        Start an L{MtJob} for a stored message, unless one is active.

        @param answer: a Deferred to fire with the SIP answer, or C{None}.
        @param submitted: C{{seq: smsc message id}} of parts already submitted.
        @return: the job, or C{None} when the message already had one.
        """
        if row["id"] in self.active:
            return None
        row.setdefault("sip_from_user", _user(row["sip_from"], row["source_addr"]))
        row.setdefault("dest_user", _dest_user(row))
        job = MtJob(self, row, answer, submitted)
        self.active[row["id"]] = job
        job.start()
        return job

    def job_ended(self, job: MtJob) -> None:
        """Called by a job once its outcome is recorded (or handed to the queue)."""
        if self.active.get(job.id) is job:
            del self.active[job.id]
        self.ctx.job_ended(job.row, job.last_write)

    def resume(self, row: dict, parts) -> None:
        """
        Start a job for a queued message from the store (queue runner,
        restart).

        @param row: the message row.
        @param parts: C{[(seq, state, smsc_message_id)]} of its parts.
        """
        submitted = {seq: mid for seq, state, mid in parts if state != "pending"}
        self.start_job(dict(row), None, submitted)


def _uri_user(request, header: str, text_uri: str) -> str:
    """
    The user part of the From (C{header="From"}) or Request-URI
    (C{header=""}), from the request's cached parse when it is a plain
    sip:/sips: user, else through L{numbers.user_from_uri}.
    """
    try:
        uri = request.from_.uri if header == "From" else request.request_uri
    except Exception:
        uri = None
    user = getattr(uri, "user", None)
    if user and getattr(uri, "scheme", "") in ("sip", "sips") and ";" not in user \
            and "user" not in getattr(uri, "params", {}):
        return user
    return numbers.user_from_uri(text_uri)


def _user(uri: str, fallback: str) -> str:
    try:
        return numbers.user_from_uri(uri)
    except numbers.AddressError:
        return fallback


def _dest_user(row: dict) -> str:
    if row["dest_ton"] == numbers.TON_INTERNATIONAL:
        return "+" + row["dest_addr"]
    return row["dest_addr"]
