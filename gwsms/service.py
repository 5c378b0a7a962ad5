# -*- test-case-name: tests.test_service -*-
"""
The gwsms service tree.

Start order: database (opened and migrated before anything listens), the
gateway core (L{gwsms.core.gateway.Gateway}: reassembly state, queue
runner), SMPP connections (rows of the C{smpp} table), SIP listeners,
control socket.
Stop order is the reverse.  A start-up failure (database unreachable, a port
in use, a bad TLS file) is logged in one line and stops the process: gwsms
never runs half-started.
"""

from __future__ import annotations

import os
import signal

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from gwsms.config import Config
from gwsms.core.fastmt import FastMtLane


class GatewayService(service.MultiService):
    """
    The root service.

    @ivar db: the open L{gwsms.store.database.Database}, once started.
    @ivar smpp: the L{gwsms.smpp.service.SmppService}, once started.
    @ivar sip: the L{gwsms.sip.service.SipService}, once started.
    @ivar started: a Deferred that fires (with this service) when every
        child is running, or fails with the start-up error.
    """

    _log = Logger()
    #: What the control socket may call (see L{gwsms.control}).
    control_commands = ("smsc_reload", "smsc_state", "routes_reload")

    def __init__(self, config: Config, reactor, *, install_signals: bool = True,
                 worker: int = 0):
        """
        @param worker: this process's index with C{[gateway] workers > 1}
            (0: the twistd process, which also starts the others; see
            L{gwsms.workers}).
        """
        super().__init__()
        self.config = config
        self.reactor = reactor
        self.install_signals = install_signals
        self.worker = worker
        self.multi = config.gateway.workers > 1
        self.supervisor = None
        self.fanout = None
        self.db = None
        self.smpp = None
        self.sip = None
        #: the SIP -> SMPP hot path (L{gwsms.core.fastmt}), when enabled
        self.mt_lane = None
        self.gateway = None
        self.control = None
        self.started: defer.Deferred = defer.Deferred()
        self._previous_sighup = None
        #: the threads' CPU placement (L{gwsms.affinity}), with [gateway] reactor_cpus
        self.pinning = None

    def startService(self) -> None:
        service.Service.startService(self)
        d = defer.ensureDeferred(self._start())
        d.addCallbacks(self._started, self._start_failed)

    async def _start(self) -> None:
        from gwsms.control import control_service
        from gwsms.core.gateway import Gateway
        from gwsms.sip.service import SipService, SipStores
        from gwsms.smpp.service import SmppService
        from gwsms.store.batch import BatchWriter
        from gwsms.store.messages import MessageStore
        from gwsms.store.routes import RouteStore
        from gwsms.store.database import open_database
        from gwsms.store.migrate import upgrade
        from gwsms.store.sip import RegistrationStore, SipUserStore
        from gwsms.store.smsc import SmscStore
        from gwsms import workers

        config = self.config
        self.db = open_database(self.reactor, config.database.url)
        version = await upgrade(self.db)
        self._log.info("database ready (schema version {version})", version=version)
        self.smsc_store = SmscStore(self.db)
        links = await self.smsc_store.list()
        self.route_store = RouteStore(self.db)
        routes = await self.route_store.list()

        # The gateway core: the SMPP side hands it deliver_sm, the SIP side
        # MESSAGEs; it is started (reassembly state loaded, queue running)
        # before either listens.
        gw = config.gateway
        writer = BatchWriter(self.db, self.reactor, gw.commit_interval, gw.batch_size)
        self.messages = MessageStore(self.db, writer,
                                     owner=self.worker if self.multi else None)
        self.gateway = Gateway(self.reactor, gw, config.sip, self.messages,
                               links=links, routes=routes)
        self.smpp = SmppService(self.reactor,
                                workers.smpp_config_for_worker(config.smpp, self.worker),
                                self.gateway, workers.links_for_worker(links, self.worker))
        stores = SipStores(
            users=SipUserStore(self.db), registrations=RegistrationStore(self.db)
        )
        self.sip = SipService(self.reactor, config.sip, self.gateway, stores,
                              digest_algorithms=config.sip.digest_algorithms,
                              reuse_port=self.multi)
        self.gateway.attach(smpp=self.smpp, uac=self.sip.uac, registrar=self.sip.registrar)
        if getattr(config.gateway, "fast_path", True):
            # SMPP -> SIP lane (gwsms.core.fastmo): common MO messages
            # straight to the SIP UDP listener
            self.gateway.set_fast_mo(self.sip.transport, config.sip.t1, config.sip.t2)
        if self.multi:
            # alive before the queue runner reads: nobody claims our messages
            # while we resume them
            keeper = workers.LeaseKeeper(self.reactor, self.messages, os.getpid())
            await keeper.beat()
            self._add_and_start(keeper)
            self.gateway.dlr.unknown_retry = workers.UNKNOWN_RECEIPT_RETRY
        self._add_and_start(self.gateway)
        await self.gateway.ready
        self._add_and_start(self.smpp)
        if config.gateway.fast_path:
            self.mt_lane = FastMtLane(self.reactor, self.gateway, config.sip, self.smpp,
                                      trusted=self.sip.uas._trusted, t1=config.sip.t1)
            self.sip.transport.fast_paths.append(self.mt_lane)
            self._add_and_start(self.mt_lane)
        self._add_and_start(self.sip)

        self.control = control_service(
            self.reactor, workers.control_path(config.control.socket, self.worker), self)
        self._add_and_start(self.control)
        if self.multi and self.worker == 0:
            self.fanout = workers.FanOut(self.reactor, config.control.socket,
                                         config.gateway.workers)
            self.supervisor = workers.WorkerSupervisor(
                self.reactor, self._spawn, config.gateway.workers,
                lambda k: workers.worker_command(config.path, k), env=workers.worker_env(),
                stop_timeout=config.smpp.shutdown_timeout + 5.0)
            self._add_and_start(self.supervisor)

        if self.install_signals:
            self._previous_sighup = signal.signal(signal.SIGHUP, self._on_sighup)

    def _add_and_start(self, child: service.IService) -> None:
        child.setServiceParent(self)  # starts it: we are running

    def _started(self, _) -> None:
        self._log.info("gwsms started")
        cpus = self.config.gateway.reactor_cpus
        if cpus:
            self._pin(cpus)
        if self.install_signals:
            # this service owns the process (twistd, a worker): fewer,
            # smaller garbage collections from now on (gwsms.gctune)
            from gwsms import gctune
            gctune.tune()
        self.started.callback(self)

    def _spawn(self, *args, **kw):
        """C{reactor.spawnProcess}, the child with the CPUs the process had before L{_pin}."""
        if self.pinning is None:
            return self.reactor.spawnProcess(*args, **kw)
        with self.pinning.unpinned():
            return self.reactor.spawnProcess(*args, **kw)

    def _pin(self, cpus) -> None:
        """[gateway] reactor_cpus: the event loop on a CPU of its own (L{gwsms.affinity})."""
        from gwsms import affinity
        try:
            allowed = affinity.allowed_cpus()
            cpu, others = affinity.plan(cpus, self.worker, allowed)
            self.pinning = affinity.Pinning(self.reactor, cpu, others)
            self.pinning.start()
        except OSError as e:
            self.pinning = None
            self._log.warn("gateway.reactor_cpus {cpus}: cannot pin the threads: {error}",
                           cpus=list(cpus), error=e)

    def _start_failed(self, failure) -> None:
        message = failure.getErrorMessage() or failure.type.__name__
        self._log.critical("gwsms cannot start: {message}", message=message)
        self._log.debug("start-up failure detail", log_failure=failure)
        self.started.errback(failure)
        if self.install_signals and self.reactor.running:
            self.reactor.stop()

    def stopService(self):
        if self._previous_sighup is not None:
            signal.signal(signal.SIGHUP, self._previous_sighup)
            self._previous_sighup = None
        if self.pinning is not None:
            # a process that goes on (tests, an embedding) gets its placement back
            self.pinning.stop(restore=not self.install_signals)
            self.pinning = None
        d = defer.maybeDeferred(super().stopService)

        def close_db(result):
            if self.db is not None:
                self.db.close()
            return result

        return d.addBoth(close_db)

    # SIGHUP and the control socket ("MI commands")

    def _on_sighup(self, signum, frame) -> None:
        self.reactor.callFromThread(self._reload_from_signal)

    def _reload_from_signal(self) -> None:
        if self.supervisor is not None:
            self.supervisor.signal_all("HUP")  # each worker reloads itself
        d = defer.ensureDeferred(self._smsc_reload())
        d.addCallback(lambda _: defer.ensureDeferred(self._routes_reload()))
        d.addErrback(lambda f: self._log.failure("SIGHUP reload failed", f))

    async def smsc_reload(self) -> dict:
        """
        Re-read the C{smpp} table and apply the difference (in every
        worker; C{failed_workers} lists those that did not answer).
        """
        return await self._fan_out("smsc_reload", await self._smsc_reload())

    async def _smsc_reload(self) -> dict:
        from gwsms.workers import links_for_worker

        links = await self.smsc_store.list()
        self.gateway.set_links(links)
        # logs the difference itself
        return self.smpp.reload(links_for_worker(links, self.worker) if self.multi else links)

    async def routes_reload(self) -> dict:
        """Re-read the C{routes} table into the gateway's routing table (every worker)."""
        return await self._fan_out("routes_reload", await self._routes_reload())

    async def _routes_reload(self) -> dict:
        routes = await self.route_store.list()
        self.gateway.set_routes(routes)
        self._log.info("routes reloaded: {n} routes", n=len(routes))
        return {"routes": len(routes)}

    async def _fan_out(self, command: str, result: dict) -> dict:
        if self.fanout is None:
            return result
        answers = await self.fanout.ask(command)
        failed = [k for k, v in answers.items() if v is None]
        return dict(result, failed_workers=failed) if failed else result

    async def smsc_state(self) -> list:
        """
        Live state of every SMSC connection (with several workers: one
        entry per connection, C{state} naming each worker's, see
        L{gwsms.workers.merge_states}).
        """
        if self.fanout is None:
            return self.smpp.state()
        from gwsms.workers import merge_states

        answers = await self.fanout.ask("smsc_state")
        return merge_states({0: self.smpp.state(), **answers})
