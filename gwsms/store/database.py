# -*- test-case-name: tests.test_store_database -*-
"""
The database handle every store uses.

L{open_database} gives a L{Database} backed by a Twisted
C{adbapi.ConnectionPool} (work runs in the pool's threads; results come back
as Deferreds).  L{open_database_sync} gives the same API over one plain
connection, running each interaction at once and returning an already-fired
Deferred: the C{gwsms} command uses it so it needs no reactor, and the store
classes work unchanged on both.

Interactions are functions C{fn(txn, *args, **kw)} run inside one
transaction: committed when C{fn} returns, rolled back when it raises.  C{txn}
is a L{Transaction}: a cursor whose C{execute} takes C{?} placeholders on
every dialect.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from twisted.enterprise import adbapi
from twisted.internet import defer
from twisted.logger import Logger

from gwsms.store.engines import BaseEngine, create_engine
from gwsms.store.sqlitecommit import SqliteBatches, WriteTurn

#: interactions slower than this many seconds are logged
SLOW_INTERACTION = 1.0


class Transaction:
    """
    A cursor wrapper handed to interaction functions.

    @ivar engine: the L{BaseEngine}, for dialect questions
        (C{txn.engine.is_duplicate_error(e)}, C{txn.engine.upsert_sql(...)}).
    """

    def __init__(self, cursor, engine: BaseEngine, later: list | None = None):
        self._cursor = cursor
        self.engine = engine
        self._later = later

    def later(self, sql: str, params: tuple | list = ()) -> None:
        """
        Run one statement that returns nothing before the transaction
        commits: at once, or, in a L{Database.run_batch} on a SQLite file, in
        the commit thread after the batch's functions have run in the
        reactor thread (SQLite releases the GIL while it works, so a big
        multi-row statement costs the reactor thread nothing).  Statements
        run in the order given.
        """
        if self._later is None:
            self.execute(sql, params)
        else:
            self._later.append((self.engine.convert_param_style(sql), tuple(params)))

    def execute(self, sql: str, params: tuple | list = ()) -> "Transaction":
        """Run one statement with C{?} placeholders."""
        self._cursor.execute(self.engine.convert_param_style(sql), tuple(params))
        return self

    def executemany(self, sql: str, rows) -> "Transaction":
        """Run one statement once per parameter tuple in C{rows}."""
        self._cursor.executemany(
            self.engine.convert_param_style(sql), [tuple(r) for r in rows]
        )
        return self

    def fetchone(self):
        return self._cursor.fetchone()

    def fetchall(self) -> list:
        return list(self._cursor.fetchall())

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self):
        return self._cursor.lastrowid

    @property
    def description(self):
        return self._cursor.description


def _interact(conn, engine: BaseEngine, desc: str, fn: Callable, args, kw):
    """Run C{fn} in a transaction on C{conn}; the caller commits or rolls back."""
    cursor = conn.cursor()
    try:
        engine.begin(cursor)
        return fn(Transaction(cursor, engine), *args, **kw)
    finally:
        cursor.close()


#: seconds a batch of L{SqliteBatches} may wait for SQLite's write lock
#: (held by another process) before it fails
BATCH_HANDOFF_TIMEOUT = 60.0


def _interact_committed(conn, engine: BaseEngine, desc: str, fn: Callable, args, kw):
    """L{_interact}, then commit; on any error roll back (a failed rollback is logged) and raise."""
    try:
        result = _interact(conn, engine, desc, fn, args, kw)
        conn.commit()
        return result
    except BaseException:
        try:
            conn.rollback()
        except Exception:
            Database._log.failure("rollback failed after {desc}", desc=desc)
        raise


def _interact_in_turn(conn, engine: BaseEngine, turn: WriteTurn, desc: str, fn: Callable,
                      args, kw):
    """L{_interact_committed} within a L{WriteTurn} (pool thread)."""
    turn.take()
    try:
        return _interact_committed(conn, engine, desc, fn, args, kw)
    finally:
        turn.give()


class Database:
    """
    A connection pool plus the engine that knows its dialect.

    @ivar engine: L{SqliteEngine} or L{MysqlEngine}.
    """

    _log = Logger()

    def __init__(self, engine: BaseEngine, pool: adbapi.ConnectionPool | None, reactor=None):
        """
        @param reactor: the pool's reactor; with an SQLite engine it lets
            L{run_batch} run statements in the reactor thread.
        """
        self.engine = engine
        self._pool = pool
        self._reactor = reactor
        self._batches = None
        if reactor is not None and engine.dialect == "sqlite" and \
                getattr(engine, "path", ":memory:") != ":memory:":
            # a file: batches on a connection of their own, taking turns
            # with the pool's (one in-memory database cannot be shared)
            self._batches = SqliteBatches(engine, reactor, Transaction, BATCH_HANDOFF_TIMEOUT,
                                          WriteTurn())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.engine.display_url}>"

    def run_interaction(self, desc: str, fn: Callable, *args: Any, **kw: Any) -> defer.Deferred:
        """
        Run C{fn(txn, *args, **kw)} in one transaction.

        @param desc: short name of the work, used in log lines.
        @return: Deferred firing with C{fn}'s return value, or failing with its
            exception (after rollback).
        """
        started = time.monotonic()

        def check_time(result):
            elapsed = time.monotonic() - started
            if elapsed > SLOW_INTERACTION:
                self._log.warn(
                    "slow database interaction {desc}: {elapsed:.3f}s (including wait)",
                    desc=desc,
                    elapsed=elapsed,
                )
            return result

        if self._batches is not None:
            d = self._pool.runWithConnection(_interact_in_turn, self.engine,
                                             self._batches.turn, desc, fn, args, kw)
        else:
            d = self._pool.runWithConnection(_interact, self.engine, desc, fn, args, kw)
        return d.addBoth(check_time)

    @property
    def batches_in_reactor(self) -> bool:
        """Whether L{run_batch} runs its function in the reactor thread."""
        return self._batches is not None

    def run_batch(self, desc: str, fn: Callable, *args: Any) -> defer.Deferred:
        """
        Like L{run_interaction}, for the group-commit writer's batches.

        On a SQLite file the statements of C{fn} run in the reactor thread,
        on a connection of their own, and only the L{Transaction.later}
        statements and C{COMMIT} (the fsync) leave it, in one hand-over to
        a commit thread (L{SqliteBatches}): SQLite's module releases the
        GIL around every statement step, and a thread that wants it back
        while the reactor thread is busy waits up to a switch interval each
        time.  Other engines (network round trips) and an in-memory SQLite
        database (one connection) run it like L{run_interaction}.

        @return: Deferred firing with C{fn}'s result after the commit, or
            failing with its exception (after rollback).
        """
        if self._batches is None:
            return self.run_interaction(desc, fn, *args)
        return self._batches.run(fn, args)

    def run_query(self, sql: str, params: tuple | list = (), desc: str = "query") -> defer.Deferred:
        """
        Run one SELECT.

        @return: Deferred firing with a list of row tuples.
        """

        def query(txn):
            return txn.execute(sql, params).fetchall()

        return self.run_interaction(desc, query)

    def run_operation(self, sql: str, params: tuple | list = (), desc: str = "operation") -> defer.Deferred:
        """
        Run one INSERT/UPDATE/DELETE.

        @return: Deferred firing with the affected row count.
        """

        def operation(txn):
            return txn.execute(sql, params).rowcount

        return self.run_interaction(desc, operation)

    def close(self) -> None:
        """Close every connection; the object is unusable afterwards."""
        if self._batches is not None:
            self._batches.close()
        if self._pool is not None:
            self._pool.close()
            self._pool = None


class SyncDatabase(Database):
    """
    L{Database} over one blocking connection: each interaction runs before
    C{run_interaction} returns, and the Deferred it returns has already fired.
    For command-line tools, which have no reactor running.
    """

    def __init__(self, engine: BaseEngine):
        super().__init__(engine, None)
        self._conn = engine.connect()

    def run_interaction(self, desc, fn, *args, **kw):
        conn = self._conn
        if conn is None:
            return defer.fail(RuntimeError("database is closed"))
        try:
            result = _interact_committed(conn, self.engine, desc, fn, args, kw)
        except BaseException:
            return defer.fail()
        return defer.succeed(result)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@defer.inlineCallbacks
def repeat_interaction(db, desc: str, fn: Callable, size: int, *args, most: int | None = None):
    """
    Run C{fn(txn, *args, size)} (which handles at most C{size} rows and
    returns how many it did) in transactions of its own until one does
    fewer than C{size}, or C{most} have run: a large delete never holds
    the writer for long.

    @return: Deferred firing with the sum of C{fn}'s results.
    @raise ValueError: C{size} < 1 (in the Deferred).
    """
    if size < 1:
        raise ValueError(f"{desc}: batch size must be >= 1, not {size}")
    total = done = 0
    while most is None or done < most:
        n = yield db.run_interaction(desc, fn, *args, size)
        total += n
        done += 1
        if n < size:
            break
    return total


def open_database(reactor, url: str) -> Database:
    """
    Open a pooled database for a running service.

    @param reactor: the reactor whose thread machinery the pool uses.
    @param url: a database URL (see L{gwsms.store.engines}).
    @return: a L{Database}; connections are opened lazily, so a wrong host or
        password shows up as the failure of the first interaction.
    @raise ValueError: the URL is malformed.
    """
    engine = create_engine(url)
    engine.prepare()
    args, kw = engine.connect_args()
    kw.update(engine.pool_args())
    pool = adbapi.ConnectionPool(
        engine.dbapi.__name__,
        *args,
        cp_reactor=reactor,
        cp_openfun=engine.on_connect,
        cp_noisy=False,
        **kw,
    )
    return Database(engine, pool, reactor)


def open_database_sync(url: str) -> SyncDatabase:
    """
    Open a database for blocking use (command-line tools).

    @raise ValueError: the URL is malformed.
    @raise Exception: the DB-API module's error when it cannot connect.
    """
    engine = create_engine(url)
    engine.prepare()
    return SyncDatabase(engine)
