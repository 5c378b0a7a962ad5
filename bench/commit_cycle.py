# -*- test-case-name: tests.test_bench_commit_cycle -*-
"""
Where the group-commit cycle's time goes, in the gateway's own process.

Runs C{bench/profile_mo.py} (C{mo}: SMPP -> SIP) or C{bench/profile_mt.py}
(C{mt}: SIP -> SMPP) with every batch of the SQLite batch runner
(L{gwsms.store.sqlitecommit.SqliteBatches}) timed, and prints per batch, as
the median, the mean, the 99th percentile and the largest, in milliseconds
(the tail is where a slow C{COMMIT}, e.g. a WAL checkpoint, shows):

  - C{statements}: C{BEGIN} and the batch's functions, in the reactor thread;
  - C{queued}: until the commit thread takes it;
  - C{later}: the deferred statements (L{gwsms.store.database.Transaction.
    later}), in the commit thread, and C{later_cpu}, that thread's CPU
    time in them (the rest is waiting for the interpreter lock);
  - C{commit}: C{COMMIT} (the C{fsync}), in the commit thread;
  - C{handoff}: from the commit thread's report until the reactor thread
    runs it;
  - C{callbacks}: the callers' callbacks (answers, the next writes);
  - C{cycle}: from one batch's start to the next one's.

SMPP -> SIP, the SMSC sends its window of deliver_sm and waits for their
answers, which go out after the commit: the rate is the window over the
time a deliver_sm is outstanding, of which this cycle is part.  (A wider
window carries little more: the reactor thread is then the limit,
C{bench/README.md}.)

  .venv/bin/python bench/commit_cycle.py mo --rate 10000 --count 100000
  .venv/bin/python bench/commit_cycle.py mt --rate 6000 --count 60000 --sipp-nd

The arguments after the direction are the profile script's.  Not part of
C{make bench}: a tool for the profile-driven pass of issue 5.
"""

from __future__ import annotations

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from gwsms.store import sqlitecommit  # noqa: E402
from ladder import percentile  # noqa: E402

#: the fields of a record, in order (perf_counter seconds), then the
#: commit thread's CPU seconds in the deferred statements
FIELDS = ("start", "queued", "taken", "later_done", "committed", "reported", "called_back")
#: the phases printed: (name, from field, to field)
PHASES = (("statements", "start", "queued"), ("queued", "queued", "taken"),
          ("later", "taken", "later_done"), ("commit", "later_done", "committed"),
          ("handoff", "committed", "reported"), ("callbacks", "reported", "called_back"))
#: the lines of the report, in order
REPORTED = ("statements", "queued", "later", "later_cpu", "commit", "handoff", "callbacks",
            "cycle")


class _Later(list):
    """A batch's deferred statements; notes when the commit thread starts and ends them."""

    def __init__(self, statements, times: dict):
        super().__init__(statements)
        self.times = times

    def __iter__(self):
        self.times["taken"] = time.perf_counter()
        cpu = time.thread_time()
        yield from list.__iter__(self)
        self.times["later_done"] = time.perf_counter()
        self.times["later_cpu"] = time.thread_time() - cpu


class _Reactor:
    """The runner's reactor, noting when the commit thread reports."""

    def __init__(self, reactor):
        self._reactor = reactor

    def __getattr__(self, name):
        return getattr(self._reactor, name)

    def callFromThread(self, f, *args, **kw):  # noqa: N802 (Twisted's name)
        times = getattr(f, "times", None)
        if times is not None:
            times["committed"] = time.perf_counter()
        return self._reactor.callFromThread(f, *args, **kw)


