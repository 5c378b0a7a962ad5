"""
Tests for the per-connection MT text options (C{smpp.coding}, C{concat},
C{max_parts}) and per-route C{registered_delivery} in L{gwsms.core.mt}.
"""

from __future__ import annotations

import itertools

from twisted.trial.unittest import SynchronousTestCase

from gwsms.core import gsm
from gwsms.core.mtjob import coding_preference, split_options
from gwsms.config import GatewayConfig
from gwsms.core.routing import Route
from tests.test_core_gateway import Harness, make_link, sip_message

ROUTES = [Route(direction="mt", prefix="", smsc="smsc1", priority=0),
          Route(direction="mt", prefix="", smsc="smsc2", priority=1)]


def harness(testcase, link1=None, link2=None, routes=None, **config):
    links = [link1 or make_link("smsc1"), link2 or make_link("smsc2")]
    h = Harness(testcase, links=links, routes=routes or ROUTES, **config)
    h.start()
    return h


class HelperTests(SynchronousTestCase):
    def test_coding_preference(self):
        self.assertEqual(coding_preference(make_link(), "x"), "gsm")
        self.assertEqual(coding_preference(None, "x"), "gsm")
        self.assertEqual(coding_preference(make_link(default_data_coding=3), "x"), "latin1")
        self.assertEqual(coding_preference(make_link(coding="ucs2"), "x"), "ucs2")
        self.assertEqual(coding_preference(make_link(coding="latin1"), "Grüße"), "latin1")
        self.assertEqual(coding_preference(make_link(coding="latin1"), "5 €"), "ucs2")

    def test_split_options(self):
        config = GatewayConfig(concat="udh16", max_parts=7)
        self.assertEqual(split_options(None, config), ("udh16", 7))
        self.assertEqual(split_options(make_link(), config), ("udh16", 7))
        self.assertEqual(split_options(make_link(concat="sar", max_parts=2), config), ("sar", 2))


class CodingOptionTests(SynchronousTestCase):
    def test_latin1_when_it_fits(self):
        h = harness(self, make_link("smsc1", coding="latin1"))
        h.send(sip_message("Grüße"))
        params = h.smpp.calls[0][1]
        self.assertEqual((params["data_coding"], params["short_message"]),
                         (3, "Grüße".encode("latin-1")))

    def test_latin1_else_ucs2(self):
        """'€' is GSM (extension table) but not Latin-1: UCS-2, not GSM."""
        h = harness(self, make_link("smsc1", coding="latin1"))
        h.send(sip_message("5 €"))
        params = h.smpp.calls[0][1]
        self.assertEqual((params["data_coding"], params["short_message"]),
                         (8, "5 €".encode("utf-16-be")))

    def test_ucs2_always(self):
        h = harness(self, make_link("smsc1", coding="ucs2"))
        h.send(sip_message("hello"))
        params = h.smpp.calls[0][1]
        self.assertEqual((params["data_coding"], params["short_message"]),
                         (8, "hello".encode("utf-16-be")))

    def test_auto_is_gsm(self):
        h = harness(self)
        h.send(sip_message("Grüße"))  # ü is in the GSM alphabet
        params = h.smpp.calls[0][1]
        self.assertEqual((params["data_coding"], params["short_message"]),
                         (0, gsm.encode("Grüße")))

    def test_reloaded_link_view_applies_to_next_message(self):
        h = harness(self)
        h.gateway.set_links([make_link("smsc1", coding="ucs2"), make_link("smsc2")])
        h.send(sip_message("hello"))
        self.assertEqual(h.smpp.calls[0][1]["data_coding"], 8)


class ConcatOptionTests(SynchronousTestCase):
    TEXT = "y" * 200  # two GSM parts

    def parts(self, h):
        h.send(sip_message(self.TEXT))
        return [(c[1], c[2]) for c in h.smpp.calls]

    def test_gateway_default_udh8(self):
        parts = self.parts(harness(self))
        self.assertEqual(len(parts), 2)
        self.assertEqual(parts[0][0]["short_message"][:3], b"\x05\x00\x03")

    def test_link_udh16(self):
        parts = self.parts(harness(self, make_link("smsc1", concat="udh16")))
        self.assertEqual(len(parts), 2)
        for seq, (params, tlvs) in enumerate(parts, 1):
            self.assertEqual(params["short_message"][:3], b"\x06\x08\x04")
            self.assertEqual(params["short_message"][5:7], bytes((2, seq)))
            self.assertEqual(params["esm_class"] & 0x40, 0x40)

    def test_link_sar(self):
        parts = self.parts(harness(self, make_link("smsc1", concat="sar")))
        self.assertEqual(len(parts), 2)
        refs = set()
        for seq, (params, tlvs) in enumerate(parts, 1):
            self.assertEqual(params["esm_class"] & 0x40, 0)
            self.assertEqual((tlvs["sar_total_segments"], tlvs["sar_segment_seqnum"]), (2, seq))
            refs.add(tlvs["sar_msg_ref_num"])
        self.assertEqual(len(refs), 1)
        self.assertEqual(b"".join(p["short_message"] for p, _ in parts), gsm.encode(self.TEXT))

    def test_link_payload(self):
        h = harness(self, make_link("smsc1", concat="payload"))
        parts = self.parts(h)
        [(params, tlvs)] = parts
        self.assertEqual(params["short_message"], b"")
        self.assertEqual(tlvs["message_payload"], gsm.encode(self.TEXT))
        [row] = h.rows()
        self.assertEqual((row["state"], row["parts_total"], row["parts_done"]),
                         ("submitted", 1, 1))

    def test_link_overrides_gateway(self):
        parts = self.parts(harness(self, make_link("smsc1", concat="udh8"), concat="sar"))
        self.assertEqual(parts[0][0]["short_message"][:3], b"\x05\x00\x03")


