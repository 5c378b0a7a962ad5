"""Tests for L{gwsms.smpp.backoff}."""

from types import SimpleNamespace

from twisted.trial.unittest import SynchronousTestCase

from gwsms.smpp.backoff import AUTH, CONNECT, Backoff, FailureSeries


class BackoffTests(SynchronousTestCase):
    def test_exponential_capped(self):
        """Without jitter the delay doubles from the initial value to the cap."""
        b = Backoff(initial=1.0, maximum=60.0, factor=2.0, jitter=0.0)
        self.assertEqual(
            [b.delay(n) for n in range(1, 10)],
            [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0],
        )

    def test_huge_attempt_count(self):
        """A week-long outage does not overflow."""
        b = Backoff(initial=1.0, maximum=60.0, jitter=0.0)
        self.assertEqual(b.delay(10**6), 60.0)

    def test_jitter_bounds(self):
        """random()=0 gives -jitter, random()->1 gives +jitter, 0.5 none."""
        for value, expected in [(0.0, 8.0), (0.5, 10.0), (0.999999, 12.0)]:
            b = Backoff(initial=10.0, maximum=60.0, jitter=0.2, random=lambda: value)
            self.assertAlmostEqual(b.delay(1), expected, places=4)

    def test_jitter_uses_random_each_time(self):
        values = iter([0.0, 1.0, 0.5])
        b = Backoff(initial=10.0, maximum=60.0, jitter=0.1, random=lambda: next(values))
        self.assertEqual(
            [round(b.delay(1), 6) for _ in range(3)], [9.0, 11.0, 10.0]
        )

    def test_auth_failure_longer(self):
        """A credentials refusal waits at least auth_failure_delay."""
        b = Backoff(initial=1.0, maximum=30.0, jitter=0.0, auth_failure_delay=120.0)
        self.assertEqual(b.delay(1, AUTH), 120.0)
        self.assertEqual(b.delay(7, AUTH), 120.0)
        self.assertEqual(b.delay(1, CONNECT), 1.0)

    def test_auth_failure_never_shorter_than_ordinary(self):
        b = Backoff(initial=1.0, maximum=60.0, jitter=0.0, auth_failure_delay=5.0)
        self.assertEqual(b.delay(1, AUTH), 5.0)
        self.assertEqual(b.delay(8, AUTH), 60.0)

    def test_unknown_reason(self):
        b = Backoff()
        self.assertRaises(ValueError, b.delay, 1, "bogus")

    def test_bad_parameters(self):
        for kwargs, word in [
            (dict(initial=0), "initial"),
            (dict(initial=5, maximum=1), "maximum"),
            (dict(factor=0.5), "factor"),
            (dict(jitter=1.0), "jitter"),
            (dict(auth_failure_delay=-1), "auth failure"),
        ]:
            e = self.assertRaises(ValueError, Backoff, **kwargs)
            self.assertIn(word, str(e))

    def test_attempt_zero(self):
        self.assertRaises(ValueError, Backoff().delay, 0)

    def test_from_config(self):
        cfg = SimpleNamespace(
            reconnect_initial=2.0,
            reconnect_max=10.0,
            reconnect_jitter=0.0,
            auth_failure_delay=99.0,
        )
        b = Backoff.from_config(cfg)
        self.assertEqual([b.delay(n) for n in (1, 2, 3, 4)], [2.0, 4.0, 8.0, 10.0])
        self.assertEqual(b.delay(1, AUTH), 99.0)


class FailureSeriesTests(SynchronousTestCase):
    def test_one_line_per_series(self):
        s = FailureSeries("acme")
        first = s.failed("connection refused")
        self.assertIn("acme", first)
        self.assertIn("connection refused", first)
        self.assertIsNone(s.failed("connection refused"))
        self.assertIsNone(s.failed("connection refused"))
        msg = s.recovered()
        self.assertIn("recovered after 3 failed attempt(s)", msg)
        # A new series logs again.
        self.assertIsNotNone(s.failed("connection refused"))

    def test_reason_change_logs(self):
        s = FailureSeries("acme")
        s.failed("connection refused")
        s.failed("connection refused")
        msg = s.failed("bind refused: ESME_RINVPASWD")
        self.assertIn("ESME_RINVPASWD", msg)
        self.assertIn("after 2 failed attempt(s)", msg)
        self.assertIsNone(s.failed("bind refused: ESME_RINVPASWD"))
        self.assertIn("after 4 failed", s.recovered())

    def test_recovered_without_failure_is_quiet(self):
        self.assertIsNone(FailureSeries("acme").recovered())
