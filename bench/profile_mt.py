# -*- test-case-name: tests.test_bench_profile_mt,tests.test_perf_store -*-
"""
Profile the gateway's SIP -> SMPP hot path in this process.

The real gateway service (UDP SIP listener, UAS, gateway core, SQLite file
store with durability on, ESME) runs in this process; the shipped SMSC
simulator (L{bench.smsc_driver}) and a sipp UAC run as their own processes,
so this process's CPU time is the gateway's.  Prints CPU microseconds per
message (process CPU, all threads, from C{resource.getrusage}), the achieved
rate, the time spent in garbage collection and the tracked object count,
optionally a cProfile of the run.

  .venv/bin/python bench/profile_mt.py --rate 2000 --count 20000 [--cprofile N]

Only 127.0.0.1; everything it starts is stopped at the end.  Not part of
C{make bench}: a tool for the profile-driven pass of issue 5.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

import socket  # noqa: E402

import harness  # noqa: E402
import ladder  # noqa: E402
import procstat  # noqa: E402

BIN = os.path.join(os.path.dirname(HERE), ".venv", "bin")
UAC_XML = os.path.join(HERE, "sipp", "uac_message.xml")


def free_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def gateway_config(tmp: str, sip_port: int, options=(), sip_options=()) -> str:
    """@return: the TOML configuration: SQLite file (durable), SIP UDP on 127.0.0.1."""
    return "\n".join([
        "[database]", 'url = "sqlite:%s"' % os.path.join(tmp, "gwsms.sqlite3"), "",
        "[sip]", 'listen = ["udp:127.0.0.1:%d"]' % sip_port, 'domain = "127.0.0.1"',
    ] + ["%s = %s" % item for item in sip_options] + ["",
        "[control]", 'socket = "%s"' % os.path.join(tmp, "gwsms.sock"), "",
        "[gateway]", 'sip_reply = "submitted"',
    ] + ["%s = %s" % item for item in options] + [""])


def start_simulator(tmp: str, procs: list, window: int, cpus=None):
    """
    Start the shipped SMSC simulator (L{bench.smsc_driver}) in C{tmp},
    appended to C{procs}, on C{cpus} (default: this process's).

    @return: C{(process, its SMPP port)}.
    """
    with harness.on_cpus(cpus):
        sim = subprocess.Popen([sys.executable, os.path.join(HERE, "smsc_driver.py"),
                                "--window", str(window)], cwd=tmp, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    procs.append(sim)
    return sim, json.loads(sim.stdout.readline())["listening"]


def cli(tmp: str, config_path: str):
    """
    @return: C{gwsms(*argv)}: runs this tree's CLI (its schema version,
        not the installed one) on C{config_path}, raising on failure.
    """
    code = ("import sys; sys.path.insert(0, %r); from gwsms.cli.main import main;"
            " sys.exit(main())" % os.path.dirname(HERE))

    def gwsms(*argv):
        subprocess.run([sys.executable, "-c", code, "--config", config_path] + list(argv),
                       cwd=tmp, check=True, capture_output=True)
    return gwsms


def time_batches() -> list:
    """
    Time every write batch from here on (C{Database.run_batch}, wrapped).

    @return: the list the latencies (seconds) are appended to.
    """
    from gwsms.store.database import Database
    batch_times: list = []
    # (older trees ran batches through run_interaction)
    run_batch = getattr(Database, "run_batch", Database.run_interaction)

    def timed_batch(self, desc, fn, *a):
        started = time.monotonic()

        def took(result):
            batch_times.append(time.monotonic() - started)
            return result

        return run_batch(self, desc, fn, *a).addBoth(took)

    Database.run_batch = timed_batch
    return batch_times


class PollTimer:
    """
    Stands for the epoll reactor's poller and adds up the wall time spent
    in its C{poll}: the reactor thread's idle time.  The thread's wall time
    outside it, less its CPU time, is what it spent runnable but waiting:
    mostly for the interpreter lock, held by the commit thread.

    @ivar polls: the polls that returned (the reactor's turns).
    @ivar events: the ready descriptors they returned, in all.
    """

    def __init__(self, poller, clock=time.monotonic):
        self._poller = poller
        self._clock = clock
        self.idle = 0.0
        self.polls = 0
        self.events = 0

    def poll(self, *args):
        started = self._clock()
        try:
            events = self._poller.poll(*args)
        finally:
            self.idle += self._clock() - started
        self.polls += 1
        self.events += len(events)
        return events

    def __getattr__(self, name):
        return getattr(self._poller, name)

    @staticmethod
    def busy(wall: float, idle: float, cpu_us: float, n: int) -> tuple:
        """
        @param wall: seconds measured; @param idle: seconds of it in C{poll}.
        @param cpu_us: the reactor thread's CPU per message, microseconds.
        @return: C{(busy us per message, busy % of wall, waiting us per
            message)}: waiting is busy time less CPU time.
        """
        busy = (wall - idle) / n * 1e6
        return busy, 100.0 * (wall - idle) / wall, busy - cpu_us

    def mark(self) -> tuple:
        """@return: what L{since} measures from: the idle seconds, polls and events so far."""
        return self.idle, self.polls, self.events

    def since(self, mark: tuple) -> tuple:
        """@return: C{(idle seconds, (polls, events))} since C{mark} (L{mark})."""
        idle, polls, events = mark
        return self.idle - idle, (self.polls - polls, self.events - events)

    @staticmethod
    def turns(polls: int, events: int, n: int) -> str:
        """@return: a line: the reactor's turns per message and ready descriptors per turn."""
        return "  reactor turns: %.2f per message, %.2f ready descriptors per turn" % (
            polls / max(1, n), events / max(1, polls))

    @classmethod
    def install(cls, reactor):
        """@return: a L{PollTimer} now standing for C{reactor}'s poller, or L{None} (no poller)."""
        poller = getattr(reactor, "_poller", None)
        if poller is None or not hasattr(poller, "poll"):
            return None
        reactor._poller = timer = cls(poller)
        return timer


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def threads_cpu() -> dict:
    """
    @return: C{{thread name: (user, system)}} CPU seconds of this process's
        threads (L{procstat}); the main thread is the reactor's.
    """
    names = {t.native_id: t.name for t in threading.enumerate()}
    names[os.getpid()] = "reactor"
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open("/proc/self/task/%s/stat" % tid, encoding="ascii", errors="replace") as f:
                sample = procstat.parse_stat(f.read(), 0.0)
        except OSError:
            continue  # ended meanwhile
        name = "%s %s" % (names.get(int(tid), "thread"), tid)
        out[name] = (sample.utime / procstat.CLK_TCK, sample.stime / procstat.CLK_TCK)
    return out


def cpu_split() -> tuple:
    """@return: (user, system, reactor-thread) CPU seconds."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime, time.thread_time()


class GcTimer:
    """Sums the time spent in garbage collection, per generation."""

    def __init__(self):
        self.total = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]
        self.longest = 0.0
        self._start = 0.0

    def __call__(self, phase, info):
        if phase == "start":
            self._start = time.thread_time()
        else:
            spent = time.thread_time() - self._start
            g = info["generation"]
            self.total[g] += spent
            self.count[g] += 1
            self.longest = max(self.longest, spent)


def sipp_totals(path: str) -> dict:
    """@return: sipp's cumulative counters from the last line of its stat file."""
    try:
        with open(path) as f:
            lines = [line for line in f.read().splitlines() if line.strip()]
    except OSError:
        return {}
    if len(lines) < 2:
        return {}
    names, values = lines[0].split(";"), lines[-1].split(";")
    wanted = ("SuccessfulCall(C)", "FailedCall(C)", "Retransmissions(C)",
              "FailedUnexpectedMessage(C)", "FailedMaxUDPRetrans(C)")
    return {n: v for n, v in zip(names, values) if n in wanted}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--cprofile", type=int, default=0, metavar="N",
                        help="run under cProfile and print the top N functions")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="extra [gateway] setting (TOML value)")
    parser.add_argument("--pin", action="store_true",
                        help="as bench/run.py --pin: the gateway's event loop alone on the first CPU"
                        " ([gateway] reactor_cpus), the simulator and sipp on the others")
    parser.add_argument("--sip-option", action="append", default=[], metavar="KEY=VALUE",
                        help="extra [sip] setting (TOML value), e.g. udp_receive_buffer=0")
    parser.add_argument("--gc-default", action="store_true",
                        help="keep Python's collector settings (twistd applies"
                        " gwsms.gctune.tune() once started)")
    parser.add_argument("--gc-threshold", default="", metavar="N0,N1,N2",
                        help="gc.set_threshold() after gctune (experiment)")
    parser.add_argument("--no-split", action="store_true",
                        help="run write batches wholly in the pool thread (as before"
                        " Database.run_batch), for comparison")
    parser.add_argument("--switch-interval", type=float, default=None, metavar="S",
                        help="sys.setswitchinterval() after gctune (experiment)")
    parser.add_argument("--udp-burst", type=int, default=None, metavar="BYTES",
                        help="twisted udp.Port.maxThroughput (bytes read per reactor"
                        " turn; twisted's is 256 KiB), experiment")
    parser.add_argument("--sipp-nd", action="store_true",
                        help="end a call answered 503 without a BYE (sipp -default_behaviors all,-bye; by default sipp"
                        " sends a BYE, which the gateway answers 405: double load)")
    args = parser.parse_args(argv)
    try:
        gateway_options = [harness.parse_option(o, "--option") for o in args.option]
        sip_options = [harness.parse_option(o, "--sip-option") for o in args.sip_option]
    except ValueError as e:
        parser.error(str(e))

    tmp = tempfile.mkdtemp(prefix="gwsms-prof-")
    procs = []
    try:
        options, (_cpus, args.load_cpus, _why) = harness.placed(
            gateway_options, args.pin)
        sim, smsc_port = start_simulator(tmp, procs, 100, args.load_cpus)
        sip_port = free_port()
        config_path = os.path.join(tmp, "gwsms.toml")
        with open(config_path, "w") as f:
            f.write(gateway_config(tmp, sip_port, options, sip_options))

        gwsms = cli(tmp, config_path)
        gwsms("smsc", "add", "bench", "--ip", "127.0.0.1", "--port", str(smsc_port),
              "--system-id", "bench", "--password", "bench", "--window", str(args.window))
        gwsms("route", "add", "--prefix", "", "--smsc", "bench")
        return run(args, tmp, config_path, sip_port, procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def run(args, tmp, config_path, sip_port, procs) -> int:
    from twisted.internet import reactor, task
    from twisted.python import log as tlog

    from gwsms.config import load
    from gwsms.service import GatewayService

    if args.no_split:
        from gwsms.store.database import Database
        Database.run_batch = Database.run_interaction
    if args.udp_burst is not None:
        from twisted.internet import udp
        udp.Port.maxThroughput = args.udp_burst
    batch_times = time_batches()
    tlog.startLogging(open(os.path.join(tmp, "gateway.log"), "w"), setStdout=False)
    config = load(config_path)
    svc = GatewayService(config, reactor, install_signals=False)
    result = {}
    gct = GcTimer()

    def bound():
        state = svc.smpp.state() if svc.smpp is not None else []
        return any(s.get("state", "").startswith("bound") for s in state)

    async def drive():
        await svc.started
        for _ in range(200):
            if bound():
                break
            await task.deferLater(reactor, 0.05, lambda: None)
        else:
            raise RuntimeError("no SMPP bind")
        with harness.on_cpus(args.load_cpus):
            sipp = subprocess.Popen(
                ["sipp", "-sf", UAC_XML, "127.0.0.1:%d" % sip_port, "-i", "127.0.0.1",
                 "-p", str(free_port()), "-r", str(args.rate), "-rp", "1000", "-m", str(args.count),
                 "-l", str(max(500, args.rate)), "-nostdin", "-timeout", "120s",
                 "-buff_size", "8388608", "-trace_stat", "-stf", os.path.join(tmp, "stat.csv"),
                 "-fd", "1", *ladder.rtt_args(args.count)]
                + (["-default_behaviors", "all,-bye"] if args.sipp_nd else []),
                cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
        procs.append(sipp)
        gc.collect()
        if not args.gc_default:
            from gwsms import gctune
            gctune.tune()
        if args.gc_threshold:
            gc.set_threshold(*(int(x) for x in args.gc_threshold.split(",")))
        if args.switch_interval is not None:
            sys.setswitchinterval(args.switch_interval)
        del batch_times[:]
        gc.callbacks.append(gct)
        t0, c0, s0, th0 = time.monotonic(), cpu(), cpu_split(), threads_cpu()
        poll_mark = poll_timer.mark() if poll_timer is not None else None
        while sipp.poll() is None:
            await task.deferLater(reactor, 0.05, lambda: None)
        t1, c1, s1 = time.monotonic(), cpu(), cpu_split()
        if poll_mark is not None:
            result["idle"], result["polls"] = poll_timer.since(poll_mark)
        result["split"] = [b - a for a, b in zip(s0, s1)]
        th1 = threads_cpu()
        result["threads"] = {name: tuple(b - a for a, b in zip(th0.get(name, (0, 0)), cpu_now))
                             for name, cpu_now in th1.items()}
        gc.callbacks.remove(gct)
        result.update(wall=t1 - t0, cpu=c1 - c0, sipp_rc=sipp.returncode,
                      stats=svc.gateway.stats if hasattr(svc.gateway, "stats") else None,
                      shed=getattr(getattr(svc.gateway, "mt", None), "shed", None),
                      sipp=sipp_totals(os.path.join(tmp, "stat.csv")),
                      rtts=ladder.read_rtts(tmp))
        result["objects"] = len(gc.get_objects())

    def done(_):
        reactor.stop()

    def failed(f):
        result["error"] = f.getErrorMessage()
        reactor.stop()

    poll_timer = PollTimer.install(reactor)
    svc.startService()
    from twisted.internet import defer
    reactor.callWhenRunning(lambda: defer.ensureDeferred(drive()).addCallbacks(done, failed))
    if args.cprofile:
        import cProfile
        import pstats
        # CPU time of the reactor thread: a busy machine does not inflate it
        prof = cProfile.Profile(time.thread_time)
        prof.runcall(reactor.run)
    else:
        reactor.run()
    if "error" in result:
        print("error:", result["error"])
        return 1
    n = args.count
    print("rate %d count %d: %.0f msg/s, %.1f us CPU/msg (sipp rc %s)"
          % (args.rate, n, n / result["wall"], result["cpu"] / n * 1e6, result["sipp_rc"]))
    user, system, main = (x / n * 1e6 for x in result["split"])
    print("  of which user %.1f, system %.1f; reactor thread %.1f, other threads %.1f us/msg"
          % (user, system, main, user + system - main))
    if "idle" in result:
        busy, percent, waiting = PollTimer.busy(result["wall"], result["idle"], main, n)
        print("  reactor thread busy %.1f us/msg of wall time (%.0f %%): CPU %.1f, waiting %.1f"
              " (the interpreter lock)" % (busy, percent, main, waiting))
        print(PollTimer.turns(*result["polls"], n))
    for name, (tu, ts) in sorted(result["threads"].items()):
        if tu + ts:
            print("  %s: user %.1f, system %.1f us/msg" % (name, tu / n * 1e6, ts / n * 1e6))
    print("gc: %.1f us/msg (gen0 %d %.2fs, gen1 %d %.2fs, gen2 %d %.2fs, longest %.1f ms),"
          " tracked objects at end %d"
          % (sum(gct.total) / n * 1e6, gct.count[0], gct.total[0], gct.count[1], gct.total[1],
             gct.count[2], gct.total[2], gct.longest * 1000, result["objects"]))
    if batch_times:
        batch_times.sort()
        print("write batches: %d, latency p50 %.1f ms, p99 %.1f ms (switch interval %g s)"
              % (len(batch_times), batch_times[len(batch_times) // 2] * 1000,
                 batch_times[int(len(batch_times) * 0.99)] * 1000, sys.getswitchinterval()))
    if result.get("shed") is not None:
        print("shed (503 + Retry-After): %d" % result["shed"])
    if result.get("rtts"):
        rtts = result["rtts"]
        print("sipp response times: p50 %.1f ms, p99 %.1f ms (%d calls)"
              % (ladder.percentile(rtts, 50), ladder.percentile(rtts, 99), len(rtts)))
    if result.get("sipp"):
        print("sipp: %s" % ", ".join("%s %s" % kv for kv in result["sipp"].items()))
    if result.get("stats"):
        print("gateway stats:", result["stats"])
    if args.cprofile:
        stats = pstats.Stats(prof)
        stats.sort_stats("tottime").print_stats(args.cprofile)
        stats.sort_stats("cumulative").print_stats("gwsms", args.cprofile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
