"""
Tests for L{gwsms.store.lane}: the bulk writes of the SIP -> SMPP lane must
leave exactly the rows the one-message functions of L{gwsms.store.messages}
leave (C{_insert}, C{_part_submitted}), on every back-end.

Each comparison runs the bulk form on this test's database and the
one-message form on a second, fresh database of the same kind with the same
history, and compares the tables row by row (ids included).
"""

from __future__ import annotations

import os

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from gwsms.store import migrate
from gwsms.store.batch import Batch, BatchWriter
from gwsms.store import lane
from gwsms.store.lane import insert_many, submitted_many
from gwsms.store.messages import MT, _insert, _part_submitted, dedup_key
from tests.mysql_helpers import backend_tests, fresh_mysql_url

WINDOW = 600.0

_TABLES = (
    ("messages", "id"),
    ("message_parts", "message_id, seq"),
    ("message_dedup", "dedup_key"),
    ("receipt_ids", "message_id, seq, variant, smsc, id_key"),
)


def _dump(txn) -> dict:
    out = {}
    for table, order in _TABLES:
        out[table] = [tuple(row) for row in
                      txn.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()]
    return out


def _one_by_one(txn, items, window):
    return [_insert(txn, record, now, key, window, None, None, True)
            for record, key, now in items]


def _submitted_one_by_one(txn, items):
    return [_part_submitted(txn, message_id, 1, smsc, mid, now, index)
            for message_id, smsc, mid, now, index in items]


def _purge(txn, ids) -> None:
    for message_id in ids:
        txn.execute("DELETE FROM message_parts WHERE message_id = ?", (message_id,))
        txn.execute("DELETE FROM message_dedup WHERE message_id = ?", (message_id,))
        txn.execute("DELETE FROM messages WHERE id = ?", (message_id,))


def record(n, **kw):
    """An MT row as the lane builds it (C{n} makes it distinct)."""
    values = {
        "direction": MT, "state": "queued", "source_addr": "4930123", "source_ton": 1,
        "source_npi": 1, "dest_addr": f"49151{n:07d}", "dest_ton": 1, "dest_npi": 1,
        "smsc": "smsc1", "sip_from": "sip:+4930123@example.org",
        "sip_to": f"sip:+49151{n:07d}@gw.example", "call_id": f"call-{n}",
        "body": f"hello {n} ✓", "content_type": "text/plain", "data_coding": 8,
        "concat_ref": n % 256, "parts_total": 1, "registered_delivery": n % 2,
        "expires_at": 90000.0 + n, "next_attempt_at": 1006.0 + n,
    }
    values.update(kw)
    return values


def key(n):
    return dedup_key(MT, f"call-{n}", "1 MESSAGE", f"tag{n}", "sip:+4930123@example.org")


