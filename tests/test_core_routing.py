"""Tests for gwsms.core.routing: the pure routing table."""

import collections
import itertools

from twisted.trial import unittest

from gwsms.core.routing import MO, MT, Route, RoutingTable, normalise_prefix


def mt(prefix, smsc, priority=0, source_prefix="", id=None):
    return Route(id=id, direction=MT, prefix=prefix, source_prefix=source_prefix,
                 smsc=smsc, priority=priority)


def mo(prefix, sip_uri, smsc="", priority=0, source_prefix="", id=None):
    return Route(id=id, direction=MO, prefix=prefix, source_prefix=source_prefix,
                 smsc=smsc, sip_uri=sip_uri, priority=priority)


FIXED = itertools.repeat(0)


class RouteTests(unittest.SynchronousTestCase):
    def test_positional_fields_in_contract_order(self):
        r = Route(7, "mt", "49", "44", "smsc1", "", 3)
        self.assertEqual(
            (r.id, r.direction, r.prefix, r.source_prefix, r.smsc, r.sip_uri, r.priority),
            (7, "mt", "49", "44", "smsc1", "", 3),
        )

    def test_normalises_plus_and_direction(self):
        r = Route(direction=" MT ", prefix="+49", source_prefix="+1", smsc="a")
        self.assertEqual((r.direction, r.prefix, r.source_prefix), ("mt", "49", "1"))
        self.assertEqual(normalise_prefix("+4915"), "4915")
        self.assertEqual(normalise_prefix("ACME"), "ACME")

    def test_created_is_not_compared(self):
        self.assertEqual(mt("49", "a").replace(created=1.0), mt("49", "a"))

    def test_frozen(self):
        r = mt("49", "a")
        self.assertRaises(AttributeError, setattr, r, "smsc", "b")

    def test_alphanumeric_prefix_allowed(self):
        self.assertEqual(mt("", "a", source_prefix="ACME").source_prefix, "ACME")

    def assertProblem(self, needle, **kw):
        e = self.assertRaises(ValueError, Route, **kw)
        self.assertIn(needle, str(e))
        self.assertTrue(str(e).startswith("route: "), str(e))

    def test_validation_messages(self):
        self.assertProblem("direction must be 'mt' or 'mo', not 'sideways'",
                           direction="sideways", smsc="a")
        self.assertProblem("an mt route needs an smsc", prefix="49")
        self.assertProblem("an mt route takes no sip_uri", smsc="a", sip_uri="sip:x@h")
        self.assertProblem("an mo route needs a sip_uri", direction="mo")
        self.assertProblem("'http://h' is not a sip: or sips: URI", direction="mo",
                           sip_uri="http://h")
        self.assertProblem("is malformed", direction="mo", sip_uri="sip:a@")
        self.assertProblem("must not contain white space", direction="mo", sip_uri="sip:pbx ")
        self.assertProblem("must not contain white space", direction="mo", sip_uri=" sip:pbx")
        self.assertProblem("sip_uri longer than 255", direction="mo", sip_uri="sip:" + "h" * 252)
        self.assertProblem("prefix '49 1' may only hold digits and letters", prefix="49 1", smsc="a")
        self.assertProblem("source_prefix '4*' may only hold", source_prefix="4*", smsc="a")
        self.assertProblem("longer than 32 characters", prefix="1" * 33, smsc="a")
        self.assertProblem("smsc name longer than 64", smsc="s" * 65)
        self.assertProblem("priority must be an integer", smsc="a", priority="1")
        self.assertProblem("priority must be an integer", smsc="a", priority=True)
        self.assertProblem("priority 4294967296 out of range", smsc="a", priority=2**32)

    def test_all_problems_reported_at_once(self):
        e = self.assertRaises(ValueError, Route, direction="mt", prefix="x!", sip_uri="sip:a@b")
        self.assertIn("prefix 'x!'", str(e))
        self.assertIn("needs an smsc", str(e))
        self.assertIn("takes no sip_uri", str(e))

    def test_mo_uri_forms(self):
        for uri in ("sip:gw.example.com", "sips:bob@example.com:5061;transport=tls",
                    "SIP:[2001:db8::1]:5060", "sip:proxy.example.com;lr"):
            self.assertEqual(mo("", uri).sip_uri, uri)


