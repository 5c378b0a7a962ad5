"""
Tests for L{gwsms.smpp.flow} and how L{gwsms.smpp.esme.ESMEProtocol} uses
it: the token bucket at C{max_rate}, the adaptive pause and same-PDU retry
on ESME_RTHROTTLED / ESME_RMSGQFUL, and congestion_state.  Clock +
StringTransport; what the ESME writes is decoded with the codec.
"""

from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from gwsms.smpp.constants import CommandStatus
from gwsms.smpp.esme import ESMEProtocol, SubmitResult
from gwsms.smpp.flow import SubmitPacer, TokenBucket
from tests.test_smpp_esme import ESMETestsMixin
from tests.test_smpp_protocol import take, wire

S = CommandStatus


class RateTests(ESMETestsMixin, SynchronousTestCase):
    link_changes = {"max_rate": 5.0}

    def setUp(self):
        super().setUp()
        self.do_bind()

    def test_token_bucket_spacing(self):
        ds = self.submit(6)
        times = []
        for _ in range(6):
            for req in take(self.transport):
                times.append(self.clock.seconds())
                self.answer(req)
            self.run_pump()
        self.assertEqual(len(times), 6)
        self.assertEqual(times[0], 0)
        gaps = [round(b - a, 6) for a, b in zip(times, times[1:])]
        self.assertEqual(gaps, [0.2] * 5)
        for d in ds:
            self.successResultOf(d)

    def test_bucket_refills_after_idle(self):
        bucket = TokenBucket(10.0, 0.0, capacity=3)
        for _ in range(3):
            self.assertEqual(bucket.delay(0.0), 0.0)
            bucket.take(0.0)
        self.assertAlmostEqual(bucket.delay(0.0), 0.1)
        self.assertEqual(bucket.delay(100.0), 0.0)
        self.assertEqual(bucket.tokens, 3)

    def test_unlimited(self):
        bucket = TokenBucket(0.0, 0.0)
        for _ in range(1000):
            self.assertEqual(bucket.delay(0.0), 0.0)
            bucket.take(0.0)


