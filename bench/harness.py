# -*- test-case-name: tests.test_bench_run -*-
"""
The processes of the end-to-end benchmark (L{bench.run}): the SMSC
simulator driver, the gateway (twistd) with its generated configuration and
a garbage-collection logger, sipp UAC/UAS; one L{Bench} runs the ladder
steps and the memory check and stops everything it started.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import ladder  # noqa: E402
import procstat  # noqa: E402
import pyspy  # noqa: E402

BIN = os.path.join(ROOT, ".venv", "bin")
UAC_XML = os.path.join(HERE, "sipp", "uac_message.xml")
UAS_XML = os.path.join(HERE, "sipp", "uas_message.xml")
DRIVER = os.path.join(HERE, "smsc_driver.py")
DIRECTIONS = {"mt": "sip->smpp", "mo": "smpp->sip"}


class BenchError(Exception):
    """Something the harness cannot work around (reported in one line)."""


class BenchTimeout(BenchError):
    """The global --timeout expired."""


def gateway_config(tmp: str, sip_port: int, sip_reply: str = "submitted", options=(),
                   sip_options=()) -> str:
    """
    @param options: extra C{(key, toml value)} pairs of the C{[gateway]} section.
    @param sip_options: the same for the C{[sip]} section.
    @return: the TOML configuration of the benchmarked gateway: SQLite file,
        SIP UDP on 127.0.0.1, control socket, everything in C{tmp}.
    """
    return "\n".join([
        "[database]",
        'url = "sqlite:%s"' % os.path.join(tmp, "gwsms.sqlite3"),
        "",
        "[sip]",
        'listen = ["udp:127.0.0.1:%d"]' % sip_port,
        'domain = "127.0.0.1"',
    ] + ["%s = %s" % item for item in sip_options] + [
        "",
        "[control]",
        'socket = "%s"' % os.path.join(tmp, "gwsms.sock"),
        "",
        "[gateway]",
        'sip_reply = "%s"' % sip_reply,
    ] + ["%s = %s" % item for item in options] + [""])


def memory_verdict(samples, first_minute: float = 60.0, tolerance: float = 0.10) -> dict:
    """
    Compare the resident size after the first minute with the final one.

    @param samples: C{[(seconds since start, rss_mb), ...]} in time order.
    @return: C{{"first_minute_mb", "final_mb", "ratio", "flat"}} (flat:
        within C{tolerance}); values L{None} without samples.
    """
    if not samples:
        return {"first_minute_mb": None, "final_mb": None, "ratio": None, "flat": None}
    after = [s for s in samples if s[0] >= first_minute]
    first = after[0][1] if after else samples[0][1]
    final = samples[-1][1]
    ratio = final / first if first else None
    return {"first_minute_mb": round(first, 1), "final_mb": round(final, 1),
            "ratio": round(ratio, 3) if ratio is not None else None,
            "flat": ratio is not None and abs(ratio - 1.0) <= tolerance}


# -- processes --------------------------------------------------------------------


def free_port(kind=socket.SOCK_DGRAM) -> int:
    """@return: a port the OS considers free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_option(text: str, option: str = "--gateway-option") -> tuple[str, str]:
    """
    Parse one C{--gateway-option KEY=VALUE} (VALUE a TOML value, e.g.
    C{commit_interval=0.002} or C{concat="sar"}), or of C{option}
    (C{--sip-option}; the profile scripts' C{--option}).

    @raise ValueError: naming what is wrong.
    """
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key.replace("_", "").isalnum() or not value:
        raise ValueError("%s %r is not KEY=VALUE" % (option, text))
    if key == "sip_reply" and option == "--gateway-option":
        raise ValueError("use --sip-reply for sip_reply")
    return key, value


