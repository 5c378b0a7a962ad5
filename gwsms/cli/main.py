# -*- test-case-name: tests.test_cli_main -*-
"""
The C{gwsms} administration command.

C{gwsms [--config FILE] AREA COMMAND ...}; each area (C{smsc}, C{db},
C{sip-user}, C{sim}, ...) lives in its own module exposing
C{register(subparsers)}.  Every failure is one line on stderr: exit status 2
for bad arguments or configuration, 1 for a runtime failure.
"""

from __future__ import annotations

import argparse
import typing
import importlib
import sys

from gwsms import __version__

#: Modules under gwsms.cli that contribute sub-commands, in help order.
AREAS = ("smsc", "route", "message", "sip_user", "db", "sim")

DEFAULT_CONFIG = "etc/gwsms.toml"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: 'gwsms: error: ...'."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gwsms", description="gwsms SIP <-> SMPP gateway administration")
    parser.add_argument(
        "--config", "-c", default=DEFAULT_CONFIG,
        help=f"configuration file (default: {DEFAULT_CONFIG})",
    )
    parser.add_argument("--version", action="version", version=f"gwsms {__version__}")
    subparsers = parser.add_subparsers(dest="area", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for area in AREAS:
        try:
            module = importlib.import_module(f"gwsms.cli.{area}")
        except ModuleNotFoundError as e:
            if e.name != f"gwsms.cli.{area}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.error(f"{args.area}: a sub-command is required")
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # last resort: never a traceback for the user
        from gwsms.config import ConfigError

        if isinstance(e, ConfigError):
            print(f"gwsms: {e}", file=sys.stderr)
            return 2
        print(f"gwsms: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
