"""
Tests for L{gwsms.core.gateway}: the queue runner, restart resumption, and
the shared harness (fake SMPP service and UAC over a real SQLite store on a
fake clock) used by tests.test_core_mt / _mo / _dlr.
"""

from __future__ import annotations

import os

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from gwsms.config import GatewayConfig, SipConfig
from gwsms.core.gateway import Gateway
from gwsms.core.routing import Route
from gwsms.sip.interfaces import IMessageHandler, IncomingMessage
from gwsms.sip.message import Response, parse_message
from gwsms.smpp import pdu as pdu_module
from gwsms.smpp.esme import SubmitResult
from gwsms.smpp.interfaces import IDeliverySink
from gwsms.smpp.link import SmscLink
from gwsms.smpp.service import LinkDown
from gwsms.store import migrate
from gwsms.store.batch import BatchWriter
from gwsms.store.database import open_database_sync
from gwsms.store.messages import MessageStore


class FakeSmpp:
    """SmppService.submit: records calls; links in C{down} fail LinkDown."""

    def __init__(self):
        self.calls = []  # (link, params, tlvs, Deferred)
        self.down = set()
        self.auto = True  # answer at once with ESME_ROK
        self.count = 0

    def submit(self, link_name, params, tlvs=None):
        if link_name in self.down:
            return defer.fail(LinkDown(f"{link_name} is down"))
        d = defer.Deferred()
        self.calls.append((link_name, params, tlvs, d))
        if self.auto:
            self.count += 1
            d.callback(SubmitResult(0, f"{self.count:x}"))
        return d

    def answer(self, index, status=0, message_id=None):
        self.count += 1
        d = self.calls[index][3]
        d.callback(SubmitResult(status, message_id if message_id is not None
                                else (f"{self.count:x}" if status == 0 else None)))


class FakeUac:
    def __init__(self):
        self.sent = []  # dict per MESSAGE
        self.status = 200
        self.pending = None  # list of Deferreds when not automatic

    def send_message(self, uri, from_uri, to_uri, body, content_type="text/plain;charset=UTF-8",
                     extra_headers=(), peer=None):
        self.sent.append(dict(uri=uri, from_uri=from_uri, to_uri=to_uri, body=body,
                              content_type=content_type, headers=dict(extra_headers), peer=peer))
        if self.pending is not None:
            d = defer.Deferred()
            self.pending.append(d)
            return d
        if isinstance(self.status, Exception):
            return defer.fail(self.status)
        return defer.succeed(Response(self.status, "Whatever"))


def make_link(name="smsc1", **kw):
    kw.setdefault("ip", "127.0.0.1")
    kw.setdefault("port", 2775)
    kw.setdefault("system_id", "gw")
    return SmscLink(name=name, **kw)