def pin_plan(allowed, gateway_options, enabled: bool = True):
    """
    Where the bench puts the gateway's event loop and the load (sipp, the
    simulator): the event loop alone on the first allowed CPU (the
    gateway's C{[gateway] reactor_cpus}, its helper threads on the
    others) and the load on the others.

    @param allowed: the CPUs this process may use.
    @param gateway_options: the C{--gateway-option} pairs.
    @return: C{(reactor_cpus option value or None, load CPUs or None, why
        not)}: C{None}s and a reason when nothing is pinned (no C{--pin},
        fewer than two CPUs, C{workers > 1}); with a C{reactor_cpus}
        option of the user's, only the load is placed, on the CPUs it
        leaves.
    """
    options = dict(gateway_options)
    if not enabled:
        return None, None, "no --pin"
    allowed = sorted(allowed)
    if len(allowed) < 2:
        return None, None, "fewer than two CPUs"
    if "reactor_cpus" in options:
        try:
            mine = set(tomllib.loads("v = " + options["reactor_cpus"])["v"])
        except (tomllib.TOMLDecodeError, TypeError):
            mine = None
        if mine is None or not all(isinstance(cpu, int) for cpu in mine):
            return None, None, "reactor_cpus %s not understood" % options["reactor_cpus"]
        rest = [cpu for cpu in allowed if cpu not in mine]
        return None, (rest or None), (None if rest else "reactor_cpus leaves no CPU")
    if options.get("workers", "1").strip() not in ("1", ""):
        return None, None, "workers > 1"
    return "[%d]" % allowed[0], allowed[1:], None


def placed(gateway_options, enabled: bool, allowed=None):
    """
    L{pin_plan} applied to the gateway's options.

    @param allowed: the CPUs to plan with (default: this process's).
    @return: C{(the options, with the plan's reactor_cpus added when it
        sets one; the plan: (reactor_cpus, load CPUs, why not))}.
    """
    if allowed is None:
        allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else ()
    plan = pin_plan(allowed, gateway_options, enabled)
    options = list(gateway_options)
    if plan[0] is not None:
        options.append(("reactor_cpus", plan[0]))
    return options, plan


@contextlib.contextmanager
def on_cpus(cpus):
    """
    This thread on C{cpus} for the block (a child started in it inherits
    them); C{None} or empty: unchanged.
    """
    if not cpus:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


class Processes:
    """Every child, each in its own process group; L{stop_all} kills them all."""

    def __init__(self):
        self.children = []

    def start(self, argv, cpus=None, **kw) -> subprocess.Popen:
        """
        @param cpus: the CPUs the child may use (it inherits them from this
            thread, set for the moment of the fork), or C{None}: this
            process's.
        """
        with on_cpus(cpus):
            proc = subprocess.Popen(argv, start_new_session=True, **kw)
        self.children.append(proc)
        return proc

    def stop(self, proc, grace: float = 5.0) -> None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # stragglers in its group
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(2)
        except subprocess.TimeoutExpired:
            pass

    def stop_all(self) -> None:
        for proc in reversed(self.children):
            self.stop(proc)
        self.children = []


def uas_command(sipp: str, port: int, stat_file: str) -> list:
    """
    @return: the argv of the sipp UAS answering the gateway's MESSAGEs
        (smpp->sip) on 127.0.0.1:C{port}, its statistics dumped to
        C{stat_file} every second.
    """
    return [sipp, "-sf", UAS_XML, "-i", "127.0.0.1", "-p", str(port),
            "-trace_stat", "-stf", stat_file, "-fd", "1", "-nostdin", "-buff_size", "8388608"]


def uac_command(sipp: str, target: str, port: int, rate: int, count: int, stepdir: str, bound: int) -> list:
    """
    @param target: C{host:port} of the gateway's SIP listener.
    @param port: the UAC's own port.
    @param bound: seconds after which sipp gives up (C{-timeout}).
    @return: the argv of one sipp UAC sending C{count} MESSAGEs at C{rate}
        (sip->smpp), its statistics, response times and unexpected answers
        in C{stepdir}.
    """
    return [sipp, "-sf", UAC_XML, target, "-i", "127.0.0.1",
            "-p", str(port), "-r", str(rate), "-rp", "1000", "-m", str(count),
            "-l", str(max(500, rate)), "-trace_stat", "-stf", os.path.join(stepdir, "stat.csv"), "-fd", "1",
            *ladder.rtt_args(count), "-trace_err",
            "-error_file", os.path.join(stepdir, "errors.log"),
            "-nostdin", "-timeout", "%ds" % bound, "-buff_size", "8388608",
            # a MESSAGE answered 503 (shed) is an unexpected message: the call
            # is aborted (failed, logged) but without the BYE that would
            # double the load (-nd would keep retransmitting the MESSAGE)
            "-default_behaviors", "all,-bye"]


