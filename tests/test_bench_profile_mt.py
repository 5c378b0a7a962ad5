"""
Tests for L{bench.profile_mt}'s reactor idle probe (L{bench.profile_mt.PollTimer}):
no gateway or process is started.
"""

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from bench.profile_mt import PollTimer


class _Poller:
    """An epoll stand-in: each poll takes C{took} seconds on C{clock}."""

    def __init__(self, clock, took, events=(), fail=None):
        self.clock = clock
        self.took = took
        self.events = list(events)
        self.fail = fail
        self.calls = []
        self.registered = []

    def poll(self, timeout, count):
        self.calls.append((timeout, count))
        self.clock.advance(self.took)
        if self.fail is not None:
            raise self.fail
        return self.events

    def register(self, fd, mask):
        self.registered.append((fd, mask))


class PollTimerTests(SynchronousTestCase):
    def test_adds_up_the_time_in_poll(self):
        clock = task.Clock()
        poller = _Poller(clock, 0.25, events=[(5, 1)])
        timer = PollTimer(poller, clock.seconds)
        self.assertEqual(timer.poll(1.0, 8), [(5, 1)])
        clock.advance(3.0)  # busy: not counted
        self.assertEqual(timer.poll(-1, 8), [(5, 1)])
        self.assertEqual(timer.idle, 0.5)
        self.assertEqual(poller.calls, [(1.0, 8), (-1, 8)])

    def test_counts_a_failed_poll(self):
        clock = task.Clock()
        poller = _Poller(clock, 0.125, fail=InterruptedError())
        timer = PollTimer(poller, clock.seconds)
        self.assertRaises(InterruptedError, timer.poll, 1.0, 8)
        self.assertEqual(timer.idle, 0.125)
        # its time is idle time, but it is not a turn
        self.assertEqual((timer.polls, timer.events), (0, 0))

    def test_counts_turns_and_ready_descriptors(self):
        clock = task.Clock()
        poller = _Poller(clock, 0.0, events=[(5, 1), (6, 4)])
        timer = PollTimer(poller, clock.seconds)
        timer.poll(1.0, 8)
        poller.events = []
        timer.poll(1.0, 8)
        poller.events = [(7, 1)]
        timer.poll(1.0, 8)
        self.assertEqual((timer.polls, timer.events), (3, 3))

    def test_the_rest_is_the_pollers(self):
        poller = _Poller(task.Clock(), 0.0)
        timer = PollTimer(poller)
        timer.register(7, 4)
        self.assertEqual(poller.registered, [(7, 4)])

    def test_busy(self):
        # 10 s measured, 4 s idle, 1,000 messages at 5,000 us CPU each
        self.assertEqual(PollTimer.busy(10.0, 4.0, 5000.0, 1000), (6000.0, 60.0, 1000.0))

    def test_since_a_mark(self):
        clock = task.Clock()
        poller = _Poller(clock, 0.5, events=[(5, 1)])
        timer = PollTimer(poller, clock.seconds)
        timer.poll(1.0, 8)
        mark = timer.mark()
        poller.events = [(5, 1), (6, 4)]
        timer.poll(1.0, 8)
        timer.poll(1.0, 8)
        self.assertEqual(timer.since(mark), (1.0, (2, 4)))

    def test_turns(self):
        self.assertEqual(PollTimer.turns(40, 50, 1000),
                         "  reactor turns: 0.04 per message, 1.25 ready descriptors per turn")
        self.assertEqual(PollTimer.turns(0, 0, 0),
                         "  reactor turns: 0.00 per message, 0.00 ready descriptors per turn")

    def test_install(self):
        poller = _Poller(task.Clock(), 0.0)
        reactor = type("Reactor", (), {})()
        reactor._poller = poller
        timer = PollTimer.install(reactor)
        self.assertIs(reactor._poller, timer)
        self.assertIs(timer._poller, poller)
        # a reactor without an epoll-like poller is left alone
        other = type("Reactor", (), {})()
        self.assertIsNone(PollTimer.install(other))
        self.assertFalse(hasattr(other, "_poller"))


class OptionTests(SynchronousTestCase):
    """The profile scripts read --option / --sip-option as bench/run.py does (harness.parse_option)."""

    def test_bad_option_is_one_line(self):
        import os
        import subprocess
        import sys

        bench = os.path.join(os.path.dirname(__file__), "..", "bench")
        for script, argv, flag in (("profile_mt.py", ["--option", "nokey"], "--option 'nokey'"),
                                   ("profile_mo.py", ["--sip-option", "x="], "--sip-option 'x='")):
            run = subprocess.run([sys.executable, os.path.join(bench, script)] + argv,
                                 capture_output=True, text=True, timeout=60)
            self.assertEqual(run.returncode, 2, run.stderr)
            self.assertIn(flag + " is not KEY=VALUE", run.stderr)
            self.assertNotIn("Traceback", run.stderr)
