# -*- test-case-name: tests.test_smpp_protocol -*-
"""
Errors of the SMPP session and ESME layers, and helpers naming commands
and statuses in messages.  Every request Deferred fails with an
L{SMPPError} subclass (or the codec's C{PduError} for a PDU that cannot be
encoded).
"""

from __future__ import annotations

from gwsms.smpp.constants import CommandId, CommandStatus


def command_name(command_id: int) -> str:
    """
    @return: the spec name of C{command_id}, or its hex value if unknown.
    """
    try:
        return CommandId(command_id).name
    except ValueError:
        return f"0x{command_id:08x}"


def status_name(status: int) -> str:
    """
    @return: e.g. C{"ESME_RTHROTTLED (0x58)"} for a command_status.
    """
    try:
        return f"{CommandStatus(status).name} (0x{status:x})"
    except ValueError:
        return f"0x{status:x}"


class SMPPError(Exception):
    """Base class of the errors a request Deferred can fail with."""


class SMPPTimeoutError(SMPPError):
    """
    No response arrived within the response timer.

    @ivar command: name of the request, e.g. C{"submit_sm"}.
    @ivar sequence_number: its sequence_number.
    @ivar timeout: the timer in seconds.
    """

    def __init__(self, command: str, sequence_number: int, timeout: float):
        super().__init__(
            f"no response to {command} seq={sequence_number} within {timeout:g}s"
        )
        self.command = command
        self.sequence_number = sequence_number
        self.timeout = timeout


class SMPPConnectionLost(SMPPError):
    """The connection closed (or was not open) before the response arrived."""


class SMPPGenericNack(SMPPError):
    """
    The peer answered a request with C{generic_nack}.

    @ivar status: the generic_nack's command_status.
    @ivar command: name of the request it refused.
    """

    def __init__(self, status: int, command: str):
        super().__init__(f"{command} refused with generic_nack {status_name(status)}")
        self.status = status
        self.command = command


class SMPPProtocolError(SMPPError):
    """
    The response to a request could not be decoded.

    @ivar status: the C{CommandStatus} describing the defect.
    """

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class BindError(SMPPError):
    """
    The SMSC refused the bind (or the outbind credentials were wrong).

    @ivar status: the command_status of the bind response.
    @ivar is_credentials: True for C{ESME_RINVPASWD}, C{ESME_RINVSYSID} and
        C{ESME_RBINDFAIL}: retrying soon will not help, back off longer.
    """

    CREDENTIAL_STATUSES = frozenset(
        (
            int(CommandStatus.ESME_RINVPASWD),
            int(CommandStatus.ESME_RINVSYSID),
            int(CommandStatus.ESME_RBINDFAIL),
        )
    )

    def __init__(self, status: int, link_name: str = ""):
        where = f"smsc {link_name}: " if link_name else ""
        super().__init__(f"{where}bind refused: {status_name(status)}")
        self.status = int(status)
        self.link_name = link_name

    @property
    def is_credentials(self) -> bool:
        return self.status in self.CREDENTIAL_STATUSES


class NotBoundError(SMPPError):
    """A submit was refused because the session cannot transmit now."""
