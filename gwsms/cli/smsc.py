# -*- test-case-name: tests.test_cli_smsc -*-
"""
C{gwsms smsc ...}: manage the SMSC connection rows and reload the service.

  gwsms smsc add NAME --ip H --port P --system-id U --password X [options]
  gwsms smsc set NAME [options] [--rename NEW]
  gwsms smsc list | show NAME | rm NAME | enable NAME | disable NAME | reload

Commands that change rows then ask a running service to reload
(C{smsc_reload} on the control socket) and say whether it did.
"""

from __future__ import annotations

import argparse

from gwsms import control
from gwsms.cli.common import (
    CliError,
    command,
    control_call,
    err,
    format_table,
    load_config,
    open_db,
    read_secret,
    usage_error,
    wait,
)
from gwsms.smpp.link import CODINGS, COLUMNS, DC0_CHARSETS, SessionType, SmscLink
from gwsms.store.smsc import DuplicateName, SmscStore, UnknownName

#: seconds to wait for the service to reload (sessions may unbind)
RELOAD_TIMEOUT = 30.0


_SESSION_ALIASES = {"trx": "1", "tx": "2", "rx": "3"}


def _session_type(text: str) -> SessionType:
    try:
        return SessionType.parse(_SESSION_ALIASES.get(text.strip().lower(), text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None


def _concat(text: str) -> str:
    value = text.strip().lower()
    if value == "default":
        return ""
    if value not in ("udh8", "udh16", "sar", "payload"):
        raise argparse.ArgumentTypeError(
            f"invalid concat {text!r}: expected udh8, udh16, sar, payload or default")
    return value


def _max_parts(text: str) -> int:
    value = _int(text)
    if not 0 <= value <= 255:
        raise argparse.ArgumentTypeError(
            f"max parts {value} out of range 0-255 (0 = the [gateway] max_parts)")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"invalid number {text!r}")
    return value


#: (option, field, argparse keywords) shared by add and set
_OPTIONS = (
    ("--ip", "ip", {"metavar": "HOST", "help": "SMSC host name or IP address"}),
    ("--port", "port", {"type": _int,
                        "help": "SMSC TCP port (1-65535; optional for outbind)"}),
    ("--system-id", "system_id", {"metavar": "USER", "help": "bind system_id (max 15)"}),
    ("--password", "password", {"metavar": "X", "help": "bind password (max 8); '-' reads stdin"}),
    ("--session-type", "session_type", {
        "type": _session_type, "metavar": "TYPE",
        "help": "transceiver (trx), transmitter (tx), receiver (rx), outbind or 1-4"}),
    ("--system-type", "system_type", {"metavar": "T", "help": "bind system_type (max 12)"}),
    ("--src-ton", "src_ton", {"type": _int, "metavar": "N", "help": "source TON (0-6)"}),
    ("--src-npi", "src_npi", {"type": _int, "metavar": "N", "help": "source NPI"}),
    ("--dst-ton", "dst_ton", {"type": _int, "metavar": "N", "help": "destination TON (0-6)"}),
    ("--dst-npi", "dst_npi", {"type": _int, "metavar": "N", "help": "destination NPI"}),
    ("--window", "window", {"type": _int, "metavar": "N", "help": "outstanding requests (1-10000)"}),
    ("--max-rate", "max_rate", {"type": _float, "metavar": "N", "help": "submits/s, 0 = unlimited"}),
    ("--tls", "tls", {"action": argparse.BooleanOptionalAction, "help": "connect with TLS"}),
    ("--tls-verify", "tls_verify", {
        "action": argparse.BooleanOptionalAction, "help": "verify the SMSC certificate"}),
    ("--enquire-link-interval", "enquire_link_interval", {"type": _float, "metavar": "S"}),
    ("--session-init-timeout", "session_init_timeout", {"type": _float, "metavar": "S"}),
    ("--response-timeout", "response_timeout", {"type": _float, "metavar": "S"}),
    ("--inactivity-timeout", "inactivity_timeout", {"type": _float, "metavar": "S",
                                                    "help": "0 = disabled"}),
    ("--default-data-coding", "default_data_coding", {"type": _int, "metavar": "N"}),
    ("--dc0-charset", "dc0_charset", {"choices": DC0_CHARSETS,
                                      "help": "what data_coding 0 means on this SMSC"}),
    ("--address-range", "address_range", {"metavar": "R"}),
    ("--interface-version", "interface_version", {"type": _int, "metavar": "N",
                                                  "help": "bind interface_version (default 0x34)"}),
    ("--coding", "coding", {
        "choices": CODINGS,
        "help": "MT text: auto = GSM when it fits else UCS-2 (default); latin1 = Latin-1 "
                "(data_coding 3) when it fits else UCS-2; ucs2 = always UCS-2"}),
    ("--concat", "concat", {
        "type": _concat, "metavar": "METHOD",
        "help": "long MT messages: udh8, udh16, sar, payload, or default "
                "(the [gateway] concat setting)"}),
    ("--max-parts", "max_parts", {
        "type": _max_parts, "metavar": "N",
        "help": "most parts of one MT message (1-255; 0 = the [gateway] max_parts)"}),
)


def _add_link_options(parser: argparse.ArgumentParser) -> None:
    for option, dest, kw in _OPTIONS:
        parser.add_argument(option, dest=dest, default=None, **kw)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--disabled", dest="enabled", action="store_const", const=False,
                       default=None, help="do not connect")
    group.add_argument("--enabled", dest="enabled", action="store_const", const=True,
                       help="connect (the default)")


