# -*- test-case-name: tests.test_core_fastmo -*-
"""
Profile the gateway's SMPP -> SIP hot path in this process.

The real gateway service (SIP UDP listener, gateway core with the MO lane,
SQLite file store with durability on, ESME) runs in this process; the
shipped SMSC simulator (L{bench.smsc_driver}) and a sipp UAS
(C{bench/sipp/uas_message.xml}) run as their own processes, so this
process's CPU time is the gateway's.  Sends COUNT deliver_sm at RATE,
waits until the UAS counted them all (bounded), and prints CPU
microseconds per message (process CPU, all threads), the achieved rate,
the deliver_sm -> deliver_sm_resp latency, the lane's counters, the write
batches, optionally a cProfile of the reactor thread.

  .venv/bin/python bench/profile_mo.py --rate 4000 --count 40000 [--cprofile N]

Only 127.0.0.1; everything it starts is stopped at the end.  Not part of
C{make bench}: a tool for the profile-driven pass of issue 5.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

import harness  # noqa: E402
from profile_mt import GcTimer, PollTimer, cli, cpu, free_port, gateway_config, \
    start_simulator, time_batches  # noqa: E402

UAS_XML = os.path.join(HERE, "sipp", "uas_message.xml")


def uas_successful(path: str) -> int:
    """@return: sipp's SuccessfulCall(C) from the last line of its stat file."""
    try:
        with open(path) as f:
            lines = [line for line in f.read().splitlines() if line.strip()]
    except OSError:
        return 0
    if len(lines) < 2:
        return 0
    names, values = lines[0].split(";"), lines[-1].split(";")
    for name, value in zip(names, values):
        if name == "SuccessfulCall(C)":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--rate", type=int, default=4000)
    parser.add_argument("--count", type=int, default=40000)
    parser.add_argument("--mo-window", type=int, default=100,
                        help="outstanding deliver_sm of the simulator")
    parser.add_argument("--cprofile", type=int, default=0, metavar="N",
                        help="run under cProfile and print the top N functions")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="extra [gateway] setting (TOML value)")
    parser.add_argument("--pin", action="store_true",
                        help="as bench/run.py --pin: the gateway's event loop alone on the first CPU"
                        " ([gateway] reactor_cpus), the simulator and sipp on the others")
    parser.add_argument("--sip-option", action="append", default=[], metavar="KEY=VALUE",
                        help="extra [sip] setting (TOML value), e.g. udp_receive_buffer=0")
    parser.add_argument("--slow", action="store_true", help="without the MO lane (compare)")
    parser.add_argument("--switch-interval", type=float, default=None, metavar="S",
                        help="sys.setswitchinterval() after gctune (experiment)")
    args = parser.parse_args(argv)
    try:
        gateway_options = [harness.parse_option(o, "--option") for o in args.option]
        sip_options = [harness.parse_option(o, "--sip-option") for o in args.sip_option]
    except ValueError as e:
        parser.error(str(e))

    tmp = tempfile.mkdtemp(prefix="gwsms-prof-mo-")
    procs = []
    try:
        options, (_cpus, load_cpus, _why) = harness.placed(
            gateway_options, args.pin)
        sim, smsc_port = start_simulator(tmp, procs, args.mo_window, load_cpus)
        sip_port, uas_port = free_port(), free_port()
        stat = os.path.join(tmp, "uas-stat.csv")
        with harness.on_cpus(load_cpus):
            uas = subprocess.Popen(
                ["sipp", "-sf", UAS_XML, "-i", "127.0.0.1", "-p", str(uas_port), "-trace_stat",
                 "-stf", stat, "-fd", "1", "-nostdin", "-buff_size", "8388608"],
                cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
        procs.append(uas)
        config_path = os.path.join(tmp, "gwsms.toml")
        with open(config_path, "w") as f:
            f.write(gateway_config(tmp, sip_port, options, sip_options))

        gwsms = cli(tmp, config_path)
        gwsms("smsc", "add", "bench", "--ip", "127.0.0.1", "--port", str(smsc_port),
              "--system-id", "bench", "--password", "bench")
        gwsms("route", "add", "--direction", "mo", "--prefix", "", "--sip-uri",
              "sip:bench@127.0.0.1:%d" % uas_port)
        return run(args, tmp, config_path, sim, stat)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def run(args, tmp, config_path, sim, stat) -> int:
    import gc

    from twisted.internet import defer, reactor, task, threads
    from twisted.python import log as tlog

    from gwsms.config import load
    from gwsms.core.gateway import Gateway
    from gwsms.service import GatewayService

    if args.slow:
        Gateway.set_fast_mo = lambda self, *a, **kw: None
    batch_times = time_batches()
    tlog.startLogging(open(os.path.join(tmp, "gateway.log"), "w"), setStdout=False)
    svc = GatewayService(load(config_path), reactor, install_signals=False)
    result = {}
    gct = GcTimer()

    def sim_command(line):
        sim.stdin.write(line.encode("ascii") + b"\n")
        sim.stdin.flush()
        return json.loads(sim.stdout.readline())

    async def drive():
        await svc.started
        for _ in range(200):
            stats = await threads.deferToThread(sim_command, "stats")
            if stats.get("bound"):
                break
            await task.deferLater(reactor, 0.05, lambda: None)
        else:
            raise RuntimeError("no SMPP bind")
        from gwsms import gctune
        gc.collect()
        gctune.tune()
        if args.switch_interval is not None:
            sys.setswitchinterval(args.switch_interval)
        gc.callbacks.append(gct)
        t0, c0, r0 = time.monotonic(), cpu(), time.thread_time()
        poll_mark = poll_timer.mark() if poll_timer is not None else None
        del batch_times[:]
        await threads.deferToThread(sim_command, "mo %d %d" % (args.rate, args.count))
        deadline = t0 + args.count / args.rate + 60
        got = 0
        while time.monotonic() < deadline:
            await task.deferLater(reactor, 0.1, lambda: None)
            got = uas_successful(stat)
            if got >= args.count:
                break
        t1, c1, r1 = time.monotonic(), cpu(), time.thread_time()
        if poll_mark is not None:
            result["idle"], result["polls"] = poll_timer.since(poll_mark)
        gc.callbacks.remove(gct)
        stats = await threads.deferToThread(sim_command, "stats")
        lane = svc.gateway.fast_mo
        result.update(wall=t1 - t0, cpu=c1 - c0, reactor_cpu=r1 - r0, received=got, sim=stats,
                      lane=dict(lane.stats) if lane is not None else None,
                      writer=(svc.messages.writer.batches, svc.messages.writer.writes))

    def done(_):
        reactor.stop()

    def failed(f):
        result["error"] = f.getErrorMessage()
        reactor.stop()

    poll_timer = PollTimer.install(reactor)
    svc.startService()
    reactor.callWhenRunning(lambda: defer.ensureDeferred(drive()).addCallbacks(done, failed))
    if args.cprofile:
        import cProfile
        import pstats
        prof = cProfile.Profile(time.thread_time)
        prof.runcall(reactor.run)
    else:
        reactor.run()
    if "error" in result:
        print("error:", result["error"])
        return 1
    n = max(1, result["received"])
    sim_stats = result["sim"]
    print("rate %d count %d: received %d, %.0f msg/s (wall incl. drain), %.1f us CPU/msg"
          % (args.rate, args.count, result["received"], n / result["wall"],
             result["cpu"] / n * 1e6))
    print("reactor thread: %.1f us CPU/msg" % (result["reactor_cpu"] / n * 1e6))
    if "idle" in result:
        print("  busy %.1f us/msg of wall time (%.0f %%, the drain included): waiting %.1f"
              " (the interpreter lock)" % PollTimer.busy(
                  result["wall"], result["idle"], result["reactor_cpu"] / n * 1e6, n))
        print(PollTimer.turns(*result["polls"], n))
    print("smsc: acked %s, failed %s, deliver_sm->resp p50 %s ms p99 %s ms, span %s s"
          % (sim_stats.get("mo_acked"), sim_stats.get("mo_failed"), sim_stats.get("mo_p50_ms"),
             sim_stats.get("mo_p99_ms"), sim_stats.get("mo_span_s")))
    print("gc: %.1f us/msg (gen2 %d, longest %.1f ms)"
          % (sum(gct.total) / n * 1e6, gct.count[2], gct.longest * 1000))
    print("write batches %d, writes %d" % result["writer"])
    if batch_times:
        batch_times.sort()
        print("write batch latency p50 %.1f ms, p99 %.1f ms"
              % (batch_times[len(batch_times) // 2] * 1000,
                 batch_times[int(len(batch_times) * 0.99)] * 1000))
    if result["lane"] is not None:
        print("lane:", result["lane"])
    if args.cprofile:
        stats = pstats.Stats(prof)
        stats.sort_stats("tottime").print_stats(args.cprofile)
    return 0 if result["received"] >= args.count else 1


if __name__ == "__main__":
    sys.exit(main())
