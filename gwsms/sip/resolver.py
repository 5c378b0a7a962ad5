# -*- test-case-name: tests.test_sip_resolver -*-
"""
Locating a SIP server (the RFC 3263 subset gwsms needs).

For a target URI: the transport comes from the C{transport} parameter, else
C{sips} means TLS, else UDP (RFC 3263 §4.1 for a numeric host or an explicit
port). A numeric host is used as it is; a host name with an explicit port is
resolved with A/AAAA only; a host name without a port is looked up with SRV
(C{_sips._tcp} for sips, else C{_sip._udp}, C{_sip._tcp}, C{_sips._tcp} in
that order, or only the one matching a C{transport} parameter), and falls
back to A/AAAA on port 5060 (5061 for TLS). NAPTR is not used.

DNS goes through an injected L{twisted.internet.interfaces.IResolver};
L{system_resolver} builds the usual one (/etc/hosts, then the name servers of
/etc/resolv.conf). Answers are cached per their TTL in a bounded cache.
"""

from __future__ import annotations

import functools
import ipaddress
import random
from collections import OrderedDict
from dataclasses import dataclass

from twisted.internet import defer
from twisted.internet import error as internet_error
from twisted.logger import Logger
from twisted.names import dns, error

#: Default ports per transport (RFC 3261 §19.1.2).
DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}

#: SRV prefix per transport.
_SRV_PREFIX = {"udp": "_sip._udp.", "tcp": "_sip._tcp.", "tls": "_sips._tcp."}

TRANSPORTS = ("udp", "tcp", "tls")

#: Failures that mean "no such records" (cached as an empty answer); every
#: DNS error of twisted.names derives from DomainError.
_NEGATIVE = (error.DomainError, internet_error.DNSLookupError)


class ResolveError(Exception):
    """
    A target could not be located; the message names the host and why.
    """


@dataclass(frozen=True)
class Target:
    """
    One place to send a request: transport, IP address and port.
    """

    transport: str
    host: str
    port: int


@functools.lru_cache(maxsize=4096)
def is_ip(host: str) -> bool:
    """
    @return: whether C{host} is an IPv4/IPv6 literal (brackets allowed);
        cached: every MO message resolves the same few targets.
    """
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _srv_order(records: list, rng: random.Random) -> list:
    """
    Order SRV records by priority, weighted-random within a priority
    (RFC 2782).
    """
    by_priority: dict[int, list] = {}
    for record in records:
        by_priority.setdefault(record.priority, []).append(record)
    ordered = []
    for priority in sorted(by_priority):
        group = sorted(by_priority[priority], key=lambda r: r.weight)
        while group:
            total = sum(r.weight for r in group)
            pick = rng.uniform(0, total) if total else 0
            running = 0
            chosen = group[0]
            for record in group:
                running += record.weight
                if running >= pick:
                    chosen = record
                    break
            group.remove(chosen)
            ordered.append(chosen)
    return ordered


