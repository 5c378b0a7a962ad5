# -*- test-case-name: tests.test_config -*-
"""
The gwsms configuration file: TOML, read once into frozen typed objects.

Every default lives here.  A missing file, a TOML syntax error, an unknown
section or key, or a value of the wrong type or range raises L{ConfigError}
with a one-line message naming the file and the key, so that C{twistd} and
the C{gwsms} command refuse to start with that line and no traceback.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
import typing
from dataclasses import dataclass, field


class ConfigError(Exception):
    """A configuration problem; C{str()} is the one-line message for the user."""


@dataclass(frozen=True)
class DatabaseConfig:
    #: C{sqlite:PATH} (relative to the working directory), C{sqlite::memory:}
    #: or C{mysql://user:password@host:port/database}.
    url: str = "sqlite:var/gwsms.sqlite3"

    def __repr__(self) -> str:
        # The URL may carry the MySQL password: never show it.
        from gwsms.store.engines import mask_url

        return f"DatabaseConfig(url={mask_url(self.url)!r})"


@dataclass(frozen=True)
class SmppConfig:
    outbind_listen: tuple[str, ...] = ()
    max_command_length: int = 65536
    reconnect_initial: float = 1.0
    reconnect_max: float = 60.0
    reconnect_jitter: float = 0.2
    auth_failure_delay: float = 60.0
    shutdown_timeout: float = 5.0
    tls_ca: str = ""


@dataclass(frozen=True)
class SipConfig:
    listen: tuple[str, ...] = ("udp:127.0.0.1:5060", "tcp:127.0.0.1:5060")
    domain: str = "localhost"
    outbound_uri: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    registrar: bool = False
    auth: bool = False
    realm: str = ""
    trusted: tuple[str, ...] = ()
    outbound_username: str = ""
    outbound_password: str = dataclasses.field(default="", repr=False)
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    max_message_size: int = 65535
    udp_receive_buffer: int = 4194304
    user_agent: str = "gwsms"
    digest_algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    nonce_ttl: float = 300.0
    min_expires: int = 60
    default_expires: int = 3600
    max_expires: int = 86400


@dataclass(frozen=True)
class ControlConfig:
    socket: str = "var/gwsms.sock"


@dataclass(frozen=True)
class GatewayConfig:
    """The gateway core (see etc/gwsms.toml for every key)."""

    sip_reply: str = "submitted"
    queue_when_down: bool = True
    down_wait: float = 5.0
    retry_after: int = 60
    max_parts: int = 10
    concat: str = "udh8"
    mt_ttl: float = 86400.0
    mo_ttl: float = 86400.0
    retry_initial: float = 1.0
    retry_max: float = 300.0
    reassembly_timeout: float = 300.0
    reassembly_partial: str = "deliver"
    dedup_window: float = 600.0
    receipts: str = "none"
    registered_delivery: int = 0
    binary: str = "hex"
    commit_interval: float = 0.0
    batch_size: int = 500
    queue_interval: float = 1.0
    max_pending: int = 20000
    max_lag: float = 0.0  # seconds of event-loop lag before shedding; 0 = off
    fast_path: bool = True  # the hot-path lanes (gwsms.core.fastmt) for the common case
    max_backlog: int = 1048576  # bytes waiting in the SIP UDP socket before shedding; 0 = off
    max_delay: float = 0.3  # seconds the oldest MESSAGE waits for its answer before shedding
    workers: int = 1
    reactor_cpus: tuple[int, ...] = ()  # CPUs of the event loops (gwsms.affinity); () = the kernel's choice
    retention: float = 2592000.0  # 30 days; 0 = keep forever


GATEWAY_CHOICES = {
    "sip_reply": ("submitted", "accepted"),
    "concat": ("udh8", "udh16", "sar", "payload"),
    "reassembly_partial": ("deliver", "drop"),
    "receipts": ("none", "text"),
    "binary": ("hex", "octet-stream"),
}


@dataclass(frozen=True)
class Config:
    path: str = ""
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    smpp: SmppConfig = field(default_factory=SmppConfig)
    sip: SipConfig = field(default_factory=SipConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    gateway: GatewayConfig = field(default_factory=GatewayConfig)


_SECTIONS = {
    "database": DatabaseConfig,
    "smpp": SmppConfig,
    "sip": SipConfig,
    "control": ControlConfig,
    "gateway": GatewayConfig,
}

_LISTEN_SCHEMES = ("udp", "tcp", "tls")


def _convert(path: str, key: str, kind: typing.Any, value: typing.Any) -> typing.Any:
    """Check C{value} against the field type C{kind}; return the typed value."""
    where = f"{path}: {key}"
    if kind in (float, "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if kind in (int, "int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if kind in (bool, "bool"):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if kind in (str, "str"):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if kind in ("tuple[str, ...]",):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
        return tuple(value)
    if kind in ("tuple[int, ...]",):
        if not isinstance(value, list) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"{where}: expected a list of integers, got {value!r}")
        return tuple(value)
    raise AssertionError(f"unhandled config type {kind!r}")  # pragma: no cover


def _check(path: str, config: Config) -> None:
    """Range and consistency checks that need more than one value's type."""

    def bad(key: str, message: str) -> ConfigError:
        return ConfigError(f"{path}: {key}: {message}")

    db = config.database.url
    if not (db.startswith("sqlite:") or db.startswith("mysql://")):
        raise bad(
            "database.url",
            f"unsupported URL {db.split('://')[0]!r}: use sqlite:PATH or "
            "mysql://user:password@host:port/database",
        )
    smpp = config.smpp
    if not 16 <= smpp.max_command_length <= 16 * 1024 * 1024:
        raise bad("smpp.max_command_length", "must be between 16 and 16777216")
    for key in ("reconnect_initial", "reconnect_max", "auth_failure_delay", "shutdown_timeout"):
        if getattr(smpp, key) <= 0:
            raise bad(f"smpp.{key}", "must be > 0")
    if smpp.reconnect_max < smpp.reconnect_initial:
        raise bad("smpp.reconnect_max", "must be >= smpp.reconnect_initial")
    if not 0 <= smpp.reconnect_jitter < 1:
        raise bad("smpp.reconnect_jitter", "must be in [0, 1)")
    if smpp.tls_ca and not os.path.isfile(smpp.tls_ca):
        raise bad("smpp.tls_ca", f"no such file {smpp.tls_ca!r}")
    for spec in smpp.outbind_listen:
        if ":" not in spec:
            raise bad("smpp.outbind_listen", f"{spec!r} is not an endpoint like tcp:2776")

    sip = config.sip
    for spec in sip.listen:
        scheme = spec.split(":", 1)[0]
        if scheme not in _LISTEN_SCHEMES or spec.count(":") < 2:
            raise bad(
                "sip.listen",
                f"{spec!r} is not TRANSPORT:HOST:PORT with TRANSPORT udp, tcp or tls",
            )
        port = spec.rsplit(":", 1)[1]
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            raise bad("sip.listen", f"{spec!r} has an invalid port")
        if scheme == "tls":
            if not sip.tls_cert or not sip.tls_key:
                raise bad("sip.tls_cert", f"{spec!r} needs sip.tls_cert and sip.tls_key")
            for key in ("tls_cert", "tls_key"):
                if not os.path.isfile(getattr(sip, key)):
                    raise bad(f"sip.{key}", f"no such file {getattr(sip, key)!r}")
    if not sip.domain:
        raise bad("sip.domain", "must not be empty")
    if sip.outbound_uri and not sip.outbound_uri.startswith(("sip:", "sips:")):
        raise bad("sip.outbound_uri", f"{sip.outbound_uri!r} is not a sip: or sips: URI")
    for cidr in sip.trusted:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise bad("sip.trusted", f"{cidr!r} is not an address or CIDR") from None
    if not sip.digest_algorithms or any(
        a not in ("SHA-256", "MD5") for a in sip.digest_algorithms
    ):
        raise bad("sip.digest_algorithms", 'must list "SHA-256" and/or "MD5"')
    for key in ("t1", "t2", "t4", "nonce_ttl"):
        if getattr(sip, key) <= 0:
            raise bad(f"sip.{key}", "must be > 0")
    if sip.t2 < sip.t1:
        raise bad("sip.t2", "must be >= sip.t1")
    if not 1024 <= sip.max_message_size <= 1024 * 1024:
        raise bad("sip.max_message_size", "must be between 1024 and 1048576")
    if not 0 <= sip.udp_receive_buffer <= 256 * 1024 * 1024:
        raise bad("sip.udp_receive_buffer",
                  "must be between 0 (the kernel's default) and 268435456 bytes")
    if not 0 < sip.min_expires <= sip.default_expires <= sip.max_expires:
        raise bad("sip.default_expires", "need 0 < min_expires <= default_expires <= max_expires")
    if not config.control.socket:
        raise bad("control.socket", "must not be empty")
    gateway = config.gateway
    for key, allowed in GATEWAY_CHOICES.items():
        if getattr(gateway, key) not in allowed:
            raise bad(f"gateway.{key}", f"must be one of {', '.join(map(repr, allowed))}")
    for key in ("down_wait", "commit_interval"):
        if getattr(gateway, key) < 0:
            raise bad(f"gateway.{key}", "must be >= 0")
    for key in ("mt_ttl", "mo_ttl", "retry_initial", "retry_max", "reassembly_timeout",
                "queue_interval"):
        if getattr(gateway, key) <= 0:
            raise bad(f"gateway.{key}", "must be > 0")
    if gateway.retry_max < gateway.retry_initial:
        raise bad("gateway.retry_max", "must be >= gateway.retry_initial")
    if gateway.retention < 0:
        raise bad("gateway.retention", "must be >= 0 (0 keeps messages forever)")
    if gateway.dedup_window < 0:
        raise bad("gateway.dedup_window", "must be >= 0")
    if not 1 <= gateway.max_parts <= 255:
        raise bad("gateway.max_parts", "must be between 1 and 255")
    if not 0 <= gateway.registered_delivery <= 0x1F:
        raise bad("gateway.registered_delivery", "must be an SMPP registered_delivery (0-31)")
    if not 1 <= gateway.batch_size <= 100000:
        raise bad("gateway.batch_size", "must be between 1 and 100000")
    if gateway.max_pending < 1:
        raise bad("gateway.max_pending", "must be >= 1")
    if not 0 <= gateway.max_delay <= 60:
        raise bad("gateway.max_delay", "must be between 0 (off) and 60 seconds")
    if not 0 <= gateway.max_backlog <= 256 * 1024 * 1024:
        raise bad("gateway.max_backlog", "must be between 0 (off) and 268435456 bytes")
    if not 0 <= gateway.max_lag <= 60:
        raise bad("gateway.max_lag", "must be between 0 and 60 seconds (0 disables lag shedding)")
    if not 0 <= gateway.retry_after <= 86400:
        raise bad("gateway.retry_after", "must be between 0 and 86400")
    if not 1 <= gateway.workers <= 64:
        raise bad("gateway.workers", "must be between 1 and 64")
    if gateway.reactor_cpus:
        from gwsms import affinity
        problem = affinity.check(gateway.reactor_cpus)
        if problem is not None:
            raise bad("gateway.reactor_cpus", problem)
    if gateway.workers > 1:
        if db == "sqlite::memory:":
            raise bad("database.url", "gateway.workers > 1 needs a database file or MySQL"
                      " (each process would have its own sqlite::memory:)")
        for spec in sip.listen:
            if int(spec.rsplit(":", 1)[1]) == 0:
                raise bad("sip.listen", f"{spec!r}: gateway.workers > 1 needs a fixed port"
                          " (every worker binds the same one), not port 0")


def parse(data: dict, path: str = "<config>") -> Config:
    """
    Build a L{Config} from an already-parsed TOML document.

    @param data: the TOML document as a dict.
    @param path: the file name used in error messages.
    @raise ConfigError: on any unknown or bad key.
    """
    sections = {}
    for name, value in data.items():
        if name not in _SECTIONS:
            raise ConfigError(
                f"{path}: unknown section [{name}] (known: {', '.join(_SECTIONS)})"
            )
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: {name}: expected a [{name}] table")
        cls = _SECTIONS[name]
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, item in value.items():
            if key not in fields:
                raise ConfigError(
                    f"{path}: unknown key {name}.{key} (known: {', '.join(fields)})"
                )
            kwargs[key] = _convert(path, f"{name}.{key}", fields[key].type, item)
        sections[name] = cls(**kwargs)
    config = Config(path=path, **sections)
    _check(path, config)
    return config


def load(path: str) -> Config:
    """
    Read and check the configuration file at C{path}.

    @raise ConfigError: the file is missing, unreadable, not TOML, or has a
        bad key; the message names the file and the key.
    """
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return parse(data, path)