class MtCandidatesTests(unittest.SynchronousTestCase):
    def test_no_routes(self):
        self.assertEqual(RoutingTable().mt_candidates("4915112345678"), [])
        self.assertEqual(len(RoutingTable()), 0)

    def test_no_match_without_default(self):
        table = RoutingTable([mt("49", "de")])
        self.assertEqual(table.mt_candidates("33612345678"), [])

    def test_default_route(self):
        table = RoutingTable([mt("", "any")])
        self.assertEqual(table.mt_candidates("33612345678"), ["any"])
        self.assertEqual(table.mt_candidates("ACME"), ["any"])
        self.assertEqual(table.mt_candidates(""), ["any"])

    def test_longest_prefix_first_then_failover_in_length_order(self):
        table = RoutingTable([
            mt("", "default"), mt("4", "europe"), mt("49", "de"), mt("4915", "de-mobile"),
            mt("49151", "telekom"), mt("33", "fr"),
        ], rotate=FIXED)
        self.assertEqual(table.mt_candidates("4915112345678"),
                         ["telekom", "de-mobile", "de", "europe", "default"])
        self.assertEqual(table.mt_candidates("4930123456"), ["de", "europe", "default"])
        self.assertEqual(table.mt_candidates("33612345678"), ["fr", "default"])
        self.assertEqual(table.mt_candidates("1555"), ["default"])

    def test_no_fallback_gives_longest_match_only(self):
        table = RoutingTable([mt("", "default"), mt("49", "de"), mt("49", "de2", priority=5)],
                             rotate=FIXED)
        self.assertEqual(table.mt_candidates("4930", fallback=False), ["de", "de2"])
        self.assertEqual(table.mt_candidates("3330", fallback=False), ["default"])

    def test_no_fallback_skips_prefix_whose_routes_all_need_another_source(self):
        table = RoutingTable([mt("", "default"), mt("49", "de", source_prefix="44")])
        self.assertEqual(table.mt_candidates("4930", source="33", fallback=False), ["default"])
        self.assertEqual(table.mt_candidates("4930", source="4477", fallback=False), ["de"])

    def test_plus_on_destination_and_source_ignored(self):
        table = RoutingTable([mt("49", "de", source_prefix="44"), mt("49", "x")], rotate=FIXED)
        self.assertEqual(table.mt_candidates("+4930", "+4477"), ["de", "x"])

    def test_duplicates_removed_keeping_best_position(self):
        table = RoutingTable([mt("49", "a"), mt("49", "a", priority=3), mt("", "a"),
                              mt("", "b")], rotate=FIXED)
        self.assertEqual(table.mt_candidates("4930"), ["a", "b"])

    def test_source_prefix_specific_first_and_filtering(self):
        table = RoutingTable([
            mt("49", "generic"), mt("49", "from-uk", source_prefix="44"),
            mt("49", "from-uk-mobile", source_prefix="447"),
            mt("49", "from-fr", source_prefix="33"),
            mt("49", "brand", source_prefix="ACME"),
        ], rotate=FIXED)
        self.assertEqual(table.mt_candidates("4930", "447700900123"),
                         ["from-uk-mobile", "from-uk", "generic"])
        self.assertEqual(table.mt_candidates("4930", "441632960000"), ["from-uk", "generic"])
        self.assertEqual(table.mt_candidates("4930", "ACME"), ["brand", "generic"])
        self.assertEqual(table.mt_candidates("4930", "acme"), ["generic"])  # case-sensitive
        self.assertEqual(table.mt_candidates("4930"), ["generic"])

    def test_source_prefix_beats_priority_within_a_prefix(self):
        table = RoutingTable([mt("49", "cheap", priority=0),
                              mt("49", "uk", source_prefix="44", priority=9)], rotate=FIXED)
        self.assertEqual(table.mt_candidates("4930", "4477"), ["uk", "cheap"])

    def test_longer_destination_beats_source_prefix(self):
        table = RoutingTable([mt("4", "eu-uk", source_prefix="44"), mt("49", "de")], rotate=FIXED)
        self.assertEqual(table.mt_candidates("4930", "4477"), ["de", "eu-uk"])

    def test_priority_groups_ascending(self):
        table = RoutingTable([
            mt("49", "backup", priority=10), mt("49", "primary", priority=0),
            mt("49", "negative", priority=-5), mt("49", "last", priority=99),
        ])
        self.assertEqual(table.mt_candidates("4930"), ["negative", "primary", "backup", "last"])

    def test_round_robin_within_a_priority_group(self):
        table = RoutingTable([
            mt("49", "a", id=1), mt("49", "b", id=2), mt("49", "c", id=3),
            mt("49", "backup", priority=1, id=4), mt("", "default", id=5),
        ])
        firsts = collections.Counter()
        for _ in range(300):
            got = table.mt_candidates("4930")
            self.assertEqual(sorted(got[:3]), ["a", "b", "c"])
            self.assertEqual(got[3:], ["backup", "default"])  # never rotated into the group
            firsts[got[0]] += 1
        self.assertEqual(firsts, {"a": 100, "b": 100, "c": 100})

    def test_round_robin_is_a_rotation(self):
        table = RoutingTable([mt("49", n) for n in "abc"])
        seen = [table.mt_candidates("49") for _ in range(4)]
        self.assertEqual(seen, [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]])

    def test_round_robin_even_when_lookups_interleave(self):
        """Two prefixes looked up alternately still spread over each group."""
        table = RoutingTable([mt("49", "de1"), mt("49", "de2"), mt("33", "fr1"), mt("33", "fr2")])
        de, fr = collections.Counter(), collections.Counter()
        for _ in range(100):
            de[table.mt_candidates("4930")[0]] += 1
            fr[table.mt_candidates("3312")[0]] += 1
        self.assertEqual(de, {"de1": 50, "de2": 50})
        self.assertEqual(fr, {"fr1": 50, "fr2": 50})

    def test_explicit_rotate_iterator(self):
        table = RoutingTable([mt("49", "a"), mt("49", "b"), mt("", "x"), mt("", "y")],
                             rotate=itertools.count())
        self.assertEqual(table.mt_candidates("49"), ["a", "b", "x", "y"])
        self.assertEqual(table.mt_candidates("49"), ["b", "a", "y", "x"])
        fixed = RoutingTable([mt("49", "a"), mt("49", "b")], rotate=FIXED)
        self.assertEqual({tuple(fixed.mt_candidates("49")) for _ in range(10)}, {("a", "b")})

    def test_mo_routes_ignored_for_mt(self):
        table = RoutingTable([mo("", "sip:x@h"), mt("1", "us")])
        self.assertEqual(table.mt_candidates("4930"), [])
        self.assertEqual(table.mt_candidates("1555"), ["us"])

    def test_alphanumeric_destination(self):
        table = RoutingTable([mt("SHORT", "alpha"), mt("", "d")], rotate=FIXED)
        self.assertEqual(table.mt_candidates("SHORTCODE"), ["alpha", "d"])

    def test_routes_property(self):
        routes = [mt("49", "a"), mo("", "sip:h")]
        table = RoutingTable(routes)
        self.assertEqual(table.routes, tuple(routes))
        self.assertEqual(len(table), 2)
        self.assertEqual(repr(table), "<RoutingTable 1 mt, 1 mo>")

    def test_many_prefixes_lookup(self):
        """A table with thousands of prefixes answers by longest match."""
        routes = [mt(str(p), f"s{p}") for p in range(1000, 4000)] + [mt("", "default")]
        table = RoutingTable(routes, rotate=FIXED)
        self.assertEqual(table.mt_candidates("3999123"), ["s3999", "default"])
        self.assertEqual(table.mt_candidates("999"), ["default"])


