# -*- test-case-name: tests.test_core_overload -*-
"""
Overload detection by event-loop lag.

A gateway past its knee does not see a long queue of its own: the backlog
builds in the kernel's socket buffers and shows as a late event loop.
L{LagMonitor} schedules a tick every C{interval} seconds and measures how
late each tick runs (lag = actual - expected time), smoothed with an
exponentially weighted moving average.  L{LagMonitor.overloaded} says
whether new work should be shed: on when the smoothed lag (or the lateness
of the tick still due, so a long stall is seen before the tick can run)
exceeds C{max_lag}, off again only once the smoothed lag is below
C{max_lag / 2} (hysteresis, so shedding does not flap).

Off by default (C{[gateway] max_lag = 0}): measured with C{make bench},
past the knee the backlog waits in the kernel's UDP receive buffer while
each reactor turn stays short, so the lag signal fires late and in bursts.
The receive queue depth (C{SO_MEMINFO} rmem_alloc of the SIP socket) is
the better signal for that case.

The ticks are a C{callLater} chain rather than a L{twisted.internet.task.
LoopingCall}: a late LoopingCall is rescheduled to the next point of its
fixed grid, which would hide any lag beyond one interval.
"""

from __future__ import annotations

from twisted.logger import Logger


class LagMonitor:
    """
    Measures event-loop lag and decides when to shed load.

    @ivar lag: the smoothed lag in seconds.
    @ivar shedding: whether L{overloaded} currently answers C{True}.
    @ivar episodes: how many times shedding was switched on.
    """

    _log = Logger()

    def __init__(self, clock, interval: float = 0.05, max_lag: float = 0.1,
                 smoothing: float = 0.3) -> None:
        """
        @param clock: C{IReactorTime}.
        @param interval: seconds between ticks (> 0).
        @param max_lag: smoothed lag in seconds above which L{overloaded}
            is C{True}; 0 disables the monitor (never overloaded, no ticks).
        @param smoothing: weight of a new sample in the moving average
            (0 < smoothing <= 1).
        """
        if interval <= 0:
            raise ValueError("interval must be > 0")
        if max_lag < 0:
            raise ValueError("max_lag must be >= 0")
        if not 0 < smoothing <= 1:
            raise ValueError("smoothing must be in (0, 1]")
        self.clock = clock
        self.interval = interval
        self.max_lag = max_lag
        self.smoothing = smoothing
        self.lag = 0.0
        self.shedding = False
        self.episodes = 0
        self._expected: float | None = None
        self._call = None

    @property
    def running(self) -> bool:
        """@return: whether ticks are scheduled."""
        return self._call is not None

    def start(self) -> None:
        """Start measuring (no-op when disabled or already running)."""
        if self.max_lag <= 0 or self._call is not None:
            return
        self._schedule()

    def stop(self) -> None:
        """Stop measuring and stop shedding."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self._expected = None
        self.shedding = False
        self.lag = 0.0

    def _schedule(self) -> None:
        self._expected = self.clock.seconds() + self.interval
        self._call = self.clock.callLater(self.interval, self._tick)

    def _tick(self) -> None:
        try:
            sample = max(0.0, self.clock.seconds() - self._expected)
            self.lag += self.smoothing * (sample - self.lag)
            self._update()
        except Exception:
            self._log.failure("event-loop lag measurement failed")
        finally:
            self._schedule()

    def _update(self) -> None:
        if self.shedding:
            if self.lag < self.max_lag / 2:
                self.shedding = False
                self._log.info("event-loop lag {lag:.3f} s: no longer shedding load",
                               lag=self.lag)
        elif self.lag > self.max_lag:
            self.shedding = True
            self.episodes += 1
            self._log.warn("event-loop lag {lag:.3f} s above max_lag {max_lag} s:"
                           " shedding new MESSAGEs with 503", lag=self.lag, max_lag=self.max_lag)

    def overloaded(self) -> bool:
        """
        @return: whether new work should be refused now (always C{False}
            when disabled or not running).
        """
        if self.shedding:
            return True
        expected = self._expected
        if expected is None:
            return False
        overdue = self.clock.seconds() - expected
        if overdue > self.max_lag:
            # the loop is stalled right now: count it before the tick can run
            self.lag = max(self.lag, overdue)
            self._update()
        return self.shedding
