# -*- test-case-name: tests.test_store_messages -*-
"""
The message store: every message the gateway accepted, its parts, the SMSC
message ids, duplicate keys, MO reassembly fragments and the history.

Hot-path writes go through a L{gwsms.store.batch.BatchWriter} (group
commit: the returned Deferred fires after the commit); reads and the
administrative queries run as their own interactions.

States (C{messages.state}):

  - MT: C{queued} (stored; parts not all accepted by the SMSC) ->
    C{submitted} (every part has a submit_sm_resp message id) ->
    C{delivered} / C{undeliverable} (final receipts); or C{failed}
    (permanent SMSC error), C{expired} (C{mt_ttl} passed), C{rejected}
    (all links down and C{queue_when_down = false}: answered 503 and never
    sent).
  - MO: C{queued} (stored, acknowledged to the SMSC; SIP delivery pending)
    -> C{delivered} (2xx), C{failed} (a final SIP error), C{expired}
    (C{mo_ttl} passed).

Part states (C{message_parts.state}): C{pending}, C{submitted},
C{delivered}, C{undeliverable}, C{failed}.
"""

from __future__ import annotations

import hashlib

from gwsms.core import receipts
from gwsms.store.database import repeat_interaction

MT = "mt"
MO = "mo"
#: the first field of an MT message's duplicate key (L{mt_dedup_key})
_MT_FIELD = len(MT).to_bytes(4, "big") + MT.encode("ascii")
#: message states after which nothing more is done
FINAL_STATES = frozenset({"delivered", "undeliverable", "failed", "expired", "rejected"})
#: states the queue runner works on
ACTIVE_STATES = ("queued",)
#: seconds a worker process's heartbeat keeps its queued messages its own
#: (C{[gateway] workers > 1}); then another worker may take them over
LEASE = 30.0

MESSAGE_COLUMNS = (
    "id", "direction", "state", "created_at", "updated_at", "source_addr", "source_ton",
    "source_npi", "dest_addr", "dest_ton", "dest_npi", "smsc", "sip_from", "sip_to",
    "call_id", "body", "content_type", "data_coding", "concat_ref", "parts_total",
    "parts_done", "partial", "registered_delivery", "imdn_id", "imdn_want",
    "imdn_datetime", "imdn_to", "attempts", "next_attempt_at", "expires_at",
    "sip_status", "last_error", "owner",
)
_SELECT = "SELECT " + ", ".join(MESSAGE_COLUMNS) + " FROM messages"
_INSERTABLE = MESSAGE_COLUMNS[1:]
_INSERT = (
    f"INSERT INTO messages ({', '.join(_INSERTABLE)}) "
    f"VALUES ({', '.join('?' for _ in _INSERTABLE)})"
)
_UPDATABLE = frozenset(MESSAGE_COLUMNS) - {"id", "direction", "created_at"}

_DEFAULTS = {
    "state": "queued", "source_addr": "", "source_ton": 0, "source_npi": 0,
    "dest_addr": "", "dest_ton": 0, "dest_npi": 0, "smsc": "", "sip_from": "",
    "sip_to": "", "call_id": "", "body": "", "content_type": "text/plain",
    "data_coding": 0, "concat_ref": 0, "parts_total": 1, "parts_done": 0, "partial": 0,
    "registered_delivery": 0, "imdn_id": "", "imdn_want": "", "imdn_datetime": "",
    "imdn_to": "", "attempts": 0, "next_attempt_at": 0.0, "expires_at": 0.0,
    "sip_status": 0, "last_error": "", "owner": 0,
}


def dedup_key(*fields) -> str:
    """
    @param fields: str / int / bytes values that identify a message.
    @return: the 40-hex-digit key stored in C{message_dedup}.
    """
    parts = []
    for value in fields:
        if isinstance(value, str):
            value = value.encode("utf-8", "surrogatepass")
        elif not isinstance(value, (bytes, bytearray)):
            value = str(value).encode("ascii")
        parts.append(len(value).to_bytes(4, "big"))
        parts.append(value)
    return hashlib.sha1(b"".join(parts)).hexdigest()


