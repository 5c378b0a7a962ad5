# -*- test-case-name: tests.test_bench_sim_load -*-
"""
How much CPU the benchmark's own SMSC simulator costs per PDU.

Starts C{bench/smsc_driver.py} (the shipped L{gwsms.sim.smsc.SimulatedSMSC}
in its own process, as C{make bench} runs it), binds one lean raw-socket
ESME to it from this process, and drives it:

  - C{mt}: submit_sm at C{--rate} with at most C{--window} outstanding
    (as the gateway's bind does); the simulator answers submit_sm_resp.
  - C{mo}: the driver's C{mo RATE COUNT} command; this ESME answers every
    deliver_sm with deliver_sm_resp at once.

Prints per phase the simulator's CPU (from C{/proc/<pid>/stat}) in % of
one core and in microseconds per PDU handled, the achieved rate, and this
client's own CPU.  Usage:

  .venv/bin/python bench/sim_load.py [--direction mt|mo|both] [--rate 12000]
                                     [--duration 5] [--window 100] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import procstat  # noqa: E402

DRIVER = os.path.join(HERE, "smsc_driver.py")
HEADER = struct.Struct("!IIII")
BIND_TRANSCEIVER = 0x00000009
SUBMIT_SM = 0x00000004
SUBMIT_SM_RESP = 0x80000004
DELIVER_SM = 0x00000005
DELIVER_SM_RESP = 0x80000005
ENQUIRE_LINK = 0x00000015
TICK = 0.001


def cstr(text: str) -> bytes:
    return text.encode("ascii") + b"\0"


def submit_sm_body(text: bytes = b"gwsms bench message 1234567") -> bytes:
    """
    @return: a submit_sm body like the gateway's: international source and
        destination, no receipt, GSM default alphabet.
    """
    return (cstr("") + bytes([1, 1]) + cstr("4915112345678") + bytes([1, 1]) + cstr("491701234567")
            + bytes([0, 0, 0]) + cstr("") + cstr("") + bytes([0, 0, 0, 0, len(text)]) + text)


def bind_pdu(seq: int) -> bytes:
    body = cstr("load") + cstr("x") + cstr("") + bytes([0x34, 0, 0]) + cstr("")
    return HEADER.pack(16 + len(body), BIND_TRANSCEIVER, 0, seq) + body


class Esme:
    """
    A raw-socket ESME kept as lean as possible (so its own CPU stays small):
    prebuilt submit_sm bytes with the sequence number patched in, header
    scanning only.
    """

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.seq = 1
        self.outstanding = 0
        self.submit_resps = 0
        self.submit_errors = 0
        self.delivers = 0
        body = submit_sm_body()
        self.submit_head = HEADER.pack(16 + len(body), SUBMIT_SM, 0, 0)[:12]
        self.submit_body = body

    def bind(self) -> None:
        self.sock.sendall(bind_pdu(self.seq))
        self.seq += 1
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            self.buf += self.sock.recv(65536)
            if len(self.buf) >= 16:
                length, cid, status, _ = HEADER.unpack_from(self.buf)
                if len(self.buf) >= length:
                    del self.buf[:length]
                    if cid != BIND_TRANSCEIVER | 0x80000000 or status:
                        raise RuntimeError("bind refused: 0x%08x status 0x%x" % (cid, status))
                    self.sock.setblocking(False)
                    return
        raise RuntimeError("no bind_transceiver_resp")

    def submits(self, n: int) -> bytes:
        head, body, seq = self.submit_head, self.submit_body, self.seq
        out = []
        for s in range(seq, seq + n):
            out.append(head)
            out.append(s.to_bytes(4, "big"))
            out.append(body)
        self.seq = seq + n
        self.outstanding += n
        return b"".join(out)

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = self.sock.send(view)
            except BlockingIOError:
                select.select([], [self.sock], [], 0.1)
                continue
            view = view[sent:]

    def receive(self) -> None:
        """Read what is there; count submit_sm_resps, answer deliver_sm and enquire_link."""
        try:
            while True:
                data = self.sock.recv(1 << 18)
                if not data:
                    raise ConnectionError("simulator closed the connection")
                self.buf += data
                if len(data) < 1 << 18:
                    break
        except BlockingIOError:
            pass
        buf = self.buf
        pos, size, answers = 0, len(buf), []
        unpack = HEADER.unpack_from
        while size - pos >= 16:
            length, cid, status, seq = unpack(buf, pos)
            if size - pos < length:
                break
            pos += length
            if cid == SUBMIT_SM_RESP:
                self.outstanding -= 1
                self.submit_resps += 1
                if status:
                    self.submit_errors += 1
            elif cid == DELIVER_SM:
                self.delivers += 1
                answers.append(HEADER.pack(17, DELIVER_SM_RESP, 0, seq) + b"\0")
            elif cid == ENQUIRE_LINK:
                answers.append(HEADER.pack(16, ENQUIRE_LINK | 0x80000000, 0, seq))
        del buf[:pos]
        if answers:
            self.send(b"".join(answers))

    def close(self) -> None:
        self.sock.close()


class Driver:
    """The simulator process (bench/smsc_driver.py) and its command pipe."""

    def __init__(self, window: int, python: str = sys.executable, argv=()):
        self.proc = subprocess.Popen([python, DRIVER, "--window", str(window)] + list(argv),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
                                     start_new_session=True)
        hello = self.line(15)
        if "listening" not in hello:
            raise RuntimeError("simulator did not start: %r" % (hello,))
        self.port = hello["listening"]

    def line(self, timeout: float) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise RuntimeError("simulator did not answer within %g s" % (timeout,))
        text = self.proc.stdout.readline()
        if not text:
            raise RuntimeError("simulator exited")
        return json.loads(text)

    def command(self, text: str) -> dict:
        self.proc.stdin.write(text.encode("ascii") + b"\n")
        return self.line(10)

    def cpu(self):
        return procstat.read(self.proc.pid, time.monotonic())

    def close(self) -> None:
        try:
            self.command("quit")
        except (RuntimeError, OSError, ValueError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def run_mt(driver: Driver, esme: Esme, rate: float, duration: float, window: int, tick: float = TICK) -> dict:
    """
    submit_sm at C{rate} for C{duration} s, at most C{window} outstanding,
    written every C{tick} seconds (what accrued since; 0: as soon as one
    is due, i.e. mostly one PDU per write).
    """
    total = int(rate * duration)
    sent = 0
    start_resps = esme.submit_resps
    cpu0, own0 = driver.cpu(), _own_cpu()
    t0 = last = next_send = time.monotonic()
    credit = 0.0
    deadline = t0 + duration * 3 + 10
    while esme.submit_resps - start_resps < total and time.monotonic() < deadline:
        now = time.monotonic()
        if now >= next_send:
            next_send += tick
            if next_send < now:
                next_send = now + tick
            credit = min(credit + (now - last) * rate, rate * 0.05 + 1)
            last = now
            n = min(int(credit), window - esme.outstanding, total - sent)
            if n > 0:
                credit -= n
                sent += n
                esme.send(esme.submits(n))
        ready, _, _ = select.select([esme.sock], [], [], max(0.0, min(next_send - time.monotonic(), 0.01))
                                    if tick else 0.0005)
        if ready:
            esme.receive()
    elapsed = time.monotonic() - t0
    cpu1, own1 = driver.cpu(), _own_cpu()
    done = esme.submit_resps - start_resps
    return _result("mt", rate, done, elapsed, cpu0, cpu1, own1 - own0, errors=esme.submit_errors)


def run_mo(driver: Driver, esme: Esme, rate: float, duration: float) -> dict:
    """The driver sends C{rate * duration} deliver_sm at C{rate}; answer each at once."""
    total = int(rate * duration)
    start = esme.delivers
    cpu0, own0 = driver.cpu(), _own_cpu()
    t0 = time.monotonic()
    driver.command("mo %d %d" % (rate, total))
    deadline = t0 + duration * 3 + 10
    while esme.delivers - start < total and time.monotonic() < deadline:
        ready, _, _ = select.select([esme.sock], [], [], 0.05)
        if ready:
            esme.receive()
    elapsed = time.monotonic() - t0
    time.sleep(0.05)  # the last resps reach the simulator
    cpu1, own1 = driver.cpu(), _own_cpu()
    stats = driver.command("stats")
    result = _result("mo", rate, esme.delivers - start, elapsed, cpu0, cpu1, own1 - own0,
                     errors=stats.get("mo_errors", 0))
    result.update(p50_ms=stats.get("mo_p50_ms"), p99_ms=stats.get("mo_p99_ms"))
    return result


def _result(direction, rate, done, elapsed, cpu0, cpu1, own_cpu, errors=0) -> dict:
    sim_cpu = cpu1.cpu_seconds() - cpu0.cpu_seconds()
    return {
        "direction": direction, "offered": rate, "pdus": done, "elapsed_s": round(elapsed, 2),
        "achieved": round(done / elapsed, 1) if elapsed > 0 else None, "errors": errors,
        "sim_cpu_percent": round(100.0 * sim_cpu / elapsed, 1) if elapsed > 0 else None,
        "sim_us_per_pdu": round(1e6 * sim_cpu / done, 1) if done else None,
        "client_us_per_pdu": round(1e6 * own_cpu / done, 1) if done else None,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bench/sim_load.py", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--direction", choices=("mt", "mo", "both"), default="both")
    parser.add_argument("--rate", type=float, default=12000.0, help="PDUs per second (default 12000)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per phase (default 5)")
    parser.add_argument("--window", type=int, default=100, help="outstanding PDUs each way (default 100)")
    parser.add_argument("--tick", type=float, default=TICK,
                        help="mt: seconds between the client's writes (default %g; 0: write each submit_sm "
                             "as soon as it is due)" % (TICK,))
    parser.add_argument("--json", action="store_true", help="print JSON lines only")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0 or args.window < 1 or args.tick < 0:
        sys.stderr.write("sim_load: --rate and --duration must be > 0, --window >= 1, --tick >= 0\n")
        return 2
    try:
        driver = Driver(args.window)
    except (RuntimeError, OSError) as e:
        sys.stderr.write("sim_load: %s\n" % (e,))
        return 1
    try:
        esme = Esme(driver.port)
        esme.bind()
        results = []
        # a short warm-up so imports and first allocations are not measured
        run_mt(driver, esme, 2000, 0.3, args.window)
        if args.direction in ("mt", "both"):
            results.append(run_mt(driver, esme, args.rate, args.duration, args.window, args.tick))
        if args.direction in ("mo", "both"):
            results.append(run_mo(driver, esme, args.rate, args.duration))
        for r in results:
            if args.json:
                print(json.dumps(r))
            else:
                print("%-3s offered %6d/s achieved %8.1f/s  %6d PDUs  sim CPU %5.1f %%  %5.1f us/PDU  "
                      "client %5.1f us/PDU  errors %d%s" % (
                          r["direction"], r["offered"], r["achieved"] or 0, r["pdus"], r["sim_cpu_percent"] or 0,
                          r["sim_us_per_pdu"] or 0, r["client_us_per_pdu"] or 0, r["errors"],
                          "  p50/p99 %s/%s ms" % (r["p50_ms"], r["p99_ms"]) if "p99_ms" in r else ""))
        esme.close()
    except (RuntimeError, OSError, ConnectionError) as e:
        sys.stderr.write("sim_load: %s\n" % (e,))
        return 1
    finally:
        driver.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
