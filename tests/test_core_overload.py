"""
Tests for L{gwsms.core.overload}: event-loop lag measurement, shedding
with hysteresis, and the gateway answering 503 while the loop lags.
"""

from __future__ import annotations

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from gwsms.core.overload import LagMonitor
from tests.test_core_gateway import Harness, sip_message


def monitor(max_lag=0.1, interval=0.05, smoothing=0.5):
    clock = task.Clock()
    clock.advance(1000)
    lag = LagMonitor(clock, interval=interval, max_lag=max_lag, smoothing=smoothing)
    return clock, lag


def ticks(clock, n, interval=0.05):
    for _ in range(n):
        clock.advance(interval)


class LagMonitorTests(SynchronousTestCase):
    def test_on_time_no_lag(self):
        clock, lag = monitor()
        lag.start()
        self.addCleanup(lag.stop)
        ticks(clock, 20)
        self.assertEqual(lag.lag, 0.0)
        self.assertFalse(lag.overloaded())

    def test_lag_measured_when_clock_jumps(self):
        clock, lag = monitor(smoothing=0.5)
        lag.start()
        self.addCleanup(lag.stop)
        clock.advance(0.35)  # the tick due at +0.05 runs 0.3 s late
        self.assertAlmostEqual(lag.lag, 0.15)  # half of the 0.3 s sample
        self.assertTrue(lag.shedding)
        ticks(clock, 1)  # next tick on time: the average halves
        self.assertAlmostEqual(lag.lag, 0.075)

    def test_hysteresis(self):
        clock, lag = monitor(smoothing=0.5)
        lag.start()
        self.addCleanup(lag.stop)
        clock.advance(0.05 + 0.4)  # sample 0.4 -> average 0.2
        self.assertTrue(lag.overloaded())
        self.assertEqual(lag.episodes, 1)
        ticks(clock, 1)  # 0.1: not above max_lag, but not below max_lag / 2
        self.assertAlmostEqual(lag.lag, 0.1)
        self.assertTrue(lag.overloaded())
        ticks(clock, 1)  # 0.05: still not below 0.05
        self.assertTrue(lag.overloaded())
        ticks(clock, 1)  # 0.025 < 0.05: off
        self.assertFalse(lag.overloaded())
        # below max_lag but above half of it does not switch on again
        clock.advance(0.05 + 0.17)  # sample 0.17 -> (0.025 + 0.17) / 2 = 0.0975
        self.assertAlmostEqual(lag.lag, 0.0975)
        self.assertFalse(lag.overloaded())
        self.assertEqual(lag.episodes, 1)

    def test_stalled_loop_seen_before_the_tick(self):
        """A tick overdue by more than max_lag counts without waiting for it to run."""
        clock, lag = monitor()
        lag.start()
        self.addCleanup(lag.stop)
        ticks(clock, 2)
        self.assertFalse(lag.overloaded())
        # the loop is busy: time passes, the due tick has not run yet
        clock.rightNow += 0.2
        self.assertTrue(lag.overloaded())
        self.assertGreaterEqual(lag.lag, 0.15)

    def test_disabled_at_zero(self):
        clock, lag = monitor(max_lag=0)
        lag.start()
        self.assertFalse(lag.running)
        self.assertEqual(clock.getDelayedCalls(), [])
        clock.advance(100)
        clock.rightNow += 100
        self.assertFalse(lag.overloaded())
        self.assertEqual(lag.lag, 0.0)

    def test_stop_cancels_and_resets(self):
        clock, lag = monitor()
        lag.start()
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        lag.start()  # idempotent
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        clock.advance(1.0)
        self.assertTrue(lag.overloaded())
        lag.stop()
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertFalse(lag.running)
        self.assertFalse(lag.overloaded())

    def test_tick_survives_an_exception(self):
        clock, lag = monitor()
        lag.start()
        self.addCleanup(lag.stop)

        def broken():
            raise RuntimeError("boom")

        lag._update = broken
        ticks(clock, 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertTrue(lag.running)  # rescheduled anyway
        del lag._update
        clock.advance(0.5)
        self.assertTrue(lag.shedding)

    def test_bad_arguments(self):
        clock = task.Clock()
        for kwargs in ({"interval": 0}, {"max_lag": -1}, {"smoothing": 0},
                       {"smoothing": 1.5}):
            self.assertRaises(ValueError, LagMonitor, clock, **kwargs)


class GatewayLagSheddingTests(SynchronousTestCase):
    def test_overloaded_answers_503_and_stores_nothing(self):
        h = Harness(self, max_lag=0.1)
        h.start()
        writes = []
        add = h.store.add
        h.store.add = lambda *a, **kw: writes.append(a) or add(*a, **kw)
        h.clock.advance(1.0)  # the event loop was a second late
        self.assertTrue(h.gateway.ctx.lag.overloaded())
        answer = self.successResultOf(h.send(sip_message("x", call_id="late")))
        self.assertEqual(answer.status, 503)
        self.assertIn(("Retry-After", "60"), answer.headers)
        self.assertEqual(writes, [])
        self.assertEqual(h.smpp.calls, [])
        self.assertEqual(h.rows(), [])
        self.assertEqual(h.gateway.mt.shed, 1)
        # the loop catches up: shedding stops, the next MESSAGE is taken
        for _ in range(40):
            h.clock.advance(0.05)
        self.assertFalse(h.gateway.ctx.lag.overloaded())
        answer = self.successResultOf(h.send(sip_message("y", call_id="ok")))
        self.assertEqual(answer.status, 202)
        self.assertEqual(len(writes), 1)
        self.assertEqual(h.gateway.mt.shed, 1)

    def test_disabled_never_sheds(self):
        h = Harness(self, max_lag=0.0)
        h.start()
        h.clock.advance(10.0)
        answer = self.successResultOf(h.send(sip_message("x")))
        self.assertEqual(answer.status, 202)
        self.assertEqual(h.gateway.mt.shed, 0)

    def test_started_and_stopped_with_the_service(self):
        h = Harness(self, max_lag=0.1)
        lag = h.gateway.ctx.lag
        self.assertFalse(lag.running)
        h.start()
        self.assertTrue(lag.running)
        h.stop()
        self.assertFalse(lag.running)
