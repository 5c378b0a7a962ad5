"""
Several worker processes on one store (L{gwsms.store.messages.MessageStore}
with an C{owner}): leases, atomic claims, duplicates recognised across
handles.  Each worker is a separate SQLite connection on one file (as
separate processes have).
"""

from __future__ import annotations

import os
import tempfile
import threading

from twisted.internet import task
from twisted.trial import unittest

from gwsms.store.batch import BatchWriter
from gwsms.store.database import open_database_sync
from gwsms.store.messages import MT, MessageStore, dedup_key
from gwsms.store.migrate import upgrade
from tests.mysql_helpers import SKIP_MYSQL, fresh_mysql_url


def _result(d):
    out = []
    d.addBoth(out.append)
    assert out, "Deferred did not fire"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


class _Worker:
    """One worker's store: its own connection, writer and clock."""

    def __init__(self, url: str, owner: int | None, lease: float = 30.0):
        self.db = open_database_sync(url)
        self.clock = task.Clock()
        self.writer = BatchWriter(self.db, self.clock)
        self.store = MessageStore(self.db, self.writer, owner=owner, lease=lease)

    def add(self, now: float, key=None, direction=MT, next_attempt_at=0.0):
        record = {"direction": direction, "state": "queued", "body": "hi",
                  "next_attempt_at": next_attempt_at}
        d = self.store.add(record, now, key=key, window=600.0)
        self.clock.advance(0)
        return _result(d)

    def due(self, now: float, direction=MT, limit=500, after=0):
        return _result(self.store.due(direction, now, limit, after))

    def close(self):
        self.db.close()


