# -*- test-case-name: tests.test_smpp_link -*-
"""
One SMSC connection as configured by the operator: a row of the C{smpp} table.

The first twelve fields are the OpenSIPS proto_smpp columns, so rows can be
copied over; the rest are gwsms additions with defaults an operator can leave
alone. This module is pure: no I/O, no reactor.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass


class SessionType(enum.IntEnum):
    """The C{session_type} column (OpenSIPS numbering)."""

    TRANSCEIVER = 1
    TRANSMITTER = 2
    RECEIVER = 3
    OUTBIND = 4

    @classmethod
    def parse(cls, value: "str | int") -> "SessionType":
        """
        Accept C{1}-C{4}, C{"1"}-C{"4"} or a name (C{"transceiver"}, ...).

        @raise ValueError: naming the bad value and the accepted ones.
        """
        if isinstance(value, str):
            text = value.strip().lower()
            if text.isdigit():
                value = int(text)
            else:
                for member in cls:
                    if member.name.lower() == text:
                        return member
                raise ValueError(
                    f"invalid session type {value!r}: expected transceiver, "
                    "transmitter, receiver, outbind or 1-4"
                )
        try:
            return cls(int(value))
        except ValueError:
            raise ValueError(
                f"invalid session type {value!r}: expected transceiver, "
                "transmitter, receiver, outbind or 1-4"
            ) from None

    @property
    def can_transmit(self) -> bool:
        return self in (SessionType.TRANSCEIVER, SessionType.TRANSMITTER)

    @property
    def can_receive(self) -> bool:
        return self is not SessionType.TRANSMITTER


#: TON values (SMPP 3.4 5.2.5)
TON_VALUES = {0, 1, 2, 3, 4, 5, 6}
#: NPI values (SMPP 3.4 5.2.6)
NPI_VALUES = {0, 1, 3, 4, 6, 8, 9, 10, 13, 18}
#: What C{data_coding} 0 means on a given SMSC.
DC0_CHARSETS = ("gsm", "ascii", "latin1")
#: The C{coding} column: how MT text is encoded on this connection.
#: C{auto}: GSM 03.38 when every character fits, else UCS-2; C{latin1}:
#: Latin-1 (data_coding 3) when it fits, else UCS-2; C{ucs2}: always UCS-2.
CODINGS = ("auto", "latin1", "ucs2")
#: The C{concat} column: how long MT messages are split on this connection
#: (C{""}: the C{[gateway] concat} setting).
CONCATS = ("", "udh8", "udh16", "sar", "payload")
#: Fields that are message options, read by the gateway core per message,
#: not session settings: changing them never re-binds (see
#: L{SmscLink.connection_key}).
MESSAGE_OPTIONS = ("default_data_coding", "dc0_charset", "coding", "concat", "max_parts")


@dataclass(frozen=True)
class SmscLink:
    """
    Configuration of one SMSC connection.

    Times are in seconds.  C{password} is a secret: C{repr} hides it and no
    code logs it.
    """

    name: str
    ip: str  # host name or IP address
    port: int
    system_id: str
    password: str = dataclasses.field(default="", repr=False)
    system_type: str = ""
    src_ton: int = 0
    src_npi: int = 0
    dst_ton: int = 0
    dst_npi: int = 0
    session_type: SessionType = SessionType.TRANSCEIVER
    # gwsms columns
    id: int | None = None
    enabled: bool = True
    tls: bool = False
    tls_verify: bool = True
    window: int = 10
    max_rate: float = 0.0  # submits per second; 0 = unlimited
    enquire_link_interval: float = 30.0
    session_init_timeout: float = 10.0
    response_timeout: float = 60.0
    inactivity_timeout: float = 0.0  # 0 = disabled
    default_data_coding: int = 0
    dc0_charset: str = "gsm"
    address_range: str = ""
    interface_version: int = 0x34
    # message options (schema 4): no re-bind when changed
    coding: str = "auto"
    concat: str = ""  # "" = [gateway] concat
    max_parts: int = 0  # 0 = [gateway] max_parts

    def __post_init__(self) -> None:
        object.__setattr__(self, "session_type", SessionType.parse(self.session_type))
        problems = self.problems()
        if problems:
            raise ValueError(f"smsc {self.name!r}: " + "; ".join(problems))

    def problems(self) -> list[str]:
        """Return a list of human-readable problems with the values."""
        out = []
        if not self.name or len(self.name) > 64:
            out.append("name must be 1-64 characters")
        if not self.ip:
            out.append("ip must not be empty")
        if not (0 < self.port < 65536) and not (
            self.session_type is SessionType.OUTBIND and self.port == 0
        ):
            out.append(f"port {self.port} out of range 1-65535")
        if len(self.system_id) > 15:
            out.append("system_id longer than 15 characters")
        if len(self.password) > 8:
            out.append("password longer than 8 characters")
        if len(self.system_type) > 12:
            out.append("system_type longer than 12 characters")
        for key in ("src_ton", "dst_ton"):
            if getattr(self, key) not in TON_VALUES:
                out.append(f"{key} {getattr(self, key)} is not a TON value (0-6)")
        for key in ("src_npi", "dst_npi"):
            if getattr(self, key) not in NPI_VALUES:
                out.append(f"{key} {getattr(self, key)} is not an NPI value")
        if not 1 <= self.window <= 10000:
            out.append(f"window {self.window} out of range 1-10000")
        if self.max_rate < 0:
            out.append("max_rate must be >= 0")
        for key in (
            "enquire_link_interval",
            "session_init_timeout",
            "response_timeout",
            "inactivity_timeout",
        ):
            if getattr(self, key) < 0:
                out.append(f"{key} must be >= 0")
        if self.response_timeout == 0:
            out.append("response_timeout must be > 0")
        if not 0 <= self.default_data_coding <= 255:
            out.append("default_data_coding out of range 0-255")
        if self.dc0_charset not in DC0_CHARSETS:
            out.append(f"dc0_charset must be one of {', '.join(DC0_CHARSETS)}")
        if len(self.address_range) > 40:
            out.append("address_range longer than 40 characters")
        if not 0 <= self.interface_version <= 255:
            out.append("interface_version out of range 0-255")
        if self.coding not in CODINGS:
            out.append(f"coding {self.coding!r} must be one of {', '.join(CODINGS)}")
        if self.concat not in CONCATS:
            out.append(f"concat {self.concat!r} must be one of udh8, udh16, sar, payload"
                       " or empty (the [gateway] concat setting)")
        if isinstance(self.max_parts, bool) or not isinstance(self.max_parts, int) \
                or not 0 <= self.max_parts <= 255:
            out.append(f"max_parts {self.max_parts!r} out of range 0-255"
                       " (0 = the [gateway] max_parts setting)")
        return out

    def replace(self, **changes) -> "SmscLink":
        return dataclasses.replace(self, **changes)

    def connection_key(self) -> tuple:
        """
        Everything that, when changed, requires the session to re-bind.

        All fields but C{id}, C{enabled} and the message options
        (L{MESSAGE_OPTIONS}: C{default_data_coding}, C{dc0_charset},
        C{coding}, C{concat}, C{max_parts}, read per message from the
        gateway's link view); reload compares these.
        """
        return tuple(
            getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in _NOT_CONNECTION
        )

    def concat_method(self, default: str) -> str:
        """
        @param default: the C{[gateway] concat} setting.
        @return: the concatenation method for long MT messages on this
            connection.
        """
        return self.concat or default

    def part_limit(self, default: int) -> int:
        """
        @param default: the C{[gateway] max_parts} setting.
        @return: the most parts an MT message may take on this connection.
        """
        return self.max_parts or default


_NOT_CONNECTION = frozenset(("id", "enabled") + MESSAGE_OPTIONS)


COLUMNS = tuple(f.name for f in dataclasses.fields(SmscLink))
