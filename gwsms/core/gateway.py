# -*- test-case-name: tests.test_core_gateway -*-
"""
The gateway core: what the SIP side hands MESSAGEs to and the SMPP side
hands deliver_sm / data_sm to.

L{Gateway} implements both L{gwsms.sip.interfaces.IMessageHandler} (SIP ->
SMPP, L{gwsms.core.mt}) and L{gwsms.smpp.interfaces.IDeliverySink}
(SMPP -> SIP, L{gwsms.core.mo}; delivery receipts, L{gwsms.core.dlr}), and
runs the queue: every C{queue_interval} seconds it resumes due work from
the store (retries after temporary failures, work left by a previous
process), expires old messages, times out MO reassembly and forgets old
duplicate keys.  All state lives in the store, so a new gateway over the
same database picks up where the last one stopped.
"""

from __future__ import annotations

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger
from zope.interface import implementer

from gwsms.core import receipts
from gwsms.core.dlr import DlrFlow
from gwsms.core.mo import MoFlow
from gwsms.core.mt import MtFlow
from gwsms.core.overload import LagMonitor
from gwsms.core.routing import RoutingTable
from gwsms.sip.interfaces import IMessageHandler
from gwsms.smpp.constants import CommandStatus
from gwsms.smpp.interfaces import IDeliverySink
from gwsms.store.messages import MO, MT
from gwsms.store.purge import RetentionPurger

#: seconds a finished message id is remembered so that a stale queue read
#: cannot start it again
_RECENT = 10.0
#: due rows read per query, and most jobs the queue runner keeps alive
_PAGE = 500
_MAX_LIVE = 5000
#: most transactions of expired duplicate keys one queue pass deletes
#: (L{gwsms.store.messages.MessageStore.purge_dedup}: 2,000 keys each,
#: ~50 ms of the writer on the benchmark machine)
_DEDUP_PURGE_CHUNKS_PER_PASS = 25


class GatewayContext:
    """
    What the flows share: configuration, collaborators, links and routes.

    @ivar links: C{{name: SmscLink}}.
    @ivar routing: the current L{RoutingTable}.
    """

    def __init__(self, clock, config, sip_config, store, smpp=None, uac=None,
                 registrar=None) -> None:
        self.clock = clock
        self.config = config
        self.sip_config = sip_config
        self.store = store
        self.smpp = smpp
        self.uac = uac
        self.registrar = registrar
        #: event-loop lag: MESSAGEs are shed while it says overloaded
        self.lag = LagMonitor(clock, max_lag=getattr(config, "max_lag", 0.0))
        self.links: dict = {}
        self.routing = RoutingTable(())
        #: C{callable(row, outcome)}: tell an MT sender how its message ended
        self.notify = None
        self._recent: dict[int, float] = {}

    def job_ended(self, row: dict, written_at: float) -> None:
        """
        A job (submit or SIP delivery) for C{row} ended.

        The queue runner may have read the row before the job's last write
        committed; such a stale row must not start the work again.  That
        can only matter when the row as it was before the job was due
        (soon), so only those are remembered (a few seconds, bounded by
        the retry traffic, not by the message rate).

        @param row: the message row the job worked on (its
            C{next_attempt_at} as the job found it).
        @param written_at: the C{updated_at} of the job's last write.
        """
        now = self.clock.seconds()
        if row.get("next_attempt_at", 0.0) <= now + _RECENT:
            self._recent.pop(row["id"], None)  # keep insertion order = time order
            self._recent[row["id"]] = written_at

    def is_stale(self, row: dict) -> bool:
        """
        @return: whether C{row} was read before the last change made by a
            job that just ended (so the row's state cannot be trusted).
        """
        ended = self._recent.get(row["id"])
        return ended is not None and row["updated_at"] < ended

    def forget_recent(self, now: float) -> None:
        """Forget jobs that ended long ago (oldest first, stops at a young one)."""
        old = []
        for message_id, when in self._recent.items():
            if now - when <= _RECENT:
                break
            old.append(message_id)
        for message_id in old:
            del self._recent[message_id]


