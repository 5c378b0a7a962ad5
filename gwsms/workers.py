# -*- test-case-name: tests.test_workers_supervisor -*-
"""
Worker processes: C{[gateway] workers = N} (N > 1).

The C{twistd} process is worker 0 and the supervisor: once its own gateway
stack runs (database migrated, SMPP binds, SIP listeners, control socket)
it spawns workers 1..N-1, each C{python -m gwsms.workers --config F
--worker K} running the same stack (L{gwsms.service.GatewayService} with
C{worker=K}).  A worker that dies is restarted with a doubling delay
(L{WorkerSupervisor}); on shutdown every worker gets SIGTERM and, after a
bound, SIGKILL.  SIGHUP to the twistd process is passed on to the workers.

What each worker does differently (L{links_for_worker},
L{smpp_config_for_worker}, L{control_path}):

  - SIP: every worker binds the C{[sip] listen} ports with C{SO_REUSEPORT}
    (the kernel spreads datagrams and connections by source address and
    port) and sends its own requests from a private UDP port, so that the
    answers come back to it;
  - SMPP: worker 0 binds every row as configured; the others bind
    transceiver and transmitter rows as transmitters and skip receiver
    and outbind rows.  MT messages are submitted by whichever worker got
    the MESSAGE; MO messages and receipts arrive at worker 0 (so long MO
    messages are reassembled in one process).  The SMSC must accept N
    binds of one system_id;
  - store: one database for all; a duplicate MESSAGE or deliver_sm is
    recognised by its key in the store, whichever worker stores it; a
    queued message belongs to the worker that stored it (C{owner}) while
    that worker's heartbeat (L{LeaseKeeper}) lasts, and is claimed row by
    row by another one after (L{gwsms.store.messages});
  - control: worker 0 listens on C{[control] socket}, worker K on
    C{<socket>.K}; worker 0 passes C{smsc_reload} / C{routes_reload} on
    and merges C{smsc_state} (L{FanOut}, L{merge_states}).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import signal
import sys

from twisted.application import service
from twisted.internet import defer, protocol, task, threads
from twisted.logger import Logger, LogLevel

from gwsms.smpp.link import SessionType

#: worker restart delays: first, doubling up to the maximum; a worker that
#: ran this long is considered healthy again (the delay starts over)
RESTART_INITIAL = 1.0
RESTART_MAX = 30.0
RESTART_STABLE = 60.0
#: seconds a worker answers a fanned-out control command in (below the
#: C{gwsms} command's own 5 s wait, so that a stuck worker is reported as
#: such rather than making the whole command time out)
FANOUT_TIMEOUT = 4.0
#: seconds before an unknown receipt is looked up again (the part it is
#: for may have been submitted by another worker that has not committed
#: its id yet)
UNKNOWN_RECEIPT_RETRY = 2.0

_log = Logger(namespace="gwsms.workers")
#: the level in a worker's log line ("[namespace#level] text")
_LEVEL_RE = re.compile(r"^\[[^\]]*#(debug|info|warn|error|critical)\] ")


def links_for_worker(links, worker: int) -> list:
    """
    The SMSC rows worker C{worker} binds.

    @param links: every L{gwsms.smpp.link.SmscLink}.
    @return: all of them for worker 0; for the others, transceiver rows as
        transmitters, transmitter rows, and no receiver or outbind rows.
    """
    if worker == 0:
        return list(links)
    out = []
    for link in links:
        if link.session_type == SessionType.TRANSCEIVER:
            out.append(dataclasses.replace(link, session_type=SessionType.TRANSMITTER))
        elif link.session_type == SessionType.TRANSMITTER:
            out.append(link)
    return out


def smpp_config_for_worker(smpp_config, worker: int):
    """@return: the C{[smpp]} settings; outbind listeners only in worker 0."""
    if worker == 0 or not smpp_config.outbind_listen:
        return smpp_config
    return dataclasses.replace(smpp_config, outbind_listen=())


def control_path(path: str, worker: int) -> str:
    """@return: worker C{worker}'s control socket (C{path}, or C{path.K})."""
    return path if worker == 0 else f"{path}.{worker}"


