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
  overload (C{max_pending}) or the store fails           503 with Retry-After
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
from twisted.python.failure import Failure

from gwsms.core import cpim, numbers, text
from gwsms.sip.interfaces import SipAnswer
from gwsms.smpp.constants import CommandStatus as S
from gwsms.store.messages import MT, dedup_key

#: SMSC statuses after which the submit is tried again later
TEMPORARY = frozenset(int(s) for s in (
    S.ESME_RTHROTTLED, S.ESME_RMSGQFUL, S.ESME_RSYSERR, S.ESME_RX_T_APPN,
    S.ESME_RSUBMITFAIL, S.ESME_RINVBNDSTS, S.ESME_RUNKNOWNERR,
))

#: SMSC status -> SIP answer for permanent errors (default 502)
PERMANENT = {
    int(S.ESME_RINVDSTADR): (404, "Not Found (destination refused by the SMSC)"),
    int(S.ESME_RINVDSTTON): (404, "Not Found (destination refused by the SMSC)"),
    int(S.ESME_RINVDSTNPI): (404, "Not Found (destination refused by the SMSC)"),
    int(S.ESME_RINVSRCADR): (403, "Forbidden (sender refused by the SMSC)"),
    int(S.ESME_RINVSRCTON): (403, "Forbidden (sender refused by the SMSC)"),
    int(S.ESME_RINVSRCNPI): (403, "Forbidden (sender refused by the SMSC)"),
    int(S.ESME_RX_P_APPN): (403, "Forbidden (refused by the SMSC)"),
    int(S.ESME_RX_R_APPN): (403, "Forbidden (refused by the SMSC)"),
    int(S.ESME_RINVMSGLEN): (413, "Request Entity Too Large"),
    0x104: (488, "Not Acceptable Here (data coding refused by the SMSC)"),
    int(S.ESME_RINVESMCLASS): (488, "Not Acceptable Here (refused by the SMSC)"),
}

ACCEPTED = SipAnswer(202, "Accepted")


def status_name(status: int) -> str:
    """@return: the ESME_* name of an SMPP command_status, or its hex."""
    try:
        return S(status).name
    except ValueError:
        return f"0x{status:08X}"


def permanent_answer(status: int) -> SipAnswer:
    """@return: the SIP answer for a permanent SMSC error status."""
    code, reason = PERMANENT.get(status, (502, "Bad Gateway (refused by the SMSC)"))
    return SipAnswer(code, f"{reason[:-1] if reason.endswith(')') else reason}"
                     f"{', ' if reason.endswith(')') else ' ('}{status_name(status)})")


def coding_preference(link) -> str:
    """
    @param link: an L{gwsms.smpp.link.SmscLink} (or C{None}).
    @return: the L{gwsms.core.text.choose_coding} preference its
        C{default_data_coding} asks for: 3 -> C{"latin1"}, 8 -> C{"ucs2"},
        anything else -> C{"gsm"} (GSM 03.38 when the text fits, else UCS-2).
    """
    return {3: "latin1", 8: "ucs2"}.get(getattr(link, "default_data_coding", 0), "gsm")


class _Refused(Exception):
    def __init__(self, answer: SipAnswer):
        super().__init__(answer.reason)
        self.answer = answer


