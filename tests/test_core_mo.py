"""
Tests for L{gwsms.core.mo}: deliver_sm -> stored -> ESME_ROK -> SIP MESSAGE.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from gwsms.core.mo import target_uri
from gwsms.core.routing import Route
from gwsms.smpp.constants import CommandStatus as S
from tests.test_core_gateway import Harness, deliver_pdu, make_link


def udh_part(ref, total, seq, data):
    return bytes((5, 0, 3, ref, total, seq)) + data


class Binding:
    def __init__(self, contact_uri, source="10.1.1.1:5062", transport="udp"):
        self.contact_uri = contact_uri
        self.source = source
        self.transport = transport


class FakeRegistrar:
    def __init__(self, bindings):
        self.bindings = bindings
        self.looked_up = []

    def lookup(self, number):
        self.looked_up.append(number)
        return defer.succeed(self.bindings.get(number, []))


class MoTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness(self)
        self.h.start()

    def test_ack_after_commit_then_sip(self):
        h = Harness(self, commit_interval=0.01)
        h.start()
        d = h.gateway.deliver_received("smsc1", deliver_pdu(text=b"Hello \x00"))  # GSM 0x00 is @
        h.clock.advance(0)
        self.assertNoResult(d)  # no resp before the durable write
        self.assertEqual(h.uac.sent, [])
        h.clock.advance(0.01)
        self.assertEqual(self.successResultOf(d), S.ESME_ROK)
        h.flush(0.02)
        [sent] = h.uac.sent
        self.assertEqual(sent["body"], "Hello @")
        self.assertEqual(sent["uri"], "sip:4930123@proxy.example:5070")
        self.assertEqual(sent["from_uri"], "sip:+4915112345678@gw.example")
        self.assertEqual(sent["to_uri"], "sip:4930123@gw.example")
        self.assertEqual(sent["content_type"], "text/plain;charset=UTF-8")
        self.assertEqual(sent["headers"]["X-SMSC"], "smsc1")
        [row] = h.rows()
        self.assertEqual(sent["headers"]["X-Gwsms-Message-Id"], str(row["id"]))
        self.assertEqual((row["state"], row["direction"]), ("delivered", "mo"))

    def test_ucs2_and_latin1(self):
        h = self.h
        h.deliver("smsc1", deliver_pdu(text="Grüße 😀".encode("utf-16-be"), data_coding=8))
        h.deliver("smsc1", deliver_pdu(text="Grüße".encode("latin-1"), data_coding=3))
        self.assertEqual([s["body"] for s in h.uac.sent], ["Grüße 😀", "Grüße"])

    def test_binary_as_hex(self):
        h = self.h
        h.deliver("smsc1", deliver_pdu(text=b"\x00\x01\xfe", data_coding=4))
        self.assertEqual(h.uac.sent[0]["body"], "0001fe")

    def test_binary_as_octet_stream(self):
        h = Harness(self, binary="octet-stream")
        h.start()
        h.deliver("smsc1", deliver_pdu(text=b"\x00\x01\xfe", data_coding=4))
        self.assertEqual(h.uac.sent[0]["body"], b"\x00\x01\xfe")
        self.assertEqual(h.uac.sent[0]["content_type"], "application/octet-stream")

    def test_redelivered_deliver_sm_acked_but_sent_once(self):
        h = self.h
        first = h.deliver("smsc1", deliver_pdu(text=b"same"))
        again = h.deliver("smsc1", deliver_pdu(text=b"same", seq=2))
        self.assertEqual(self.successResultOf(first), 0)
        self.assertEqual(self.successResultOf(again), 0)
        self.assertEqual(len(h.uac.sent), 1)
        self.assertEqual(len(h.rows()), 1)

    def test_long_message_out_of_order_and_duplicate_parts(self):
        h = self.h
        text = "abcdefghij" * 40
        pieces = [text[i:i + 153] for i in range(0, len(text), 153)]
        pdus = [deliver_pdu(text=udh_part(7, 3, i + 1, p.encode()), esm_class=0x40, seq=i + 1)
                for i, p in enumerate(pieces)]
        self.assertEqual(self.successResultOf(h.deliver("smsc1", pdus[2])), 0)
        self.assertEqual(self.successResultOf(h.deliver("smsc1", pdus[2])), 0)
        self.assertEqual(self.successResultOf(h.deliver("smsc1", pdus[0])), 0)
        self.assertEqual(h.uac.sent, [])
        self.assertEqual(len(self.successResultOf(h.store.fragments())), 2)
        self.assertEqual(self.successResultOf(h.deliver("smsc1", pdus[1])), 0)
        [sent] = h.uac.sent
        self.assertEqual(sent["body"], text)
        self.assertEqual(self.successResultOf(h.store.fragments()), [])
        # a part sent again after completion is acknowledged, not delivered
        self.assertEqual(self.successResultOf(h.deliver("smsc1", pdus[1])), 0)
        h.flush(400)
        self.assertEqual(len(h.uac.sent), 1)

    def test_sar_reassembly(self):
        h = self.h
        for seq, piece in ((2, b"world"), (1, b"hello ")):
            tlvs = {"sar_msg_ref_num": 300, "sar_total_segments": 2, "sar_segment_seqnum": seq}
            h.deliver("smsc1", deliver_pdu(text=piece, tlvs=tlvs))
        self.assertEqual([s["body"] for s in h.uac.sent], ["hello world"])

    def test_sar_beyond_255_parts_passed_on_alone(self):
        h = self.h
        tlvs = {"sar_msg_ref_num": 1, "sar_total_segments": 300, "sar_segment_seqnum": 2}
        self.assertEqual(self.successResultOf(h.deliver("smsc1", deliver_pdu(text=b"odd",
                                                                              tlvs=tlvs))), 0)
        self.assertEqual([s["body"] for s in h.uac.sent], ["odd"])

    def test_reassembly_survives_restart(self):
        h = self.h
        h.deliver("smsc1", deliver_pdu(text=udh_part(9, 2, 2, b"second"), esm_class=0x40))
        h.stop()
        h2 = Harness(self, path=h.path)
        h2.start()
        h2.deliver("smsc1", deliver_pdu(text=udh_part(9, 2, 1, b"first "), esm_class=0x40))
        self.assertEqual([s["body"] for s in h2.uac.sent], ["first second"])

    def test_reassembly_timeout_delivers_partial(self):
        h = Harness(self, reassembly_timeout=30.0)
        h.start()
        h.deliver("smsc1", deliver_pdu(text=udh_part(9, 3, 1, b"first"), esm_class=0x40))
        h.flush(31)
        h.flush(1)
        [sent] = h.uac.sent
        self.assertEqual(sent["body"], "first[...]")
        self.assertEqual(h.rows()[0]["partial"], 1)

    def test_part_sent_again_after_restart_is_not_delivered_again(self):
        h = Harness(self, reassembly_timeout=30.0)
        h.start()
        pdus = [deliver_pdu(text=udh_part(4, 2, n, f"p{n} ".encode()), esm_class=0x40)
                for n in (1, 2)]
        h.deliver("smsc1", pdus[0])
        h.deliver("smsc1", pdus[1])
        self.assertEqual([s["body"] for s in h.uac.sent], ["p1 p2 "])
        h.stop()
        h2 = Harness(self, path=h.path, reassembly_timeout=30.0)
        h2.start()
        # our resp was lost: the SMSC sends part 2 again to the new process
        self.assertEqual(self.successResultOf(h2.deliver("smsc1", pdus[1])), 0)
        h2.flush(31)
        h2.flush(1)
        self.assertEqual(h2.uac.sent, [])
        self.assertEqual(len(h2.rows()), 1)
        self.assertEqual(self.successResultOf(h2.store.fragments()), [])

    def test_reassembly_timeout_drop(self):
        h = Harness(self, reassembly_timeout=30.0, reassembly_partial="drop")
        h.start()
        h.deliver("smsc1", deliver_pdu(text=udh_part(9, 3, 1, b"first"), esm_class=0x40))
        h.flush(31)
        h.flush(1)
        self.assertEqual(h.uac.sent, [])
        self.assertEqual(self.successResultOf(h.store.fragments()), [])

    def test_retry_on_503_until_delivered(self):
        h = self.h
        h.uac.status = 503
        h.deliver("smsc1", deliver_pdu(text=b"retry me"))
        self.assertEqual(len(h.uac.sent), 1)
        h.flush(1.0)
        h.flush(1.0)
        self.assertEqual(len(h.uac.sent), 2)  # backoff 1 s
        h.uac.status = 200
        for _ in range(5):
            h.flush(1.0)
        self.assertEqual(len(h.uac.sent), 3)  # backoff 2 s, then delivered
        h.flush(100)
        self.assertEqual(len(h.uac.sent), 3)
        [row] = h.rows()
        self.assertEqual((row["state"], row["attempts"]), ("delivered", 3))

    def test_timeout_retried(self):
        h = self.h
        h.uac.status = TimeoutError("Timer F")
        h.deliver("smsc1", deliver_pdu(text=b"x"))
        h.uac.status = 202
        h.flush(1.5)
        h.flush(1.0)
        self.assertEqual(len(h.uac.sent), 2)
        self.assertEqual(h.rows()[0]["state"], "delivered")

    def test_404_is_final(self):
        h = self.h
        h.uac.status = 404
        h.deliver("smsc1", deliver_pdu(text=b"x"))
        h.flush(100)
        self.assertEqual(len(h.uac.sent), 1)
        self.assertEqual((h.rows()[0]["state"], h.rows()[0]["sip_status"]), ("failed", 404))

    def test_expires_after_mo_ttl(self):
        h = Harness(self, mo_ttl=10.0)
        h.start()
        h.uac.status = 500
        h.deliver("smsc1", deliver_pdu(text=b"x"))
        for _ in range(30):
            h.flush(1.0)
        self.assertEqual(h.rows()[0]["state"], "expired")
        sent = len(h.uac.sent)
        h.flush(100)
        self.assertEqual(len(h.uac.sent), sent)

    def test_one_delivery_in_flight(self):
        h = self.h
        h.uac.pending = []
        h.deliver("smsc1", deliver_pdu(text=b"slow"))
        h.flush(30)
        self.assertEqual(len(h.uac.sent), 1)
        h.uac.pending[0].callback(type("R", (), {"status": 200, "reason": "OK"})())
        h.flush(30)
        self.assertEqual(len(h.uac.sent), 1)
        self.assertEqual(h.rows()[0]["state"], "delivered")

    def test_deliveries_in_flight_are_bounded(self):
        h = Harness(self, max_pending=2)
        h.start()
        h.uac.pending = []
        for n in range(4):
            self.assertEqual(self.successResultOf(
                h.deliver("smsc1", deliver_pdu(text=f"m{n}".encode()))), 0)
        self.assertEqual(len(h.uac.sent), 2)  # the others wait in the store
        for d in h.uac.pending:
            d.callback(type("R", (), {"status": 200, "reason": "OK"})())
        h.uac.pending = None
        h.flush(6)
        h.flush(1)
        self.assertEqual(sorted(s["body"] for s in h.uac.sent), ["m0", "m1", "m2", "m3"])
        self.assertEqual({r["state"] for r in h.rows()}, {"delivered"})

    def test_pending_delivery_resumes_after_restart(self):
        h = self.h
        h.uac.pending = []
        h.deliver("smsc1", deliver_pdu(text=b"resume"))
        h.stop()
        h.db.close()  # the process dies with the MESSAGE unanswered
        h2 = Harness(self, path=h.path)
        h2.start()
        h2.flush(1)
        self.assertEqual(h2.uac.sent, [])  # not before the grace period
        h2.flush(5)
        self.assertEqual([s["body"] for s in h2.uac.sent], ["resume"])
        self.assertEqual(h2.rows()[0]["state"], "delivered")


class TargetTests(SynchronousTestCase):
    def test_target_uri(self):
        self.assertEqual(target_uri("sip:proxy.example:5070", "+49"), "sip:+49@proxy.example:5070")
        self.assertEqual(target_uri("sip:app@proxy.example", "+49"), "sip:app@proxy.example")
        self.assertEqual(target_uri("sip:10.0.0.1;transport=tcp", "1"), "sip:1@10.0.0.1;transport=tcp")

    def test_registered_contact_first(self):
        h = Harness(self)
        registrar = FakeRegistrar({"4930123": [Binding("sip:phone@10.1.1.1:5062")]})
        h.gateway.attach(registrar=registrar)
        h.start()
        h.deliver("smsc1", deliver_pdu(text=b"x"))
        [sent] = h.uac.sent
        self.assertEqual(sent["uri"], "sip:phone@10.1.1.1:5062")
        self.assertEqual((sent["peer"].host, sent["peer"].port), ("10.1.1.1", 5062))

    def test_mo_route_before_outbound_uri(self):
        routes = [Route(direction="mo", prefix="4930", sip_uri="sip:pbx.example:5080"),
                  Route(direction="mt", prefix="", smsc="smsc1")]
        h = Harness(self, routes=routes)
        h.gateway.attach(registrar=FakeRegistrar({}))
        h.start()
        h.deliver("smsc1", deliver_pdu(text=b"x", dest="4930123"))
        h.deliver("smsc1", deliver_pdu(text=b"y", dest="4940123"))
        self.assertEqual([s["uri"] for s in h.uac.sent],
                         ["sip:4930123@pbx.example:5080", "sip:4940123@proxy.example:5070"])

    def test_dc0_charset_of_link(self):
        h = Harness(self, links=[make_link("smsc1", dc0_charset="latin1")])
        h.start()
        h.deliver("smsc1", deliver_pdu(text="é".encode("latin-1")))
        self.assertEqual(h.uac.sent[0]["body"], "é")