def merge_states(per_worker: dict) -> list:
    """
    One C{smsc_state} list out of every worker's.

    @param per_worker: C{{worker: [state dict, ...] | None}} (C{None}: the
        worker did not answer).
    @return: one dict per connection name (worker 0's, or the first
        worker's that has it) whose C{state} reads C{"w0 bound_trx, w1
        bound_tx"} and whose C{workers} maps each worker index (as a
        string) to its own dict.
    """
    merged: dict[str, dict] = {}
    for worker in sorted(per_worker):
        for item in per_worker[worker] or ():
            if not isinstance(item, dict) or "name" not in item:
                continue
            entry = merged.get(item["name"])
            if entry is None:
                entry = merged[item["name"]] = dict(item, workers={})
            entry["workers"][str(worker)] = item
    for entry in merged.values():
        parts = [f"w{k} {v.get('state', '?')}" for k, v in entry["workers"].items()]
        missing = [w for w in sorted(per_worker) if per_worker[w] is None]
        parts += [f"w{w} ?" for w in missing]
        entry["state"] = ", ".join(parts)
    return list(merged.values())


class FanOut:
    """
    Worker 0 asks the other workers over their control sockets (blocking
    L{gwsms.control.call} in the reactor's thread pool).
    """

    _log = Logger()

    def __init__(self, reactor, socket_path: str, workers: int,
                 timeout: float = FANOUT_TIMEOUT, call=None) -> None:
        """
        @param reactor: C{IReactorThreads}.
        @param socket_path: C{[control] socket} (worker 0's).
        @param workers: C{[gateway] workers}.
        @param call: C{call(path, command, timeout=...)}; default
            L{gwsms.control.call}.
        """
        if call is None:
            from gwsms.control import call
        self._reactor = reactor
        self._path = socket_path
        self._workers = workers
        self._timeout = timeout
        self._call = call

    def _one(self, worker: int, command: str) -> defer.Deferred:
        return threads.deferToThreadPool(
            self._reactor, self._reactor.getThreadPool(), self._call,
            control_path(self._path, worker), command, timeout=self._timeout)

    def ask(self, command: str) -> defer.Deferred:
        """
        @return: Deferred firing with C{{worker: result or None}} for
            workers 1..N-1 (C{None} when one did not answer; logged).
        """
        workers = list(range(1, self._workers))
        ds = [self._one(k, command) for k in workers]

        def collect(results):
            out = {}
            for worker, (ok, value) in zip(workers, results):
                if ok:
                    out[worker] = value
                else:
                    self._log.warn("worker {worker} did not answer {command}: {error}",
                                   worker=worker, command=command,
                                   error=value.getErrorMessage())
                    out[worker] = None
            return out

        return defer.DeferredList(ds, consumeErrors=True).addCallback(collect)


class LeaseKeeper(service.Service):
    """
    This worker's heartbeat: every quarter lease it tells the store it is
    alive (L{gwsms.store.messages.MessageStore.heartbeat}), so that its
    queued messages stay its own; the others take them over only when the
    heartbeats stop for a whole lease.
    """

    _log = Logger()

    def __init__(self, clock, store, pid: int = 0) -> None:
        """
        @param clock: C{IReactorTime}.
        @param store: a L{gwsms.store.messages.MessageStore} with an owner.
        @param pid: this process's id (recorded for the operator).
        """
        self._clock = clock
        self._store = store
        self._pid = pid
        self._loop = None
        self.interval = store.lease / 4

    def beat(self) -> defer.Deferred:
        """
        One heartbeat.

        @return: Deferred firing after the commit (or failing).
        """
        return self._store.heartbeat(self._clock.seconds(), self._pid)

    def startService(self) -> None:
        """Beat every quarter lease (the first one is the caller's L{beat})."""
        service.Service.startService(self)
        self._loop = task.LoopingCall(self._beat_logged)
        self._loop.clock = self._clock
        self._loop.start(self.interval, now=False).addErrback(
            lambda f: self._log.failure("worker heartbeat stopped", f))

    def _beat_logged(self) -> defer.Deferred:
        # never fails: a failure is logged and the next beat tries again
        d = self.beat()
        d.addErrback(lambda f: self._log.failure("worker heartbeat failed", f))
        return d

    def stopService(self) -> None:
        service.Service.stopService(self)
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None


class _WorkerProtocol(protocol.ProcessProtocol):
    """One worker process: its output becomes log lines of the supervisor."""

    _log = Logger()

    def __init__(self, supervisor: "WorkerSupervisor", worker: int) -> None:
        self.supervisor = supervisor
        self.worker = worker
        self._buffers = {1: b"", 2: b""}

    def childDataReceived(self, fd, data):
        buf = self._buffers.get(fd, b"") + data
        *lines, rest = buf.split(b"\n")
        self._buffers[fd] = rest[-65536:]
        for line in lines:
            text = line.decode("utf-8", "replace").rstrip()
            if text:
                match = _LEVEL_RE.match(text)
                level = LogLevel.levelWithName(match.group(1)) if match else LogLevel.info
                self._log.emit(level, "worker {worker}: {line}", worker=self.worker, line=text)

    def processEnded(self, reason):
        self.supervisor.worker_ended(self.worker, reason.value)