def sip_message(body="hello", to="+4915112345678", sender="sip:+4930123@example.org",
                call_id="call-1", cseq=1, tag="t1", content_type="text/plain;charset=UTF-8",
                charset="utf-8", unwrapped=None):
    if isinstance(body, str):
        body = body.encode("utf-8")
    raw = (
        f"MESSAGE sip:{to}@gw.example SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK{call_id}{cseq}\r\n"
        f"From: <{sender}>;tag={tag}\r\n"
        f"To: <sip:{to}@gw.example>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} MESSAGE\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    request = parse_message(raw)
    media = content_type.split(";")[0].strip().lower()
    return IncomingMessage(request=request, source=None, sender_uri=sender,
                           recipient_uri=f"sip:{to}@gw.example", content_type=media,
                           body=unwrapped if unwrapped is not None else body, charset=charset)


def deliver_pdu(source="4915112345678", dest="4930123", text=b"hi", esm_class=0,
                data_coding=0, tlvs=None, seq=1, command="deliver_sm"):
    return pdu_module.make(command, sequence_number=seq, tlvs=tlvs or {},
                           source_addr_ton=1, source_addr_npi=1, source_addr=source,
                           dest_addr_ton=0, dest_addr_npi=1, destination_addr=dest,
                           esm_class=esm_class, data_coding=data_coding, short_message=text)


class Harness:
    """A Gateway over SQLite with fake SMPP/UAC on a Clock."""

    def __init__(self, testcase, path=None, links=None, routes=None, **config):
        self.testcase = testcase
        self.clock = task.Clock()
        self.clock.advance(1_000_000)
        self.path = path or os.path.join(os.path.abspath(testcase.mktemp()), "gw.sqlite3")
        self.db = open_database_sync("sqlite:" + self.path)
        testcase.addCleanup(self.db.close)
        testcase.successResultOf(migrate.upgrade(self.db))
        config.setdefault("queue_interval", 1.0)
        self.config = GatewayConfig(**config)
        self.writer = BatchWriter(self.db, self.clock, interval=self.config.commit_interval,
                                  batch_size=self.config.batch_size)
        self.store = MessageStore(self.db, self.writer)
        self.smpp = FakeSmpp()
        self.uac = FakeUac()
        self.sip_config = SipConfig(domain="gw.example", outbound_uri="sip:proxy.example:5070")
        if links is None:
            links = [make_link("smsc1"), make_link("smsc2")]
        if routes is None:
            routes = [Route(direction="mt", prefix="", smsc="smsc1", priority=0),
                      Route(direction="mt", prefix="", smsc="smsc2", priority=1)]
        self.gateway = Gateway(self.clock, self.config, self.sip_config, self.store,
                               smpp=self.smpp, uac=self.uac, links=links, routes=routes)

    def start(self):
        self.gateway.startService()
        self.flush()
        self.testcase.addCleanup(self.stop)

    def stop(self):
        if self.gateway.running:
            self.gateway.stopService()
            self.flush()

    def flush(self, seconds=0.0):
        self.clock.advance(0)
        if seconds:
            self.clock.advance(seconds)
        self.clock.advance(0)

    def send(self, message):
        d = self.gateway.message_received(message)
        self.flush()
        return d

    def deliver(self, link, pdu):
        d = self.gateway.deliver_received(link, pdu)
        self.flush()
        return d

    def row(self, message_id):
        return self.testcase.successResultOf(self.store.get(message_id))

    def rows(self, **kw):
        return self.testcase.successResultOf(self.store.list(limit=1000, **kw))


class GatewayTests(SynchronousTestCase):
    def test_interfaces(self):
        h = Harness(self)
        verifyObject(IMessageHandler, h.gateway)
        verifyObject(IDeliverySink, h.gateway)

    def test_restart_resumes_queued_mt(self):
        """A message queued by one gateway is submitted by the next over the same file."""
        h = Harness(self, sip_reply="accepted")
        h.smpp.down = {"smsc1", "smsc2"}
        h.start()
        answer = self.successResultOf(h.send(sip_message("queued")))
        self.assertEqual(answer.status, 202)
        self.assertEqual(h.smpp.calls, [])
        h.stop()
        # a new process over the same database
        h2 = Harness(self, path=h.path, sip_reply="accepted")
        h2.start()
        h2.flush(30)
        self.assertEqual(len(h2.smpp.calls), 1)
        self.assertEqual(h2.smpp.calls[0][1]["short_message"], b"queued")
        [row] = h2.rows()
        self.assertEqual(row["state"], "submitted")
        h2.flush(600)
        self.assertEqual(len(h2.smpp.calls), 1)  # never twice

    def test_restart_does_not_resubmit_recorded_parts(self):
        text = "x" * 400  # 3 parts
        h = Harness(self, sip_reply="accepted")
        h.smpp.auto = False
        h.start()
        self.successResultOf(h.send(sip_message(text)))
        self.assertEqual(len(h.smpp.calls), 3)
        h.smpp.answer(0)
        h.smpp.answer(1)  # the third is in flight when the process dies
        h.flush()
        h.db.close()
        h2 = Harness(self, path=h.path, sip_reply="accepted")
        h2.start()
        h2.flush(30)
        self.assertEqual(len(h2.smpp.calls), 1)
        self.assertIn(b"\x05\x00\x03", h2.smpp.calls[0][1]["short_message"][:3])
        self.assertEqual(h2.smpp.calls[0][1]["short_message"][5], 3)  # part 3 only
        [row] = h2.rows()
        self.assertEqual((row["state"], row["parts_done"]), ("submitted", 3))

    def test_backlog_beyond_one_page(self):
        h = Harness(self, sip_reply="accepted")
        h.smpp.down = {"smsc1", "smsc2"}
        h.start()
        for n in range(700):
            h.gateway.message_received(sip_message(f"m{n}", call_id=f"c{n}"))
        h.flush()
        self.assertEqual(h.smpp.calls, [])
        h.smpp.down = set()
        h.flush(2)
        h.flush(1)
        self.assertEqual(len(h.smpp.calls), 700)
        self.assertEqual(len({c[1]["short_message"] for c in h.smpp.calls}), 700)
        self.assertEqual({r["state"] for r in h.rows()}, {"submitted"})

    def test_expired_mt(self):
        h = Harness(self, sip_reply="accepted", mt_ttl=10.0)
        h.smpp.down = {"smsc1", "smsc2"}
        h.start()
        self.successResultOf(h.send(sip_message("late")))
        h.flush(5)
        h.flush(10)
        h.flush(1)
        [row] = h.rows()
        self.assertEqual(row["state"], "expired")

    def test_queue_runner_survives_store_errors(self):
        h = Harness(self)
        h.start()
        calls = []

        def broken(*a, **kw):
            calls.append(1)
            return defer.fail(RuntimeError("database away"))

        h.store.due = broken
        h.flush(1)
        h.flush(1)
        self.assertEqual(len(calls), 2)  # one per pass
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)


