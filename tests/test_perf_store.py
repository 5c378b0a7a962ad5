"""
Tests for L{gwsms.store.database.Database.run_batch}: the group-commit
writer's statements run in the reactor thread, the commit in the pool
thread, with the same all-or-nothing outcome as C{run_interaction}.
"""

import os
import threading

from twisted.internet import defer
from twisted.trial import unittest

from gwsms.store.database import open_database


class RunBatchTests(unittest.TestCase):
    def setUp(self):
        from twisted.internet import reactor

        path = os.path.join(self.mktemp() + "-db", "t.sqlite3")
        self.db = open_database(reactor, "sqlite:" + path)
        self.addCleanup(self.db.close)
        return self.db.run_operation("CREATE TABLE t (n INTEGER PRIMARY KEY)")

    @defer.inlineCallbacks
    def test_statements_in_reactor_thread_then_committed(self):
        threads = []

        def batch(txn, values):
            threads.append(threading.current_thread())
            for n in values:
                txn.execute("INSERT INTO t (n) VALUES (?)", (n,))
            return len(values)

        result = yield self.db.run_batch("batch", batch, [1, 2, 3])
        self.assertEqual(result, 3)
        self.assertEqual(threads, [threading.main_thread()])
        rows = yield self.db.run_query("SELECT n FROM t ORDER BY n")
        self.assertEqual(rows, [(1,), (2,), (3,)])

    @defer.inlineCallbacks
    def test_exception_rolls_back_whole_batch(self):
        def batch(txn):
            txn.execute("INSERT INTO t (n) VALUES (7)")
            txn.execute("INSERT INTO t (n) VALUES (7)")  # duplicate key

        e = yield self.assertFailure(self.db.run_batch("batch", batch), Exception)
        self.assertIn("UNIQUE", str(e))
        rows = yield self.db.run_query("SELECT n FROM t")
        self.assertEqual(rows, [])

    @defer.inlineCallbacks
    def test_interleaves_with_pool_interactions(self):
        ds = [self.db.run_batch("batch", lambda txn, n: txn.execute(
            "INSERT INTO t (n) VALUES (?)", (n,)).rowcount, n) for n in range(5)]
        ds += [self.db.run_query("SELECT COUNT(*) FROM t") for _ in range(3)]
        results = yield defer.gatherResults(ds)
        self.assertEqual(results[:5], [1] * 5)
        rows = yield self.db.run_query("SELECT COUNT(*) FROM t")
        self.assertEqual(rows, [(5,)])
