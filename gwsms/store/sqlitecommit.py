# -*- test-case-name: tests.test_perf_store -*-
"""
SQLite group commit with one thread hop per batch (L{SqliteBatches}).

A batch of the group-commit writer (L{gwsms.store.batch.BatchWriter})
runs its statements in the reactor thread on a connection of its own
(C{BEGIN IMMEDIATE} and the statements), then goes once to a commit thread
of its own, which runs the batch's deferred statements
(L{gwsms.store.database.Transaction.later}: the big multi-row inserts and
updates) and C{COMMIT} (the fsync), and comes back with one
C{callFromThread}.

Why not the pool thread, as before: while the reactor thread is busy, a
thread that wants the GIL back after a SQLite call waits up to a switch
interval for it.  The pool's way (C{BEGIN} in the pool thread, the
statements in the reactor thread, the rest back in the pool thread, then
the result through the thread pool's machinery) took many such waits per
batch.  Measured with C{bench/profile_mo.py --rate 8500}, run in turns with
the code before: 7,040 deliver_sm/s with a deliver_sm -> resp p99 of
1.1-1.3 s before, 7,100-7,900/s and 0.23-0.63 s after (the simulator's
window of 100 is the limit, so the commit's turnaround is the rate); the
SIP -> SMPP direction costs the same CPU per message either way.

The two connections of one process take turns through a L{WriteTurn}:
an interaction of the pool (L{gwsms.store.database.Database.run_interaction})
waits for it in the pool thread; a batch never waits in the reactor thread,
it tries again L{BUSY_RETRY} seconds later, and does not take the turn
while the pool thread waits for it.  Another process (a C{gwsms} command,
another worker) holding SQLite's write lock is met the same way: the batch
connection's C{busy_timeout} is 0 and C{BEGIN} is tried again, for up to
the database's C{BATCH_HANDOFF_TIMEOUT}.  Batches run one at a time, in the
order given.
"""

from __future__ import annotations

import collections
import queue
import sqlite3
import threading

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

#: seconds between two tries of C{BEGIN IMMEDIATE} while the write lock is held elsewhere
BUSY_RETRY = 0.002
#: prepared statements the batch connection keeps.  The lanes' multi-row
#: statements and IN lists come in a few sizes (powers of two,
#: L{gwsms.store.lane.statement_rows}): about ten per statement kind and a
#: dozen kinds, so this holds them all and stops growing once each was
#: used.  (One statement per batch size, as before, thrashed any cache:
#: 128 held tens of megabytes, growing for minutes, 32 prepared most
#: statements anew.)
STATEMENT_CACHE = 128