class MoTargetTests(unittest.SynchronousTestCase):
    def test_none_without_routes(self):
        self.assertIsNone(RoutingTable().mo_target("4930", "4477", "s1"))
        self.assertEqual(RoutingTable().mo_candidates("4930", "4477", "s1"), [])

    def test_mt_routes_ignored(self):
        self.assertIsNone(RoutingTable([mt("", "s1")]).mo_target("4930", "", "s1"))

    def test_default(self):
        table = RoutingTable([mo("", "sip:proxy.example.com")])
        self.assertEqual(table.mo_target("4930", "4477", "s1"), "sip:proxy.example.com")

    def test_longest_destination_prefix(self):
        table = RoutingTable([mo("", "sip:default"), mo("49", "sip:de"), mo("4930", "sip:berlin")])
        self.assertEqual(table.mo_target("4930123", "", "s1"), "sip:berlin")
        self.assertEqual(table.mo_target("+4940123", "", "s1"), "sip:de")
        self.assertEqual(table.mo_target("3312", "", "s1"), "sip:default")

    def test_by_smsc(self):
        table = RoutingTable([
            mo("", "sip:any"), mo("", "sip:from-s1", smsc="s1"), mo("", "sip:from-s2", smsc="s2"),
        ])
        self.assertEqual(table.mo_target("4930", "", "s1"), "sip:from-s1")
        self.assertEqual(table.mo_target("4930", "", "s2"), "sip:from-s2")
        self.assertEqual(table.mo_target("4930", "", "s3"), "sip:any")

    def test_smsc_restricted_route_never_used_for_other_smsc(self):
        table = RoutingTable([mo("49", "sip:s1only", smsc="s1")])
        self.assertEqual(table.mo_target("4930", "", "s1"), "sip:s1only")
        self.assertIsNone(table.mo_target("4930", "", "s2"))

    def test_prefix_beats_smsc(self):
        table = RoutingTable([mo("", "sip:s1", smsc="s1"), mo("49", "sip:de")])
        self.assertEqual(table.mo_target("4930", "", "s1"), "sip:de")
        self.assertEqual(table.mo_target("3312", "", "s1"), "sip:s1")

    def test_source_prefix_then_smsc_then_priority_then_id(self):
        table = RoutingTable([
            mo("49", "sip:low-prio", priority=5, id=1),
            mo("49", "sip:any-smsc", id=2),
            mo("49", "sip:s1", smsc="s1", priority=7, id=3),
            mo("49", "sip:uk", source_prefix="44", priority=9, id=4),
            mo("49", "sip:tie-later", id=9),
        ])
        self.assertEqual(table.mo_target("4930", "4477", "s1"), "sip:uk")
        self.assertEqual(table.mo_target("4930", "3312", "s1"), "sip:s1")
        self.assertEqual(table.mo_target("4930", "3312", "s2"), "sip:any-smsc")
        self.assertEqual(table.mo_candidates("4930", "3312", "s2"),
                         ["sip:any-smsc", "sip:tie-later", "sip:low-prio"])

    def test_candidates_fall_back_to_shorter_prefixes(self):
        table = RoutingTable([mo("", "sip:default"), mo("49", "sip:de"), mo("", "sip:de", smsc="s1")])
        self.assertEqual(table.mo_candidates("4930", "", "s1"), ["sip:de", "sip:default"])


