"""
Tests for L{bench.mt_stages}: it times the stages of real MT lane messages
(the flow of L{bench.instructions}, on a fake clock), and summarises them.
"""

import io
import itertools
import os
import shutil
import subprocess
import sys

from twisted.trial import unittest
from twisted.trial.unittest import SkipTest

from bench import instructions, mt_stages
from gwsms.core import fastmt


class InstrumentTests(unittest.TestCase):
    def test_every_message_timed_in_order(self):
        ticks = itertools.count()
        recorder = mt_stages.Recorder(clock=lambda: float(next(ticks)))
        self.addCleanup(mt_stages.instrument(recorder))
        flow = instructions.run(300, 100, warmup=0)
        self.assertEqual(flow["answered_202"], 300)
        self.assertEqual(recorder.taken, 300)
        self.assertEqual(len(recorder.done), 300)
        for marks in recorder.done:
            self.assertEqual(len(marks), 5)
            self.assertEqual(list(marks), sorted(set(marks)))
        # the 100 messages of a batch share its statements' and callback's marks
        self.assertEqual(len({marks[1] for marks in recorder.done}), 3)
        self.assertEqual(len({marks[2] for marks in recorder.done}), 3)
        self.assertEqual(recorder.open, {})
        self.assertEqual(recorder.batches, {})
        for part, seconds in recorder.cpu.items():
            self.assertGreater(seconds, 0, part)

    def test_calls_kept_for_the_windows(self):
        recorder = mt_stages.Recorder(keep_calls=True)
        self.addCleanup(mt_stages.instrument(recorder))
        instructions.run(200, 100, warmup=0)
        self.assertEqual({name for _at, name, _took in recorder.calls}, set(recorder.cpu))
        for name, seconds in recorder.cpu.items():
            self.assertAlmostEqual(sum(took for _at, part, took in recorder.calls
                                       if part == name), seconds)
        self.assertIsNone(mt_stages.Recorder().calls)  # not kept by default

    def test_undo(self):
        lane = fastmt.FastMtLane
        names = ("_prepare", "_stored_batch", "submitted", "_answer")
        before = [getattr(lane, name) for name in names] + [fastmt.insert_many] + [
            getattr(cls, method) for _name, cls, method in mt_stages.PARTS]
        undo = mt_stages.instrument(mt_stages.Recorder())
        self.assertNotEqual(lane._prepare, before[0])
        self.assertNotEqual(fastmt.insert_many, before[4])
        undo()
        after = [getattr(lane, name) for name in names] + [fastmt.insert_many] + [
            getattr(cls, method) for _name, cls, method in mt_stages.PARTS]
        self.assertEqual(after, before)


class SummariseTests(unittest.SynchronousTestCase):
    def recorder(self):
        recorder = mt_stages.Recorder()
        # taken, statements, stored, answered, sent (seconds)
        recorder.done = [(0.0, 0.001 * n, 0.002 * n, 0.003 * n, 0.004 * n) for n in range(1, 101)]
        recorder.taken = 200
        recorder.cpu = {"sip": 0.004, "smpp": 0.002, "commit": 0.001}
        return recorder

    def test_percentiles(self):
        summary = mt_stages.summarise(self.recorder())
        self.assertEqual(summary["messages"], 100)
        # per message the lane took: 4 ms over 200 messages is 20 us
        self.assertEqual(summary["cpu"], {"sip": 20.0, "smpp": 10.0, "commit": 5.0})
        # nearest rank: the 50th, 90th and 99th of 100
        self.assertEqual(summary["wait"], (50.0, 90.0, 99.0))
        self.assertEqual(summary["store"], (50.0, 90.0, 99.0))
        self.assertEqual(summary["smsc"], (50.0, 90.0, 99.0))
        self.assertEqual(summary["total"], (200.0, 360.0, 396.0))

    def test_no_messages(self):
        summary = mt_stages.summarise(mt_stages.Recorder())
        self.assertEqual(summary, {"messages": 0, "cpu": {"sip": 0.0, "smpp": 0.0,
                                                          "commit": 0.0}})
        out = io.StringIO()
        mt_stages.report(summary, out)
        self.assertEqual(out.getvalue().splitlines()[1],
                         "mt stages: no message answered after its submit_sm_resp")

    def test_report(self):
        out = io.StringIO()
        mt_stages.report(mt_stages.summarise(self.recorder()), out)
        lines = out.getvalue().splitlines()
        self.assertEqual(lines[0], "reactor thread CPU, us per message taken: sip 20.0,"
                                   " smpp 10.0, commit 5.0")
        self.assertEqual(lines[1], "mt stages over 100 messages (ms, p50 / p90 / p99):")
        self.assertEqual([line.split()[0] for line in lines[2:]],
                         ["wait", "store", "smsc", "total"])
        self.assertEqual(lines[5].split(), ["total", "200.00", "/", "360.00", "/", "396.00"])


