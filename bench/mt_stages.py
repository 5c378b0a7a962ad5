# -*- test-case-name: tests.test_bench_mt_stages -*-
"""
Where a SIP -> SMPP message's time goes, in the gateway's own process.

Runs C{bench/profile_mt.py} with the MT lane (L{gwsms.core.fastmt}) timed
per message and prints, as p50 / p90 / p99 in milliseconds, the stages of
every MESSAGE answered 202:

  - C{wait}: from the lane taking the datagram until its write batch's
    statements run (the batch before it is committing);
  - C{store}: from there until the lane's callback (the rest of the
    batch's statements, C{COMMIT} in the commit thread, the hand-back);
  - C{smsc}: from there until the C{submit_sm_resp} is read (the SMPP
    window's queue, the round trip);
  - C{total}: from the lane taking it until the 202 is sent.

Not counted: the time the datagram waited in the socket before the
reactor read it (sipp's own response times, which C{profile_mt.py}
prints, hold it).  It also prints the reactor thread's CPU time per
message in three places: reading SIP datagrams (the lane), reading SMPP
(the C{submit_sm_resp}, the 202s sent), and the commit callbacks (the
C{submit_sm} sent, the next write batch's statements).

  .venv/bin/python bench/mt_stages.py --rate 6000 --count 90000 --sipp-nd

With C{--windows} it also cuts the run into 100 ms windows (by the time
each message was taken) and sets the windows holding a message over 25 ms
(the p99 target of issue 5 at 8,000/s) next to the others: the reactor
thread's CPU time in the window, as a share of it, and per message taken
in it for each of the three places, and the box's speed then, from
C{bench/boxspeed.py --every 0.02} run in a process of its own (L{windows},
L{report_windows}).

The other arguments are C{profile_mt.py}'s.  Not part of C{make bench}: a tool
for the profile-driven pass of issue 5, like C{bench/commit_cycle.py}.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

import ladder  # noqa: E402
from gwsms.core import fastmt  # noqa: E402
from gwsms.sip import wire  # noqa: E402
from gwsms.smpp import protocol  # noqa: E402
from gwsms.store import batch  # noqa: E402

#: the stages printed: (name, from mark, to mark); the marks of a message
#: are, in order: taken, statements, stored, answered (the response read),
#: sent (the 202)
STAGES = (("wait", 0, 1), ("store", 1, 2), ("smsc", 2, 3), ("total", 0, 4))
#: where the reactor thread's CPU time is measured: (name, class, method)
PARTS = (("sip", wire.SipDatagramProtocol, "datagramReceived"),
         ("smpp", protocol.SMPPProtocol, "dataReceived"),
         ("commit", batch.BatchWriter, "_committed"))


class Recorder:
    """
    The marks of the messages in flight and the stage times of those done.

    @ivar done: C{[(taken, statements, stored, answered, sent)]} of the
        messages answered after their C{submit_sm_resp}.
    @ivar taken: the messages the lane took.
    @ivar cpu: C{{part: thread CPU seconds}} (L{PARTS}).
    @ivar polls: C{[(clock(), reactor thread CPU seconds)]} at each of the
        reactor's polls (L{watch_polls}).
    @ivar calls: C{None}, or (C{keep_calls}) C{[(clock(), part, CPU
        seconds)]} of each timed call of L{PARTS}, for L{windows}.
    """

    def __init__(self, clock=time.monotonic, keep_calls: bool = False):
        # time.monotonic: the clock of bench/boxspeed.py's series, in
        # another process
        self.clock = clock
        self.open: dict = {}
        self.batches: dict = {}
        self.done: list = []
        self.taken = 0
        self.cpu = {name: 0.0 for name, _cls, _method in PARTS}
        self.polls: list = []
        self.calls: list | None = [] if keep_calls else None


def instrument(recorder: Recorder):
    """
    Time the MT lane's messages (L{Recorder}) from now on.

    @return: a callable that undoes it.
    """
    lane = fastmt.FastMtLane
    saved = [(lane, name, getattr(lane, name))
             for name in ("_prepare", "_stored_batch", "submitted", "_answer")]
    saved.append((fastmt, "insert_many", fastmt.insert_many))
    saved += [(cls, method, getattr(cls, method)) for _name, cls, method in PARTS]
    originals = {(owner, name): value for owner, name, value in saved}
    clock = recorder.clock
    marks, batches = recorder.open, recorder.batches

    def _prepare(self, *args):
        txn = originals[lane, "_prepare"](self, *args)
        if txn is not None:
            recorder.taken += 1
            marks[txn] = [clock()]
        return txn

    def insert_many(txn, items, window):
        batches[id(items)] = clock()
        return originals[fastmt, "insert_many"](txn, items, window)

    def _stored_batch(self, inserts, ok, results):
        now = clock()
        started = batches.pop(id(inserts), None)
        for txn in inserts.owners:
            times = marks.get(txn)
            if times is not None and started is not None:
                times += (started, now)
        return originals[lane, "_stored_batch"](self, inserts, ok, results)

    def submitted(self, txn, outcome):
        times = marks.get(txn)
        if times is not None:
            times.append(clock())
        return originals[lane, "submitted"](self, txn, outcome)

    def _answer(self, txn, answer):
        times = marks.pop(txn, None)
        pending = txn.echo is not None
        result = originals[lane, "_answer"](self, txn, answer)
        if pending and times is not None and len(times) == 4:
            times.append(clock())
            recorder.done.append(tuple(times))
        return result

    def cpu_of(name, cls, method):
        original = originals[cls, method]
        thread_time = time.thread_time

        def timed(*args):
            started = thread_time()
            try:
                return original(*args)
            finally:
                took = thread_time() - started
                recorder.cpu[name] += took
                if recorder.calls is not None:
                    recorder.calls.append((clock(), name, took))
        return timed

    lane._prepare, lane._stored_batch = _prepare, _stored_batch
    lane.submitted, lane._answer = submitted, _answer
    fastmt.insert_many = insert_many
    for name, cls, method in PARTS:
        setattr(cls, method, cpu_of(name, cls, method))

    def undo():
        for owner, name, value in saved:
            setattr(owner, name, value)
    return undo


def watch_polls(recorder: Recorder, timer_class):
    """
    Note the time and the reactor thread's CPU time at each poll of the
    reactor (C{timer_class}: C{profile_mt.PollTimer}) in C{recorder.polls}.

    @return: a callable that undoes it.
    """
    original = timer_class.poll
    clock, polls, thread_time = recorder.clock, recorder.polls, time.thread_time

    def poll(self, *args):
        polls.append((clock(), thread_time()))
        return original(self, *args)

    timer_class.poll = poll

    def undo():
        timer_class.poll = original
    return undo


def windows(done: list, polls: list, probes: list, width: float = 0.1, calls=()) -> list:
    """
    Cut a run into windows of C{width} seconds, by the time each message
    was taken.

    @param done: L{Recorder.done}; @param polls: L{Recorder.polls}.
    @param probes: C{[(time, ms)]} of C{bench/boxspeed.py --every} on the
        same clock.
    @param calls: L{Recorder.calls}.
    @return: C{[{"start" (seconds from the first message), "messages",
        "longest" (seconds, taken to the 202), "cpu" (the reactor thread's
        CPU seconds between the polls in the window, over C{width}),
        "box" (the probes' median ms, None without any), "parts" (C{{part:
        CPU seconds of its calls that began in the window}})}]}, in
        order, windows without messages left out.
    """
    if not done:
        return []
    origin = min(times[0] for times in done)
    slots: dict = {}
    for times in done:
        index = int((times[0] - origin) // width)
        entry = slots.get(index)
        if entry is None:
            entry = slots[index] = {"start": round(index * width, 3), "messages": 0,
                                    "longest": 0.0, "cpu": 0.0, "box": [],
                                    "parts": {name: 0.0 for name, _cls, _method in PARTS}}
        entry["messages"] += 1
        entry["longest"] = max(entry["longest"], times[4] - times[0])

    def window(at):
        """The window of a time, None before the first message or in a window without any."""
        return slots.get(int((at - origin) // width)) if at >= origin else None

    for (_at, before), (at, after) in zip(polls, polls[1:]):
        entry = window(at)
        if entry is not None:
            entry["cpu"] += (after - before) / width
    for at, ms in probes:
        entry = window(at)
        if entry is not None:
            entry["box"].append(ms)
    for at, name, took in calls:
        entry = window(at)
        if entry is not None:
            entry["parts"][name] += took
    for entry in slots.values():
        entry["box"] = statistics.median(entry["box"]) if entry["box"] else None
    return [slots[index] for index in sorted(slots)]


def report_windows(rows: list, out=sys.stdout, threshold: float = 0.025, width: float = 0.1,
                   listed: int = 20) -> dict:
    """
    Print how the windows with a message over C{threshold} seconds differ
    from the others (L{windows}), and list up to C{listed} of them.

    @return: C{{"windows", "slow", "cpu": (slow, others), "box": (slow,
        others), "parts": {part: (slow, others)}}}: medians (the parts' in
        microseconds per message), None where there is nothing to take
        one of.
    """
    def median(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    slow = [row for row in rows if row["longest"] > threshold]
    rest = [row for row in rows if row["longest"] <= threshold]
    summary = {"windows": len(rows), "slow": len(slow),
               "cpu": tuple(median([row["cpu"] for row in group]) for group in (slow, rest)),
               "box": tuple(median([row["box"] for row in group]) for group in (slow, rest)),
               "parts": {name: tuple(median([row["parts"][name] / row["messages"] * 1e6
                                             for row in group]) for group in (slow, rest))
                         for name, _cls, _method in PARTS}}

    def pair(values, fmt):
        return " / ".join("-" if v is None else fmt % v for v in values)

    out.write("%d ms windows: %d, %d of them with a message over %d ms\n"
              % (width * 1000, summary["windows"], summary["slow"], threshold * 1000))
    out.write("  reactor thread CPU, %% of the window (median, those / the others): %s\n"
              % pair([None if v is None else v * 100 for v in summary["cpu"]], "%.0f"))
    out.write("  box probe, ms per 1,000,000 iterations, larger is slower (median, those /"
              " the others): %s\n" % pair(summary["box"], "%.1f"))
    out.write("  reactor thread CPU per message taken in the window, us (median, those / the"
              " others): %s\n" % ", ".join("%s %s" % (name, pair(values, "%.1f"))
                                          for name, values in summary["parts"].items()))
    for row in slow[:listed]:
        out.write("  t=%6.1f s  messages %4d  longest %6.1f ms  reactor CPU %3.0f %%  box %s\n"
                  % (row["start"], row["messages"], row["longest"] * 1000, row["cpu"] * 100,
                     "-" if row["box"] is None else "%.1f" % row["box"]))
    return summary


def read_probes(text: str) -> list:
    """@return: C{[(time, ms)]} of C{bench/boxspeed.py --every}'s lines (others skipped)."""
    probes = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                probes.append((float(parts[0]), float(parts[1])))
            except ValueError:
                continue
    return probes


