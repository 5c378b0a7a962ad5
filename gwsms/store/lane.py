# -*- test-case-name: tests.test_store_lane -*-
"""
Bulk forms of the hot-path writes of L{gwsms.store.messages}, for the
lanes: SIP -> SMPP (L{gwsms.core.fastmt}) and, at the end, SMPP -> SIP
(L{gwsms.core.fastmo}).

They write exactly the rows the one-message functions write
(L{gwsms.store.messages._insert}, L{gwsms.store.messages._part_submitted})
for a whole group-commit batch at once: one C{SELECT} for the duplicate
keys of the batch and a few multi-row statements per table (L{insert_rows})
instead of four statements per message.  Their sizes are powers of two
(L{statement_rows}, L{_chunks}), so that the same few statements
stay prepared whatever the batch sizes.  On SQLite the batch holds the write lock
(C{BEGIN IMMEDIATE}), so the lane numbers the new rows itself from
C{sqlite_sequence} (and moves it on), and the multi-row C{INSERT}s run
in the commit thread (L{gwsms.store.database.Transaction.later}): nothing
can know the new ids before the commit, so nothing else in the batch can
depend on those rows.  The C{submit_sm_resp} updates of parts that get a
receipt index run at once, in order with everything else (a receipt in
the same batch must find them); the others are two C{UPDATE ... FROM
(VALUES ...)} statements run the same way, after the batch's functions.
Other engines take the one-message path.
"""

from __future__ import annotations

import sqlite3

from gwsms.core import receipts
from gwsms.store.messages import _MESSAGE_SUBMITTED, _PART_SUBMITTED, DEDUP_DELETE, \
    DEDUP_INSERT, MESSAGE_SUBMITTED_SET, PART_SUBMITTED_SET, PARTS_INSERT, _DEFAULTS, \
    _INSERTABLE, _insert, _part_submitted

#: the columns a record given to L{insert_many} may set
_RECORD_COLUMNS = frozenset(_INSERTABLE) - {"created_at", "updated_at"}
#: a multi-row insert of numbered messages (%s: the record's columns)
_INSERT_WITH_ID_HEAD = "INSERT INTO messages (id, created_at, updated_at, %s)"
#: most keys in one IN (...) list
_CHUNK = 512
#: most bound values in one statement (SQLite >= 3.32 allows 32766)
_MAX_VALUES = 30000
#: UPDATE ... FROM needs SQLite 3.33
_UPDATE_FROM = sqlite3.sqlite_version_info >= (3, 33, 0)
#: the update of a single-part message for its submit_sm_resp: as
#: L{_part_submitted}'s, and a no-op once its one part was counted
_MESSAGES_SUBMITTED = _MESSAGE_SUBMITTED + " AND parts_done = 0"
#: the same SETs from a VALUES list (id or smsc, time, message id)
_PARTS_FROM_SET = PART_SUBMITTED_SET.format(mid="v.column1", now="v.column2")
_MESSAGES_FROM_SET = MESSAGE_SUBMITTED_SET.format(smsc="v.column1", now="v.column2")


def statement_rows(count: int, limit: int) -> int:
    """
    How many rows a padded multi-row statement (an update, an IN list) for
    C{count} rows is written for: the next power of two, at most C{limit}.
    The rows beyond C{count} are NULLs, which match nothing, so that a few
    statements serve every batch size and stay prepared in the
    connection's cache (L{gwsms.store.sqlitecommit.STATEMENT_CACHE})
    instead of one statement, prepared anew, per size.
    """
    return min(1 << (count - 1).bit_length(), limit)


def _chunks(count: int, limit: int, padded: bool):
    """
    The multi-row statements for C{count} rows, as C{(rows taken, rows of
    the statement)}: chunks of C{limit}, then the rest padded to
    L{statement_rows} (C{padded}) or, since an insert cannot be padded,
    in its powers of two, largest first: few statements, each prepared once.
    """
    while count >= limit:
        yield limit, limit
        count -= limit
    if padded:
        if count:
            yield count, statement_rows(count, limit)
        return
    while count:
        size = 1 << (count.bit_length() - 1)
        yield size, size
        count -= size