def _given(args) -> dict:
    """The SmscLink fields given on the command line."""
    out = {}
    for _option, dest, _kw in _OPTIONS:
        value = getattr(args, dest)
        if value is not None:
            out[dest] = value
    if args.enabled is not None:
        out["enabled"] = args.enabled
    if "password" in out:
        out["password"] = read_secret(out["password"])
    return out


def register(subparsers) -> None:
    """Add C{gwsms smsc ...} to the top-level parser."""
    parser = subparsers.add_parser("smsc", help="SMSC connections (the smpp table)")
    sub = parser.add_subparsers(dest="smsc_command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("add", help="add an SMSC connection")
    p.add_argument("name")
    _add_link_options(p)
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("set", help="change an SMSC connection")
    p.add_argument("name")
    p.add_argument("--rename", metavar="NEW", help="new name")
    _add_link_options(p)
    p.set_defaults(func=cmd_set)

    p = sub.add_parser("list", help="list SMSC connections with their live state")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="show every column of one SMSC connection")
    p.add_argument("name")
    p.set_defaults(func=cmd_show)

    for name, func, text in (
        ("rm", cmd_rm, "delete an SMSC connection"),
        ("enable", cmd_enable, "enable an SMSC connection"),
        ("disable", cmd_disable, "disable an SMSC connection"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("name")
        p.set_defaults(func=func)

    p = sub.add_parser("reload", help="make the running service re-read the table")
    p.set_defaults(func=cmd_reload)


# -- helpers ---------------------------------------------------------------


def _format_diff(diff) -> list[str]:
    if not isinstance(diff, dict):
        return [str(diff)]
    lines = []
    for key in ("added", "removed", "changed", "unchanged"):
        names = diff.get(key) or []
        lines.append(f"{key}: {', '.join(map(str, names)) if names else '-'}")
    return lines


def _notify(config) -> int:
    """Ask a running service to reload; say what happened."""
    try:
        diff = control_call(config, "smsc_reload", timeout=RELOAD_TIMEOUT)
    except control.ControlUnavailable:
        print("service not running: the change applies when it starts")
        return 0
    except control.ControlError as e:
        err(f"error: saved, but the running service did not reload: {e}")
        return 1
    changes = {k: v for k, v in (diff or {}).items() if k != "unchanged" and v} \
        if isinstance(diff, dict) else diff
    summary = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in changes.items()) \
        if isinstance(changes, dict) else str(changes)
    print(f"service reloaded ({summary or 'no changes'})")
    return 0


def _with_store(config, fn):
    db = open_db(config)
    try:
        return fn(SmscStore(db))
    finally:
        db.close()


def _live_states(config) -> tuple[dict, str]:
    """({name: state dict}, note) from the running service."""
    try:
        states = control_call(config, "smsc_state")
    except control.ControlUnavailable:
        return {}, "(service not running)"
    except control.ControlError as e:
        return {}, f"(service state unavailable: {e})"
    out = {}
    for item in states or []:
        if isinstance(item, dict) and "name" in item:
            out[item["name"]] = item
    return out, ""


# -- commands --------------------------------------------------------------


@command
def cmd_add(args) -> int:
    fields = _given(args)
    if fields.get("session_type") is SessionType.OUTBIND:
        fields.setdefault("port", 0)  # the SMSC connects to us
    missing = [
        opt for opt, dest in (("--ip", "ip"), ("--port", "port"),
                              ("--system-id", "system_id"), ("--password", "password"))
        if dest not in fields
    ]
    if missing:
        raise usage_error(f"smsc add: missing required option(s): {', '.join(missing)}")
    try:
        link = SmscLink(name=args.name, **fields)
    except ValueError as e:
        raise usage_error(str(e)) from None
    config = load_config(args)

    def add(store):
        try:
            return wait(store.add(link))
        except DuplicateName as e:
            raise usage_error(str(e)) from None

    added = _with_store(config, add)
    print(f"added smsc {added.name!r} (id {added.id})")
    return _notify(config)


@command
def cmd_set(args) -> int:
    changes = _given(args)
    if args.rename is not None:
        changes["name"] = args.rename
    if not changes:
        raise usage_error("smsc set: nothing to change (give at least one option)")
    config = load_config(args)

    def update(store):
        try:
            return wait(store.update(args.name, **changes))
        except (UnknownName, DuplicateName, ValueError) as e:
            raise usage_error(str(e)) from None

    new = _with_store(config, update)
    print(f"updated smsc {new.name!r}")
    return _notify(config)


@command
def cmd_list(args) -> int:
    config = load_config(args)
    links, problems = _with_store(config, lambda store: wait(store.list_with_problems()))
    for problem in problems:
        err(f"warning: {problem}")
    states, note = _live_states(config)
    rows = []
    for link in links:
        state = states.get(link.name, {}).get("state", "-") if states else "-"
        host = f"[{link.ip}]" if ":" in link.ip else link.ip
        rows.append((
            link.name,
            link.session_type.name.lower(),
            f"{host}:{link.port}",
            link.system_id,
            "yes" if link.enabled else "no",
            state,
        ))
    if not rows:
        print("no SMSC connections (add one with: gwsms smsc add NAME ...)")
    else:
        print(format_table(("NAME", "TYPE", "HOST:PORT", "SYSTEM_ID", "ENABLED", "STATE"), rows))
    if note:
        print(note)
    return 0


@command
def cmd_show(args) -> int:
    config = load_config(args)

    def get(store):
        try:
            return wait(store.get(args.name))
        except ValueError as e:
            raise CliError(str(e)) from None

    link = _with_store(config, get)
    if link is None:
        raise usage_error(str(UnknownName(args.name)))
    width = max(len(c) for c in COLUMNS)
    for column in COLUMNS:
        value = getattr(link, column)
        if column == "password":
            value = "***" if value else ""
        elif column == "session_type":
            value = f"{int(value)} ({value.name.lower()})"
        elif column == "interface_version":
            value = f"0x{value:02x}"
        elif column == "concat" and not value:
            value = "default ([gateway] concat)"
        elif column == "max_parts" and not value:
            value = "0 ([gateway] max_parts)"
        print(f"{column.ljust(width)}  {value}".rstrip())
    states, note = _live_states(config)
    state = states.get(link.name, {}).get("state", "-") if states else "-"
    print(f"{'state'.ljust(width)}  {state}{' ' + note if note else ''}")
    return 0


@command
def cmd_rm(args) -> int:
    config = load_config(args)
    if not _with_store(config, lambda store: wait(store.remove(args.name))):
        raise usage_error(str(UnknownName(args.name)))
    print(f"removed smsc {args.name!r}")
    return _notify(config)


def _set_enabled(args, enabled: bool) -> int:
    config = load_config(args)

    def set_enabled(store):
        try:
            return wait(store.set_enabled(args.name, enabled))
        except UnknownName as e:
            raise usage_error(str(e)) from None

    _with_store(config, set_enabled)
    print(f"{'enabled' if enabled else 'disabled'} smsc {args.name!r}")
    return _notify(config)


@command
def cmd_enable(args) -> int:
    return _set_enabled(args, True)


@command
def cmd_disable(args) -> int:
    return _set_enabled(args, False)


@command
def cmd_reload(args) -> int:
    config = load_config(args)
    try:
        diff = control_call(config, "smsc_reload", timeout=RELOAD_TIMEOUT)
    except control.ControlUnavailable as e:
        raise CliError(f"{e}; start it, or the change applies at its next start") from None
    except control.ControlError as e:
        raise CliError(f"reload failed: {e}") from None
    for line in _format_diff(diff):
        print(line)
    return 0