class SipResolver:
    """
    Turns a SIP URI into an ordered list of L{Target}s.
    """

    _log = Logger()

    def __init__(
        self,
        clock,
        resolver,
        max_cache: int = 1024,
        negative_ttl: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        """
        @param clock: an L{IReactorTime} (cache expiry).
        @param resolver: an L{IResolver} (C{lookupService},
            C{lookupAddress}, C{lookupIPV6Address}).
        @param max_cache: most cached names (least recently used go first).
        @param negative_ttl: seconds a failed lookup is remembered.
        @param rng: randomness for SRV weights (tests pass a seeded one).
        """
        self._clock = clock
        self._resolver = resolver
        self._max_cache = max_cache
        self._negative_ttl = negative_ttl
        self._rng = rng or random.Random()
        self._cache: OrderedDict[tuple[str, str], tuple[float, object]] = OrderedDict()

    # -- cache ------------------------------------------------------------

    def _cached(self, kind: str, name: str, lookup) -> defer.Deferred:
        key = (kind, name.lower())
        now = self._clock.seconds()
        entry = self._cache.get(key)
        if entry is not None:
            expires, value = entry
            if expires > now:
                self._cache.move_to_end(key)
                return defer.succeed(value)
            del self._cache[key]

        def store(result):
            value, ttl = result
            self._remember(key, value, ttl)
            return value

        def store_failure(failure):
            failure.trap(*_NEGATIVE)
            self._remember(key, [], self._negative_ttl)
            return []

        d = lookup(name)
        d.addCallbacks(store, store_failure)
        return d

    def _remember(self, key, value, ttl: float) -> None:
        if ttl <= 0:
            return
        self._cache[key] = (self._clock.seconds() + ttl, value)
        self._cache.move_to_end(key)
        while len(self._cache) > self._max_cache:
            self._cache.popitem(last=False)

    # -- raw lookups ------------------------------------------------------

    def _lookup_srv(self, name: str) -> defer.Deferred:
        def extract(result):
            answers = result[0]
            records = [a for a in answers if a.type == dns.SRV]
            ttl = min((a.ttl for a in records), default=self._negative_ttl)
            payloads = [a.payload for a in records]
            # A single "." target means "no service here" (RFC 2782).
            if len(payloads) == 1 and str(payloads[0].target) in ("", "."):
                payloads = []
            return [(p.priority, p.weight, p.port, str(p.target)) for p in payloads], ttl

        return self._resolver.lookupService(name).addCallback(extract)

    def _lookup_addresses(self, name: str) -> defer.Deferred:
        def extract(results):
            addresses = []
            ttls = []
            for success, result in results:
                if not success:
                    continue
                for answer in result[0]:
                    if answer.type in (dns.A, dns.AAAA):
                        addresses.append(answer.payload.dottedQuad()
                                         if answer.type == dns.A else
                                         _ipv6_text(answer.payload))
                        ttls.append(answer.ttl)
            if not addresses:
                # Name errors from both lookups: treat as negative answer.
                for success, result in results:
                    if not success:
                        result.trap(*_NEGATIVE)
                return [], self._negative_ttl
            return addresses, min(ttls)

        d4 = self._resolver.lookupAddress(name)
        d6 = self._resolver.lookupIPV6Address(name)
        return defer.DeferredList([d4, d6], consumeErrors=True).addCallback(extract)

    def addresses(self, name: str) -> defer.Deferred:
        """
        @param name: a host name or IP literal.
        @return: a L{Deferred} firing with a list of IP addresses (IPv4
            first as the resolver returned them); C{"localhost"} is
            127.0.0.1 without a query.
        """
        bare = name.strip("[]")
        if is_ip(bare):
            return defer.succeed([bare])
        if bare.lower().rstrip(".") == "localhost":
            return defer.succeed(["127.0.0.1"])
        return self._cached("addr", bare, self._lookup_addresses)

    def srv(self, name: str) -> defer.Deferred:
        """
        @param name: the full SRV name (C{_sip._udp.example.org}).
        @return: a L{Deferred} firing with C{[(priority, weight, port,
            target)]} (empty when none).
        """
        return self._cached("srv", name, self._lookup_srv)

    # -- RFC 3263 ---------------------------------------------------------

    def resolve_uri(self, uri) -> defer.Deferred:
        """
        @param uri: a L{gwsms.sip.message.SipURI} (C{scheme}, C{host},
            C{port}, C{params}) or its text.
        @return: see L{resolve}.
        """
        if isinstance(uri, str):
            from gwsms.sip.message import SipURI

            uri = SipURI.parse(uri)
        params = {str(k).lower(): v for k, v in (getattr(uri, "params", None) or {}).items()}
        transport = params.get("transport")
        if "maddr" in params and params["maddr"]:
            host = params["maddr"]
        else:
            host = uri.host
        return self.resolve(getattr(uri, "scheme", "sip"), host, uri.port, transport)

    def resolve(self, scheme: str, host: str, port: int | None = None,
                transport: str | None = None) -> defer.Deferred:
        """
        Locate the server for a URI (RFC 3263 §4).

        @param scheme: C{"sip"} or C{"sips"}.
        @param host: host name or IP literal.
        @param port: explicit port, or C{None}.
        @param transport: the URI's C{transport} parameter, or C{None}.
        @return: a L{Deferred} firing with a non-empty list of L{Target}s in
            the order to try; fails with L{ResolveError} naming the host.
        """
        scheme = (scheme or "sip").lower()
        if transport:
            transport = transport.lower()
            if transport not in TRANSPORTS:
                return defer.fail(ResolveError(f"unsupported transport {transport!r} for {host}"))
        if scheme == "sips":
            if transport == "udp":
                return defer.fail(ResolveError(f"sips URI for {host} cannot use UDP"))
            transport = "tls"
        bare = host.strip("[]")
        if not bare:
            return defer.fail(ResolveError("empty host in URI"))

        if is_ip(bare) or port is not None:
            chosen = transport or "udp"
            target_port = port or DEFAULT_PORTS[chosen]
            d = self.addresses(bare)
            d.addCallback(self._to_targets, chosen, target_port, bare)

        else:
            candidates = [transport] if transport else list(TRANSPORTS)
            d = defer.ensureDeferred(self._resolve_srv(bare, candidates, transport))
        d.addErrback(self._as_resolve_error, bare)
        return d

    def _as_resolve_error(self, failure, host: str):
        if failure.check(ResolveError):
            return failure
        raise ResolveError(f"{host}: DNS lookup failed ({failure.getErrorMessage() or failure.type.__name__})")

    def _to_targets(self, addresses: list[str], transport: str, port: int, host: str) -> list[Target]:
        if not addresses:
            raise ResolveError(f"{host}: no A/AAAA records")
        return [Target(transport, address, port) for address in addresses]

    async def _resolve_srv(self, host: str, candidates: list[str], forced: str | None) -> list[Target]:
        for transport in candidates:
            records = await self.srv(_SRV_PREFIX[transport] + host)
            if not records:
                continue
            targets: list[Target] = []
            for record in _srv_order([_Srv(*r) for r in records], self._rng):
                addresses = await self.addresses(record.target)
                targets.extend(Target(transport, a, record.port) for a in addresses)
            if targets:
                return targets
        chosen = forced or "udp"
        addresses = await self.addresses(host)
        if not addresses:
            raise ResolveError(f"{host}: no SRV and no A/AAAA records")
        return [Target(chosen, a, DEFAULT_PORTS[chosen]) for a in addresses]


@dataclass(frozen=True)
class _Srv:
    priority: int
    weight: int
    port: int
    target: str


def _ipv6_text(payload) -> str:
    import socket

    return socket.inet_ntop(socket.AF_INET6, payload.address)


def system_resolver(reactor, resolv_conf: str = "/etc/resolv.conf",
                    hosts_file: str = "/etc/hosts"):
    """
    The usual resolver: /etc/hosts first, then the name servers listed in
    C{resolv_conf} (127.0.0.1 when none). The file is read once, so no
    timer is left running.

    @param reactor: provides L{IReactorUDP}/L{IReactorTCP}/L{IReactorTime}.
    @return: an L{IResolver}.
    """
    from twisted.names import client, hosts, resolve

    servers = []
    try:
        with open(resolv_conf) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    servers.append((parts[1], 53))
    except OSError:
        pass
    if not servers:
        servers = [("127.0.0.1", 53)]
    return resolve.ResolverChain(
        [hosts.Resolver(file=hosts_file), client.Resolver(servers=servers, reactor=reactor)]
    )
