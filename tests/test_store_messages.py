"""
Tests for L{gwsms.store.messages} and L{gwsms.store.batch} (group commit).
"""

from __future__ import annotations

from twisted.internet import defer, task
from twisted.trial import unittest

from gwsms.store.batch import BatchWriter
from gwsms.store.messages import MessageStore, dedup_key
from tests.mysql_helpers import backend_tests


class FakeDb:
    """run_interaction recorded; the test decides when each commits."""

    def __init__(self, fail_batches=0):
        self.calls = []
        self.fail_batches = fail_batches

    def run_interaction(self, desc, fn, *args):
        d = defer.Deferred()
        self.calls.append((desc, fn, args, d))
        return d

    def commit(self, index=0):
        desc, fn, args, d = self.calls.pop(index)
        try:
            result = fn(object(), *args)
        except Exception:
            d.errback()
        else:
            d.callback(result)


class BatchWriterTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.db = FakeDb()
        self.writer = BatchWriter(self.db, self.clock, interval=0.001, batch_size=100)

    def test_concurrent_writes_share_one_transaction(self):
        fired = []
        ds = [self.writer.write(lambda txn, n: n * 2, n) for n in range(50)]
        for d in ds:
            d.addCallback(fired.append)
        self.assertEqual(self.db.calls, [])
        self.clock.advance(0.001)
        self.assertEqual(len(self.db.calls), 1)
        self.assertEqual(fired, [])  # nothing acknowledged before the commit
        self.db.commit()
        self.assertEqual(fired, [n * 2 for n in range(50)])
        self.assertEqual(self.writer.batches, 1)

    def test_next_batch_collects_while_one_commits(self):
        first = self.writer.write(lambda txn: "a")
        self.clock.advance(0.001)
        later = [self.writer.write(lambda txn, n: n, n) for n in range(5)]
        self.clock.advance(1)
        self.assertEqual(len(self.db.calls), 1)  # still the first batch only
        self.db.commit()
        self.assertEqual(self.successResultOf(first), "a")
        self.assertEqual(len(self.db.calls), 1)  # the five, at once
        self.assertNoResult(later[0])
        self.db.commit()
        self.assertEqual([self.successResultOf(d) for d in later], list(range(5)))
        self.assertEqual(self.writer.batches, 2)

    def test_full_batch_goes_at_once(self):
        self.writer.batch_size = 3
        for n in range(3):
            self.writer.write(lambda txn: None)
        self.assertEqual(len(self.db.calls), 1)

    def test_one_bad_write_fails_alone(self):
        def bad(txn):
            raise ValueError("bad write")

        good = self.writer.write(lambda txn: 1)
        failing = self.writer.write(bad)
        self.clock.advance(0.001)
        self.db.commit()  # the batch fails: retried one by one
        self.assertEqual(len(self.db.calls), 2)
        self.db.commit()
        self.db.commit()
        self.assertEqual(self.successResultOf(good), 1)
        self.failureResultOf(failing, ValueError)

    def test_write_then_calls_back_after_commit(self):
        outcomes = []
        self.writer.write_then(lambda ok, v: outcomes.append((ok, v)), lambda txn, n: n + 1, 41)
        shared = self.writer.write(lambda txn: "d")
        self.clock.advance(0.001)
        self.assertEqual(len(self.db.calls), 1)  # one transaction for both kinds
        self.assertEqual(outcomes, [])
        self.db.commit()
        self.assertEqual(outcomes, [(True, 42)])
        self.assertEqual(self.successResultOf(shared), "d")

    def test_write_then_failure_and_raising_callback(self):
        def bad(txn):
            raise ValueError("bad write")

        outcomes = []

        def done(ok, value):
            outcomes.append((ok, value))
            raise RuntimeError("callback defect")

        self.writer.write_then(done, bad)
        good = self.writer.write(lambda txn: 1)
        self.clock.advance(0.001)
        self.db.commit()  # batch fails: one by one
        self.db.commit()
        self.db.commit()
        self.assertEqual(len(outcomes), 1)
        self.assertFalse(outcomes[0][0])
        self.assertTrue(outcomes[0][1].check(ValueError))
        self.assertEqual(self.successResultOf(good), 1)  # a raising callback harms nobody
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_write_batch_sealed_when_handed_over(self):
        from gwsms.store.batch import Batch

        self.assertFalse(self.writer.fills_in_reactor)  # FakeDb: another thread
        outcomes = []
        batch = Batch([1, 2])
        self.writer.write_batch(batch, lambda ok, v: outcomes.append(v),
                                lambda txn, items, extra: sum(items) + extra, 10)
        batch.append(3)
        self.assertFalse(batch.sealed)  # still filling until the writer hands it over
        self.clock.advance(0.001)
        self.assertTrue(batch.sealed)
        self.db.commit()
        self.assertEqual(outcomes, [16])

    def test_write_batch_fills_until_it_runs_in_the_reactor_thread(self):
        from gwsms.store.batch import Batch

        self.writer.fills_in_reactor = True
        batch = Batch()
        outcomes = []
        self.writer.write_batch(batch, lambda ok, v: outcomes.append(v),
                                lambda txn, items: list(items))
        self.clock.advance(0.001)
        batch.append("late")  # handed over, not run yet: still joins
        self.assertFalse(batch.sealed)
        self.db.commit()
        self.assertTrue(batch.sealed)
        self.assertEqual(outcomes, [["late"]])

    def test_drain(self):
        d = self.writer.write(lambda txn: 1)
        drained = self.writer.drain()
        self.assertNoResult(drained)
        self.db.commit()
        self.successResultOf(d)
        self.successResultOf(drained)
        self.successResultOf(self.writer.drain())