class _Jobs:
    """The runner's side of the commit thread's queue, timing each job put into it."""

    def __init__(self, jobs, runner, records: list):
        self._jobs = jobs
        self._runner = runner
        self._records = records

    def put(self, job) -> None:
        if job is not None:
            conn, cursor, later, result, done = job
            times = self._runner.times
            self._runner.times = {}
            times["queued"] = time.perf_counter()
            records = self._records

            def reported(ok, value):
                times["reported"] = time.perf_counter()
                try:
                    done(ok, value)
                finally:
                    times["called_back"] = time.perf_counter()
                    if len(times) == len(FIELDS) + 1:
                        records.append(tuple(times[field] for field in FIELDS)
                                       + (times["later_cpu"],))

            reported.times = times
            job = (conn, cursor, _Later(later, times), result, reported)
        self._jobs.put(job)


def instrument(records: list):
    """
    Time every batch of L{sqlitecommit.SqliteBatches} created from now on,
    appending a tuple of L{FIELDS} and the C{later} CPU seconds to
    C{records} when its callbacks ran.

    @return: a callable that undoes it.
    """
    cls = sqlitecommit.SqliteBatches
    original_init, original_next, original_connection = cls.__init__, cls._next, cls._connection

    def __init__(self, engine, reactor, *args, **kw):  # noqa: N807
        original_init(self, engine, _Reactor(reactor), *args, **kw)
        self.times = {}

    def _next(self):
        if self._running:
            return original_next(self)
        self.times = {"start": time.perf_counter()}
        original_next(self)
        if not self._running:
            self.times = {}  # nothing went to the commit thread

    def _connection(self):
        fresh = self._conn is None
        conn = original_connection(self)
        if fresh:  # the commit thread keeps reading the queue itself
            self._jobs = _Jobs(self._jobs, self, records)
        return conn

    cls.__init__, cls._next, cls._connection = __init__, _next, _connection

    def undo():
        cls.__init__, cls._next, cls._connection = (
            original_init, original_next, original_connection)
    return undo


def summarise(records: list, skip: float = 0.25) -> dict:
    """
    @param records: tuples of L{FIELDS} and the C{later} CPU seconds, in
        the order the batches ran.
    @param skip: the fraction of the first batches left out (start-up).
    @return: C{{phase: (median, mean, p99, max; ms)}} for L{PHASES}, C{later_cpu}
        and C{cycle}, plus C{batches}; C{{}} without records.
    """
    kept = records[int(len(records) * skip):]
    if not kept:
        return {}
    index = {field: n for n, field in enumerate(FIELDS)}
    summary: dict = {"batches": len(kept)}

    def stats(values):
        ordered = sorted(values)
        return (round(ordered[len(ordered) // 2] * 1e3, 3),
                round(sum(ordered) / len(ordered) * 1e3, 3),
                round(percentile(ordered, 99) * 1e3, 3),
                round(ordered[-1] * 1e3, 3))

    for name, begin, end in PHASES:
        summary[name] = stats([r[index[end]] - r[index[begin]] for r in kept])
    summary["later_cpu"] = stats([r[len(FIELDS)] for r in kept])
    if len(kept) > 1:
        summary["cycle"] = stats([b[0] - a[0] for a, b in zip(kept, kept[1:])])
    return summary


def report(summary: dict, out=sys.stdout) -> None:
    if not summary:
        out.write("commit cycle: no batch recorded\n")
        return
    out.write("commit cycle over %d batches (ms, median / mean / p99 / max):\n"
              % summary["batches"])
    for name in REPORTED:
        if name in summary:
            out.write("  %-10s %8.3f / %8.3f / %8.3f / %8.3f\n" % ((name,) + summary[name]))


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("mo", "mt"):
        sys.stderr.write("usage: commit_cycle.py mo|mt [profile_mo.py / profile_mt.py arguments]\n")
        return 2
    direction, rest = argv[0], argv[1:]
    if direction == "mo":
        import profile_mo as profile
    else:
        import profile_mt as profile
    records: list = []
    undo = instrument(records)
    try:
        code = profile.main(rest)
    finally:
        undo()
    report(summarise(records))
    return code


if __name__ == "__main__":
    sys.exit(main())
