"""Tests for gwsms.store.database on every back-end."""

from twisted.internet import defer
from twisted.trial import unittest

from gwsms.store.database import SyncDatabase, Transaction, open_database_sync
from tests.mysql_helpers import backend_tests


class Boom(Exception):
    pass


class DatabaseTestsMixin:
    upgrade = False

    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        yield self.db.run_operation(
            "CREATE TABLE t (id INTEGER NOT NULL PRIMARY KEY, v VARCHAR(20) NOT NULL)"
        )

    @defer.inlineCallbacks
    def test_interaction_commits(self):
        def insert(txn, a, b, v="x"):
            self.assertIsInstance(txn, Transaction)
            txn.execute("INSERT INTO t (id, v) VALUES (?, ?)", (a, v))
            txn.execute("INSERT INTO t (id, v) VALUES (?, ?)", (b, v))
            return txn.rowcount

        result = yield self.db.run_interaction("insert", insert, 1, 2, v="y")
        self.assertEqual(result, 1)
        rows = yield self.db.run_query("SELECT id, v FROM t ORDER BY id")
        self.assertEqual([tuple(r) for r in rows], [(1, "y"), (2, "y")])

    @defer.inlineCallbacks
    def test_exception_rolls_back(self):
        def insert_then_fail(txn):
            txn.execute("INSERT INTO t (id, v) VALUES (?, ?)", (1, "gone"))
            raise Boom()

        yield self.assertFailure(self.db.run_interaction("fail", insert_then_fail), Boom)
        rows = yield self.db.run_query("SELECT COUNT(*) FROM t")
        self.assertEqual(rows[0][0], 0)

    @defer.inlineCallbacks
    def test_run_operation_rowcount_and_percent(self):
        yield self.db.run_operation("INSERT INTO t (id, v) VALUES (?, ?)", (1, "50%"))
        yield self.db.run_operation("INSERT INTO t (id, v) VALUES (?, ?)", (2, "abc"))
        count = yield self.db.run_operation("UPDATE t SET v = ? WHERE v = '50%' AND 7 % 3 = 1", ("pct",))
        self.assertEqual(count, 1)
        rows = yield self.db.run_query("SELECT v FROM t WHERE id = ?", (1,))
        self.assertEqual(rows[0][0], "pct")

    @defer.inlineCallbacks
    def test_executemany_and_duplicate(self):
        def many(txn):
            txn.executemany("INSERT INTO t (id, v) VALUES (?, ?)", [(1, "a"), (2, "b")])

        yield self.db.run_interaction("many", many)

        def dup(txn):
            try:
                txn.execute("INSERT INTO t (id, v) VALUES (?, ?)", (1, "c"))
            except Exception as e:
                return txn.engine.is_duplicate_error(e)
            return None

        self.assertTrue((yield self.db.run_interaction("dup", dup)))

    def test_repr_has_no_password(self):
        self.assertIn(self.db.engine.dialect, repr(self.db))
        if self.db.engine.dialect == "mysql":
            password = self.url.split("://", 1)[1].split("@")[0].split(":", 1)[1]
            self.assertNotIn(password, repr(self.db))
            self.assertNotIn(password, repr(self.db.engine))
            self.assertIn(":***@", repr(self.db))


backend_tests(globals(), DatabaseTestsMixin)


class OpenDatabaseTests(unittest.SynchronousTestCase):
    def test_bad_url(self):
        from twisted.internet.testing import MemoryReactorClock

        from gwsms.store.database import open_database

        e = self.assertRaises(ValueError, open_database, MemoryReactorClock(), "mysql://u:pw@h:0x/db")
        self.assertIn("port", str(e))
        self.assertNotIn("pw", str(e))
        self.assertRaises(ValueError, open_database_sync, "oracle://x")


def closed_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class MysqlUnreachableTests(unittest.TestCase):
    """A MySQL server that is not there: a clear error without the password."""

    def setUp(self):
        self.url = f"mysql://gw:Sekr1tPw@127.0.0.1:{closed_port()}/gwsms"

    @defer.inlineCallbacks
    def test_pooled_first_interaction_fails(self):
        from twisted.internet import reactor

        from gwsms.store.database import open_database

        db = open_database(reactor, self.url)
        self.addCleanup(db.close)
        self.assertIn("gw:***@127.0.0.1", repr(db))
        import pymysql

        e = yield self.assertFailure(db.run_query("SELECT 1"), pymysql.err.OperationalError)
        self.assertIn("Can't connect", str(e))
        self.assertNotIn("Sekr1tPw", str(e))

    def test_sync_open_fails(self):
        import pymysql

        e = self.assertRaises(pymysql.err.OperationalError, open_database_sync, self.url)
        self.assertNotIn("Sekr1tPw", str(e))


class SyncDatabaseTests(unittest.SynchronousTestCase):
    def test_results_are_already_fired(self):
        db = open_database_sync("sqlite::memory:")
        self.addCleanup(db.close)
        self.assertIsInstance(db, SyncDatabase)
        self.assertEqual(self.successResultOf(db.run_query("SELECT 1 + 1")), [(2,)])

    def test_closed(self):
        db = open_database_sync("sqlite::memory:")
        db.close()
        self.failureResultOf(db.run_query("SELECT 1"), RuntimeError)
