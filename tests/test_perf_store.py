"""
Tests for L{gwsms.store.database.Database.run_batch}: the group-commit
writer's statements run in the reactor thread, the deferred statements
and the commit in the commit thread (L{gwsms.store.sqlitecommit}), with the
same all-or-nothing outcome as C{run_interaction}.
"""

import os
import queue
import sqlite3
import threading

from twisted.internet import defer, task
from twisted.trial import unittest

from gwsms.store import sqlitecommit
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

    @defer.inlineCallbacks
    def test_later_statements_committed_with_the_batch(self):
        def batch(txn):
            txn.execute("INSERT INTO t (n) VALUES (1)")
            txn.later("INSERT INTO t (n) VALUES (?), (?)", (2, 3))
            return "ok"

        result = yield self.db.run_batch("batch", batch)
        self.assertEqual(result, "ok")
        rows = yield self.db.run_query("SELECT n FROM t ORDER BY n")
        self.assertEqual(rows, [(1,), (2,), (3,)])

    @defer.inlineCallbacks
    def test_failing_later_statement_rolls_back_whole_batch(self):
        def batch(txn):
            txn.execute("INSERT INTO t (n) VALUES (1)")
            txn.later("INSERT INTO t (n) VALUES (?), (?)", (2, 2))  # duplicate key

        e = yield self.assertFailure(self.db.run_batch("batch", batch), sqlite3.IntegrityError)
        self.assertIn("UNIQUE", str(e))
        rows = yield self.db.run_query("SELECT n FROM t")
        self.assertEqual(rows, [])
        # the connection is usable again
        yield self.db.run_batch("batch", lambda txn: txn.execute("INSERT INTO t (n) VALUES (4)"))
        rows = yield self.db.run_query("SELECT n FROM t")
        self.assertEqual(rows, [(4,)])

    @defer.inlineCallbacks
    def test_lane_statement_failing_half_way_rolls_back_whole_batch(self):
        """
        The lanes' multi-row statements are C{OR FAIL} (no statement
        journal): one that fails after writing some of its rows leaves
        nothing, since the whole batch is rolled back.
        """
        from gwsms.store import lane

        yield self.db.run_batch("batch", lambda txn: lane.insert_rows(
            txn, "INSERT INTO t (n)", [(10,), (11,)]))

        def batch(txn):
            txn.execute("INSERT INTO t (n) VALUES (1)")
            lane.update_from_values(txn, "t", "n = v.column2", "t.n = v.column1",
                                    [(10, 20), (11, 21)])
            # one statement of four rows, the last a duplicate of the first
            lane.insert_rows(txn, "INSERT INTO t (n)", [(2,), (3,), (5,), (2,)])

        e = yield self.assertFailure(self.db.run_batch("batch", batch), sqlite3.IntegrityError)
        self.assertIn("UNIQUE", str(e))
        rows = yield self.db.run_query("SELECT n FROM t ORDER BY n")
        self.assertEqual(rows, [(10,), (11,)])

    @defer.inlineCallbacks
    def test_commit_runs_in_a_thread_of_its_own(self):
        yield self.db.run_batch("batch", lambda txn: txn.execute("INSERT INTO t (n) VALUES (1)"))
        names = {t.name for t in threading.enumerate()}
        self.assertIn("gwsms-sqlite-commit", names)
        self.db.close()
        self.assertNotIn("gwsms-sqlite-commit", {t.name for t in threading.enumerate()})


