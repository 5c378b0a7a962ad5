# -*- test-case-name: tests.test_core_gateway_cli -*-
"""
C{gwsms message ...}: look into the message store.

  gwsms message list [--state S] [--direction mt|mo] [--limit N]
  gwsms message show ID
  gwsms message purge [--older-than SECONDS]

C{list} and C{show} only read; C{purge} deletes messages in a final state
(delivered, undeliverable, failed, expired, rejected) received more than
C{--older-than} seconds ago (default: C{[gateway] retention}) with their
parts and history, as the running gateway does every hour.  All work
whether or not the service runs (they use the database).
"""

from __future__ import annotations

import time

from gwsms.cli.common import CliError, command, format_table, load_config, open_db, usage_error, wait
from gwsms.store.messages import MessageStore
from gwsms.store.purge import purge

STATES = ("queued", "submitted", "delivered", "undeliverable", "failed", "expired", "rejected")


def _positive(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not 1 <= value <= 100000:
        raise argparse.ArgumentTypeError(f"must be between 1 and 100000, not {value}")
    return value


def _seconds(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"seconds must be >= 0, not {text!r}")
    return value


def register(subparsers) -> None:
    """Add C{gwsms message ...} to the top-level parser."""
    parser = subparsers.add_parser("message", help="messages in the store (state, parts, history)")
    sub = parser.add_subparsers(dest="message_command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("list", help="list messages, newest first")
    p.add_argument("--state", choices=STATES, help="only messages in this state")
    p.add_argument("--direction", choices=("mt", "mo"),
                   help="mt (SIP -> SMPP) or mo (SMPP -> SIP)")
    p.add_argument("--limit", type=_positive, default=50, help="at most N rows (default 50)")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="every field of one message, its parts and history")
    p.add_argument("id", help="message id")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("purge", help="delete finished messages older than the retention")
    p.add_argument("--older-than", type=_seconds, metavar="SECONDS", default=None,
                   help="received more than SECONDS ago (default: [gateway] retention)")
    p.set_defaults(func=cmd_purge)


def _when(seconds: float) -> str:
    if not seconds:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def _short(text: str, size: int = 40) -> str:
    text = text.replace("\r", " ").replace("\n", " ")
    return text if len(text) <= size else text[: size - 3] + "..."


def _with_db(config, fn):
    """Run C{fn(db)} on the configured database; a failure is one CLI line."""
    db = open_db(config)
    try:
        return fn(db)
    except CliError:
        raise
    except Exception as e:
        raise CliError(f"message store: {e}") from None
    finally:
        db.close()


def _query(args, fn):
    return _with_db(load_config(args), lambda db: fn(MessageStore(db, None)))


@command
def cmd_list(args) -> int:
    rows = _query(args, lambda store: wait(store.list(args.state, args.direction, args.limit)))
    if not rows:
        print("no messages")
        return 0
    print(format_table(
        ("ID", "DIR", "STATE", "CREATED", "FROM", "TO", "SMSC", "PARTS", "TEXT"),
        [(r["id"], r["direction"], r["state"], _when(r["created_at"]), r["source_addr"],
          r["dest_addr"], r["smsc"] or "-", f"{r['parts_done']}/{r['parts_total']}",
          _short(r["body"])) for r in rows],
    ))
    return 0


@command
def cmd_show(args) -> int:
    try:
        message_id = int(args.id)
    except ValueError:
        raise usage_error(f"message show: {args.id!r} is not a message id") from None
    row = _query(args, lambda store: wait(store.get(message_id)))
    if row is None:
        raise CliError(f"no message with id {message_id}")
    parts = row.pop("parts")
    events = row.pop("events")
    width = max(len(k) for k in row)
    for key, value in row.items():
        if key in ("created_at", "updated_at", "next_attempt_at", "expires_at"):
            value = f"{_when(value)} ({value})" if value else "-"
        print(f"{key.ljust(width)}  {value}")
    print()
    print(format_table(("PART", "STATE", "SMSC MESSAGE ID", "UPDATED", "ERROR"),
                       [(p["seq"], p["state"], p["smsc_message_id"] or "-",
                         _when(p["updated_at"]), p["error"] or "-") for p in parts]))
    print()
    print(format_table(("AT", "EVENT", "DETAIL"),
                       [(_when(e["at"]), e["event"], e["detail"]) for e in events]))
    return 0


@command
def cmd_purge(args) -> int:
    config = load_config(args)
    older = args.older_than
    if older is None:
        older = config.gateway.retention
        if older <= 0:
            raise usage_error("message purge: [gateway] retention is 0 (keep forever): "
                              "give --older-than SECONDS")
    before = time.time() - older
    count = _with_db(config, lambda db: wait(purge(db, before)))
    print(f"purged {count} message{'' if count == 1 else 's'} finished and older than "
          f"{older:g} s")
    return 0
