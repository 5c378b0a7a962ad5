"""Tests for gwsms.store.engines: URL parsing, masking, dialect details."""

import os
import sqlite3

from twisted.trial import unittest

from gwsms.store.engines import (
    MysqlEngine,
    SqliteEngine,
    _convert_qmark,
    create_engine,
    mask_url,
)


class SqliteUrlTests(unittest.SynchronousTestCase):
    def test_relative_path_is_made_absolute(self):
        engine = create_engine("sqlite:var/gwsms.sqlite3")
        self.assertIsInstance(engine, SqliteEngine)
        self.assertEqual(engine.path, os.path.join(os.getcwd(), "var", "gwsms.sqlite3"))

    def test_absolute_path(self):
        self.assertEqual(create_engine("sqlite:/abs/x.db").path, "/abs/x.db")
        self.assertEqual(create_engine("sqlite:///abs/x.db").path, "/abs/x.db")

    def test_memory(self):
        self.assertEqual(create_engine("sqlite::memory:").path, ":memory:")

    def test_empty_path(self):
        e = self.assertRaises(ValueError, create_engine, "sqlite:")
        self.assertIn("sqlite:PATH", str(e))

    def test_pool_is_single_connection(self):
        args = create_engine("sqlite::memory:").pool_args()
        self.assertEqual((args["cp_min"], args["cp_max"]), (1, 1))
        _, kw = create_engine("sqlite::memory:").connect_args()
        self.assertIs(kw["check_same_thread"], False)

    def test_prepare_creates_parent_directory(self):
        base = os.path.abspath(self.mktemp())
        engine = create_engine(f"sqlite:{base}/sub/dir/db.sqlite3")
        engine.prepare()
        self.assertTrue(os.path.isdir(os.path.join(base, "sub", "dir")))

    def _file_cursor(self):
        """@return: C{(engine, cursor)} of a connection to a new database file."""
        path = os.path.join(os.path.abspath(self.mktemp()), "x.db")
        engine = create_engine("sqlite:" + path)
        engine.prepare()
        conn = engine.connect()
        self.addCleanup(conn.close)
        return engine, conn.cursor()

    def test_on_connect_pragmas(self):
        _engine, cur = self._file_cursor()
        self.assertEqual(cur.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        self.assertEqual(cur.execute("PRAGMA foreign_keys").fetchone()[0], 1)
        self.assertEqual(cur.execute("PRAGMA synchronous").fetchone()[0], 2)  # FULL
        self.assertEqual(cur.execute("PRAGMA busy_timeout").fetchone()[0], 10000)
        self.assertEqual(cur.execute("PRAGMA temp_store").fetchone()[0], 2)  # MEMORY

    def test_statement_journal_in_memory_still_rolls_back_one_statement(self):
        """
        With C{temp_store = MEMORY} a multi-row statement that fails half
        way is still undone alone: the rows written before it in the same
        transaction stay, its own first rows do not.
        """
        engine, cur = self._file_cursor()
        cur.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT NOT NULL)")
        engine.begin(cur)
        # enough rows that the statement journal outgrows its first 64 KiB
        cur.execute("INSERT INTO t (a, b) VALUES " + ",".join(["(?, ?)"] * 400),
                    [v for n in range(400) for v in (n, "x" * 500)])
        with self.assertRaises(sqlite3.IntegrityError):
            cur.execute("UPDATE t SET b = b || 'y', a = CASE WHEN a = 300 THEN 399 ELSE a + 1000"
                        " END")
        with self.assertRaises(sqlite3.IntegrityError):
            cur.execute("INSERT INTO t (a, b) VALUES " + ",".join(["(?, ?)"] * 300),
                        [v for n in range(1000, 1299) for v in (n, "z" * 500)] + [5, "dup"])
        cur.execute("COMMIT")
        rows = cur.execute("SELECT count(*), min(a), max(a), max(length(b)) FROM t").fetchone()
        self.assertEqual(rows, (400, 0, 399, 500))

    def test_duplicate_error(self):
        engine = create_engine("sqlite::memory:")
        conn = sqlite3.connect(":memory:")
        self.addCleanup(conn.close)
        conn.execute("CREATE TABLE t (a INTEGER UNIQUE, b INTEGER NOT NULL)")
        conn.execute("INSERT INTO t VALUES (1, 1)")
        with self.assertRaises(sqlite3.IntegrityError) as cm:
            conn.execute("INSERT INTO t VALUES (1, 2)")
        self.assertTrue(engine.is_duplicate_error(cm.exception))
        with self.assertRaises(sqlite3.IntegrityError) as cm:
            conn.execute("INSERT INTO t VALUES (2, NULL)")
        self.assertFalse(engine.is_duplicate_error(cm.exception))