class MtJob:
    """
    One MT message being submitted (at most one job per message).
    """

    _log = Logger()

    def __init__(self, flow: "MtFlow", row: dict, answer: defer.Deferred | None,
                 submitted: dict[int, str] | None = None) -> None:
        self.flow = flow
        self.ctx = flow.ctx
        self.row = row
        self.id = row["id"]
        self.waiters: list[defer.Deferred] = [answer] if answer is not None else []
        self.submitted: dict[int, str] = dict(submitted or {})
        self.started = self.ctx.clock.seconds()
        self._timer = None
        self._outstanding = 0
        self._temporary: str | None = None
        self._failed: SipAnswer | None = None
        self._done = False
        #: time stamp of the last write to the message (see is_stale)
        self.last_write = 0.0

    # -- answers ----------------------------------------------------------
    def add_waiter(self) -> defer.Deferred:
        d = defer.Deferred()
        self.waiters.append(d)
        return d

    def _answer(self, answer: SipAnswer) -> None:
        waiters, self.waiters = self.waiters, []
        for d in waiters:
            d.callback(answer)
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    # -- submitting -------------------------------------------------------
    def start(self) -> None:
        if self.waiters:
            wait = self.ctx.config.down_wait
            self._timer = self.ctx.clock.callLater(wait, self._wait_over)
        self._attempt()

    def _segments(self, link):
        row = self.row
        cached = row.pop("_segments", None)
        if cached is not None and cached[0] == link.name:
            return cached[1]
        return text.split(
            row["body"], method=self.ctx.config.concat, max_parts=255,
            ref=row["concat_ref"], dc0_charset=getattr(link, "dc0_charset", "gsm"),
            prefer=coding_preference(link),
        )

    def _candidates(self) -> list[str]:
        if self.submitted:
            return [self.row["smsc"]]  # the rest goes where the first parts went
        row = self.row
        cached = row.pop("_candidates", None)
        if cached is not None:
            return cached
        return self.ctx.routing.mt_candidates(row["dest_addr"], row["source_addr"])

    def _attempt(self) -> None:
        """Submit every part that has no message id yet on the first bound link."""
        self._temporary = None
        for name in self._candidates():
            link = self.ctx.links.get(name)
            if link is None:
                continue
            try:
                calls = self._calls(link)
            except (numbers.AddressError, text.TextError, ValueError) as e:
                self._permanent(SipAnswer(400, f"Bad Request ({e})"), str(e))
                return
            if not calls:  # every part has its id already
                self.last_write = now = self.ctx.clock.seconds()
                d = self.ctx.store.update(self.id, now, state="submitted",
                                          only_if_state="queued")
                d.addErrback(lambda f: self._log.failure("mt {id}: state", f, id=self.id))
                self._finish_submitted()
                return
            seq, params, tlvs = calls[0]
            first = self.ctx.smpp.submit(name, params, tlvs)
            early: list = []

            def capture(result, early=early):
                early.append(result)
                return result

            first.addBoth(capture)
            if early and isinstance(early[0], Failure) and early[0].check(*_link_down()):
                first.addErrback(lambda f: None)
                continue  # not bound: next candidate
            self.row["smsc"] = name
            self._outstanding = len(calls)
            self._watch(first, seq, name)
            for seq, params, tlvs in calls[1:]:
                self._watch(self.ctx.smpp.submit(name, params, tlvs), seq, name)
            return
        self._link_unavailable("no bound SMSC link for this route")

    def _calls(self, link) -> list:
        row = self.row
        source = row.get("_source")
        if source is not None:
            source = _on_link(source, link.src_ton, link.src_npi)
        else:
            source = numbers.source_address(row["sip_from_user"], link)
        dest = row.get("_dest")
        if dest is not None:
            dest = _on_link(dest, link.dst_ton, link.dst_npi)
        else:
            dest = numbers.destination_address(row["dest_user"], link)
        segments = self._segments(link)
        calls = []
        for seq, segment in enumerate(segments, 1):
            if seq in self.submitted:
                continue
            params = {
                "source_addr_ton": source.ton, "source_addr_npi": source.npi,
                "source_addr": source.addr, "dest_addr_ton": dest.ton,
                "dest_addr_npi": dest.npi, "destination_addr": dest.addr,
                "esm_class": segment.esm_class,
                "registered_delivery": row["registered_delivery"],
                "data_coding": segment.data_coding, "short_message": segment.short_message,
            }
            calls.append((seq, params, dict(segment.tlvs) or None))
        return calls

    def _watch(self, d, seq, name) -> None:
        d.addCallbacks(self._part_result, self._part_error, (seq, name), None, (seq, name))
        d.addErrback(lambda f: self._log.failure("mt {id}: part result", f, id=self.id))

    def _part_result(self, result, seq, name) -> None:
        status = int(result.status)
        if status == 0:
            self.submitted[seq] = result.message_id or ""
            store = self.ctx.store
            self.last_write = now = self.ctx.clock.seconds()
            d = store.part_submitted(self.id, seq, name, result.message_id or "", now,
                                     bool(self.row["registered_delivery"]))
            d.addErrback(lambda f: self._log.failure("mt {id}: recording part", f, id=self.id))
        elif status in TEMPORARY:
            self._temporary = status_name(status)
        else:
            self._failed = self._failed or permanent_answer(status)
        self._part_done()

    def _part_error(self, failure, seq, name) -> None:
        self._temporary = failure.getErrorMessage() or failure.type.__name__
        self._part_done()

    def _part_done(self) -> None:
        self._outstanding -= 1
        if self._outstanding > 0:
            return
        if self._failed is not None:
            self._permanent(self._failed, self._failed.reason)
        elif self._temporary is not None:
            self._temporary_failure(self._temporary)
        else:
            self._finish_submitted()

    # -- outcomes ---------------------------------------------------------
    def _finish_submitted(self) -> None:
        self._answer(ACCEPTED)
        self._end()

    def _permanent(self, answer: SipAnswer, why: str) -> None:
        self.last_write = now = self.ctx.clock.seconds()
        d = self.ctx.store.update(self.id, now, "failed", why, state="failed",
                                  sip_status=answer.status, last_error=why)
        d.addErrback(lambda f: self._log.failure("mt {id}: recording failure", f, id=self.id))
        if not self.waiters and self.ctx.notify is not None:
            # the sender was told 202 already: a negative notification if asked
            self.ctx.notify(self.row, "undeliverable")
        self._answer(answer)
        self._end()

    def _link_unavailable(self, why: str) -> None:
        self._temporary_failure(why, link_down=True)

    def _temporary_failure(self, why: str, link_down: bool = False) -> None:
        clock = self.ctx.clock
        now = clock.seconds()
        config = self.ctx.config
        if self.waiters and now - self.started < config.down_wait:
            # still within the answer's wait: try again soon, in memory
            delay = min(0.5, max(0.05, config.down_wait - (now - self.started)))
            self._retry_call = clock.callLater(delay, self._attempt)
            return
        if self.waiters:
            self._wait_over()
        attempts = self.row.get("attempts", 0) + 1
        self.row["attempts"] = attempts
        if self._done:
            return
        self.last_write = now
        d = self.ctx.store.update(
            self.id, now, "retry", why, attempts=attempts,
            next_attempt_at=now + self.flow.backoff(attempts), last_error=why,
            smsc=self.row["smsc"])
        d.addErrback(lambda f: self._log.failure("mt {id}: recording retry", f, id=self.id))
        self._end()

    def _wait_over(self) -> None:
        """C{down_wait} passed before the outcome was known."""
        self._timer = None
        if not self.waiters:
            return
        config = self.ctx.config
        if config.queue_when_down:
            self._answer(ACCEPTED)
            return
        if self._outstanding > 0:
            return  # a submit_sm may be on its way: wait for the SMSC's answer
        if self.submitted:
            # parts are at the SMSC already: refusing would make the sender
            # send them again, so the rest stays queued
            self._answer(ACCEPTED)
            return
        retry = getattr(self, "_retry_call", None)
        if retry is not None and retry.active():
            retry.cancel()
        answer = SipAnswer(503, "Service Unavailable (no SMSC link available)",
                           (("Retry-After", str(config.retry_after)),))
        self.last_write = now = self.ctx.clock.seconds()
        d = self.ctx.store.update(self.id, now, "rejected", "answered 503", state="rejected",
                                  sip_status=503, only_if_state="queued")
        d.addErrback(lambda f: self._log.failure("mt {id}: recording 503", f, id=self.id))
        self._answer(answer)
        self._end()

    def _end(self) -> None:
        if not self._done:
            self._done = True
            self.flow.job_ended(self)


