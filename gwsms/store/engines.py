# -*- test-case-name: tests.test_store_engines -*-
"""
SQL dialects: one engine class per database product.

An engine knows its DB-API module, how to open and prepare a connection, how
to rewrite our C{?} placeholders for its driver, and the few statements that
differ between SQLite and MySQL/MariaDB (upsert, schema lock).  Every piece of
dialect-specific SQL outside C{gwsms/store/schema/*.sql.<dialect>} lives here.

Database URLs::

    sqlite:var/gwsms.sqlite3        relative to the working directory
    sqlite:/abs/path.db             absolute
    sqlite::memory:                 private in-memory database
    mysql://user:pass@host:port/db  MySQL / MariaDB via PyMySQL
                                    (password URL-encoded; optional
                                    ?unix_socket=/path)

The password never appears in a log line or a C{repr}: use L{mask_url}.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from typing import Any


def mask_url(url: str) -> str:
    """
    Return C{url} with any password replaced by C{***}.

    @param url: a database URL, possibly malformed.
    @return: a string safe to log.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    if not at:
        return url
    user, colon, _password = userinfo.partition(":")
    if colon:
        userinfo = f"{user}:***"
    return f"{scheme}://{userinfo}@{hostport}{slash}{path}"


def _convert_qmark(sql: str) -> str:
    """
    Rewrite C{?} placeholders to C{%s} and double literal C{%}, leaving
    quoted strings alone (PyMySQL always %-formats when given arguments).
    """
    out = []
    quote = None
    for ch in sql:
        if quote:
            if ch == quote:
                quote = None
            out.append("%%" if ch == "%" else ch)
        elif ch in ("'", '"', "`"):
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


