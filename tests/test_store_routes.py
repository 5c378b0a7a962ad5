"""Tests for gwsms.store.routes on every back-end."""

from twisted.internet import defer, task
from twisted.trial import unittest

from gwsms.core.routing import Route, RoutingTable
from gwsms.store.routes import COLUMNS, DuplicateRoute, RouteStore, describe, row_to_route
from tests.mysql_helpers import backend_tests


class RouteStoreTestsMixin:
    def setUp(self):
        d = super().setUp()
        self.clock = task.Clock()
        self.clock.advance(1_700_000_000.5)
        self.store = RouteStore(self.db, clock=self.clock)
        return d

    @defer.inlineCallbacks
    def test_add_get_roundtrip(self):
        route = Route(direction="mt", prefix="+4915", source_prefix="44", smsc="de-mobile",
                      priority=-3)
        added = yield self.store.add(route)
        self.assertIsInstance(added.id, int)
        self.assertEqual(added.created, 1_700_000_000.5)
        self.assertEqual(added.replace(id=None), route)
        self.assertEqual(added.prefix, "4915")
        got = yield self.store.get(added.id)
        self.assertEqual(got, added)
        self.assertEqual(got.created, 1_700_000_000.5)
        self.assertIsNone((yield self.store.get(added.id + 1000)))

    @defer.inlineCallbacks
    def test_add_mo_roundtrip(self):
        route = Route(direction="mo", prefix="", smsc="s1", sip_uri="sips:pbx.example.com:5061;transport=tls")
        added = yield self.store.add(route)
        self.assertEqual((yield self.store.get(added.id)), added)
        self.assertEqual((yield self.store.list("mo")), [added])
        self.assertEqual((yield self.store.list("mt")), [])

    @defer.inlineCallbacks
    def test_ids_increase_and_add_ignores_given_id(self):
        a = yield self.store.add(Route(id=99, smsc="a"))
        b = yield self.store.add(Route(smsc="b"))
        self.assertNotEqual(a.id, 99)
        self.assertGreater(b.id, a.id)

    @defer.inlineCallbacks
    def test_list_order_and_filter(self):
        added = []
        for route in (
            Route(direction="mo", prefix="49", sip_uri="sip:de.example.com"),
            Route(prefix="49", smsc="b", priority=5),
            Route(prefix="", smsc="default"),
            Route(prefix="49", smsc="a", priority=1),
            Route(prefix="49", source_prefix="44", smsc="uk"),
            Route(direction="mo", prefix="", sip_uri="sip:proxy.example.com"),
        ):
            added.append((yield self.store.add(route)))
        everything = yield self.store.list()
        self.assertEqual(
            [(r.direction, r.prefix, r.source_prefix, r.smsc or r.sip_uri) for r in everything],
            [("mo", "", "", "sip:proxy.example.com"), ("mo", "49", "", "sip:de.example.com"),
             ("mt", "", "", "default"), ("mt", "49", "", "a"), ("mt", "49", "", "b"),
             ("mt", "49", "44", "uk")],
        )
        self.assertEqual(sorted(r.id for r in everything), sorted(r.id for r in added))
        mt = yield self.store.list("mt")
        self.assertEqual([r.smsc for r in mt], ["default", "a", "b", "uk"])
        e = yield self.assertFailure(self.store.list("sideways"), ValueError)
        self.assertIn("direction must be 'mt' or 'mo'", str(e))

    @defer.inlineCallbacks
    def test_load_table(self):
        yield self.store.add(Route(prefix="49", smsc="de"))
        yield self.store.add(Route(prefix="", smsc="default"))
        yield self.store.add(Route(direction="mo", prefix="49", sip_uri="sip:pbx"))
        table = yield self.store.load_table()
        self.assertIsInstance(table, RoutingTable)
        self.assertEqual(table.mt_candidates("4930"), ["de", "default"])
        self.assertEqual(table.mo_target("4930", "", "de"), "sip:pbx")

    @defer.inlineCallbacks
    def test_duplicate_refused_with_existing_id(self):
        first = yield self.store.add(Route(prefix="49", smsc="de"))
        e = yield self.assertFailure(self.store.add(Route(prefix="+49", smsc="de", priority=7)),
                                     DuplicateRoute)
        self.assertEqual(e.existing_id, first.id)
        self.assertEqual(str(e), f"mt route 49* -> smsc 'de' already exists (id {first.id})")
        # differing in any key column is a different route
        yield self.store.add(Route(prefix="49", smsc="de", source_prefix="4"))
        yield self.store.add(Route(prefix="49", smsc="de2"))
        yield self.store.add(Route(direction="mo", prefix="49", smsc="de", sip_uri="sip:x"))
        self.assertEqual(len((yield self.store.list())), 4)

    @defer.inlineCallbacks
    def test_remove(self):
        route = yield self.store.add(Route(smsc="a"))
        self.assertTrue((yield self.store.remove(route.id)))
        self.assertFalse((yield self.store.remove(route.id)))
        self.assertEqual((yield self.store.list()), [])

    @defer.inlineCallbacks
    def test_add_refuses_non_route(self):
        yield self.assertFailure(self.store.add({"smsc": "a"}), ValueError)

    @defer.inlineCallbacks
    def test_invalid_rows_reported_and_skipped(self):
        yield self.store.add(Route(prefix="1", smsc="ok"))
        yield self.db.run_operation(
            "INSERT INTO routes (direction, prefix, smsc, sip_uri, priority, created)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            ("mt", "49", "", "", 0, 0.0),
        )
        routes, problems = yield self.store.list_with_problems()
        self.assertEqual([r.smsc for r in routes], ["ok"])
        self.assertEqual(len(problems), 1)
        self.assertIn("an mt route needs an smsc", problems[0])
        from twisted.logger import capturedLogs

        with capturedLogs() as events:
            routes = yield self.store.list()
        self.assertEqual([r.smsc for r in routes], ["ok"])
        self.assertEqual([e.get("problem", "")[:15] for e in events
                          if e["log_format"].startswith("ignoring invalid route")],
                         ["routes row id=2"])
        bad_id = (yield self.db.run_query("SELECT id FROM routes WHERE smsc = ''"))[0][0]
        yield self.assertFailure(self.store.get(bad_id), ValueError)

    @defer.inlineCallbacks
    def test_registered_delivery_roundtrip(self):
        """Schema 6: None is stored as -1 (the [gateway] setting), 0-31 as is."""
        plain = yield self.store.add(Route(prefix="1", smsc="a"))
        values = []
        for n, rd in enumerate((0, 1, 2, 31)):
            added = yield self.store.add(Route(prefix=f"2{n}", smsc="a", registered_delivery=rd))
            values.append((yield self.store.get(added.id)).registered_delivery)
        self.assertEqual(values, [0, 1, 2, 31])
        self.assertIsNone((yield self.store.get(plain.id)).registered_delivery)
        rows = yield self.db.run_query("SELECT registered_delivery FROM routes WHERE id = ?",
                                       (plain.id,))
        self.assertEqual(int(rows[0][0]), -1)
        # a row written without the column (older tools) reads as None
        yield self.db.run_operation(
            "INSERT INTO routes (direction, prefix, smsc, sip_uri, priority, created)"
            " VALUES (?, ?, ?, ?, ?, ?)", ("mt", "9", "b", "", 0, 0.0))
        [old] = [r for r in (yield self.store.list()) if r.prefix == "9"]
        self.assertIsNone(old.registered_delivery)
        table = yield self.store.load_table()
        self.assertTrue(table.has_registered_delivery)
        self.assertEqual(table.mt_route("2112345", "", "a").registered_delivery, 1)

    @defer.inlineCallbacks
    def test_unicode_smsc_name_roundtrip(self):
        route = yield self.store.add(Route(smsc="smsc-münchen"))
        self.assertEqual((yield self.store.get(route.id)).smsc, "smsc-münchen")