class WindowsTests(unittest.SynchronousTestCase):
    """The run cut into windows: L{mt_stages.windows}, L{mt_stages.report_windows}."""

    def test_windows(self):
        # taken at 10.00, 10.05 (window 0), 10.13 (1), 10.31 (3); the marks
        # in between do not matter, the 202 at the end does
        done = [(10.00, 0, 0, 0, 10.004), (10.05, 0, 0, 0, 10.090),
                (10.13, 0, 0, 0, 10.140), (10.31, 0, 0, 0, 10.320)]
        # (time, reactor thread CPU seconds) at each poll: 0.06 s of CPU
        # between the polls at 10.01 and 10.08, 0.02 s by 10.15, 0.05 s by 10.32
        polls = [(9.9, 1.0), (10.01, 1.0), (10.08, 1.06), (10.15, 1.08), (10.32, 1.13)]
        probes = [(9.95, 99.0), (10.02, 44.0), (10.04, 46.0), (10.06, 70.0), (10.33, 45.0)]
        calls = [(9.99, "sip", 1.0), (10.01, "sip", 0.004), (10.02, "sip", 0.002),
                 (10.09, "smpp", 0.003), (10.15, "commit", 0.001), (10.25, "sip", 9.0)]
        rows = mt_stages.windows(done, polls, probes, calls=calls)
        self.assertEqual([row["start"] for row in rows], [0.0, 0.1, 0.3])  # none at 0.2
        self.assertEqual([row["messages"] for row in rows], [2, 1, 1])
        self.assertEqual([round(row["longest"], 3) for row in rows], [0.04, 0.01, 0.01])
        self.assertEqual([round(row["cpu"], 3) for row in rows], [0.6, 0.2, 0.5])
        self.assertEqual([row["box"] for row in rows], [46.0, None, 45.0])
        # calls before the first message or in a window without one: left out
        self.assertEqual([{name: round(v, 3) for name, v in row["parts"].items()} for row in rows],
                         [{"sip": 0.006, "smpp": 0.003, "commit": 0.0},
                          {"sip": 0.0, "smpp": 0.0, "commit": 0.001},
                          {"sip": 0.0, "smpp": 0.0, "commit": 0.0}])
        self.assertEqual(mt_stages.windows([], polls, probes), [])

    def test_report_windows(self):
        def parts(sip):
            return {"sip": sip, "smpp": 0.008, "commit": 0.0}

        rows = [{"start": 0.0, "messages": 800, "longest": 0.040, "cpu": 0.8, "box": 70.0,
                 "parts": parts(0.032)},
                {"start": 0.1, "messages": 800, "longest": 0.010, "cpu": 0.5, "box": 44.0,
                 "parts": parts(0.024)},
                {"start": 0.2, "messages": 800, "longest": 0.020, "cpu": 0.6, "box": None,
                 "parts": parts(0.016)},
                {"start": 0.3, "messages": 800, "longest": 0.030, "cpu": 0.9, "box": 66.0,
                 "parts": parts(0.040)}]
        out = io.StringIO()
        summary = mt_stages.report_windows(rows, out)
        self.assertEqual((summary["windows"], summary["slow"], summary["box"]),
                         (4, 2, (68.0, 44.0)))
        self.assertEqual([round(v, 3) for v in summary["cpu"]], [0.85, 0.55])
        # us per message: sip 40 and 50 there, 30 and 20 in the others
        self.assertEqual({name: tuple(round(v, 1) for v in pair)
                          for name, pair in summary["parts"].items()},
                         {"sip": (45.0, 25.0), "smpp": (10.0, 10.0), "commit": (0.0, 0.0)})
        lines = out.getvalue().splitlines()
        self.assertEqual(lines[0], "100 ms windows: 4, 2 of them with a message over 25 ms")
        self.assertTrue(lines[1].endswith(": 85 / 55"), lines[1])
        self.assertTrue(lines[2].endswith(": 68.0 / 44.0"), lines[2])
        self.assertTrue(lines[3].endswith(
            " others): sip 45.0 / 25.0, smpp 10.0 / 10.0, commit 0.0 / 0.0"), lines[3])
        self.assertEqual(lines[4].split(), ["t=", "0.0", "s", "messages", "800", "longest",
                                            "40.0", "ms", "reactor", "CPU", "80", "%", "box",
                                            "70.0"])
        self.assertEqual(len(lines), 6)

    def test_report_without_slow_windows_or_probes(self):
        rows = [{"start": 0.0, "messages": 10, "longest": 0.001, "cpu": 0.1, "box": None,
                 "parts": {"sip": 0.0001, "smpp": 0.0, "commit": 0.0}}]
        out = io.StringIO()
        summary = mt_stages.report_windows(rows, out)
        self.assertEqual(summary["cpu"], (None, 0.1))
        self.assertEqual(summary["box"], (None, None))
        self.assertTrue(out.getvalue().splitlines()[2].endswith(": - / -"))
        self.assertEqual(summary["parts"]["sip"], (None, 10.0))

    def test_read_probes(self):
        self.assertEqual(mt_stages.read_probes("1.5000 44.0\nnoise\n2.0 x\n3.25 70.5\n"),
                         [(1.5, 44.0), (3.25, 70.5)])

    def test_watch_polls(self):
        class Timer:
            def poll(self, timeout):
                return ["event"]

        recorder = mt_stages.Recorder(clock=lambda: 7.0)
        undo = mt_stages.watch_polls(recorder, Timer)
        self.assertEqual(Timer().poll(0.1), ["event"])
        self.assertEqual(len(recorder.polls), 1)
        self.assertEqual(recorder.polls[0][0], 7.0)
        undo()
        Timer().poll(0.1)
        self.assertEqual(len(recorder.polls), 1)


class MainTests(unittest.TestCase):
    def test_windows_end_to_end(self):
        """The gateway, the simulator, sipp and the box's probe: the windows printed."""
        if shutil.which("sipp") is None:
            raise SkipTest("sipp (sip-tester) is not installed")
        script = os.path.join(os.path.dirname(__file__), "..", "bench", "mt_stages.py")
        run = subprocess.run([sys.executable, script, "--windows", "--rate", "400",
                              "--count", "400", "--sipp-nd"],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn("mt stages over 400 messages", run.stdout)
        windows = [line for line in run.stdout.splitlines() if line.startswith("100 ms windows: ")]
        self.assertEqual(len(windows), 1, run.stdout)
        # one second of messages, and the probe ran next to it
        self.assertGreaterEqual(int(windows[0].split()[3].rstrip(",")), 5)
        box = [line for line in run.stdout.splitlines() if line.startswith("  box probe")]
        self.assertRegex(box[0], r"/ \d+\.\d$")