class BaseEngine:
    """
    What the rest of gwsms needs to know about a SQL dialect.

    @ivar dialect: C{"sqlite"} or C{"mysql"}; also the suffix of schema
        override files (C{001_init.sql.mysql}).
    @ivar dbapi: the DB-API 2.0 module.
    """

    dialect = ""
    dbapi: Any = None
    #: text substituted for C{{{NAME}}} tokens in schema files
    schema_macros: dict[str, str] = {}

    def __init__(self, url: str):
        self.url = url

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {mask_url(self.url)}>"

    @property
    def display_url(self) -> str:
        """The URL with the password masked."""
        return mask_url(self.url)

    # -- connections -----------------------------------------------------

    def prepare(self) -> None:
        """Filesystem work before the first connection (create directories)."""

    def connect_args(self) -> tuple[tuple, dict]:
        """Positional and keyword arguments for C{dbapi.connect}."""
        raise NotImplementedError

    def pool_args(self) -> dict:
        """Extra C{cp_*} arguments for C{adbapi.ConnectionPool}."""
        return {}

    def connect(self, **overrides):
        """
        Open and prepare one raw DB-API connection (blocking).

        @param overrides: C{dbapi.connect} keyword arguments that replace
            L{connect_args}' own.
        """
        args, kw = self.connect_args()
        conn = self.dbapi.connect(*args, **dict(kw, **overrides))
        try:
            self.on_connect(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def on_connect(self, conn) -> None:
        """Prepare a fresh connection (session settings)."""

    # -- statements ------------------------------------------------------

    def convert_param_style(self, sql: str) -> str:
        """Rewrite C{?} placeholders for this driver."""
        return sql

    def begin(self, cursor) -> None:
        """Start a transaction on C{cursor} (when the driver does not)."""

    def is_duplicate_error(self, exc: BaseException) -> bool:
        """Whether C{exc} is a unique-constraint violation."""
        raise NotImplementedError

    def upsert_sql(self, table: str, keys: tuple[str, ...], columns: tuple[str, ...]) -> str:
        """
        An INSERT of C{keys + columns} that updates C{columns} when a row with
        the same C{keys} exists.  Placeholders are C{?} in that order.
        """
        raise NotImplementedError

    def delete_oldest_sql(self, table: str, column: str) -> str:
        """
        A DELETE of at most C{limit} rows of C{table} whose C{column} is
        below a bound, lowest first.  Placeholders: the bound, C{limit}.
        """
        raise NotImplementedError

    def lock_schema(self, txn) -> None:
        """Serialise schema migrations between processes (C{txn}: a
        L{gwsms.store.database.Transaction})."""

    def unlock_schema(self, txn) -> None:
        """Undo L{lock_schema}."""


class SqliteEngine(BaseEngine):
    """SQLite 3 through the standard library, WAL mode, one connection."""

    dialect = "sqlite"
    dbapi = sqlite3
    schema_macros = {
        "AUTO_ID": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "TABLE_OPTIONS": "",
    }
    busy_timeout_ms = 10000

    def __init__(self, url: str, path: str):
        super().__init__(url)
        #: absolute path, or C{":memory:"}
        self.path = path

    def prepare(self) -> None:
        if self.path != ":memory:":
            parent = os.path.dirname(self.path)
            if parent:
                os.makedirs(parent, exist_ok=True)

    def connect_args(self):
        # isolation_level=None: we issue BEGIN ourselves (see begin), so DDL
        # in migrations is transactional too.
        return (self.path,), {
            "check_same_thread": False,
            "isolation_level": None,
            "timeout": self.busy_timeout_ms / 1000.0,
        }

    def pool_args(self):
        # One writer: several connections would only fight over the lock,
        # and every ":memory:" connection would be a different database.
        return {"cp_min": 1, "cp_max": 1, "cp_reconnect": False}

    def on_connect(self, conn) -> None:
        cur = conn.cursor()
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA synchronous = FULL")
        # up to 64 MiB of pages in memory (the default is 2 MiB): the duplicate
        # keys of a busy dedup window are random B-tree inserts
        cur.execute("PRAGMA cache_size = -65536")
        # statement journals, temporary tables and sorts in memory: on a file
        # each costs an open, a write per page and an unlink.  The lanes'
        # multi-row statements (OR FAIL, gwsms.store.lane) keep no journal at
        # all; before they did, their journals outgrew the 64 KiB SQLite holds
        # in memory, and this took 13 us of system time off each SIP -> SMPP
        # message (bench/README.md)
        cur.execute("PRAGMA temp_store = MEMORY")
        cur.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        cur.close()

    def begin(self, cursor) -> None:
        # IMMEDIATE takes the write lock up front: the CLI and the service
        # can share the file without read-then-write deadlocks.
        cursor.execute("BEGIN IMMEDIATE")

    def is_duplicate_error(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)

    def upsert_sql(self, table, keys, columns):
        names = ", ".join(keys + columns)
        marks = ", ".join("?" for _ in keys + columns)
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns)
        return (
            f"INSERT INTO {table} ({names}) VALUES ({marks}) "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
        )

    def delete_oldest_sql(self, table, column):
        # (DELETE ... LIMIT needs a compile-time option SQLite builds lack)
        return (f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table}"
                f" WHERE {column} < ? ORDER BY {column} LIMIT ?)")


