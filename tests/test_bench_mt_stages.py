"""
Tests for L{bench.mt_stages}: it times the stages of real MT lane messages
(the flow of L{bench.instructions}, on a fake clock), and summarises them.
"""

import io
import itertools

from twisted.trial import unittest

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