class MaxPartsOptionTests(SynchronousTestCase):
    def test_link_limit_lower_than_gateway_413(self):
        h = harness(self, make_link("smsc1", max_parts=2))
        answer = self.successResultOf(h.send(sip_message("y" * 400)))
        self.assertEqual(answer.status, 413)
        self.assertEqual((h.smpp.calls, h.rows()), ([], []))

    def test_link_limit_higher_than_gateway(self):
        h = harness(self, make_link("smsc1", max_parts=5), max_parts=2)
        answer = self.successResultOf(h.send(sip_message("y" * 400)))
        self.assertEqual(answer.status, 202)
        self.assertEqual(len(h.smpp.calls), 3)

    def test_failover_skips_link_with_lower_limit_while_others_down(self):
        """smsc1 down, smsc2 allows 1 part: kept queued, not refused."""
        h = harness(self, link2=make_link("smsc2", max_parts=1), sip_reply="accepted")
        h.smpp.down = {"smsc1"}
        answer = self.successResultOf(h.send(sip_message("y" * 200)))
        self.assertEqual(answer.status, 202)
        h.flush(1)
        self.assertEqual(h.smpp.calls, [])
        self.assertEqual(h.rows()[0]["state"], "queued")
        h.smpp.down = set()
        h.flush(30)
        self.assertEqual([c[0] for c in h.smpp.calls], ["smsc1", "smsc1"])
        self.assertEqual(h.rows()[0]["state"], "submitted")

    def test_every_link_too_small_after_reload_fails_413(self):
        h = harness(self, sip_reply="accepted")
        h.smpp.down = {"smsc1", "smsc2"}
        self.assertEqual(self.successResultOf(h.send(sip_message("y" * 200))).status, 202)
        h.gateway.set_links([make_link("smsc1", max_parts=1), make_link("smsc2", max_parts=1)])
        h.smpp.down = set()
        h.flush(30)
        self.assertEqual(h.smpp.calls, [])
        [row] = h.rows()
        self.assertEqual((row["state"], row["sip_status"]), ("failed", 413))


class FailoverResplitTests(SynchronousTestCase):
    def test_resplit_for_next_link(self):
        """smsc1 (GSM, udh8) is down: the text is split again for smsc2 (UCS-2, sar)."""
        h = harness(self, link2=make_link("smsc2", coding="ucs2", concat="sar"))
        h.smpp.down = {"smsc1"}
        text = "z" * 100  # one GSM part, two UCS-2 parts
        d = h.send(sip_message(text))
        self.assertEqual(self.successResultOf(d).status, 202)
        calls = h.smpp.calls
        self.assertEqual([c[0] for c in calls], ["smsc2", "smsc2"])
        self.assertEqual([c[1]["data_coding"] for c in calls], [8, 8])
        self.assertEqual([c[2]["sar_segment_seqnum"] for c in calls], [1, 2])
        self.assertEqual(b"".join(c[1]["short_message"] for c in calls).decode("utf-16-be"),
                         text)
        [row] = h.rows()
        self.assertEqual((row["state"], row["smsc"], row["parts_total"], row["parts_done"],
                          row["data_coding"]), ("submitted", "smsc2", 2, 2, 8))
        parts = h.row(row["id"])["parts"]
        self.assertEqual([p["state"] for p in parts], ["submitted", "submitted"])

    def test_next_ref_by_split_method(self):
        """8-bit references for udh8, 16-bit for the others, from one counter."""
        h = harness(self)
        h.gateway.mt._refs = itertools.count(0x12FF)
        self.assertEqual(h.gateway.mt.next_ref("udh8"), 0xFF)
        self.assertEqual(h.gateway.mt.next_ref("udh16"), 0x1300)
        self.assertEqual(h.gateway.mt.next_ref("sar"), 0x1301)
        h.gateway.mt._refs = itertools.count(0xFFFF)
        self.assertEqual(h.gateway.mt.next_ref("udh16"), 0xFFFF)
        self.assertEqual(h.gateway.mt.next_ref("udh16"), 0)

    def test_udh16_reference_cut_for_udh8_link(self):
        h = harness(self, make_link("smsc1", concat="udh16"), make_link("smsc2", concat="udh8"))
        h.gateway.mt._refs = itertools.count(0x1234)
        h.smpp.down = {"smsc1"}
        self.assertEqual(self.successResultOf(h.send(sip_message("y" * 200))).status, 202)
        heads = [c[1]["short_message"][:6] for c in h.smpp.calls]
        self.assertEqual(heads, [b"\x05\x00\x03\x34\x02\x01", b"\x05\x00\x03\x34\x02\x02"])
        self.assertEqual(h.rows()[0]["concat_ref"], 0x1234)

    def test_sent_parts_keep_their_link(self):
        """After a part is at smsc1 the rest goes there, split as before."""
        h = harness(self, link2=make_link("smsc2", coding="ucs2"), sip_reply="accepted")
        h.smpp.auto = False
        self.successResultOf(h.send(sip_message("y" * 200)))
        self.assertEqual(len(h.smpp.calls), 2)
        h.smpp.answer(0)
        h.smpp.answer(1, status=0x58)  # throttled: retried later
        h.flush()
        h.smpp.auto = True
        h.smpp.down = {"smsc1"}
        h.flush(5)
        self.assertEqual(len(h.smpp.calls), 2)  # not re-split for smsc2
        h.smpp.down = set()
        h.flush(30)
        self.assertEqual([c[0] for c in h.smpp.calls], ["smsc1"] * 3)
        self.assertEqual(h.smpp.calls[2][1]["short_message"], h.smpp.calls[1][1]["short_message"])
        [row] = h.rows()
        self.assertEqual((row["state"], row["parts_total"], row["parts_done"]),
                         ("submitted", 2, 2))