def summarise(recorder: Recorder) -> dict:
    """
    @return: C{{stage: (p50, p90, p99) ms}} of L{STAGES} over the messages
        done, C{messages} (their number) and C{cpu}: C{{part: us per
        message the lane took}}; no stages without messages.
    """
    summary: dict = {"messages": len(recorder.done),
                     "cpu": {name: round(seconds / max(1, recorder.taken) * 1e6, 1)
                             for name, seconds in recorder.cpu.items()}}
    if not recorder.done:
        return summary
    for name, begin, end in STAGES:
        spans = [times[end] - times[begin] for times in recorder.done]
        summary[name] = tuple(round(ladder.percentile(spans, p) * 1e3, 2) for p in (50, 90, 99))
    return summary


def report(summary: dict, out=sys.stdout) -> None:
    out.write("reactor thread CPU, us per message taken: %s\n" % ", ".join(
        "%s %.1f" % item for item in summary["cpu"].items()))
    if not summary["messages"]:
        out.write("mt stages: no message answered after its submit_sm_resp\n")
        return
    out.write("mt stages over %d messages (ms, p50 / p90 / p99):\n" % summary["messages"])
    for name, _begin, _end in STAGES:
        out.write("  %-6s %8.2f / %8.2f / %8.2f\n" % ((name,) + summary[name]))


def main(argv=None) -> int:
    import profile_mt

    argv = list(sys.argv[1:] if argv is None else argv)
    with_windows = "--windows" in argv
    if with_windows:
        argv.remove("--windows")
    recorder = Recorder(keep_calls=with_windows)
    undo = instrument(recorder)
    probe = None
    if with_windows:
        undo_polls = watch_polls(recorder, profile_mt.PollTimer)
        probe = subprocess.Popen([sys.executable, os.path.join(HERE, "boxspeed.py"),
                                  "--every", "0.02", "--seconds", "3600"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        code = profile_mt.main(argv)
    finally:
        undo()
        if probe is not None:
            undo_polls()
            probe.terminate()
            probes = read_probes(probe.communicate(timeout=30)[0])
    report(summarise(recorder))
    if with_windows:
        report_windows(windows(recorder.done, recorder.polls, probes,
                               calls=recorder.calls))
    return code


if __name__ == "__main__":
    sys.exit(main())
