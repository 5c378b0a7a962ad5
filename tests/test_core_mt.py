"""
Tests for L{gwsms.core.mt}: SIP MESSAGE -> stored -> submit_sm, and the
SIP answer mapping.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from gwsms.core.routing import Route
from gwsms.smpp.constants import CommandStatus as S
from tests.test_core_gateway import Harness, make_link, sip_message


def cpim_body(text="hi", imdn=True):
    headers = ("From: <sip:+4930123@example.org>\r\nTo: <sip:+4915112345678@gw.example>\r\n"
               "DateTime: 2026-01-01T12:00:00Z\r\n")
    if imdn:
        headers += ("NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: abc123\r\n"
                    "imdn.Disposition-Notification: positive-delivery, negative-delivery\r\n")
    return (headers + "\r\nContent-Type: text/plain;charset=UTF-8\r\n\r\n" + text).encode()


class SubmittedModeTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness(self, links=[make_link("smsc1", src_ton=2, src_npi=8, dst_ton=2,
                                                dst_npi=1), make_link("smsc2")])
        self.h.smpp.auto = False
        self.h.start()

    def test_answer_after_submit_resp(self):
        h = self.h
        d = h.send(sip_message("hello @ world"))
        self.assertNoResult(d)
        [(link, params, tlvs, _)] = h.smpp.calls
        self.assertEqual(link, "smsc1")
        self.assertEqual((params["source_addr"], params["source_addr_ton"],
                          params["source_addr_npi"]), ("4930123", 1, 1))
        self.assertEqual((params["destination_addr"], params["dest_addr_ton"]),
                         ("4915112345678", 1))
        self.assertEqual(params["data_coding"], 0)
        self.assertEqual(params["short_message"], b"hello \x00 world")  # GSM '@' is 0x00
        self.assertIsNone(tlvs)
        h.smpp.answer(0, message_id="abc")
        h.flush()
        self.assertEqual(self.successResultOf(d).status, 202)
        [row] = h.rows()
        self.assertEqual((row["state"], row["smsc"], row["parts_done"]), ("submitted", "smsc1", 1))
        self.assertEqual(h.row(row["id"])["parts"][0]["smsc_message_id"], "abc")

    def test_link_defaults_for_national_numbers(self):
        h = self.h
        h.send(sip_message("x", to="015112345", sender="sip:0301234@example.org"))
        params = h.smpp.calls[0][1]
        self.assertEqual((params["source_addr"], params["source_addr_ton"],
                          params["source_addr_npi"]), ("0301234", 2, 8))
        self.assertEqual((params["destination_addr"], params["dest_addr_ton"],
                          params["dest_addr_npi"]), ("015112345", 2, 1))

    def test_alphanumeric_sender(self):
        h = self.h
        h.send(sip_message("x", sender="sip:Shop@example.org"))
        params = h.smpp.calls[0][1]
        self.assertEqual((params["source_addr"], params["source_addr_ton"],
                          params["source_addr_npi"]), ("Shop", 5, 0))

    def test_ucs2_emoji_long(self):
        h = self.h
        text = "Grüße 😀 " * 20  # 180 chars incl. astral ones: UCS-2, several parts
        h.send(sip_message(text))
        parts = [c[1] for c in h.smpp.calls]
        self.assertGreater(len(parts), 1)
        data = b""
        refs = set()
        for i, params in enumerate(parts, 1):
            self.assertEqual(params["data_coding"], 8)
            self.assertEqual(params["esm_class"] & 0x40, 0x40)
            udh = params["short_message"][:6]
            self.assertEqual(udh[:3], b"\x05\x00\x03")
            refs.add(udh[3])
            self.assertEqual((udh[4], udh[5]), (len(parts), i))
            data += params["short_message"][6:]
            last = params["short_message"][-2]
            self.assertFalse(0xD8 <= last <= 0xDB, "high surrogate at the end of a part")
        self.assertEqual(len(refs), 1)
        self.assertEqual(data.decode("utf-16-be"), text)
        for i in range(len(parts)):
            h.smpp.answer(i)
        h.flush()
        [row] = h.rows()
        self.assertEqual((row["state"], row["parts_total"], row["parts_done"]),
                         ("submitted", len(parts), len(parts)))

    def test_invalid_destination_from_smsc(self):
        h = self.h
        d = h.send(sip_message("x"))
        h.smpp.answer(0, status=S.ESME_RINVDSTADR)
        h.flush()
        answer = self.successResultOf(d)
        self.assertEqual(answer.status, 404)
        self.assertIn("ESME_RINVDSTADR", answer.reason)
        [row] = h.rows()
        self.assertEqual((row["state"], row["sip_status"]), ("failed", 404))

    def test_permanent_errors_mapped(self):
        h = self.h
        for n, (status, sip) in enumerate([(S.ESME_RX_P_APPN, 403), (0x00000123, 502),
                                           (S.ESME_RINVMSGLEN, 413), (0x104, 488)]):
            d = h.send(sip_message("x", call_id=f"c{n}"))
            h.smpp.answer(n, status=status)
            h.flush()
            self.assertEqual(self.successResultOf(d).status, sip, status)

    def test_temporary_error_retried_within_down_wait(self):
        h = self.h
        d = h.send(sip_message("x"))
        h.smpp.answer(0, status=S.ESME_RSYSERR)
        h.flush(0.5)
        self.assertNoResult(d)
        self.assertEqual(len(h.smpp.calls), 2)
        h.smpp.answer(1)
        h.flush()
        self.assertEqual(self.successResultOf(d).status, 202)

    def test_failover_to_next_candidate_when_down(self):
        h = self.h
        h.smpp.down = {"smsc1"}
        d = h.send(sip_message("x"))
        self.assertEqual([c[0] for c in h.smpp.calls], ["smsc2"])
        h.smpp.answer(0)
        h.flush()
        self.assertEqual(self.successResultOf(d).status, 202)
        self.assertEqual(h.rows()[0]["smsc"], "smsc2")

    def test_all_down_queued_and_202_after_down_wait(self):
        h = self.h
        h.smpp.down = {"smsc1", "smsc2"}
        h.smpp.auto = True
        d = h.send(sip_message("x"))
        h.flush(4.9)
        self.assertNoResult(d)
        h.flush(0.2)
        self.assertEqual(self.successResultOf(d).status, 202)
        self.assertEqual(h.rows()[0]["state"], "queued")
        h.smpp.down = set()
        h.flush(30)
        self.assertEqual(len(h.smpp.calls), 1)
        self.assertEqual(h.rows()[0]["state"], "submitted")
        h.flush(600)
        self.assertEqual(len(h.smpp.calls), 1)

    def test_link_back_within_down_wait(self):
        h = self.h
        h.smpp.down = {"smsc1", "smsc2"}
        d = h.send(sip_message("x"))
        h.flush(1)
        h.smpp.down = set()
        h.flush(0.5)
        h.smpp.answer(0)
        h.flush()
        self.assertEqual(self.successResultOf(d).status, 202)
        self.assertEqual(len(h.smpp.calls), 1)

    def test_duplicate_message_in_flight_gets_same_answer(self):
        h = self.h
        first = h.send(sip_message("x"))
        again = h.send(sip_message("x"))
        self.assertNoResult(again)
        h.smpp.answer(0)
        h.flush()
        self.assertEqual(self.successResultOf(first).status, 202)
        self.assertEqual(self.successResultOf(again).status, 202)
        self.assertEqual(len(h.smpp.calls), 1)
        later = h.send(sip_message("x"))
        self.assertEqual(self.successResultOf(later).status, 202)
        self.assertEqual(len(h.smpp.calls), 1)
        self.assertEqual(len(h.rows()), 1)

    def test_duplicate_of_failed_message(self):
        h = self.h
        first = h.send(sip_message("x"))
        h.smpp.answer(0, status=S.ESME_RINVDSTADR)
        h.flush()
        self.assertEqual(self.successResultOf(first).status, 404)
        again = self.successResultOf(h.send(sip_message("x")))
        self.assertEqual(again.status, 404)
        self.assertEqual(len(h.smpp.calls), 1)

    def test_cpim_imdn_requests_receipt(self):
        h = self.h
        h.send(sip_message(cpim_body(), content_type="message/cpim", unwrapped=b"hi"))
        params = h.smpp.calls[0][1]
        self.assertEqual(params["short_message"], b"hi")
        self.assertEqual(params["registered_delivery"], 1)
        [row] = h.rows()
        self.assertEqual(row["imdn_id"], "abc123")
        self.assertEqual(row["imdn_want"], "negative-delivery,positive-delivery")


class CodingTests(SynchronousTestCase):
    def test_latin1_connection(self):
        h = Harness(self, links=[make_link("smsc1", default_data_coding=3)],
                    routes=[Route(direction="mt", prefix="", smsc="smsc1")])
        h.start()
        h.send(sip_message("Grüße"))
        params = h.smpp.calls[0][1]
        self.assertEqual((params["data_coding"], params["short_message"]),
                         (3, "Grüße".encode("latin-1")))

    def test_ascii_dc0_connection(self):
        h = Harness(self, links=[make_link("smsc1", dc0_charset="ascii")],
                    routes=[Route(direction="mt", prefix="", smsc="smsc1")])
        h.start()
        h.send(sip_message("plain @ text"))
        params = h.smpp.calls[0][1]
        self.assertEqual((params["data_coding"], params["short_message"]),
                         (0, b"plain @ text"))


class RefusalTests(SynchronousTestCase):
    def test_no_route_404(self):
        h = Harness(self, routes=[Route(direction="mt", prefix="44", smsc="smsc1")])
        h.start()
        answer = self.successResultOf(h.send(sip_message("x", to="+4915112345678")))
        self.assertEqual(answer.status, 404)
        self.assertEqual(h.rows(), [])

    def test_malformed_destination_484(self):
        h = Harness(self)
        h.start()
        answer = self.successResultOf(h.send(sip_message("x", to="bob")))
        self.assertEqual(answer.status, 484)

    def test_too_long_413(self):
        h = Harness(self, max_parts=2)
        h.start()
        answer = self.successResultOf(h.send(sip_message("y" * 400)))
        self.assertEqual(answer.status, 413)
        self.assertEqual(h.smpp.calls, [])
        self.assertEqual(h.rows(), [])

    def test_bad_charset_400(self):
        h = Harness(self)
        h.start()
        answer = self.successResultOf(h.send(sip_message(b"\xff\xfe", charset="utf-8")))
        self.assertEqual(answer.status, 400)

    def test_all_down_503_when_not_queueing(self):
        h = Harness(self, queue_when_down=False, retry_after=30)
        h.smpp.down = {"smsc1", "smsc2"}
        h.start()
        d = h.send(sip_message("x"))
        h.flush(6)
        answer = self.successResultOf(d)
        self.assertEqual(answer.status, 503)
        self.assertIn(("Retry-After", "30"), answer.headers)
        self.assertEqual(h.rows()[0]["state"], "rejected")
        h.smpp.down = set()
        h.flush(60)
        self.assertEqual(h.smpp.calls, [])  # the sender retries, not us
        again = self.successResultOf(h.send(sip_message("x")))
        self.assertEqual(again.status, 503)


class NotQueueingTests(SynchronousTestCase):
    def test_partly_sent_message_is_kept_and_202(self):
        h = Harness(self, queue_when_down=False)
        h.smpp.auto = False
        h.start()
        d = h.send(sip_message("w" * 400))  # three parts
        h.smpp.answer(0)
        h.smpp.answer(1)
        h.flush(6)  # down_wait passes
        self.assertNoResult(d)  # part 3 still on its way: no 503 now
        h.smpp.answer(2, status=S.ESME_RSYSERR)
        h.flush()
        self.assertEqual(self.successResultOf(d).status, 202)
        [row] = h.rows()
        self.assertEqual((row["state"], row["parts_done"]), ("queued", 2))
        h.smpp.auto = True
        h.flush(2)
        h.flush(1)
        self.assertEqual(len(h.smpp.calls), 4)  # only part 3 again
        self.assertEqual(h.rows()[0]["state"], "submitted")


class AcceptedModeTests(SynchronousTestCase):
    def test_202_after_commit_then_submit(self):
        h = Harness(self, sip_reply="accepted", commit_interval=0.01)
        h.smpp.auto = False
        h.start()
        d = h.gateway.message_received(sip_message("x"))
        h.clock.advance(0)
        self.assertNoResult(d)  # not before the commit
        self.assertEqual(h.rows(), [])
        h.clock.advance(0.01)
        self.assertEqual(self.successResultOf(d).status, 202)
        self.assertEqual(len(h.smpp.calls), 1)
        h.smpp.answer(0)
        h.flush(0.02)
        self.assertEqual(h.rows()[0]["state"], "submitted")

    def test_group_commit_many_messages_one_transaction(self):
        h = Harness(self, sip_reply="accepted", commit_interval=0.01)
        h.smpp.auto = False  # no part_submitted writes in the way
        h.start()
        before = h.writer.batches
        ds = [h.gateway.message_received(sip_message("x", call_id=f"c{n}")) for n in range(50)]
        h.clock.advance(0.01)
        self.assertEqual(h.writer.batches, before + 1)
        self.assertEqual([self.successResultOf(d).status for d in ds], [202] * 50)
        self.assertEqual(len(h.rows()), 50)
        self.assertEqual(len(h.smpp.calls), 50)


class StoreFailureTests(SynchronousTestCase):
    def test_store_failure_is_503(self):
        from twisted.internet import defer

        h = Harness(self)
        h.start()
        h.store.add = lambda *a, **kw: defer.fail(RuntimeError("disk full"))
        answer = self.successResultOf(h.send(sip_message("x")))
        self.assertEqual(answer.status, 503)
        self.assertEqual(h.smpp.calls, [])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class OverloadTests(SynchronousTestCase):
    def test_shed_beyond_max_pending(self):
        h = Harness(self, max_pending=3)
        h.smpp.auto = False
        h.start()
        answers = [h.send(sip_message("x", call_id=f"c{n}")) for n in range(4)]
        for d in answers[:3]:
            self.assertNoResult(d)
        shed = self.successResultOf(answers[3])
        self.assertEqual(shed.status, 503)
        self.assertIn(("Retry-After", "60"), shed.headers)
        self.assertEqual(len(h.rows()), 3)  # refused before any work
        self.assertEqual(h.gateway.mt.shed, 1)
        for n in range(3):
            h.smpp.answer(n)
        h.flush()
        self.assertEqual([self.successResultOf(d).status for d in answers[:3]], [202] * 3)
        later = h.send(sip_message("y", call_id="c9"))  # room again
        h.smpp.answer(3)
        h.flush()
        self.assertEqual(self.successResultOf(later).status, 202)


class LateFailureTests(SynchronousTestCase):
    def test_accepted_then_refused_sends_negative_imdn(self):
        from gwsms.core import cpim, imdn
        from tests.test_core_mt import cpim_body as body

        h = Harness(self, sip_reply="accepted")
        h.smpp.auto = False
        h.start()
        answer = h.send(sip_message(body(), content_type="message/cpim", unwrapped=b"hi"))
        self.assertEqual(self.successResultOf(answer).status, 202)
        h.smpp.answer(0, status=S.ESME_RINVDSTADR)
        h.flush()
        self.assertEqual(h.rows()[0]["state"], "failed")
        [sent] = h.uac.sent
        note = imdn.parse_notification(cpim.parse_cpim(sent["body"]).content)
        self.assertEqual(note.status, "failed")
