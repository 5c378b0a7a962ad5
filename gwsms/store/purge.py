# -*- test-case-name: tests.test_store_purge -*-
"""
Retention: messages in a final state (L{gwsms.store.messages.FINAL_STATES})
created more than C{[gateway] retention} seconds ago are deleted together
with their parts, history events, receipt index rows and duplicate keys.

Deletes run in small batches, each its own transaction, so a large backlog
never holds the database (or SQLite's single writer) for long.  Queued and
submitted messages are never deleted, however old.
"""

from __future__ import annotations

from twisted.internet import defer, task
from twisted.logger import Logger

from gwsms.store.database import repeat_interaction
from gwsms.store.messages import FINAL_STATES

#: messages deleted per transaction
BATCH = 500
#: seconds between two purge runs of a running gateway
INTERVAL = 3600.0

_STATES = tuple(sorted(FINAL_STATES))
_SELECT = (
    "SELECT id, created_at FROM messages WHERE created_at < ? AND state IN ({})"
    " ORDER BY created_at, id LIMIT ?".format(", ".join("?" for _ in _STATES))
)
#: (table, column holding the message id) deleted with each message
_DEPENDENT = (
    ("message_parts", "message_id"),
    ("message_events", "message_id"),
    ("receipt_ids", "message_id"),
)
#: a message's duplicate keys: message_dedup has no index on message_id,
#: but a key is never younger than its message (same time, or the time
#: its write batch was opened), so the created_at index bounds the search
#: (without it, every batch scanned the whole table: 0.25 s at 2.5 million
#: keys).  With a retention longer than C{dedup_window}, the keys are
#: gone already (L{gwsms.store.messages.MessageStore.purge_dedup}); a key
#: left behind is harmless: a key whose message is gone counts as new.
_DEDUP_DELETE = "DELETE FROM message_dedup WHERE created_at <= ? AND message_id IN ({})"


def purge_batch(txn, before: float, limit: int = BATCH) -> int:
    """
    Delete up to C{limit} final-state messages created before C{before}
    (oldest first) and their dependent rows, in the caller's transaction.

    @return: the number of messages deleted.
    """
    rows = txn.execute(_SELECT, (before, *_STATES, limit)).fetchall()
    if not rows:
        return 0
    ids = [row[0] for row in rows]
    marks = ", ".join("?" for _ in ids)
    for table, column in _DEPENDENT:
        txn.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", ids)
    txn.execute(_DEDUP_DELETE.format(marks), [rows[-1][1], *ids])
    txn.execute(f"DELETE FROM messages WHERE id IN ({marks})", ids)
    return len(ids)


def purge(db, before: float, batch: int = BATCH):
    """
    Delete every final-state message created before C{before}, batch by
    batch.

    @param db: a L{gwsms.store.database.Database} (or C{SyncDatabase}).
    @param before: a UNIX time.
    @param batch: messages per transaction.
    @return: Deferred firing with the number of messages deleted.
    """
    return repeat_interaction(db, "purge messages", purge_batch, batch, before)


class RetentionPurger:
    """
    Runs L{purge} every L{INTERVAL} seconds for a running gateway.

    @ivar purged: messages deleted since start (for tests and stats).
    """

    _log = Logger()

    def __init__(self, db, clock, retention: float, interval: float = INTERVAL,
                 batch: int = BATCH) -> None:
        """
        @param db: a L{gwsms.store.database.Database} (None: L{start}
            does nothing).
        @param clock: C{IReactorTime}.
        @param retention: seconds to keep final-state messages; 0 keeps
            them forever (L{start} does nothing).
        @param interval: seconds between runs.
        @param batch: messages per transaction.
        """
        self._db = db
        self._clock = clock
        self.retention = retention
        self.interval = interval
        self.batch = batch
        self.purged = 0
        self._loop: task.LoopingCall | None = None
        self._running: defer.Deferred | None = None

    def start(self) -> None:
        """Purge now and then every C{interval} seconds (unless retention is 0)."""
        if self.retention <= 0 or self._db is None or self._loop is not None:
            return
        self._loop = task.LoopingCall(self.run_once)
        self._loop.clock = self._clock
        done = self._loop.start(self.interval, now=True)
        done.addErrback(lambda f: self._log.failure("retention purge loop stopped", f))

    def stop(self) -> defer.Deferred:
        """
        Stop the loop.

        @return: Deferred firing once a purge in progress is over.
        """
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        running = self._running
        if running is None:
            return defer.succeed(None)
        d = defer.Deferred()

        def relay(result):
            d.callback(None)
            return result

        running.addBoth(relay)
        return d

    def run_once(self) -> defer.Deferred:
        """
        One purge run (never fails: errors are logged).

        @return: Deferred firing with the number of messages deleted.
        """
        if self._running is not None:
            return self._running
        before = self._clock.seconds() - self.retention
        d = purge(self._db, before, self.batch)

        def done(n):
            self.purged += n
            if n:
                self._log.info("retention: deleted {n} messages older than {retention:g} s",
                               n=n, retention=self.retention)
            return n

        def failed(failure):
            self._log.failure("retention purge failed", failure)
            return 0

        def finished(result):
            self._running = None
            return result

        d.addCallbacks(done, failed)
        d.addBoth(finished)
        if not d.called:
            self._running = d
        return d
