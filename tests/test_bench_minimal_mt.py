"""
Tests for C{bench/minimal_mt.py}, the calibration pipeline: its SIP and
SMPP pieces read by gwsms's own parsers, its window, its group commit, and
a short run against real sipp and the shipped simulator.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import sqlite3
import subprocess
import sys

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from bench import minimal_mt
from gwsms.sip.message import parse_message
from gwsms.smpp import pdu as smpp_pdu

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "bench", "minimal_mt.py")

MESSAGE = (
    b"MESSAGE sip:+491701234567@127.0.0.1:5070 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK-1\r\n"
    b"From: <sip:+4915112345678@127.0.0.1>;tag=12b1\r\n"
    b"To: <sip:+491701234567@127.0.0.1:5070>\r\n"
    b"Call-ID: 1-77@127.0.0.1\r\n"
    b"CSeq: 1 MESSAGE\r\n"
    b"Max-Forwards: 70\r\n"
    b"Content-Type: text/plain;charset=UTF-8\r\n"
    b"Content-Length: 11\r\n\r\n"
    b"hello there"
)


class Transport:
    def __init__(self):
        self.written = []

    def write(self, data):
        self.written.append(data)


class SipTests(SynchronousTestCase):
    def test_read_and_answer(self):
        keep, dest, body, call_id = minimal_mt.read_message(MESSAGE)
        self.assertEqual((dest, body, call_id), (b"+491701234567", b"hello there",
                                                 b"1-77@127.0.0.1"))
        request = parse_message(MESSAGE)
        answer = parse_message(minimal_mt.answer_202(keep))
        self.assertEqual(answer.status, 202)
        for name in ("Via", "From", "Call-ID", "CSeq"):
            self.assertEqual(answer.headers.get(name), request.headers.get(name), name)
        self.assertIn(";tag=minimal", answer.headers.get("To"))


class SmppTests(SynchronousTestCase):
    def test_submit_sm_as_the_codec_reads_it(self):
        pdu = smpp_pdu.decode(minimal_mt.submit_sm(7, b"491701234567", b"hello"))
        self.assertEqual((pdu.command, pdu.sequence_number), ("submit_sm", 7))
        p = pdu.params
        self.assertEqual((p["source_addr"], p["source_addr_ton"], p["source_addr_npi"]),
                         ("4915112345678", 1, 1))
        self.assertEqual((p["destination_addr"], p["dest_addr_ton"], p["dest_addr_npi"]),
                         ("491701234567", 1, 1))
        self.assertEqual((p["short_message"], p["data_coding"], p["registered_delivery"]),
                         (b"hello", 0, 0))

    def test_bind_window_and_responses_across_reads(self):
        smpp = minimal_mt.Smpp(window=2)
        transport = Transport()
        smpp.connected(transport)
        bind = smpp_pdu.decode(transport.written.pop())
        self.assertEqual((bind.command, bind.params["system_id"]), ("bind_transceiver", "bench"))
        done = []
        for n in range(3):
            smpp.submit(b"4917%d" % n, b"m%d" % n, lambda s, i, n=n: done.append((n, s, i)))
        self.assertEqual(transport.written, [])  # not bound yet
        bound = smpp_pdu.encode(smpp_pdu.make("bind_transceiver_resp", sequence_number=1,
                                              system_id="sim"))
        smpp.data(bound[:5])
        smpp.data(bound[5:])
        self.assertEqual(len(transport.written), 1)
        self.assertEqual(len(smpp.pending), 2)  # the window
        burst = transport.written[0]
        first_length = int.from_bytes(burst[:4], "big")
        self.assertEqual([smpp_pdu.decode(part).params["destination_addr"]
                          for part in (burst[:first_length], burst[first_length:])],
                         ["49170", "49171"])
        response = smpp_pdu.encode(smpp_pdu.make("submit_sm_resp", sequence_number=2,
                                                 message_id="id-2"))
        smpp.data(response[:20])
        self.assertEqual(done, [])
        smpp.data(response[20:])
        self.assertEqual(done, [(0, 0, b"id-2")])
        self.assertEqual(len(transport.written), 2)  # the third submit took the free place
        self.assertEqual(smpp_pdu.decode(transport.written[1]).params["destination_addr"],
                         "49172")

    def test_refused_bind(self):
        smpp = minimal_mt.Smpp()
        smpp.connected(Transport())
        refused = smpp_pdu.encode(smpp_pdu.make("bind_transceiver_resp", sequence_number=1,
                                                command_status=0x0E))
        e = self.assertRaises(RuntimeError, smpp.data, refused)
        self.assertIn("0x0000000e", str(e))


class ThreadReactor:
    """C{callFromThread} into a queue the test drains."""

    def __init__(self):
        self.calls = queue.SimpleQueue()

    def callFromThread(self, f, *args):  # noqa: N802 (Twisted's name)
        self.calls.put((f, args))

    def run_one(self):
        f, args = self.calls.get(timeout=10)
        f(*args)


class GroupCommitTests(SynchronousTestCase):
    def test_rows_then_updates_in_commits(self):
        reactor = ThreadReactor()
        path = os.path.join(os.path.abspath(self.mktemp()))
        os.makedirs(path)
        store = minimal_mt.GroupCommit(reactor, os.path.join(path, "db"))
        self.addCleanup(store.close)
        after = []
        first = store.insert(b"c1", b"4917", b"one", lambda: after.append(1))
        # the first commit runs: these wait for the next one
        second = store.insert(b"c2", b"4918", b"two", lambda: after.append(2))
        store.submitted(first, b"smsc-1")
        reactor.run_one()
        self.assertEqual(after, [1])
        reactor.run_one()
        self.assertEqual(after, [1, 2])
        self.assertEqual(store.commits, 2)
        rows = sqlite3.connect(os.path.join(path, "db")).execute(
            "SELECT id, call_id, dest, body, state, smsc_id FROM messages ORDER BY id").fetchall()
        self.assertEqual(rows, [(first, "c1", "4917", "one", "submitted", "smsc-1"),
                                (second, "c2", "4918", "two", "queued", "")])


class RunTests(SynchronousTestCase):
    def test_bad_arguments(self):
        for argv, word in ((["--rate", "0"], "--rate"), (["--count", "x"], "--count")):
            run = subprocess.run([sys.executable, SCRIPT] + argv, capture_output=True,
                                 text=True, timeout=60)
            self.assertEqual(run.returncode, 2)
            self.assertIn(word, run.stderr)
            self.assertNotIn("Traceback", run.stderr)

    def test_short_durable_run(self):
        """Real sipp and the shipped simulator on loopback: every MESSAGE answered 202."""
        if shutil.which("sipp") is None:
            raise SkipTest("sipp (sip-tester) is not installed")
        run = subprocess.run([sys.executable, SCRIPT, "--rate", "300", "--count", "300",
                              "--durable", "--json"], capture_output=True, text=True,
                             timeout=120)
        self.assertEqual(run.returncode, 0, run.stderr)
        result = json.loads(run.stdout.strip().splitlines()[-1])
        sipp = result["sipp"]
        self.assertEqual((sipp["SuccessfulCall(C)"], sipp["FailedCall(C)"],
                          sipp["Retransmissions(C)"]), ("300", "0", "0"))
        self.assertGreater(result["commits"], 0)
        self.assertGreater(result["cpu_us_per_msg"], 0)
        self.assertGreater(result["reactor_us_per_msg"], 0)
        # sipp's response times (its -trace_rtt file), as make bench reads them
        self.assertGreaterEqual(result["p50_ms"], 0)
        self.assertGreaterEqual(result["p99_ms"], result["p50_ms"])
        self.assertIn("sipp response times p50", run.stdout)