class WriteTurn:
    """
    Whose turn it is to write: the pool's connection or the batch
    connection (one process, one SQLite file).  The pool thread waits for
    it (L{take}); the reactor thread only tries (L{try_take}) and leaves it
    to a waiting pool thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: pool threads waiting in L{take}
        self.waiting = 0

    def take(self) -> None:
        """Wait for the turn (the pool thread)."""
        self.waiting += 1
        try:
            self._lock.acquire()
        finally:
            self.waiting -= 1

    def try_take(self) -> bool:
        """@return: whether the turn was free and nobody waited for it (now taken)."""
        if self.waiting:
            return False
        return self._lock.acquire(False)

    def give(self) -> None:
        """End the turn (any thread)."""
        self._lock.release()


def _commit_loop(jobs: queue.SimpleQueue, reactor, turn: WriteTurn) -> None:
    """
    The commit thread: run each job's deferred statements and C{COMMIT},
    end the write turn (here, so that the pool thread never waits for the
    reactor thread, which may be closing the database), report to the
    reactor thread.
    """
    while True:
        job = jobs.get()
        if job is None:
            return
        conn, cursor, later, result, done = job
        try:
            for sql, params in later:
                cursor.execute(sql, params)
            conn.commit()
            ok, value = True, result
        except BaseException:
            value = Failure()
            ok = False
            try:
                conn.rollback()
            except Exception:
                pass
        finally:
            try:
                cursor.close()
            except Exception:
                pass
            turn.give()
        reactor.callFromThread(done, ok, value)


class SqliteBatches:
    """
    Runs L{gwsms.store.database.Database.run_batch} on SQLite files: the
    statements in the reactor thread, C{COMMIT} in a thread of its own.
    """

    _log = Logger()

    def __init__(self, engine, reactor, transaction, timeout: float, turn: WriteTurn,
                 clock=None) -> None:
        """
        @param engine: the L{gwsms.store.engines.SqliteEngine} (a file).
        @param reactor: the reactor whose thread runs the statements.
        @param transaction: the C{Transaction} class (cursor, engine, later).
        @param timeout: seconds a batch may wait for the write lock.
        @param turn: the L{WriteTurn} shared with the pool's interactions.
        @param clock: C{IReactorTime} of the retries (default: C{reactor}).
        """
        self.clock = reactor if clock is None else clock
        self.turn = turn
        self.engine = engine
        self.reactor = reactor
        self._transaction = transaction
        self.timeout = timeout
        self._conn = None
        self._jobs: queue.SimpleQueue | None = None
        self._thread: threading.Thread | None = None
        self._waiting: collections.deque = collections.deque()
        self._running = False  # a batch holds the connection (statements or commit)
        self._retry = None
        self._closed = False

    def run(self, fn, args) -> defer.Deferred:
        """@return: a Deferred firing with C{fn}'s result after the commit."""
        d = defer.Deferred()
        if self._closed:
            d.errback(RuntimeError("database is closed"))
            return d
        self._waiting.append((fn, args, d, self.clock.seconds()))
        if not self._running and self._retry is None:
            self._next()
        return d

    def _connection(self):
        if self._conn is None:
            conn = self.engine.connect(cached_statements=STATEMENT_CACHE)
            # never block the reactor thread on the lock: BEGIN is retried
            conn.execute("PRAGMA busy_timeout = 0")
            self._conn = conn
            self._jobs = queue.SimpleQueue()
            self._thread = threading.Thread(
                target=_commit_loop, args=(self._jobs, self.reactor, self.turn),
                name="gwsms-sqlite-commit", daemon=True)
            self._thread.start()
        return self._conn

    def _again(self) -> None:
        self._retry = None
        self._next()

    def _next(self) -> None:
        waiting = self._waiting
        while waiting and not self._running and not self._closed:
            fn, args, d, queued = waiting[0]
            if not self.turn.try_take():
                self._retry = self.clock.callLater(BUSY_RETRY, self._again)
                return
            try:
                conn = self._connection()
                cursor = conn.cursor()
            except Exception:
                self.turn.give()
                waiting.popleft()
                d.errback()
                continue
            try:
                self.engine.begin(cursor)
            except Exception as e:
                cursor.close()
                self.turn.give()
                if isinstance(e, sqlite3.OperationalError) and _locked(e) and \
                        self.clock.seconds() - queued < self.timeout:
                    self._retry = self.clock.callLater(BUSY_RETRY, self._again)
                    return
                waiting.popleft()
                d.errback()
                continue
            waiting.popleft()
            later: list = []
            try:
                result = fn(self._transaction(cursor, self.engine, later), *args)
            except BaseException:
                failure = Failure()
                try:
                    conn.rollback()
                except Exception:
                    self._log.failure("rollback after a failed write batch")
                cursor.close()
                self.turn.give()
                d.errback(failure)
                continue
            self._running = True
            self._jobs.put((conn, cursor, later, result, lambda ok, value, d=d:
                            self._committed(d, ok, value)))

    def _committed(self, d: defer.Deferred, ok: bool, value) -> None:
        self._running = False  # the commit thread has ended the turn
        if ok:
            d.callback(value)
        else:
            d.errback(value)
        if not self._running and self._retry is None:
            self._next()

    def close(self) -> None:
        """Let the commit in progress finish, then close the connection."""
        self._closed = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        waiting, self._waiting = self._waiting, collections.deque()
        for _fn, _args, d, _queued in waiting:
            d.errback(RuntimeError("database is closed"))


def _locked(error: sqlite3.OperationalError) -> bool:
    """Whether C{error} is SQLITE_BUSY / SQLITE_LOCKED (another holds the lock)."""
    text = str(error).lower()
    return "locked" in text or "busy" in text