class OwnerLeaseTests(unittest.TestCase):
    """On SQLite (a file); L{MysqlOwnerLeaseTests} runs them on MySQL."""

    def database_url(self) -> str:
        fd, self.path = tempfile.mkstemp(suffix=".sqlite3")
        os.close(fd)
        self.addCleanup(self._remove)
        return f"sqlite:{self.path}"

    def setUp(self):
        self.url = self.database_url()
        setup = open_database_sync(self.url)
        _result(upgrade(setup))
        setup.close()
        self.w0 = self._worker(0)
        self.w1 = self._worker(1)

    def _remove(self):
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.path + suffix):
                os.remove(self.path + suffix)

    def _worker(self, owner, lease=30.0):
        w = _Worker(self.url, owner, lease)
        self.addCleanup(w.close)
        return w

    def beat(self, worker, now):
        _result(worker.store.heartbeat(now, 4242))

    def test_new_message_is_its_workers(self):
        """A stored message belongs to the worker that stored it."""
        self.beat(self.w0, 1000.0)
        message_id, existing = self.w0.add(1000.0)
        self.assertIsNone(existing)
        self.assertEqual([r["id"] for r in self.w0.due(1001.0)], [message_id])
        self.assertEqual(self.w0.due(1001.0)[0]["owner"], 0)
        # the other worker leaves it alone while the heartbeat lasts
        self.assertEqual(self.w1.due(1001.0), [])
        self.assertEqual(self.w1.due(1030.0), [])

    def test_taken_over_when_the_heartbeat_stops(self):
        """A worker that stopped beating loses its messages, once, to one other."""
        self.beat(self.w0, 1000.0)
        message_id, _ = self.w0.add(1000.0)
        w2 = self._worker(2)
        self.beat(self.w1, 1031.0)
        self.beat(w2, 1031.0)
        rows = self.w1.due(1031.0)
        self.assertEqual([(r["id"], r["owner"]) for r in rows], [(message_id, 1)])
        self.assertEqual(w2.due(1031.0), [])  # claimed already
        self.assertEqual(self.w0.due(1031.0), [])  # no longer worker 0's
        self.assertEqual([r["id"] for r in self.w1.due(1032.0)], [message_id])

    def test_owner_without_heartbeat_is_taken_over(self):
        """Messages of a worker that never beat (e.g. from before) are free."""
        message_id, _ = self.w0.add(1000.0)
        self.assertEqual([r["id"] for r in self.w1.due(1000.0)], [message_id])

    def test_heartbeats_keep_messages(self):
        """A worker that keeps beating keeps its messages."""
        self.beat(self.w0, 1000.0)
        self.w0.add(1000.0)
        for now in (1016.0, 1032.0, 1048.0, 1064.0):
            self.beat(self.w0, now)
            self.assertEqual(self.w1.due(now), [])
        rows = _result(self.w1.store.list())
        self.assertEqual(rows[0]["owner"], 0)
        beats = _result(self.w1.db.run_query("SELECT worker, alive_until, pid FROM worker_leases"))
        self.assertEqual([tuple(b) for b in beats], [(0, 1094.0, 4242)])

    def test_revived_worker_keeps_what_was_not_claimed(self):
        self.beat(self.w0, 1000.0)
        message_id, _ = self.w0.add(1000.0)
        self.beat(self.w0, 1100.0)  # restarted late: nobody claimed it meanwhile
        self.assertEqual(self.w1.due(1100.0), [])
        self.assertEqual([r["id"] for r in self.w0.due(1100.0)], [message_id])

    def test_final_messages_are_not_claimed(self):
        self.beat(self.w0, 1000.0)
        message_id, _ = self.w0.add(1000.0)
        d = self.w0.store.update(message_id, 1001.0, state="submitted")
        self.w0.clock.advance(0)
        self.assertEqual(_result(d), 1)
        self.assertEqual(self.w1.due(2000.0), [])

    def test_single_process_store_sees_everything(self):
        """Without an owner (workers = 1) every due message is returned."""
        self.w0.add(1000.0)
        self.w1.add(1000.0)
        single = self._worker(None)
        self.assertEqual(len(single.due(1001.0)), 2)

    def test_duplicate_across_workers(self):
        """A retransmission stored by another worker is the same message."""
        key = dedup_key(MT, "call-1@x", "1 MESSAGE", "tag", "sip:a@x")
        message_id, existing = self.w0.add(1000.0, key=key)
        self.assertIsNone(existing)
        again_id, row = self.w1.add(1000.5, key=key)
        self.assertEqual(again_id, message_id)
        self.assertEqual(row["owner"], 0)
        self.assertEqual(len(_result(self.w1.store.list())), 1)

    def test_racing_claims_are_disjoint(self):
        """
        Two workers claiming a dead worker's messages at the same time
        (threads, one connection each) never both get one.
        """
        dead = self._worker(7)
        self.beat(dead, 1000.0)
        ids = {dead.add(1000.0)[0] for _ in range(200)}
        claimers = [_Worker(self.url, owner) for owner in (1, 2)]
        for w in claimers:
            self.beat(w, 1031.0)
        got: dict[int, list] = {1: [], 2: []}
        errors = []

        def run(worker, owner):
            try:
                after = 0
                while True:
                    rows = worker.due(1031.0, limit=10, after=after)
                    if not rows:
                        # a page may shrink when the other took rows; go on from
                        # the last id seen until nothing is left
                        left = _result(worker.store.db.run_query(
                            "SELECT MIN(id) FROM messages WHERE owner = 7 AND id > ?",
                            (after,)))[0][0]
                        if left is None:
                            return
                        after = left - 1
                        continue
                    got[owner].extend(r["id"] for r in rows)
                    after = rows[-1]["id"]
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=run, args=(w, w.store.owner)) for w in claimers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for w in claimers:
            w.close()
        self.assertFalse(any(t.is_alive() for t in threads), "claiming threads hung")
        self.assertEqual(errors, [])
        self.assertEqual(set(got[1]) & set(got[2]), set())
        self.assertEqual(set(got[1]) | set(got[2]), ids)
        self.assertEqual(len(got[1]) + len(got[2]), 200)

    def test_racing_duplicates_are_one_message(self):
        """
        Two workers storing the same 50 keys at the same time (threads, one
        connection each) end with 50 messages, each worker told the same id.
        """
        keys = [dedup_key(MT, f"call-{i}", "1 MESSAGE", "t", "sip:a@x") for i in range(50)]
        workers = [_Worker(self.url, owner) for owner in (0, 1)]
        got: dict[int, list] = {0: [], 1: []}
        errors = []

        def run(worker):
            try:
                for key in keys:
                    got[worker.store.owner].append(worker.add(1000.0, key=key)[0])
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=run, args=(w,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for w in workers:
            w.close()
        self.assertFalse(any(t.is_alive() for t in threads), "threads hung")
        self.assertEqual(errors, [])
        self.assertEqual(got[0], got[1])
        self.assertEqual(len(set(got[0])), 50)
        self.assertEqual(len(_result(self.w0.store.list(limit=1000))), 50)


class MysqlOwnerLeaseTests(OwnerLeaseTests):
    """The same on MySQL / MariaDB (C{GWSMS_TEST_MYSQL_URL})."""

    skip = SKIP_MYSQL or None

    def database_url(self) -> str:
        return fresh_mysql_url(self)