class MysqlUrlTests(unittest.SynchronousTestCase):
    def test_full_url(self):
        engine = create_engine("mysql://gw:p%40ss%3Aw@db.example:3307/gwsms")
        self.assertIsInstance(engine, MysqlEngine)
        _, kw = engine.connect_args()
        self.assertEqual(kw["host"], "db.example")
        self.assertEqual(kw["port"], 3307)
        self.assertEqual(kw["user"], "gw")
        self.assertEqual(kw["password"], "p@ss:w")
        self.assertEqual(kw["database"], "gwsms")
        self.assertEqual(kw["charset"], "utf8mb4")
        self.assertIs(kw["autocommit"], False)

    def test_default_port_and_socket(self):
        engine = create_engine("mysql://gw:x@localhost/gwsms?unix_socket=/run/mysqld/s.sock")
        _, kw = engine.connect_args()
        self.assertEqual(kw["port"], 3306)
        self.assertEqual(kw["unix_socket"], "/run/mysqld/s.sock")

    def test_tls_off_only_for_local_servers(self):
        for url in ("mysql://u:p@127.0.0.1/db", "mysql://u:p@localhost/db",
                    "mysql://u:p@h/db?unix_socket=/s"):
            self.assertIs(create_engine(url).connect_args()[1]["ssl_disabled"], True, url)
        self.assertNotIn("ssl_disabled", create_engine("mysql://u:p@db.example/db").connect_args()[1])

    def test_repr_masks_password(self):
        engine = create_engine("mysql://gw:sekrit@h:3306/db")
        self.assertNotIn("sekrit", repr(engine))
        self.assertIn("gw:***@h:3306/db", repr(engine))

    def test_errors_name_the_problem_without_password(self):
        cases = {
            "mysql://gw:sekrit@h:99999/db": "port",
            "mysql://gw:sekrit@h:3306/": "database name",
            "mysql://:sekrit@h/db": "user",
            "mysql://gw:sekrit@h/db?foo=1": "unknown option",
            "mysql:db": "expected mysql://",
            "postgres://gw:sekrit@h/db": "unknown scheme",
            "nocolon": "no scheme",
            "": "empty",
        }
        for url, needle in cases.items():
            e = self.assertRaises(ValueError, create_engine, url)
            self.assertIn(needle, str(e), url)
            self.assertNotIn("sekrit", str(e), url)


class MaskUrlTests(unittest.SynchronousTestCase):
    def test_mask(self):
        self.assertEqual(mask_url("mysql://u:p@h/db"), "mysql://u:***@h/db")
        self.assertEqual(mask_url("mysql://u@h/db"), "mysql://u@h/db")
        self.assertEqual(mask_url("sqlite:var/x"), "sqlite:var/x")
        self.assertEqual(mask_url("mysql://u:p@ss@h/db"), "mysql://u:***@h/db")


class ParamStyleTests(unittest.SynchronousTestCase):
    def test_qmark_to_format(self):
        self.assertEqual(
            _convert_qmark("SELECT * FROM t WHERE a = ? AND b LIKE 'x%?' AND c = ?"),
            "SELECT * FROM t WHERE a = %s AND b LIKE 'x%%?' AND c = %s",
        )
        self.assertEqual(_convert_qmark("SELECT 5 % 2"), "SELECT 5 %% 2")

    def test_sqlite_leaves_sql_alone(self):
        sql = "SELECT ? FROM t"
        self.assertEqual(create_engine("sqlite::memory:").convert_param_style(sql), sql)

    def test_upsert_sql(self):
        lite = create_engine("sqlite::memory:").upsert_sql("t", ("a",), ("b", "c"))
        self.assertEqual(
            lite,
            "INSERT INTO t (a, b, c) VALUES (?, ?, ?) ON CONFLICT (a) DO UPDATE SET "
            "b = excluded.b, c = excluded.c",
        )
        my = create_engine("mysql://u:p@h/db").upsert_sql("t", ("a",), ("b",))
        self.assertEqual(
            my, "INSERT INTO t (a, b) VALUES (?, ?) ON DUPLICATE KEY UPDATE b = VALUES(b)"
        )
