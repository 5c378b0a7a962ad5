# -*- test-case-name: tests.test_store_migrate -*-
"""
Numbered schema migrations.

C{gwsms/store/schema/NNN_name.sql} holds portable SQL; a file
C{NNN_name.sql.<dialect>} (C{sqlite}, C{mysql}) next to it replaces it for
that dialect.  C{{{NAME}}} tokens are replaced with the engine's
C{schema_macros}.  Statements end with C{;} at the end of a line; lines
starting with C{--} are comments.

The table C{schema_version} records every applied number.  L{upgrade}
applies the pending ones in order, each in its own transaction together with
its C{schema_version} row, so it is safe to run at every start and from two
processes at once (SQLite takes the write lock, MySQL a named lock).  Note
that MySQL commits DDL implicitly: a migration that fails half-way there
needs a human, and the error says which one.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

from twisted.internet import defer
from twisted.logger import Logger

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema")

_FILE_RE = re.compile(r"^(\d{3,})_([A-Za-z0-9_]+)\.sql$")

_log = Logger(namespace="gwsms.store.migrate")


class MigrationError(Exception):
    """A migration could not be applied, or the database is newer than us."""


@dataclass(frozen=True)
class Migration:
    """One numbered schema file, already chosen for a dialect."""

    version: int
    name: str
    path: str

    def statements(self, macros: dict[str, str]) -> list[str]:
        """
        The SQL statements of this file with macros filled in.

        @raise MigrationError: an unknown C{{{TOKEN}}} remains.
        """
        with open(self.path, encoding="utf-8") as f:
            lines = [
                line for line in f.read().splitlines()
                if not line.lstrip().startswith("--")
            ]
        text = "\n".join(lines)
        for key, value in macros.items():
            text = text.replace("{{" + key + "}}", value)
        leftover = re.search(r"\{\{(\w+)\}\}", text)
        if leftover:
            raise MigrationError(
                f"{os.path.basename(self.path)}: unknown macro {{{{{leftover.group(1)}}}}}"
            )
        out, current = [], []
        for line in text.splitlines():
            current.append(line)
            if line.rstrip().endswith(";"):
                stmt = "\n".join(current).strip().rstrip(";").strip()
                if stmt:
                    out.append(stmt)
                current = []
        rest = "\n".join(current).strip()
        if rest:
            out.append(rest)
        return out


def find_migrations(dialect: str, schema_dir: str = SCHEMA_DIR) -> list[Migration]:
    """
    The migrations for C{dialect}, in order.

    @raise MigrationError: two files share a number.
    """
    found: dict[int, Migration] = {}
    for entry in sorted(os.listdir(schema_dir)):
        m = _FILE_RE.match(entry)
        if not m:
            continue
        version = int(m.group(1))
        if version in found:
            raise MigrationError(
                f"schema files {os.path.basename(found[version].path)} and {entry} "
                f"share number {version}"
            )
        path = os.path.join(schema_dir, entry)
        override = f"{path}.{dialect}"
        if os.path.exists(override):
            path = override
        found[version] = Migration(version, m.group(2), path)
    return [found[v] for v in sorted(found)]


def latest_version(dialect: str = "sqlite", schema_dir: str = SCHEMA_DIR) -> int:
    """The highest migration number shipped (0 if none)."""
    migrations = find_migrations(dialect, schema_dir)
    return migrations[-1].version if migrations else 0


_CREATE_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " version INTEGER NOT NULL PRIMARY KEY,"
    " name VARCHAR(200) NOT NULL,"
    " applied_at DOUBLE NOT NULL)"
)


def _read_version(txn) -> int:
    txn.execute(_CREATE_VERSION_TABLE)
    row = txn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _apply(txn, migration: Migration) -> bool:
    """Apply C{migration} unless a racing process already did."""
    engine = txn.engine
    engine.lock_schema(txn)
    try:
        if _read_version(txn) >= migration.version:
            return False
        for stmt in migration.statements(engine.schema_macros):
            try:
                txn.execute(stmt)
            except Exception as e:
                raise MigrationError(
                    f"schema migration {migration.version:03d}_{migration.name} failed: "
                    f"{e} (statement: {stmt.splitlines()[0]} ...)"
                ) from e
        txn.execute(
            "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.name, time.time()),
        )
        return True
    finally:
        engine.unlock_schema(txn)


def current_version(db) -> defer.Deferred:
    """
    @param db: a L{gwsms.store.database.Database}.
    @return: Deferred firing with the applied schema version (0 = empty).
    """
    return db.run_interaction("schema_version", _read_version)


@defer.inlineCallbacks
def upgrade(db, schema_dir: str = SCHEMA_DIR):
    """
    Apply every pending migration, in order.

    @param db: a L{gwsms.store.database.Database} (or C{SyncDatabase}: the
        returned Deferred has then already fired).
    @param schema_dir: where the numbered files are (tests pass their own).
    @return: Deferred firing with the schema version now in force; failing
        with L{MigrationError} when a migration fails or the database was
        created by a newer gwsms.
    """
    migrations = find_migrations(db.engine.dialect, schema_dir)
    latest = migrations[-1].version if migrations else 0
    version = yield current_version(db)
    if version > latest:
        raise MigrationError(
            f"database schema version {version} is newer than this gwsms "
            f"(knows up to {latest}); upgrade gwsms"
        )
    for migration in migrations:
        if migration.version <= version:
            continue
        applied = yield db.run_interaction(
            f"migrate {migration.version:03d}", _apply, migration
        )
        if applied:
            _log.info(
                "applied schema migration {version:03d}_{name}",
                version=migration.version,
                name=migration.name,
            )
        version = migration.version
    return version