class PropertyTests(unittest.SynchronousTestCase):
    """Random tables checked against a brute-force reading of the rules."""

    def test_candidates_agree_with_brute_force(self):
        from hypothesis import given, settings
        from hypothesis import strategies as st

        digits = st.text(alphabet="123", max_size=4)
        route = st.builds(mt, prefix=digits, smsc=st.sampled_from("abcdef"),
                          priority=st.integers(0, 2), source_prefix=st.text(alphabet="12", max_size=2))

        @settings(max_examples=200, deadline=None)
        @given(st.lists(route, max_size=12), digits, st.text(alphabet="12", max_size=3))
        def check(routes, destination, source):
            got = RoutingTable(routes).mt_candidates(destination, source)
            matching = [r for r in routes
                        if destination.startswith(r.prefix) and source.startswith(r.source_prefix)]
            self.assertEqual(len(got), len(set(got)))
            self.assertEqual(set(got), {r.smsc for r in matching})
            if matching:
                best = max(len(r.prefix) for r in matching)
                top = [r for r in matching if len(r.prefix) == best]
                best_sp = max(len(r.source_prefix) for r in top)
                top = [r for r in top if len(r.source_prefix) == best_sp]
                best_prio = min(r.priority for r in top)
                self.assertIn(got[0], {r.smsc for r in top if r.priority == best_prio})
                # the order never puts a shorter prefix's only-route before a longer one's
                rank = {}
                for r in matching:
                    key = (-len(r.prefix), -len(r.source_prefix), r.priority)
                    rank[r.smsc] = min(rank.get(r.smsc, key), key)
                self.assertEqual([rank[n] for n in got], sorted(rank[n] for n in got))

        check()


