# -*- test-case-name: tests.test_cli_smsc -*-
"""
C{gwsms db ...}: the database schema.

  gwsms db upgrade    apply pending schema migrations; prints the version
  gwsms db version    print the schema version in force (changes nothing)
"""

from __future__ import annotations

from gwsms.cli.common import CliError, command, load_config, open_db, wait
from gwsms.store import migrate


def register(subparsers) -> None:
    """Add C{gwsms db ...} to the top-level parser."""
    parser = subparsers.add_parser("db", help="database schema")
    sub = parser.add_subparsers(dest="db_command", metavar="COMMAND")
    sub.required = True
    p = sub.add_parser("upgrade", help="apply pending schema migrations")
    p.set_defaults(func=cmd_upgrade)
    p = sub.add_parser("version", help="show the schema version")
    p.set_defaults(func=cmd_version)


@command
def cmd_upgrade(args) -> int:
    config = load_config(args)
    db = open_db(config, upgrade=False)
    try:
        before = wait(migrate.current_version(db))
        try:
            after = wait(migrate.upgrade(db))
        except Exception as e:
            raise CliError(str(e)) from None
    finally:
        db.close()
    if after == before:
        print(f"schema version {after} (up to date)")
    else:
        print(f"schema version {after} (upgraded from {before})")
    return 0


@command
def cmd_version(args) -> int:
    config = load_config(args)
    db = open_db(config, upgrade=False)
    try:
        version = wait(migrate.current_version(db))
    finally:
        db.close()
    latest = migrate.latest_version(db.engine.dialect)
    if version < latest:
        print(f"schema version {version} (this gwsms has {latest}: run gwsms db upgrade)")
    else:
        print(f"schema version {version}")
    return 0