@implementer(IMessageHandler, IDeliverySink)
class Gateway(service.Service):
    """
    The SIP <-> SMPP gateway core, as a service (start: load reassembly
    state, run the queue; stop: stop the queue, commit pending writes).

    @ivar mt: the L{MtFlow}.  @ivar mo: the L{MoFlow}.  @ivar dlr: the L{DlrFlow}.
    """

    _log = Logger()

    def __init__(self, clock, config, sip_config, store, *, smpp=None, uac=None,
                 registrar=None, links=(), routes=()) -> None:
        """
        @param clock: C{IReactorTime}.
        @param config: the L{gwsms.config.GatewayConfig}.
        @param sip_config: the L{gwsms.config.SipConfig} (domain, outbound_uri).
        @param store: a L{gwsms.store.messages.MessageStore}.
        @param smpp: the L{gwsms.smpp.service.SmppService} (or L{attach} later).
        @param uac: the L{gwsms.sip.ua.MessageUAC}.
        @param registrar: the L{gwsms.sip.registrar.Registrar} or C{None}.
        @param links: the L{gwsms.smpp.link.SmscLink} rows.
        @param routes: the L{gwsms.core.routing.Route} rows.
        """
        self.ctx = GatewayContext(clock, config, sip_config, store, smpp, uac, registrar)
        self.set_links(links)
        self.set_routes(routes)
        self.mt = MtFlow(self.ctx)
        self.mo = MoFlow(self.ctx)
        self.dlr = DlrFlow(self.ctx)
        self.ctx.notify = self.dlr.notify
        #: the PDU the lane declined in L{deliver_then} (not tried twice)
        self._declined = None
        #: the SMPP -> SIP lane (L{gwsms.core.fastmo}), see L{set_fast_mo}
        self.fast_mo = None
        self._loop = None
        self._running_queue = None
        #: deletes final-state messages older than C{[gateway] retention}
        #: (with several worker processes, only worker 0's gateway does)
        purge_db = getattr(store, "db", None) if getattr(store, "owner", None) in (None, 0) \
            else None
        self.retention = RetentionPurger(purge_db, clock, getattr(config, "retention", 0.0))
        #: fires once started (reassembly state loaded, queue running)
        self.ready: defer.Deferred = defer.Deferred()

    def attach(self, smpp=None, uac=None, registrar=None) -> None:
        """Hand in collaborators built after the gateway (they need it as handler)."""
        if smpp is not None:
            self.ctx.smpp = smpp
        if uac is not None:
            self.ctx.uac = uac
        if registrar is not None:
            self.ctx.registrar = registrar

    def set_links(self, links) -> None:
        """@param links: the current SMSC link rows."""
        self.ctx.links = {link.name: link for link in links}

    def set_routes(self, routes) -> None:
        """@param routes: the current L{gwsms.core.routing.Route} rows."""
        self.ctx.routing = RoutingTable(routes)

    def set_fast_mo(self, transport_layer, t1: float = 0.5, t2: float = 4.0):
        """
        Turn on the SMPP -> SIP lane (L{gwsms.core.fastmo}) over the SIP
        transport layer's UDP listener.

        @param transport_layer: the L{gwsms.sip.transport.TransportLayer}.
        @param t1: RFC 3261 T1.  @param t2: T2.
        @return: the L{gwsms.core.fastmo.FastMoLane}.
        """
        from gwsms.core.fastmo import FastMoLane

        self.fast_mo = FastMoLane(self.ctx, self.mo, transport_layer, t1, t2)
        return self.fast_mo

    # -- IMessageHandler / IDeliverySink ----------------------------------
    def message_received(self, message) -> defer.Deferred:
        """
        A SIP MESSAGE: see L{gwsms.core.mt}.

        @return: Deferred firing with the L{gwsms.sip.interfaces.SipAnswer}.
        """
        return self.mt.message_received(message)

    def deliver_then(self, link_name: str, pdu, answer) -> bool:
        """
        The hot path's way in (L{gwsms.smpp.esme}): the SMPP -> SIP lane
        takes a plain deliver_sm without a Deferred.

        @param answer: called once with the command_status, after the commit.
        @return: C{False} when the lane does not take it (then the session
            calls L{deliver_received}).
        """
        lane = self.fast_mo
        if lane is None or not self.running:
            return False
        try:
            if lane.take_then(link_name, pdu, answer):
                return True
        except Exception:
            self._log.failure("smsc {link}: MO lane failed on {command}; slow path",
                              link=link_name, command=pdu.command)
        self._declined = pdu  # deliver_received comes next: not the lane again
        return False

    def deliver_received(self, link_name: str, pdu) -> defer.Deferred:
        """A deliver_sm / data_sm: a receipt (L{gwsms.core.dlr}) or an MO message."""
        lane = self.fast_mo
        declined, self._declined = self._declined, None
        if lane is not None and self.running and pdu is not declined:
            # the lane takes only plain messages (never a receipt)
            try:
                taken = lane.take(link_name, pdu)
            except Exception:
                self._log.failure("smsc {link}: MO lane failed on {command}; slow path",
                                  link=link_name, command=pdu.command)
                taken = None
            if taken is not None:
                return taken  # fires after the commit, never fails
        if receipts.is_receipt(pdu.params.get("esm_class", 0)):
            d = defer.maybeDeferred(self.dlr.receipt_received, link_name, pdu)
        else:
            d = defer.maybeDeferred(self.mo.deliver_received, link_name, pdu)

        def failed(failure):
            self._log.failure("smsc {link}: cannot take {command}; answering ESME_RX_T_APPN",
                              failure, link=link_name, command=pdu.command)
            return int(CommandStatus.ESME_RX_T_APPN)

        return d.addErrback(failed)

    # -- service ----------------------------------------------------------
    def startService(self) -> defer.Deferred:
        service.Service.startService(self)
        self.ctx.lag.start()
        d = self.mo.load()

        def loop(_):
            self._loop = task.LoopingCall(self.run_queue)
            self._loop.clock = self.ctx.clock
            done = self._loop.start(self.ctx.config.queue_interval, now=True)
            done.addErrback(lambda f: self._log.failure("queue runner stopped", f))

        d.addCallback(loop)
        d.addCallback(lambda _: self.retention.start())
        d.addCallbacks(self.ready.callback, self.ready.errback)
        return d

    def stopService(self) -> defer.Deferred:
        service.Service.stopService(self)
        if self.fast_mo is not None:
            self.fast_mo.stop()  # its writes are the writer's, drained below
        self.ctx.lag.stop()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        running = self._running_queue
        d = defer.Deferred()
        if running is not None:
            running.addBoth(lambda _: d.callback(None))
        else:
            d.callback(None)
        d.addCallback(lambda _: self.retention.stop())
        d.addCallback(lambda _: self.ctx.store.writer.drain())
        d.addErrback(lambda f: self._log.failure("committing on stop failed", f))
        return d

    def run_queue(self):
        """
        One pass of the queue runner (never raises; overlapping passes are
        skipped).

        @return: a Deferred firing when the pass is over.
        """
        if self._running_queue is not None:
            return None
        d = defer.ensureDeferred(self._queue_pass())
        d.addErrback(lambda f: self._log.failure("queue runner pass failed", f))
        self._running_queue = d

        def done(_):
            self._running_queue = None

        d.addBoth(done)
        return d

    async def _take_up(self, direction, flow, rows, now) -> None:
        """Expire or restart the work of due rows (one page)."""
        ctx = self.ctx
        store = ctx.store
        rows = [r for r in rows if r["id"] not in flow.active and not ctx.is_stale(r)]
        live, writes = [], []
        for row in rows:
            if row["expires_at"] and row["expires_at"] <= now:
                writes.append(store.update(row["id"], now, "expired", "ttl passed",
                                           state="expired", only_if_state="queued"))
                if direction == MT:
                    self.dlr.notify_expired(row)
            else:
                live.append(row)
        if writes:
            await defer.gatherResults(writes, consumeErrors=True)
        if direction == MT and live:
            parts = await store.parts_of([row["id"] for row in live])
            for row in live:
                if row["id"] not in flow.active and not ctx.is_stale(row):
                    flow.resume(row, parts.get(row["id"], []))
        else:
            for row in live:
                flow.deliver(row)

    async def _queue_pass(self) -> None:
        ctx = self.ctx
        store = ctx.store
        now = ctx.clock.seconds()
        ctx.forget_recent(now)
        self.mo.expire_reassembly(now)
        await store.barrier()  # read what the jobs wrote so far
        for direction, flow in ((MT, self.mt), (MO, self.mo)):
            after = 0
            while len(flow.active) < _MAX_LIVE:
                rows = await store.due(direction, now, _PAGE, after)
                if not rows:
                    break
                after = rows[-1]["id"]
                await self._take_up(direction, flow, rows, now)
                if len(rows) < _PAGE:
                    break
        # every pass, a bounded amount: the writer is shared out evenly
        # instead of being held for a minute's worth of keys at once
        await store.purge_dedup(now - ctx.config.dedup_window,
                                max_chunks=_DEDUP_PURGE_CHUNKS_PER_PASS)
