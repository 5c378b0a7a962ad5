# -*- test-case-name: tests.test_core_mt -*-
"""
One MT message being submitted: L{MtJob} (used by L{gwsms.core.mt.MtFlow}),
and the SMSC status -> SIP answer mapping (the table is in
L{gwsms.core.mt}).
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from gwsms.core import numbers, text
from gwsms.sip.interfaces import SipAnswer
from gwsms.smpp.constants import CommandStatus as S

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


#: a connection's default_data_coding -> L{coding_preference} (else "gsm")
_PREFERENCE_BY_DATA_CODING = {3: "latin1", 8: "ucs2"}


def coding_preference(link, body: str = "") -> str:
    """
    @param link: an L{gwsms.smpp.link.SmscLink} (or C{None}).
    @param body: the text (for C{coding = latin1}).
    @return: the L{gwsms.core.text.choose_coding} preference for the text
        on that connection: C{coding} C{"ucs2"} -> C{"ucs2"}; C{"latin1"}
        -> C{"latin1"} when every character fits Latin-1, else C{"ucs2"};
        C{"auto"} -> by C{default_data_coding}: 3 -> C{"latin1"}, 8 ->
        C{"ucs2"}, anything else -> C{"gsm"} (GSM 03.38 when the text fits,
        else UCS-2).
    """
    coding = getattr(link, "coding", "auto")
    if coding == "ucs2":
        return "ucs2"
    if coding == "latin1":
        try:
            body.encode("latin-1")
        except UnicodeEncodeError:
            return "ucs2"
        return "latin1"
    return _PREFERENCE_BY_DATA_CODING.get(getattr(link, "default_data_coding", 0), "gsm")


def split_options(link, config) -> tuple[str, int]:
    """
    @param link: an L{gwsms.smpp.link.SmscLink} (or C{None}).
    @param config: the L{gwsms.config.GatewayConfig}.
    @return: C{(concat method, most parts)} for long MT messages on that
        connection: its C{concat} / C{max_parts} columns, or the
        C{[gateway]} settings where they are empty / 0.
    """
    if link is None:
        return config.concat, config.max_parts
    return (getattr(link, "concat", "") or config.concat,
            getattr(link, "max_parts", 0) or config.max_parts)


def split_for(body: str, link, config, ref: int, max_parts: int | None = None) -> list:
    """
    Split an MT text for one connection (its coding and concatenation
    options; a udh8 reference is cut to 8 bits).

    @param max_parts: the limit; C{None}: the connection's.
    @return: the L{gwsms.core.text.Segment}s.
    @raise text.TooLong: more parts than allowed.
    """
    method, limit = split_options(link, config)
    return text.split(
        body, method=method, max_parts=limit if max_parts is None else max_parts,
        ref=ref & 0xFF if method == "udh8" else ref,
        dc0_charset=getattr(link, "dc0_charset", "gsm"), prefer=coding_preference(link, body),
    )


class SplitChanged(text.TextError):
    """The rest of a partly sent message would be split differently."""


class MtJob:
    """
    One MT message being submitted (at most one job per message): submits
    every part without an SMSC id on the first bound candidate link, then
    records the outcome and answers the waiting SIP transaction(s).

    @ivar waiters: Deferreds of SIP answers still to give.
    @ivar submitted: C{{seq: smsc_message_id}} of the parts accepted.
    """

    _log = Logger()

    def __init__(self, flow, row: dict, answer: defer.Deferred | None,
                 submitted: dict[int, str] | None = None) -> None:
        """
        @param flow: the L{gwsms.core.mt.MtFlow} (backoff, job_ended, ctx).
        @param row: the message row (plus in-memory extras from the check).
        @param answer: the Deferred for the SIP answer, or C{None}.
        @param submitted: parts with an SMSC id already (after a restart).
        """
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
        """
        The message split for C{link}.  Parts already submitted keep their
        link (then only that link is a candidate and the limit is not
        checked again); before that, a link whose options need more parts
        than it allows raises L{text.TooLong} (the next candidate is tried).
        """
        row = self.row
        cached = row.pop("_segments", None)
        if cached is not None and cached[0] == link.name:
            return cached[1]
        return split_for(row["body"], link, self.ctx.config, row["concat_ref"],
                         max_parts=text.MAX_PARTS if self.submitted else None)

    def _resplit(self, segments) -> None:
        """
        Record a new part count / coding (split for another link, nothing
        sent).

        @raise SplitChanged: parts were sent already and the link's options
            changed since (the rest would not fit the parts sent).
        """
        row = self.row
        if len(segments) == row["parts_total"] and segments[0].data_coding == row["data_coding"]:
            return
        if self.submitted:
            raise SplitChanged(
                f"{len(self.submitted)} of {row['parts_total']} parts were sent before the "
                f"connection's text options changed; the message now splits into "
                f"{len(segments)} parts with data_coding {segments[0].data_coding}")
        row["parts_total"] = len(segments)
        row["data_coding"] = segments[0].data_coding
        self.last_write = now = self.ctx.clock.seconds()
        d = self.ctx.store.set_parts(self.id, now, len(segments), segments[0].data_coding)
        d.addErrback(lambda f: self._log.failure("mt {id}: new split", f, id=self.id))

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
        too_long = None
        unavailable = False
        for name in self._candidates():
            link = self.ctx.links.get(name)
            if link is None:
                unavailable = True
                continue
            try:
                calls = self._calls(link)
            except text.TooLong as e:
                too_long = e  # this link allows fewer parts: try the next
                continue
            except SplitChanged as e:
                self._permanent(SipAnswer(500, "Server Internal Error (split changed)"), str(e))
                return
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
                unavailable = True
                continue  # not bound: next candidate
            self.row["smsc"] = name
            self._outstanding = len(calls)
            self._watch(first, seq, name)
            for seq, params, tlvs in calls[1:]:
                self._watch(self.ctx.smpp.submit(name, params, tlvs), seq, name)
            return
        if too_long is not None and not unavailable:
            self._permanent(SipAnswer(413, f"Request Entity Too Large ({too_long})"),
                            str(too_long))
            return
        self._link_unavailable("no bound SMSC link for this route")

    def _calls(self, link) -> list:
        row = self.row
        source = row.get("_source")
        if source is not None:
            source = on_link(source, link.src_ton, link.src_npi)
        else:
            source = numbers.source_address(row["sip_from_user"], link)
        dest = row.get("_dest")
        if dest is not None:
            dest = on_link(dest, link.dst_ton, link.dst_npi)
        else:
            dest = numbers.destination_address(row["dest_user"], link)
        segments = self._segments(link)
        self._resplit(segments)
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


def on_link(address, ton: int, npi: int):
    """
    An address mapped without link defaults (TON/NPI 0), on a link: an
    international (+) or alphanumeric address keeps its TON/NPI, any other
    number takes the link's.
    """
    if address.ton in (numbers.TON_INTERNATIONAL, numbers.TON_ALPHANUMERIC):
        return address
    return numbers.Address(address.addr, ton, npi)