class ThrottleTests(ESMETestsMixin, SynchronousTestCase):
    def setUp(self):
        super().setUp()
        self.do_bind()

    def test_throttled_submit_retried_with_same_params(self):
        [d] = self.submit(destination_addr="4917", short_message=b"abc")
        [first] = take(self.transport)
        self.answer(first, S.ESME_RTHROTTLED)
        self.assertNoResult(d)
        self.clock.advance(0.05)
        self.assertEqual(self.transport.value(), b"")
        self.clock.advance(0.05)
        [second] = take(self.transport)
        self.assertNotEqual(second.sequence_number, first.sequence_number)
        self.assertEqual(second.params, first.params)
        self.answer(second, message_id="OK1")
        self.assertEqual(self.successResultOf(d), SubmitResult(0, "OK1"))
        self.assertEqual(self.proto.stats["throttled"], 1)
        self.assertEqual(self.proto.stats["submit_ok"], 1)
        self.assertEqual(self.proto.stats["submitted"], 1)

    def test_msgqful_and_adaptive_pause(self):
        [d] = self.submit()
        pauses = []
        for status in (S.ESME_RMSGQFUL, S.ESME_RTHROTTLED, S.ESME_RTHROTTLED):
            [req] = take(self.transport)
            self.answer(req, status)
            self.assertEqual(self.transport.value(), b"")
            pauses.append(round(self.run_pump(), 6))
        self.assertEqual(pauses, [0.1, 0.2, 0.4])
        [req] = take(self.transport)
        self.answer(req)
        self.assertEqual(self.successResultOf(d).status, 0)

    def test_pause_capped(self):
        self.proto.pacer.pause = 4.0
        [d] = self.submit()
        [req] = take(self.transport)
        self.answer(req, S.ESME_RTHROTTLED)
        self.assertEqual(self.proto.pacer.pause, self.proto.pacer.pause_max)
        self.clock.advance(5)
        self.answer(take(self.transport)[0])
        self.successResultOf(d)
        # Successes shrink the pause gradually.
        self.assertEqual(self.proto.pacer.pause, 5.0 * self.proto.pacer.recovery)

    def test_no_new_submits_while_paused(self):
        [d1] = self.submit()
        [req] = take(self.transport)
        self.answer(req, S.ESME_RTHROTTLED)
        [d2] = self.submit()
        self.assertEqual(self.transport.value(), b"")
        self.clock.advance(0.1)
        sent = take(self.transport)
        self.assertEqual(len(sent), 2)
        for r in sent:
            self.answer(r)
        self.successResultOf(d1)
        self.successResultOf(d2)

    def test_retries_keep_submission_order(self):
        ds = [self.proto.submit({"destination_addr": str(i)}) for i in range(12)]
        sent = take(self.transport)
        self.assertEqual(len(sent), 10)
        # The SMSC throttles 2, 5 and 7 (answered in that order) and accepts the rest.
        for i in (2, 5, 7):
            self.answer(sent[i], S.ESME_RTHROTTLED)
        for i in (0, 1, 3, 4, 6, 8, 9):
            self.answer(sent[i])
        self.assertEqual(self.transport.value(), b"")
        self.run_pump()
        again = take(self.transport)
        self.assertEqual(
            [p.params["destination_addr"] for p in again], ["2", "5", "7", "10", "11"]
        )
        for req in again:
            self.answer(req)
        self.assertEqual([self.successResultOf(d).status for d in ds], [0] * 12)

    def test_throttle_by_generic_nack(self):
        [d] = self.submit()
        [req] = take(self.transport)
        self.feed(wire("generic_nack", req.sequence_number, S.ESME_RTHROTTLED))
        self.clock.advance(0.1)
        self.answer(take(self.transport)[0])
        self.assertEqual(self.successResultOf(d).status, 0)

    def test_gives_up_after_max_attempts(self):
        self.proto.max_throttle_attempts = 3
        [d] = self.submit()
        for _ in range(3):
            self.clock.advance(10)
            [req] = take(self.transport)
            self.answer(req, S.ESME_RTHROTTLED)
        self.assertEqual(self.successResultOf(d), SubmitResult(S.ESME_RTHROTTLED, None))

    def test_congestion_state_narrows_window(self):
        ds = self.submit(12)
        sent = take(self.transport)
        self.assertEqual(len(sent), 10)
        self.answer(sent[0], tlvs={"congestion_state": 95})
        self.assertEqual(self.proto.effective_window(), 2)
        # 9 outstanding > 2: nothing more goes out until below 2.
        for req in sent[1:8]:
            self.answer(req)
        self.assertEqual(self.transport.value(), b"")
        self.answer(sent[8])
        self.assertEqual(len(take(self.transport)), 1)
        # Congestion gone: the window opens again.
        self.answer(sent[9], tlvs={"congestion_state": 10})
        self.assertEqual(self.proto.effective_window(), 10)
        self.assertEqual(len(take(self.transport)), 1)
        self.assertEqual(len([d for d in ds if d.called]), 10)

    def test_congestion_state_slows_rate(self):
        self.proto = ESMEProtocol(self.link.replace(max_rate=10.0), self.clock, self.sink)
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)
        self.do_bind()
        [d] = self.submit()
        self.answer(take(self.transport)[0], tlvs={"congestion_state": 85})
        ds = self.submit(2)
        times = []
        for _ in range(3):
            for req in take(self.transport):
                times.append(self.clock.seconds())
                self.answer(req)
            self.run_pump()
        # Rate halved: 10/s -> 5/s, one every 0.2 s instead of 0.1 s.
        self.assertEqual(len(times), 2)
        self.assertAlmostEqual(times[1] - times[0], 0.2, places=5)
        self.assertEqual([self.successResultOf(x).status for x in [d] + ds], [0, 0, 0])

    def test_congestion_reading_expires(self):
        [d] = self.submit()
        self.answer(take(self.transport)[0], tlvs={"congestion_state": 99})
        self.assertEqual(self.proto.effective_window(), 2)
        self.clock.advance(self.proto.pacer.congestion_ttl + 1)
        self.assertEqual(self.proto.effective_window(), 10)


class PacerTests(SynchronousTestCase):
    """L{gwsms.smpp.flow.SubmitPacer} on its own."""

    def test_pause_doubles_only_when_not_paused(self):
        pacer = SubmitPacer(0, 10, 0.0)
        self.assertEqual(pacer.throttled(0.0), 0.1)
        # Responses to submits sent before the pause do not extend it.
        self.assertIsNone(pacer.throttled(0.05))
        self.assertAlmostEqual(pacer.delay(0.05), 0.05)
        self.assertEqual(pacer.throttled(0.1), 0.2)
        self.assertEqual(pacer.throttled(1.0), 0.4)
        for _ in range(10):
            pacer.succeeded()
        self.assertEqual(pacer.pause, 0.0)
        self.assertEqual(pacer.throttled(2.0), 0.1)

    def test_congestion_levels(self):
        pacer = SubmitPacer(100.0, 20, 0.0)
        self.assertTrue(pacer.note_congestion(80, 0.0))
        self.assertFalse(pacer.note_congestion(85, 0.0))
        self.assertEqual(pacer.effective_window(0.0), 10)
        pacer.note_congestion(90, 0.0)
        self.assertEqual(pacer.effective_window(0.0), 5)
        pacer.note_congestion(100, 0.0)
        self.assertEqual(pacer.effective_window(0.0), 2)
        pacer.note_congestion(79, 0.0)
        self.assertEqual(pacer.effective_window(0.0), 20)

    def test_rate_follows_congestion(self):
        pacer = SubmitPacer(10.0, 10, 0.0)
        pacer.take(0.0)
        self.assertAlmostEqual(pacer.delay(0.0), 0.1)
        pacer.note_congestion(95, 0.0)
        self.assertAlmostEqual(pacer.delay(0.0), 0.4)