class SqliteBatchesTurnTests(unittest.TestCase):
    """
    L{sqlitecommit.SqliteBatches}: a batch never waits in the reactor
    thread for the write lock; it tries again on its clock.
    """

    def setUp(self):
        from twisted.internet import reactor

        self.path = os.path.join(os.path.abspath(self.mktemp() + "-db"), "t.sqlite3")
        self.db = open_database(reactor, "sqlite:" + self.path)
        self.addCleanup(self.db.close)
        self.clock = task.Clock()
        self.batches = self.db._batches
        self.batches.clock = self.clock
        return self.db.run_operation("CREATE TABLE t (n INTEGER PRIMARY KEY)")

    def insert(self, n):
        return self.batches.run(lambda txn: txn.execute(
            "INSERT INTO t (n) VALUES (?)", (n,)).rowcount, ())

    def hold_lock(self):
        """Another connection (another process, say) holds the write lock."""
        other = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(other.close)
        other.execute("BEGIN IMMEDIATE")
        return other

    @defer.inlineCallbacks
    def test_connection_without_statement_cache(self):
        opened = []
        connect = self.batches.engine.connect

        def recording(**overrides):
            opened.append(overrides)
            return connect(**overrides)

        self.batches.engine.connect = recording
        self.assertEqual((yield self.insert(1)), 1)
        self.assertEqual((yield self.insert(2)), 1)
        # one connection, kept, with a small statement cache
        self.assertEqual(opened, [{"cached_statements": sqlitecommit.STATEMENT_CACHE}])

    @defer.inlineCallbacks
    def test_waits_for_the_lock_without_blocking(self):
        other = self.hold_lock()
        d = self.insert(1)
        self.assertNoResult(d)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(sqlitecommit.BUSY_RETRY)  # still locked: tries again later
        self.assertNoResult(d)
        other.execute("COMMIT")
        self.clock.advance(sqlitecommit.BUSY_RETRY)
        self.assertEqual((yield d), 1)
        rows = yield self.db.run_query("SELECT n FROM t")
        self.assertEqual(rows, [(1,)])

    @defer.inlineCallbacks
    def test_gives_up_after_the_timeout(self):
        self.hold_lock()
        self.batches.timeout = 1.0
        d = self.insert(1)
        second = self.insert(2)
        self.clock.pump([0.5] * 3)
        e = yield self.assertFailure(d, sqlite3.OperationalError)
        self.assertIn("locked", str(e))
        yield self.assertFailure(second, sqlite3.OperationalError)

    @defer.inlineCallbacks
    def test_leaves_the_turn_to_a_waiting_pool_interaction(self):
        turn = self.batches.turn
        turn.waiting += 1  # as a pool thread in take()
        d = self.insert(1)
        self.assertNoResult(d)
        self.assertFalse(turn.try_take())
        turn.waiting -= 1
        self.clock.advance(sqlitecommit.BUSY_RETRY)
        self.assertEqual((yield d), 1)

    @defer.inlineCallbacks
    def test_waits_while_the_pool_writes(self):
        turn = self.batches.turn
        turn.take()  # a pool interaction is writing
        d = self.insert(1)
        self.clock.advance(sqlitecommit.BUSY_RETRY)
        self.assertNoResult(d)
        turn.give()
        self.clock.advance(sqlitecommit.BUSY_RETRY)
        self.assertEqual((yield d), 1)

    @defer.inlineCallbacks
    def test_in_order_one_at_a_time(self):
        results = yield defer.gatherResults([self.insert(n) for n in range(5)])
        self.assertEqual(results, [1] * 5)
        rows = yield self.db.run_query("SELECT n FROM t ORDER BY n")
        self.assertEqual(rows, [(n,) for n in range(5)])

    @defer.inlineCallbacks
    def test_begin_failing_otherwise_fails_the_batch(self):
        """Not a held lock (a broken file, say): the batch fails at once, the turn is free."""
        def begin(cursor):
            raise sqlite3.DatabaseError("file is not a database")

        self.patch(self.batches.engine, "begin", begin)
        e = yield self.assertFailure(self.insert(1), sqlite3.DatabaseError)
        self.assertIn("not a database", str(e))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertTrue(self.batches.turn.try_take())
        self.batches.turn.give()

    def test_close_fails_waiting_batches(self):
        self.hold_lock()
        d = self.insert(1)
        self.db.close()
        f = self.failureResultOf(d, RuntimeError)
        self.assertIn("closed", str(f.value))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.failureResultOf(self.insert(2), RuntimeError)


class CommitLoopTests(unittest.SynchronousTestCase):
    """L{sqlitecommit._commit_loop}, run in the test's thread."""

    class Reactor:
        def __init__(self):
            self.calls = []

        def callFromThread(self, f, *args):
            self.calls.append((f, args))

    def run_loop(self, later):
        path = os.path.join(os.path.abspath(self.mktemp()), "t.sqlite3")
        os.makedirs(os.path.dirname(path))
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.addCleanup(conn.close)
        conn.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")
        turn = sqlitecommit.WriteTurn()
        self.assertTrue(turn.try_take())
        cursor = conn.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        cursor.execute("INSERT INTO t (n) VALUES (1)")
        jobs = queue.SimpleQueue()
        done = object()
        jobs.put((conn, cursor, later, "result", done))
        jobs.put(None)
        reactor = self.Reactor()
        sqlitecommit._commit_loop(jobs, reactor, turn)
        # the turn is free before the reactor thread hears of the commit
        self.assertTrue(turn.try_take())
        self.assertEqual(len(reactor.calls), 1)
        self.assertIs(reactor.calls[0][0], done)
        return conn, reactor.calls[0][1]

    def test_later_statements_then_commit(self):
        conn, (ok, value) = self.run_loop([("INSERT INTO t (n) VALUES (?)", (2,))])
        self.assertEqual((ok, value), (True, "result"))
        self.assertEqual(conn.execute("SELECT n FROM t ORDER BY n").fetchall(), [(1,), (2,)])

    def test_failure_rolls_back(self):
        conn, (ok, value) = self.run_loop([("INSERT INTO t (n) VALUES (?)", (1,))])
        self.assertFalse(ok)
        self.assertIsInstance(value.value, sqlite3.IntegrityError)
        self.assertEqual(conn.execute("SELECT n FROM t").fetchall(), [])
