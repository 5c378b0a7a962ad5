# -*- test-case-name: tests.test_smpp_protocol -*-
"""
The SMPP 3.4 section 7.2 timers other than the response timer, as a mixin
of L{gwsms.smpp.protocol.SMPPProtocol} (which owns the attributes used
here: C{clock}, C{name}, the timeouts, C{is_open}, C{send_request},
C{close_connection}).

  - session-init: a connection not bound within C{session_init_timeout}
    is closed;
  - enquire-link: after C{enquire_link_interval} seconds with nothing
    received an C{enquire_link} is sent; no answer within
    C{response_timeout} closes the connection;
  - inactivity: when C{inactivity_timeout} > 0 and no PDU other than
    C{enquire_link}/C{enquire_link_resp} arrived for that long,
    L{SessionTimers.session_inactive} runs (default: unbind and close).

Idleness is checked when a timer fires (against the time of the last
received PDU) instead of re-arming a DelayedCall on every PDU.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.python.failure import Failure

from gwsms.smpp import pdu as smpp_pdu
from gwsms.smpp.errors import (
    SMPPConnectionLost,
    SMPPError,
    SMPPGenericNack,
    SMPPProtocolError,
    SMPPTimeoutError,
    status_name,
)


class SessionTimers:
    """Session-init, enquire-link and inactivity timers (mixin)."""

    _session_init_call = None
    _enquire_call = None
    _inactivity_call = None
    _enquire_pending = False

    def mark_bound(self) -> None:
        """
        The session is bound: stop the session-init timer, start the
        enquire-link and inactivity timers.
        """
        self._bound = True
        self._cancel_call("_session_init_call")
        now = self.clock.seconds()
        self._last_received = self._last_activity = now
        if self.enquire_link_interval > 0 and self._enquire_call is None:
            self._enquire_call = self.clock.callLater(
                self.enquire_link_interval, self._enquire_link_due
            )
        if self.inactivity_timeout > 0 and self._inactivity_call is None:
            self._inactivity_call = self.clock.callLater(
                self.inactivity_timeout, self._inactivity_due
            )

    def session_inactive(self) -> None:
        """The inactivity timer expired.  The default unbinds and closes."""
        self.unbind_and_close(
            f"nothing received for {self.inactivity_timeout:g}s (inactivity timer)"
        )

    def _cancel_call(self, attribute: str) -> None:
        call = getattr(self, attribute)
        setattr(self, attribute, None)
        if call is not None and call.active():
            call.cancel()

    def _cancel_timers(self) -> None:
        for attribute in ("_session_init_call", "_enquire_call", "_inactivity_call"):
            self._cancel_call(attribute)

    def _session_init_expired(self) -> None:
        self._session_init_call = None
        if not self._bound:
            self.close_connection(
                f"not bound within {self.session_init_timeout:g}s (session-init timer)"
            )

    def _enquire_link_due(self) -> None:
        self._enquire_call = None
        if not self.is_open:
            return
        interval = self.enquire_link_interval
        idle = self.clock.seconds() - self._last_received
        if idle < interval or self._enquire_pending:
            delay = interval - idle if idle < interval else interval
            self._enquire_call = self.clock.callLater(delay, self._enquire_link_due)
            return
        self._enquire_pending = True
        self.stats["enquire_link_sent"] += 1
        d = self.send_request(smpp_pdu.make("enquire_link"), windowed=False)
        d.addCallbacks(self._enquire_link_answered, self._enquire_link_failed)
        d.addErrback(
            lambda f: self._log.failure("smsc {name}: enquire_link", f, name=self.name)
        )
        if self.is_open:
            self._enquire_call = self.clock.callLater(interval, self._enquire_link_due)

    def _enquire_link_answered(self, response) -> None:
        self._enquire_pending = False
        if response.command_status:
            self._log.info(
                "smsc {name}: enquire_link_resp with {status}",
                name=self.name,
                status=status_name(response.command_status),
            )

    def _enquire_link_failed(self, failure: Failure) -> None:
        self._enquire_pending = False
        if failure.check(SMPPTimeoutError):
            self.close_connection(
                f"no enquire_link_resp within {self.response_timeout:g}s"
            )
        elif failure.check(SMPPConnectionLost):
            pass
        elif failure.check(SMPPGenericNack, SMPPProtocolError):
            # The peer answered, so it is alive; note and carry on.
            self._log.info(
                "smsc {name}: enquire_link: {error}", name=self.name, error=failure.value
            )
        else:
            return failure

    def _inactivity_due(self) -> None:
        self._inactivity_call = None
        if not self.is_open:
            return
        idle = self.clock.seconds() - self._last_activity
        if idle < self.inactivity_timeout:
            self._inactivity_call = self.clock.callLater(
                self.inactivity_timeout - idle, self._inactivity_due
            )
            return
        self.session_inactive()

    def unbind_and_close(self, reason: str, timeout: float | None = None) -> defer.Deferred:
        """
        Send C{unbind}, wait for C{unbind_resp} (at most C{timeout}, default
        C{response_timeout}), then close the connection giving C{reason}.

        @return: Deferred firing with L{None} once the connection is being
            closed (never fails).
        """
        if not self.is_open:
            return defer.succeed(None)
        self._log.info("smsc {name}: unbinding: {reason}", name=self.name, reason=reason)
        d = self.send_request(smpp_pdu.make("unbind"), windowed=False, timeout=timeout)

        def done(result):
            if isinstance(result, Failure) and not result.check(SMPPError):
                self._log.failure("smsc {name}: unbind", result, name=self.name)
            self.close_connection(reason)

        d.addBoth(done)
        return d
