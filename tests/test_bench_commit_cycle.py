"""
Tests for L{bench.commit_cycle}: it times the phases of real batches of
the SQLite batch runner, and summarises them.
"""

import io
import os
import sys

from twisted.internet import defer, task
from twisted.trial import unittest

from bench import commit_cycle
from gwsms.store import sqlitecommit
from gwsms.store.database import open_database


class InstrumentTests(unittest.TestCase):
    def setUp(self):
        self.records = []
        self.addCleanup(commit_cycle.instrument(self.records))

    @defer.inlineCallbacks
    def test_batches_timed_in_order(self):
        from twisted.internet import reactor

        path = os.path.join(self.mktemp() + "-db", "t.sqlite3")
        db = open_database(reactor, "sqlite:" + path)
        self.addCleanup(db.close)
        yield db.run_operation("CREATE TABLE t (n INTEGER PRIMARY KEY)")
        called = []

        def batch(txn, n):
            txn.execute("INSERT INTO t (n) VALUES (?)", (n,))
            txn.later("INSERT INTO t (n) VALUES (?)", (n + 100,))
            return n

        first = db.run_batch("batch", batch, 1)
        first.addCallback(called.append)
        second = db.run_batch("batch", batch, 2)  # waits for the first
        yield defer.gatherResults([first, second])
        # the last record is kept once its callbacks have returned
        yield task.deferLater(reactor, 0, lambda: None)
        self.assertEqual(called, [1])
        self.assertEqual(len(self.records), 2)
        for record in self.records:
            self.assertEqual(len(record), len(commit_cycle.FIELDS) + 1)
            times, cpu = record[:-1], record[-1]
            self.assertEqual(list(times), sorted(times))
            # the deferred statements' CPU time fits in their wall time
            self.assertGreaterEqual(cpu, 0)
            self.assertLessEqual(cpu, times[3] - times[2] + 0.001)
        # the second started after the first's commit thread was done with it
        self.assertGreaterEqual(self.records[1][0], self.records[0][4])
        rows = yield db.run_query("SELECT n FROM t ORDER BY n")
        self.assertEqual(rows, [(1,), (2,), (101,), (102,)])


class UndoTests(unittest.SynchronousTestCase):
    def test_undo(self):
        cls = sqlitecommit.SqliteBatches
        before = (cls.__init__, cls._next, cls._connection)
        undo = commit_cycle.instrument([])
        self.assertNotEqual(cls._next, before[1])
        undo()
        self.assertEqual((cls.__init__, cls._next, cls._connection), before)


class SummariseTests(unittest.SynchronousTestCase):
    def test_phases_and_cycle(self):
        # start, queued, taken, later_done, committed, reported, called_back,
        # later CPU
        records = [(0.0, 0.001, 0.002, 0.004, 0.007, 0.008, 0.010, 0.001),
                   (0.010, 0.011, 0.012, 0.014, 0.017, 0.018, 0.020, 0.0015),
                   (0.030, 0.032, 0.033, 0.035, 0.038, 0.039, 0.041, 0.002)]
        summary = commit_cycle.summarise(records, skip=0)
        self.assertEqual(summary["batches"], 3)
        self.assertEqual(summary["statements"], (1.0, 1.333, 2.0, 2.0))
        self.assertEqual(summary["later"], (2.0, 2.0, 2.0, 2.0))
        self.assertEqual(summary["later_cpu"], (1.5, 1.5, 2.0, 2.0))
        self.assertEqual(summary["commit"], (3.0, 3.0, 3.0, 3.0))
        self.assertEqual(summary["callbacks"], (2.0, 2.0, 2.0, 2.0))
        self.assertEqual(summary["cycle"], (20.0, 15.0, 20.0, 20.0))

    def test_start_up_left_out(self):
        records = [(float(n),) * 8 for n in range(8)]
        self.assertEqual(commit_cycle.summarise(records)["batches"], 6)
        self.assertEqual(commit_cycle.summarise([]), {})

    def test_report(self):
        out = io.StringIO()
        commit_cycle.report(commit_cycle.summarise(
            [(0.0, 0.001, 0.002, 0.004, 0.007, 0.008, 0.010, 0.0005)], skip=0), out)
        lines = out.getvalue().splitlines()
        self.assertEqual(lines[0], "commit cycle over 1 batches (ms, median / mean / p99 / max):")
        self.assertEqual(lines[1].split(), ["statements", "1.000", "/", "1.000", "/", "1.000", "/", "1.000"])
        self.assertEqual([line.split()[0] for line in lines[1:]],
                         ["statements", "queued", "later", "later_cpu", "commit", "handoff",
                          "callbacks"])
        self.assertEqual(lines[4].split(), ["later_cpu", "0.500", "/", "0.500", "/", "0.500", "/", "0.500"])
        self.assertNotIn("cycle ", out.getvalue().split(":", 1)[1])
        out = io.StringIO()
        commit_cycle.report({}, out)
        self.assertEqual(out.getvalue(), "commit cycle: no batch recorded\n")

    def test_usage(self):
        err = io.StringIO()
        self.patch(sys, "stderr", err)
        self.assertEqual(commit_cycle.main(["sideways"]), 2)
        self.assertIn("usage: commit_cycle.py mo|mt", err.getvalue())
