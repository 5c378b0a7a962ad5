# -*- test-case-name: tests.test_bench_run -*-
"""
C{make bench}: micro-benchmarks, then the end-to-end rate ladder.

  .venv/bin/python bench/run.py [--quick] [--steps 1k,2k,...] [--duration S]
                                [--direction both|mt|mo] [--no-micro] [--no-ladder]
                                [--memory --rate N --minutes M] [--timeout S] [--keep]

End to end, everything on 127.0.0.1 in a fresh temporary directory:

  - the SMSC simulator (L{gwsms.sim.smsc} through C{bench/smsc_driver.py},
    its own process),
  - the gateway: C{twistd -n gwsms --config <generated>} with the embedded
    SQLite default (WAL, synchronous=FULL), C{sip_reply = "submitted"},
    one SIP UDP listener on a free port, the control socket in the temp dir,
  - provisioning with the C{gwsms} CLI (one SMSC row, a default MT route,
    a default MO route to the sipp UAS),
  - sipp: a UAC sending MESSAGE (SIP -> SMPP), a UAS answering 200
    (SMPP -> SIP, while the simulator sends deliver_sm at the step's rate).

Each ladder step runs C{--duration} seconds at one rate; a direction stops
at the first step that loses, retransmits, times out, gets an error answer
or falls below 90 % of the offered rate.  When a direction stopped below
8,000/s, one 8,000/s step runs after the stop ("after stop" in its row),
so that the CPU per message at 8,000/s is known in both directions; it
never counts as a passing step.  A row per step, a final table, the
highest passing step per direction and the CPU per message at 8,000/s are
printed and written to C{bench/results-<UTC time>.json}.

Everything started is killed (process groups) on exit, Ctrl-C or the
global C{--timeout}.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import boxspeed  # noqa: E402
import ladder  # noqa: E402
import micro  # noqa: E402
import pyspy  # noqa: E402
from harness import Bench, BenchError, BenchTimeout, parse_option  # noqa: E402

QUICK_STEPS = (500, 1000)
QUICK_DURATION = 3.0


# -- pure helpers (tested) ------------------------------------------------------


#: one C{--gateway-option KEY=VALUE} (L{harness.parse_option})
parse_gateway_option = parse_option


def placement(reactor_cpus, load_cpus, unpinned) -> str:
    """The header's line on where the processes run (L{harness.pin_plan})."""
    load = ",".join(map(str, load_cpus)) if load_cpus else None
    if reactor_cpus is not None:
        return ("gateway event loop alone on CPU %s; its other threads, sipp and the simulator"
                " on CPU %s (--pin)" % (reactor_cpus.strip("[]"), load))
    if load is not None:
        return "sipp and the simulator on CPU %s (the gateway as its reactor_cpus says)" % load
    return "the kernel's choice (%s)" % unpinned


def default_timeout(steps, duration: float, directions: int, memory_minutes: float = 0.0) -> float:
    """
    @return: the global time bound in seconds: per step its duration, up to
        twice that again for a slow drain, plus 30 s; plus 120 s of set-up
        and micro-benchmarks; plus the memory run.
    """
    per_direction = sum(3 * duration + 30 for _ in steps)
    return 120 + directions * per_direction + memory_minutes * 60 + (60 if memory_minutes else 0)


# -- main -----------------------------------------------------------------------


