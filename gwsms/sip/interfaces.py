# -*- test-case-name: tests.test_sip_ua -*-
"""
What the SIP side hands to the gateway core, and what it expects back.

The SIP user agent (L{gwsms.sip.ua}) turns an accepted MESSAGE request into an
L{IncomingMessage} and asks an L{IMessageHandler} what to answer; the answer
is a L{SipAnswer}. Until the gateway core exists, L{RejectingMessageHandler}
answers 480 so that a sender knows nothing was accepted (and retries later or
elsewhere) instead of believing a message was delivered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer
from zope.interface import Interface, implementer


def _user_of(uri: str) -> str | None:
    from gwsms.sip.message import SipError, SipURI

    try:
        return SipURI.parse(uri).user or None
    except (SipError, ValueError):
        return None


@dataclass(frozen=True)
class IncomingMessage:
    """
    One MESSAGE request accepted by the SIP side.

    @ivar request: the parsed L{gwsms.sip.message.Request}, for anything not
        lifted out below (Date, Subject, custom headers).
    @ivar source: the L{gwsms.sip.transport.Peer} the request came from.
    @ivar sender_uri: the From URI as text (e.g. C{"sip:+4930123@example.org"}).
    @ivar recipient_uri: the Request-URI as text (where the sender wants the
        message to go; the To URI is in C{request.to}).
    @ivar content_type: the request's media type without parameters, lower
        case (C{"text/plain"} or C{"message/cpim"}).
    @ivar body: the text bytes: the request body for text/plain; for
        message/cpim the unwrapped text/plain content (the whole wrapper,
        with its From/To/DateTime headers, stays in C{request.body}).
    @ivar charset: the charset parameter of the text, lower case, C{"utf-8"}
        when absent.
    @ivar authenticated_user: the digest user name when the request was
        authenticated, C{None} for a trusted source or when auth is off.
    """

    request: Any
    source: Any
    sender_uri: str
    recipient_uri: str
    content_type: str
    body: bytes
    charset: str = "utf-8"
    authenticated_user: str | None = None

    @property
    def sender_user(self) -> str | None:
        """
        @return: the user part of C{sender_uri} (the number for a tel: URI),
            C{None} when it has none or does not parse.
        """
        return _user_of(self.sender_uri)

    @property
    def recipient_user(self) -> str | None:
        """
        @return: the user part of C{recipient_uri} (typically the number to
            send the SMS to), C{None} when it has none or does not parse.
        """
        return _user_of(self.recipient_uri)

    def text(self) -> str:
        """
        The body decoded with its charset.

        @return: the text; undecodable bytes are replaced (U+FFFD).
        @raise LookupError: for a charset Python does not know.
        """
        return self.body.decode(self.charset, errors="replace")


@dataclass(frozen=True)
class SipAnswer:
    """
    The gateway core's verdict on an L{IncomingMessage}.

    @ivar status: the SIP status code (200/202 accepted, 4xx/5xx refused).
    @ivar reason: the reason phrase; C{None} takes the standard one.
    @ivar headers: extra C{(name, value)} header pairs for the response
        (e.g. C{("Retry-After", "60")}).
    """

    status: int
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = field(default=())


class IMessageHandler(Interface):
    """
    The gateway core as seen from the SIP user agent.
    """

    def message_received(message):
        """
        A MESSAGE request arrived and passed the SIP checks.

        The SIP response is sent only when the result fires, so a handler
        can answer 202 after its durable write.

        @param message: the L{IncomingMessage}.
        @return: a L{Deferred} firing with (or a plain) L{SipAnswer}; a
            failure is answered with 500 and logged.
        """


@implementer(IMessageHandler)
class RejectingMessageHandler:
    """
    Refuses every message with 480 Temporarily Unavailable.

    Used while no gateway core is wired in: the SIP service then answers
    OPTIONS, REGISTER and authentication honestly, and tells senders that
    messages cannot be taken right now rather than losing them.
    """

    def message_received(self, message: IncomingMessage) -> defer.Deferred:
        """
        @param message: ignored.
        @return: a fired L{Deferred} with C{SipAnswer(480, ...)}.
        """
        return defer.succeed(
            SipAnswer(
                480,
                "Temporarily Unavailable",
                (("Retry-After", "300"),),
            )
        )
