# -*- test-case-name: tests.test_bench_harness -*-
"""
How much CPU the benchmark's own sipp processes cost, without a gateway:
the harness's sipp UAC (C{bench/sipp/uac_message.xml}, answered 200 here)
sends straight to the harness's sipp UAS (C{bench/sipp/uas_message.xml}),
both with the options L{bench.harness} gives them.

  .venv/bin/python bench/sipp_cost.py [--rates 8k,10k,14k] [--duration 8]
                                      [--uacs 1] [--extra "-timer_resol 1"]

Prints per rate each side's CPU (% of one core, from C{/proc/<pid>/stat})
and microseconds per call, the achieved rate, failures and retransmissions
(from sipp's own statistics), so one sees whether sipp can carry the
ladder's top steps on this box.
"""

from __future__ import annotations

import argparse
import glob
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import ladder  # noqa: E402
import procstat  # noqa: E402


def measure(sipp: str, rate: int, duration: float, uacs: int = 1, extra=(), tmp: str = ".") -> dict:
    """
    Run one UAS and C{uacs} UACs (sharing C{rate}) for C{duration} s.

    @return: C{{"rate", "achieved", "calls", "failed", "retransmissions",
        "p50_ms", "p99_ms" (MESSAGE -> 200, sipp's rtt),
        "uac_cpu_percent", "uac_us_per_call", "uas_cpu_percent",
        "uas_us_per_call"}}.
    """
    procs = harness.Processes()
    tmp = os.path.abspath(tmp)  # sipp runs in its own directory
    uas_port = harness.free_port()
    count = int(rate * duration)
    try:
        uas_stat = os.path.join(tmp, "uas-%d.csv" % rate)
        uas = procs.start(harness.uas_command(sipp, uas_port, uas_stat) + list(extra), cwd=tmp,
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        uas0 = procstat.read(uas.pid, time.monotonic())
        stepdir = os.path.join(tmp, "uac-%d" % rate)
        os.mkdir(stepdir)
        uac_list = []
        for i, (r, c) in enumerate(zip(ladder.split_evenly(rate, uacs), ladder.split_evenly(count, uacs))):
            d = os.path.join(stepdir, str(i))
            os.mkdir(d)
            argv = harness.uac_command(sipp, "127.0.0.1:%d" % uas_port, harness.free_port(), r, c, d,
                                       int(duration * 3 + 30)) + list(extra)
            uac_list.append((procs.start(argv, cwd=d, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL), d))
        first = {p.pid: procstat.read(p.pid, time.monotonic()) for p, _ in uac_list}
        last = dict(first)
        while any(p.poll() is None for p, _ in uac_list):
            time.sleep(0.25)
            for p, _ in uac_list:
                try:
                    last[p.pid] = procstat.read(p.pid, time.monotonic())
                except OSError:
                    pass
        uas1 = procstat.read(uas.pid, time.monotonic())
        stats, rtts = [], []
        for _, d in uac_list:
            with open(os.path.join(d, "stat.csv")) as f:
                stats.append(ladder.parse_stat_csv(f.read()))
            for path in glob.glob(os.path.join(d, "*_rtt.csv")):
                with open(path) as f:
                    rtts += ladder.parse_rtt_csv(f.read())
        st = ladder.merge_stats(stats)
        uac_cpu = sum(last[p.pid].cpu_seconds() - first[p.pid].cpu_seconds() for p, _ in uac_list)
        uac_wall = max(last[p.pid].wall - first[p.pid].wall for p, _ in uac_list)
        uas_cpu = uas1.cpu_seconds() - uas0.cpu_seconds()
        calls = st["successful"]
        return {
            "rate": rate, "calls": calls, "failed": st["failed"], "retransmissions": st["retransmissions"],
            "achieved": round(calls / st["elapsed"], 1) if st["elapsed"] else None,
            "p50_ms": ladder.percentile(rtts, 50) if rtts else None,
            "p99_ms": ladder.percentile(rtts, 99) if rtts else None,
            "uac_cpu_percent": round(100 * uac_cpu / uac_wall, 1) if uac_wall else None,
            "uac_us_per_call": round(1e6 * uac_cpu / calls, 1) if calls else None,
            "uas_cpu_percent": round(100 * uas_cpu / (uas1.wall - uas0.wall), 1),
            "uas_us_per_call": round(1e6 * uas_cpu / calls, 1) if calls else None,
        }
    finally:
        procs.stop_all()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bench/sipp_cost.py", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--rates", default="8k,10k,14k", help="calls/s, comma separated, k allowed")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per rate (default 8)")
    parser.add_argument("--uacs", type=int, default=1, help="UAC processes sharing the rate (default 1)")
    parser.add_argument("--extra", default="", help="extra sipp options for both sides (shell words)")
    parser.add_argument("--sipp", default=shutil.which("sipp") or "sipp")
    args = parser.parse_args(argv)
    try:
        rates = ladder.parse_steps(args.rates)
    except ValueError as e:
        sys.stderr.write("sipp_cost: %s\n" % (e,))
        return 2
    tmp = tempfile.mkdtemp(prefix="gwsms-sipp-cost-")
    try:
        for rate in rates:
            r = measure(args.sipp, rate, args.duration, args.uacs, shlex.split(args.extra), tmp)
            print("%6d/s achieved %8s/s calls %7d failed %d retrans %d p50/p99 %s/%s ms | UAC CPU %5s %% %5s us/call | "
                  "UAS CPU %5s %% %5s us/call" % (
                      r["rate"], r["achieved"], r["calls"], r["failed"], r["retransmissions"], r["p50_ms"], r["p99_ms"],
                      r["uac_cpu_percent"], r["uac_us_per_call"], r["uas_cpu_percent"], r["uas_us_per_call"]))
            sys.stdout.flush()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
