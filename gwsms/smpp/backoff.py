# -*- test-case-name: tests.test_smpp_backoff -*-
"""
Reconnect delays and quiet failure logging for SMPP links.

Pure: no reactor, no I/O.  The random source is passed in so tests can fix
it.
"""

from __future__ import annotations

import random as _random
from typing import Callable

#: Why a connection attempt failed, as far as the retry schedule cares.
CONNECT = "connect"  # TCP/TLS failure, lost connection, bind timeout, ...
AUTH = "auth"  # bind refused because of the credentials


class Backoff:
    """
    Capped exponential backoff with jitter, plus a separate, longer delay
    after a bind was refused for its credentials.

    Delay for the n-th consecutive ordinary failure (n >= 1) is
    C{min(initial * factor ** (n - 1), maximum)}, then multiplied by a
    random factor in C{[1 - jitter, 1 + jitter]}.  After a credentials
    refusal the delay is C{max(auth_failure_delay, the ordinary delay)}
    with the same jitter: hammering an SMSC with a wrong password gets
    accounts locked.
    """

    def __init__(
        self,
        initial: float = 1.0,
        maximum: float = 60.0,
        factor: float = 2.0,
        jitter: float = 0.2,
        auth_failure_delay: float = 60.0,
        random: Callable[[], float] = _random.random,
    ) -> None:
        """
        @param initial: delay after the first failure, in seconds (> 0).
        @param maximum: cap of the ordinary delay, in seconds (>= initial).
        @param factor: growth per consecutive failure (>= 1).
        @param jitter: relative spread, 0 <= jitter < 1.
        @param auth_failure_delay: minimum delay after a credentials
            refusal, in seconds (>= 0).
        @param random: callable returning a float in [0, 1).
        @raise ValueError: naming the bad parameter.
        """
        if not initial > 0:
            raise ValueError(f"reconnect initial delay must be > 0, not {initial!r}")
        if maximum < initial:
            raise ValueError(
                f"reconnect maximum delay {maximum!r} is below the initial delay {initial!r}"
            )
        if factor < 1:
            raise ValueError(f"backoff factor must be >= 1, not {factor!r}")
        if not 0 <= jitter < 1:
            raise ValueError(f"reconnect jitter must be in [0, 1), not {jitter!r}")
        if auth_failure_delay < 0:
            raise ValueError(
                f"auth failure delay must be >= 0, not {auth_failure_delay!r}"
            )
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self.auth_failure_delay = auth_failure_delay
        self._random = random

    def base_delay(self, attempt: int, reason: str = CONNECT) -> float:
        """
        The delay before jitter.

        @param attempt: number of consecutive failures so far (>= 1).
        @param reason: L{CONNECT} or L{AUTH}.
        @return: seconds.
        """
        if attempt < 1:
            raise ValueError(f"attempt must be >= 1, not {attempt!r}")
        # Avoid float overflow for very long outages: stop growing at the cap.
        delay = self.initial
        for _ in range(attempt - 1):
            delay *= self.factor
            if delay >= self.maximum:
                break
        delay = min(delay, self.maximum)
        if reason == AUTH:
            delay = max(delay, self.auth_failure_delay)
        elif reason != CONNECT:
            raise ValueError(f"unknown failure reason {reason!r}")
        return delay

    def delay(self, attempt: int, reason: str = CONNECT) -> float:
        """
        The jittered delay before the next attempt.

        @param attempt: number of consecutive failures so far (>= 1).
        @param reason: L{CONNECT} or L{AUTH}.
        @return: seconds, within C{base_delay * (1 +/- jitter)}.
        """
        base = self.base_delay(attempt, reason)
        spread = (self._random() * 2.0 - 1.0) * self.jitter
        return base * (1.0 + spread)

    @classmethod
    def from_config(cls, smpp_config, random: Callable[[], float] = _random.random):
        """
        Build from the C{config.smpp} section.

        @param smpp_config: object with C{reconnect_initial},
            C{reconnect_max}, C{reconnect_jitter}, C{auth_failure_delay}.
        """
        return cls(
            initial=smpp_config.reconnect_initial,
            maximum=smpp_config.reconnect_max,
            jitter=smpp_config.reconnect_jitter,
            auth_failure_delay=smpp_config.auth_failure_delay,
            random=random,
        )


class FailureSeries:
    """
    Decide which failures of a link are worth a log line.

    The first failure of a series is logged with its reason; repeats of the
    same reason are counted silently; a different reason is logged again;
    the recovery is logged with the number of failed attempts.  Methods
    return the message to log, or C{None} to stay quiet; the caller owns
    the logger.
    """

    def __init__(self, name: str) -> None:
        """
        @param name: the link name, used in the messages.
        """
        self.name = name
        self.count = 0
        self.reason: str | None = None

    def failed(self, reason: str) -> str | None:
        """
        Record one failed attempt.

        @param reason: human-readable cause (no secrets).
        @return: a message to log, or C{None}.
        """
        self.count += 1
        if reason == self.reason:
            return None
        self.reason = reason
        if self.count == 1:
            return f"smsc {self.name}: {reason}; retrying quietly until it recovers"
        return (
            f"smsc {self.name}: {reason} (after {self.count - 1} failed "
            "attempt(s) for another reason)"
        )

    def recovered(self) -> str | None:
        """
        Record a success.

        @return: a message to log if a failure series ends here, else C{None}.
        """
        count, self.count, self.reason = self.count, 0, None
        if count == 0:
            return None
        return f"smsc {self.name}: recovered after {count} failed attempt(s)"