def mt_dedup_key(call_id: str, cseq: str, from_tag: str, sender_uri: str) -> str:
    """
    C{dedup_key(MT, call_id, cseq, from_tag, sender_uri)}, the key of an
    MT message, without the general case's work (the SIP -> SMPP lane).
    """
    a = call_id.encode("utf-8", "surrogatepass")
    b = cseq.encode("utf-8", "surrogatepass")
    c = from_tag.encode("utf-8", "surrogatepass")
    d = sender_uri.encode("utf-8", "surrogatepass")
    return hashlib.sha1(b"".join((
        _MT_FIELD, len(a).to_bytes(4, "big"), a, len(b).to_bytes(4, "big"), b,
        len(c).to_bytes(4, "big"), c, len(d).to_bytes(4, "big"), d))).hexdigest()


def _row(row) -> dict:
    return dict(zip(MESSAGE_COLUMNS, row))


def _clip(text: str, size: int = 255) -> str:
    return text if len(text) <= size else text[: size - 3] + "..."


def _event(txn, message_id: int, now: float, event: str, detail: str = "") -> None:
    txn.execute(
        "INSERT INTO message_events (message_id, at, event, detail) VALUES (?, ?, ?, ?)",
        (message_id, now, event, _clip(detail)),
    )


# -- write functions (run inside a batch) -----------------------------------

#: the part rows and duplicate keys of a new message (also written in bulk
#: by L{gwsms.store.lane}): the statement up to its C{VALUES}
PARTS_INSERT = "INSERT INTO message_parts (message_id, seq, state, updated_at)"
DEDUP_INSERT = "INSERT INTO message_dedup (dedup_key, message_id, created_at)"
#: a duplicate key whose window passed, or whose message is gone
DEDUP_DELETE = "DELETE FROM message_dedup WHERE dedup_key = ?"


def _insert(txn, record: dict, now: float, key, window: float,
            fragments_key: str | None, event: str | None, with_parts: bool):
    """@return: C{(id, None)} for a new message, C{(id, row)} for a duplicate."""
    keys = [] if key is None else [key] if isinstance(key, str) else list(key)
    for one in keys:
        found = txn.execute(
            "SELECT message_id, created_at FROM message_dedup WHERE dedup_key = ?", (one,)
        ).fetchone()
        if found is not None:
            if found[1] >= now - window:
                existing = txn.execute(_SELECT + " WHERE id = ?", (found[0],)).fetchone()
                if existing is not None:
                    if fragments_key is not None:
                        txn.execute("DELETE FROM mo_fragments WHERE frag_key = ?", (fragments_key,))
                    return found[0], _row(existing)
            txn.execute(DEDUP_DELETE, (one,))
    values = dict(_DEFAULTS)
    values.update(record)
    values["created_at"] = values["updated_at"] = now
    txn.execute(_INSERT, tuple(values[c] for c in _INSERTABLE))
    message_id = txn.lastrowid
    if with_parts:
        txn.executemany(
            PARTS_INSERT + " VALUES (?, ?, ?, ?)",
            [(message_id, seq, "pending", now) for seq in range(1, values["parts_total"] + 1)],
        )
    if keys:
        txn.executemany(
            DEDUP_INSERT + " VALUES (?, ?, ?)",
            [(one, message_id, now) for one in keys],
        )
    if fragments_key is not None:
        txn.execute("DELETE FROM mo_fragments WHERE frag_key = ?", (fragments_key,))
    if event:
        _event(txn, message_id, now, event)
    return message_id, None


#: duplicate keys deleted per transaction by L{MessageStore.purge_dedup}
#: (about 50 ms of the writer each on the benchmark machine)
DEDUP_PURGE_CHUNK = 2000


def _purge_dedup_chunk(txn, before: float, limit: int) -> int:
    sql = txn.engine.delete_oldest_sql("message_dedup", "created_at")
    return txn.execute(sql, (before, limit)).rowcount


def _update(txn, message_id: int, now: float, fields: dict, event: str | None,
            detail: str, only_if_state: str | None):
    sets = ["updated_at = ?"]
    params: list = [now]
    for name, value in fields.items():
        if name not in _UPDATABLE:
            raise ValueError(f"unknown message column {name!r}")
        if name == "last_error":
            value = _clip(str(value))
        sets.append(f"{name} = ?")
        params.append(value)
    sql = f"UPDATE messages SET {', '.join(sets)} WHERE id = ?"
    params.append(message_id)
    if only_if_state is not None:
        sql += " AND state = ?"
        params.append(only_if_state)
    changed = txn.execute(sql, params).rowcount
    if changed and event:
        _event(txn, message_id, now, event, detail)
    return changed


