"""
Database back-ends for the store tests.

Each store test class is written once against C{self.db} (a
L{gwsms.store.database.Database}) using Deferreds, and mixed with one of the
back-end mixins below: SQLite in memory and in a file (pooled, on the real
reactor's thread machinery), SQLite through the blocking L{SyncDatabase} the
CLI uses, and MySQL/MariaDB (pooled and blocking) when
C{GWSMS_TEST_MYSQL_URL} is set (C{eval "$(bash .ci/mariadb.sh)"}).

MySQL tests get a fresh database per test (C{gwsms_test_<pid>_<n>}) when the
account may create it, else every table of the given database is dropped
before and after the test.
"""

from __future__ import annotations

import itertools
import os
import urllib.parse

from twisted.internet import defer

from gwsms.store import migrate
from gwsms.store.database import open_database, open_database_sync
from gwsms.store.engines import create_engine

MYSQL_URL = os.environ.get("GWSMS_TEST_MYSQL_URL", "")
SKIP_MYSQL = "" if MYSQL_URL else "GWSMS_TEST_MYSQL_URL not set (eval \"$(bash .ci/mariadb.sh)\")"

_counter = itertools.count(1)


def _drop_all_tables(url: str) -> None:
    conn = create_engine(url).connect()
    try:
        cur = conn.cursor()
        cur.execute("SET FOREIGN_KEY_CHECKS = 0")
        cur.execute("SHOW TABLES")
        for (table,) in cur.fetchall():
            cur.execute(f"DROP TABLE `{table}`")
        conn.commit()
    finally:
        conn.close()


def fresh_mysql_url(testcase) -> str:
    """
    A MySQL URL on an empty database for C{testcase}; cleaned up afterwards.
    """
    parts = urllib.parse.urlsplit(MYSQL_URL)
    name = f"gwsms_test_{os.getpid()}_{next(_counter)}"
    engine = create_engine(MYSQL_URL)
    conn = engine.connect()
    try:
        cur = conn.cursor()
        try:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        except Exception:
            _drop_all_tables(MYSQL_URL)
            testcase.addCleanup(_drop_all_tables, MYSQL_URL)
            return MYSQL_URL
    finally:
        conn.close()

    def drop():
        c = engine.connect()
        try:
            c.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            c.close()

    testcase.addCleanup(drop)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


class _Backend:
    """Open C{self.db} (upgraded to the latest schema) in setUp."""

    sync = False
    upgrade = True

    def database_url(self) -> str:
        raise NotImplementedError

    def open_db(self, url: str | None = None):
        """Open another handle (same kind) on C{url} or this test's database."""
        url = url or self.url
        if self.sync:
            db = open_database_sync(url)
        else:
            from twisted.internet import reactor

            db = open_database(reactor, url)
        self.addCleanup(db.close)
        return db

    def setUp(self):
        self.url = self.database_url()
        self.db = self.open_db()
        if self.upgrade:
            return migrate.upgrade(self.db)
        return defer.succeed(None)


class SqliteMemoryMixin(_Backend):
    def database_url(self):
        return "sqlite::memory:"


class SqliteFileMixin(_Backend):
    def database_url(self):
        return "sqlite:" + os.path.join(os.path.abspath(self.mktemp()), "gwsms.sqlite3")


class SqliteSyncMixin(SqliteFileMixin):
    sync = True


class MysqlMixin(_Backend):
    if SKIP_MYSQL:
        skip = SKIP_MYSQL

    def database_url(self):
        return fresh_mysql_url(self)


class MysqlSyncMixin(MysqlMixin):
    sync = True


#: (class-name suffix, mixin) for every back-end
BACKENDS = (
    ("SqliteMemory", SqliteMemoryMixin),
    ("SqliteFile", SqliteFileMixin),
    ("SqliteSync", SqliteSyncMixin),
    ("Mysql", MysqlMixin),
    ("MysqlSync", MysqlSyncMixin),
)


def backend_tests(namespace: dict, base: type, backends=BACKENDS) -> None:
    """
    Define C{<base name><suffix>Tests} in C{namespace} for each back-end.

    @param base: a class of test methods (not itself a TestCase).
    """
    from twisted.trial import unittest

    stem = base.__name__.removesuffix("Mixin").removesuffix("Tests")
    for suffix, mixin in backends:
        name = f"{stem}{suffix}Tests"
        namespace[name] = type(name, (base, mixin, unittest.TestCase), {"__module__": namespace["__name__"]})