class LaneStoreMixin:
    """Test methods; mixed with a back-end from L{tests.mysql_helpers}."""

    @defer.inlineCallbacks
    def other_db(self):
        """A second, migrated, empty database of the same kind."""
        if self.url.startswith("mysql"):
            url = fresh_mysql_url(self)
        elif self.url == "sqlite::memory:":
            url = self.url  # every handle is a database of its own
        else:
            url = "sqlite:" + os.path.join(os.path.abspath(self.mktemp()), "other.sqlite3")
        db = self.open_db(url)
        yield migrate.upgrade(db)
        tables = yield db.run_interaction("dump", _dump)
        self.assertEqual(tables["messages"], [])
        return db

    @defer.inlineCallbacks
    def both(self, history=None):
        """
        This test's database and a second one, both with C{history(txn)}
        run on them.
        """
        other = yield self.other_db()
        for db in (self.db, other):
            if history is not None:
                yield db.run_interaction("history", history)
        return self.db, other

    @defer.inlineCallbacks
    def assertSameTables(self, bulk_db, single_db):
        bulk = yield bulk_db.run_interaction("dump", _dump)
        single = yield single_db.run_interaction("dump", _dump)
        for table, _order in _TABLES:
            self.assertEqual(bulk[table], single[table], table)
        return bulk

    # -- insert_many ------------------------------------------------------
    @defer.inlineCallbacks
    def test_insert_many_rows_equal_insert_one_by_one(self):
        items = [(record(n, parts_total=(1, 3, 1, 2, 1)[n]), key(n), 1000.0 + n * 0.001)
                 for n in range(5)]
        bulk_db, single_db = yield self.both()
        bulk = yield bulk_db.run_interaction("bulk", insert_many, items, WINDOW)
        single = yield single_db.run_interaction("single", _one_by_one, items, WINDOW)
        self.assertEqual(bulk, single)
        ids = [message_id for message_id, _dup in bulk]
        self.assertEqual(ids, sorted(set(ids)))  # unique, ascending in item order
        self.assertEqual([dup for _id, dup in bulk], [None] * 5)
        tables = yield self.assertSameTables(bulk_db, single_db)
        self.assertEqual(len(tables["messages"]), 5)
        self.assertEqual(len(tables["message_parts"]), 1 + 3 + 1 + 2 + 1)
        self.assertEqual(len(tables["message_dedup"]), 5)

    @defer.inlineCallbacks
    def test_insert_many_records_of_several_shapes(self):
        """
        Only a record's own columns are bound; the table's defaults fill
        the rest, and records naming other columns go in with theirs.
        """
        items = [(record(0), key(0), 1000.0),
                 (record(1, owner=3, imdn_id="imdn-1"), key(1), 1000.0),
                 (record(2), key(2), 1000.0),
                 (dict(list(record(3).items())[::-1]), key(3), 1000.0)]
        bulk_db, single_db = yield self.both()
        bulk = yield bulk_db.run_interaction("bulk", insert_many, items, WINDOW)
        single = yield single_db.run_interaction("single", _one_by_one, items, WINDOW)
        self.assertEqual(bulk, single)
        tables = yield self.assertSameTables(bulk_db, single_db)
        self.assertEqual(len(tables["messages"]), 4)
        rows = yield bulk_db.run_interaction("read", lambda txn: txn.execute(
            "SELECT owner, imdn_id, attempts, last_error, dest_addr FROM messages"
            " ORDER BY id").fetchall())
        self.assertEqual([tuple(row) for row in rows],
                         [(0, "", 0, "", record(n)["dest_addr"]) for n in (0,)]
                         + [(3, "imdn-1", 0, "", record(1)["dest_addr"])]
                         + [(0, "", 0, "", record(n)["dest_addr"]) for n in (2, 3)])

    @defer.inlineCallbacks
    def test_insert_many_refuses_a_record_naming_no_column(self):
        for bad in ({"colour": "red"}, {"created_at": 5.0}):
            def bulk(txn, bad=bad):
                return insert_many(txn, [(record(0), key(0), 1000.0),
                                         (record(1, **bad), key(1), 1000.0)], WINDOW)
            e = yield self.assertFailure(self.db.run_interaction("bulk", bulk), ValueError)
            self.assertIn(next(iter(bad)), str(e))
        tables = yield self.db.run_interaction("dump", _dump)
        self.assertEqual(tables["messages"], [])  # nothing of the batch stays

    @defer.inlineCallbacks
    def test_ids_never_reused_after_purge(self):
        """AUTOINCREMENT: the ids of deleted (purged) rows are not given again."""
        def history(txn):
            earlier = _one_by_one(txn, [(record(100 + n), key(100 + n), 900.0)
                                        for n in range(3)], WINDOW)
            _purge(txn, [message_id for message_id, _dup in earlier])  # all of them
        bulk_db, single_db = yield self.both(history)
        items = [(record(n), key(n), 1000.0) for n in range(3)]
        bulk = yield bulk_db.run_interaction("bulk", insert_many, items, WINDOW)
        single = yield single_db.run_interaction("single", _one_by_one, items, WINDOW)
        self.assertEqual([i for i, _ in bulk], [4, 5, 6])
        self.assertEqual(bulk, single)
        yield self.assertSameTables(bulk_db, single_db)
        # the highest row deleted: its id stays used
        yield bulk_db.run_interaction("purge", _purge, [6])
        again = yield bulk_db.run_interaction(
            "bulk", insert_many, [(record(7), key(7), 1001.0), (record(8), key(8), 1001.0)],
            WINDOW)
        self.assertEqual([i for i, _ in again], [7, 8])

    @defer.inlineCallbacks
    def test_duplicate_of_a_stored_key(self):
        def history(txn):
            _one_by_one(txn, [(record(1, body="first"), key(1), 990.0)], WINDOW)
        bulk_db, single_db = yield self.both(history)
        items = [(record(2), key(2), 1000.0), (record(1, body="again"), key(1), 1000.0),
                 (record(3), key(3), 1000.0)]
        bulk = yield bulk_db.run_interaction("bulk", insert_many, items, WINDOW)
        single = yield single_db.run_interaction("single", _one_by_one, items, WINDOW)
        self.assertEqual(bulk[1][0], 1)
        self.assertEqual((bulk[1][1]["id"], bulk[1][1]["body"]), (1, "first"))
        self.assertIsNone(bulk[0][1])
        self.assertIsNone(bulk[2][1])
        self.assertEqual(bulk, single)
        yield self.assertSameTables(bulk_db, single_db)

    @defer.inlineCallbacks
    def test_same_key_twice_in_one_batch(self):
        bulk_db, single_db = yield self.both()
        items = [(record(1, body="first"), key(1), 1000.0), (record(2), key(2), 1000.0),
                 (record(1, body="retry"), key(1), 1000.0)]
        bulk = yield bulk_db.run_interaction("bulk", insert_many, items, WINDOW)
        single = yield single_db.run_interaction("single", _one_by_one, items, WINDOW)
        first_id = bulk[0][0]
        self.assertIsNone(bulk[0][1])
        self.assertEqual(bulk[2][0], first_id)
        self.assertEqual((bulk[2][1]["id"], bulk[2][1]["body"]), (first_id, "first"))
        self.assertEqual(bulk, single)
        tables = yield self.assertSameTables(bulk_db, single_db)
        self.assertEqual(len(tables["messages"]), 2)

    @defer.inlineCallbacks
    def test_expired_key_is_replaced(self):
        def history(txn):
            _one_by_one(txn, [(record(1, body="old"), key(1), 100.0)], WINDOW)
        bulk_db, _single = yield self.both(history)
        items = [(record(1, body="new"), key(1), 1000.0), (record(2), key(2), 1000.0)]
        bulk = yield bulk_db.run_interaction("bulk", insert_many, items, WINDOW)
        self.assertEqual([dup for _id, dup in bulk], [None, None])
        self.assertNotIn(1, [i for i, _ in bulk])
        tables = yield bulk_db.run_interaction("dump", _dump)
        dedup = {row[0]: row[1:] for row in tables["message_dedup"]}
        self.assertEqual(dedup[key(1)], (bulk[0][0], 1000.0))  # points at the new message
        self.assertEqual(len(tables["messages"]), 3)  # the old message stays

    @defer.inlineCallbacks
    def test_mixed_batch_rows_equal_insert_one_by_one(self):
        """New, expired, stored-duplicate and in-batch-duplicate keys in one batch."""
        def history(txn):
            _one_by_one(txn, [(record(1, body="expired"), key(1), 100.0),
                              (record(2, body="stored"), key(2), 990.0)], WINDOW)
        bulk_db, single_db = yield self.both(history)
        items = [(record(3), key(3), 1000.0), (record(1), key(1), 1000.0),
                 (record(4, parts_total=2), key(4), 1000.0), (record(2), key(2), 1000.0),
                 (record(3, body="retry"), key(3), 1000.0), (record(5), key(5), 1000.0)]
        bulk = yield bulk_db.run_interaction("bulk", insert_many, items, WINDOW)
        single = yield single_db.run_interaction("single", _one_by_one, items, WINDOW)
        self.assertEqual(bulk, single)
        yield self.assertSameTables(bulk_db, single_db)

    # -- submitted_many ---------------------------------------------------
    def _three(self, txn):
        _one_by_one(txn, [(record(n), key(n), 1000.0) for n in range(1, 4)], WINDOW)

    @defer.inlineCallbacks
    def test_submitted_many_equals_part_submitted(self):
        bulk_db, single_db = yield self.both(self._three)
        items = [(1, "smsc1", "0A1B", 1001.0, True), (2, "smsc2", "", 1001.5, True),
                 (3, "smsc1", "77", 1002.0, False)]
        bulk = yield bulk_db.run_interaction("bulk", submitted_many, items)
        yield single_db.run_interaction("single", _submitted_one_by_one, items)
        self.assertEqual(bulk, [None] * 3)
        tables = yield self.assertSameTables(bulk_db, single_db)
        messages = {row[0]: row for row in tables["messages"]}
        self.assertEqual(len(messages), 3)
        parts = {row[0]: row for row in tables["message_parts"]}
        self.assertEqual([parts[n][2:4] for n in (1, 2, 3)],
                         [("submitted", "0A1B"), ("submitted", ""), ("submitted", "77")])
        self.assertEqual({row[3] for row in tables["receipt_ids"]}, {1})  # indexed, with an id

    @defer.inlineCallbacks
    def test_submitted_many_states(self):
        yield self.db.run_interaction("history", self._three)
        yield self.db.run_interaction(
            "bulk", submitted_many, [(1, "smscA", "x1", 1001.0, True),
                                     (2, "smscB", "x2", 1001.0, False)])
        tables = yield self.db.run_interaction("dump", _dump)
        from gwsms.store.messages import MESSAGE_COLUMNS

        rows = [dict(zip(MESSAGE_COLUMNS, row)) for row in tables["messages"]]
        self.assertEqual([(r["state"], r["parts_done"], r["smsc"], r["updated_at"])
                          for r in rows],
                         [("submitted", 1, "smscA", 1001.0), ("submitted", 1, "smscB", 1001.0),
                          ("queued", 0, "smsc1", 1000.0)])
        self.assertEqual(sorted({(r[0], r[3], r[4]) for r in tables["receipt_ids"]}),
                         [("smscA", 1, 1)])

    def test_recording_twice_is_a_no_op(self):
        return self._twice([(1, "smsc1", "0A1B", 1001.0, True), (2, "smsc1", "0A1C", 1001.0, True)])

    def test_recording_twice_without_receipts_is_a_no_op(self):
        """Items without a receipt index take the deferred UPDATE ... FROM statements."""
        return self._twice([(1, "smsc1", "0A1B", 1001.0, False), (2, "smsc1", "0A1C", 1001.0, True),
                            (3, "smsc2", "77", 1001.0, False)])

    def test_without_update_from_one_statement_per_row(self):
        """SQLite before 3.33 (no UPDATE ... FROM): the updates run at once, row by row."""
        self.patch(lane, "_UPDATE_FROM", False)
        return self.test_submitted_many_equals_part_submitted()

    @defer.inlineCallbacks
    def _twice(self, items):
        bulk_db, single_db = yield self.both(self._three)
        yield bulk_db.run_interaction("bulk", submitted_many, items)
        once = yield bulk_db.run_interaction("dump", _dump)
        later = [(m, s, i, 1005.0, x) for m, s, i, _now, x in items]
        yield bulk_db.run_interaction("bulk again", submitted_many, later)
        twice = yield bulk_db.run_interaction("dump", _dump)
        for table, _order in _TABLES:
            self.assertEqual(twice[table], once[table], table)
        yield single_db.run_interaction("single", _submitted_one_by_one, items)
        yield single_db.run_interaction("single again", _submitted_one_by_one, later)
        yield self.assertSameTables(bulk_db, single_db)

    # -- as the group-commit writer runs them (Database.run_batch) ---------
    def run_batch(self, db, fn, *args):
        """
        Run C{fn} the way L{BatchWriter} runs a batch: on pooled SQLite the
        function runs in the reactor thread and C{Transaction.later}
        statements after it, before the commit.
        """
        run = getattr(db, "run_batch", None) or db.run_interaction
        return run("batch", fn, *args)

    @defer.inlineCallbacks
    def test_run_batch_rows_equal_insert_one_by_one(self):
        def history(txn):
            earlier = _one_by_one(txn, [(record(100 + n), key(100 + n), 900.0)
                                        for n in range(2)], WINDOW)
            _purge(txn, [earlier[-1][0]])
        bulk_db, single_db = yield self.both(history)
        items = [(record(n, parts_total=1 + n % 2), key(n), 1000.0) for n in range(4)]
        bulk = yield self.run_batch(bulk_db, insert_many, items, WINDOW)
        single = yield single_db.run_interaction("single", _one_by_one, items, WINDOW)
        self.assertEqual([i for i, _ in bulk], [3, 4, 5, 6])
        self.assertEqual(bulk, single)
        yield self.assertSameTables(bulk_db, single_db)

    @defer.inlineCallbacks
    def test_run_batch_same_key_twice(self):
        """
        The second item with the first one's key is a duplicate of it, also
        when the first one's rows are written after the batch's functions.
        """
        bulk_db, single_db = yield self.both()
        items = [(record(1, body="first"), key(1), 1000.0), (record(2), key(2), 1000.0),
                 (record(1, body="retry"), key(1), 1000.0)]
        bulk = yield self.run_batch(bulk_db, insert_many, items, WINDOW)
        single = yield single_db.run_interaction("single", _one_by_one, items, WINDOW)
        self.assertEqual(bulk, single)
        yield self.assertSameTables(bulk_db, single_db)

    @defer.inlineCallbacks
    def test_run_batch_with_one_message_writes_around(self):
        """
        Full-path inserts (C{_insert}, AUTOINCREMENT) before and after the
        lane's bulk insert in one batch: ids unique and ascending in order,
        every row there.
        """
        def batch(txn):
            first = _insert(txn, record(1), 1000.0, key(1), WINDOW, None, None, True)
            many = insert_many(txn, [(record(2), key(2), 1000.0),
                                     (record(3), key(3), 1000.0)], WINDOW)
            last = _insert(txn, record(4), 1000.0, key(4), WINDOW, None, None, True)
            return [first] + many + [last]

        results = yield self.run_batch(self.db, batch)
        ids = [i for i, _dup in results]
        self.assertEqual(ids, sorted(set(ids)))
        tables = yield self.db.run_interaction("dump", _dump)
        self.assertEqual([row[0] for row in tables["messages"]], ids)
        self.assertEqual([row[0] for row in tables["message_parts"]], ids)
        self.assertEqual(sorted(row[1] for row in tables["message_dedup"]), ids)

    @defer.inlineCallbacks
    def test_writer_duplicate_of_a_lane_message_in_the_same_batch(self):
        """
        Through the group commit: the lane's batch and a full-path add of
        the same key in one writer batch end as one message and its
        duplicate.
        """
        from twisted.internet import reactor
        from gwsms.store.messages import MessageStore

        writer = BatchWriter(self.db, reactor, interval=0.0)
        store = MessageStore(self.db, writer)
        batch = Batch()
        outcome = defer.Deferred()
        writer.write_batch(batch, lambda ok, result: outcome.callback((ok, result)),
                           insert_many, WINDOW)
        batch.extend([(record(1), key(1), 1000.0), (record(2), key(2), 1000.0)])
        full = store.add(record(1, body="again"), 1000.0, key=key(1), window=WINDOW)
        ok, results = yield outcome
        self.assertTrue(ok, results)
        again_id, existing = yield full
        self.assertEqual(again_id, results[0][0])
        self.assertEqual(existing["body"], "hello 1 ✓")
        tables = yield self.db.run_interaction("dump", _dump)
        self.assertEqual(len(tables["messages"]), 2)
        yield writer.drain()

    # -- Batch ------------------------------------------------------------
    @defer.inlineCallbacks
    def test_insert_batch_and_submitted_batch_seal(self):
        from twisted.internet import reactor

        writer = BatchWriter(self.db, reactor, interval=0.0)
        batch = Batch()
        self.assertEqual((batch.sealed, list(batch)), (False, []))
        batch.append((record(1), key(1), 1000.0))
        batch.append((record(2), key(2), 1000.0))
        stored = defer.Deferred()
        writer.write_batch(batch, lambda ok, result: stored.callback(result), insert_many,
                           WINDOW)
        results = yield stored
        self.assertTrue(batch.sealed)
        self.assertEqual([dup for _id, dup in results], [None, None])
        submits = Batch(((message_id, "smsc1", f"m{message_id}", 1001.0, False)
                         for message_id, _dup in results))
        recorded = defer.Deferred()
        writer.write_batch(submits, lambda ok, result: recorded.callback(result),
                           submitted_many)
        done = yield recorded
        self.assertTrue(submits.sealed)
        self.assertEqual(done, [None, None])
        tables = yield self.db.run_interaction("dump", _dump)
        self.assertEqual([row[2:4] for row in tables["message_parts"]],
                         [("submitted", f"m{i}") for i, _ in results])
        yield writer.drain()

    @defer.inlineCallbacks
    def test_batch_through_the_group_commit(self):
        """write_batch: items appended before the write runs are in it; it seals the batch."""
        from twisted.internet import reactor

        writer = BatchWriter(self.db, reactor, interval=0.0)
        batch = Batch()
        outcome = defer.Deferred()
        writer.write_batch(batch, lambda ok, result: outcome.callback((ok, result)),
                           insert_many, WINDOW)
        for n in range(3):
            self.assertFalse(batch.sealed)
            batch.append((record(n), key(n), 1000.0))
        ok, results = yield outcome
        self.assertTrue(ok)
        self.assertTrue(batch.sealed)
        self.assertEqual(len({i for i, _ in results}), 3)
        tables = yield self.db.run_interaction("dump", _dump)
        self.assertEqual(sorted(row[0] for row in tables["messages"]),
                         sorted(i for i, _ in results))
        yield writer.drain()