def _link_down():
    from gwsms.smpp.service import LinkDown, NoSuchLink

    return (LinkDown, NoSuchLink)


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
        if self.pending + len(self.active) >= config.max_pending:
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
        method = config.concat
        ref = next(self._refs) % (256 if method == "udh8" else 65536)
        try:
            segments = text.split(body, method=method, max_parts=config.max_parts, ref=ref,
                                  dc0_charset=getattr(link, "dc0_charset", "gsm"),
                                  prefer=coding_preference(link))
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
            return self._duplicate(message_id, existing)
        row = dict(record, id=message_id, attempts=0, **extras)
        answer = None
        if self.ctx.config.sip_reply == "submitted":
            answer = defer.Deferred()
        job = self._start(row, answer)
        if answer is None:
            return ACCEPTED
        return answer if job is not None else ACCEPTED

    def _duplicate(self, message_id: int, row: dict):
        job = self.active.get(message_id)
        if job is not None and job.waiters:
            return job.add_waiter()
        if row["state"] in ("failed", "rejected") and row["sip_status"]:
            reason = "Service Unavailable" if row["sip_status"] == 503 else row["last_error"]
            headers = ((("Retry-After", str(self.ctx.config.retry_after)),)
                       if row["sip_status"] == 503 else ())
            return SipAnswer(row["sip_status"], reason or None, headers)
        return ACCEPTED

    def _start(self, row: dict, answer=None, submitted=None) -> MtJob | None:
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
        self._start(dict(row), None, submitted)


def _on_link(address, ton: int, npi: int):
    """
    An address mapped without link defaults (TON/NPI 0), on a link: an
    international (+) or alphanumeric address keeps its TON/NPI, any other
    number takes the link's.
    """
    if address.ton in (numbers.TON_INTERNATIONAL, numbers.TON_ALPHANUMERIC):
        return address
    return numbers.Address(address.addr, ton, npi)


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
