# -*- test-case-name: tests.test_store_messages -*-
"""
Group commit: many small writes, one transaction.

The hot path (a MESSAGE to store, a deliver_sm to acknowledge, a part's
submit_sm_resp to record) hands its write to a L{BatchWriter} as a function
C{fn(txn, *args)}.  The writer collects them and runs everything collected
so far in B{one} C{Database.run_interaction}; each caller's Deferred fires
with its function's result only after that transaction has committed, so an
acknowledgement sent from the callback is always backed by the disk.  While
one batch commits the next one collects, so at high rates a batch holds
many writes and the commit cost per message falls.

A function that raises makes the database roll the whole batch back; the
writer then runs every function of that batch again in a transaction of
its own, so one bad write fails only its own caller.  Functions must
therefore be safe to run twice after a rollback (they are: nothing of a
rolled-back transaction remains).
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger


def _run_batch(txn, ops):
    return [fn(txn, *args) for fn, args, _d in ops]


def _run_one(txn, fn, args):
    return fn(txn, *args)


def _run_sealed(txn, batch, fn, args):
    batch.sealed = True  # from here on the caller opens a new one
    return fn(txn, batch, *args)


class Batch(list):
    """
    The items of one bulk write (L{BatchWriter.write_batch}).  Its caller
    appends while C{sealed} is false.  The writer seals it when the write
    runs, if that is in the reactor thread (SQLite), else when it hands
    the transaction to the database's thread; either way every item
    appended before is written.  Subclasses may add slots of their own.
    """

    __slots__ = ("sealed",)

    def __init__(self, items=()):
        super().__init__(items)
        self.sealed = False


def _fire(sink, ok: bool, value) -> None:
    """Give a write's outcome to its Deferred or its C{done} callable."""
    if isinstance(sink, defer.Deferred):
        if ok:
            sink.callback(value)
        else:
            sink.errback(value)
        return
    try:
        sink(ok, value)
    except Exception:
        BatchWriter._log.failure("batch write callback failed")


class BatchWriter:
    """
    Collects writes and commits them in batches (one writer, one
    transaction per batch).

    @ivar batches: number of batch transactions run (for tests and stats).
    @ivar writes: number of writes committed.
    """

    _log = Logger()

    def __init__(self, db, clock, interval: float = 0.0, batch_size: int = 500) -> None:
        """
        @param db: a L{gwsms.store.database.Database}.
        @param clock: C{IReactorTime}; a batch is started C{interval}
            seconds after its first write (0: on the next reactor turn), or
            at once when C{batch_size} writes are waiting.
        @param interval: seconds to wait for more writes before committing.
        @param batch_size: most writes in one transaction.
        """
        self._db = db
        # Database.run_batch runs the statements in the reactor thread
        # (test doubles may only have run_interaction)
        self._run = getattr(db, "run_batch", None) or db.run_interaction
        self._clock = clock
        self.interval = interval
        self.batch_size = max(1, batch_size)
        self._pending: list = []
        self._timer = None
        self._committing = False
        self._idle: list[defer.Deferred] = []
        #: whether batch functions run in the reactor thread (then a
        #: L{Batch} fills until its write runs)
        self.fills_in_reactor = bool(getattr(db, "batches_in_reactor", False))
        self.batches = 0
        self.writes = 0

    def __len__(self) -> int:
        """@return: writes waiting (not yet in a running transaction)."""
        return len(self._pending)

    def write(self, fn, *args) -> defer.Deferred:
        """
        Queue C{fn(txn, *args)} for the next batch.

        @return: a Deferred firing with C{fn}'s result after the commit of
            the transaction that ran it, or failing with its exception.
        """
        d = defer.Deferred()
        self._pending.append((fn, args, d))
        if self._committing:
            return d
        if len(self._pending) >= self.batch_size:
            self._flush()
        elif self._timer is None:
            self._timer = self._clock.callLater(self.interval, self._flush)
        return d

    def write_then(self, done, fn, *args) -> None:
        """
        Like L{write} without a Deferred (the hot-path lanes queue
        thousands of writes a second): C{done(True, result)} is called
        after the commit of the transaction that ran C{fn}, or
        C{done(False, failure)} when it failed.  C{done} must not raise.
        """
        self._pending.append((fn, args, done))
        if self._committing:
            return
        if len(self._pending) >= self.batch_size:
            self._flush()
        elif self._timer is None:
            self._timer = self._clock.callLater(self.interval, self._flush)

    def write_batch(self, batch: Batch, done, fn, *args) -> None:
        """
        L{write_then} of C{fn(txn, batch, *args)} for a L{Batch} its caller
        keeps filling until it is sealed: one statement per table for many
        items (the hot-path lanes).
        """
        self.write_then(done, _run_sealed, batch, fn, args)

    def drain(self) -> defer.Deferred:
        """
        @return: a Deferred firing once every write queued so far has been
            committed (or failed).
        """
        if not self._pending and not self._committing:
            return defer.succeed(None)
        d = defer.Deferred()
        self._idle.append(d)
        if not self._committing:
            self._flush()
        return d

    def _flush(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._committing or not self._pending:
            return
        ops = self._pending[: self.batch_size]
        del self._pending[: self.batch_size]
        if not self.fills_in_reactor:
            for fn, args, _sink in ops:
                if fn is _run_sealed:
                    args[0].sealed = True  # its statements may run in another thread
        self._committing = True
        self.batches += 1
        d = self._run("write batch", _run_batch, ops)
        d.addCallbacks(self._committed, self._batch_failed, (ops,), None, (ops,))
        d.addErrback(lambda f: self._log.failure("batch writer bookkeeping failed", f))

    def _committed(self, results, ops) -> None:
        self.writes += len(ops)
        for (_fn, _args, d), result in zip(ops, results):
            _fire(d, True, result)
        self._done()

    def _batch_failed(self, failure, ops) -> defer.Deferred:
        # Some write raised (or the database is away): retry each alone so
        # that only the guilty one fails.
        self._log.debug("write batch of {n} failed ({error}); retrying one by one",
                        n=len(ops), error=failure.getErrorMessage())
        one_by_one = [self._db.run_interaction("write", _run_one, fn, args)
                      for fn, args, _d in ops]
        done = defer.DeferredList(one_by_one, consumeErrors=True)

        def fire(results):
            for (_fn, _args, d), (ok, value) in zip(ops, results):
                if ok:
                    self.writes += 1
                _fire(d, ok, value)
            self._done()

        return done.addCallback(fire)

    def _done(self) -> None:
        self._committing = False
        if self._pending:
            # these collected while the last batch committed: go now
            self._flush()
        elif self._idle:
            idle, self._idle = self._idle, []
            for d in idle:
                d.callback(None)

    def stop(self) -> defer.Deferred:
        """Commit what is waiting; @return: L{drain}."""
        return self.drain()