#: the SET of a part whose submit_sm_resp came, for its id and the time
#: (C{str.format} with the SQL of each: C{?} or a column)
PART_SUBMITTED_SET = "state = 'submitted', smsc_message_id = {mid}, updated_at = {now}"
#: the SET of its message: one more part done, C{submitted} once all are
#: (state first: MySQL evaluates SET left to right with the new values)
MESSAGE_SUBMITTED_SET = (
    "state = CASE WHEN parts_done + 1 >= parts_total AND state = 'queued'"
    " THEN 'submitted' ELSE state END, parts_done = parts_done + 1,"
    " smsc = {smsc}, updated_at = {now}"
)
_PART_SUBMITTED = (
    "UPDATE message_parts SET " + PART_SUBMITTED_SET.format(mid="?", now="?")
    + " WHERE message_id = ? AND seq = ? AND smsc_message_id = ''"
)
_MESSAGE_SUBMITTED = (
    "UPDATE messages SET " + MESSAGE_SUBMITTED_SET.format(smsc="?", now="?") + " WHERE id = ?"
)


def _part_submitted(txn, message_id: int, seq: int, smsc: str, smsc_message_id: str,
                    now: float, index: bool) -> bool:
    """@return: C{False} when that part had its id recorded already."""
    txn.execute(_PART_SUBMITTED, (smsc_message_id, now, message_id, seq))
    if txn.rowcount != 1:
        return False  # recorded already
    txn.execute(_MESSAGE_SUBMITTED, (smsc, now, message_id))
    if index and smsc_message_id:
        txn.executemany(
            "INSERT INTO receipt_ids (smsc, id_key, variant, message_id, seq)"
            " VALUES (?, ?, ?, ?, ?)",
            [(smsc, key[:72], variant, message_id, seq)
             for variant, key in enumerate(receipts.canonical_ids(smsc_message_id))],
        )
    # no history row: the part row holds the id and the time (hot path)
    return True


def _set_parts(txn, message_id: int, now: float, parts_total: int, data_coding: int) -> bool:
    """@return: C{False} when a part was submitted already (nothing changed)."""
    changed = txn.execute(
        "UPDATE messages SET parts_total = ?, data_coding = ?, updated_at = ?"
        " WHERE id = ? AND parts_done = 0",
        (parts_total, data_coding, now, message_id),
    ).rowcount
    if not changed:
        return False
    txn.execute("DELETE FROM message_parts WHERE message_id = ?", (message_id,))
    txn.executemany(
        PARTS_INSERT + " VALUES (?, ?, ?, ?)",
        [(message_id, seq, "pending", now) for seq in range(1, parts_total + 1)],
    )
    return True


_PART_STATE = {True: "delivered", False: "undeliverable"}


def _receipt(txn, smsc: str, message_id_text: str, state: str, final: bool,
             error: str | None, now: float):
    """
    @return: C{None} for an unknown id, else a dict: C{message} (row),
        C{seq}, C{done} (the message reached a final state with this
        receipt: C{"delivered"} / C{"undeliverable"}, else C{None}).
    """
    key = receipts.receipt_key(message_id_text)[:72]
    found = txn.execute(
        "SELECT message_id, seq FROM receipt_ids WHERE id_key = ? AND smsc = ?"
        " ORDER BY variant, message_id DESC",
        (key, smsc),
    ).fetchone()
    if found is None:
        # receipts may come on another bind (a receiver next to a
        # transmitter): any connection, exact keys first
        found = txn.execute(
            "SELECT message_id, seq FROM receipt_ids WHERE id_key = ?"
            " ORDER BY variant, message_id DESC",
            (key,),
        ).fetchone()
    if found is None:
        return None
    message_id, seq = found
    detail = f"part {seq} {state}" + (f" err {error}" if error else "")
    _event(txn, message_id, now, "receipt", detail)
    done = None
    if final:
        txn.execute(
            "UPDATE message_parts SET state = ?, error = ?, updated_at = ?"
            " WHERE message_id = ? AND seq = ?",
            (_PART_STATE[state == "DELIVRD"], error or "", now, message_id, seq),
        )
        states = [r[0] for r in txn.execute(
            "SELECT state FROM message_parts WHERE message_id = ?", (message_id,)).fetchall()]
        if all(s in ("delivered", "undeliverable") for s in states):
            done = "delivered" if all(s == "delivered" for s in states) else "undeliverable"
            changed = txn.execute(
                "UPDATE messages SET state = ?, updated_at = ? WHERE id = ?"
                " AND state IN ('queued', 'submitted')",
                (done, now, message_id),
            ).rowcount
            if changed:
                _event(txn, message_id, now, done)
                txn.execute("DELETE FROM receipt_ids WHERE message_id = ?", (message_id,))
            else:
                done = None  # reported before
    row = txn.execute(_SELECT + " WHERE id = ?", (message_id,)).fetchone()
    return {"message": _row(row), "seq": seq, "done": done}