#: statement texts by (head, tail, width, rows): a few per kind of statement
_TEXTS: dict = {}


def _text(before: str, after: str, width: int, count: int) -> str:
    key = (before, after, width, count)
    text = _TEXTS.get(key)
    if text is None:
        text = f"{before} VALUES " + ",".join(["(" + ",".join("?" * width) + ")"] * count) + after
        if len(_TEXTS) >= 1024:
            _TEXTS.clear()
        _TEXTS[key] = text
    return text


def _later_values(txn, before: str, after: str, rows: list, padded: bool) -> None:
    """
    C{before VALUES (...),(...) after} for C{rows} (tuples of one width) in
    the statements of L{_chunks}, a padding row being all NULLs, run by
    L{Transaction.later}: a few statements, not one per row.
    """
    if not rows:
        return
    width = len(rows[0])
    start = 0
    for taken, size in _chunks(len(rows), max(1, _MAX_VALUES // width), padded):
        params = [value for row in rows[start:start + taken] for value in row]
        start += taken
        if size > taken:
            params += [None] * (width * (size - taken))
        txn.later(_text(before, after, width, size), params)


def insert_rows(txn, head: str, rows: list) -> None:
    """
    Insert C{rows} with multi-row C{VALUES} statements run by
    L{Transaction.later}.  C{head} (C{INSERT INTO ...}) becomes C{INSERT OR
    FAIL INTO ...}, as L{update_from_values}' updates are C{OR FAIL}: SQLite
    then keeps no statement journal (a copy of every page a multi-row
    statement changes, to undo that statement alone), which the lanes never
    need: an error fails the whole batch, and its transaction is rolled back.
    """
    if not head.startswith("INSERT INTO "):
        raise ValueError("insert_rows: %r is not an INSERT INTO head" % (head[:40],))
    _later_values(txn, "INSERT OR FAIL" + head[len("INSERT"):], "", rows, False)


def update_from_values(txn, table: str, sets: str, where: str, rows: list) -> None:
    """
    C{UPDATE table SET sets FROM (VALUES rows) AS v WHERE where} run by
    L{Transaction.later}, one statement per chunk of C{rows} (the columns
    of C{v} are C{column1}, C{column2}, ...; needs SQLite 3.33), padded to
    L{statement_rows} with NULL rows: C{where} must compare a column of
    C{v} with C{=}, so that they match nothing.
    """
    _later_values(txn, f"UPDATE OR FAIL {table} SET {sets} FROM (", f") AS v WHERE {where}",
                  rows, True)


def _select_in(txn, sql: str, values: list) -> list:
    """
    Rows of C{sql} (with one C{IN (%s)}) for C{values}, in the padded
    chunks of L{_chunks} (a NULL matches nothing).
    """
    rows: list = []
    start = 0
    for taken, size in _chunks(len(values), _CHUNK, True):
        chunk = values[start:start + taken] + [None] * (size - taken)
        start += taken
        rows += txn.execute(sql % ",".join("?" * size), chunk).fetchall()
    return rows


def _known_keys(txn, keys) -> dict:
    """@return: C{{dedup key: (message id, created_at)}} of those stored."""
    return {key: (message_id, created_at) for key, message_id, created_at in _select_in(
        txn, "SELECT dedup_key, message_id, created_at FROM message_dedup"
             " WHERE dedup_key IN (%s)", list(keys))}


def _next_id(txn):
    """
    @return: C{(first free message id, sequence row or None)}: in a SQLite
        write transaction the ids after the AUTOINCREMENT sequence are ours
        until L{_take_ids} moves it on.
    """
    sequence = txn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
    return (sequence[0] if sequence else 0) + 1, sequence


def _take_ids(txn, sequence, last_id: int) -> None:
    """Move the sequence to C{last_id}: AUTOINCREMENT rows go after ours."""
    if sequence is None:
        txn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('messages', ?)", (last_id,))
    else:
        txn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'messages'", (last_id,))


def _check_columns(names) -> None:
    """@raise ValueError: naming what in C{names} is not a column a record may set."""
    unknown = set(names) - _RECORD_COLUMNS
    if unknown:
        raise ValueError("insert_many: not a column a record may set: "
                         + ", ".join(sorted(unknown)))


def insert_many(txn, items, window: float) -> list:
    """
    Store new MT messages (with their part rows and dedup keys), like
    C{_insert(txn, record, now, key, window, None, None, True)} for each.

    @param items: C{[(record, key, now)]}; a record's keys are columns of
        C{messages} (not C{id}, C{created_at}, C{updated_at}: those are
        given here), the others take their defaults.
    @raise ValueError: a record names something else.
    @return: C{[(id, None)]} for new messages, C{(id, row)} for duplicates,
        in the order of C{items}.
    """
    if txn.engine.dialect != "sqlite" or len(items) < 2:
        for record, _key, _now in items:
            _check_columns(record)
        return [_insert(txn, record, now, key, window, None, None, True)
                for record, key, now in items]
    found = _known_keys(txn, {key for _record, key, _now in items})
    next_id, sequence = _next_id(txn)
    results: list = [None] * len(items)
    # the rows by the record's columns (the lane's records all have the
    # same): only those are bound, the table's defaults fill the rest
    new_rows: dict = {}
    parts, dedups = [], []
    first: dict = {}  # key -> (id, record, time) of the batch's own new messages
    for index, (record, key, now) in enumerate(items):
        old = found.get(key)
        if old is not None:
            if old[1] >= now - window:
                # stored earlier and still in the window: as _insert answers
                results[index] = _insert(txn, record, now, key, window, None, None, True)
                continue
            txn.execute(DEDUP_DELETE, (key,))
            del found[key]
        mine = first.get(key)
        if mine is not None:
            # the same message twice in one batch: the second is a duplicate
            message_id, row, created = mine
            row = dict(_DEFAULTS, **row)
            row.update(id=message_id, created_at=created, updated_at=created)
            results[index] = (message_id, row)
            continue
        first[key] = (next_id, record, now)
        columns = tuple(record)
        rows = new_rows.get(columns)
        if rows is None:
            _check_columns(columns)
            rows = new_rows[columns] = []
        rows.append((next_id, now, now) + tuple(record.values()))
        total = record.get("parts_total", 1)
        if total == 1:
            parts.append((next_id, 1, "pending", now))
        else:
            parts.extend((next_id, n, "pending", now) for n in range(1, total + 1))
        dedups.append((key, next_id, now))
        results[index] = (next_id, None)
        next_id += 1
    if new_rows:
        _take_ids(txn, sequence, next_id - 1)
        for columns, rows in new_rows.items():
            insert_rows(txn, _INSERT_WITH_ID_HEAD % ", ".join(columns), rows)
        insert_rows(txn, PARTS_INSERT, parts)
        insert_rows(txn, DEDUP_INSERT, dedups)
    return results


def submitted_many(txn, items) -> list:
    """
    Record the C{submit_sm_resp} id of single-part messages, like
    C{_part_submitted(txn, id, 1, smsc, smsc_message_id, now, index)} for
    each.

    @param items: C{[(message_id, smsc, smsc_message_id, now, index)]}.
    @return: C{None} for each item.
    """
    if txn.engine.dialect != "sqlite" or len(items) < 2:
        for message_id, smsc, smsc_message_id, now, index in items:
            _part_submitted(txn, message_id, 1, smsc, smsc_message_id, now, index)
        return [None] * len(items)
    count = len(items)
    # without a receipt index to write, nothing later in this batch looks
    # at these rows: the updates can wait for the commit thread
    quiet = [item for item in items if not (item[4] and item[2])] if _UPDATE_FROM else None
    if quiet:
        _submitted_later(txn, quiet)
        items = [item for item in items if item[4] and item[2]]
        if not items:
            return [None] * count
    # only parts without an id yet (a second recording is a no-op, as in
    # _part_submitted: no second increment, no second receipt index)
    ids = [item[0] for item in items]
    fresh = {row[0] for row in _select_in(
        txn, "SELECT message_id FROM message_parts WHERE seq = 1 AND smsc_message_id = ''"
             " AND message_id IN (%s)", ids)}
    items = [item for item in items if item[0] in fresh]
    if not items:
        return [None] * count
    txn.executemany(
        _PART_SUBMITTED,
        [(mid, now, message_id, 1) for message_id, _smsc, mid, now, _index in items])
    txn.executemany(
        _MESSAGES_SUBMITTED,
        [(smsc, now, message_id) for message_id, smsc, _mid, now, _index in items])
    _receipt_ids(txn, items)
    return [None] * count


def _submitted_later(txn, items) -> None:
    """
    The two updates of L{submitted_many} for C{items} as one statement
    per table (C{UPDATE ... FROM (VALUES ...)}), run by
    L{Transaction.later}; the C{WHERE} clauses keep a second recording a
    no-op, as in L{_part_submitted}.
    """
    update_from_values(
        txn, "message_parts", _PARTS_FROM_SET,
        "message_parts.message_id = v.column3 AND message_parts.seq = 1"
        " AND message_parts.smsc_message_id = ''",
        [(mid, now, message_id) for message_id, _smsc, mid, now, _index in items])
    update_from_values(
        txn, "messages", _MESSAGES_FROM_SET,
        "messages.id = v.column3 AND messages.parts_done = 0",
        [(smsc, now, message_id) for message_id, smsc, _mid, now, _index in items])


def _receipt_ids(txn, items) -> None:
    receipt_rows = [
        (smsc, key[:72], variant, message_id, 1)
        for message_id, smsc, mid, _now, index in items if index and mid
        for variant, key in enumerate(receipts.canonical_ids(mid))
    ]
    if receipt_rows:
        # at once, not later: a receipt in the same batch must find them
        txn.executemany(
            "INSERT INTO receipt_ids (smsc, id_key, variant, message_id, seq)"
            " VALUES (?, ?, ?, ?, ?)", receipt_rows)


# -- MO lane (gwsms.core.fastmo): batched writes without Deferreds ------------
#
# Written by the SMPP -> SIP lane through BatchWriter.write_batch: one call
# per batch of deliver_sm (not per message), no history rows (the row's
# created_at / updated_at / sip_status say what happened, as on the slow
# path's success), the same message_dedup keys as L{_insert}.

#: the columns the MO lane writes; the others take their schema defaults
#: (the same values as L{_DEFAULTS})
MO_LANE_COLUMNS = (
    "direction", "state", "created_at", "updated_at", "source_addr", "source_ton",
    "source_npi", "dest_addr", "dest_ton", "dest_npi", "smsc", "body", "content_type",
    "data_coding", "partial", "next_attempt_at", "expires_at", "owner",
)
_MO_LANE_INSERT = (
    f"INSERT INTO messages ({', '.join(MO_LANE_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in MO_LANE_COLUMNS)})"
)
_MO_LANE_INSERT_HEAD = f"INSERT INTO messages (id, {', '.join(MO_LANE_COLUMNS)})"
#: the columns a 2xx sets (as the slow path's success)
_MO_DELIVERED_SET = (
    "updated_at = {now}, state = 'delivered', sip_status = {status},"
    " attempts = attempts + 1, sip_to = {to}, last_error = ''"
)
_MO_LANE_DELIVERED = (
    "UPDATE messages SET " + _MO_DELIVERED_SET.format(now="?", status="?", to="?")
    + " WHERE id = ?"
)
_MO_DELIVERED_FROM_SET = _MO_DELIVERED_SET.format(
    now="v.column1", status="v.column2", to="v.column3")


def mo_lane_insert(txn, items, now: float, window: float) -> list:
    """
    Store new MO messages, each under its duplicate key (see L{_insert}:
    a key stored less than C{window} seconds ago, whose message still
    exists, makes the message a duplicate and nothing is stored).

    On SQLite the batch holds the write lock (C{BEGIN IMMEDIATE}), so the
    new rows are numbered from C{sqlite_sequence} and written with
    multi-row statements (L{insert_rows}); other engines insert them one
    by one.

    @param items: C{[(dedup key, values in L{MO_LANE_COLUMNS} order)]}.
    @param now: the time the keys are stored with.
    @return: per item, the new message id, or C{None} for a duplicate.
    """
    known = _known_keys(txn, {key for key, _values in items})
    sqlite = txn.engine.dialect == "sqlite"
    next_id = sequence = 0
    if sqlite:
        next_id, sequence = _next_id(txn)
    out: list = [None] * len(items)
    fresh: list = []
    new_keys: list = []
    seen: set = set()
    later: list = []
    for index, (key, values) in enumerate(items):
        if key in known:
            later.append(index)  # an old key: checked one by one below
            continue
        if key in seen:
            continue  # a second copy in this batch: a duplicate
        seen.add(key)
        if sqlite:
            fresh.append((next_id,) + tuple(values))
            message_id = next_id
            next_id += 1
        else:
            message_id = txn.execute(_MO_LANE_INSERT, values).lastrowid
        new_keys.append((key, message_id, now))
        out[index] = message_id
    if fresh:
        # the rows go in with multi-row statements in the commit thread
        # (Transaction.later): nothing can know these ids before the commit
        _take_ids(txn, sequence, next_id - 1)
        insert_rows(txn, _MO_LANE_INSERT_HEAD, fresh)
    for index in later:
        key, values = items[index]
        if key in seen:
            continue
        seen.add(key)
        found_id, created_at = known[key]
        if created_at >= now - window and txn.execute(
                "SELECT 1 FROM messages WHERE id = ?", (found_id,)).fetchone():
            continue
        txn.execute(DEDUP_DELETE, (key,))
        message_id = txn.execute(_MO_LANE_INSERT, values).lastrowid
        new_keys.append((key, message_id, now))
        out[index] = message_id
    if new_keys:
        if sqlite:
            insert_rows(txn, DEDUP_INSERT, new_keys)
        else:
            txn.executemany(DEDUP_INSERT + " VALUES (?, ?, ?)", new_keys)
    return out


def mo_lane_delivered(txn, rows) -> int:
    """
    MO messages the SIP target answered with a 2xx: C{delivered}, with the
    same columns as the slow path writes (state, sip_status, attempts + 1,
    sip_to, empty last_error), no history row.

    On SQLite (3.33 or later) the rows become C{UPDATE ... FROM (VALUES
    ...)} statements run by L{Transaction.later}, in the commit thread of
    a batch: nothing else in a batch reads these rows after a 2xx (a
    message is delivered once, long after its insert committed).  A batch
    naming one message twice (an C{attempts + 1} each) goes row by row.

    @param rows: C{[(now, status, sip_to, message id)]}.
    @return: the number of rows.
    """
    if _UPDATE_FROM and txn.engine.dialect == "sqlite" and len(rows) > 1 and \
            len({row[3] for row in rows}) == len(rows):
        update_from_values(txn, "messages", _MO_DELIVERED_FROM_SET, "messages.id = v.column4",
                           rows)
    else:
        txn.executemany(_MO_LANE_DELIVERED, rows)
    return len(rows)
