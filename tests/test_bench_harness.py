# -*- test-case-name: tests.test_bench_harness -*-
"""
Tests for the load-side pieces of C{make bench}: the sipp command lines
(L{bench.harness.uac_command}, L{bench.harness.uas_command}), reading only
the tail of a growing sipp statistics file, and the simulator driver's MO
generator and commands (L{bench.smsc_driver}) on a fake clock.
"""

import json
import os

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from bench import harness, ladder, smsc_driver
from gwsms.sim.smsc import SimulatedSMSC
from gwsms.smpp import pdu


def stat_text(rows):
    header = "StartTime;CurrentTime;SuccessfulCall(C);FailedCall(C);Retransmissions(C)"
    lines = [header] + ["2026-11-27\t10:00:00.000000\t1000.0;2026-11-27\t10:00:%02d.000000\t%d.0;%d;0;%d"
                        % (n % 60, 1000 + n, n * 10, n % 3) for n in range(rows)]
    return "\n".join(lines) + "\n"


class StatFileTests(SynchronousTestCase):
    def write(self, text):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_tail_parses_like_the_whole_file(self):
        text = stat_text(5000)
        path = self.write(text)
        self.assertGreater(os.path.getsize(path), 4096)
        tail = ladder.parse_stat_csv(harness.read_stat_file(path, tail=1024))
        whole = ladder.parse_stat_csv(text)
        self.assertEqual(tail, whole)
        self.assertEqual(tail["successful"], 49990)
        self.assertLess(len(harness.read_stat_file(path, tail=1024)), 1200)

    def test_small_file_and_header_only(self):
        path = self.write(stat_text(2))
        self.assertEqual(ladder.parse_stat_csv(harness.read_stat_file(path))["successful"], 10)
        path = self.write(stat_text(0))
        self.assertRaises(ladder.ParseError, ladder.parse_stat_csv, harness.read_stat_file(path))
        self.assertRaises(OSError, harness.read_stat_file, path + ".missing")


class SippCommandTests(SynchronousTestCase):
    def test_uac(self):
        argv = harness.uac_command("sipp", "127.0.0.1:5060", 40000, 8000, 120000, "/tmp/x", 75)
        self.assertEqual(argv[:4], ["sipp", "-sf", harness.UAC_XML, "127.0.0.1:5060"])
        opts = dict(zip(argv[4::1], argv[5::1]))
        self.assertEqual((opts["-r"], opts["-m"], opts["-l"], opts["-p"]), ("8000", "120000", "8000", "40000"))
        self.assertEqual(opts["-rtt_freq"], "1000")  # divides the count: every call's rtt is written
        self.assertEqual(opts["-stf"], "/tmp/x/stat.csv")
        self.assertEqual(opts["-timeout"], "75s")
        self.assertEqual(opts["-default_behaviors"], "all,-bye")
        self.assertIn("-trace_err", argv)
        odd = harness.uac_command("sipp", "h:1", 1, 700, 10500, "/tmp/x", 10)
        self.assertEqual(odd[odd.index("-rtt_freq") + 1], "500")
        self.assertEqual(odd[odd.index("-l") + 1], "700")  # max(500, rate)

    def test_uas(self):
        argv = harness.uas_command("sipp", 41000, "/tmp/uas.csv")
        self.assertEqual(argv[:3], ["sipp", "-sf", harness.UAS_XML])
        self.assertEqual(argv[argv.index("-p") + 1], "41000")
        self.assertEqual(argv[argv.index("-stf") + 1], "/tmp/uas.csv")
        self.assertEqual(argv[argv.index("-fd") + 1], "1")


class Pipe(StringTransport):
    pass