def _add_fragment(txn, key: str, seq: int, total: int, data_coding: int, payload: bytes,
                  now: float) -> bool:
    try:
        txn.execute(
            "INSERT INTO mo_fragments (frag_key, seq, total, data_coding, payload, first_seen)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (key, seq, total, data_coding, bytes(payload), now),
        )
    except Exception as e:
        if txn.engine.is_duplicate_error(e):
            return False
        raise
    return True


def _nothing(txn):
    return None


def _claim_due(txn, direction: str, now: float, limit: int, after_id: int, owner: int):
    """
    Due rows of C{owner} plus those of workers whose heartbeat stopped
    (or that never had one), claimed atomically.
    """
    alive = [w for (w,) in txn.execute(
        "SELECT worker FROM worker_leases WHERE alive_until >= ? AND worker <> ?",
        (now, owner)).fetchall()]
    sql = (_SELECT + " WHERE state = 'queued' AND direction = ? AND next_attempt_at <= ?"
           " AND id > ?")
    params: list = [direction, now, after_id]
    if alive:
        sql += f" AND owner NOT IN ({', '.join('?' for _ in alive)})"
        params += alive
    rows = txn.execute(sql + " ORDER BY id LIMIT ?", params + [limit]).fetchall()
    out, dead = [], {}
    for row in map(_row, rows):
        other = row["owner"]
        if other != owner:
            if other not in dead:
                # MySQL: a locking read, so that a worker renewing its
                # heartbeat right now waits for this claim (or wins before
                # it); SQLite transactions are serialised (BEGIN IMMEDIATE)
                lock = " FOR UPDATE" if txn.engine.dialect == "mysql" else ""
                found = txn.execute(
                    "SELECT alive_until FROM worker_leases WHERE worker = ?" + lock,
                    (other,)).fetchone()
                dead[other] = found is None or found[0] < now
            if not dead[other]:
                continue
            taken = txn.execute(
                "UPDATE messages SET owner = ? WHERE id = ? AND state = 'queued' AND owner = ?",
                (owner, row["id"], other)).rowcount
            if taken != 1:
                continue  # another worker was quicker
            row["owner"] = owner
        out.append(row)
    return out


def _heartbeat(txn, owner: int, alive_until: float, pid: int) -> None:
    txn.execute(txn.engine.upsert_sql("worker_leases", ("worker",), ("alive_until", "pid")),
                (owner, alive_until, pid))


