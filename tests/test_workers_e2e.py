"""
End-to-end: C{twistd -n gwsms} with C{[gateway] workers = 2} on 127.0.0.1
against the Perl SMSC (tests/peers/smsc.pl).  MESSAGEs come from 32
different UDP source ports (the kernel spreads them over the two workers'
SO_REUSEPORT sockets), each sent again from another port after its 202
(a retransmission that may land on the other worker).  Checked: every
message is submitted exactly once, both workers stored some (the
C{owner} column), worker 1 bound as a transmitter, and stopping twistd
stops the worker process.
"""

from __future__ import annotations

import os
import re
import sys
import uuid

from twisted.internet import defer, protocol, reactor, threads
from twisted.internet.task import deferLater

from gwsms import control
from gwsms.store.database import open_database_sync
from tests.test_e2e_gateway import E2eBase, _events, _Lines, free_port

TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")
SENDERS = 32
PER_SENDER = 2


def _message(port: int, call_id: str, dest: str, text: str) -> bytes:
    body = text.encode("utf-8")
    return (
        f"MESSAGE sip:{dest}@gw.test SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:4930555000@gw.test>;tag={call_id[:8]}\r\n"
        f"To: <sip:{dest}@gw.test>\r\n"
        f"Call-ID: {call_id}@test\r\n"
        "CSeq: 1 MESSAGE\r\n"
        "Content-Type: text/plain;charset=UTF-8\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


class _Sender(protocol.DatagramProtocol):
    """Sends MESSAGEs one by one, retransmitting until a final answer."""

    def __init__(self, target):
        self.target = target
        self.answers: dict[str, int] = {}
        self._waiting: dict[str, tuple] = {}

    def send(self, call_id: str, data: bytes) -> defer.Deferred:
        d = defer.Deferred()
        self._waiting[call_id] = (d, data, None)
        self._transmit(call_id, 0)
        return d

    def _transmit(self, call_id, count):
        d, data, _ = self._waiting[call_id]
        if count >= 12:
            del self._waiting[call_id]
            d.errback(AssertionError(f"no final answer to {call_id}"))
            return
        self.transport.write(data, self.target)
        timer = reactor.callLater(0.5, self._transmit, call_id, count + 1)
        self._waiting[call_id] = (d, data, timer)

    def datagramReceived(self, data, addr):
        match = re.match(rb"SIP/2\.0 (\d{3}) ", data)
        call = re.search(rb"\r\nCall-ID: *([^@\r]+)@", data, re.I)
        if not match or not call:
            return
        status, call_id = int(match.group(1)), call.group(1).decode()
        if status < 200 or call_id not in self._waiting:
            return
        d, _data, timer = self._waiting.pop(call_id)
        if timer is not None and timer.active():
            timer.cancel()
        self.answers[call_id] = status
        d.callback(status)


class _Uas(protocol.DatagramProtocol):
    """Answers every MESSAGE 200 OK; counts what it got per Call-ID."""

    def __init__(self):
        self.received: dict[str, int] = {}
        self.bodies: list[bytes] = []

    def datagramReceived(self, data, addr):
        if not data.startswith(b"MESSAGE "):
            return
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        call_id = next(l.split(b":", 1)[1].strip() for l in lines
                       if l.lower().startswith(b"call-id:")).decode()
        if call_id not in self.received:
            self.bodies.append(body)
        self.received[call_id] = self.received.get(call_id, 0) + 1
        keep = [l for l in lines[1:] if l.split(b":", 1)[0].strip().lower()
                in (b"via", b"from", b"to", b"call-id", b"cseq")]
        answer = b"\r\n".join([b"SIP/2.0 200 OK"] + keep + [b"Content-Length: 0", b"", b""])
        # answer to the top Via (the sending worker's private port)
        via = next(l for l in keep if l.lower().startswith(b"via:"))
        match = re.search(rb"UDP ([0-9.]+):(\d+)", via)
        self.transport.write(answer, (match.group(1).decode(), int(match.group(2))))


class WorkersE2eTests(E2eBase):
    timeout = 60

    def write_config(self):
        self.db_path = os.path.join(self.workdir, "gwsms.sqlite3")
        self.control_socket = os.path.join(self._short_dir(), "gwsms.sock")
        self.sip_port = free_port()
        path = os.path.join(self.workdir, "gwsms.toml")
        with open(path, "w") as f:
            f.write(
                f'[database]\nurl = "sqlite:{self.db_path}"\n'
                f'[smpp]\nreconnect_initial = 0.2\nreconnect_max = 1.0\n'
                f'shutdown_timeout = 2.0\n'
                f'[sip]\nlisten = ["udp:127.0.0.1:{self.sip_port}"]\ndomain = "gw.test"\n'
                f'outbound_uri = "sip:127.0.0.1:{self.uas_port}"\n'
                f'[control]\nsocket = "{self.control_socket}"\n'
                f'[gateway]\nworkers = 2\nqueue_interval = 0.2\n'
            )
        return path

    def prepare_store(self):
        return self.provision_store("sqlite:" + self.db_path)

    def start_twistd(self, config):
        proto = _Lines()
        self.log_path = os.path.join(self.workdir, "gwsms.log")
        argv = [TWISTD, "--nodaemon", "--pidfile=", f"--logfile={self.log_path}", "gwsms",
                "--config", config]
        process = reactor.spawnProcess(proto, TWISTD, argv, env=dict(os.environ),
                                       path=self.workdir)
        self.addCleanup(self._stop_twistd, process, proto)
        return process, proto

    def _stop_twistd(self, process, proto):
        """SIGTERM (the workers stop with it), SIGKILL after 15 s."""
        if proto.ended.called:
            return None
        process.signalProcess("TERM")
        killer = reactor.callLater(15, lambda: proto.ended.called or process.signalProcess("KILL"))
        return proto.ended.addBoth(lambda _: killer.active() and killer.cancel())

    def worker_pids(self) -> list[int]:
        with open(self.log_path, errors="replace") as f:
            return [int(p) for p in re.findall(r"worker 1 started \(pid (\d+)\)", f.read())]

    @defer.inlineCallbacks
    def test_two_workers_submit_each_message_once(self):
        if not os.access(TWISTD, os.X_OK):
            raise self.skipTest(f"no twistd next to {sys.executable}")
        config = self.write_config()
        yield self.prepare_store()
        process, proto = self.start_twistd(config)
        binds = yield self.smsc.wait_for(
            lambda ls: len(_events(ls, "BIND")) >= 2, "both workers to bind", 30)
        kinds = sorted(b[1] for b in _events(binds, "BIND"))
        self.assertEqual(kinds, ["transceiver", "transmitter"])
        # the control socket (worker 0's) shows both workers' binds
        for _ in range(50):
            states = yield threads.deferToThread(control.call, self.control_socket,
                                                 "smsc_state")
            if states and states[0]["state"] == "w0 bound_trx, w1 bound_tx":
                break
            yield deferLater(reactor, 0.1)
        self.assertEqual([(s["name"], s["state"]) for s in states],
                         [("perl", "w0 bound_trx, w1 bound_tx")])
        # worker 1 is bound: its SIP socket is in the group too
        senders = []
        for _ in range(SENDERS):
            sender = _Sender(("127.0.0.1", self.sip_port))
            port = reactor.listenUDP(0, sender, interface="127.0.0.1")
            self.addCleanup(port.stopListening)
            senders.append((sender, port.getHost().port))
        sent = {}

        def run(index, sender, port):
            @defer.inlineCallbacks
            def go():
                for n in range(PER_SENDER):
                    call_id = uuid.uuid4().hex
                    dest = f"+4915200{index:03d}{n:02d}"
                    text = f"worker test {index}/{n} \u00e9"
                    data = _message(port, call_id, dest, text)
                    sent[dest] = (call_id, data, text)
                    status = yield sender.send(call_id, data)
                    self.assertEqual(status, 202, dest)
            return go()

        yield defer.gatherResults([run(i, s, p) for i, (s, p) in enumerate(senders)],
                                  consumeErrors=True)
        # the same MESSAGEs again, each from the next sender's port: a
        # retransmission that may reach the other worker (dedup in the store)
        again = []
        for i, (dest, (call_id, data, _text)) in enumerate(sorted(sent.items())):
            sender, port = senders[(i + 1) % SENDERS]
            again.append(sender.send(call_id, data.replace(
                b"127.0.0.1:%d;" % senders[i // PER_SENDER % SENDERS][1],
                b"127.0.0.1:%d;" % port, 1)))
        statuses = yield defer.gatherResults(again, consumeErrors=True)
        self.assertEqual(set(statuses), {202})
        total = SENDERS * PER_SENDER
        yield self.smsc.wait_for(lambda ls: len(_events(ls, "SUBMIT")) >= total,
                                 f"{total} submit_sm", 30)
        yield deferLater(reactor, 1.5)  # a second submit would show up now
        submits = _events(self.smsc.lines, "SUBMIT")
        by_dest: dict[str, list[str]] = {}
        for _kind, _mid, _source, dest, *hexdata in submits:
            by_dest.setdefault(dest, []).append(bytes.fromhex(hexdata[0]).decode("latin-1"))
        self.assertEqual(len(submits), total)
        self.assertEqual(sorted(by_dest), sorted(d.lstrip("+") for d in sent))
        for dest, (_call_id, _data, text) in sent.items():
            self.assertEqual(len(by_dest[dest.lstrip("+")]), 1, dest)

        db = open_database_sync("sqlite:" + self.db_path)
        try:
            owners = dict(db._conn.execute(
                "SELECT owner, COUNT(*) FROM messages WHERE direction = 'mt'"
                " GROUP BY owner").fetchall())
        finally:
            db.close()
        self.assertEqual(sum(owners.values()), total)
        self.assertEqual(sorted(owners), [0, 1], f"one worker took everything: {owners}")

        # stopping twistd stops the worker
        pids = self.worker_pids()
        self.assertEqual(len(pids), 1)
        process.signalProcess("TERM")
        yield proto.ended
        for _ in range(50):
            if not _alive(pids[0]):
                break
            yield deferLater(reactor, 0.1)
        self.assertFalse(_alive(pids[0]), "worker 1 outlived twistd")


    @defer.inlineCallbacks
    def test_mo_answers_reach_the_sending_worker(self):
        """
        MO messages arrive at worker 0 (the only receiver); its MESSAGEs
        leave from its private port, so every 200 OK comes back to it:
        each MESSAGE reaches the UAS once (no retransmission) and is
        recorded as delivered.
        """
        if not os.access(TWISTD, os.X_OK):
            raise self.skipTest(f"no twistd next to {sys.executable}")
        uas = _Uas()
        port = reactor.listenUDP(self.uas_port, uas, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        config = self.write_config()
        yield self.prepare_store()
        self.start_twistd(config)
        yield self.smsc.wait_for(
            lambda ls: len(_events(ls, "BIND")) >= 2, "both workers to bind", 30)
        count = 10
        for i in range(count):
            self.smsc.send(f"deliver 4915100000{i:02d} 4930555000 "
                           + f"mo text {i}".encode().hex())
        for _ in range(100):
            if len(uas.received) >= count:
                break
            yield deferLater(reactor, 0.1)
        yield deferLater(reactor, 1.5)  # retransmissions (T1 = 0.5 s) would show now
        self.assertEqual(len(uas.received), count)
        self.assertEqual(set(uas.received.values()), {1}, uas.received)
        self.assertEqual(sorted(uas.bodies), sorted(f"mo text {i}".encode()
                                                    for i in range(count)))
        db = open_database_sync("sqlite:" + self.db_path)
        try:
            rows = db._conn.execute(
                "SELECT state, owner FROM messages WHERE direction = 'mo'").fetchall()
        finally:
            db.close()
        self.assertEqual(rows, [("delivered", 0)] * count)


    @defer.inlineCallbacks
    def test_worker_killed_mid_run(self):
        """
        Worker 1 is SIGKILLed while messages flow: the supervisor starts it
        again, it resumes what it had stored, retransmissions answered by
        worker 0 meanwhile are duplicates: every message reaches the SMSC,
        none twice except a part that was on the wire at the kill (no
        SMSC id stored for it, as after any crash).
        """
        if not os.access(TWISTD, os.X_OK):
            raise self.skipTest(f"no twistd next to {sys.executable}")
        config = self.write_config()
        yield self.prepare_store()
        self.start_twistd(config)
        yield self.smsc.wait_for(
            lambda ls: len(_events(ls, "BIND")) >= 2, "both workers to bind", 30)
        senders = []
        for _ in range(16):
            sender = _Sender(("127.0.0.1", self.sip_port))
            port = reactor.listenUDP(0, sender, interface="127.0.0.1")
            self.addCleanup(port.stopListening)
            senders.append((sender, port.getHost().port))
        dests = []
        per_sender = 8

        @defer.inlineCallbacks
        def run(index, sender, port):
            yield deferLater(reactor, index * 0.02)  # spread out: few in flight at once
            for n in range(per_sender):
                call_id = uuid.uuid4().hex
                dest = f"+4915300{index:03d}{n:02d}"
                dests.append(dest)
                status = yield sender.send(call_id, _message(port, call_id, dest, f"k {dest}"))
                self.assertEqual(status, 202, dest)
                yield deferLater(reactor, 0.1)

        runs = defer.gatherResults([run(i, s, p) for i, (s, p) in enumerate(senders)],
                                   consumeErrors=True)
        yield self.smsc.wait_for(lambda ls: len(_events(ls, "SUBMIT")) >= 40, "40 submit_sm")
        (pid,) = self.worker_pids()
        os.kill(pid, 9)
        yield runs
        total = len(senders) * per_sender
        # what worker 1 had stored is resumed by it once it runs again (its
        # first queue pass after the messages' first retry time)
        states = {}
        for _ in range(200):
            db = open_database_sync("sqlite:" + self.db_path)
            try:
                states = dict(db._conn.execute(
                    "SELECT state, COUNT(*) FROM messages GROUP BY state").fetchall())
            finally:
                db.close()
            if states == {"submitted": total}:
                break
            yield deferLater(reactor, 0.1)
        self.assertEqual(states, {"submitted": total})
        for _ in range(100):  # restarted after 1 s (it may have had nothing to resume)
            if len(self.worker_pids()) == 2:
                break
            yield deferLater(reactor, 0.1)
        self.assertEqual(len(self.worker_pids()), 2, "worker 1 was not started again")
        yield deferLater(reactor, 1.0)
        counts: dict[str, int] = {}
        for _kind, _mid, _source, dest, *_hex in _events(self.smsc.lines, "SUBMIT"):
            counts[dest] = counts.get(dest, 0) + 1
        self.assertEqual(sorted(counts), sorted(d.lstrip("+") for d in dests))
        # sent twice: only what was on the wire (or answered, not yet
        # committed) at the kill -- a few messages at this rate
        twice = {d: c for d, c in counts.items() if c > 1}
        self.assertLessEqual(len(twice), 8, twice)
        self.assertEqual(set(counts.values()) - {1, 2}, set())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover
        return True
    try:  # a zombie is gone for our purpose
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