class WorkerSupervisor(service.Service):
    """
    Starts workers 1..N-1, restarts them with backoff, stops them.

    @ivar processes: C{{worker: IProcessTransport}} of the running ones.
    @ivar restarts: C{{worker: count}}.
    """

    _log = Logger()

    def __init__(self, clock, spawn, workers: int, command, *, env=None, path=None,
                 stop_timeout: float = 10.0, restart_initial: float = RESTART_INITIAL,
                 restart_max: float = RESTART_MAX,
                 restart_stable: float = RESTART_STABLE) -> None:
        """
        @param clock: C{IReactorTime}.
        @param spawn: C{spawn(process_protocol, executable, args, env,
            path) -> IProcessTransport} (C{reactor.spawnProcess}).
        @param workers: C{[gateway] workers}; workers 1..N-1 are started.
        @param command: C{command(worker) -> list[str]}, the argv (the
            first item is the executable).
        @param env: the environment of the workers (default: ours).
        @param path: their working directory (default: ours).
        @param stop_timeout: seconds between SIGTERM and SIGKILL.
        """
        self._clock = clock
        self._spawn = spawn
        self.count = workers
        self._command = command
        self._env = dict(os.environ) if env is None else env
        self._path = os.getcwd() if path is None else path
        self.stop_timeout = stop_timeout
        self.restart_initial = restart_initial
        self.restart_max = restart_max
        self.restart_stable = restart_stable
        self.processes: dict[int, object] = {}
        self.restarts: dict[int, int] = {}
        self._failures: dict[int, int] = {}
        self._started_at: dict[int, float] = {}
        self._pending: dict[int, object] = {}
        self._stopping: defer.Deferred | None = None

    def startService(self) -> None:
        service.Service.startService(self)
        self._stopping = None
        for worker in range(1, self.count):
            self._start(worker)

    def _start(self, worker: int) -> None:
        self._pending.pop(worker, None)
        if not self.running:
            return
        argv = self._command(worker)
        try:
            transport = self._spawn(_WorkerProtocol(self, worker), argv[0], argv,
                                    self._env, self._path)
        except Exception as e:
            self._log.error("cannot start worker {worker}: {error}", worker=worker, error=e)
            self._schedule_restart(worker)
            return
        self.processes[worker] = transport
        self._started_at[worker] = self._clock.seconds()
        self._log.info("worker {worker} started (pid {pid})", worker=worker,
                       pid=getattr(transport, "pid", None))

    def worker_ended(self, worker: int, reason) -> None:
        """
        A worker process ended (its L{_WorkerProtocol} tells us).

        @param reason: the C{ProcessDone} / C{ProcessTerminated} exception.
        """
        self.processes.pop(worker, None)
        code = getattr(reason, "exitCode", None)
        sig = getattr(reason, "signal", None)
        if self._stopping is not None or not self.running:
            self._log.info("worker {worker} stopped", worker=worker)
            self._check_stopped()
            return
        ran = self._clock.seconds() - self._started_at.get(worker, 0.0)
        if ran >= self.restart_stable:
            self._failures[worker] = 0
        self._log.error("worker {worker} ended (exit status {code}, signal {sig}) after"
                        " {ran:.1f}s; restarting", worker=worker, code=code, sig=sig, ran=ran)
        self._schedule_restart(worker)

    def _schedule_restart(self, worker: int) -> None:
        failures = self._failures.get(worker, 0)
        delay = min(self.restart_max, self.restart_initial * (2 ** failures))
        self._failures[worker] = failures + 1
        self.restarts[worker] = self.restarts.get(worker, 0) + 1
        self._pending[worker] = self._clock.callLater(delay, self._start, worker)

    def restart_delay(self, worker: int) -> float | None:
        """@return: seconds until a pending restart of C{worker}, or C{None}."""
        call = self._pending.get(worker)
        if call is None or not call.active():
            return None
        return call.getTime() - self._clock.seconds()

    def signal_all(self, name: str) -> None:
        """Send signal C{name} (C{"HUP"}, C{"TERM"}, ...) to every running worker."""
        for worker, transport in list(self.processes.items()):
            try:
                transport.signalProcess(name)
            except Exception as e:  # already gone: its processEnded follows
                self._log.debug("signal {name} to worker {worker}: {error}", name=name,
                                worker=worker, error=e)

    def stopService(self) -> defer.Deferred:
        """
        SIGTERM to every worker; SIGKILL to those still running after
        C{stop_timeout}.

        @return: a Deferred firing once all have ended (at most
            C{stop_timeout} + 5 seconds).
        """
        service.Service.stopService(self)
        for call in self._pending.values():
            if call.active():
                call.cancel()
        self._pending.clear()
        self._stopping = defer.Deferred()
        done = self._stopping
        if not self.processes:
            self._check_stopped()
            return done
        self.signal_all("TERM")
        kill = self._clock.callLater(self.stop_timeout, self._kill)
        give_up = self._clock.callLater(self.stop_timeout + 5.0, self._give_up)

        def cancel_timers(result):
            for call in (kill, give_up):
                if call.active():
                    call.cancel()
            return result

        done.addBoth(cancel_timers)
        return done

    def _kill(self) -> None:
        if self.processes:
            self._log.warn("workers {workers} did not stop in {timeout}s: SIGKILL",
                           workers=sorted(self.processes), timeout=self.stop_timeout)
            self.signal_all("KILL")

    def _give_up(self) -> None:
        self._log.error("workers {workers} did not end after SIGKILL",
                        workers=sorted(self.processes))
        self.processes.clear()
        self._check_stopped()

    def _check_stopped(self) -> None:
        if self._stopping is not None and not self.processes and not self._stopping.called:
            self._stopping.callback(None)

    def state(self) -> list[dict]:
        """@return: C{[{worker, pid, running, restarts}]} for workers 1..N-1."""
        return [{"worker": k, "pid": getattr(self.processes.get(k), "pid", None),
                 "running": k in self.processes, "restarts": self.restarts.get(k, 0)}
                for k in range(1, self.count)]


