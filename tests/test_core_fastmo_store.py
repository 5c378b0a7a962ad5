"""
Tests for the MO lane's store writes (L{gwsms.store.lane.mo_lane_insert},
L{gwsms.store.lane.mo_lane_delivered}) against L{_insert}'s rules, on
SQLite: its bulk path (ids from sqlite_sequence) and the one-by-one path
other engines take.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from gwsms.store import migrate
from gwsms.store import lane
from gwsms.store.batch import BatchWriter
from gwsms.store.database import open_database_sync
from gwsms.store.lane import MO_LANE_COLUMNS, mo_lane_delivered, mo_lane_insert
from gwsms.store.messages import MO, MessageStore, dedup_key

NOW = 1_000_000.0


def values(text, now=NOW):
    row = {"direction": MO, "state": "queued", "created_at": now, "updated_at": now,
           "source_addr": "4915112345678", "source_ton": 1, "source_npi": 1,
           "dest_addr": "4930123", "dest_ton": 0, "dest_npi": 1, "smsc": "smsc1",
           "body": text, "content_type": "text/plain", "data_coding": 0, "partial": 0,
           "next_attempt_at": now + 5, "expires_at": now + 86400, "owner": 0}
    return tuple(row[c] for c in MO_LANE_COLUMNS)


class _OtherEngine:
    """Reports another dialect, so mo_lane_insert takes the one-by-one path."""

    dialect = "mysql"

    def __init__(self, engine):
        self._engine = engine

    def __getattr__(self, name):
        return getattr(self._engine, name)


class LaneInsertTests(SynchronousTestCase):
    other_engine = False

    def setUp(self):
        self.db = open_database_sync("sqlite:" + self.mktemp() + ".sqlite3")
        self.addCleanup(self.db.close)
        self.successResultOf(migrate.upgrade(self.db))
        self.store = MessageStore(self.db, BatchWriter(self.db, None))

    def run_fn(self, fn, *args):
        def call(txn):
            if self.other_engine:
                txn.engine = _OtherEngine(txn.engine)
            return fn(txn, *args)
        return self.successResultOf(self.db.run_interaction("test", call))

    def insert(self, items, now=NOW, window=600.0):
        return self.run_fn(mo_lane_insert, items, now, window)

    def rows(self):
        return self.successResultOf(self.store.list(limit=100))

    def test_new_messages_and_duplicates(self):
        k1, k2 = dedup_key(MO, "a"), dedup_key(MO, "b")
        ids = self.insert([(k1, values("one")), (k2, values("two")), (k1, values("one"))])
        self.assertIsNone(ids[2])
        self.assertEqual(len(set(ids[:2])), 2)
        by_id = {r["id"]: r for r in self.rows()}
        self.assertEqual(sorted(by_id), sorted(ids[:2]))
        self.assertEqual((by_id[ids[0]]["body"], by_id[ids[1]]["body"]), ("one", "two"))
        row = by_id[ids[0]]
        self.assertEqual((row["state"], row["direction"], row["parts_total"], row["sip_to"],
                          row["attempts"], row["next_attempt_at"]),
                         ("queued", MO, 1, "", 0, NOW + 5))
        # later, in the window: duplicates of those
        self.assertEqual(self.insert([(k2, values("two"))], NOW + 10), [None])
        # an id of the slow path's store.add numbering continues after ours
        self.assertEqual(len(self.rows()), 2)

    def test_expired_key_or_gone_message_is_new(self):
        key = dedup_key(MO, "x")
        [first] = self.insert([(key, values("x"))])
        second, again = self.insert([(key, values("x")), (key, values("x"))], NOW + 601)
        self.assertNotIn(second, (None, first))
        self.assertIsNone(again)
        self.run_fn(lambda txn: txn.execute("DELETE FROM messages WHERE id = ?", (second,)))
        [third] = self.insert([(key, values("x"))], NOW + 602)
        self.assertNotIn(third, (None, first, second))
        self.assertEqual(len(self.rows()), 2)

    def test_numbering_after_deleted_rows(self):
        """AUTOINCREMENT: ids never come back, even after the newest row is purged."""
        [a, b] = self.insert([(dedup_key(MO, 1), values("1")), (dedup_key(MO, 2), values("2"))])
        self.run_fn(lambda txn: txn.execute("DELETE FROM messages WHERE id = ?", (b,)))
        [c] = self.insert([(dedup_key(MO, 3), values("3"))])
        self.assertGreater(c, b)

    def test_delivered(self):
        ids = self.insert([(dedup_key(MO, i), values(str(i))) for i in range(3)])
        self.run_fn(mo_lane_delivered, [(NOW + 1, 200, "sip:x@10.0.0.1", i) for i in ids[:2]])
        states = {r["id"]: (r["state"], r["sip_status"], r["attempts"], r["sip_to"])
                  for r in self.rows()}
        self.assertEqual(states[ids[0]], ("delivered", 200, 1, "sip:x@10.0.0.1"))
        self.assertEqual(states[ids[2]], ("queued", 0, 0, ""))

    def delivered_rows(self, rows, update_from=True):
        """The messages after C{mo_lane_delivered(rows)} on 3 new messages."""
        self.patch(lane, "_UPDATE_FROM", update_from and lane._UPDATE_FROM)
        ids = self.insert([(dedup_key(MO, i), values(str(i))) for i in range(3)])
        self.assertEqual(self.run_fn(mo_lane_delivered, rows(ids)), len(rows(ids)))
        return sorted((r["id"], r["state"], r["sip_status"], r["attempts"], r["sip_to"],
                       r["updated_at"], r["last_error"]) for r in self.rows())

    def test_delivered_in_one_statement_equals_row_by_row(self):
        """
        A batch of 2xx: one C{UPDATE ... FROM (VALUES ...)} on SQLite
        3.33+, the same rows as a statement per row.
        """
        def rows(ids):
            return [(NOW + 1 + n, 200 + n, f"sip:{n}@10.0.0.1", i) for n, i in enumerate(ids[1:])]
        one = self.delivered_rows(rows)
        self.run_fn(lambda txn: txn.execute("DELETE FROM messages"))
        self.run_fn(lambda txn: txn.execute("DELETE FROM message_dedup"))
        each = self.delivered_rows(rows, update_from=False)
        self.assertEqual([r[1:] for r in one], [r[1:] for r in each])
        self.assertEqual([r[1:5] for r in one],
                         [("queued", 0, 0, ""), ("delivered", 200, 1, "sip:0@10.0.0.1"),
                          ("delivered", 201, 1, "sip:1@10.0.0.1")])

    def test_delivered_twice_in_one_batch(self):
        """One message named twice in a batch counts two attempts, as row by row."""
        attempts = self.delivered_rows(
            lambda ids: [(NOW + 1, 200, "sip:x@10.0.0.1", ids[0])] * 2)
        self.assertEqual([r[3] for r in attempts], [2, 0, 0])


class LaneInsertOtherEngineTests(LaneInsertTests):
    other_engine = True