class RegisteredDeliveryTests(unittest.SynchronousTestCase):
    def rd(self, prefix, smsc, rd, **kw):
        return mt(prefix, smsc, **kw).replace(registered_delivery=rd)

    def test_validation(self):
        self.assertIsNone(mt("1", "a").registered_delivery)
        for good in (0, 1, 2, 31):
            self.assertEqual(self.rd("1", "a", good).registered_delivery, good)
        for bad in (-1, 32, True, "1", 1.0):
            e = self.assertRaises(ValueError, self.rd, "1", "a", bad)
            self.assertIn("registered_delivery", str(e))
        e = self.assertRaises(ValueError, Route, direction=MO, sip_uri="sip:h",
                              registered_delivery=1)
        self.assertIn("an mo route takes no registered_delivery", str(e))

    def test_mt_route_is_the_route_behind_a_candidate(self):
        table = RoutingTable([
            self.rd("", "a", 0, id=1),
            self.rd("49", "a", 1, id=2),
            self.rd("49", "b", 2, id=3, priority=5),
            self.rd("49", "a", 3, id=4, source_prefix="44"),
            mt("4930", "c", id=5),
        ], rotate=FIXED)
        self.assertTrue(table.has_registered_delivery)
        self.assertEqual(table.mt_candidates("4930123"), ["c", "a", "b"])
        self.assertEqual(table.mt_route("4930123", "", "c").id, 5)
        self.assertEqual(table.mt_route("4930123", "", "a").id, 2)  # longest prefix naming a
        self.assertEqual(table.mt_route("4930123", "", "b").registered_delivery, 2)
        self.assertEqual(table.mt_route("+49123", "+449", "a").id, 4)  # source prefix first
        self.assertEqual(table.mt_route("33123", "", "a").id, 1)
        self.assertIsNone(table.mt_route("33123", "", "b"))
        self.assertIsNone(table.mt_route("4930123", "", "nope"))

    def test_mt_route_does_not_rotate(self):
        table = RoutingTable([mt("", "a"), mt("", "b")])
        self.assertEqual(table.mt_candidates("1"), ["a", "b"])
        for _ in range(3):
            table.mt_route("1", "", "b")
        self.assertEqual(table.mt_candidates("1"), ["b", "a"])

    def test_has_registered_delivery(self):
        self.assertFalse(RoutingTable([mt("", "a"), mo("", "sip:h")]).has_registered_delivery)
        self.assertTrue(RoutingTable([self.rd("", "a", 0)]).has_registered_delivery)
