"""
Tests for L{gwsms.sip.registrar} over an SQLite :memory: RegistrationStore.
"""

from __future__ import annotations

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase

from gwsms.sip.message import Request
from gwsms.sip.registrar import Registrar, binding_peer
from gwsms.sip.transport import Peer
from gwsms.store import migrate
from gwsms.store.database import open_database_sync
from gwsms.store.sip import RegistrationStore

SOURCE = Peer("udp", "192.0.2.50", 5062)


def register(contacts=(), expires=None, call_id="reg-1@phone", cseq=1, to="sip:alice@gw.example",
             extra=()):
    headers = [
        ("Via", "SIP/2.0/UDP 192.0.2.50:5062;branch=z9hG4bK-%d" % cseq),
        ("Max-Forwards", "70"),
        ("From", f"<{to}>;tag=ft{cseq}"),
        ("To", f"<{to}>"),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} REGISTER"),
    ]
    headers += [("Contact", c) for c in contacts]
    if expires is not None:
        headers.append(("Expires", str(expires)))
    headers += list(extra)
    return Request("REGISTER", "sip:gw.example", headers)


def contact_expiries(response):
    out = {}
    for value in response.headers.get_all("Contact"):
        uri, _, params = value.partition(">;")
        out[uri.lstrip("<")] = int(params.split("expires=")[1])
    return out


class RegistrarTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1_700_000_000)
        self.db = open_database_sync("sqlite::memory:")
        self.addCleanup(self.db.close)
        self.successResultOf(migrate.upgrade(self.db))
        self.store = RegistrationStore(self.db, self.clock)
        self.registrar = Registrar(self.clock, self.store, "gw.example", 60, 3600, 86400, 60)

    def send(self, request, user=None):
        return self.successResultOf(self.registrar.register(request, SOURCE, user))

    def bindings(self, aor="sip:alice@gw.example"):
        return self.successResultOf(self.registrar.lookup(aor))

    def test_register_default_expires(self):
        response = self.send(register(["<sip:alice@192.0.2.50:5062>"]))
        self.assertEqual(response.status, 200)
        self.assertEqual(contact_expiries(response), {"sip:alice@192.0.2.50:5062": 3600})
        [binding] = self.bindings()
        self.assertEqual(binding.source, "192.0.2.50:5062")
        self.assertEqual(binding.transport, "udp")
        self.assertEqual(binding.expires_at, self.clock.seconds() + 3600)

    def test_expires_header_and_param(self):
        response = self.send(
            register(["<sip:a@192.0.2.1>;expires=120", "<sip:a@192.0.2.2>"], expires=300)
        )
        self.assertEqual(
            contact_expiries(response), {"sip:a@192.0.2.1": 120, "sip:a@192.0.2.2": 300}
        )

    def test_clamped_to_max(self):
        response = self.send(register(["<sip:a@192.0.2.1>"], expires=999999))
        self.assertEqual(contact_expiries(response), {"sip:a@192.0.2.1": 86400})

    def test_interval_too_brief(self):
        response = self.send(register(["<sip:a@192.0.2.1>;expires=10"]))
        self.assertEqual(response.status, 423)
        self.assertEqual(response.headers.get("Min-Expires"), "60")
        self.assertEqual(self.bindings(), [])

    def test_several_contacts_and_refresh(self):
        self.send(register(["<sip:a@192.0.2.1>;q=0.5", "<sip:a@192.0.2.2>;q=0.9"], cseq=1))
        self.clock.advance(100)
        response = self.send(register(["<sip:a@192.0.2.3>"], cseq=2))
        self.assertEqual(
            contact_expiries(response),
            {"sip:a@192.0.2.1": 3500, "sip:a@192.0.2.2": 3500, "sip:a@192.0.2.3": 3600},
        )
        self.assertEqual(
            [b.contact_uri for b in self.bindings()],
            ["sip:a@192.0.2.3", "sip:a@192.0.2.2", "sip:a@192.0.2.1"],
        )

    def test_query_without_contact(self):
        self.send(register(["<sip:a@192.0.2.1>"], cseq=1))
        response = self.send(register([], cseq=2))
        self.assertEqual(response.status, 200)
        self.assertEqual(list(contact_expiries(response)), ["sip:a@192.0.2.1"])

    def test_remove_one_with_expires_zero(self):
        self.send(register(["<sip:a@192.0.2.1>", "<sip:a@192.0.2.2>"], cseq=1))
        response = self.send(register(["<sip:a@192.0.2.1>;expires=0"], cseq=2))
        self.assertEqual(list(contact_expiries(response)), ["sip:a@192.0.2.2"])

    def test_wildcard_removes_all(self):
        self.send(register(["<sip:a@192.0.2.1>", "<sip:a@192.0.2.2>"], cseq=1))
        response = self.send(register(["*"], expires=0, cseq=2))
        self.assertEqual(response.status, 200)
        self.assertEqual(response.headers.get_all("Contact"), [])
        self.assertEqual(self.bindings(), [])

    def test_wildcard_needs_expires_zero(self):
        self.send(register(["<sip:a@192.0.2.1>"], cseq=1))
        self.assertEqual(self.send(register(["*"], cseq=2)).status, 400)
        self.assertEqual(self.send(register(["*", "<sip:a@192.0.2.9>"], expires=0, cseq=3)).status, 400)
        self.assertEqual(len(self.bindings()), 1)

    def test_cseq_out_of_order(self):
        self.send(register(["<sip:a@192.0.2.1>"], cseq=5))
        response = self.send(register(["<sip:a@192.0.2.1>;expires=0"], cseq=4))
        self.assertEqual(response.status, 500)
        self.assertEqual(len(self.bindings()), 1)
        # A different Call-ID (phone rebooted) may use any CSeq.
        response = self.send(register(["<sip:a@192.0.2.1>;expires=0"], cseq=1, call_id="other"))
        self.assertEqual(response.status, 200)
        self.assertEqual(self.bindings(), [])

    def test_expiry_on_clock(self):
        self.registrar.start()
        self.addCleanup(self.registrar.stop)
        self.send(register(["<sip:a@192.0.2.1>;expires=120", "<sip:a@192.0.2.2>;expires=600"]))
        self.clock.advance(121)
        self.assertEqual([b.contact_uri for b in self.bindings()], ["sip:a@192.0.2.2"])
        # the sweep removed the row itself, not just hid it
        rows = self.successResultOf(self.db.run_query("SELECT contact_uri FROM sip_registrations"))
        self.assertEqual([r[0] for r in rows], ["sip:a@192.0.2.2"])

    def test_sweep_survives_store_failure(self):
        class Flaky:
            calls = 0

            def expire(self, now):
                Flaky.calls += 1
                if Flaky.calls == 1:
                    return defer.fail(RuntimeError("db down"))
                raise RuntimeError("sync failure")

        registrar = Registrar(self.clock, Flaky(), "gw.example")
        registrar.start()
        self.clock.advance(60)
        self.clock.advance(60)
        registrar.stop()
        self.assertEqual(Flaky.calls, 3)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 3)

    def test_aor_normalised_to_domain(self):
        self.send(register(["<sip:a@192.0.2.1>"], to="sip:alice@10.0.0.1:5060"))
        self.assertEqual(len(self.bindings("sip:alice@gw.example")), 1)

    def test_lookup_by_number(self):
        self.send(register(["<sip:a@192.0.2.1>"], to="sip:+4930123@gw.example"))
        for key in ("+4930123", "4930123", "tel:+4930123", "sip:4930123@elsewhere"):
            self.assertEqual(len(self.bindings(key)), 1, key)
        self.send(register(["<sip:b@192.0.2.2>"], to="sip:4940999@gw.example"))
        self.assertEqual(len(self.bindings("+4940999")), 1)
        self.assertEqual(self.bindings("+4999"), [])

    def test_lookup_bad_input(self):
        self.failureResultOf(self.registrar.lookup("sip:"), ValueError)

    def test_authenticated_user_must_match(self):
        response = self.send(register(["<sip:a@192.0.2.1>"]), user="bob")
        self.assertEqual(response.status, 403)
        self.assertEqual(self.send(register(["<sip:a@192.0.2.1>"]), user="alice").status, 200)

    def test_to_without_user(self):
        self.assertEqual(self.send(register(["<sip:a@192.0.2.1>"], to="sip:gw.example")).status, 404)

    def test_too_long_contact_refused_whole(self):
        long_contact = "<sip:" + "a" * 520 + "@192.0.2.1>"
        response = self.send(register(["<sip:a@192.0.2.1>", long_contact]))
        self.assertEqual(response.status, 400)
        self.assertEqual(self.bindings(), [])

    def test_too_long_call_id(self):
        self.assertEqual(self.send(register(["<sip:a@192.0.2.1>"], call_id="c" * 300)).status, 400)

    def test_bad_q(self):
        self.assertEqual(self.send(register(["<sip:a@192.0.2.1>;q=2"])).status, 400)

    def test_bad_contact(self):
        self.assertEqual(self.send(register(["<mailto:a@example.org>"])).status, 400)

    def test_store_failure_is_500(self):
        class Broken:
            def lookup(self, aor, now):
                return defer.fail(RuntimeError("db down"))

        registrar = Registrar(self.clock, Broken(), "gw.example")
        response = self.successResultOf(registrar.register(register(["<sip:a@192.0.2.1>"]), SOURCE))
        self.assertEqual(response.status, 500)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_requests_for_one_aor_are_serialised(self):
        """The second REGISTER sees the first one's bindings (atomic per AOR)."""
        gate = defer.Deferred()
        real_lookup = self.store.lookup
        calls = []

        def slow_lookup(aor, now):
            calls.append(aor)
            if len(calls) == 1:
                return gate.addCallback(lambda _: real_lookup(aor, now))
            return real_lookup(aor, now)

        self.store.lookup = slow_lookup
        d1 = self.registrar.register(register(["<sip:a@192.0.2.1>"], cseq=2), SOURCE)
        d2 = self.registrar.register(register(["<sip:a@192.0.2.1>"], cseq=1), SOURCE)
        self.assertNoResult(d2)
        gate.callback(None)
        self.assertEqual(self.successResultOf(d1).status, 200)
        self.assertEqual(self.successResultOf(d2).status, 500)
        self.assertEqual(self.registrar._locks, {})

    def test_binding_peer(self):
        self.send(register(["<sip:a@10.0.0.5:5060>"]))
        [binding] = self.bindings()
        self.assertEqual(binding_peer(binding), SOURCE)

    def test_binding_peer_ipv6_and_tcp(self):
        source = Peer("tcp", "2001:db8::7", 5070)
        self.successResultOf(self.registrar.register(register(["<sip:a@[2001:db8::7]:5070>"]), source))
        [binding] = self.bindings()
        self.assertEqual(binding.source, "[2001:db8::7]:5070")
        self.assertEqual(binding_peer(binding), source)

    def test_bindings_survive_restart(self):
        """A registrar restarted on the same database file sees the bindings."""
        path = self.mktemp()
        db = open_database_sync(f"sqlite:{path}")
        self.successResultOf(migrate.upgrade(db))
        first = Registrar(self.clock, RegistrationStore(db, self.clock), "gw.example")
        self.successResultOf(first.register(register(["<sip:a@192.0.2.1>"]), SOURCE))
        db.close()
        db = open_database_sync(f"sqlite:{path}")
        self.addCleanup(db.close)
        second = Registrar(self.clock, RegistrationStore(db, self.clock), "gw.example")
        [binding] = self.successResultOf(second.lookup("sip:alice@gw.example"))
        self.assertEqual(binding.contact_uri, "sip:a@192.0.2.1")
