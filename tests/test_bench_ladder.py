"""
Tests for L{bench.ladder}: sipp output parsing, percentiles, the verdict of
a step, the ladder's stop rule and the summary (pure; no processes).
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from bench import ladder

# Column names as sipp 3.6 writes them in -trace_stat files (a subset in
# its order; the parser goes by name).
HEADER = [
    "StartTime", "LastResetTime", "CurrentTime", "ElapsedTime(P)", "ElapsedTime(C)", "TargetRate",
    "CallRate(P)", "CallRate(C)", "IncomingCall(P)", "IncomingCall(C)", "OutgoingCall(P)",
    "OutgoingCall(C)", "TotalCallCreated", "CurrentCall", "SuccessfulCall(P)", "SuccessfulCall(C)",
    "FailedCall(P)", "FailedCall(C)", "FailedMaxUDPRetrans(P)", "FailedMaxUDPRetrans(C)",
    "FailedUnexpectedMessage(P)", "FailedUnexpectedMessage(C)", "FailedTimeoutOnRecv(P)",
    "FailedTimeoutOnRecv(C)", "OutOfCallMsgs(P)", "OutOfCallMsgs(C)", "DeadCallMsgs(P)",
    "DeadCallMsgs(C)", "Retransmissions(P)", "Retransmissions(C)", "ResponseTime1(C)", "",
]


def stat_row(start=1795776476.5, now=1795776491.75, created=15000, successful=14990, failed=10,
             max_udp=4, unexpected=6, retrans=7, dead=2, incoming=0):
    values = {
        "StartTime": "2026-11-27\t10:47:56.500000\t%f" % start,
        "LastResetTime": "2026-11-27\t10:48:10.000000\t%f" % (now - 1),
        "CurrentTime": "2026-11-27\t10:48:11.750000\t%f" % now,
        "ElapsedTime(P)": "00:00:01", "ElapsedTime(C)": "00:00:15", "TargetRate": "1000",
        "CallRate(C)": "999.5", "IncomingCall(C)": str(incoming), "OutgoingCall(C)": str(created),
        "TotalCallCreated": str(created), "CurrentCall": "0", "SuccessfulCall(C)": str(successful),
        "FailedCall(C)": str(failed), "FailedMaxUDPRetrans(C)": str(max_udp),
        "FailedUnexpectedMessage(C)": str(unexpected), "FailedTimeoutOnRecv(C)": "0",
        "DeadCallMsgs(C)": str(dead), "Retransmissions(C)": str(retrans),
        "ResponseTime1(C)": "00:00:00:004000",
    }
    return ";".join(values.get(name, "0") if name else "" for name in HEADER)


def stat_file(*rows):
    return "\n".join([";".join(HEADER)] + list(rows)) + "\n"


class StatCsvTests(SynchronousTestCase):
    def test_last_row_counts(self):
        text = stat_file(stat_row(created=100, successful=100, failed=0, max_udp=0, unexpected=0),
                         stat_row())
        st = ladder.parse_stat_csv(text)
        self.assertEqual(
            (st["created"], st["successful"], st["failed"], st["retransmissions"], st["dead_call_msgs"],
             st["timeouts"], st["unexpected"], st["incoming"]),
            (15000, 14990, 10, 7, 2, 4, 6, 0))
        self.assertEqual(st["failures"], {"MaxUDPRetrans": 4, "UnexpectedMessage": 6})

    def test_elapsed_from_epoch_fields(self):
        st = ladder.parse_stat_csv(stat_file(stat_row(start=100.25, now=115.5)))
        self.assertAlmostEqual(st["elapsed"], 15.25)

    def test_header_only(self):
        e = self.assertRaises(ladder.ParseError, ladder.parse_stat_csv, ";".join(HEADER) + "\n")
        self.assertIn("no data row", str(e))

    def test_not_a_stat_file(self):
        self.assertRaises(ladder.ParseError, ladder.parse_stat_csv, "a;b\n1;2\n")

    def test_bad_number(self):
        text = stat_file(stat_row()).replace(";14990;", ";lots;")
        e = self.assertRaises(ladder.ParseError, ladder.parse_stat_csv, text)
        self.assertIn("SuccessfulCall(C)", str(e))


class RttTests(SynchronousTestCase):
    def test_values_of_one_rtd(self):
        text = "Date_ms;response_time_ms;rtd_no\n8.001;4;1\n9.5;12.25;1\n10;99;2\n\n"
        self.assertEqual(ladder.parse_rtt_csv(text), [4.0, 12.25])
        self.assertEqual(ladder.parse_rtt_csv(text, rtd=2), [99.0])

    def test_bad_line(self):
        e = self.assertRaises(ladder.ParseError, ladder.parse_rtt_csv, "Date_ms;x;y\n1;2\n")
        self.assertIn("line 2", str(e))
        self.assertRaises(ladder.ParseError, ladder.parse_rtt_csv, "1;fast;1\n")

    def test_rtt_args(self):
        # the frequency divides the count: sipp keeps every call's time
        self.assertEqual(ladder.rtt_args(90000), ["-trace_rtt", "-rtt_freq", "1000"])
        self.assertEqual(ladder.rtt_args(1500), ["-trace_rtt", "-rtt_freq", "500"])
        self.assertEqual(ladder.rtt_args(7), ["-trace_rtt", "-rtt_freq", "1"])

    def test_every_rtt_file_of_a_directory(self):
        tmp = self.mktemp()
        os.makedirs(tmp)
        files = {
            "uac_message_100_rtt.csv": "Date_ms;response_time_ms;rtd_no\n1;4.000000;1\n2;12.0;1\n",
            "uac_message_101_rtt.csv": "Date_ms;response_time_ms;rtd_no\n3;8.0;1\n4;99.0;2\n",
            "stat.csv": "1;2;3\n",  # not a response-time file
        }
        for name, text in files.items():
            with open(os.path.join(tmp, name), "w") as f:
                f.write(text)
        self.assertEqual(sorted(ladder.read_rtts(tmp)), [4.0, 8.0, 12.0])
        self.assertEqual(ladder.read_rtts(tmp, rtd=2), [99.0])
        empty = self.mktemp()
        os.makedirs(empty)
        self.assertEqual(ladder.read_rtts(empty), [])


class StatusCountTests(SynchronousTestCase):
    def test_counts_status_lines(self):
        log = (b"Aborting call on unexpected message for Call-Id '1-1@127.0.0.1': while expecting "
               b"'202' (index 2), received 'SIP/2.0 480 Temporarily Unavailable\r\nVia: x\r\n'\n"
               b"received 'SIP/2.0 480 Temporarily Unavailable\r\n'\n"
               b"received 'SIP/2.0 503 Service Unavailable\r\nRetry-After: 60\r\n'\n"
               b"1795776843.548114: Dead call 11773-6277@127.0.0.1 (successful), received "
               b"'SIP/2.0 202 Accepted\r\nVia: SIP/2.0/UDP 127.0.0.1:5060\r\n'\n")
        self.assertEqual(ladder.status_counts(log), {480: 2, 503: 1})
        self.assertEqual(ladder.status_counts(log, min_status=200), {202: 1, 480: 2, 503: 1})

    def test_nothing(self):
        self.assertEqual(ladder.status_counts(b""), {})


class PercentileTests(SynchronousTestCase):
    def test_nearest_rank(self):
        values = list(range(100, 0, -1))  # 1..100, unordered
        self.assertEqual(ladder.percentile(values, 50), 50)
        self.assertEqual(ladder.percentile(values, 99), 99)
        self.assertEqual(ladder.percentile(values, 100), 100)
        self.assertEqual(ladder.percentile([7.5], 99), 7.5)

    def test_empty_and_bad(self):
        self.assertIsNone(ladder.percentile([], 50))
        self.assertRaises(ValueError, ladder.percentile, [1], 0)
        self.assertRaises(ValueError, ladder.percentile, [1], 101)


def clean_step(rate=1000, **changes):
    step = ladder.Step("sip->smpp", rate, sent=rate * 10, delivered=rate * 10, answered=rate * 10,
                       elapsed=10.0)
    for name, value in changes.items():
        setattr(step, name, value)
    return step


class JudgeTests(SynchronousTestCase):
    def test_clean_step_passes(self):
        step = ladder.judge(clean_step())
        self.assertTrue(step.passed)
        self.assertEqual(step.reason, "ok")
        self.assertEqual((step.achieved, step.lost), (1000.0, 0))

    def test_loss(self):
        step = ladder.judge(clean_step(delivered=9990, answered=9990))
        self.assertFalse(step.passed)
        self.assertEqual(step.lost, 10)
        self.assertIn("10 lost", step.reason)

    def test_unanswered_counts_as_lost(self):
        step = ladder.judge(clean_step(answered=9995))
        self.assertEqual(step.lost, 5)
        self.assertFalse(step.passed)

    def test_window_held_named(self):
        step = ladder.judge(clean_step(elapsed=12.0, window_held_percent=85.0))
        self.assertIn("achieved 833/s < 90% of offered (simulator window full at 85% of its ticks)", step.reason)
        step = ladder.judge(clean_step(elapsed=12.0, window_held_percent=2.0))
        self.assertTrue(step.reason.endswith("of offered"), step.reason)

    def test_udp_drops_named(self):
        step = ladder.judge(clean_step(retransmissions=40, udp_drops=25))
        self.assertIn("40 retransmissions (25 datagrams dropped: receive buffer full)", step.reason)
        self.assertTrue(ladder.judge(clean_step(udp_drops=0)).passed)

    def test_retransmissions_and_timeouts(self):
        step = ladder.judge(clean_step(retransmissions=3, timeouts=1))
        self.assertFalse(step.passed)
        self.assertIn("3 retransmissions", step.reason)
        self.assertIn("1 timeouts", step.reason)

    def test_error_answers(self):
        """The gateway core missing: every MESSAGE answered 480, nothing submitted."""
        step = ladder.judge(clean_step(delivered=0, answered=0, errors={"480": 10000}))
        self.assertFalse(step.passed)
        self.assertIn("480 x10000", step.reason)
        self.assertIn("10000 lost", step.reason)

    def test_behind(self):
        step = ladder.judge(clean_step(elapsed=12.0))  # 833/s of 1000/s offered
        self.assertFalse(step.passed)
        self.assertIn("achieved 833/s", step.reason)
        self.assertTrue(ladder.judge(clean_step(elapsed=11.0)).passed)  # 909/s: within 90 %

    def test_nothing_sent(self):
        step = ladder.judge(ladder.Step("smpp->sip", 1000))
        self.assertFalse(step.passed)
        self.assertIn("nothing sent", step.reason)

    def test_to_dict(self):
        d = clean_step().to_dict()
        self.assertEqual((d["achieved"], d["lost"], d["offered"], d["direction"]),
                         (1000.0, 0, 1000, "sip->smpp"))


class LadderTests(SynchronousTestCase):
    def test_stops_at_first_failure(self):
        ran = []

        def run_step(rate):
            ran.append(rate)
            return ladder.judge(clean_step(rate, retransmissions=1 if rate >= 4000 else 0))

        results = ladder.run_ladder(ladder.DEFAULT_STEPS, run_step)
        self.assertEqual(ran, [1000, 2000, 4000])
        self.assertEqual([s.passed for s in results], [True, True, False])
        self.assertEqual(ladder.highest_passing(results).offered, 2000)

    def test_report_step_after_the_stop(self):
        """
        A ladder that stopped below the report rate runs that rate once more
        (after_stop), which never counts as the highest passing step.
        """
        ran = []

        def run_step(rate, after_stop=False):
            ran.append((rate, after_stop))
            step = ladder.judge(clean_step(rate, retransmissions=1 if rate == 4000 else 0))
            step.after_stop = after_stop
            return step

        results = ladder.run_ladder(ladder.DEFAULT_STEPS, run_step,
                                    report_rate=ladder.REPORT_RATE)
        self.assertEqual(ran, [(1000, False), (2000, False), (4000, False), (8000, True)])
        self.assertEqual([s.passed for s in results], [True, True, False, True])
        self.assertEqual(ladder.highest_passing(results).offered, 2000)
        summary = ladder.summary(results)["sip->smpp"]
        self.assertEqual((summary["highest_passing"], summary["passed_at_8000"],
                          summary["after_stop_at_8000"]), (2000, True, True))
        self.assertTrue(ladder.summary_line("sip->smpp", summary).endswith(
            "(passed, run after the ladder stopped)"))
        self.assertTrue(results[-1].to_dict()["after_stop"])
        self.assertTrue(ladder.row(results[-1])[-1].startswith("after stop, PASS"))

    def test_no_report_step_when_not_needed(self):
        for steps, failing, expected in (
                # the ladder reached the report rate itself
                ((1000, 8000, 10000), 10000, [1000, 8000, 10000]),
                # not one of the steps
                ((1000, 2000, 4000), 2000, [1000, 2000]),
                # failed above it
                ((8000, 10000, 12000), 12000, [8000, 10000, 12000])):
            ran = []

            def run_step(rate, after_stop=False, failing=failing, ran=ran):
                ran.append(rate)
                return ladder.judge(clean_step(rate, timeouts=1 if rate == failing else 0))

            ladder.run_ladder(steps, run_step, report_rate=8000)
            self.assertEqual(ran, expected, steps)

    def test_all_steps(self):
        results = ladder.run_ladder((1, 2, 3), lambda r: ladder.judge(clean_step(r, timeouts=1)),
                                    stop_on_failure=False)
        self.assertEqual(len(results), 3)
        self.assertIsNone(ladder.highest_passing(results))

    def test_summary(self):
        steps = [ladder.judge(clean_step(r, cpu_us_per_msg=90.0 + r / 1000, p99_ms=5.0))
                 for r in (6000, 8000)]
        mo = ladder.judge(clean_step(1000, direction="smpp->sip", timeouts=2))
        summary = ladder.summary(steps + [mo])
        self.assertEqual(summary["sip->smpp"], {"highest_passing": 8000, "cpu_us_at_8000": 98.0,
                                                "p99_ms_at_8000": 5.0, "passed_at_8000": True,
                                                "after_stop_at_8000": False, "box_ms_at_8000": None})
        self.assertEqual(summary["smpp->sip"]["highest_passing"], None)
        self.assertIsNone(summary["smpp->sip"]["cpu_us_at_8000"])

    def test_summary_lines(self):
        steps = [ladder.judge(clean_step(r, cpu_us_per_msg=153.74, p99_ms=368.0))
                 for r in (6000, 8000)]
        steps.append(ladder.judge(clean_step(4000, direction="smpp->sip")))
        summary = ladder.summary(steps)
        self.assertEqual(ladder.summary_line("sip->smpp", summary["sip->smpp"]),
                         "sip->smpp: highest passing step 8000 msg/s; at 8000 msg/s:"
                         " 153.7 us CPU/msg, p99 368.0 ms (passed)")
        failed = ladder.summary([ladder.judge(clean_step(8000, timeouts=3, p99_ms=9.5))])
        self.assertEqual(ladder.summary_line("sip->smpp", failed["sip->smpp"]),
                         "sip->smpp: highest passing step none msg/s; at 8000 msg/s:"
                         " - us CPU/msg, p99 9.5 ms (failed)")
        probed = ladder.summary([ladder.judge(clean_step(8000, p99_ms=12.0, box_ms=66.6))])
        self.assertEqual(ladder.summary_line("sip->smpp", probed["sip->smpp"]),
                         "sip->smpp: highest passing step 8000 msg/s; at 8000 msg/s:"
                         " - us CPU/msg, p99 12.0 ms (passed), box 67 ms")
        line = ladder.summary_line("smpp->sip", summary["smpp->sip"])
        self.assertTrue(line.startswith("smpp->sip: highest passing step 4000 msg/s; no step at"
                                        " 8000 msg/s"), line)
        self.assertIn("--all-steps", line)


class StepsOptionTests(SynchronousTestCase):
    def test_parse(self):
        self.assertEqual(ladder.parse_steps("1k, 2.5k,500"), (1000, 2500, 500))

    def test_bad(self):
        for text, word in (("1k,x", "'x'"), ("0", "> 0"), ("", "no rate"), ("-2k", "> 0")):
            e = self.assertRaises(ValueError, ladder.parse_steps, text)
            self.assertIn(word, str(e))


class TableTests(SynchronousTestCase):
    def test_row_and_table(self):
        step = ladder.judge(clean_step(8000, p50_ms=2.0, p99_ms=21.5, cpu_percent=71.0,
                                       cpu_us_per_msg=88.7, rss_mb=80.25, sipp_cpu_percent=40.0,
                                       wait_percent=3.0, gc={"max_ms": 12.4}, box_ms=43.6))
        cells = ladder.row(step)
        self.assertEqual(cells, ["sip->smpp", "8000", "8000", "0", "0", "0", "2.0", "21.5", "71", "89",
                                 "80.2", "-", "40", "3", "12", "44", "PASS"])
        lines = ladder.format_table([cells, ladder.row(ladder.judge(clean_step(10000, timeouts=1)))])
        lines = lines.splitlines()
        self.assertEqual(len(lines), 3)
        self.assertTrue(lines[0].startswith("direction"))
        self.assertTrue(lines[2].endswith("FAIL: 1 timeouts"))
        # Columns line up: "p99 ms" header ends where the values end.
        end = lines[0].index("p99 ms") + len("p99 ms")
        self.assertEqual(lines[1][end - 4:end], "21.5")
        end = lines[0].index("box ms") + len("box ms")
        self.assertEqual(lines[1][end - 2:end], "44")
        self.assertEqual(lines[2][end - 1:end], "-")  # not probed


class DrainTests(SynchronousTestCase):
    def test_sip_leg_lagging(self):
        step = ladder.judge(clean_step(direction="smpp->sip", drain_s=2.5))  # 10 s step: 2.0 s allowed
        self.assertFalse(step.passed)
        self.assertIn("SIP side 2.5 s behind", step.reason)

    def test_small_lag_passes(self):
        self.assertTrue(ladder.judge(clean_step(direction="smpp->sip", drain_s=1.5)).passed)
        # A long step allows 10 % of its time.
        long_step = clean_step(direction="smpp->sip", elapsed=100.0, sent=100000, delivered=100000,
                               answered=100000, drain_s=9.0)
        self.assertTrue(ladder.judge(long_step).passed)


class MergeTests(SynchronousTestCase):
    def test_merge_two_uacs(self):
        a = ladder.parse_stat_csv(stat_file(stat_row(start=100.0, now=110.0, created=5000, successful=4990,
                                                     failed=10, max_udp=4, unexpected=6, retrans=7)))
        b = ladder.parse_stat_csv(stat_file(stat_row(start=100.0, now=112.5, created=5000, successful=5000,
                                                     failed=0, max_udp=0, unexpected=0, retrans=1, dead=0)))
        merged = ladder.merge_stats([a, b])
        self.assertEqual(
            (merged["created"], merged["successful"], merged["failed"], merged["retransmissions"],
             merged["timeouts"], merged["dead_call_msgs"], merged["elapsed"]),
            (10000, 9990, 10, 8, 4, 2, 12.5))
        self.assertEqual(merged["failures"], {"MaxUDPRetrans": 4, "UnexpectedMessage": 6})
        self.assertNotIn("raw", merged)

    def test_merge_nothing(self):
        self.assertRaises(ladder.ParseError, ladder.merge_stats, [])

    def test_split_evenly(self):
        self.assertEqual(ladder.split_evenly(1000, 3), [334, 333, 333])
        self.assertEqual(ladder.split_evenly(2, 4), [1, 1, 0, 0])
        self.assertEqual(sum(ladder.split_evenly(14001, 4)), 14001)
        self.assertRaises(ValueError, ladder.split_evenly, 10, 0)
