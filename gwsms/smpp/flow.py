# -*- test-case-name: tests.test_smpp_flow -*-
"""
Flow control for submits on one SMPP session: when may the next one go?

L{SubmitPacer} combines three brakes, all on an injected clock:
  - a L{TokenBucket} at the link's C{max_rate} (0 = unlimited);
  - an adaptive pause after C{ESME_RTHROTTLED} / C{ESME_RMSGQFUL}: the
    first pause is C{pause_initial}, each further throttle while not paused
    doubles it up to C{pause_max}, each success shrinks the level by
    C{recovery} (below C{pause_initial} it drops to 0);
  - the C{congestion_state} TLV (SMPP 5.0, 0-100) the SMSC may put in
    responses: at or above a threshold of L{SubmitPacer.congestion_levels}
    the rate (if limited) and the window are multiplied by its factor;
    readings older than C{congestion_ttl} seconds are ignored.
Pure bookkeeping: it never schedules anything itself.
"""

from __future__ import annotations


class TokenBucket:
    """
    C{rate} tokens per second, at most C{capacity} saved up (default: 1, or
    100 ms worth at high rates).  A rate of 0 means unlimited.
    """

    def __init__(self, rate: float, now: float, capacity: float | None = None):
        self.rate = float(rate)
        self.capacity = capacity if capacity else max(1.0, self.rate / 10.0)
        self.tokens = self.capacity
        self._stamp = now

    def _refill(self, now: float) -> None:
        if self.rate > 0 and now > self._stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def set_rate(self, rate: float, now: float) -> None:
        """Change the rate, crediting what accrued at the old rate."""
        if rate != self.rate:
            self._refill(now)
            self.rate = float(rate)

    def delay(self, now: float) -> float:
        """@return: seconds until a token is available (0.0 if one is now)."""
        if self.rate <= 0:
            return 0.0
        self._refill(now)
        missing = 1.0 - self.tokens
        return 0.0 if missing <= 1e-9 else missing / self.rate

    def take(self, now: float) -> None:
        """Consume one token (call only when L{delay} returned 0)."""
        if self.rate > 0:
            self._refill(now)
            self.tokens -= 1.0


class SubmitPacer:
    """
    Rate, throttle pause and congestion for one session.

    @ivar pause: the current pause level in seconds (0 = none).
    @ivar paused_until: clock time before which no submit may go out.
    @ivar congestion: last congestion_state reading (0-100).
    """

    pause_initial = 0.1
    pause_max = 5.0
    recovery = 0.75
    congestion_levels = ((100, 0.1), (90, 0.25), (80, 0.5))
    congestion_ttl = 30.0

    def __init__(self, max_rate: float, window: int, now: float):
        """
        @param max_rate: submits per second; 0 = unlimited.
        @param window: the session's window.
        @param now: current clock time.
        """
        self.max_rate = float(max_rate)
        self.window = int(window)
        self.bucket = TokenBucket(self.max_rate, now)
        self.pause = 0.0
        self.paused_until = 0.0
        self.congestion = 0
        self._congestion_at = 0.0

    def factor(self, now: float) -> float:
        """@return: the slow-down factor from congestion_state (1.0 = none)."""
        if not self.congestion or now - self._congestion_at > self.congestion_ttl:
            return 1.0
        for threshold, factor in self.congestion_levels:
            if self.congestion >= threshold:
                return factor
        return 1.0

    def effective_window(self, now: float) -> int:
        """@return: the window, narrowed while the SMSC reports congestion."""
        return max(1, int(self.window * self.factor(now)))

    def delay(self, now: float) -> float:
        """@return: seconds until the next submit may go out (0.0 = now)."""
        if now < self.paused_until:
            return self.paused_until - now
        if self.max_rate > 0:
            self.bucket.set_rate(self.max_rate * self.factor(now), now)
        return self.bucket.delay(now)

    def take(self, now: float) -> None:
        """A submit goes out now."""
        self.bucket.take(now)

    def throttled(self, now: float) -> float | None:
        """
        The SMSC throttled a submit.

        @return: the new pause in seconds if a pause starts now, L{None} if
            already paused (responses to submits sent before the pause do
            not extend it).
        """
        if now < self.paused_until:
            return None
        if self.pause < self.pause_initial:
            self.pause = self.pause_initial
        else:
            self.pause = min(self.pause_max, self.pause * 2)
        self.paused_until = now + self.pause
        return self.pause

    def succeeded(self) -> None:
        """A submit was accepted: relax the pause level gradually."""
        self.pause *= self.recovery
        if self.pause < self.pause_initial:
            self.pause = 0.0

    def note_congestion(self, value: int, now: float) -> bool:
        """
        Record a congestion_state reading.

        @return: True if it newly crosses the lowest slow-down threshold.
        """
        crossed = value >= self.congestion_levels[-1][0] > self.congestion
        self.congestion = int(value)
        self._congestion_at = now
        return crossed
