# -*- test-case-name: tests.test_bench_micro -*-
"""
Micro-benchmarks of the hot pieces, as operations per second.

  .venv/bin/python bench/micro.py [--quick] [--json]

Runs the existing scripts (each with C{--json}; they belong to their
areas): C{bench/codec.py} (SMPP PDU encode/decode), C{bench/sip_codec.py}
(SIP parse/serialise), C{bench/text.py} (GSM encode, splitting,
reassembly); and, here, the store write batch: C{MessageStore.add} of an
MT message (with its dedup key and part row) for N messages in B{one}
transaction on a SQLite file (WAL, synchronous=FULL, as the gateway opens
it) in a temporary directory, for batch sizes 1, 40 and 500 -- the group
commit's cost per message.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

#: script -> (full arguments, quick arguments)
SCRIPTS = {
    "codec.py": ([], ["--number", "20000", "--repeat", "2"]),
    "sip_codec.py": ([], ["--seconds", "0.3"]),
    "text.py": ([], ["--number", "2000", "--repeat", "2"]),
}


def parse_script_output(name: str, stdout: str) -> dict:
    """
    Read a micro-benchmark script's C{--json} output.

    @param name: the script (for the error message).
    @return: its C{ops_per_second} dict (name -> ops/s).
    @raise ValueError: not JSON, or no C{ops_per_second} mapping of numbers.
    """
    try:
        data = json.loads(stdout)
    except ValueError as e:
        raise ValueError("%s printed no JSON (%s): %r" % (name, e, stdout[:120])) from None
    ops = data.get("ops_per_second") if isinstance(data, dict) else None
    if not isinstance(ops, dict) or not all(isinstance(v, (int, float)) for v in ops.values()):
        raise ValueError("%s JSON has no ops_per_second mapping of numbers" % (name,))
    return dict(ops)


def run_script(name: str, quick: bool, python: str = sys.executable, timeout: float = 300) -> dict:
    """
    Run one script with C{--json}.

    @return: C{{"ops_per_second": {...}}} or C{{"error": "..."}}.
    """
    path = os.path.join(HERE, name)
    if not os.path.exists(path):
        return {"error": "%s does not exist" % (name,)}
    full, short = SCRIPTS.get(name, ([], []))
    try:
        proc = subprocess.run([python, path, "--json"] + (short if quick else full), cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": "%s took more than %d s" % (name, timeout)}
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": "%s exited %d: %s" % (name, proc.returncode, tail)}
    try:
        return {"ops_per_second": parse_script_output(name, proc.stdout)}
    except ValueError as e:
        return {"error": str(e)}


class _CollectingWriter:
    """Stands in for the BatchWriter: collects the writes, the bench commits them."""

    def __init__(self):
        self.ops = []

    def write(self, fn, *args):
        from twisted.internet import defer

        self.ops.append((fn, args))
        return defer.Deferred()


def store_batch(batch_sizes=(1, 40, 500), messages: int = 2000) -> dict:
    """
    Time C{MessageStore.add} (an MT message with a dedup key and one part)
    committed in batches of each size on a fresh SQLite file.

    @param messages: messages per batch size.
    @return: C{{"store add, batch N": ops/s, ...}}.
    """
    sys.path.insert(0, ROOT)
    from gwsms.store.database import open_database_sync
    from gwsms.store.messages import MessageStore, dedup_key
    from gwsms.store.migrate import upgrade

    results = {}
    with tempfile.TemporaryDirectory(prefix="gwsms-bench-store-") as tmp:
        db = open_database_sync("sqlite:" + os.path.join(tmp, "bench.sqlite3"))
        try:
            failures = []
            upgrade(db).addErrback(failures.append)
            if failures:
                raise RuntimeError("migration failed: %s" % (failures[0].getErrorMessage(),))
            counter = 0
            for size in batch_sizes:
                writer = _CollectingWriter()
                store = MessageStore(db, writer)
                batches = max(1, messages // size)
                started = time.perf_counter()
                for _ in range(batches):
                    writer.ops = []
                    for _ in range(size):
                        counter += 1
                        record = {"direction": "mt", "source_addr": "4915112345678", "source_ton": 1,
                                  "source_npi": 1, "dest_addr": "491701234567", "dest_ton": 1,
                                  "dest_npi": 1, "smsc": "bench", "call_id": "call-%d" % counter,
                                  "body": "gwsms bench message %d" % counter}
                        store.add(record, time.time(), key=dedup_key("bench", counter), window=600.0)
                    ops = writer.ops
                    d = db.run_interaction("bench batch", lambda txn: [fn(txn, *a) for fn, a in ops])
                    d.addErrback(failures.append)
                    if failures:
                        raise RuntimeError("batch failed: %s" % (failures[0].getErrorMessage(),))
                elapsed = time.perf_counter() - started
                results["store add, batch %d" % size] = round(batches * size / elapsed)
        finally:
            db.close()
    return results


def run_all(quick: bool = False, python: str = sys.executable, out=None) -> dict:
    """
    Run every micro-benchmark.

    @param out: a stream for progress lines, or L{None}.
    @return: C{{benchmark: {"ops_per_second": {...}} | {"error": ...}}}.
    """
    results = {}
    for name in SCRIPTS:
        if out is not None:
            out.write("micro: %s ...\n" % (name,))
            out.flush()
        results[name[:-3]] = run_script(name, quick, python)
    if out is not None:
        out.write("micro: store write batch ...\n")
        out.flush()
    try:
        results["store"] = {"ops_per_second": store_batch(messages=500 if quick else 4000)}
    except Exception as e:  # report, never crash the whole bench
        results["store"] = {"error": "%s: %s" % (type(e).__name__, e)}
    return results


def format_micro(results: dict) -> str:
    """@return: one line per operation: C{benchmark  operation  ops/s}."""
    lines = []
    for bench, result in results.items():
        if "error" in result:
            lines.append("%-10s  %-28s  ERROR %s" % (bench, "", result["error"]))
            continue
        for op, value in result["ops_per_second"].items():
            lines.append("%-10s  %-28s  %12s ops/s" % (bench, op, "{:,}".format(int(value))))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="gwsms micro-benchmarks (ops/s)")
    parser.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    results = run_all(args.quick, out=None if args.json else sys.stderr)
    print(json.dumps(results, indent=2) if args.json else format_micro(results))
    return 0 if not any("error" in r for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