class DedupPurgeTests(SynchronousTestCase):
    def keys(self, h):
        return [row[0] for row in self.successResultOf(h.db.run_query(
            "SELECT dedup_key FROM message_dedup ORDER BY created_at"))]

    def test_each_queue_pass_forgets_expired_keys(self):
        h = Harness(self, dedup_window=600.0)
        now = h.clock.seconds()
        for name, age in (("old1", 900.0), ("old2", 601.0), ("young", 599.0)):
            self.successResultOf(h.db.run_operation(
                "INSERT INTO message_dedup (dedup_key, message_id, created_at) VALUES (?, ?, ?)",
                (name, 1, now - age)))
        h.start()
        h.flush()
        self.assertEqual(self.keys(h), ["young"])
        h.flush(1)  # the next pass
        self.assertEqual(self.keys(h), ["young"])
        h.flush(2)
        self.assertEqual(self.keys(h), [])


class StaleReadTests(SynchronousTestCase):
    def setUp(self):
        from gwsms.core.gateway import GatewayContext

        self.clock = task.Clock()
        self.clock.advance(100)
        self.ctx = GatewayContext(self.clock, GatewayConfig(), SipConfig(), None)

    def test_stale_row_of_a_due_message(self):
        self.ctx.job_ended({"id": 1, "next_attempt_at": 90.0}, written_at=100.5)
        self.assertTrue(self.ctx.is_stale({"id": 1, "updated_at": 99.0}))
        self.assertFalse(self.ctx.is_stale({"id": 1, "updated_at": 100.5}))
        self.assertFalse(self.ctx.is_stale({"id": 2, "updated_at": 1.0}))

    def test_messages_not_due_are_not_remembered(self):
        self.ctx.job_ended({"id": 1, "next_attempt_at": 500.0}, written_at=100.5)
        self.assertFalse(self.ctx.is_stale({"id": 1, "updated_at": 99.0}))

    def test_forget_oldest_first(self):
        for n in range(5):
            self.ctx.job_ended({"id": n, "next_attempt_at": 0.0}, written_at=100.0 + n)
        self.ctx.forget_recent(112.5)
        self.assertEqual(list(self.ctx._recent), [3, 4])
