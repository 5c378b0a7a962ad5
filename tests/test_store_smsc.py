"""Tests for gwsms.store.smsc on every back-end."""

from twisted.internet import defer
from twisted.trial import unittest

from gwsms.smpp.link import COLUMNS, SessionType, SmscLink
from gwsms.store.smsc import DuplicateName, SmscStore, UnknownName, link_to_params, row_to_link
from tests.mysql_helpers import backend_tests


def make_link(name="smsc1", **kw):
    kw.setdefault("ip", "127.0.0.1")
    kw.setdefault("port", 2775)
    kw.setdefault("system_id", "gwsms")
    kw.setdefault("password", "secret")
    return SmscLink(name=name, **kw)


class SmscStoreTestsMixin:
    def setUp(self):
        d = super().setUp()
        self.store = SmscStore(self.db)
        return d

    @defer.inlineCallbacks
    def test_add_get_roundtrip_every_column(self):
        link = make_link(
            system_type="VMA", src_ton=5, src_npi=0, dst_ton=1, dst_npi=1,
            session_type=SessionType.TRANSMITTER, enabled=False, tls=True,
            tls_verify=False, window=3, max_rate=12.5, enquire_link_interval=15.0,
            session_init_timeout=5.5, response_timeout=20.0, inactivity_timeout=300.0,
            default_data_coding=3, dc0_charset="latin1", address_range="^1234",
            interface_version=0x50, coding="latin1", concat="sar", max_parts=4,
        )
        added = yield self.store.add(link)
        self.assertIsInstance(added.id, int)
        self.assertEqual(added.replace(id=None), link)
        got = yield self.store.get("smsc1")
        self.assertEqual(got, added)
        self.assertIs(got.session_type, SessionType.TRANSMITTER)
        self.assertIs(got.tls, True)
        self.assertEqual(got.password, "secret")

    @defer.inlineCallbacks
    def test_defaults_match_smsclink(self):
        """A row copied from OpenSIPS (only its columns) gets SmscLink's defaults."""
        yield self.db.run_operation(
            "INSERT INTO smpp (name, ip, port, system_id, password, system_type, src_ton,"
            " src_npi, dst_ton, dst_npi, session_type) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            ("os", "10.0.0.1", 2775, "sys", "pw", "", 1, 1, 1, 1, 2),
        )
        got = yield self.store.get("os")
        expected = SmscLink("os", "10.0.0.1", 2775, "sys", password="pw", src_ton=1,
                            src_npi=1, dst_ton=1, dst_npi=1, session_type=2)
        self.assertEqual(got.replace(id=None), expected)

    @defer.inlineCallbacks
    def test_message_options_update_and_defaults(self):
        """Schema 4 columns: defaults for old rows, updates, every value."""
        yield self.store.add(make_link())
        got = yield self.store.get("smsc1")
        self.assertEqual((got.coding, got.concat, got.max_parts), ("auto", "", 0))
        for coding, concat, parts in (("ucs2", "payload", 255), ("latin1", "udh16", 1),
                                      ("auto", "", 0)):
            new = yield self.store.update("smsc1", coding=coding, concat=concat,
                                          max_parts=parts)
            got = yield self.store.get("smsc1")
            self.assertEqual(got, new)
            self.assertEqual((got.coding, got.concat, got.max_parts), (coding, concat, parts))
        e = yield self.assertFailure(self.store.update("smsc1", coding="bogus"), ValueError)
        self.assertIn("coding 'bogus'", str(e))
        e = yield self.assertFailure(self.store.update("smsc1", max_parts=300), ValueError)
        self.assertIn("max_parts 300", str(e))

    @defer.inlineCallbacks
    def test_duplicate_name(self):
        yield self.store.add(make_link())
        e = yield self.assertFailure(self.store.add(make_link(port=9999)), DuplicateName)
        self.assertEqual(str(e), "smsc 'smsc1' already exists")
        links = yield self.store.list()
        self.assertEqual([link.port for link in links], [2775])

    @defer.inlineCallbacks
    def test_list_sorted(self):
        for name in ("b", "c", "a"):
            yield self.store.add(make_link(name))
        links = yield self.store.list()
        self.assertEqual([link.name for link in links], ["a", "b", "c"])

    @defer.inlineCallbacks
    def test_get_missing(self):
        self.assertIsNone((yield self.store.get("nope")))

    @defer.inlineCallbacks
    def test_update(self):
        yield self.store.add(make_link())
        new = yield self.store.update("smsc1", window=50, ip="10.1.1.1", session_type="receiver")
        self.assertEqual((new.window, new.ip, new.session_type), (50, "10.1.1.1", SessionType.RECEIVER))
        self.assertEqual((yield self.store.get("smsc1")), new)

    @defer.inlineCallbacks
    def test_update_rename_and_conflict(self):
        yield self.store.add(make_link("a"))
        yield self.store.add(make_link("b"))
        yield self.assertFailure(self.store.update("a", name="b"), DuplicateName)
        renamed = yield self.store.update("a", name="z")
        self.assertEqual(renamed.name, "z")
        self.assertIsNone((yield self.store.get("a")))

    @defer.inlineCallbacks
    def test_update_errors(self):
        yield self.assertFailure(self.store.update("nope", window=3), UnknownName)
        yield self.store.add(make_link())
        e = yield self.assertFailure(self.store.update("smsc1", src_ton=9), ValueError)
        self.assertIn("src_ton 9 is not a TON value", str(e))
        e = yield self.assertFailure(self.store.update("smsc1", colour="red"), ValueError)
        self.assertIn("colour", str(e))
        self.assertEqual((yield self.store.get("smsc1")).src_ton, 0)

    @defer.inlineCallbacks
    def test_set_enabled(self):
        yield self.store.add(make_link())
        link = yield self.store.set_enabled("smsc1", False)
        self.assertIs(link.enabled, False)
        self.assertIs((yield self.store.get("smsc1")).enabled, False)
        link = yield self.store.set_enabled("smsc1", True)
        self.assertIs(link.enabled, True)
        e = yield self.assertFailure(self.store.set_enabled("nope", True), UnknownName)
        self.assertEqual(str(e), "no smsc named 'nope'")

    @defer.inlineCallbacks
    def test_remove(self):
        yield self.store.add(make_link())
        self.assertTrue((yield self.store.remove("smsc1")))
        self.assertFalse((yield self.store.remove("smsc1")))
        self.assertEqual((yield self.store.list()), [])

    @defer.inlineCallbacks
    def test_invalid_row_reported_not_fatal(self):
        yield self.store.add(make_link("good"))
        yield self.db.run_operation(
            "INSERT INTO smpp (name, ip, port, system_id, password, src_ton) VALUES (?,?,?,?,?,?)",
            ("bad", "h", 2775, "s", "p", 42),
        )
        links, problems = yield self.store.list_with_problems()
        self.assertEqual([link.name for link in links], ["good"])
        self.assertEqual(len(problems), 1)
        self.assertIn("src_ton 42", problems[0])
        self.assertEqual([link.name for link in (yield self.store.list())], ["good"])
        self.flushLoggedErrors()


backend_tests(globals(), SmscStoreTestsMixin)


class MappingTests(unittest.SynchronousTestCase):
    def test_params_then_row_roundtrip(self):
        link = make_link(id=4, tls=True, session_type=3)
        params = link_to_params(link)
        self.assertEqual(len(params), len(COLUMNS) - 1)
        self.assertNotIn(SessionType.RECEIVER, [p for p in params if type(p) is not int])
        row = (4,) + params if COLUMNS[0] == "id" else None
        if row is None:  # id is not first in SmscLink: rebuild in COLUMNS order
            values = dict(zip([c for c in COLUMNS if c != "id"], params), id=4)
            row = tuple(values[c] for c in COLUMNS)
        self.assertEqual(row_to_link(row), link)
