"""
Tests for L{gwsms.sip.resolver} with a fake IResolver and a Clock.
"""

from __future__ import annotations

import random

from twisted.internet import defer, task
from twisted.names import dns, error
from twisted.trial.unittest import SynchronousTestCase

from gwsms.sip.resolver import ResolveError, SipResolver, Target, is_ip, system_resolver


class FakeResolver:
    """
    Answers from dicts; records every query.
    """

    def __init__(self):
        self.srv = {}
        self.a = {}
        self.aaaa = {}
        self.queries = []
        self.fail_with = None

    def _answer(self, table, name, make):
        self.queries.append(name)
        if self.fail_with is not None:
            return defer.fail(self.fail_with)
        if name not in table:
            return defer.fail(error.DNSNameError(name))
        ttl, values = table[name]
        return defer.succeed(([dns.RRHeader(name, make(v).TYPE, ttl=ttl, payload=make(v)) for v in values], [], []))

    def lookupService(self, name, timeout=None):
        return self._answer(self.srv, name, lambda v: dns.Record_SRV(*v))

    def lookupAddress(self, name, timeout=None):
        return self._answer(self.a, name, lambda v: dns.Record_A(v))

    def lookupIPV6Address(self, name, timeout=None):
        return self._answer(self.aaaa, name, lambda v: dns.Record_AAAA(v))


class ResolverTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.dns = FakeResolver()
        self.resolver = SipResolver(self.clock, self.dns, rng=random.Random(1))

    def resolve(self, *args, **kw):
        return self.successResultOf(self.resolver.resolve(*args, **kw))

    def test_numeric_ip(self):
        self.assertEqual(self.resolve("sip", "192.0.2.1"), [Target("udp", "192.0.2.1", 5060)])
        self.assertEqual(self.resolve("sip", "[2001:db8::1]", 5070, "tcp"), [Target("tcp", "2001:db8::1", 5070)])
        self.assertEqual(self.resolve("sips", "192.0.2.1"), [Target("tls", "192.0.2.1", 5061)])
        self.assertEqual(self.dns.queries, [])

    def test_localhost_without_query(self):
        self.assertEqual(self.resolve("sip", "localhost", 5062), [Target("udp", "127.0.0.1", 5062)])
        self.assertEqual(self.dns.queries, [])

    def test_explicit_port_a_only(self):
        self.dns.a["pbx.example"] = (60, ["192.0.2.5"])
        self.dns.srv["_sip._udp.pbx.example"] = (60, [(0, 0, 9999, "other.example")])
        self.assertEqual(self.resolve("sip", "pbx.example", 5080), [Target("udp", "192.0.2.5", 5080)])
        self.assertNotIn("_sip._udp.pbx.example", self.dns.queries)

    def test_srv_then_a(self):
        self.dns.srv["_sip._udp.example.org"] = (
            300,
            [(20, 0, 5070, "backup.example.org"), (10, 0, 5060, "main.example.org")],
        )
        self.dns.a["main.example.org"] = (60, ["192.0.2.10"])
        self.dns.a["backup.example.org"] = (60, ["192.0.2.20"])
        self.dns.aaaa["backup.example.org"] = (60, ["2001:db8::20"])
        self.assertEqual(
            self.resolve("sip", "example.org"),
            [
                Target("udp", "192.0.2.10", 5060),
                Target("udp", "192.0.2.20", 5070),
                Target("udp", "2001:db8::20", 5070),
            ],
        )

    def test_srv_tcp_when_no_udp(self):
        self.dns.srv["_sip._tcp.example.org"] = (300, [(10, 0, 5080, "t.example.org")])
        self.dns.a["t.example.org"] = (60, ["192.0.2.11"])
        self.assertEqual(self.resolve("sip", "example.org"), [Target("tcp", "192.0.2.11", 5080)])
        self.assertEqual(self.dns.queries[:2], ["_sip._udp.example.org", "_sip._tcp.example.org"])

    def test_sips_uses_sips_srv(self):
        self.dns.srv["_sip._udp.example.org"] = (300, [(10, 0, 5060, "u.example.org")])
        self.dns.srv["_sips._tcp.example.org"] = (300, [(10, 0, 5071, "s.example.org")])
        self.dns.a["s.example.org"] = (60, ["192.0.2.12"])
        self.assertEqual(self.resolve("sips", "example.org"), [Target("tls", "192.0.2.12", 5071)])
        self.assertNotIn("_sip._udp.example.org", self.dns.queries)

    def test_transport_param_restricts_srv(self):
        self.dns.srv["_sip._udp.example.org"] = (300, [(10, 0, 5060, "u.example.org")])
        self.dns.a["example.org"] = (60, ["192.0.2.13"])
        self.assertEqual(self.resolve("sip", "example.org", None, "tcp"), [Target("tcp", "192.0.2.13", 5060)])
        self.assertNotIn("_sip._udp.example.org", self.dns.queries)

    def test_fallback_a_default_port(self):
        self.dns.a["plain.example"] = (60, ["192.0.2.14"])
        self.assertEqual(self.resolve("sip", "plain.example"), [Target("udp", "192.0.2.14", 5060)])
        self.assertEqual(self.resolve("sips", "plain.example"), [Target("tls", "192.0.2.14", 5061)])

    def test_srv_dot_target_means_none(self):
        self.dns.srv["_sip._udp.example.org"] = (300, [(0, 0, 0, "")])
        self.dns.a["example.org"] = (60, ["192.0.2.15"])
        self.assertEqual(self.resolve("sip", "example.org"), [Target("udp", "192.0.2.15", 5060)])

    def test_unknown_host(self):
        f = self.failureResultOf(self.resolver.resolve("sip", "nowhere.invalid"), ResolveError)
        self.assertIn("nowhere.invalid", str(f.value))

    def test_dns_timeout_becomes_resolve_error(self):
        self.dns.fail_with = error.DNSQueryTimeoutError("x")
        f = self.failureResultOf(self.resolver.resolve("sip", "slow.example", 5060), ResolveError)
        self.assertIn("slow.example", str(f.value))

    def test_bad_transport(self):
        self.failureResultOf(self.resolver.resolve("sip", "192.0.2.1", None, "sctp"), ResolveError)
        self.failureResultOf(self.resolver.resolve("sips", "192.0.2.1", None, "udp"), ResolveError)

    def test_cache_honours_ttl(self):
        self.dns.a["c.example"] = (60, ["192.0.2.16"])
        self.resolve("sip", "c.example", 5060)
        count = len(self.dns.queries)
        self.dns.a["c.example"] = (60, ["192.0.2.17"])
        self.clock.advance(59)
        self.assertEqual(self.resolve("sip", "c.example", 5060)[0].host, "192.0.2.16")
        self.assertEqual(len(self.dns.queries), count)
        self.clock.advance(2)
        self.assertEqual(self.resolve("sip", "c.example", 5060)[0].host, "192.0.2.17")
        self.assertGreater(len(self.dns.queries), count)

    def test_negative_cache(self):
        self.failureResultOf(self.resolver.resolve("sip", "n.example", 5060), ResolveError)
        count = len(self.dns.queries)
        self.failureResultOf(self.resolver.resolve("sip", "n.example", 5060), ResolveError)
        self.assertEqual(len(self.dns.queries), count)
        self.clock.advance(31)
        self.dns.a["n.example"] = (60, ["192.0.2.18"])
        self.assertEqual(self.resolve("sip", "n.example", 5060)[0].host, "192.0.2.18")

    def test_cache_bounded(self):
        resolver = SipResolver(self.clock, self.dns, max_cache=3)
        for i in range(10):
            self.dns.a[f"h{i}.example"] = (600, [f"192.0.2.{i}"])
            self.successResultOf(resolver.resolve("sip", f"h{i}.example", 5060))
        self.assertLessEqual(len(resolver._cache), 3)

    def test_weighted_srv_same_priority(self):
        self.dns.srv["_sip._udp.w.example"] = (300, [(10, 90, 5060, "a.w.example"), (10, 10, 5060, "b.w.example")])
        self.dns.a["a.w.example"] = (60, ["192.0.2.1"])
        self.dns.a["b.w.example"] = (60, ["192.0.2.2"])
        firsts = []
        for seed in range(50):
            r = SipResolver(self.clock, self.dns, rng=random.Random(seed))
            targets = self.successResultOf(r.resolve("sip", "w.example"))
            self.assertEqual(sorted(t.host for t in targets), ["192.0.2.1", "192.0.2.2"])
            firsts.append(targets[0].host)
        self.assertGreater(firsts.count("192.0.2.1"), firsts.count("192.0.2.2"))

    def test_resolve_uri_object(self):
        class URI:
            scheme = "sip"
            host = "192.0.2.30"
            port = None
            params = {"transport": "TCP"}

        targets = self.successResultOf(self.resolver.resolve_uri(URI()))
        self.assertEqual(targets, [Target("tcp", "192.0.2.30", 5060)])


class HelperTests(SynchronousTestCase):
    def test_is_ip(self):
        self.assertTrue(is_ip("127.0.0.1"))
        self.assertTrue(is_ip("[::1]"))
        self.assertFalse(is_ip("example.org"))

    def test_system_resolver_reads_files(self):
        conf = self.mktemp()
        with open(conf, "w") as f:
            f.write("# comment\nnameserver 192.0.2.53\n")
        hosts_file = self.mktemp()
        with open(hosts_file, "w") as f:
            f.write("192.0.2.99 sipgw.test\n")
        from twisted.internet.testing import MemoryReactorClock

        reactor = MemoryReactorClock()
        chain = system_resolver(reactor, conf, hosts_file)
        self.assertEqual(chain.resolvers[1].servers, [("192.0.2.53", 53)])
        result = self.successResultOf(chain.lookupAddress("sipgw.test"))
        self.assertEqual(result[0][0].payload.dottedQuad(), "192.0.2.99")
        self.assertEqual(reactor.getDelayedCalls(), [])