def worker_command(config_path: str, worker: int) -> list[str]:
    """@return: the argv that runs worker C{worker} with this Python."""
    return [sys.executable, "-m", "gwsms.workers", "--config", config_path,
            "--worker", str(worker)]


def worker_env() -> dict:
    """@return: our environment, with this gwsms importable in the worker."""
    env = dict(os.environ)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if here not in paths:
        env["PYTHONPATH"] = os.pathsep.join([here] + paths)
    return env


def main(argv=None) -> int:
    """
    C{python -m gwsms.workers --config F --worker K}: one worker process
    (started by the supervisor; stops on SIGTERM or when its parent goes).

    @return: the exit status (0 stopped, 1 could not start, 2 bad usage).
    """
    parser = argparse.ArgumentParser(prog="gwsms.workers",
                                     description="one gwsms worker process")
    parser.add_argument("--config", required=True, help="configuration file (TOML)")
    parser.add_argument("--worker", required=True, type=int, help="worker index (>= 1)")
    args = parser.parse_args(argv)
    from gwsms.config import ConfigError, load

    try:
        config = load(args.config)
    except ConfigError as e:
        print(f"gwsms worker: {e}", file=sys.stderr)
        return 2
    if not 1 <= args.worker < config.gateway.workers:
        print(f"gwsms worker: --worker {args.worker} is not in 1..{config.gateway.workers - 1}"
              f" ([gateway] workers = {config.gateway.workers})", file=sys.stderr)
        return 2

    from twisted.internet import reactor
    from twisted.internet.error import ReactorNotRunning
    from twisted.logger import FileLogObserver, eventAsText, globalLogBeginner

    from gwsms.service import GatewayService

    globalLogBeginner.beginLoggingTo(
        [FileLogObserver(sys.stdout, lambda event: eventAsText(
            event, includeTimestamp=False) + "\n")], redirectStandardIO=False)
    gateway = GatewayService(config, reactor, worker=args.worker)
    failed = []
    gateway.started.addErrback(failed.append)
    parent = os.getppid()
    stopping = []

    def stop_once():
        # SIGTERM may come twice (from the supervisor and to the whole
        # process group): stop once
        if not stopping and reactor.running:
            stopping.append(True)
            try:
                reactor.stop()
            except ReactorNotRunning:  # the service stopped it (start-up failure)
                pass

    def orphaned():
        if os.getppid() != parent:
            _log.warn("supervisor went away: stopping")
            stop_once()

    watch = task.LoopingCall(orphaned)
    watch.clock = reactor

    def start():
        gateway.startService()
        watch.start(1.0, now=False).addErrback(
            lambda f: _log.failure("parent watch stopped", f))

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", gateway.stopService)
    # Ctrl-C in a terminal reaches the whole process group: the supervisor
    # stops us (SIGTERM) rather than seeing us die and restarting us
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: reactor.callFromThread(stop_once))
    reactor.run(installSignalHandlers=False)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