def read_stat_file(path: str, tail: int = 65536) -> str:
    """
    The header and the last complete rows of a sipp C{-trace_stat} file
    (which grows by a row per second for the whole run): what
    L{ladder.parse_stat_csv} needs, without reading and parsing every row
    at each poll.

    @param tail: octets read from the end of the file.
    @return: text for L{ladder.parse_stat_csv}.
    @raise OSError: the file cannot be read.
    """
    with open(path, "rb") as f:
        header = f.readline()
        start = f.tell()
        size = os.fstat(f.fileno()).st_size
        if size - start <= tail:
            rest = f.read()
        else:
            f.seek(size - tail)
            rest = f.read()
            rest = rest[rest.find(b"\n") + 1:]  # from the first whole row
    return (header + rest).decode("utf-8", "replace")


def _tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, "r", errors="replace") as f:
            return " | ".join(line.strip() for line in f.readlines()[-lines:])
    except OSError:
        return "(no log)"


#: Installed as sitecustomize.py in the gateway's PYTHONPATH: logs every
#: garbage collection of generation 1 or 2, or longer than 5 ms, as
#: "<monotonic end> <generation> <ms>" (one line, flushed); for experiments
#: sets gc thresholds (--gc-threshold) and the receive buffer of every UDP
#: port the gateway reads (--udp-rcvbuf).
GC_LOGGER = """\
import gc, os, time
_path = os.environ.get("GWSMS_BENCH_GC_LOG")
if _path:
    _log = open(_path, "a", buffering=1)
    _start = [0.0]
    def _gc_timer(phase, info):
        if phase == "start":
            _start[0] = time.perf_counter()
        else:
            ms = (time.perf_counter() - _start[0]) * 1000.0
            if info["generation"] > 0 or ms > 5.0:
                _log.write("%.4f %d %.2f\\n" % (time.monotonic(), info["generation"], ms))
    gc.callbacks.append(_gc_timer)
_threshold = os.environ.get("GWSMS_BENCH_GC_THRESHOLD")
if _threshold:
    gc.set_threshold(*(int(x) for x in _threshold.split(",")))
_rcvbuf = int(os.environ.get("GWSMS_BENCH_UDP_RCVBUF") or 0)
if _rcvbuf:
    import socket as _socket
    from twisted.internet import udp as _udp
    _start_reading = _udp.Port.startReading
    def _grow_then_read(self):
        try:
            if self.socket.getsockopt(_socket.SOL_SOCKET, _socket.SO_RCVBUF) < _rcvbuf:
                self.socket.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVBUF, _rcvbuf)
        except (OSError, AttributeError):
            pass
        _start_reading(self)
    _udp.Port.startReading = _grow_then_read
"""


def gc_pauses(text: str, start: float, end: float) -> dict:
    """
    Summarise the gateway's garbage collections between two monotonic times.

    @param text: the GC log (lines C{"<monotonic> <generation> <ms>"}).
    @return: C{{"gen2": count, "max_ms": longest, "total_ms": sum,
        "over_50ms": count}} of the collections in C{[start, end]}.
    """
    gen2, longest, total, over = 0, 0.0, 0.0, 0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        try:
            when, generation, ms = float(parts[0]), int(parts[1]), float(parts[2])
        except ValueError:
            continue
        if not start <= when <= end:
            continue
        gen2 += generation == 2
        longest = max(longest, ms)
        total += ms
        over += ms > 50.0
    return {"gen2": gen2, "max_ms": round(longest, 1), "total_ms": round(total, 1), "over_50ms": over}


