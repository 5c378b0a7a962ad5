"""
Tests for L{gwsms.store.purge} (retention) on every back-end, the
L{RetentionPurger} loop on a Clock, the gateway running it, and
C{gwsms message purge}.
"""

from __future__ import annotations

from twisted.internet import defer, task
from twisted.logger import capturedLogs
from twisted.trial import unittest

from gwsms.store import migrate
from gwsms.store.batch import BatchWriter
from gwsms.store.database import open_database_sync
from gwsms.store.messages import MessageStore, dedup_key
from gwsms.store.purge import RetentionPurger, purge, purge_batch
from tests.mysql_helpers import backend_tests
from tests.test_cli_smsc import run_cli, write_config

TABLES = ("messages", "message_parts", "message_events", "receipt_ids", "message_dedup")


class _Now:
    """A clock whose callLater runs at once (a BatchWriter over a sync db)."""

    def callLater(self, delay, fn, *args):
        fn(*args)


@defer.inlineCallbacks
def fill(store, created: float, state: str, n: int = 1, tag: str = ""):
    """
    C{n} two-part MT messages created at C{created}, with a submitted part
    (receipt index), an event, a dedup key, then moved to C{state}.

    @return: Deferred firing with their ids.
    """
    ids = []
    for i in range(n):
        key = dedup_key("purge", tag, state, created, i)
        mid, _ = yield store.add({"direction": "mt", "body": "x", "parts_total": 2},
                                 created, key=key, window=1.0)
        yield store.part_submitted(mid, 1, "smsc1", f"id-{tag}-{state}-{created}-{i}", created)
        yield store.update(mid, created + 1, "moved", state, state=state)
        ids.append(mid)
    return ids


@defer.inlineCallbacks
def counts(db, message_ids):
    """@return: Deferred firing with {table: rows belonging to message_ids}."""
    out = {}
    marks = ", ".join("?" for _ in message_ids)
    for table in TABLES:
        column = "id" if table == "messages" else "message_id"
        rows = yield db.run_query(
            f"SELECT COUNT(*) FROM {table} WHERE {column} IN ({marks})", tuple(message_ids))
        out[table] = int(rows[0][0])
    return out


class PurgeTestsMixin:
    def setUp(self):
        d = defer.maybeDeferred(super().setUp)

        def ready(_):
            if self.sync:
                writer = BatchWriter(self.db, _Now())
            else:
                from twisted.internet import reactor

                writer = BatchWriter(self.db, reactor)
            self.store = MessageStore(self.db, writer)

        return d.addCallback(ready)

    @defer.inlineCallbacks
    def test_purge_final_old_with_dependents(self):
        old_final = []
        for state in ("delivered", "undeliverable", "failed", "expired", "rejected"):
            old_final += yield fill(self.store, 100.0, state)
        old_active = []
        for state in ("queued", "submitted"):
            old_active += yield fill(self.store, 100.0, state)
        young = yield fill(self.store, 5000.0, "delivered")
        before = yield counts(self.db, old_final)
        self.assertEqual(before, {"messages": 5, "message_parts": 10, "message_events": 5,
                                  "receipt_ids": before["receipt_ids"], "message_dedup": 5})
        self.assertGreater(before["receipt_ids"], 0)
        kept_before = yield counts(self.db, old_active + young)

        n = yield purge(self.db, 1000.0)
        self.assertEqual(n, 5)
        self.assertEqual((yield counts(self.db, old_final)), dict.fromkeys(TABLES, 0))
        self.assertEqual((yield counts(self.db, old_active + young)), kept_before)
        self.assertEqual((yield purge(self.db, 1000.0)), 0)

    @defer.inlineCallbacks
    def test_batches_until_done(self):
        ids = yield fill(self.store, 100.0, "failed", n=7)
        first = yield self.db.run_interaction("one batch", purge_batch, 1000.0, 3)
        self.assertEqual(first, 3)
        self.assertEqual((yield counts(self.db, ids))["messages"], 4)
        self.assertEqual((yield purge(self.db, 1000.0, batch=3)), 4)
        self.assertEqual((yield counts(self.db, ids))["messages"], 0)

    @defer.inlineCallbacks
    def test_bad_batch(self):
        yield self.assertFailure(purge(self.db, 1.0, batch=0), ValueError)

    @defer.inlineCallbacks
    def test_dedup_key_older_than_its_message(self):
        """
        The MO lane dates a key when its write batch opened, before the
        message: the retention purge deletes it with its message.
        """
        [gone] = yield fill(self.store, 100.0, "delivered")
        [kept] = yield fill(self.store, 100.0, "queued", tag="kept")
        for mid in (gone, kept):
            yield self._add_key(f"early-{mid}", mid, 99.5)
        self.assertEqual((yield counts(self.db, [gone]))["message_dedup"], 2)
        self.assertEqual((yield purge(self.db, 1000.0)), 1)
        self.assertEqual((yield counts(self.db, [gone]))["message_dedup"], 0)
        self.assertEqual((yield counts(self.db, [kept]))["message_dedup"], 2)

    def _add_key(self, key, message_id, created):
        return self.db.run_operation(
            "INSERT INTO message_dedup (dedup_key, message_id, created_at) VALUES (?, ?, ?)",
            (key, message_id, created))

    @defer.inlineCallbacks
    def _dedup_keys(self):
        rows = yield self.db.run_query(
            "SELECT dedup_key FROM message_dedup ORDER BY created_at, dedup_key")
        return [row[0] for row in rows]

    @defer.inlineCallbacks
    def test_purge_dedup_in_chunks_oldest_first(self):
        for i, created in enumerate((104.0, 100.0, 5000.0, 103.0, 101.0, 6000.0, 102.0)):
            yield self._add_key(f"k{created:.0f}", i + 1, created)
        transactions = []
        run_interaction = self.db.run_interaction

        def counted(desc, fn, *args, **kw):
            if desc == "purge dedup":
                transactions.append(args)
            return run_interaction(desc, fn, *args, **kw)

        self.db.run_interaction = counted
        self.assertEqual((yield self.store.purge_dedup(102.5, chunk=2)), 3)
        self.assertEqual((yield self._dedup_keys()), ["k103", "k104", "k5000", "k6000"])
        self.assertEqual((yield self.store.purge_dedup(1000.0, chunk=2)), 2)
        self.assertEqual((yield self._dedup_keys()), ["k5000", "k6000"])
        # 2 + 1 keys, then 2 + 0: one transaction per chunk
        self.assertEqual(transactions, [(102.5, 2)] * 2 + [(1000.0, 2)] * 2)
        self.assertEqual((yield self.store.purge_dedup(1000.0)), 0)

    @defer.inlineCallbacks
    def test_purge_dedup_at_most_max_chunks(self):
        for i in range(5):
            yield self._add_key(f"k{i}", i + 1, 100.0 + i)
        self.assertEqual((yield self.store.purge_dedup(1000.0, chunk=2, max_chunks=1)), 2)
        self.assertEqual((yield self._dedup_keys()), ["k2", "k3", "k4"])
        self.assertEqual((yield self.store.purge_dedup(1000.0, chunk=2, max_chunks=5)), 3)
        self.assertEqual((yield self._dedup_keys()), [])

    @defer.inlineCallbacks
    def test_purge_dedup_bad_chunk(self):
        yield self.assertFailure(self.store.purge_dedup(1.0, chunk=0), ValueError)


