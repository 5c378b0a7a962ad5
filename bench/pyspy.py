# -*- test-case-name: tests.test_bench_pyspy -*-
"""
Profiles of the gateway during ladder steps (C{bench/run.py --profile DIR}),
taken with py-spy (C{.venv/bin/pip install py-spy}; not a gwsms dependency).

L{command} builds the py-spy command line; L{summarise} reads its "raw"
(collapsed stack) output: one line per distinct stack,
C{frame;frame;...;leaf COUNT}, the first frame being the thread with
C{--threads}.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections import Counter


def find() -> str | None:
    """@return: the py-spy executable next to this Python, on the PATH, or L{None}."""
    beside = os.path.join(os.path.dirname(sys.executable), "py-spy")
    if os.access(beside, os.X_OK):
        return beside
    return shutil.which("py-spy")


def command(pyspy: str, pid: int, seconds: float, output: str, rate: int = 200) -> list[str]:
    """
    @return: the argv of a py-spy recording of C{pid} for C{seconds} into
        C{output} (raw collapsed stacks, per thread, without pausing the
        process).
    """
    return [pyspy, "record", "-p", str(pid), "-d", str(max(1, int(seconds))), "-r", str(rate),
            "-f", "raw", "--threads", "--nonblocking", "-o", output]


def summarise(raw: str, top: int = 15, match: str = "gwsms") -> dict:
    """
    Summarise a raw py-spy profile.

    @param top: how many functions to list.
    @param match: the inclusive list keeps only frames containing this.
    @return: C{{"samples": n, "threads": {thread: samples}, "self": [[pct,
        frame], ...], "inclusive": [[pct, frame], ...]}}; percentages of
        all samples (idle waiting in C included: py-spy samples threads
        blocked in C calls too).
    """
    self_time, inclusive, threads = Counter(), Counter(), Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        threads[frames[0]] += n
        self_time[frames[-1]] += n
        for frame in set(frames[1:]):
            inclusive[frame] += n
    if not total:
        return {"samples": 0, "threads": {}, "self": [], "inclusive": []}

    def pct(n):
        return round(100.0 * n / total, 1)

    return {
        "samples": total,
        "threads": dict(threads.most_common()),
        "self": [[pct(n), f] for f, n in self_time.most_common(top)],
        "inclusive": [[pct(n), f] for f, n in inclusive.most_common() if match in f][:top],
    }


def format_summary(summary: dict, lines: int = 8) -> str:
    """@return: the top self-time and inclusive (gwsms) frames, one per line."""
    out = ["  profile: %d samples" % (summary["samples"],)]
    out += ["  self %5.1f%%  %s" % (p, f) for p, f in summary["self"][:lines]]
    out += ["  incl %5.1f%%  %s" % (p, f) for p, f in summary["inclusive"][:lines]]
    return "\n".join(out)
