# -*- test-case-name: tests.test_bench_boxspeed -*-
"""
How fast the box is right now: a fixed pure-Python loop, timed in the
CPU time of the thread that runs it (time waiting for a CPU does not
count, a slower CPU does).

This machine flips between two speeds while idle, within fractions of a
second (the loop below takes about 44 ms in one and 70 ms in the other),
and stays in the slow one for minutes at times, so a ladder step's
figures mean little without the box's speed at the time.  L{bench.run}
probes at the start and the end of the run (L{median_probe}: JSON
C{host.box_ms_start}, C{host.box_ms_end}) and, with a L{Sampler}, during
each step (the C{box ms} column: the median of a tenth of the loop run
every half second, scaled to the whole loop, about 1.5 % of one core);
larger is slower.  A median tells which speed held most of the time; the
fastest of a few runs (L{probe}, the command line) tells what the box can
do.

  .venv/bin/python bench/boxspeed.py [--iterations N] [--repeat R]

With C{--every S} it runs as a series instead (L{series}): a short loop
(C{--iterations}, 5,000 by default: about 0.3 ms, 1.5 % of a core at the
default 0.02 s) every S seconds until C{--seconds} have passed or it is
terminated, one line per run, C{MONOTONIC-SECONDS MS-PER-ITERATIONS}, to
set next to another process's timeline (C{bench/mt_stages.py --windows}).
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import threading
import time

#: iterations of the probe's loop: about 40-90 ms on this machine
ITERATIONS = 1_000_000
#: times the loop is run; the fastest counts (the others met interruptions)
REPEAT = 3


def _loop(iterations: int) -> int:
    total = 0
    for i in range(iterations):
        total += i * i % 7
    return total


def probe(iterations: int = ITERATIONS, repeat: int = REPEAT,
          clock=time.thread_time) -> float:
    """
    @return: milliseconds of the fastest of C{repeat} runs of a loop of
        C{iterations} (multiply, modulo, add); larger means a slower box.
    @raise ValueError: C{iterations} or C{repeat} below 1.
    """
    if iterations < 1 or repeat < 1:
        raise ValueError("boxspeed: iterations and repeat must be >= 1")
    best = None
    for _ in range(repeat):
        start = clock()
        _loop(iterations)
        took = (clock() - start) * 1000.0
        if best is None or took < best:
            best = took
    return best


def _scaled(iterations: int, clock) -> float:
    """@return: one run of a loop of C{iterations}, in milliseconds per L{ITERATIONS}."""
    return probe(iterations, 1, clock=clock) * ITERATIONS / iterations


def median_probe(samples: int = 9, iterations: int = ITERATIONS // 10,
                 clock=time.thread_time) -> float:
    """
    @return: the median of C{samples} runs of a loop of C{iterations},
        each scaled to milliseconds per L{ITERATIONS} (as L{Sampler}'s
        samples), rounded to 0.1 ms.
    @raise ValueError: C{samples} or C{iterations} below 1.
    """
    if samples < 1:
        raise ValueError("boxspeed: samples must be >= 1")
    return round(statistics.median(_scaled(iterations, clock) for _ in range(samples)), 1)


class Sampler:
    """
    Probes the box's speed in a thread of its own while something else
    runs (a ladder step): L{start}, then L{stop} gives the median.

    @ivar samples: milliseconds per L{ITERATIONS} of each probe so far.
    """

    def __init__(self, interval: float = 0.5, iterations: int = ITERATIONS // 10,
                 clock=time.thread_time):
        if iterations < 1 or interval < 0:
            raise ValueError("boxspeed: iterations must be >= 1 and interval >= 0")
        self.interval = interval
        self.iterations = iterations
        self.clock = clock
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = None

    def sample_once(self) -> float:
        """Probe once; @return: and record, the milliseconds per L{ITERATIONS}."""
        took = _scaled(self.iterations, self.clock)
        self.samples.append(took)
        return took

    def result(self) -> float | None:
        """@return: the median of the samples (ms per L{ITERATIONS}), None without any."""
        return round(statistics.median(self.samples), 1) if self.samples else None

    def _run(self) -> None:
        while True:
            self.sample_once()
            if self._stop.wait(self.interval):
                return

    def start(self) -> None:
        """Sample now and every C{interval} seconds until L{stop}."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="boxspeed", daemon=True)
        self._thread.start()

    def stop(self) -> float | None:
        """Stop sampling (after at least one sample); @return: L{result}."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        return self.result()


#: iterations of a L{series} run: about 0.3 ms
SERIES_ITERATIONS = 5_000


def series(every: float, seconds: float, out, iterations: int = SERIES_ITERATIONS,
           clock=time.thread_time, now=time.monotonic, sleep=time.sleep) -> int:
    """
    Run a loop of C{iterations} every C{every} seconds for C{seconds},
    writing C{"%.4f %.1f"} (C{now()} when it started, its CPU time in
    milliseconds per L{ITERATIONS}) per run to C{out}.

    @return: the number of runs.
    @raise ValueError: C{every} not above 0, C{seconds} below 0 or
        C{iterations} below 1.
    """
    if every <= 0 or seconds < 0 or iterations < 1:
        raise ValueError("boxspeed: --every must be > 0, --seconds >= 0, --iterations >= 1")
    end = now() + seconds
    runs = 0
    while True:
        started = now()
        if started >= end:
            return runs
        out.write("%.4f %.1f\n" % (started, _scaled(iterations, clock)))
        out.flush()
        runs += 1
        sleep(every)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--iterations", type=int, default=None,
                        help="iterations of the loop (%d; with --every %d)"
                             % (ITERATIONS, SERIES_ITERATIONS))
    parser.add_argument("--repeat", type=int, default=REPEAT)
    parser.add_argument("--every", type=float, default=None, metavar="S",
                        help="a series: a short loop every S seconds, one line each")
    parser.add_argument("--seconds", type=float, default=600.0,
                        help="how long a series runs (600; or until terminated)")
    args = parser.parse_args(argv)
    if args.every is not None:
        # terminated (SIGTERM) by whoever started it: the lines so far stand
        before = signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            series(args.every, args.seconds, sys.stdout,
                   SERIES_ITERATIONS if args.iterations is None else args.iterations)
        except ValueError as e:
            sys.stderr.write("%s\n" % (e,))
            return 2
        finally:
            signal.signal(signal.SIGTERM, before)
        return 0
    if args.iterations is None:
        args.iterations = ITERATIONS
    try:
        took = probe(args.iterations, args.repeat)
    except ValueError as e:
        sys.stderr.write("%s\n" % (e,))
        return 2
    sys.stdout.write("%.1f ms for %d iterations (fastest of %d)\n" % (took, args.iterations, args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