class RouteRegisteredDeliveryTests(SynchronousTestCase):
    def routes(self, rd49=None, rd_default=None):
        return [Route(direction="mt", prefix="", smsc="smsc1", registered_delivery=rd_default),
                Route(direction="mt", prefix="49", smsc="smsc2", registered_delivery=rd49)]

    def sent(self, h, to, call_id):
        h.send(sip_message("x", to=to, call_id=call_id))
        return h.smpp.calls[-1][1]["registered_delivery"]

    def test_route_overrides_gateway(self):
        h = harness(self, routes=self.routes(rd49=1), registered_delivery=0)
        self.assertEqual(self.sent(h, "+4915112345678", "c1"), 1)
        self.assertEqual(self.sent(h, "+3312345678", "c2"), 0)  # default route: gateway
        rows = {r["dest_addr"]: r["registered_delivery"] for r in h.rows()}
        self.assertEqual(rows, {"4915112345678": 1, "3312345678": 0})

    def test_route_zero_overrides_gateway_one(self):
        h = harness(self, routes=self.routes(rd49=0), registered_delivery=1)
        self.assertEqual(self.sent(h, "+4915112345678", "c1"), 0)
        self.assertEqual(self.sent(h, "+3312345678", "c2"), 1)

    def test_sender_asking_still_gets_a_receipt(self):
        from tests.test_core_mt import cpim_body

        h = harness(self, routes=self.routes(rd49=0))
        h.send(sip_message(cpim_body(), content_type="message/cpim", unwrapped=b"hi"))
        self.assertEqual(h.smpp.calls[0][1]["registered_delivery"], 1)

    def test_failure_only_receipts(self):
        h = harness(self, routes=self.routes(rd_default=2, rd49=2))
        self.assertEqual(self.sent(h, "+4915112345678", "c1"), 2)
        [row] = h.rows()
        parts = h.row(row["id"])["parts"]
        self.assertEqual(parts[0]["state"], "submitted")


class SplitChangedTests(SynchronousTestCase):
    def test_options_changed_after_parts_were_sent(self):
        """Part 1 went out as GSM udh8; the link is now UCS-2: the rest cannot follow."""
        h = harness(self, sip_reply="accepted")
        h.smpp.auto = False
        self.successResultOf(h.send(sip_message("y" * 200)))
        h.smpp.answer(0)
        h.smpp.answer(1, status=0x58)  # throttled: part 2 waits for the queue
        h.flush()
        h.gateway.set_links([make_link("smsc1", coding="ucs2"), make_link("smsc2")])
        h.smpp.auto = True
        h.flush(30)
        self.assertEqual(len(h.smpp.calls), 2)  # nothing more sent
        [row] = h.rows()
        self.assertEqual((row["state"], row["sip_status"]), ("failed", 500))
        self.assertIn("1 of 2 parts were sent before the connection's text options changed",
                      row["last_error"])

    def test_same_split_after_reload_goes_on(self):
        h = harness(self, sip_reply="accepted")
        h.smpp.auto = False
        self.successResultOf(h.send(sip_message("y" * 200)))
        h.smpp.answer(0)
        h.smpp.answer(1, status=0x58)
        h.flush()
        # a change that does not alter this message's split
        h.gateway.set_links([make_link("smsc1", max_parts=5), make_link("smsc2")])
        h.smpp.auto = True
        h.flush(30)
        self.assertEqual(len(h.smpp.calls), 3)
        self.assertEqual(h.rows()[0]["state"], "submitted")