backend_tests(globals(), RouteStoreTestsMixin)


class HelperTests(unittest.SynchronousTestCase):
    def test_row_to_route_fills_nulls(self):
        row = (3, "mo", None, None, None, "sip:h", "2", None, None)
        self.assertEqual(row_to_route(row), Route(3, "mo", "", "", "", "sip:h", 2))
        self.assertEqual(len(COLUMNS), len(row))

    def test_describe(self):
        self.assertEqual(describe(Route(prefix="", smsc="d")), "mt route * -> smsc 'd'")
        self.assertEqual(
            describe(Route(direction="mo", prefix="49", source_prefix="44", smsc="s1",
                           sip_uri="sip:pbx")),
            "mo route 49* from 44* via smsc 's1' -> sip:pbx",
        )


class LiveRoutingTableTests(unittest.TestCase):
    def setUp(self):
        from gwsms.store.database import open_database_sync
        from gwsms.store import migrate

        self.db = open_database_sync("sqlite::memory:")
        self.addCleanup(self.db.close)
        self.successResultOf(migrate.upgrade(self.db))
        self.store = RouteStore(self.db)

    def test_reload_swaps_table_and_counts(self):
        from gwsms.store.routes import LiveRoutingTable

        live = LiveRoutingTable(self.store, rotate=iter(lambda: 0, 1))
        self.assertEqual(live.table.mt_candidates("4930"), [])
        self.successResultOf(self.store.add(Route(prefix="49", smsc="de")))
        self.successResultOf(self.store.add(Route(direction="mo", prefix="", sip_uri="sip:pbx")))
        self.successResultOf(self.db.run_operation(
            "INSERT INTO routes (direction, prefix, smsc, sip_uri, priority, created)"
            " VALUES ('mt', '', '', '', 0, 0)"))
        old = live.table
        from twisted.logger import LogLevel, capturedLogs

        with capturedLogs() as events:
            summary = self.successResultOf(live.reload())
        self.assertEqual(summary, {"mt": 1, "mo": 1, "invalid": 1})
        errors = [e for e in events if e["log_level"] == LogLevel.error]
        self.assertEqual(len(errors), 1)
        self.assertIn("an mt route needs an smsc", errors[0]["problem"])
        self.assertIsNot(live.table, old)
        self.assertEqual(live.table.mt_candidates("4930"), ["de"])
        self.assertEqual(live.table.mo_target("4930", "", "de"), "sip:pbx")

    def test_failed_reload_keeps_table(self):
        from gwsms.store.routes import LiveRoutingTable

        live = LiveRoutingTable(self.store)
        self.successResultOf(self.store.add(Route(prefix="49", smsc="de")))
        self.successResultOf(live.reload())
        table = live.table
        self.db.close()
        self.failureResultOf(live.reload(), RuntimeError)
        self.assertIs(live.table, table)
        self.assertEqual(table.mt_candidates("49"), ["de"])
