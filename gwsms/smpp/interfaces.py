# -*- test-case-name: tests.test_smpp_esme -*-
"""
What the SMPP ESME hands incoming messages to.

The ESME protocol knows nothing about storage or routing: every
C{deliver_sm} / C{data_sm} it receives goes to an L{IDeliverySink}, and the
C{_resp} is only sent once the sink says what to answer.  That lets the
gateway acknowledge a message only after it has written it durably.
"""

from __future__ import annotations

from twisted.logger import Logger
from zope.interface import Interface, implementer

from gwsms.smpp.constants import CommandStatus


class IDeliverySink(Interface):
    """
    Receiver of mobile-originated messages and delivery receipts.
    """

    def deliver_received(link_name, pdu):
        """
        A C{deliver_sm} or C{data_sm} arrived on a bound session.

        @param link_name: C{SmscLink.name} of the session it arrived on.
        @type link_name: L{str}
        @param pdu: the decoded request (C{gwsms.smpp.pdu.Pdu}).
        @return: the C{command_status} to answer with (an L{int}, usually
            C{ESME_ROK}), or a Deferred firing with it.  The response is
            written only when the Deferred fires; an exception or a failed
            Deferred is answered with C{ESME_RX_T_APPN} (temporary error,
            the SMSC retries later).

        A sink may also have C{deliver_then(link_name, pdu, answer) ->
        bool} (the hot path, L{gwsms.core.fastmo}): the session tries it
        first; C{True} means the sink took the PDU and calls
        C{answer(command_status)} exactly once, later; C{False} (or an
        exception) means C{deliver_received} is called as usual.
        """


@implementer(IDeliverySink)
class RejectingDeliverySink:
    """
    A sink that accepts nothing: every message is answered
    C{ESME_RX_T_APPN}, so the SMSC keeps it and retries later.

    Used until a real consumer is wired in, so that nothing is
    acknowledged and then lost.
    """

    _log = Logger()

    def deliver_received(self, link_name: str, pdu) -> int:
        """
        Refuse the message temporarily.

        @param link_name: the link it arrived on (logged).
        @param pdu: the request (only its command and sequence are logged).
        @return: C{ESME_RX_T_APPN}.
        """
        self._log.warn(
            "smsc {link}: no delivery consumer configured; answering "
            "{command} seq={seq} with ESME_RX_T_APPN",
            link=link_name,
            command=pdu.command,
            seq=pdu.sequence_number,
        )
        return int(CommandStatus.ESME_RX_T_APPN)
