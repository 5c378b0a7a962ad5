"""Tests for gwsms.store.migrate on every back-end."""

import os

from twisted.internet import defer
from twisted.trial import unittest

from gwsms.store import migrate
from tests.mysql_helpers import backend_tests


def write(directory, name, text):
    with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
        f.write(text)


class MigrateTestsMixin:
    upgrade = False

    @defer.inlineCallbacks
    def test_empty_database_is_version_zero(self):
        self.assertEqual((yield migrate.current_version(self.db)), 0)

    @defer.inlineCallbacks
    def test_upgrade_creates_tables_and_is_idempotent(self):
        latest = migrate.latest_version(self.db.engine.dialect)
        self.assertGreaterEqual(latest, 1)
        self.assertEqual((yield migrate.upgrade(self.db)), latest)
        self.assertEqual((yield migrate.upgrade(self.db)), latest)
        self.assertEqual((yield migrate.current_version(self.db)), latest)
        rows = yield self.db.run_query("SELECT version FROM schema_version ORDER BY version")
        self.assertEqual([r[0] for r in rows], list(range(1, latest + 1)))
        for table in ("smpp", "sip_users", "sip_registrations"):
            rows = yield self.db.run_query(f"SELECT COUNT(*) FROM {table}")
            self.assertEqual(rows[0][0], 0)

    @defer.inlineCallbacks
    def test_two_handles_upgrade(self):
        if self.url == "sqlite::memory:":
            raise unittest.SkipTest("each :memory: connection is its own database")
        other = self.open_db()
        v1 = yield migrate.upgrade(self.db)
        v2 = yield migrate.upgrade(other)
        self.assertEqual(v1, v2)
        rows = yield other.run_query("SELECT COUNT(*) FROM schema_version")
        self.assertEqual(rows[0][0], v1)

    @defer.inlineCallbacks
    def test_pending_applied_in_order_with_overrides(self):
        schema = os.path.abspath(self.mktemp())
        os.makedirs(schema)
        write(schema, "001_a.sql", "CREATE TABLE m_a (id {{AUTO_ID}}, v INTEGER NOT NULL) {{TABLE_OPTIONS}};\n")
        write(schema, "README", "not a migration")
        self.assertEqual((yield migrate.upgrade(self.db, schema)), 1)
        # a second delta arrives; the dialect override wins over the portable file
        write(schema, "002_b.sql", "this is not SQL and must not run;\n")
        write(
            schema,
            f"002_b.sql.{self.db.engine.dialect}",
            "-- comment; with a semicolon\nINSERT INTO m_a (v) VALUES (7);\n"
            "INSERT INTO m_a (v)\n  VALUES (8);\n",
        )
        self.assertEqual((yield migrate.upgrade(self.db, schema)), 2)
        rows = yield self.db.run_query("SELECT v FROM m_a ORDER BY v")
        self.assertEqual([r[0] for r in rows], [7, 8])
        self.assertEqual((yield migrate.upgrade(self.db, schema)), 2)

    @defer.inlineCallbacks
    def test_failed_migration_names_itself_and_is_not_recorded(self):
        schema = os.path.abspath(self.mktemp())
        os.makedirs(schema)
        write(schema, "001_ok.sql", "CREATE TABLE m_ok (v INTEGER NOT NULL);\n")
        write(schema, "002_bad.sql", "INSERT INTO m_ok (v) VALUES (1);\nINSERT INTO no_such_table VALUES (1);\n")
        e = yield self.assertFailure(migrate.upgrade(self.db, schema), migrate.MigrationError)
        self.assertIn("002_bad", str(e))
        self.assertEqual((yield migrate.current_version(self.db)), 1)
        rows = yield self.db.run_query("SELECT COUNT(*) FROM m_ok")
        self.assertEqual(rows[0][0], 0)  # the half-applied delta was rolled back

    @defer.inlineCallbacks
    def test_newer_database_refused(self):
        yield migrate.upgrade(self.db)
        yield self.db.run_operation(
            "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
            (999, "future", 0.0),
        )
        e = yield self.assertFailure(migrate.upgrade(self.db), migrate.MigrationError)
        self.assertIn("999", str(e))
        self.assertIn("newer", str(e))


backend_tests(globals(), MigrateTestsMixin)


class FindMigrationsTests(unittest.SynchronousTestCase):
    def test_duplicate_number(self):
        schema = self.mktemp()
        os.makedirs(schema)
        write(schema, "001_a.sql", "")
        write(schema, "001_b.sql", "")
        e = self.assertRaises(migrate.MigrationError, migrate.find_migrations, "sqlite", schema)
        self.assertIn("share number 1", str(e))

    def test_unknown_macro(self):
        schema = self.mktemp()
        os.makedirs(schema)
        write(schema, "001_a.sql", "CREATE TABLE x (id {{NOPE}});")
        (m,) = migrate.find_migrations("sqlite", schema)
        e = self.assertRaises(migrate.MigrationError, m.statements, {})
        self.assertIn("{{NOPE}}", str(e))

    def test_shipped_schema_parses_for_both_dialects(self):
        from gwsms.store.engines import MysqlEngine, SqliteEngine

        for engine in (SqliteEngine, MysqlEngine):
            migrations = migrate.find_migrations(engine.dialect)
            self.assertEqual(migrations[0].version, 1)
            stmts = migrations[0].statements(engine.schema_macros)
            self.assertTrue(any(s.startswith("CREATE TABLE smpp") for s in stmts))
