"""Tests for gwsms.store.sip on every back-end."""

import hashlib

from twisted.internet import defer, task
from twisted.trial import unittest

from gwsms.store.sip import DuplicateUser, RegistrationStore, SipUser, SipUserStore, ha1
from tests.mysql_helpers import backend_tests


class SipUserStoreTestsMixin:
    def setUp(self):
        d = super().setUp()
        self.users = SipUserStore(self.db)
        return d

    @defer.inlineCallbacks
    def test_add_stores_ha1_not_password(self):
        user = yield self.users.add("alice", "s3cr3t!", "example.com")
        self.assertEqual(
            user.ha1_md5, hashlib.md5(b"alice:example.com:s3cr3t!").hexdigest()
        )
        self.assertEqual(
            user.ha1_sha256, hashlib.sha256(b"alice:example.com:s3cr3t!").hexdigest()
        )
        self.assertEqual((yield self.users.get("alice", "example.com")), user)
        rows = yield self.db.run_query("SELECT * FROM sip_users")
        self.assertNotIn("s3cr3t!", repr(rows))

    @defer.inlineCallbacks
    def test_duplicate_and_realms(self):
        yield self.users.add("alice", "a", "r1")
        yield self.users.add("alice", "b", "r2")
        e = yield self.assertFailure(self.users.add("alice", "c", "r1"), DuplicateUser)
        self.assertIn("'alice'", str(e))
        users = yield self.users.list()
        self.assertEqual([(u.username, u.realm) for u in users], [("alice", "r1"), ("alice", "r2")])
        self.assertIsNone((yield self.users.get("alice", "r3")))

    @defer.inlineCallbacks
    def test_remove(self):
        yield self.users.add("bob", "pw", "r")
        self.assertTrue((yield self.users.remove("bob", "r")))
        self.assertFalse((yield self.users.remove("bob", "r")))
        self.assertEqual((yield self.users.list()), [])

    @defer.inlineCallbacks
    def test_bad_values(self):
        for args, needle in (
            (("", "pw", "r"), "username"),
            (("u", "", "r"), "password"),
            (("u", "pw", ""), "realm"),
            (("a:b", "pw", "r"), "':'"),
            (("u" * 65, "pw", "r"), "username longer than 64"),
        ):
            e = yield self.assertFailure(self.users.add(*args), ValueError)
            self.assertIn(needle, str(e))


class RegistrationStoreTestsMixin:
    def setUp(self):
        d = super().setUp()
        self.clock = task.Clock()
        self.clock.advance(1000)
        self.regs = RegistrationStore(self.db, clock=self.clock)
        return d

    def save(self, contact, expires_at, q=1.0, aor="sip:alice@example.com", cseq=1):
        return self.regs.save(aor, contact, expires_at, "call-1", cseq, q,
                              "udp:192.0.2.1:5060", "udp")

    @defer.inlineCallbacks
    def test_lookup_orders_by_q_and_skips_expired(self):
        yield self.save("sip:a@192.0.2.1", 2000, q=0.5)
        yield self.save("sip:b@192.0.2.2", 2000, q=1.0)
        yield self.save("sip:c@192.0.2.3", 1500, q=0.9)
        yield self.save("sip:x@192.0.2.9", 2000, q=1.0, aor="sip:bob@example.com")
        found = yield self.regs.lookup("sip:alice@example.com", 1000)
        self.assertEqual([b.contact_uri for b in found],
                         ["sip:b@192.0.2.2", "sip:c@192.0.2.3", "sip:a@192.0.2.1"])
        found = yield self.regs.lookup("sip:alice@example.com", 1500)
        self.assertEqual([b.contact_uri for b in found], ["sip:b@192.0.2.2", "sip:a@192.0.2.1"])
        b = found[0]
        self.assertEqual((b.call_id, b.cseq, b.source, b.transport, b.updated),
                         ("call-1", 1, "udp:192.0.2.1:5060", "udp", 1000.0))

    @defer.inlineCallbacks
    def test_save_upserts(self):
        yield self.save("sip:a@192.0.2.1", 2000, cseq=1)
        self.clock.advance(10)
        yield self.save("sip:a@192.0.2.1", 3000, q=0.3, cseq=2)
        found = yield self.regs.lookup("sip:alice@example.com", 2500)
        self.assertEqual(len(found), 1)
        self.assertEqual((found[0].expires_at, found[0].cseq, found[0].q, found[0].updated),
                         (3000.0, 2, 0.3, 1010.0))
        rows = yield self.db.run_query("SELECT COUNT(*) FROM sip_registrations")
        self.assertEqual(rows[0][0], 1)

    @defer.inlineCallbacks
    def test_expire(self):
        yield self.save("sip:a@192.0.2.1", 1100)
        yield self.save("sip:b@192.0.2.2", 1200)
        yield self.save("sip:c@192.0.2.3", 1300)
        self.assertEqual((yield self.regs.expire(1200)), 2)
        self.assertEqual((yield self.regs.expire(1200)), 0)
        found = yield self.regs.lookup("sip:alice@example.com", 0)
        self.assertEqual([b.contact_uri for b in found], ["sip:c@192.0.2.3"])

    @defer.inlineCallbacks
    def test_remove_and_remove_all(self):
        yield self.save("sip:a@192.0.2.1", 2000)
        yield self.save("sip:b@192.0.2.2", 2000)
        yield self.save("sip:x@192.0.2.9", 2000, aor="sip:bob@example.com")
        self.assertTrue((yield self.regs.remove("sip:alice@example.com", "sip:a@192.0.2.1")))
        self.assertFalse((yield self.regs.remove("sip:alice@example.com", "sip:a@192.0.2.1")))
        self.assertEqual((yield self.regs.remove_all("sip:alice@example.com")), 1)
        self.assertEqual((yield self.regs.lookup("sip:alice@example.com", 0)), [])
        self.assertEqual(len((yield self.regs.lookup("sip:bob@example.com", 0))), 1)

    @defer.inlineCallbacks
    def test_long_contact(self):
        long_uri = "sip:a@192.0.2.1;" + "x" * 496  # 512 characters: fits
        self.assertEqual(len(long_uri), 512)
        yield self.save(long_uri, 2000)
        e = yield self.assertFailure(self.save(long_uri + "y", 2000), ValueError)
        self.assertIn("contact_uri longer than 512", str(e))


backend_tests(globals(), SipUserStoreTestsMixin)
backend_tests(globals(), RegistrationStoreTestsMixin)


class Ha1Tests(unittest.SynchronousTestCase):
    def test_rfc2617_example(self):
        # RFC 2617 3.5: Mufasa / testrealm@host.com / Circle Of Life
        self.assertEqual(
            ha1("md5", "Mufasa", "testrealm@host.com", "Circle Of Life"),
            "939e7578ed9e3c518a452acee763bce9",
        )

    def test_rfc7616_sha256_example(self):
        # RFC 7616 3.9.1: Mufasa / http-auth@example.org / Circle of Life
        self.assertEqual(
            ha1("sha256", "Mufasa", "http-auth@example.org", "Circle of Life"),
            "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232",
        )
        self.assertEqual(SipUser("a", "r", "x", "y").username, "a")