class MessageStore:
    """
    All SQL of the gateway core.

    @ivar writer: the L{BatchWriter} hot-path writes go through.
    """

    def __init__(self, db, writer, owner: int | None = None, lease: float = LEASE) -> None:
        """
        @param db: a L{gwsms.store.database.Database}.
        @param writer: a L{gwsms.store.batch.BatchWriter} on C{db}.
        @param owner: this worker's index when several worker processes
            share the store (C{[gateway] workers > 1}): new messages are
            stored as its own, and L{due} returns only its own messages and
            those it claimed from a worker whose heartbeat stopped.  C{None}
            (one process): every due message, no claims.
        @param lease: seconds a L{heartbeat} keeps this worker's messages
            its own.
        """
        self.db = db
        self.writer = writer
        self.owner = owner
        self.lease = lease

    # -- hot path (group commit) ------------------------------------------

    def add(self, record: dict, now: float, *, key=None, window: float = 0.0,
            fragments_key: str | None = None, event: str | None = None,
            with_parts: bool = True):
        """
        Store a new message (and its C{parts_total} part rows).

        @param record: column values (see L{MESSAGE_COLUMNS}); the rest
            default.
        @param now: the time stamp.
        @param key: a L{dedup_key} (or a tuple of them); a message stored
            under one of them less than C{window} seconds ago makes this a
            duplicate.
        @param fragments_key: MO reassembly fragments to delete in the same
            transaction (the message replaces them).
        @param event: a history event to record (none by default: the
            row's C{created_at} says it; the hot path writes no history).
        @param with_parts: create the C{parts_total} part rows (MT).
        @return: Deferred (after commit) firing with C{(id, None)} for a new
            message or C{(id, row)} for a duplicate (the earlier message's
            row as a dict).
        """
        if self.owner is not None:
            record = dict(record, owner=self.owner)
        return self.writer.write(_insert, record, now, key, window, fragments_key, event,
                                 with_parts)

    def update(self, message_id: int, now: float, event: str | None = None, detail: str = "",
               only_if_state: str | None = None, **fields):
        """
        Change columns of a message and (when it changed) record an event.

        @param only_if_state: change it only when it is in this state.
        @return: Deferred (after commit) firing with the number of rows
            changed (0 or 1).
        """
        return self.writer.write(_update, message_id, now, fields, event, detail, only_if_state)

    def part_submitted(self, message_id: int, seq: int, smsc: str, smsc_message_id: str,
                       now: float, index: bool = True):
        """
        Record a part's submit_sm_resp id (and, with C{index}, index it
        for receipts); the message becomes C{submitted} with its last part.

        @return: Deferred firing with C{True}, or C{False} when that part
            had been recorded already.
        """
        return self.writer.write(_part_submitted, message_id, seq, smsc, smsc_message_id or "",
                                 now, index)

    def set_parts(self, message_id: int, now: float, parts_total: int, data_coding: int):
        """
        An MT message was split again for another connection (failover
        before any part was sent): new part count, part rows and coding.

        @return: Deferred firing with C{True}, or C{False} when a part had
            been submitted already (then nothing changes).
        """
        return self.writer.write(_set_parts, message_id, now, parts_total, data_coding)

    def receipt(self, smsc: str, message_id_text: str, state: str, final: bool,
                error: str | None, now: float):
        """
        Apply a delivery receipt.

        @return: Deferred firing with C{None} (unknown id) or a dict with
            C{message}, C{seq} and C{done} (see L{_receipt}).
        """
        return self.writer.write(_receipt, smsc, message_id_text, state, final, error, now)

    def add_fragment(self, key: str, seq: int, total: int, data_coding: int, payload: bytes,
                     now: float):
        """
        Store one part of a long MO message.

        @return: Deferred firing with C{False} when that part was stored
            already.
        """
        return self.writer.write(_add_fragment, key, seq, total, data_coding, payload, now)

    def barrier(self):
        """@return: a Deferred firing after everything written so far committed."""
        return self.writer.write(_nothing)

    # -- reads and maintenance -------------------------------------------

    def due(self, direction: str, now: float, limit: int = 500, after_id: int = 0):
        """
        Messages the queue runner should work on: C{queued}, next attempt due
        (with an C{owner}: its own, or claimed from a worker whose
        heartbeat stopped).

        @return: Deferred firing with a list of row dicts, by id.
        """
        if self.owner is not None:
            return self.db.run_interaction("claim due messages", _claim_due, direction, now,
                                           limit, after_id, self.owner)

        def query(txn):
            return [_row(r) for r in txn.execute(
                _SELECT + " WHERE state = 'queued' AND direction = ? AND next_attempt_at <= ?"
                " AND id > ? ORDER BY id LIMIT ?",
                (direction, now, after_id, limit)).fetchall()]

        return self.db.run_interaction("due messages", query)

    def heartbeat(self, now: float, pid: int = 0):
        """
        This worker is alive: its messages stay its own for C{lease}
        seconds (C{worker_leases}; see L{gwsms.workers.LeaseKeeper}).

        @param pid: the worker's process id, for the operator.
        @return: Deferred firing after the commit.
        """
        return self.db.run_interaction("worker heartbeat", _heartbeat, self.owner,
                                       now + self.lease, pid)

    def parts(self, message_id: int):
        """@return: Deferred firing with C{[(seq, state, smsc_message_id)]}."""
        return self.db.run_query(
            "SELECT seq, state, smsc_message_id FROM message_parts WHERE message_id = ?"
            " ORDER BY seq", (message_id,), desc="message parts")

    def parts_of(self, message_ids):
        """
        @return: Deferred firing with C{{message_id: [(seq, state,
            smsc_message_id)]}} for every id given (one query).
        """
        ids = [int(i) for i in message_ids]

        def query(txn):
            out: dict = {i: [] for i in ids}
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ", ".join("?" for _ in chunk)
                for mid, seq, state, smsc_id in txn.execute(
                        "SELECT message_id, seq, state, smsc_message_id FROM message_parts"
                        f" WHERE message_id IN ({marks}) ORDER BY message_id, seq",
                        chunk).fetchall():
                    out[mid].append((seq, state, smsc_id))
            return out

        return self.db.run_interaction("parts of messages", query)

    def get(self, message_id: int):
        """
        @return: Deferred firing with the row dict plus C{parts} (list of
            dicts) and C{events} (list of dicts), or C{None}.
        """
        def query(txn):
            row = txn.execute(_SELECT + " WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                return None
            out = _row(row)
            out["parts"] = [
                dict(zip(("seq", "state", "smsc_message_id", "updated_at", "error"), r))
                for r in txn.execute(
                    "SELECT seq, state, smsc_message_id, updated_at, error FROM message_parts"
                    " WHERE message_id = ? ORDER BY seq", (message_id,)).fetchall()
            ]
            out["events"] = [
                dict(zip(("at", "event", "detail"), r))
                for r in txn.execute(
                    "SELECT at, event, detail FROM message_events WHERE message_id = ?"
                    " ORDER BY id", (message_id,)).fetchall()
            ]
            return out

        return self.db.run_interaction("get message", query)

    def list(self, state: str | None = None, direction: str | None = None, limit: int = 50):
        """
        @return: Deferred firing with the newest matching row dicts first.
        """
        where, params = [], []
        if state:
            where.append("state = ?")
            params.append(state)
        if direction:
            where.append("direction = ?")
            params.append(direction)
        sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(int(limit))

        def query(txn):
            return [_row(r) for r in txn.execute(sql, params).fetchall()]

        return self.db.run_interaction("list messages", query)

    def fragments(self):
        """
        @return: Deferred firing with every stored MO fragment as
            C{(frag_key, seq, total, data_coding, payload, first_seen)}.
        """
        def query(txn):
            return [(k, s, t, dc, bytes(p), f) for k, s, t, dc, p, f in txn.execute(
                "SELECT frag_key, seq, total, data_coding, payload, first_seen"
                " FROM mo_fragments ORDER BY first_seen, frag_key, seq").fetchall()]

        return self.db.run_interaction("mo fragments", query)

    def drop_fragments(self, key: str):
        """Forget a reassembly (delivered partially or dropped)."""
        def drop(txn):
            return txn.execute("DELETE FROM mo_fragments WHERE frag_key = ?", (key,)).rowcount

        return self.writer.write(drop)

    def purge_dedup(self, before: float, chunk: int = DEDUP_PURGE_CHUNK,
                    max_chunks: int | None = None):
        """
        Forget duplicate keys older than C{before}, oldest first, at most
        C{chunk} per transaction: the keys are random, so each one deleted
        is about a page written, and one statement for a minute of keys at
        thousands of messages a second held the single writer (and so
        every MESSAGE and deliver_sm waiting for a commit) for seconds.

        @param max_chunks: stop after that many transactions (C{None}: go
            on until every key older than C{before} is gone).
        @return: Deferred[count].
        """
        return repeat_interaction(self.db, "purge dedup", _purge_dedup_chunk, chunk, before,
                                  most=max_chunks)

    def counts(self):
        """@return: Deferred firing with C{{(direction, state): count}}."""
        def query(txn):
            return {(d, s): n for d, s, n in txn.execute(
                "SELECT direction, state, COUNT(*) FROM messages GROUP BY direction, state"
            ).fetchall()}

        return self.db.run_interaction("message counts", query)