backend_tests(globals(), PurgeTestsMixin)


class QueryPlanTests(unittest.SynchronousTestCase):
    """The purges find what they delete through an index (SQLite's plan)."""

    def setUp(self):
        self.db = open_database_sync("sqlite:" + self.mktemp())
        self.addCleanup(self.db.close)
        self.successResultOf(migrate.upgrade(self.db))

    def plan(self, sql, params):
        rows = self.successResultOf(self.db.run_interaction(
            "plan", lambda txn: txn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()))
        self.assertTrue(rows)
        return " ".join(str(row[-1]) for row in rows)

    def test_dedup_keys_of_purged_messages(self):
        from gwsms.store.purge import _DEDUP_DELETE
        plan = self.plan(_DEDUP_DELETE.format("?, ?"), (1.0, 1, 2))
        self.assertIn("USING INDEX message_dedup_created", plan)
        self.assertNotIn("SCAN", plan)

    def test_expired_dedup_keys(self):
        sql = self.db.engine.delete_oldest_sql("message_dedup", "created_at")
        plan = self.plan(sql, (1.0, 10))
        self.assertIn("INDEX message_dedup_created (created_at<?)", plan)
        self.assertNotIn("SCAN", plan)


class RetentionPurgerTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.db = open_database_sync("sqlite::memory:")
        self.addCleanup(self.db.close)
        self.successResultOf(migrate.upgrade(self.db))
        self.store = MessageStore(self.db, BatchWriter(self.db, _Now()))
        self.clock = task.Clock()

    def test_runs_on_start_and_every_interval(self):
        first = self.successResultOf(fill(self.store, 0.0, "delivered", tag="a"))
        self.clock.advance(100)
        purger = RetentionPurger(self.db, self.clock, retention=50, interval=10)
        purger.start()
        self.assertEqual(self.successResultOf(counts(self.db, first))["messages"], 0)
        later = self.successResultOf(fill(self.store, 100.0, "failed", tag="b"))
        self.clock.advance(10)  # 110 - 50 = 60 < 100: kept
        self.assertEqual(self.successResultOf(counts(self.db, later))["messages"], 1)
        self.clock.advance(50)  # 160 - 50 = 110 > 100
        self.assertEqual(self.successResultOf(counts(self.db, later))["messages"], 0)
        self.assertEqual(purger.purged, 2)
        self.successResultOf(purger.stop())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_zero_retention_keeps_forever(self):
        ids = self.successResultOf(fill(self.store, 0.0, "delivered"))
        self.clock.advance(10**9)
        purger = RetentionPurger(self.db, self.clock, retention=0)
        purger.start()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.successResultOf(counts(self.db, ids))["messages"], 1)
        RetentionPurger(None, self.clock, retention=5).start()  # no database: nothing
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_failure_is_logged_and_loop_goes_on(self):
        class Broken:
            calls = 0

            def run_interaction(self, desc, fn, *args):
                Broken.calls += 1
                return defer.fail(RuntimeError("database gone"))

        purger = RetentionPurger(Broken(), self.clock, retention=5, interval=10)
        with capturedLogs() as events:
            purger.start()
            self.clock.advance(10)
        self.assertEqual(Broken.calls, 2)
        failures = [e for e in events if e.get("log_failure") is not None]
        self.assertEqual(len(failures), 2)
        self.assertIn("database gone", str(failures[0]["log_failure"].value))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.flushLoggedErrors(RuntimeError)
        purger.stop()

    def test_stop_waits_for_a_run_in_progress(self):
        class Slow:
            def __init__(self):
                self.pending = []

            def run_interaction(self, desc, fn, *args):
                d = defer.Deferred()
                self.pending.append(d)
                return d

        db = Slow()
        purger = RetentionPurger(db, self.clock, retention=5, interval=10)
        purger.start()
        self.assertEqual(len(db.pending), 1)
        self.assertIs(purger.run_once(), purger.run_once())  # no overlapping runs
        stopped = purger.stop()
        self.assertNoResult(stopped)
        db.pending[0].callback(0)
        self.successResultOf(stopped)


