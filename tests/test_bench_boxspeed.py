"""
Tests for bench/boxspeed.py: the box's speed probe of C{make bench}.
"""

import io
import signal
from contextlib import redirect_stderr, redirect_stdout

from twisted.trial.unittest import SynchronousTestCase

from bench import boxspeed


class FakeClock:
    """perf_counter stand-in: each run of the loop "takes" the next duration."""

    def __init__(self, durations):
        self.times = []
        now = 0.0
        for took in durations:
            self.times += [now, now + took]
            now += took + 1.0

    def __call__(self):
        return self.times.pop(0)


class ProbeTests(SynchronousTestCase):
    def test_fastest_run_counts(self):
        clock = FakeClock([0.080, 0.042, 0.061])
        self.assertAlmostEqual(boxspeed.probe(10, 3, clock=clock), 42.0)
        self.assertEqual(clock.times, [])  # three runs, each timed once

    def test_real_loop(self):
        took = boxspeed.probe(1000, 1)
        self.assertGreater(took, 0.0)
        self.assertEqual(boxspeed._loop(10), sum(i * i % 7 for i in range(10)))

    def test_bad_arguments(self):
        for iterations, repeat in ((0, 1), (1, 0), (-5, 3)):
            e = self.assertRaises(ValueError, boxspeed.probe, iterations, repeat)
            self.assertIn("iterations and repeat must be >= 1", str(e))


class MedianProbeTests(SynchronousTestCase):
    def test_median_of_scaled_runs(self):
        # a tenth of the loop each: 4.4, 7.0, 4.5 ms -> 44, 70, 45 per whole loop
        clock = FakeClock([0.0044, 0.0070, 0.0045])
        self.assertEqual(boxspeed.median_probe(3, boxspeed.ITERATIONS // 10, clock=clock), 45.0)
        self.assertEqual(clock.times, [])

    def test_bad_samples(self):
        e = self.assertRaises(ValueError, boxspeed.median_probe, 0)
        self.assertIn("samples must be >= 1", str(e))


class MainTests(SynchronousTestCase):
    def test_prints_milliseconds(self):
        out = io.StringIO()
        with redirect_stdout(out):
            self.assertEqual(boxspeed.main(["--iterations", "1000", "--repeat", "2"]), 0)
        self.assertRegex(out.getvalue(), r"^\d+\.\d ms for 1000 iterations \(fastest of 2\)\n$")

    def test_bad_argument_is_one_line(self):
        err = io.StringIO()
        with redirect_stderr(err):
            self.assertEqual(boxspeed.main(["--repeat", "0"]), 2)
        self.assertEqual(err.getvalue(), "boxspeed: iterations and repeat must be >= 1\n")


class SamplerTests(SynchronousTestCase):
    def test_samples_scaled_to_the_whole_loop(self):
        sampler = boxspeed.Sampler(iterations=boxspeed.ITERATIONS // 10,
                                   clock=FakeClock([0.0042, 0.0090, 0.0046]))
        self.assertIsNone(sampler.result())
        self.assertAlmostEqual(sampler.sample_once(), 42.0)
        sampler.sample_once()
        sampler.sample_once()
        self.assertEqual(sampler.result(), 46.0)  # the median, not the mean

    def test_thread_samples_at_least_once(self):
        sampler = boxspeed.Sampler(interval=3600.0, iterations=1000)
        sampler.start()
        took = sampler.stop()  # wakes the thread at once, after its first probe
        self.assertEqual(len(sampler.samples), 1)
        self.assertGreater(took, 0.0)
        self.assertEqual(sampler.stop(), took)  # stopped: the same result

    def test_bad_arguments(self):
        self.assertRaises(ValueError, boxspeed.Sampler, iterations=0)
        self.assertRaises(ValueError, boxspeed.Sampler, interval=-1)


class SeriesTests(SynchronousTestCase):
    def test_one_line_per_run_until_the_end(self):
        # the series' clock: 100.0 at the start, then each sleep moves it
        clock = {"now": 100.0}
        slept = []

        def sleep(seconds):
            slept.append(seconds)
            clock["now"] += seconds

        out = io.StringIO()
        runs = boxspeed.series(0.25, 1.0, out, iterations=boxspeed.ITERATIONS // 100,
                               clock=FakeClock([0.00044, 0.00070, 0.00045, 0.00046]),
                               now=lambda: clock["now"], sleep=sleep)
        self.assertEqual(runs, 4)  # at 100.0, 100.25, 100.5, 100.75; not at 101.0
        self.assertEqual(slept, [0.25] * 4)
        self.assertEqual(out.getvalue(), "100.0000 44.0\n100.2500 70.0\n"
                                         "100.5000 45.0\n100.7500 46.0\n")

    def test_bad_arguments(self):
        for every, seconds, iterations in ((0, 1, 1), (-1, 1, 1), (1, -1, 1), (1, 1, 0)):
            e = self.assertRaises(ValueError, boxspeed.series, every, seconds, io.StringIO(),
                                  iterations)
            self.assertIn("--every must be > 0", str(e))

    def test_main_series(self):
        before = signal.getsignal(signal.SIGTERM)
        out = io.StringIO()
        with redirect_stdout(out):
            self.assertEqual(boxspeed.main(["--every", "0.001", "--seconds", "0.05",
                                            "--iterations", "100"]), 0)
        lines = out.getvalue().splitlines()
        self.assertGreaterEqual(len(lines), 1)
        # its SIGTERM handler was for the series only
        self.assertIs(signal.getsignal(signal.SIGTERM), before)
        for line in lines:
            self.assertRegex(line, r"^\d+\.\d{4} \d+\.\d$")

    def test_main_series_bad_argument_is_one_line(self):
        err = io.StringIO()
        with redirect_stderr(err):
            self.assertEqual(boxspeed.main(["--every", "0"]), 2)
        self.assertEqual(err.getvalue(),
                         "boxspeed: --every must be > 0, --seconds >= 0, --iterations >= 1\n")