def _record(**kw):
    record = dict(direction="mt", source_addr="4930", dest_addr="4915", body="hi",
                  parts_total=2, expires_at=1000.0)
    record.update(kw)
    return record


class MessageStoreTestsMixin:
    def setUp(self):
        d = defer.maybeDeferred(super().setUp)

        def ready(_):
            from twisted.internet import reactor

            self.writer = BatchWriter(self.db, reactor)
            self.store = MessageStore(self.db, self.writer)

        return d.addCallback(ready)

    @defer.inlineCallbacks
    def test_add_get_parts_events(self):
        mid, dup = yield self.store.add(_record(), 10.0)
        self.assertIsNone(dup)
        row = yield self.store.get(mid)
        self.assertEqual((row["state"], row["body"], row["parts_total"]), ("queued", "hi", 2))
        self.assertEqual([p["seq"] for p in row["parts"]], [1, 2])
        self.assertEqual(row["events"], [])  # no history on the hot path
        other, _ = yield self.store.add(_record(direction="mo"), 11.0, event="received",
                                        with_parts=False)
        row = yield self.store.get(other)
        self.assertEqual(row["parts"], [])
        self.assertEqual([e["event"] for e in row["events"]], ["received"])

    @defer.inlineCallbacks
    def test_concurrent_adds_one_transaction(self):
        before = self.writer.batches
        results = yield defer.gatherResults(
            [self.store.add(_record(body=f"m{n}"), 10.0, key=dedup_key("c", n), window=60)
             for n in range(100)])
        self.assertEqual(self.writer.batches, before + 1)
        self.assertEqual(len({mid for mid, _dup in results}), 100)
        rows = yield self.store.list(limit=200)
        self.assertEqual(len(rows), 100)

    @defer.inlineCallbacks
    def test_dedup_within_window(self):
        key = dedup_key("call", 1, "tag")
        first, _ = yield self.store.add(_record(), 10.0, key=key, window=60)
        again, dup = yield self.store.add(_record(), 20.0, key=key, window=60)
        self.assertEqual(again, first)
        self.assertEqual(dup["id"], first)
        later, dup = yield self.store.add(_record(), 100.0, key=key, window=60)
        self.assertNotEqual(later, first)
        self.assertIsNone(dup)

    @defer.inlineCallbacks
    def test_part_submitted_and_receipts(self):
        mid, _ = yield self.store.add(_record(), 10.0)
        done = yield self.store.part_submitted(mid, 1, "smsc1", "0A1B", 11.0)
        self.assertTrue(done)
        row = yield self.store.get(mid)
        self.assertEqual((row["state"], row["parts_done"]), ("queued", 1))
        again = yield self.store.part_submitted(mid, 1, "smsc1", "0A1B", 11.0)
        self.assertFalse(again)  # never recorded twice
        done = yield self.store.part_submitted(mid, 2, "smsc1", "0A1C", 11.0)
        self.assertTrue(done)
        row = yield self.store.get(mid)
        self.assertEqual((row["state"], row["smsc"], row["parts_done"]), ("submitted", "smsc1", 2))
        # decimal id in the receipt for the hex id of the submit_sm_resp
        result = yield self.store.receipt("smsc1", str(0x0A1B), "DELIVRD", True, None, 12.0)
        self.assertEqual((result["seq"], result["done"]), (1, None))
        result = yield self.store.receipt("smsc1", "0a1c", "DELIVRD", True, None, 13.0)
        self.assertEqual(result["done"], "delivered")
        self.assertEqual(result["message"]["state"], "delivered")
        unknown = yield self.store.receipt("smsc1", "ffff", "DELIVRD", True, None, 13.0)
        self.assertIsNone(unknown)
        other_smsc = yield self.store.receipt("smsc2", "0a1c", "DELIVRD", True, None, 13.0)
        self.assertIsNone(other_smsc)

    @defer.inlineCallbacks
    def test_parts_of(self):
        a, _ = yield self.store.add(_record(parts_total=2), 10.0)
        b, _ = yield self.store.add(_record(parts_total=1), 10.0)
        yield self.store.part_submitted(a, 2, "s", "x2", 11.0, index=False)
        parts = yield self.store.parts_of([a, b, 999])
        self.assertEqual(parts, {a: [(1, "pending", ""), (2, "submitted", "x2")],
                                 b: [(1, "pending", "")], 999: []})
        unknown = yield self.store.receipt("s", "x2", "DELIVRD", True, None, 12.0)
        self.assertIsNone(unknown)  # not indexed: no receipt was asked for

    @defer.inlineCallbacks
    def test_undeliverable_part(self):
        mid, _ = yield self.store.add(_record(parts_total=1), 10.0)
        yield self.store.part_submitted(mid, 1, "s", "77", 11.0)
        result = yield self.store.receipt("s", "77", "UNDELIV", True, "001", 12.0)
        self.assertEqual(result["done"], "undeliverable")

    @defer.inlineCallbacks
    def test_update_due_list(self):
        a, _ = yield self.store.add(_record(next_attempt_at=5.0), 1.0)
        b, _ = yield self.store.add(_record(next_attempt_at=50.0), 1.0)
        c, _ = yield self.store.add(_record(direction="mo"), 1.0)
        due = yield self.store.due("mt", 10.0)
        self.assertEqual([r["id"] for r in due], [a])
        changed = yield self.store.update(a, 11.0, "failed", "ESME_RINVDSTADR", state="failed",
                                          only_if_state="queued")
        self.assertEqual(changed, 1)
        changed = yield self.store.update(a, 11.0, state="expired", only_if_state="queued")
        self.assertEqual(changed, 0)
        failed = yield self.store.list(state="failed")
        self.assertEqual([r["id"] for r in failed], [a])
        mo = yield self.store.list(direction="mo")
        self.assertEqual([r["id"] for r in mo], [c])
        every = yield self.store.list(limit=2)
        self.assertEqual([r["id"] for r in every], [c, b])
        row = yield self.store.get(a)
        self.assertEqual(row["events"][-1]["detail"], "ESME_RINVDSTADR")

    @defer.inlineCallbacks
    def test_fragments(self):
        stored = yield self.store.add_fragment("k1", 2, 3, 0, b"\x00\xffabc", 5.0)
        self.assertTrue(stored)
        stored = yield self.store.add_fragment("k1", 2, 3, 0, b"\x00\xffabc", 6.0)
        self.assertFalse(stored)
        yield self.store.add_fragment("k1", 1, 3, 0, b"xyz", 6.0)
        rows = yield self.store.fragments()
        self.assertEqual(sorted((r[1], r[4]) for r in rows), [(1, b"xyz"), (2, b"\x00\xffabc")])
        # the message replaces its fragments in the same transaction
        yield self.store.add(_record(direction="mo"), 7.0, fragments_key="k1")
        rows = yield self.store.fragments()
        self.assertEqual(rows, [])


backend_tests(globals(), MessageStoreTestsMixin)