def _sample(pid: int):
    try:
        return procstat.read(pid, time.monotonic())
    except OSError:
        return None


def _sample_tree(pid: int):
    """The gateway with its worker processes (C{[gateway] workers})."""
    try:
        return procstat.read_tree(pid, time.monotonic())
    except OSError:
        return None


def _delta(before, after):
    return after - before if before is not None and after is not None else None


def _sched(pid: int):
    return (time.monotonic(), procstat.read_schedstat(pid))


class Bench:
    """One gateway, one simulator, sipp; runs steps."""

    def __init__(self, args, out=sys.stdout):
        self.args = args
        self.out = out
        self.procs = Processes()
        self.tmp = tempfile.mkdtemp(prefix="gwsms-bench-")
        self.sim = self.gateway = self.uas = None
        self.uas_stat = os.path.join(self.tmp, "uas-stat.csv")
        #: the gateway's options with its reactor_cpus (TOML) and the load's CPUs (L{placed})
        self.gateway_options, (self.reactor_cpus, self.load_cpus, self.unpinned) = placed(
            args.gateway_options, getattr(args, "pin", False))

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    # -- set-up -----------------------------------------------------------------

    def setup(self, need_uas: bool) -> None:
        self.sim = self.procs.start([sys.executable, DRIVER, "--window", str(self.args.mo_window)],
                                    cpus=self.load_cpus, cwd=self.tmp, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=open(os.path.join(self.tmp, "smsc.log"), "wb"), bufsize=0)
        hello = self._sim_line(15)
        if "listening" not in hello:
            raise BenchError("SMSC simulator did not start: %s" % (hello,))
        self.smsc_port = hello["listening"]
        self.sip_port, self.uas_port = free_port(), free_port()
        self.uac_ports = [free_port() for _ in range(max(1, self.args.uacs))]
        self.uac_port = self.uac_ports[0]
        self.config = os.path.join(self.tmp, "gwsms.toml")
        with open(self.config, "w") as f:
            f.write(gateway_config(self.tmp, self.sip_port, self.args.sip_reply,
                                   self.gateway_options, getattr(self.args, "sip_options", ())))
        self._gwsms("smsc", "add", "bench", "--ip", "127.0.0.1", "--port", str(self.smsc_port),
                    "--system-id", "bench", "--password", "bench", "--window", str(self.args.window))
        self._gwsms("route", "add", "--prefix", "", "--smsc", "bench")
        self._gwsms("route", "add", "--direction", "mo", "--prefix", "",
                    "--sip-uri", "sip:bench@127.0.0.1:%d" % self.uas_port)
        if need_uas:
            self.uas = self.procs.start(
                uas_command(self.args.sipp, self.uas_port, self.uas_stat), cpus=self.load_cpus,
                cwd=self.tmp, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(self.tmp, "uas.err"), "wb"))
        self.gw_log = os.path.join(self.tmp, "twistd.log")
        gcdir = os.path.join(self.tmp, "gcdiag")
        os.mkdir(gcdir)
        with open(os.path.join(gcdir, "sitecustomize.py"), "w") as f:
            f.write(GC_LOGGER)
        self.gc_log = os.path.join(self.tmp, "gc.log")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [gcdir] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]),
            GWSMS_BENCH_GC_LOG=self.gc_log)
        if self.args.gc_threshold:
            env["GWSMS_BENCH_GC_THRESHOLD"] = self.args.gc_threshold
        if getattr(self.args, "udp_rcvbuf", None):
            env["GWSMS_BENCH_UDP_RCVBUF"] = str(self.args.udp_rcvbuf)
        self.gateway = self.procs.start(
            [os.path.join(BIN, "twistd"), "-n", "--pidfile=", "--logfile", self.gw_log,
             "gwsms", "--config", self.config],
            cwd=self.tmp, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env)
        self._wait_ready(60)

    def _gwsms(self, *argv) -> None:
        cmd = [os.path.join(BIN, "gwsms"), "--config", self.config] + list(argv)
        proc = subprocess.run(cmd, cwd=self.tmp, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise BenchError("gwsms %s failed (%d): %s" % (" ".join(argv[:2]), proc.returncode,
                                                           proc.stderr.strip() or proc.stdout.strip()))

    @property
    def expected_binds(self) -> int:
        """One SMPP bind per gateway worker process (C{--gateway-option workers=N})."""
        try:
            return max(1, int(dict(self.args.gateway_options).get("workers", "1")))
        except ValueError:
            return 1

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.gateway.poll() is not None:
                raise BenchError("gateway exited with %s: %s" % (self.gateway.returncode, _tail(self.gw_log)))
            if self.uas is not None and self.uas.poll() is not None:
                raise BenchError("sipp UAS exited: %s" % (_tail(os.path.join(self.tmp, "uas.err")),))
            if os.path.exists(os.path.join(self.tmp, "gwsms.sock")) and (
                    self.sim_progress().get("bound", 0) >= self.expected_binds):
                return
            time.sleep(0.2)
        raise BenchError("gateway not ready (socket + SMPP bind) within %d s: %s" % (timeout, _tail(self.gw_log)))

    # -- the simulator ----------------------------------------------------------

    def _sim_line(self, timeout: float) -> dict:
        ready, _, _ = select.select([self.sim.stdout], [], [], timeout)
        if not ready:
            raise BenchError("SMSC simulator did not answer within %d s" % (timeout,))
        line = self.sim.stdout.readline()
        if not line:
            raise BenchError("SMSC simulator exited: %s" % (_tail(os.path.join(self.tmp, "smsc.log")),))
        return json.loads(line)

    def sim_command(self, command: str) -> dict:
        self.sim.stdin.write(command.encode("ascii") + b"\n")
        reply = self._sim_line(10)
        if "error" in reply:
            raise BenchError("SMSC simulator refused %r: %s" % (command, reply["error"]))
        return reply

    def sim_stats(self) -> dict:
        """@return: the simulator's counters with the MO latency percentiles (sorts every latency)."""
        return self.sim_command("stats")

    def sim_progress(self) -> dict:
        """@return: the simulator's counters without percentiles (cheap: what polls ask)."""
        return self.sim_command("progress")

    def uas_stats(self) -> dict:
        try:
            return ladder.parse_stat_csv(read_stat_file(self.uas_stat))
        except (OSError, ladder.ParseError):
            return {"successful": 0, "retransmissions": 0, "dead_call_msgs": 0, "failed": 0}

    # -- steps ----------------------------------------------------------------------

    def _start_profile(self, name: str, seconds: float):
        """Start py-spy on the gateway for the step (with --profile)."""
        if not self.args.profile:
            return None
        os.makedirs(self.args.profile, exist_ok=True)
        output = os.path.join(self.args.profile, name + ".txt")
        proc = self.procs.start(pyspy.command(self.args.pyspy, self.gateway.pid, seconds, output),
                                cpus=self.load_cpus, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=open(output + ".err", "wb"))
        return proc, output

    def _finish_profile(self, step, profile) -> None:
        if profile is None:
            return
        proc, output = profile
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            pass
        self.procs.stop(proc)
        try:
            with open(output) as f:
                step.profile = pyspy.summarise(f.read())
        except OSError:
            step.profile = {"error": "py-spy wrote nothing: " + _tail(output + ".err", 2)}
            return
        self.say(pyspy.format_summary(step.profile))

    def _finish(self, step, gw0, gw_mid, gw_end, sim0, sim_mid, handled, sched0=None, sched1=None) -> ladder.Step:
        if sched0 and sched1:
            try:
                with open(self.gc_log) as f:
                    step.gc = gc_pauses(f.read(), sched0[0], sched1[0])
            except OSError:
                pass
        if sched0 and sched1 and sched0[1] and sched1[1]:
            wait = procstat.wait_percent(sched0[1], sched1[1], sched1[0] - sched0[0])
            step.wait_percent = round(wait, 1) if wait is not None else None
        if gw0 and gw_mid:
            step.cpu_percent = round(procstat.cpu_percent(gw0, gw_mid), 1)
        if gw0 and gw_end:
            value = procstat.cpu_us_per_message(gw0, gw_end, handled)
            step.cpu_us_per_msg = round(value, 1) if value is not None else None
            step.rss_mb = round(gw_end.rss_bytes() / 1e6, 1)
            share = procstat.system_share(gw0, gw_end)
            step.cpu_sys_share = round(share, 2) if share is not None else None
        if sim0 and sim_mid:
            step.other_cpu_percent = round(procstat.cpu_percent(sim0, sim_mid), 1)
        incomplete = step.reason  # set by the step when something did not finish in time
        ladder.judge(step)
        if incomplete:
            step.passed = False
            step.reason = incomplete + ("" if step.reason == "ok" else "; " + step.reason)
        if self.gateway.poll() is not None:
            step.passed = False
            step.reason += "; gateway exited (%s): %s" % (self.gateway.returncode, _tail(self.gw_log, 2))
        return step

    def _start_uac(self, stepdir: str, port: int, rate: int, count: int, bound: int) -> subprocess.Popen:
        os.mkdir(stepdir)
        return self.procs.start(
            uac_command(self.args.sipp, "127.0.0.1:%d" % self.sip_port, port, rate, count, stepdir, bound),
            cpus=self.load_cpus, cwd=stepdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(stepdir, "sipp.err"), "wb"))

    def mt_step(self, rate: int) -> ladder.Step:
        """
        SIP -> SMPP: sipp UAC(s) at C{rate} in total (C{--uacs} processes,
        each from its own port); delivered = simulator submits.
        """
        count = max(1, int(rate * self.args.duration))
        step = ladder.Step("sip->smpp", rate)
        stepdir = os.path.join(self.tmp, "mt-%d" % rate)
        os.mkdir(stepdir)
        n = max(1, min(self.args.uacs, count))
        plan = [(os.path.join(stepdir, "uac%d" % i), port, r, c) for i, (port, r, c) in enumerate(
            zip(self.uac_ports[:n], ladder.split_evenly(rate, n), ladder.split_evenly(count, n)))]
        s0 = self.sim_progress()
        drops0 = procstat.read_udp_drops(self.sip_port)
        gw0, sim0, sched0 = _sample_tree(self.gateway.pid), _sample(self.sim.pid), _sched(self.gateway.pid)
        bound = int(self.args.duration * 3 + 30)
        uacs = [self._start_uac(d, port, max(1, r), c, bound) for d, port, r, c in plan if c > 0]
        profile = self._start_profile("mt-%d" % rate, self.args.duration * 0.8)
        first = {p.pid: _sample(p.pid) for p in uacs}
        last = dict(first)
        finish = time.monotonic() + bound + 10
        while any(p.poll() is None for p in uacs) and time.monotonic() < finish:
            time.sleep(0.25)
            for p in uacs:
                last[p.pid] = _sample(p.pid) or last[p.pid]  # its CPU, up to its last moments
        if any(p.poll() is None for p in uacs):
            step.reason = "sipp did not finish"
        for p in uacs:
            self.procs.stop(p)
        cpu = [procstat.cpu_percent(first[p.pid], last[p.pid]) for p in uacs if first[p.pid] and last[p.pid]]
        step.sipp_cpu_percent = round(sum(cpu), 1) if cpu else None
        gw_mid, sim_mid, sched1 = _sample_tree(self.gateway.pid), _sample(self.sim.pid), _sched(self.gateway.pid)
        # "accepted" mode answers before the submit: let the submits settle.
        s1, previous, settle = self.sim_progress(), -1, time.monotonic() + 10
        while s1["submits"] != previous and time.monotonic() < settle and s1["submits"] - s0["submits"] < count:
            previous = s1["submits"]
            time.sleep(0.5)
            s1 = self.sim_progress()
        gw_end = _sample_tree(self.gateway.pid)
        step.udp_drops = _delta(drops0, procstat.read_udp_drops(self.sip_port))
        stats, rtts, errors = [], [], {}
        for d, _port, _r, c in plan:
            if c <= 0:
                continue
            try:
                with open(os.path.join(d, "stat.csv")) as f:
                    stats.append(ladder.parse_stat_csv(f.read()))
            except (OSError, ladder.ParseError) as e:
                raise BenchError("no sipp statistics for %d/s: %s (%s)" % (
                    rate, e, _tail(os.path.join(d, "sipp.err"), 2)))
            rtts += ladder.read_rtts(d)
            try:
                with open(os.path.join(d, "errors.log"), "rb") as f:
                    for code, number in ladder.status_counts(f.read()).items():
                        errors[str(code)] = errors.get(str(code), 0) + number
            except OSError:
                pass
        st = ladder.merge_stats(stats)
        step.errors = errors
        step.sent = st["created"]
        step.answered = st["successful"]
        step.delivered = s1["submits"] - s0["submits"]
        step.elapsed = st["elapsed"]
        step.retransmissions = st["retransmissions"]
        step.timeouts = st["timeouts"]
        if st["failed"] and not step.errors:
            step.errors = {k: v for k, v in st["failures"].items() if k not in ("MaxUDPRetrans", "TimeoutOnRecv")}
        step.p50_ms, step.p99_ms = ladder.percentile(rtts, 50) if rtts else None, \
            ladder.percentile(rtts, 99) if rtts else None
        self._finish_profile(step, profile)
        return self._finish(step, gw0, gw_mid, gw_end, sim0, sim_mid, step.delivered, sched0, sched1)

    def mo_step(self, rate: int) -> ladder.Step:
        """SMPP -> SIP: simulator deliver_sm at C{rate}; delivered = MESSAGEs at the sipp UAS."""
        count = max(1, int(rate * self.args.duration))
        step = ladder.Step("smpp->sip", rate)
        s0, u0 = self.sim_progress(), self.uas_stats()
        drops0 = procstat.read_udp_drops(self.uas_port)
        gw0, sim0 = _sample_tree(self.gateway.pid), _sample(self.sim.pid)
        uas0, sched0 = _sample(self.uas.pid), _sched(self.gateway.pid)
        t0 = time.monotonic()
        self.sim_command("mo %d %d" % (rate, count))
        profile = self._start_profile("mo-%d" % rate, self.args.duration * 0.8)
        deadline = t0 + self.args.duration * 3 + 30
        while time.monotonic() < deadline:
            time.sleep(0.1)
            s1 = self.sim_progress()
            if s1["mo_left"] == 0 and s1["mo_answers"] + s1["mo_errors"] >= count:
                break
        else:
            step.reason = "simulator did not get every deliver_sm_resp in time"
        s1 = self.sim_stats()
        acked_at = time.monotonic()
        gw_mid, sim_mid, sched1 = _sample_tree(self.gateway.pid), _sample(self.sim.pid), _sched(self.gateway.pid)
        acked = s1["mo_acked"] - s0["mo_acked"]
        # Drain: the MESSAGEs still on their way to the UAS (stat file every second).
        u1, progress_at, sip_done = self.uas_stats(), time.monotonic(), None
        drain_deadline = acked_at + 30
        while time.monotonic() < drain_deadline:
            if u1["successful"] - u0["successful"] >= acked:
                sip_done = time.monotonic()
                break
            if time.monotonic() - progress_at > 5:
                break
            time.sleep(0.2)
            u2 = self.uas_stats()
            if u2["successful"] != u1["successful"]:
                progress_at = time.monotonic()
            u1 = u2
        time.sleep(1.1)  # one more stat dump: late retransmissions
        u1 = self.uas_stats()
        gw_end, uas1 = _sample_tree(self.gateway.pid), _sample(self.uas.pid)
        step.udp_drops = _delta(drops0, procstat.read_udp_drops(self.uas_port))
        if uas0 and uas1:
            step.sipp_cpu_percent = round(procstat.cpu_percent(uas0, uas1), 1)
        step.sent = s1["mo_sent"] - s0["mo_sent"]
        step.answered = acked
        step.delivered = u1["successful"] - u0["successful"]
        # Rate over the precise deliver_sm span (the simulator's clock); the
        # SIP leg is judged by how far it lagged (drain_s, 1 s resolution).
        span = s1.get("mo_span_s")
        step.elapsed = span if span else acked_at - t0
        if sip_done is not None:
            step.drain_s = round(max(0.0, sip_done - 1.0 - acked_at), 1)
        step.retransmissions = (u1["retransmissions"] - u0["retransmissions"]
                                + u1["dead_call_msgs"] - u0["dead_call_msgs"])
        statuses = dict(s1.get("mo_statuses") or {})
        step.timeouts = statuses.pop("ResponseTimeout", 0)
        step.errors = statuses
        step.p50_ms, step.p99_ms = s1.get("mo_p50_ms"), s1.get("mo_p99_ms")
        step.window_held_percent = s1.get("mo_window_held_percent")
        self._finish_profile(step, profile)
        return self._finish(step, gw0, gw_mid, gw_end, sim0, sim_mid, max(acked, step.delivered),
                            sched0, sched1)

    # -- memory ---------------------------------------------------------------------

    def memory(self, direction: str, rate: int, minutes: float) -> dict:
        seconds = minutes * 60
        count = int(rate * seconds)
        t0 = time.monotonic()
        sipp = None
        if direction == "mt":
            stepdir = os.path.join(self.tmp, "memory")
            os.mkdir(stepdir)
            sipp = self.procs.start(
                [self.args.sipp, "-sf", UAC_XML, "127.0.0.1:%d" % self.sip_port, "-i", "127.0.0.1",
                 "-p", str(self.uac_port), "-r", str(rate), "-rp", "1000", "-m", str(count),
                 "-l", str(max(500, rate)), "-trace_stat", "-stf", os.path.join(stepdir, "stat.csv"),
                 "-fd", "10", "-nostdin", "-timeout", "%ds" % int(seconds + 60), "-buff_size", "8388608",
                 "-default_behaviors", "all,-bye"],
                cpus=self.load_cpus, cwd=stepdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
        else:
            self.sim_command("mo %d %d" % (rate, count))
        samples = []
        while time.monotonic() - t0 < seconds:
            time.sleep(min(10.0, max(0.0, seconds - (time.monotonic() - t0))))
            s = _sample_tree(self.gateway.pid)
            if s is None:
                break
            samples.append((round(time.monotonic() - t0, 1), round(s.rss_bytes() / 1e6, 1)))
            self.say("memory: %6.0f s  RSS %7.1f MB" % samples[-1])
        load = {}
        if sipp is not None:
            try:
                sipp.wait(30)  # the last calls' answers and sipp's final dump
            except subprocess.TimeoutExpired:
                pass
            self.procs.stop(sipp)
            try:
                with open(os.path.join(stepdir, "stat.csv")) as f:
                    st = ladder.parse_stat_csv(f.read())
                load = {k: st[k] for k in ("created", "successful", "failed", "retransmissions", "timeouts")}
            except (OSError, ladder.ParseError) as e:
                load = {"error": str(e)}
        else:
            drain = time.monotonic() + 30
            stats = self.sim_progress()
            while time.monotonic() < drain and (
                    stats["mo_left"] or self.uas_stats()["successful"] < stats["mo_acked"]):
                time.sleep(0.5)
                stats = self.sim_progress()
            stats = self.sim_stats()
            load = {k: stats.get(k) for k in ("mo_sent", "mo_acked", "mo_failed", "mo_p50_ms", "mo_p99_ms")}
            load["uas_received"] = self.uas_stats()["successful"]
        result = memory_verdict(samples)
        result.update(direction=DIRECTIONS[direction], rate=rate, minutes=minutes, samples=samples, load=load)
        return result

    def close(self) -> None:
        # Reverse start order: the gateway (unbinds gracefully on SIGTERM)
        # before the sipp UAS and the simulator.
        self.procs.stop_all()
        if self.args.keep:
            self.say("kept %s" % (self.tmp,))
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
