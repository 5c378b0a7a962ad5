"""
Tests for L{bench.pyspy}: the py-spy command line and the summary of its
raw (collapsed stack) output.  No process is started.
"""

from twisted.trial.unittest import SynchronousTestCase

from bench import pyspy

RAW = """\
thread (1): MainThread;run (twisted/app.py:1);datagramReceived (gwsms/sip/wire.py:271);parse_message (gwsms/sip/message.py:368) 30
thread (1): MainThread;run (twisted/app.py:1);datagramReceived (gwsms/sip/wire.py:271);Port.write (twisted/internet/udp.py:305) 20
thread (1): MainThread;run (twisted/app.py:1);doPoll (twisted/internet/epollreactor.py:227) 10
thread (7): PoolThread-0;_interact (gwsms/store/database.py:81);execute (gwsms/store/database.py:47) 40
not a sample line
"""


class SummaryTests(SynchronousTestCase):
    def test_summarise(self):
        summary = pyspy.summarise(RAW, top=3)
        self.assertEqual(summary["samples"], 100)
        self.assertEqual(summary["threads"], {"thread (1): MainThread": 60, "thread (7): PoolThread-0": 40})
        self.assertEqual(summary["self"], [[40.0, "execute (gwsms/store/database.py:47)"],
                                           [30.0, "parse_message (gwsms/sip/message.py:368)"],
                                           [20.0, "Port.write (twisted/internet/udp.py:305)"]])
        # Inclusive: only gwsms frames, each stack counted once per frame.
        self.assertEqual(summary["inclusive"][0], [50.0, "datagramReceived (gwsms/sip/wire.py:271)"])
        self.assertNotIn("run (twisted/app.py:1)", [f for _, f in summary["inclusive"]])

    def test_empty(self):
        self.assertEqual(pyspy.summarise(""), {"samples": 0, "threads": {}, "self": [], "inclusive": []})

    def test_format(self):
        text = pyspy.format_summary(pyspy.summarise(RAW), lines=1)
        self.assertEqual(text.splitlines(), [
            "  profile: 100 samples",
            "  self  40.0%  execute (gwsms/store/database.py:47)",
            "  incl  50.0%  datagramReceived (gwsms/sip/wire.py:271)",
        ])


class CommandTests(SynchronousTestCase):
    def test_command(self):
        self.assertEqual(pyspy.command("/v/py-spy", 4242, 12.9, "/tmp/p/mt-1000.txt"), [
            "/v/py-spy", "record", "-p", "4242", "-d", "12", "-r", "200", "-f", "raw", "--threads",
            "--nonblocking", "-o", "/tmp/p/mt-1000.txt"])

    def test_short_step_records_a_second(self):
        self.assertIn("1", pyspy.command("py-spy", 1, 0.2, "x")[5:6])
