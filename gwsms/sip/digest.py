# -*- test-case-name: tests.test_sip_digest -*-
"""
SIP digest authentication (RFC 3261 §22, RFC 2617, RFC 7616).

Server side: L{DigestAuthenticator} builds challenges (SHA-256 and MD5,
C{qop=auth}) whose nonce is a timestamp signed with a per-process secret, so
verifying needs no state except the nonce-count table that stops replays.
Passwords are never held: the user store gives HA1 values.

Client side: L{build_authorization} answers a 401/407 challenge for an
outgoing request.

L{TrustedSources} holds the CIDR list of peers that skip the challenge.

Pure apart from the clock and the user store; no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterable

from twisted.internet import defer
from twisted.logger import Logger

#: Hash function per algorithm token (the C{-sess} forms share the hash).
_HASHES: dict[str, Callable] = {
    "MD5": hashlib.md5,
    "MD5-SESS": hashlib.md5,
    "SHA-256": hashlib.sha256,
    "SHA-256-SESS": hashlib.sha256,
}

#: Client preference when several challenges are offered.
_CLIENT_PREFERENCE = ("SHA-256", "SHA-256-SESS", "MD5", "MD5-SESS")

_TOKEN_END = " \t,=\"\r\n"


class DigestError(ValueError):
    """
    An authentication header could not be used; the message says why.
    """


def _hash(algorithm: str, text: str) -> str:
    return _HASHES[algorithm.upper()](_bytes(text)).hexdigest()


def _bytes(text: str) -> bytes:
    """
    The wire bytes of a header value (the parser keeps undecodable bytes
    as surrogate escapes); anything else unencodable becomes C{?}.
    """
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def _same(a: str, b: str) -> bool:
    """Constant-time comparison that also takes non-ASCII input."""
    return hmac.compare_digest(_bytes(a), _bytes(b))


def compute_ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """
    HA1 = H(username ":" realm ":" password) (RFC 7616 §3.4.2).

    @param algorithm: C{"MD5"} or C{"SHA-256"} (C{-sess} forms accepted;
        they use the same base value).
    @return: the lower-case hex digest.
    @raise DigestError: for an unknown algorithm.
    """
    if algorithm.upper() not in _HASHES:
        raise DigestError(f"unsupported digest algorithm {algorithm!r}")
    return _hash(algorithm, f"{username}:{realm}:{password}")


def compute_response(
    algorithm: str,
    ha1: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """
    The C{response} value of RFC 7616 §3.4.1 (and RFC 2069 when no qop).

    @param algorithm: C{MD5}, C{MD5-sess}, C{SHA-256} or C{SHA-256-sess}.
    @param ha1: H(username:realm:password) as stored.
    @param qop: C{None} (RFC 2069), C{"auth"} or C{"auth-int"}.
    @param nc: the 8-hex-digit nonce count (with qop).
    @param cnonce: the client nonce (with qop or a C{-sess} algorithm).
    @param body: the message body, for C{auth-int}.
    @return: the lower-case hex digest.
    @raise DigestError: for an unknown algorithm or qop.
    """
    algo = algorithm.upper()
    if algo not in _HASHES:
        raise DigestError(f"unsupported digest algorithm {algorithm!r}")
    if algo.endswith("-SESS"):
        ha1 = _hash(algo, f"{ha1}:{nonce}:{cnonce or ''}")
    if qop is None or qop == "auth":
        ha2 = _hash(algo, f"{method}:{uri}")
    elif qop == "auth-int":
        body_hash = _HASHES[algo](body).hexdigest()
        ha2 = _hash(algo, f"{method}:{uri}:{body_hash}")
    else:
        raise DigestError(f"unsupported qop {qop!r}")
    if qop is None:
        return _hash(algo, f"{ha1}:{nonce}:{ha2}")
    return _hash(algo, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def quote(value: str) -> str:
    """
    @return: C{value} as an RFC 7230 quoted-string.
    """
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _read_quoted(text: str, pos: int) -> tuple[str, int]:
    # text[pos] is the opening quote.
    out = []
    pos += 1
    while pos < len(text):
        char = text[pos]
        if char == "\\" and pos + 1 < len(text):
            out.append(text[pos + 1])
            pos += 2
        elif char == '"':
            return "".join(out), pos + 1
        else:
            out.append(char)
            pos += 1
    raise DigestError("unterminated quoted string in authentication header")


def _read_token(text: str, pos: int) -> tuple[str, int]:
    start = pos
    while pos < len(text) and text[pos] not in _TOKEN_END:
        pos += 1
    return text[start:pos], pos


def _skip(text: str, pos: int, chars: str = " \t\r\n") -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def parse_auth_header(value: str) -> list[tuple[str, dict[str, str]]]:
    """
    Parse a WWW-Authenticate / Authorization style header value.

    Handles several challenges in one value (C{Digest a=1, Digest b=2}),
    quoted strings with escaped characters and commas inside quotes.
    Parameter names are lower-cased; values are unquoted.

    @param value: the header value (several header lines may be joined
        with C{", "}).
    @return: C{[(scheme, params), ...]} in order; the scheme as written.
    @raise DigestError: for a value that is not a list of auth-params.
    """
    result: list[tuple[str, dict[str, str]]] = []
    pos = 0
    current: dict[str, str] | None = None
    while True:
        pos = _skip(value, pos, " \t\r\n,")
        if pos >= len(value):
            break
        token, pos = _read_token(value, pos)
        if not token:
            raise DigestError(f"unexpected character {value[pos]!r} in authentication header")
        after = _skip(value, pos)
        if after < len(value) and value[after] == "=":
            # Either an auth-param or the padding of a token68.
            pos = _skip(value, after + 1)
            if pos < len(value) and value[pos] == '"':
                param_value, pos = _read_quoted(value, pos)
            else:
                param_value, pos = _read_token(value, pos)
            if current is None:
                raise DigestError("authentication parameter before any scheme")
            current[token.lower()] = param_value
        else:
            current = {}
            result.append((token, current))
            pos = after
    return result


def build_challenge(
    realm: str, nonce: str, opaque: str, algorithm: str, stale: bool = False
) -> str:
    """
    @return: one C{Digest ...} challenge value with C{qop="auth"}.
    """
    parts = [
        f"realm={quote(realm)}",
        f"nonce={quote(nonce)}",
        f"opaque={quote(opaque)}",
        f"algorithm={algorithm}",
        'qop="auth"',
    ]
    if stale:
        parts.append("stale=true")
    return "Digest " + ", ".join(parts)


def build_authorization(
    challenges: Iterable[str],
    method: str,
    uri: str,
    username: str,
    password: str,
    body: bytes = b"",
    cnonce: str | None = None,
    nc: int = 1,
) -> str:
    """
    Answer a 401/407 challenge for an outgoing request (the client side).

    Picks SHA-256 when offered, else MD5 (C{-sess} forms as a last
    resort); C{qop=auth} when offered (else C{auth-int}, else RFC 2069).

    @param challenges: the WWW-Authenticate (401) or Proxy-Authenticate
        (407) header values of the response.
    @param method: the method of the request being retried.
    @param uri: its Request-URI as text.
    @param cnonce: the client nonce; a random one by default.
    @param nc: the nonce count to send.
    @return: the Authorization / Proxy-Authorization header value.
    @raise DigestError: when no Digest challenge with a supported
        algorithm is offered, naming what was offered.
    """
    offered: list[dict[str, str]] = []
    for value in challenges:
        for scheme, params in parse_auth_header(value):
            if scheme.lower() == "digest" and "nonce" in params:
                offered.append(params)
    if not offered:
        raise DigestError("no Digest challenge in the response")

    def rank(params: dict[str, str]) -> int:
        algo = params.get("algorithm", "MD5").upper()
        if algo in _CLIENT_PREFERENCE:
            return _CLIENT_PREFERENCE.index(algo)
        return len(_CLIENT_PREFERENCE)

    chosen = min(offered, key=rank)
    algorithm = chosen.get("algorithm", "MD5")
    if algorithm.upper() not in _HASHES:
        names = sorted({p.get("algorithm", "MD5") for p in offered})
        raise DigestError(f"no supported digest algorithm offered (offered: {', '.join(names)})")
    realm = chosen.get("realm", "")
    qops = [q.strip().lower() for q in chosen.get("qop", "").split(",") if q.strip()]
    qop = "auth" if "auth" in qops else ("auth-int" if "auth-int" in qops else None)
    if qops and qop is None:
        raise DigestError(f"no supported qop offered (offered: {chosen['qop']})")
    if cnonce is None:
        cnonce = os.urandom(12).hex()
    nc_text = f"{nc:08x}"
    ha1 = compute_ha1(algorithm, username, realm, password)
    response = compute_response(
        algorithm,
        ha1,
        chosen["nonce"],
        method,
        uri,
        qop,
        nc_text if qop else None,
        cnonce if (qop or algorithm.upper().endswith("-SESS")) else None,
        body,
    )
    parts = [
        f"username={quote(username)}",
        f"realm={quote(realm)}",
        f"nonce={quote(chosen['nonce'])}",
        f"uri={quote(uri)}",
        f"response={quote(response)}",
        f"algorithm={algorithm}",
    ]
    if qop:
        parts += [f"qop={qop}", f"nc={nc_text}", f"cnonce={quote(cnonce)}"]
    elif algorithm.upper().endswith("-SESS"):
        parts.append(f"cnonce={quote(cnonce)}")
    if "opaque" in chosen:
        parts.append(f"opaque={quote(chosen['opaque'])}")
    return "Digest " + ", ".join(parts)


@dataclass(frozen=True)
class AuthResult:
    """
    The outcome of checking one request's credentials.

    @ivar username: the authenticated user, C{None} when not authenticated.
    @ivar stale: C{True} when the credentials were right but the nonce had
        expired (challenge again with C{stale=true}).
    @ivar reason: why authentication failed, for the log (never sent).
    """

    username: str | None
    stale: bool = False
    reason: str = ""

    @property
    def ok(self) -> bool:
        """C{True} when authenticated."""
        return self.username is not None


class DigestAuthenticator:
    """
    The server side: challenges and verification against a user store.

    The nonce is C{<issued ms hex>.<salt>.<hmac>}; it verifies without
    state. The highest nonce count seen per nonce is remembered until the
    nonce expires (bounded by C{max_nonces}; a nonce whose entry had to be
    forgotten early is reported stale, so a replay never passes).
    """

    _log = Logger()

    def __init__(
        self,
        clock,
        realm: str,
        users,
        nonce_ttl: float = 300.0,
        secret: bytes | None = None,
        max_nonces: int = 10000,
        algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
        require_qop: bool = True,
    ) -> None:
        """
        @param clock: an L{IReactorTime}.
        @param realm: the realm to challenge for.
        @param users: a store with C{get(username, realm) ->
            Deferred[SipUser | None]} (C{ha1_md5}, C{ha1_sha256}).
        @param nonce_ttl: seconds a nonce stays valid.
        @param secret: HMAC key; random per process by default.
        @param max_nonces: most nonce-count entries kept.
        @param algorithms: offered algorithms, in preference order.
        @param require_qop: refuse RFC 2069 answers (no qop, so no replay
            protection within the nonce lifetime).
        """
        self._clock = clock
        self.realm = realm
        self._users = users
        self.nonce_ttl = nonce_ttl
        self._secret = secret if secret is not None else os.urandom(32)
        self._max_nonces = max_nonces
        self.algorithms = algorithms
        self._require_qop = require_qop
        self.opaque = hmac.new(self._secret, b"opaque:" + realm.encode(), hashlib.sha256).hexdigest()[:32]
        self._counts: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._forgotten_before = -1
        self._last_sweep = -1000

    def __repr__(self) -> str:
        return f"<DigestAuthenticator realm={self.realm!r}>"

    # -- nonces -----------------------------------------------------------

    def _sign(self, issued: str, salt: str) -> str:
        msg = _bytes(f"{issued}.{salt}.{self.realm}")
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()[:32]

    def make_nonce(self) -> str:
        """
        @return: a fresh signed nonce.
        """
        issued = f"{int(self._clock.seconds() * 1000):x}"
        salt = os.urandom(6).hex()
        return f"{issued}.{salt}.{self._sign(issued, salt)}"

    def _nonce_issued(self, nonce: str) -> int | None:
        """
        @return: the issue time in ms when the nonce is ours, else C{None}.
        """
        parts = nonce.split(".")
        if len(parts) != 3:
            return None
        issued, salt, mac = parts
        if not _same(self._sign(issued, salt), mac):
            return None
        try:
            return int(issued, 16)
        except ValueError:
            return None

    def challenges(self, stale: bool = False) -> list[str]:
        """
        @param stale: add C{stale=true}.
        @return: the WWW-Authenticate (or Proxy-Authenticate) header
            values, one per algorithm, SHA-256 first, sharing one nonce.
        """
        nonce = self.make_nonce()
        return [build_challenge(self.realm, nonce, self.opaque, algo, stale) for algo in self.algorithms]

    # -- verification -----------------------------------------------------

    def _prune(self, now_ms: int) -> None:
        ttl_ms = int(self.nonce_ttl * 1000)
        # A full sweep at most once a second keeps verification O(1) amortised.
        if now_ms - self._last_sweep >= 1000:
            self._last_sweep = now_ms
            for nonce in list(self._counts):
                _count, issued = self._counts[nonce]
                if issued + ttl_ms < now_ms:
                    del self._counts[nonce]
        while len(self._counts) > self._max_nonces:
            _nonce, (_count, issued) = self._counts.popitem(last=False)
            self._forgotten_before = max(self._forgotten_before, issued)

    def _select(self, values: Iterable[str]) -> dict[str, str] | None:
        first = None
        for value in values:
            for scheme, params in parse_auth_header(value):
                if scheme.lower() != "digest":
                    continue
                if params.get("realm") == self.realm:
                    return params
                first = first or params
        return first

    def authenticate(
        self, method: str, request_uri: str, credentials: Iterable[str], body: bytes = b""
    ) -> defer.Deferred:
        """
        Check the Authorization (or Proxy-Authorization) header values.

        @param method: the request method.
        @param request_uri: the Request-URI as text; the C{uri} parameter
            must equal it.
        @param credentials: the header values (may be empty).
        @param body: the request body (for C{qop=auth-int}).
        @return: a L{Deferred} firing with an L{AuthResult}; it fails only
            when the user store fails.
        """
        try:
            params = self._select(list(credentials))
        except DigestError as e:
            return defer.succeed(AuthResult(None, reason=str(e)))
        if params is None:
            return defer.succeed(AuthResult(None, reason="no Digest credentials"))
        problem = self._check_params(params, request_uri)
        if problem:
            return defer.succeed(AuthResult(None, reason=problem))
        d = defer.maybeDeferred(self._users.get, params["username"], self.realm)
        d.addCallback(self._check_user, params, method, body)
        return d

    def _check_params(self, params: dict[str, str], request_uri: str) -> str:
        for name in ("username", "realm", "nonce", "uri", "response"):
            if name not in params:
                return f"credentials lack {name!r}"
        try:
            params["username"].encode("utf-8")
        except UnicodeEncodeError:
            return "username is not valid UTF-8"
        if params["realm"] != self.realm:
            return f"credentials for realm {params['realm']!r}, expected {self.realm!r}"
        algorithm = params.get("algorithm", "MD5")
        if algorithm.upper() not in _HASHES:
            return f"unsupported algorithm {algorithm!r}"
        if params["uri"] != request_uri:
            return f"digest uri {params['uri']!r} does not match the Request-URI {request_uri!r}"
        if "opaque" in params and params["opaque"] != self.opaque:
            return "opaque does not match"
        qop = params.get("qop")
        if qop is None:
            if self._require_qop:
                return "credentials without qop (RFC 2069) refused"
        elif qop.lower() not in ("auth", "auth-int"):
            return f"unsupported qop {qop!r}"
        else:
            nc = params.get("nc", "")
            if len(nc) != 8 or not all(c in "0123456789abcdefABCDEF" for c in nc):
                return f"bad nonce count {nc!r}"
            if not params.get("cnonce"):
                return "qop without cnonce"
        if self._nonce_issued(params["nonce"]) is None:
            return "nonce not issued by us"
        return ""

    def _check_user(self, user, params: dict[str, str], method: str, body: bytes) -> AuthResult:
        username = params["username"]
        if user is None:
            return AuthResult(None, reason=f"unknown user {username!r}")
        algorithm = params.get("algorithm", "MD5")
        ha1 = user.ha1_sha256 if algorithm.upper().startswith("SHA-256") else user.ha1_md5
        if not ha1:
            return AuthResult(None, reason=f"no {algorithm} HA1 stored for {username!r}")
        qop = params.get("qop")
        qop = qop.lower() if qop else None
        expected = compute_response(
            algorithm,
            ha1,
            params["nonce"],
            method,
            params["uri"],
            qop,
            params.get("nc"),
            params.get("cnonce"),
            body,
        )
        if not _same(expected, params["response"].lower()):
            return AuthResult(None, reason=f"wrong response for {username!r}")
        now_ms = int(self._clock.seconds() * 1000)
        issued = self._nonce_issued(params["nonce"])
        assert issued is not None  # checked in _check_params
        if issued + int(self.nonce_ttl * 1000) < now_ms:
            return AuthResult(None, stale=True, reason="nonce expired")
        self._prune(now_ms)
        if qop is None:
            return AuthResult(username)
        nc = int(params["nc"], 16)
        entry = self._counts.get(params["nonce"])
        if entry is None:
            if issued <= self._forgotten_before:
                return AuthResult(None, stale=True, reason="nonce count forgotten")
        elif nc <= entry[0]:
            return AuthResult(None, reason=f"nonce count {nc} replayed for {username!r}")
        self._counts[params["nonce"]] = (nc, issued)
        self._counts.move_to_end(params["nonce"])
        self._prune(now_ms)
        return AuthResult(username)


class TrustedSources:
    """
    Source addresses that skip the digest challenge (C{[sip] trusted}).
    """

    def __init__(self, cidrs: Iterable[str] = ()) -> None:
        """
        @param cidrs: networks like C{"10.0.0.0/8"}, C{"::1"}.
        @raise ValueError: naming the entry that is not a network.
        """
        networks = []
        for cidr in cidrs:
            try:
                networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
            except ValueError:
                raise ValueError(f"[sip] trusted: {cidr!r} is not an IP network (e.g. 10.0.0.0/8)") from None
        self.networks = tuple(networks)

    def __contains__(self, host: object) -> bool:
        """
        @param host: an IP address as text.
        @return: whether it lies in one of the networks.
        """
        try:
            address = ipaddress.ip_address(str(host).strip("[]"))
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address.version == net.version and address in net for net in self.networks)
