# -*- test-case-name: tests.test_cli_sip_user -*-
"""
C{gwsms sip-user ...}: SIP digest credentials.

  gwsms sip-user add USER --password X [--realm R]
  gwsms sip-user list
  gwsms sip-user rm USER [--realm R]

The realm defaults to C{sip.realm}, else C{sip.domain}, of the
configuration.  Only HA1 hashes are stored; nothing secret is printed.
"""

from __future__ import annotations

from gwsms.cli.common import (
    command,
    format_table,
    load_config,
    open_db,
    read_secret,
    usage_error,
    wait,
)
from gwsms.store.sip import DuplicateUser, SipUserStore


def register(subparsers) -> None:
    """Add C{gwsms sip-user ...} to the top-level parser."""
    parser = subparsers.add_parser("sip-user", help="SIP digest users")
    sub = parser.add_subparsers(dest="sip_user_command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("add", help="add a SIP user")
    p.add_argument("username")
    p.add_argument("--password", required=True, metavar="X", help="'-' reads it from stdin")
    p.add_argument("--realm", metavar="R", help="default: sip.realm or sip.domain")
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("list", help="list SIP users")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("rm", help="delete a SIP user")
    p.add_argument("username")
    p.add_argument("--realm", metavar="R", help="default: sip.realm or sip.domain")
    p.set_defaults(func=cmd_rm)


def _realm(args, config) -> str:
    return args.realm or config.sip.realm or config.sip.domain


def _with_store(config, fn):
    db = open_db(config)
    try:
        return fn(SipUserStore(db))
    finally:
        db.close()


@command
def cmd_add(args) -> int:
    config = load_config(args)
    password = read_secret(args.password)
    realm = _realm(args, config)

    def add(store):
        try:
            return wait(store.add(args.username, password, realm))
        except (DuplicateUser, ValueError) as e:
            raise usage_error(str(e)) from None

    user = _with_store(config, add)
    print(f"added sip user {user.username!r} in realm {user.realm!r}")
    return 0


@command
def cmd_list(args) -> int:
    config = load_config(args)
    users = _with_store(config, lambda store: wait(store.list()))
    if not users:
        print("no SIP users (add one with: gwsms sip-user add USER --password X)")
        return 0
    print(format_table(("USER", "REALM"), [(u.username, u.realm) for u in users]))
    return 0


@command
def cmd_rm(args) -> int:
    config = load_config(args)
    realm = _realm(args, config)
    if not _with_store(config, lambda store: wait(store.remove(args.username, realm))):
        raise usage_error(f"no sip user {args.username!r} in realm {realm!r}")
    print(f"removed sip user {args.username!r} from realm {realm!r}")
    return 0