class GatewayRetentionTests(unittest.SynchronousTestCase):
    def test_gateway_purges_finished_messages(self):
        from tests.test_core_gateway import Harness, sip_message

        h = Harness(self, retention=3600.0)
        h.start()
        self.assertEqual(h.gateway.retention.retention, 3600.0)
        h.send(sip_message("done", call_id="a"))
        h.send(sip_message("waiting", call_id="b"))
        h.smpp.down = {"smsc1", "smsc2"}
        h.send(sip_message("pending", call_id="c"))
        h.flush(10)
        states = {r["body"]: r["state"] for r in h.rows()}
        self.assertEqual(states, {"done": "submitted", "waiting": "submitted",
                                  "pending": "queued"})
        [done] = [r for r in h.rows() if r["body"] == "done"]
        d = h.store.update(done["id"], h.clock.seconds(), state="delivered")
        h.flush()
        self.successResultOf(d)
        h.flush(3600)
        states = {r["body"]: r["state"] for r in h.rows()}
        # submitted (waits for its receipt) and queued messages stay
        self.assertEqual(states, {"waiting": "submitted", "pending": "queued"})
        self.assertEqual(h.gateway.retention.purged, 1)
        h.stop()
        self.assertIsNone(h.gateway.retention._loop)

    def test_only_worker_zero_purges(self):
        from gwsms.core.gateway import Gateway
        from gwsms.config import GatewayConfig, SipConfig

        for owner, runs in ((None, True), (0, True), (1, False), (3, False)):
            store = MessageStore(object(), None, owner=owner)
            gateway = Gateway(task.Clock(), GatewayConfig(), SipConfig(), store)
            self.assertEqual(gateway.retention._db is not None, runs, owner)


class MessagePurgeCliTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.base, self.config, self.url, _sock = write_config(self)
        self.db = open_database_sync(self.url)
        self.addCleanup(self.db.close)
        self.successResultOf(migrate.upgrade(self.db))
        self.store = MessageStore(self.db, BatchWriter(self.db, _Now()))

    def test_purge_default_retention_and_older_than(self):
        import time

        now = time.time()
        ancient = self.successResultOf(fill(self.store, now - 40 * 86400, "delivered", n=2))
        week = self.successResultOf(fill(self.store, now - 7 * 86400, "failed"))
        queued = self.successResultOf(fill(self.store, now - 40 * 86400, "queued"))
        code, out, err = run_cli(self.config, "message", "purge")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(out.strip(), "purged 2 messages finished and older than 2.592e+06 s")
        self.assertEqual(self.successResultOf(counts(self.db, ancient))["messages"], 0)
        self.assertEqual(self.successResultOf(counts(self.db, week + queued))["messages"], 2)
        code, out, err = run_cli(self.config, "message", "purge", "--older-than", "86400")
        self.assertEqual((code, out.strip()), (0, "purged 1 message finished and older than"
                                                   " 86400 s"))
        self.assertEqual(self.successResultOf(counts(self.db, queued))["messages"], 1)

    def test_errors(self):
        for bad, needle in (("-1", "seconds must be >= 0"), ("soon", "invalid number of seconds")):
            code, out, err = run_cli(self.config, "message", "purge", "--older-than", bad)
            self.assertEqual(code, 2)
            self.assertIn(needle, err)
            self.assertNotIn("Traceback", err)
        _base, config, _url, _sock = write_config(self, extra="[gateway]\nretention = 0\n")
        code, out, err = run_cli(config, "message", "purge")
        self.assertEqual(code, 2)
        self.assertEqual(len(err.strip().splitlines()), 1)
        self.assertIn("retention is 0 (keep forever): give --older-than SECONDS", err)
