# -*- test-case-name: tests.test_affinity -*-
"""
CPU placement of the gateway's threads (C{[gateway] reactor_cpus}).

The event loop's thread is what limits the gateway (C{bench/README.md}):
every datagram, PDU and answer passes through it.  With C{reactor_cpus}
set, each gateway process (worker C{k}) runs its event loop's thread on
C{reactor_cpus[k % len(reactor_cpus)]} and all its other threads (the
SQLite commit thread, the thread pools) on the CPUs of the process's
affinity set that are not in C{reactor_cpus}, so that they don't preempt
the event loop on its CPU.  On the bench's two CPUs, with sipp and the
simulator on the other CPU too, the event loop's wait for the
interpreter lock halved (C{bench/README.md}).  Threads
started later (the pools start theirs on demand) are moved off the
event loop's CPU by a sweep every L{SWEEP_INTERVAL} seconds.  Keep other
busy processes off those CPUs too (systemd's C{CPUAffinity=}, C{taskset})
for the whole effect.

Linux only (C{os.sched_setaffinity} on thread ids); the configuration
check (L{check}) refuses it elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import threading

from twisted.internet import task
from twisted.logger import Logger

#: seconds between sweeps for threads started since the last one
SWEEP_INTERVAL = 10.0


def supported() -> bool:
    """@return: whether this platform can pin threads (Linux)."""
    return hasattr(os, "sched_setaffinity") and os.path.isdir("/proc/self/task")


def allowed_cpus() -> frozenset[int]:
    """@return: the CPUs this process may run on."""
    return frozenset(os.sched_getaffinity(0))


def check(reactor_cpus, allowed=None) -> str | None:
    """
    @param reactor_cpus: the configured list (already known to be ints).
    @param allowed: the CPUs the process may use (default: L{allowed_cpus}).
    @return: what is wrong with C{reactor_cpus} here, or C{None}.
    """
    if not reactor_cpus:
        return None
    if not supported():
        return "CPU pinning needs Linux (sched_setaffinity); leave it empty here"
    if any(cpu < 0 for cpu in reactor_cpus):
        return "CPU numbers must be >= 0"
    if len(set(reactor_cpus)) != len(reactor_cpus):
        return "lists a CPU twice"
    allowed = allowed_cpus() if allowed is None else allowed
    missing = sorted(set(reactor_cpus) - set(allowed))
    if missing:
        return "CPU %s not available to this process (it may use %s)" % (
            ", ".join(map(str, missing)), _ranges(allowed))
    return None


def plan(reactor_cpus, worker: int, allowed) -> tuple[int, frozenset[int]]:
    """
    @return: C{(the event loop's CPU, the CPUs of the other threads)} of
        worker C{worker}: the others get every allowed CPU not in
        C{reactor_cpus}, or, when that leaves none, every allowed CPU but
        the event loop's (or all of them, on a single CPU).
    """
    cpu = reactor_cpus[worker % len(reactor_cpus)]
    others = frozenset(allowed) - set(reactor_cpus)
    if not others:
        others = frozenset(allowed) - {cpu} or frozenset(allowed)
    return cpu, others


def _ranges(cpus) -> str:
    """C{{0, 1, 2, 5}} -> C{"0-2,5"} (as taskset and /proc print them)."""
    runs: list[list[int]] = []
    for cpu in sorted(cpus):
        if runs and cpu == runs[-1][1] + 1:
            runs[-1][1] = cpu
        else:
            runs.append([cpu, cpu])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


class Pinning:
    """
    Pins the calling thread (the event loop's) to one CPU and every other
    thread of the process to C{others}, now and at each sweep.
    """

    _log = Logger()

    def __init__(self, clock, cpu: int, others, interval: float = SWEEP_INTERVAL):
        self.clock = clock
        self.cpu = cpu
        self.others = frozenset(others)
        self.interval = interval
        self._loop: task.LoopingCall | None = None
        self._main: int | None = None
        #: the CPUs of each thread placed (running), before it was placed
        self._before: dict[int, frozenset[int]] = {}

    @property
    def moved(self) -> frozenset[int]:
        """@return: the ids of the running threads placed (the event loop's too)."""
        return frozenset(self._before)

    def start(self) -> None:
        """Pin now (call it in the event loop's thread), then sweep every C{interval}."""
        self._main = threading.get_native_id()
        self._before[self._main] = frozenset(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {self.cpu})
        self.sweep()
        self._log.info("event loop on CPU {cpu}, other threads on CPUs {others}",
                       cpu=self.cpu, others=_ranges(self.others))
        self._loop = task.LoopingCall(self.sweep)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=False)

    @contextlib.contextmanager
    def unpinned(self):
        """
        The event loop's thread with the CPUs it had before L{start}, for a
        child process to inherit them (a worker started or restarted).
        """
        before = self._before.get(self._main)
        if before is None:
            yield
            return
        os.sched_setaffinity(0, before)
        try:
            yield
        finally:
            os.sched_setaffinity(0, {self.cpu})

    def sweep(self) -> int:
        """
        Move the threads started since the last sweep to C{others}.

        @return: how many were moved.
        """
        count = 0
        try:
            tids = [int(name) for name in os.listdir("/proc/self/task")]
        except OSError:
            return 0
        before = self._before
        for tid in tids:
            if tid in before:
                continue
            try:
                cpus = frozenset(os.sched_getaffinity(tid))
                os.sched_setaffinity(tid, self.others)
            except OSError:
                continue  # it ended meanwhile
            before[tid] = cpus
            count += 1
        # forget the threads that ended (their ids may come back)
        alive = set(tids)
        for tid in [tid for tid in before if tid not in alive]:
            del before[tid]
        return count

    def stop(self, restore: bool = False) -> None:
        """
        Stop sweeping; with C{restore}, give the threads still running the
        affinity they had before (tests, a service stopped in a process
        that goes on).
        """
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        if restore:
            for tid, cpus in self._before.items():
                try:
                    os.sched_setaffinity(tid, cpus)
                except OSError:
                    pass
            self._before.clear()
