"""
Tests for L{bench.instructions}: the flow it counts carries every MESSAGE
to a 202 (and every deliver_sm to its answer and a 200) through the real
lane, store and ESME, its markers split the
callgrind dumps into the phases it reports, and a run under valgrind gives
those figures.
"""

from __future__ import annotations

import os
import shutil

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from bench import instructions


class FlowTests(SynchronousTestCase):
    def setUp(self):
        # the harness's own trial case makes its database under the working directory
        work = os.path.abspath(self.mktemp())
        os.makedirs(work)
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(work)

    def test_every_message_answered_after_its_submit(self):
        marks = []
        report = instructions.run(250, 100, warmup=50, mark=lambda: marks.append(1))
        self.assertEqual(report, {"messages": 250, "answered_202": 250, "submits": 250})
        # three batches (100, 100, 50), four markers each, one at the end
        self.assertEqual(len(marks), 3 * len(instructions.PHASES) + 1)

    def test_every_deliver_sm_answered_and_delivered(self):
        marks = []
        report = instructions.run_mo(250, 100, warmup=50, mark=lambda: marks.append(1))
        self.assertEqual(report, {"messages": 250, "answered_ok": 250, "delivered": 250})
        self.assertEqual(len(marks), 3 * len(instructions.MO_PHASES) + 1)

    def test_deliver_sms(self):
        from gwsms.smpp import pdu

        raw = instructions.deliver_sms(7, 9)
        first = pdu.decode(raw[:int.from_bytes(raw[:4], "big")])
        second = pdu.decode(raw[int.from_bytes(raw[:4], "big"):])
        self.assertEqual((first.command, first.sequence_number, first.params["short_message"]),
                         ("deliver_sm", 7, b"bench MO 7"))
        self.assertEqual((second.sequence_number, second.params["destination_addr"]),
                         (8, "491701234567"))

    def test_datagram_is_the_bench_scenario(self):
        from gwsms.sip.message import parse_message

        message = parse_message(instructions.datagram(7))
        self.assertEqual(message.method, "MESSAGE")
        self.assertEqual(message.body, b"gwsms bench message 7")
        self.assertNotEqual(instructions.datagram(7), instructions.datagram(8))

    def test_submit_responses(self):
        from gwsms.smpp import pdu

        requests = b"".join(pdu.encode(pdu.make("submit_sm", sequence_number=seq,
                                                destination_addr="49", short_message=b"x"))
                            for seq in (5, 6))
        raw = instructions.submit_responses(requests)
        first = pdu.decode(raw[:25])
        self.assertEqual((first.command, first.sequence_number, first.command_status),
                         ("submit_sm_resp", 5, 0))
        self.assertEqual(first.params["message_id"], "00000005")
        self.assertEqual(pdu.decode(raw[25:]).sequence_number, 6)


class DumpTests(SynchronousTestCase):
    def write_dumps(self, totals):
        base = os.path.join(os.path.abspath(self.mktemp()), "callgrind.out")
        os.makedirs(os.path.dirname(base))
        for index, total in enumerate(totals[:-1], 1):
            with open("%s.%d" % (base, index), "w") as f:
                f.write("events: Ir\nsummary: %d\ntotals: %d\n" % (total, total))
        with open(base, "w") as f:
            f.write("events: Ir\ntotals: %d\n" % totals[-1])
        return base

    def test_phases_from_dumps(self):
        # startup, (lane, submit, smsc, answer) x 2, exit; ".10" sorts after ".9"
        parts = [900, 10, 20, 99, 30, 11, 21, 98, 31, 5]
        base = self.write_dumps(parts)
        self.assertEqual(instructions.totals(base), parts)
        self.assertEqual(instructions.phases(parts, 2), {"lane": 21, "submit": 41, "answer": 61})

    def test_mo_phases_from_dumps(self):
        parts = [900, 10, 20, 99, 30, 11, 21, 98, 31, 5]
        self.assertEqual(instructions.phases(parts, 2, instructions.MO_PHASES),
                         {"deliver": 21, "store": 41, "answer": 61})

    def test_wrong_number_of_dumps(self):
        with self.assertRaises(ValueError) as caught:
            instructions.phases([900, 10, 20, 5], 2)
        self.assertIn("getppid()?", str(caught.exception))

    def test_bad_arguments(self):
        with self.assertRaises(SystemExit):
            instructions.main(["--count", "0"])
        with self.assertRaises(SystemExit):
            instructions.main(["--direction", "sideways"])


class CallgrindTests(SynchronousTestCase):
    def test_counted(self):
        valgrind = shutil.which("valgrind")
        if valgrind is None:
            raise SkipTest("valgrind not installed")
        report = instructions.measure(200, 100, valgrind)
        self.assertEqual(report["answered_202"], 200)
        for name in ("lane", "submit", "answer"):
            # each phase runs tens of thousands of instructions per message,
            # not the whole process's startup (about a billion)
            self.assertGreater(report[name + "_per_message"], 10_000, name)
            self.assertLess(report[name + "_per_message"], 2_000_000, name)
        self.assertEqual(report["all_per_message"], sum(
            report[name + "_per_message"] for name in ("lane", "submit", "answer")))

    def test_counted_mo(self):
        valgrind = shutil.which("valgrind")
        if valgrind is None:
            raise SkipTest("valgrind not installed")
        report = instructions.measure(200, 100, valgrind, direction="mo")
        self.assertEqual((report["answered_ok"], report["delivered"]), (200, 200))
        for name in ("deliver", "store", "answer"):
            self.assertGreater(report[name + "_per_message"], 10_000, name)
            self.assertLess(report[name + "_per_message"], 2_000_000, name)
        self.assertEqual(report["all_per_message"], sum(
            report[name + "_per_message"] for name in ("deliver", "store", "answer")))