class DriverTests(SynchronousTestCase):
    """
    The MO generator sends exactly COUNT deliver_sm at RATE, one burst per
    tick, and records each answer; C{progress} omits the percentiles that
    C{stats} computes.
    """

    def setUp(self):
        self.clock = Clock()
        self.smsc = SimulatedSMSC(self.clock, record=False, window=1000)
        self.addCleanup(self.smsc.stop)
        self.generator = smsc_driver.MoGenerator(self.clock, self.smsc)
        self.addCleanup(self.generator.stop)
        self.esme = self.smsc.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        self.wire = StringTransport()
        self.esme.makeConnection(self.wire)
        self.esme.dataReceived(pdu.encode(pdu.make("bind_receiver", 1, system_id="gw", password="pw")))
        self.wire.clear()
        self.commands = smsc_driver.Commands(self.clock, self.smsc, self.generator)
        self.pipe = Pipe()
        self.commands.makeConnection(self.pipe)

    def command(self, line):
        self.pipe.clear()
        self.commands.lineReceived(line)
        return json.loads(self.pipe.value())

    def answer_all(self, status=0):
        data = self.wire.value()
        self.wire.clear()
        sent = 0
        while data:
            length, cid, _, seq = pdu.HEADER.unpack_from(data)
            self.assertEqual(cid, 0x00000005)
            self.esme.dataReceived(pdu.HEADER.pack(17, 0x80000005, status, seq) + b"\0")
            data = data[length:]
            sent += 1
        return sent

    def test_count_and_rate(self):
        self.assertEqual(self.command(b"mo 1000 25"), {"ok": True})
        sent = self.answer_all()
        for _ in range(20):
            self.clock.advance(smsc_driver.TICK)
            sent += self.answer_all()
        self.assertEqual(sent, 25)
        self.assertEqual(self.generator.left, 0)
        progress = self.command(b"progress")
        self.assertEqual((progress["mo_sent"], progress["mo_acked"], progress["mo_answers"]), (25, 25, 25))
        self.assertNotIn("mo_p99_ms", progress)
        stats = self.command(b"stats")
        self.assertEqual(stats["mo_errors"], 0)
        self.assertIsNotNone(stats["mo_p99_ms"])
        self.assertEqual(stats["bound"], 1)

    def test_window_held(self):
        """
        Ticks at which earlier messages still wait behind the window are
        counted (the window, not the rate, paced them).
        """
        self.smsc.window = 2
        self.command(b"mo 1000 20")
        for _ in range(4):
            self.clock.advance(smsc_driver.TICK)
        self.assertEqual(self.generator.ticks, 5)
        # 1st tick: 1 sent; 2nd: 4 more, 3 of them wait; never answered: held from the 3rd on
        self.assertEqual(self.generator.held_ticks, 3)
        self.assertEqual(self.command(b"progress")["mo_window_held_percent"], 60.0)
        self.answer_all()  # two answered, two more sent, 13 still wait
        self.clock.advance(smsc_driver.TICK)
        self.assertEqual(self.generator.held_ticks, 4)

    def test_error_answers_counted(self):
        self.command(b"mo 1000 3")
        for _ in range(5):
            self.answer_all(status=0x64)
            self.clock.advance(smsc_driver.TICK)
        stats = self.command(b"stats")
        self.assertEqual((stats["mo_errors"], stats["mo_statuses"]), (3, {"0x64": 3}))
        self.assertEqual(stats["mo_failed"], 3)

    def test_waits_for_a_receiver(self):
        self.esme.connectionLost(None)
        self.command(b"mo 1000 5")
        self.clock.advance(0.01)
        self.assertEqual(self.generator.left, 5)
        self.assertIsNone(self.generator.span())

    def test_bad_command(self):
        self.assertIn("error", self.command(b"mo x"))
        self.assertIn("error", self.command(b"mo 1 x"))


class SimLoadTests(SynchronousTestCase):
    """
    C{bench/sim_load.py}: its prebuilt PDUs are what the codec makes of
    them, and a short run against the real simulator process completes.
    """

    def test_pdus(self):
        from bench import sim_load

        bind = pdu.decode(sim_load.bind_pdu(1))
        self.assertEqual((bind.command, bind.params["system_id"]), ("bind_transceiver", "load"))
        body = sim_load.submit_sm_body(b"hello")
        submit = pdu.decode(pdu.HEADER.pack(16 + len(body), 4, 0, 9) + body)
        self.assertEqual((submit.params["source_addr"], submit.params["destination_addr"]),
                         ("4915112345678", "491701234567"))
        self.assertEqual((submit.params["short_message"], submit.params["registered_delivery"]), (b"hello", 0))
        esme = sim_load.Esme.__new__(sim_load.Esme)
        esme.submit_head = pdu.HEADER.pack(16 + len(body), 4, 0, 0)[:12]
        esme.submit_body, esme.seq, esme.outstanding = body, 5, 0
        data = esme.submits(3)
        seqs = []
        while data:
            length = int.from_bytes(data[:4], "big")
            seqs.append(pdu.decode(data[:length]).sequence_number)
            data = data[length:]
        self.assertEqual((seqs, esme.seq, esme.outstanding), ([5, 6, 7], 8, 3))

    def test_short_run(self):
        import subprocess
        import sys

        script = os.path.join(os.path.dirname(harness.HERE), "bench", "sim_load.py")
        proc = subprocess.run([sys.executable, script, "--rate", "1000", "--duration", "0.5", "--json"],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        results = [json.loads(line) for line in proc.stdout.splitlines()]
        self.assertEqual([(r["direction"], r["pdus"], r["errors"]) for r in results], [("mt", 500, 0), ("mo", 500, 0)])
        self.assertTrue(all(r["sim_us_per_pdu"] is not None for r in results))


class SippCostTests(SynchronousTestCase):
    """
    C{bench/sipp_cost.py}: the harness's UAC against the harness's UAS,
    without a gateway (real sipp processes on loopback).
    """

    def test_measure(self):
        import shutil

        from twisted.trial.unittest import SkipTest

        from bench import sipp_cost

        sipp = shutil.which("sipp")
        if sipp is None:
            raise SkipTest("sipp (sip-tester) is not installed")
        tmp = self.mktemp()
        os.mkdir(tmp)
        result = sipp_cost.measure(sipp, 500, 1.0, uacs=1, tmp=tmp)
        self.assertEqual((result["calls"], result["failed"], result["retransmissions"]), (500, 0, 0))
        self.assertIsNotNone(result["p99_ms"])
        self.assertIsNotNone(result["uac_cpu_percent"])