def _host_info(sipp: str) -> dict:
    try:
        version = subprocess.run([sipp, "-v"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        version = "?"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = "?"
    return {"cpus": os.cpu_count(), "loadavg": os.getloadavg(), "python": platform.python_version(),
            # the interpreter the venv was made from: its build (PGO, LTO)
            # moves the figures (bench/README.md, "The interpreter")
            "interpreter": os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
            "machine": platform.machine(), "sipp": version.splitlines()[0] if version else "?",
            "commit": commit}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/run.py", description="gwsms benchmark: micro-benchmarks and the end-to-end rate ladder")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: short micro-benchmarks, steps %s, %g s each" % (
                            ",".join(map(str, QUICK_STEPS)), QUICK_DURATION))
    parser.add_argument("--steps", help="rates, comma separated, k allowed (default 1k,2k,4k,6k,8k,10k,12k,14k)")
    parser.add_argument("--duration", type=float, help="seconds per step (default %g)" % ladder.DEFAULT_DURATION)
    parser.add_argument("--direction", choices=("both", "mt", "mo"), default="both",
                        help="mt: SIP->SMPP, mo: SMPP->SIP (default both)")
    parser.add_argument("--all-steps", action="store_true", help="do not stop at the first failing step")
    parser.add_argument("--no-micro", action="store_true", help="skip the micro-benchmarks")
    parser.add_argument("--no-ladder", action="store_true", help="only the micro-benchmarks")
    parser.add_argument("--memory", action="store_true",
                        help="flat-memory check instead of the ladder: --rate for --minutes, RSS every 10 s")
    parser.add_argument("--rate", type=int, default=6000, help="--memory: messages/s (default 6000)")
    parser.add_argument("--minutes", type=float, default=10.0, help="--memory: duration (default 10)")
    parser.add_argument("--uacs", type=int, default=1,
                        help="sip->smpp: sipp UAC processes sharing the rate, each from its own port (default 1)")
    parser.add_argument("--window", type=int, default=100, help="SMPP window of the gateway's bind (default 100)")
    parser.add_argument("--mo-window", type=int, default=100,
                        help="outstanding deliver_sm of the simulator (default 100)")
    parser.add_argument("--sip-reply", choices=("submitted", "accepted"), default="submitted",
                        help="[gateway] sip_reply (default submitted)")
    parser.add_argument("--gateway-option", action="append", default=[], metavar="KEY=VALUE",
                        help="extra [gateway] setting (TOML value), e.g. commit_interval=0.002; repeatable")
    parser.add_argument("--sip-option", action="append", default=[], metavar="KEY=VALUE",
                        help="extra [sip] setting (TOML value), e.g. udp_receive_buffer=0; repeatable")
    parser.add_argument("--pin", action="store_true",
                        help="the gateway's event loop alone on the first CPU ([gateway] reactor_cpus), its other "
                             "threads, sipp and the simulator on the others (default: the kernel places them)")
    parser.add_argument("--gc-threshold", metavar="N0,N1,N2",
                        help="experiment: gc.set_threshold() in the gateway process (default: Python's)")
    parser.add_argument("--udp-rcvbuf", type=int, metavar="BYTES",
                        help="experiment: SO_RCVBUF of every UDP port the gateway reads (default: the gateway's "
                             "own choice; the kernel caps it at net.core.rmem_max)")
    parser.add_argument("--profile", metavar="DIR",
                        help="record each step's gateway with py-spy (.venv/bin/pip install py-spy) into DIR "
                             "and print its top functions")
    parser.add_argument("--sipp", default=shutil.which("sipp") or "sipp", help="sipp binary")
    parser.add_argument("--timeout", type=float, help="global bound in seconds (default: from the steps)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, sipp files)")
    parser.add_argument("--output", help="JSON file (default bench/results-<UTC time>.json)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    out = sys.stdout
    try:
        steps = ladder.parse_steps(args.steps) if args.steps else (
            QUICK_STEPS if args.quick else ladder.DEFAULT_STEPS)
    except ValueError as e:
        sys.stderr.write("bench: %s\n" % (e,))
        return 2
    try:
        args.gateway_options = [parse_gateway_option(o) for o in args.gateway_option]
        args.sip_options = [parse_gateway_option(o, "--sip-option") for o in args.sip_option]
    except ValueError as e:
        sys.stderr.write("bench: %s\n" % (e,))
        return 2
    if args.gc_threshold is not None:
        parts = args.gc_threshold.split(",")
        if not 1 <= len(parts) <= 3 or not all(p.strip().isdigit() for p in parts):
            sys.stderr.write("bench: --gc-threshold must be 1 to 3 comma-separated integers\n")
            return 2
    if args.udp_rcvbuf is not None and args.udp_rcvbuf <= 0:
        sys.stderr.write("bench: --udp-rcvbuf must be > 0 (bytes)\n")
        return 2
    args.pyspy = pyspy.find()
    if args.profile and not args.pyspy:
        sys.stderr.write("bench: --profile needs py-spy (.venv/bin/pip install py-spy)\n")
        return 2
    if args.duration is None:
        args.duration = QUICK_DURATION if args.quick else ladder.DEFAULT_DURATION
    if args.duration <= 0 or args.rate <= 0 or args.minutes <= 0 or not 1 <= args.uacs <= 16:
        sys.stderr.write("bench: --duration, --rate and --minutes must be > 0, --uacs 1..16\n")
        return 2
    directions = ["mt", "mo"] if args.direction == "both" else [args.direction]
    e2e = not args.no_ladder
    if e2e and not shutil.which(args.sipp) and not os.path.exists(args.sipp):
        sys.stderr.write("bench: sipp not found (%s); install sip-tester or use --no-ladder\n" % (args.sipp,))
        return 2
    timeout = args.timeout or default_timeout(steps if e2e and not args.memory else (), args.duration,
                                              len(directions), args.minutes if args.memory else 0)

    def expired(signum, frame):
        raise BenchTimeout("global timeout of %d s expired" % (timeout,))

    def terminated(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGALRM, expired)
    signal.signal(signal.SIGTERM, terminated)
    # Also when started with SIGINT ignored (a background job of a script).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.alarm(int(timeout) + 1)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    report = {"started": stamp, "command": ["bench/run.py"] + list(argv if argv is not None else sys.argv[1:]),
              "host": _host_info(args.sipp), "settings": {
                  "steps": list(steps), "duration": args.duration, "directions": directions,
                  "sip_reply": args.sip_reply, "gateway_options": dict(args.gateway_options),
                  "sip_options": dict(args.sip_options),
                  "gc_threshold": args.gc_threshold, "udp_rcvbuf": args.udp_rcvbuf,
                  "window": args.window, "uacs": args.uacs, "mo_window": args.mo_window,
                  "database": "sqlite file (WAL, synchronous=FULL)", "timeout": timeout}}
    host = report["host"]
    # the box's speed drifts (bench/boxspeed.py): this run's, to read its figures by
    host["box_ms_start"] = boxspeed.median_probe()
    out.write("gwsms bench: %d CPUs, load %s, box probe %.1f ms, commit %s, Python %s (%s)\n" % (
        host["cpus"], " ".join("%.2f" % x for x in host["loadavg"]), host["box_ms_start"],
        host["commit"], host["python"], host["interpreter"]))
    status = 0
    bench = None
    results = []
    try:
        if not args.no_micro and not args.memory:
            report["micro"] = micro.run_all(args.quick, python=sys.executable, out=out)
            out.write(micro.format_micro(report["micro"]) + "\n\n")
            if any("error" in r for r in report["micro"].values()):
                status = 1  # reported above; the ladder still runs
        if e2e:
            bench = Bench(args, out)
            atexit.register(bench.procs.stop_all)
            report["settings"]["pin"] = {"reactor_cpus": bench.reactor_cpus,
                                         "load_cpus": bench.load_cpus, "not_pinned": bench.unpinned}
            out.write("placement: %s\n" % placement(bench.reactor_cpus, bench.load_cpus, bench.unpinned))
            bench.setup(need_uas="mo" in directions)
            out.write("gateway pid %d (SIP udp 127.0.0.1:%d), simulator pid %d (SMPP 127.0.0.1:%d), temp %s\n" % (
                bench.gateway.pid, bench.sip_port, bench.sim.pid, bench.smsc_port, bench.tmp))
            if args.memory:
                report["memory"] = bench.memory(directions[0], args.rate, args.minutes)
                m = report["memory"]
                out.write("memory %s at %d/s for %g min: first minute %s MB, final %s MB, ratio %s (%s)\n" % (
                    m["direction"], m["rate"], m["minutes"], m["first_minute_mb"], m["final_mb"], m["ratio"],
                    "flat" if m["flat"] else "NOT flat"))
                out.write("load: %s\n" % (json.dumps(m["load"]),))
            else:
                out.write(ladder.format_table([]) + "\n")
                for direction in directions:
                    run_step = bench.mt_step if direction == "mt" else bench.mo_step

                    def one(rate, after_stop=False, run_step=run_step):
                        sampler = boxspeed.Sampler()
                        sampler.start()
                        try:
                            step = run_step(rate)
                        finally:
                            box_ms = sampler.stop()
                        step.box_ms = box_ms
                        step.after_stop = after_stop
                        results.append(step)
                        out.write(ladder.format_table([ladder.row(step)]).splitlines()[-1] + "\n")
                        out.flush()
                        return step

                    ladder.run_ladder(steps, one, stop_on_failure=not args.all_steps,
                                      report_rate=ladder.REPORT_RATE)
    except KeyboardInterrupt:
        out.write("\ninterrupted\n")
        status = 130
    except BenchError as e:
        out.write("bench: %s\n" % (e,))
        status = 1
    finally:
        signal.alarm(0)
        if bench is not None:
            bench.close()
    if results:
        report["steps"] = [s.to_dict() for s in results]
        report["summary"] = ladder.summary(results)
        out.write("\n" + ladder.format_table([ladder.row(s) for s in results]) + "\n\n")
        for direction, figures in report["summary"].items():
            out.write(ladder.summary_line(direction, figures) + "\n")
    report["host"]["loadavg_end"] = os.getloadavg()
    report["host"]["box_ms_end"] = boxspeed.median_probe()
    path = args.output or os.path.join(HERE, "results-%s.json" % (stamp,))
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
    out.write("results written to %s (load at end %s, box probe %.1f ms)\n" % (
        os.path.relpath(path, ROOT), " ".join("%.2f" % x for x in report["host"]["loadavg_end"]),
        report["host"]["box_ms_end"]))
    if status == 0 and results and not any(s.passed for s in results):
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