backend_tests(globals(), LaneStoreMixin)


class _Recorder:
    """The C{later} and C{execute} side of a Transaction, recorded."""

    def __init__(self):
        self.statements = []

    def later(self, sql, params):
        self.statements.append((sql, params))

    def execute(self, sql, params):
        self.statements.append((sql, params))
        return self

    def fetchall(self):
        return []


class StatementSizeTests(SynchronousTestCase):
    """
    The lanes' multi-row statements come in a few sizes (so that they stay
    prepared), the rows beyond a batch's own being NULLs.
    """

    def test_statement_rows(self):
        self.assertEqual([lane.statement_rows(n, 512) for n in (1, 2, 3, 5, 8, 9, 300, 512)],
                         [1, 2, 4, 8, 8, 16, 512, 512])
        self.assertEqual(lane.statement_rows(700, 882), 882)  # a full chunk: the limit

    def test_few_texts_for_every_batch_size(self):
        texts = set()
        for count in range(1, 301):
            txn = _Recorder()
            lane.insert_rows(txn, "INSERT INTO t (a, b)", [(n, "x") for n in range(count)])
            lane.update_from_values(txn, "t", "b = v.column2", "t.a = v.column1",
                                    [(n, "y") for n in range(count)])
            lane._select_in(txn, "SELECT a FROM t WHERE a IN (%s)", list(range(count)))
            texts.update(sql for sql, _params in txn.statements)
        # inserts of 1, 2, 4, ..., 256 rows; updates and IN lists padded to 1, 2, ..., 512
        self.assertEqual(len(texts), 9 + 10 + 10)
        txn = _Recorder()
        lane.insert_rows(txn, "INSERT INTO t (a, b)", [(n, "x") for n in range(300)])
        self.assertEqual([len(params) // 2 for _sql, params in txn.statements],
                         [256, 32, 8, 4])  # every row once, in order
        self.assertEqual([params[0] for _sql, params in txn.statements], [0, 256, 288, 296])

    def test_padding(self):
        txn = _Recorder()
        lane.insert_rows(txn, "INSERT INTO t (a, b)", [(1, "x"), (2, "y"), (3, "z")])
        lane.update_from_values(txn, "t", "b = v.column2", "t.a = v.column1", [(1, "w")])
        lane.update_from_values(txn, "t", "b = v.column2", "t.a = v.column1",
                                [(1, "w"), (2, "v"), (3, "u")])
        lane._select_in(txn, "SELECT a FROM t WHERE a IN (%s)", [7, 8, 9])
        self.assertEqual(txn.statements, [
            ("INSERT OR FAIL INTO t (a, b) VALUES (?,?),(?,?)", [1, "x", 2, "y"]),
            ("INSERT OR FAIL INTO t (a, b) VALUES (?,?)", [3, "z"]),
            ("UPDATE OR FAIL t SET b = v.column2 FROM ( VALUES (?,?)) AS v"
             " WHERE t.a = v.column1", [1, "w"]),
            ("UPDATE OR FAIL t SET b = v.column2 FROM ( VALUES (?,?),(?,?),(?,?),(?,?)) AS v"
             " WHERE t.a = v.column1", [1, "w", 2, "v", 3, "u", None, None]),
            ("SELECT a FROM t WHERE a IN (?,?,?,?)", [7, 8, 9, None])])

    def test_insert_rows_wants_an_insert_head(self):
        with self.assertRaises(ValueError) as cm:
            lane.insert_rows(_Recorder(), "REPLACE INTO t (a)", [(1,)])
        self.assertIn("REPLACE INTO t (a)", str(cm.exception))

    def test_padding_writes_and_matches_nothing(self):
        """On SQLite itself: only the batch's own rows are inserted and updated."""
        import sqlite3

        conn = sqlite3.connect(":memory:")
        conn.execute("CREATE TABLE t (a INTEGER NOT NULL, b TEXT)")
        txn = _Recorder()
        lane.insert_rows(txn, "INSERT INTO t (a, b)", [(1, "x"), (2, "y"), (3, "z")])
        lane.update_from_values(txn, "t", "b = v.column2", "t.a = v.column1",
                                [(2, "two"), (3, "three"), (9, "nine")])
        for sql, params in txn.statements:
            conn.execute(sql, params)
        self.assertEqual(conn.execute("SELECT a, b FROM t ORDER BY a").fetchall(),
                         [(1, "x"), (2, "two"), (3, "three")])