class MysqlEngine(BaseEngine):
    """MySQL / MariaDB through PyMySQL (imported lazily: an optional extra)."""

    dialect = "mysql"
    schema_macros = {
        "AUTO_ID": "INT NOT NULL AUTO_INCREMENT PRIMARY KEY",
        "TABLE_OPTIONS": "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    }
    sql_mode = (
        "STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"
        "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"
    )
    lock_name = "gwsms_schema_migration"
    lock_timeout = 60

    def __init__(self, url, host, port, user, password, database, unix_socket=None):
        super().__init__(url)
        self.host = host
        self.port = port
        self.user = user
        self._password = password
        self.database = database
        self.unix_socket = unix_socket

    @property
    def dbapi(self):  # type: ignore[override]
        try:
            import pymysql
        except ImportError:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "mysql database URL needs PyMySQL: pip install 'gwsms[mysql]'"
            ) from None
        return pymysql

    def connect_args(self):
        kw: dict = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self._password,
            "database": self.database,
            "charset": "utf8mb4",
            "autocommit": False,
            "connect_timeout": 10,
        }
        if self.unix_socket:
            kw["unix_socket"] = self.unix_socket
        if self.unix_socket or self.host in ("localhost", "::1") or self.host.startswith("127."):
            # TLS buys nothing on this machine, and PyMySQL's default
            # "preferred" TLS costs ~50 ms per connection to set up.
            kw["ssl_disabled"] = True
        return (), kw

    def pool_args(self):
        return {"cp_min": 1, "cp_max": 5, "cp_reconnect": True}

    def on_connect(self, conn) -> None:
        conn.autocommit(False)
        cur = conn.cursor()
        cur.execute(f"SET SESSION sql_mode = '{self.sql_mode}'")
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        cur.close()

    def convert_param_style(self, sql: str) -> str:
        return _convert_qmark(sql)

    def is_duplicate_error(self, exc: BaseException) -> bool:
        pymysql = self.dbapi
        return (
            isinstance(exc, pymysql.err.IntegrityError)
            and bool(exc.args)
            and exc.args[0] == 1062  # ER_DUP_ENTRY
        )

    def upsert_sql(self, table, keys, columns):
        names = ", ".join(keys + columns)
        marks = ", ".join("?" for _ in keys + columns)
        updates = ", ".join(f"{c} = VALUES({c})" for c in columns)
        return f"INSERT INTO {table} ({names}) VALUES ({marks}) ON DUPLICATE KEY UPDATE {updates}"

    def delete_oldest_sql(self, table, column):
        return f"DELETE FROM {table} WHERE {column} < ? ORDER BY {column} LIMIT ?"

    def lock_schema(self, txn) -> None:
        txn.execute(
            "SELECT GET_LOCK(?, ?)", (self.lock_name, self.lock_timeout)
        )
        (got,) = txn.fetchone()
        if got != 1:
            raise RuntimeError(
                f"timed out after {self.lock_timeout}s waiting for another "
                "process to finish migrating the database schema"
            )

    def unlock_schema(self, txn) -> None:
        txn.execute("SELECT RELEASE_LOCK(?)", (self.lock_name,))
        txn.fetchall()


def create_engine(url: str) -> BaseEngine:
    """
    Parse a database URL into an engine.

    @param url: see the module docstring.
    @return: a L{SqliteEngine} or L{MysqlEngine}.
    @raise ValueError: naming what is wrong (the password is never quoted).
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError("database URL is empty")
    url = url.strip()
    scheme, colon, rest = url.partition(":")
    scheme = scheme.lower()
    if not colon:
        raise ValueError(
            f"database URL {mask_url(url)!r} has no scheme: expected "
            "sqlite:PATH, sqlite::memory: or mysql://user:pass@host:port/db"
        )
    if scheme == "sqlite":
        if rest == ":memory:":
            return SqliteEngine(url, ":memory:")
        if rest.startswith("///"):  # sqlite:///abs/path
            rest = rest[2:]
        if not rest or rest.startswith("//"):
            raise ValueError(
                f"database URL {url!r}: expected sqlite:PATH, sqlite:/abs/path "
                "or sqlite::memory:"
            )
        return SqliteEngine(url, os.path.abspath(rest))
    if scheme in ("mysql", "mariadb", "mysql+pymysql"):
        return _parse_mysql(url)
    raise ValueError(
        f"database URL {mask_url(url)!r}: unknown scheme {scheme!r} "
        "(expected sqlite or mysql)"
    )


def _parse_mysql(url: str) -> MysqlEngine:
    shown = mask_url(url)
    parts = urllib.parse.urlsplit(url)
    if not parts.netloc:
        raise ValueError(
            f"database URL {shown!r}: expected mysql://user:pass@host:port/database"
        )
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"database URL {shown!r}: port is not a number in 1-65535") from None
    host = parts.hostname or ""
    query = urllib.parse.parse_qs(parts.query)
    unknown = set(query) - {"unix_socket"}
    if unknown:
        raise ValueError(
            f"database URL {shown!r}: unknown option(s) {', '.join(sorted(unknown))} "
            "(only unix_socket is understood)"
        )
    unix_socket = query.get("unix_socket", [None])[0]
    if not host and not unix_socket:
        raise ValueError(f"database URL {shown!r}: host is missing")
    user = urllib.parse.unquote(parts.username or "")
    if not user:
        raise ValueError(f"database URL {shown!r}: user is missing")
    password = urllib.parse.unquote(parts.password or "")
    database = urllib.parse.unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise ValueError(f"database URL {shown!r}: database name is missing")
    return MysqlEngine(
        url,
        host=host or "localhost",
        port=port or 3306,
        user=user,
        password=password,
        database=database,
        unix_socket=unix_socket,
    )
