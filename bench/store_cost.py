# -*- test-case-name: tests.test_bench_store_cost -*-
"""
What the SQLite store costs per SMPP -> SIP message, and how that grows
with the database.

Runs the MO lane's own writes (L{gwsms.store.lane.mo_lane_insert} for a
batch of new messages, L{gwsms.store.lane.mo_lane_delivered} for the
batch before it) on a fresh, migrated SQLite file with the gateway's
connection settings (WAL, synchronous=FULL), the way a group-commit batch
runs them: the batch's functions (in the gateway, in the reactor
thread), then its C{Transaction.later} statements, then C{COMMIT} (both
in the commit thread).  Prints the CPU time of this thread per message
for each of the three, per C{--every} messages, so the growth with the
database's size shows.

C{--keys} is an experiment on the duplicate keys (C{message_dedup}):
C{random} is what the gateway stores (a SHA-1 of the message's fields),
C{time-ordered} puts the time in front (new keys land at the end of the
index instead of on random pages; it breaks duplicate recognition, which
is why the gateway does not do it), C{none} stores no key at all.

  .venv/bin/python bench/store_cost.py [--count 300000] [--keys random]

Everything is in a temporary directory, removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from gwsms.store import lane, migrate  # noqa: E402
from gwsms.store.database import Transaction, open_database_sync  # noqa: E402
from gwsms.store.messages import MO, dedup_key  # noqa: E402

KEYS = ("random", "time-ordered", "none")


def values(n: int, now: float) -> tuple:
    """An MO row in L{lane.MO_LANE_COLUMNS} order, as the lane builds it."""
    row = {"direction": MO, "state": "queued", "created_at": now, "updated_at": now,
           "source_addr": "4915112345678", "source_ton": 1, "source_npi": 1,
           "dest_addr": "4930123", "dest_ton": 0, "dest_npi": 1, "smsc": "bench",
           "body": f"gwsms bench message {n}", "content_type": "text/plain",
           "data_coding": 0, "partial": 0, "next_attempt_at": now + 5.0,
           "expires_at": now + 86400.0, "owner": 0}
    return tuple(row[column] for column in lane.MO_LANE_COLUMNS)


def key(n: int, now: float, keys: str) -> str:
    found = dedup_key(MO, "bench", "4915112345678", "4930123", 0, b"message %d" % n)
    if keys == "time-ordered":
        return "%012x" % int(now * 1000) + found[12:]
    return found


def run(path: str, count: int, batch: int, every: int, keys: str, out=sys.stdout) -> list:
    """
    Store C{count} messages in batches of C{batch} into a new database at
    C{path}.

    @return: per C{every} messages, C{{"messages": stored so far,
        "batch_us": ..., "later_us": ..., "commit_us": ...}} (CPU
        microseconds of this thread per message in that stretch).
    """
    db = open_database_sync("sqlite:" + path)
    try:
        migrate.upgrade(db)
    finally:
        db.close()
    engine = db.engine
    conn = engine.connect()
    if keys == "none":
        conn.execute("DROP INDEX message_dedup_created")
        conn.execute("DROP TABLE message_dedup")
        conn.execute("CREATE TABLE message_dedup (dedup_key CHAR(40), message_id INTEGER,"
                     " created_at DOUBLE)")
    cursor = conn.cursor()
    report: list = []
    spent = [0.0, 0.0, 0.0]  # batch functions, later statements, commit
    previous: list = []
    done = 0
    while done < count:
        now = time.time()
        size = min(batch, count - done)
        later: list = []
        txn = Transaction(cursor, engine, later)
        start = time.thread_time()
        engine.begin(cursor)
        items = [(key(done + i, now, keys), values(done + i, now)) for i in range(size)]
        ids = lane.mo_lane_insert(txn, items, now, 600.0)
        if keys == "none":
            later[:] = [(sql, params) for sql, params in later if "message_dedup" not in sql]
        if previous:
            lane.mo_lane_delivered(txn, [(now, 200, "sip:bench@127.0.0.1", i) for i in previous])
        functions = time.thread_time()
        for sql, params in later:
            cursor.execute(sql, params)
        middle = time.thread_time()
        conn.commit()
        end = time.thread_time()
        spent[0] += functions - start
        spent[1] += middle - functions
        spent[2] += end - middle
        previous = ids
        before, done = done, done + size
        if done // every != before // every or done == count:
            stretch = done - (report[-1]["messages"] if report else 0)
            line = {"messages": done}
            for name, seconds in zip(("batch_us", "later_us", "commit_us"), spent):
                line[name] = round(seconds / stretch * 1e6, 1)
            report.append(line)
            out.write(json.dumps(line) + "\n")
            out.flush()
            spent = [0.0, 0.0, 0.0]
    cursor.close()
    conn.close()
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--count", type=int, default=300000, help="messages (default 300000)")
    parser.add_argument("--batch", type=int, default=25,
                        help="messages per commit (default 25, as at ~8,000/s)")
    parser.add_argument("--every", type=int, default=100000,
                        help="report every this many messages (default 100000)")
    parser.add_argument("--keys", choices=KEYS, default="random",
                        help="duplicate keys: random (the gateway's), time-ordered or none"
                             " (experiments)")
    args = parser.parse_args(argv)
    if args.count < 1 or args.batch < 1 or args.every < 1:
        parser.error("--count, --batch and --every must be at least 1")
    tmp = tempfile.mkdtemp(prefix="gwsms-store-cost-")
    try:
        run(os.path.join(tmp, "gwsms.sqlite3"), args.count, args.batch, args.every, args.keys)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
