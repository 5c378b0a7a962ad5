# -*- test-case-name: tests.test_store_sip -*-
"""
SIP digest users (C{sip_users}) and registrar bindings (C{sip_registrations}).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from twisted.internet import defer

#: column sizes from schema 001 (checked before writing, so MySQL's strict
#: mode and SQLite behave alike and the message names the field)
_LIMITS = {
    "username": 64,
    "realm": 128,
    "aor": 255,
    "contact_uri": 512,
    "call_id": 255,
    "source": 255,
    "transport": 8,
}


def _check(**values: str) -> None:
    for key, value in values.items():
        if not isinstance(value, str):
            raise ValueError(f"{key} must be a string")
        if len(value) > _LIMITS[key]:
            raise ValueError(f"{key} longer than {_LIMITS[key]} characters")


def ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """
    Digest HA1 = hex(H("username:realm:password")) (RFC 2617 / RFC 7616).

    @param algorithm: C{"md5"} or C{"sha256"}.
    """
    data = f"{username}:{realm}:{password}".encode("utf-8")
    return hashlib.new(algorithm, data).hexdigest()


@dataclass(frozen=True)
class SipUser:
    """A stored SIP credential (the password itself is never stored)."""

    username: str
    realm: str
    ha1_md5: str
    ha1_sha256: str


class DuplicateUser(ValueError):
    """That username already exists in that realm."""

    def __init__(self, username: str, realm: str):
        super().__init__(f"sip user {username!r} already exists in realm {realm!r}")


class SipUserStore:
    """Credentials for SIP digest authentication."""

    def __init__(self, db):
        """
        @param db: a L{gwsms.store.database.Database}.
        """
        self._db = db

    def add(self, username: str, password: str, realm: str) -> defer.Deferred:
        """
        Store the MD5 and SHA-256 HA1 of a new user.

        @return: Deferred firing with the L{SipUser}; failing with
            L{DuplicateUser}, or ValueError for an empty or too long field.
        """
        try:
            _check(username=username, realm=realm)
            if not username:
                raise ValueError("username must not be empty")
            if not realm:
                raise ValueError("realm must not be empty")
            if not password:
                raise ValueError("password must not be empty")
            if ":" in username:
                raise ValueError("username must not contain ':'")
        except ValueError as e:
            return defer.fail(e)
        user = SipUser(
            username,
            realm,
            ha1("md5", username, realm, password),
            ha1("sha256", username, realm, password),
        )

        def interaction(txn):
            try:
                txn.execute(
                    "INSERT INTO sip_users (username, realm, ha1_md5, ha1_sha256, created) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (user.username, user.realm, user.ha1_md5, user.ha1_sha256, time.time()),
                )
            except Exception as e:
                if txn.engine.is_duplicate_error(e):
                    raise DuplicateUser(username, realm) from None
                raise
            return user

        return self._db.run_interaction("sip_user_add", interaction)

    def get(self, username: str, realm: str) -> defer.Deferred:
        """
        @return: Deferred firing with the L{SipUser} or None.
        """

        def interaction(txn):
            row = txn.execute(
                "SELECT username, realm, ha1_md5, ha1_sha256 FROM sip_users "
                "WHERE username = ? AND realm = ?",
                (username, realm),
            ).fetchone()
            return None if row is None else SipUser(*row)

        return self._db.run_interaction("sip_user_get", interaction)

    def list(self) -> defer.Deferred:
        """
        @return: Deferred firing with every L{SipUser}, by realm then username.
        """

        def interaction(txn):
            rows = txn.execute(
                "SELECT username, realm, ha1_md5, ha1_sha256 FROM sip_users "
                "ORDER BY realm, username"
            ).fetchall()
            return [SipUser(*row) for row in rows]

        return self._db.run_interaction("sip_user_list", interaction)

    def remove(self, username: str, realm: str) -> defer.Deferred:
        """
        @return: Deferred firing with True if a user was deleted.
        """

        def interaction(txn):
            return txn.execute(
                "DELETE FROM sip_users WHERE username = ? AND realm = ?", (username, realm)
            ).rowcount > 0

        return self._db.run_interaction("sip_user_remove", interaction)


@dataclass(frozen=True)
class Binding:
    """One registered contact of an address-of-record."""

    aor: str
    contact_uri: str
    expires_at: float
    call_id: str
    cseq: int
    q: float
    source: str
    transport: str
    updated: float


_BINDING_COLUMNS = (
    "aor, contact_uri, expires_at, call_id, cseq, q, source, transport, updated"
)


class RegistrationStore:
    """Registrar bindings, keyed by (aor, contact_uri)."""

    def __init__(self, db, clock=None):
        """
        @param db: a L{gwsms.store.database.Database}.
        @param clock: an C{IReactorTime} for the C{updated} column (defaults
            to wall-clock time).
        """
        self._db = db
        self._clock = clock

    def _now(self) -> float:
        return self._clock.seconds() if self._clock is not None else time.time()

    def save(
        self,
        aor: str,
        contact_uri: str,
        expires_at: float,
        call_id: str,
        cseq: int,
        q: float,
        source: str,
        transport: str,
    ) -> defer.Deferred:
        """
        Insert or refresh the binding for (aor, contact_uri).

        @param expires_at: absolute expiry, epoch seconds.
        @return: Deferred firing with the saved L{Binding}; failing with
            ValueError for a too long field.
        """
        try:
            _check(aor=aor, contact_uri=contact_uri, call_id=call_id,
                   source=source, transport=transport)
        except ValueError as e:
            return defer.fail(e)
        binding = Binding(aor, contact_uri, float(expires_at), call_id, int(cseq),
                          float(q), source, transport, self._now())

        def interaction(txn):
            sql = txn.engine.upsert_sql(
                "sip_registrations",
                ("aor", "contact_uri"),
                ("expires_at", "call_id", "cseq", "q", "source", "transport", "updated"),
            )
            txn.execute(sql, (binding.aor, binding.contact_uri, binding.expires_at,
                              binding.call_id, binding.cseq, binding.q, binding.source,
                              binding.transport, binding.updated))
            return binding

        return self._db.run_interaction("registration_save", interaction)

    def lookup(self, aor: str, now: float) -> defer.Deferred:
        """
        @param now: epoch seconds; bindings expiring at or before it are left out.
        @return: Deferred firing with the live L{Binding}s of C{aor}, highest
            q first, then most recently updated.
        """

        def interaction(txn):
            rows = txn.execute(
                f"SELECT {_BINDING_COLUMNS} FROM sip_registrations "
                "WHERE aor = ? AND expires_at > ? ORDER BY q DESC, updated DESC, id DESC",
                (aor, float(now)),
            ).fetchall()
            return [Binding(*row) for row in rows]

        return self._db.run_interaction("registration_lookup", interaction)

    def remove(self, aor: str, contact_uri: str) -> defer.Deferred:
        """
        @return: Deferred firing with True if a binding was deleted.
        """

        def interaction(txn):
            return txn.execute(
                "DELETE FROM sip_registrations WHERE aor = ? AND contact_uri = ?",
                (aor, contact_uri),
            ).rowcount > 0

        return self._db.run_interaction("registration_remove", interaction)

    def remove_all(self, aor: str) -> defer.Deferred:
        """
        @return: Deferred firing with the number of bindings deleted.
        """

        def interaction(txn):
            return txn.execute(
                "DELETE FROM sip_registrations WHERE aor = ?", (aor,)
            ).rowcount

        return self._db.run_interaction("registration_remove_all", interaction)

    def expire(self, now: float) -> defer.Deferred:
        """
        Delete every binding expired at C{now} (epoch seconds).

        @return: Deferred firing with the number deleted.
        """

        def interaction(txn):
            return txn.execute(
                "DELETE FROM sip_registrations WHERE expires_at <= ?", (float(now),)
            ).rowcount

        return self._db.run_interaction("registration_expire", interaction)
