"""
Tests for L{gwsms.core.dlr}: receipts -> message state -> IMDN / text.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from gwsms.core import cpim, imdn
from tests.test_core_gateway import Harness, deliver_pdu, sip_message
from tests.test_core_mt import cpim_body


def receipt_pdu(message_id, stat="DELIVRD", tlvs=None, seq=5):
    text = (f"id:{message_id} sub:001 dlvrd:001 submit date:2601011200 "
            f"done date:2601011201 stat:{stat} err:000 text:hi").encode()
    return deliver_pdu(source="4915112345678", dest="4930123", text=text, esm_class=0x04,
                       tlvs=tlvs, seq=seq)


class DlrTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness(self)
        self.h.start()

    def submit(self, body=None, **kw):
        h = self.h
        if body is None:
            message = sip_message(cpim_body("hi"), content_type="message/cpim", unwrapped=b"hi",
                                  **kw)
        else:
            message = sip_message(body, **kw)
        self.assertEqual(self.successResultOf(h.send(message)).status, 202)
        return h.rows()[0]

    def test_receipt_becomes_imdn_for_cpim_sender(self):
        h = self.h
        row = self.submit()
        mid = h.row(row["id"])["parts"][0]["smsc_message_id"]
        status = self.successResultOf(h.deliver("smsc1", receipt_pdu(mid)))
        self.assertEqual(status, 0)
        self.assertEqual(h.rows()[0]["state"], "delivered")
        [sent] = h.uac.sent
        self.assertEqual(sent["content_type"], "message/cpim")
        self.assertEqual(sent["uri"], "sip:+4930123@example.org")
        wrapper = cpim.parse_cpim(sent["body"])
        self.assertEqual(wrapper.media_type, "message/imdn+xml")
        note = imdn.parse_notification(wrapper.content)
        self.assertEqual(note.message_id, "abc123")
        self.assertEqual(note.status, "delivered")

    def test_receipt_by_tlvs_hex_decimal_tolerant(self):
        h = self.h
        row = self.submit()
        mid = h.row(row["id"])["parts"][0]["smsc_message_id"]  # hex from the fake
        tlvs = {"receipted_message_id": str(int(mid, 16)), "message_state": 5}  # UNDELIVERABLE
        self.successResultOf(h.deliver("smsc1", deliver_pdu(text=b"", esm_class=0x04,
                                                              tlvs=tlvs)))
        self.assertEqual(h.rows()[0]["state"], "undeliverable")
        note = imdn.parse_notification(cpim.parse_cpim(h.uac.sent[0]["body"]).content)
        self.assertEqual(note.status, "failed")

    def test_long_message_delivered_when_all_parts_are(self):
        self.h = h = Harness(self, registered_delivery=1)
        h.start()
        self.submit("z" * 400)
        row = h.row(h.rows()[0]["id"])
        ids = [p["smsc_message_id"] for p in row["parts"]]
        self.assertEqual(len(ids), 3)
        for mid in ids[:2]:
            h.deliver("smsc1", receipt_pdu(mid))
        self.assertEqual(h.rows()[0]["state"], "submitted")
        h.deliver("smsc1", receipt_pdu(ids[2]))
        self.assertEqual(h.rows()[0]["state"], "delivered")

    def test_no_notification_without_request(self):
        self.h = h = Harness(self, registered_delivery=1)
        h.start()
        self.submit("plain")
        self.assertEqual(h.smpp.calls[0][1]["registered_delivery"], 1)
        mid = h.row(h.rows()[0]["id"])["parts"][0]["smsc_message_id"]
        h.deliver("smsc1", receipt_pdu(mid))
        self.assertEqual(h.rows()[0]["state"], "delivered")
        self.assertEqual(h.uac.sent, [])

    def test_notification_failure_is_one_warning(self):
        h = self.h
        h.uac.status = TimeoutError("no answer")
        self.submit()
        mid = h.row(h.rows()[0]["id"])["parts"][0]["smsc_message_id"]
        self.assertEqual(self.successResultOf(h.deliver("smsc1", receipt_pdu(mid))), 0)
        self.assertEqual(h.gateway.dlr.stats["failed"], 1)
        self.assertEqual(h.rows()[0]["state"], "delivered")

    def test_text_receipts(self):
        h = Harness(self, receipts="text")
        h.start()
        self.successResultOf(h.send(sip_message("plain")))
        self.assertEqual(h.smpp.calls[0][1]["registered_delivery"], 1)
        mid = h.row(h.rows()[0]["id"])["parts"][0]["smsc_message_id"]
        h.deliver("smsc1", receipt_pdu(mid))
        [sent] = h.uac.sent
        self.assertEqual(sent["body"], b"Your message to +4915112345678 was delivered.")

    def test_receipts_not_asked_for_are_not_indexed(self):
        h = self.h
        self.submit("plain")
        mid = h.row(h.rows()[0]["id"])["parts"][0]["smsc_message_id"]
        self.assertEqual(self.successResultOf(h.deliver("smsc1", receipt_pdu(mid))), 0)
        self.assertEqual(h.rows()[0]["state"], "submitted")
        self.assertEqual(h.gateway.dlr.stats["unknown"], 1)

    def test_receipt_on_another_bind(self):
        h = self.h
        self.submit()
        mid = h.row(h.rows()[0]["id"])["parts"][0]["smsc_message_id"]
        h.deliver("smsc1-rx", receipt_pdu(mid))
        self.assertEqual(h.rows()[0]["state"], "delivered")

    def test_unknown_and_unreadable_receipts_acked_never_forwarded(self):
        h = self.h
        self.assertEqual(self.successResultOf(h.deliver("smsc1", receipt_pdu("nope"))), 0)
        bad = deliver_pdu(text=b"no id here", esm_class=0x04)
        self.assertEqual(self.successResultOf(h.deliver("smsc1", bad)), 0)
        self.assertEqual(h.uac.sent, [])
        self.assertEqual(h.rows(), [])
        self.assertEqual(h.gateway.dlr.stats["unknown"], 1)
        self.assertEqual(h.gateway.dlr.stats["unreadable"], 1)

    def test_intermediate_receipt_changes_nothing(self):
        h = self.h
        self.submit()
        mid = h.row(h.rows()[0]["id"])["parts"][0]["smsc_message_id"]
        h.deliver("smsc1", receipt_pdu(mid, stat="ENROUTE"))
        self.assertEqual(h.rows()[0]["state"], "submitted")
        self.assertEqual(h.uac.sent, [])
        events = [e["event"] for e in h.row(h.rows()[0]["id"])["events"]]
        self.assertIn("receipt", events)
