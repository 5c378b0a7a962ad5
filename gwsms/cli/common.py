# -*- test-case-name: tests.test_cli_smsc -*-
"""
Helpers shared by the C{gwsms} sub-commands: configuration, a blocking
database handle (upgraded before use), the control socket, one-line errors
and plain-text tables.

The command line needs no reactor: it uses
L{gwsms.store.database.open_database_sync}, whose Deferreds have already
fired when the store methods return; L{wait} unwraps them.
"""

from __future__ import annotations

import functools
import sys
from typing import Callable, Iterable

from twisted.python.failure import Failure

from gwsms import control
from gwsms.store import migrate
from gwsms.store.database import open_database_sync
from gwsms.store.engines import mask_url

#: exit status for bad arguments (argparse uses it too)
USAGE = 2
#: exit status for a runtime failure
FAILURE = 1


class CliError(Exception):
    """A failure to report as one line on stderr, with an exit status."""

    def __init__(self, message: str, code: int = FAILURE):
        super().__init__(message)
        self.code = code


def usage_error(message: str) -> CliError:
    """A L{CliError} for bad arguments (exit status 2)."""
    return CliError(message, USAGE)


def command(fn: Callable) -> Callable:
    """
    Decorate a handler C{fn(args) -> int | None}: a L{CliError} or a
    configuration error becomes one line on stderr and its exit status.
    """

    @functools.wraps(fn)
    def handler(args) -> int:
        from gwsms.config import ConfigError

        try:
            return int(fn(args) or 0)
        except CliError as e:
            err(f"error: {e}")
            return e.code
        except ConfigError as e:
            err(str(e))
            return USAGE

    return handler


def err(message: str) -> None:
    """Print C{gwsms: message} on stderr."""
    print(f"gwsms: {message}", file=sys.stderr)


def load_config(args):
    """
    @return: the L{gwsms.config.Config} named by C{args.config}.
    @raise gwsms.config.ConfigError: a bad file (the message names it).
    """
    from gwsms import config as config_module
    from gwsms.cli.main import DEFAULT_CONFIG

    return config_module.load(getattr(args, "config", None) or DEFAULT_CONFIG)


def open_db(config, upgrade: bool = True):
    """
    Open the configured database for blocking use.

    @param upgrade: apply pending schema migrations first (so a fresh
        machine works).
    @return: a L{gwsms.store.database.SyncDatabase}; the caller closes it.
    @raise CliError: cannot connect or migrate (password masked).
    """
    url = config.database.url
    try:
        db = open_database_sync(url)
    except ValueError as e:
        raise CliError(str(e), USAGE) from None
    except Exception as e:
        raise CliError(f"cannot open database {mask_url(url)}: {e}") from None
    if upgrade:
        try:
            wait(migrate.upgrade(db))
        except Exception as e:
            db.close()
            raise CliError(f"database {mask_url(url)}: {e}") from None
    return db


def wait(d):
    """
    The result of an already-fired Deferred (from a L{SyncDatabase}).

    @raise Exception: the Deferred's failure.
    """
    results: list = []
    d.addBoth(results.append)
    if not results:
        raise CliError("internal error: database call did not complete")
    result = results[0]
    if isinstance(result, Failure):
        result.raiseException()
    return result


def read_secret(value: str, what: str = "password") -> str:
    """C{-} means: read one line from stdin (keeps it out of C{ps})."""
    if value != "-":
        return value
    line = sys.stdin.readline()
    if not line:
        raise usage_error(f"--{what} -: nothing on standard input")
    return line.rstrip("\r\n")


def control_call(config, name: str, timeout: float = 5.0, **args):
    """
    Ask the running service (L{gwsms.control.call} on C{config.control.socket}).

    @raise gwsms.control.ControlUnavailable: no service runs.
    @raise gwsms.control.ControlError: it answered with an error.
    """
    return control.call(config.control.socket, name, timeout=timeout, **args)


def format_table(headers: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    """Left-aligned columns separated by two spaces; no trailing blanks."""
    headers = [str(h) for h in headers]
    rows = [[str(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [headers] + rows:
        lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip())
    return "\n".join(lines)
