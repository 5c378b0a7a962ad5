# -*- test-case-name: tests.test_bench_minimal_mt -*-
"""
Calibration: the issue's "minimal pipeline", on this machine, now.

Issue 5 set its targets from a throwaway CPython + Twisted pipeline that
does only this: read a MESSAGE, send a C{submit_sm} (window of 100), answer
202 after the C{submit_sm_resp}; with C{--durable}, a SQLite (WAL,
synchronous=FULL) group commit in one writer thread before the submit and
a batched state update after the response.  No routing, no duplicate keys,
no retransmission handling, no overload control, no answer other than 202:
not a gateway, a yardstick.

This box's speed drifts (the same gateway code has measured 30-40 % apart
within an hour), so a figure of C{make bench} means little alone.  Run this
next to it: the same sipp scenario (C{bench/sipp/uac_message.xml}) and the
same simulator (C{bench/smsc_driver.py}), in this process, and it prints
the process's CPU per message, its reactor thread's share and sipp's
response times (p50, p99), as C{bench/profile_mt.py} does for the gateway.

  .venv/bin/python bench/minimal_mt.py --rate 10000 --count 100000 --durable

Uses only 127.0.0.1 and a temporary directory, removed at the end.  The sipp
command is make bench's own (L{harness.uac_command}).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import queue
import resource
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import ladder  # noqa: E402
import profile_mt  # noqa: E402

HEADER = struct.Struct(">IIII")
BIND_TRANSCEIVER, SUBMIT_SM, ENQUIRE_LINK = 0x09, 0x04, 0x15
RESPONSE = 0x80000000
SOURCE = b"4915112345678"
#: the header fields a response copies (RFC 3261 8.2.6), by their first four octets
_ECHOED = (b"Via:", b"From", b"To: ", b"Call", b"CSeq")


def read_message(data: bytes):
    """
    The little the pipeline reads of a MESSAGE.

    @return: C{(lines the 202 copies, the To line tagged, destination
        number, body, Call-ID)}.
    """
    end = data.find(b"\r\n\r\n")
    lines = data[:end].split(b"\r\n")
    ruri = lines[0].split(b" ")[1]
    keep = []
    call_id = b""
    for line in lines[1:]:
        head = line[:4]
        if head in _ECHOED:
            if head == b"To: ":
                line += b";tag=minimal"
            elif head == b"Call":
                call_id = line[line.find(b":") + 1:].strip()
            keep.append(line)
    return keep, ruri[ruri.find(b":") + 1:ruri.find(b"@")], data[end + 4:], call_id


def answer_202(keep) -> bytes:
    return b"SIP/2.0 202 Accepted\r\n" + b"\r\n".join(keep) + b"\r\nContent-Length: 0\r\n\r\n"


def submit_sm(sequence: int, dest: bytes, text: bytes) -> bytes:
    """A C{submit_sm}: TON/NPI 1/1 both ends, every other field at its default."""
    body = b"".join((b"\0\x01\x01", SOURCE, b"\0\x01\x01", dest, b"\0",
                     b"\0\0\0\0\0\0\0\0\0", bytes((len(text),)), text))
    return HEADER.pack(16 + len(body), SUBMIT_SM, 0, sequence) + body


class Smpp:
    """A transceiver session: a window of submits, the rest queued."""

    def __init__(self, window: int = 100):
        self.window = window
        self.queue: collections.deque = collections.deque()
        self.pending: dict = {}
        self.sequence = 1
        self.buffer = b""
        self.bound = False
        self.transport = None

    def connected(self, transport) -> None:
        self.transport = transport
        body = b"bench\0x\0\0\x34\0\0\0"
        transport.write(HEADER.pack(16 + len(body), BIND_TRANSCEIVER, 0, 1) + body)

    def submit(self, dest: bytes, text: bytes, done) -> None:
        """Send (or queue) a submit_sm; C{done(status, message id)} on its response."""
        self.queue.append((dest, text, done))
        if self.bound:
            self.pump()

    def pump(self) -> None:
        waiting, pending, out = self.queue, self.pending, []
        while waiting and len(pending) < self.window:
            dest, text, done = waiting.popleft()
            self.sequence += 1
            pending[self.sequence] = done
            out.append(submit_sm(self.sequence, dest, text))
        if out:
            self.transport.write(b"".join(out))

    def data(self, data: bytes) -> None:
        buffer = self.buffer + data
        pos, size = 0, len(buffer)
        while size - pos >= 16:
            length, command, status, sequence = HEADER.unpack_from(buffer, pos)
            if size - pos < length:
                break
            if command == RESPONSE | SUBMIT_SM:
                end = buffer.find(b"\0", pos + 16, pos + length)
                self.pending.pop(sequence)(status, buffer[pos + 16:end])
            elif command == RESPONSE | BIND_TRANSCEIVER:
                if status:
                    raise RuntimeError("bind refused: status 0x%08x" % status)
                self.bound = True
            elif command == ENQUIRE_LINK:
                self.transport.write(HEADER.pack(16, RESPONSE | ENQUIRE_LINK, 0, sequence))
            pos += length
        self.buffer = buffer[pos:]
        if self.bound:
            self.pump()


class GroupCommit:
    """
    One writer thread: the rows and updates gathered while a commit runs
    go in the next one; C{then} callables run in the reactor after it.
    """

    def __init__(self, reactor, path: str):
        self.reactor = reactor
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY,"
                        " call_id TEXT, source TEXT, dest TEXT, body TEXT, state TEXT,"
                        " smsc_id TEXT, created REAL)")
        self.next_id = 1 + (self.db.execute("SELECT max(id) FROM messages").fetchone()[0] or 0)
        self.rows, self.updates, self.then = [], [], []
        self.busy = False
        self.commits = 0
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def insert(self, call_id: bytes, dest: bytes, body: bytes, then) -> int:
        message_id = self.next_id
        self.next_id += 1
        self.rows.append((message_id, call_id.decode("utf-8", "replace"), SOURCE.decode(),
                          dest.decode("utf-8", "replace"), body.decode("utf-8", "replace"),
                          "queued", "", time.time()))
        self.then.append(then)
        self.flush()
        return message_id

    def submitted(self, message_id: int, smsc_id: bytes) -> None:
        self.updates.append((smsc_id.decode("latin-1"), message_id))
        self.flush()

    def flush(self) -> None:
        if self.busy or not (self.rows or self.updates):
            return
        self.busy = True
        self._jobs.put((self.rows, self.updates, self.then))
        self.rows, self.updates, self.then = [], [], []

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            rows, updates, then = job
            self.db.execute("BEGIN")
            if rows:
                self.db.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            if updates:
                self.db.executemany(
                    "UPDATE messages SET state = 'submitted', smsc_id = ? WHERE id = ?", updates)
            self.db.execute("COMMIT")
            self.reactor.callFromThread(self._committed, then)

    def _committed(self, then) -> None:
        self.busy = False
        self.commits += 1
        for f in then:
            f()
        self.flush()

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join()
        self.db.close()


def run(rate: int, count: int, durable: bool, window: int = 100, out=sys.stdout) -> dict:
    """
    Run the pipeline against sipp (C{count} MESSAGEs at C{rate}/s) and the
    shipped simulator.

    @return: C{{"rate", "count", "durable", "achieved", "cpu_us_per_msg",
        "reactor_us_per_msg", "commits", "sipp": {...}}}, and C{"p50_ms"},
        C{"p99_ms"} when sipp wrote its response times.
    """
    from twisted.internet import protocol, reactor

    tmp = tempfile.mkdtemp(prefix="gwsms-minimal-")
    procs: list = []
    store = None
    result: dict = {"rate": rate, "count": count, "durable": durable}
    try:
        _sim, smsc_port = profile_mt.start_simulator(tmp, procs, window)
        smpp = Smpp(window)
        store = GroupCommit(reactor, os.path.join(tmp, "minimal.sqlite3")) if durable else None

        class SmppClient(protocol.Protocol):
            def connectionMade(self):  # noqa: N802 (Twisted's name)
                self.transport.setTcpNoDelay(True)
                smpp.connected(self.transport)

            def dataReceived(self, data):  # noqa: N802
                smpp.data(data)

        class Sip(protocol.DatagramProtocol):
            def datagramReceived(self, data, addr):  # noqa: N802
                keep, dest, body, call_id = read_message(data)
                sock = self.transport.socket

                def answer():
                    try:
                        sock.sendto(answer_202(keep), addr)
                    except BlockingIOError:
                        pass  # lost like any datagram: sipp retransmits

                if store is None:
                    smpp.submit(dest, body, lambda status, smsc_id: answer())
                    return

                def submitted(status, smsc_id):
                    store.submitted(message_id, smsc_id)
                    answer()

                message_id = store.insert(call_id, dest, body,
                                          lambda: smpp.submit(dest, body, submitted))

        protocol.ClientCreator(reactor, SmppClient).connectTCP("127.0.0.1", smsc_port)
        port = reactor.listenUDP(0, Sip(), interface="127.0.0.1")
        port.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        stat = os.path.join(tmp, "stat.csv")
        marks: dict = {"tries": 200}

        def start():
            if not smpp.bound:
                marks["tries"] -= 1
                if marks["tries"] < 0:
                    marks["error"] = "no SMPP bind"
                    reactor.stop()
                else:
                    reactor.callLater(0.05, start)
                return
            # the UAC of make bench's SIP -> SMPP steps
            sipp = subprocess.Popen(
                harness.uac_command("sipp", "127.0.0.1:%d" % port.getHost().port,
                                    profile_mt.free_port(), rate, count, tmp, 120),
                cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
            procs.append(sipp)
            marks["start"] = (time.monotonic(), resource.getrusage(resource.RUSAGE_SELF),
                              time.thread_time())

            def wait():
                if sipp.poll() is None:
                    reactor.callLater(0.05, wait)
                    return
                marks["end"] = (time.monotonic(), resource.getrusage(resource.RUSAGE_SELF),
                                time.thread_time())
                reactor.stop()
            wait()

        reactor.callWhenRunning(start)
        reactor.run()
        if "error" in marks:
            raise RuntimeError(marks["error"])
        (t0, r0, m0), (t1, r1, m1) = marks["start"], marks["end"]
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        result.update(achieved=round(count / (t1 - t0), 1),
                      cpu_us_per_msg=round(cpu / count * 1e6, 1),
                      reactor_us_per_msg=round((m1 - m0) / count * 1e6, 1),
                      commits=store.commits if store is not None else None,
                      sipp=profile_mt.sipp_totals(stat))
        rtts = ladder.read_rtts(tmp)
        if rtts:
            result.update(p50_ms=ladder.percentile(rtts, 50), p99_ms=ladder.percentile(rtts, 99))
        out.write("minimal pipeline%s, rate %d count %d: %.0f msg/s, %.1f us CPU/msg"
                  " (reactor thread %.1f)%s\n  sipp: %s\n" % (
                      " (durable)" if durable else "", rate, count, result["achieved"],
                      result["cpu_us_per_msg"], result["reactor_us_per_msg"],
                      ", sipp response times p50 %.1f ms, p99 %.1f ms" % (
                          result["p50_ms"], result["p99_ms"]) if rtts else "",
                      ", ".join("%s %s" % item for item in result["sipp"].items())))
        return result
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if store is not None:
            store.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--rate", type=int, default=8000, help="MESSAGEs per second (8000)")
    parser.add_argument("--count", type=int, default=80000, help="MESSAGEs in all (80000)")
    parser.add_argument("--window", type=int, default=100, help="SMPP window (100)")
    parser.add_argument("--durable", action="store_true",
                        help="SQLite group commit before the submit, state update after")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args(argv)
    if args.rate < 1 or args.count < 1 or args.window < 1:
        parser.error("--rate, --count and --window must be at least 1")
    if shutil.which("sipp") is None:
        parser.error("sipp is not on the PATH (Debian package sip-tester)")
    result = run(args.rate, args.count, args.durable, args.window)
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
