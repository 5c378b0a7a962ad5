# -*- test-case-name: tests.test_store_smsc -*-
"""
The C{smpp} table: one row per SMSC connection, mapped to L{SmscLink}.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger

from gwsms.smpp.link import COLUMNS, SmscLink

#: table columns in SmscLink field order, without id
DATA_COLUMNS = tuple(c for c in COLUMNS if c != "id")
_BOOL_COLUMNS = ("enabled", "tls", "tls_verify")
_FLOAT_COLUMNS = (
    "max_rate",
    "enquire_link_interval",
    "session_init_timeout",
    "response_timeout",
    "inactivity_timeout",
)


def _q(column: str) -> str:
    # `window` is reserved in MySQL; backticks are understood by SQLite too.
    return f"`{column}`"


_SELECT = "SELECT " + ", ".join(_q(c) for c in COLUMNS) + " FROM smpp"


class DuplicateName(ValueError):
    """An SMSC with that name already exists."""

    def __init__(self, name: str):
        super().__init__(f"smsc {name!r} already exists")
        self.name = name


class UnknownName(LookupError):
    """No SMSC has that name."""

    def __init__(self, name: str):
        super().__init__(f"no smsc named {name!r}")
        self.name = name

    def __str__(self) -> str:  # LookupError would quote the whole message
        return self.args[0]


def row_to_link(row: tuple) -> SmscLink:
    """
    Build an L{SmscLink} from a row selected in C{COLUMNS} order.

    @raise ValueError: the row holds values SmscLink refuses.
    """
    values = dict(zip(COLUMNS, row))
    for key in _BOOL_COLUMNS:
        values[key] = bool(values[key])
    for key in _FLOAT_COLUMNS:
        values[key] = float(values[key])
    for key in ("system_type", "address_range", "password", "concat"):
        if values[key] is None:
            values[key] = ""
    if values["coding"] is None:
        values["coding"] = "auto"
    values["max_parts"] = int(values["max_parts"] or 0)
    return SmscLink(**values)


def link_to_params(link: SmscLink) -> tuple:
    """The values of C{link} in C{DATA_COLUMNS} order, as SQL parameters."""
    out = []
    for key in DATA_COLUMNS:
        value = getattr(link, key)
        if key == "session_type" or key in _BOOL_COLUMNS:
            value = int(value)
        out.append(value)
    return tuple(out)


class SmscStore:
    """
    CRUD for SMSC connection rows.

    Every method returns a Deferred; names are case-sensitive.
    """

    _log = Logger()

    def __init__(self, db):
        """
        @param db: a L{gwsms.store.database.Database}.
        """
        self._db = db

    # -- reads -------------------------------------------------------------

    def list_with_problems(self) -> defer.Deferred:
        """
        All rows, sorted by name.

        @return: Deferred firing with C{(links, problems)}: the valid rows as
            L{SmscLink}s and one message per row SmscLink refused (rows copied
            in by hand can hold anything).
        """

        def interaction(txn):
            return txn.execute(_SELECT + " ORDER BY name").fetchall()

        def convert(rows):
            links, problems = [], []
            for row in rows:
                try:
                    links.append(row_to_link(row))
                except (ValueError, TypeError) as e:
                    problems.append(f"smpp row id={row[COLUMNS.index('id')]}: {e}")
            return links, problems

        return self._db.run_interaction("smsc_list", interaction).addCallback(convert)

    def list(self) -> defer.Deferred:
        """
        @return: Deferred firing with the valid rows as L{SmscLink}s, sorted
            by name; invalid rows are logged and left out.
        """

        def log_problems(result):
            links, problems = result
            for problem in problems:
                self._log.error("ignoring invalid SMSC row: {problem}", problem=problem)
            return links

        return self.list_with_problems().addCallback(log_problems)

    def get(self, name: str) -> defer.Deferred:
        """
        @return: Deferred firing with the L{SmscLink} named C{name} or None;
            failing with ValueError when the stored row is invalid.
        """

        def interaction(txn):
            row = txn.execute(_SELECT + " WHERE name = ?", (name,)).fetchone()
            return None if row is None else row_to_link(row)

        return self._db.run_interaction("smsc_get", interaction)

    # -- writes ------------------------------------------------------------

    def add(self, link: SmscLink) -> defer.Deferred:
        """
        Insert a new row.

        @return: Deferred firing with C{link} carrying its new C{id}; failing
            with L{DuplicateName}.
        """

        def interaction(txn):
            sql = "INSERT INTO smpp ({}) VALUES ({})".format(
                ", ".join(_q(c) for c in DATA_COLUMNS),
                ", ".join("?" for _ in DATA_COLUMNS),
            )
            try:
                txn.execute(sql, link_to_params(link))
            except Exception as e:
                if txn.engine.is_duplicate_error(e):
                    raise DuplicateName(link.name) from None
                raise
            return link.replace(id=txn.lastrowid)

        return self._db.run_interaction("smsc_add", interaction)

    def update(self, name: str, /, **changes) -> defer.Deferred:
        """
        Change some fields of the row named C{name} (renaming included).

        @param changes: SmscLink field names and new values (not C{id}).
        @return: Deferred firing with the updated L{SmscLink}; failing with
            L{UnknownName}, L{DuplicateName} (rename onto an existing name),
            ValueError (a bad value or unknown field, named in the message).
        """
        unknown = sorted(set(changes) - set(DATA_COLUMNS))
        if unknown:
            return defer.fail(ValueError(f"unknown smsc field(s): {', '.join(unknown)}"))

        def interaction(txn):
            row = txn.execute(_SELECT + " WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise UnknownName(name)
            new = row_to_link(row).replace(**changes)
            sql = "UPDATE smpp SET {} WHERE id = ?".format(
                ", ".join(f"{_q(c)} = ?" for c in DATA_COLUMNS)
            )
            try:
                txn.execute(sql, link_to_params(new) + (new.id,))
            except Exception as e:
                if txn.engine.is_duplicate_error(e):
                    raise DuplicateName(new.name) from None
                raise
            return new

        return self._db.run_interaction("smsc_update", interaction)

    def set_enabled(self, name: str, enabled: bool) -> defer.Deferred:
        """
        @return: Deferred firing with the updated L{SmscLink}; failing with
            L{UnknownName}.
        """

        def interaction(txn):
            txn.execute("UPDATE smpp SET enabled = ? WHERE name = ?", (int(bool(enabled)), name))
            row = txn.execute(_SELECT + " WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise UnknownName(name)
            return row_to_link(row)

        return self._db.run_interaction("smsc_set_enabled", interaction)

    def remove(self, name: str) -> defer.Deferred:
        """
        @return: Deferred firing with True when a row was deleted, False when
            there was none.
        """

        def interaction(txn):
            return txn.execute("DELETE FROM smpp WHERE name = ?", (name,)).rowcount > 0

        return self._db.run_interaction("smsc_remove", interaction)
