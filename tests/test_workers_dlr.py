"""
Receipts with worker processes: a receipt whose part id is not (yet)
known is looked up once more after L{DlrFlow.unknown_retry} seconds (the
worker that submitted the part may not have committed its id), and only
then acknowledged as unknown.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from tests.test_core_dlr import receipt_pdu
from tests.test_core_gateway import Harness, sip_message
from tests.test_core_mt import cpim_body


class UnknownReceiptRetryTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness(self)
        self.h.start()
        self.h.gateway.dlr.unknown_retry = 2.0

    def test_known_on_the_second_look(self):
        """The id is committed (by another worker) while we wait: applied."""
        h = self.h
        message = sip_message(cpim_body("hi"), content_type="message/cpim", unwrapped=b"hi")
        self.assertEqual(self.successResultOf(h.send(message)).status, 202)
        row = h.rows()[0]
        mid = h.row(row["id"])["parts"][0]["smsc_message_id"]
        real = h.store.receipt
        calls = []

        def late(*args):
            calls.append(args)
            if len(calls) == 1:
                return defer.succeed(None)  # not committed yet
            return real(*args)

        h.store.receipt = late
        d = h.deliver("smsc1", receipt_pdu(mid))
        self.assertNoResult(d)
        h.flush(1.9)
        self.assertNoResult(d)
        h.flush(0.1)
        self.assertEqual(self.successResultOf(d), 0)
        self.assertEqual(len(calls), 2)
        self.assertEqual(h.rows()[0]["state"], "delivered")
        self.assertEqual(h.gateway.dlr.stats, dict(h.gateway.dlr.stats, matched=1, unknown=0))
        self.assertEqual(len(h.uac.sent), 1)  # the IMDN

    def test_unknown_after_the_second_look(self):
        h = self.h
        d = h.deliver("smsc1", receipt_pdu("nope"))
        self.assertNoResult(d)
        h.flush(2.0)
        self.assertEqual(self.successResultOf(d), 0)
        self.assertEqual(h.gateway.dlr.stats["unknown"], 1)
        self.assertEqual(h.uac.sent, [])

    def test_single_process_acks_at_once(self):
        h = self.h
        h.gateway.dlr.unknown_retry = 0.0
        self.assertEqual(self.successResultOf(h.deliver("smsc1", receipt_pdu("nope"))), 0)
        self.assertEqual(h.gateway.dlr.stats["unknown"], 1)
