"""
Tests for L{gwsms.core.fastmt}: the SIP -> SMPP lane.

The lane sits in the real SIP stack (L{gwsms.sip.service.SipService} on a
fake reactor: its UDP port is a fake whose socket records every datagram),
in front of the real gateway core over a real SQLite store (synchronous,
group commit on the fake clock).  The SMPP side is a fake
L{gwsms.smpp.service.SmppService}: C{transmitter(name)} gives a fake session
whose C{submit_then} records the encoded C{submit_sm} and is answered by the
test; C{submit} (the full path, used after a hand-over) is
L{tests.test_core_gateway.FakeSmpp}'s.
"""

from __future__ import annotations

import gc
import os
import socket
import struct

from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from gwsms.config import GatewayConfig, SipConfig
from gwsms.core import numbers
from gwsms.core.fastmt import FastMtLane, encode_submit_sm
from gwsms.core.gateway import Gateway
from gwsms.core.routing import Route
from gwsms.sip.message import parse_message
from gwsms.sip.service import SipService
from gwsms.smpp import pdu as smpp_pdu
from gwsms.smpp.constants import CommandStatus as S
from gwsms.smpp.errors import SMPPConnectionLost
from gwsms.smpp.esme import SubmitResult
from gwsms.store import migrate
from gwsms.store.batch import BatchWriter
from gwsms.store.database import open_database_sync
from gwsms.store.messages import MessageStore
from tests.test_core_gateway import FakeSmpp, FakeUac, make_link
from tests.test_sip_service import NoDNS
from tests.test_sip_transport import FakeReactor

T1 = 0.5
SOURCE = ("10.0.0.1", 5062)  # the datagram's source (the Via says 5060)
GW = ("127.0.0.1", 5060)


class FakeSocket:
    family = socket.AF_INET

    def __init__(self):
        self.sent = []

    def sendto(self, data, addr):
        self.sent.append((data, addr))


def _raise(error):
    def sendto(data, addr):
        raise error
    return sendto


class FakeSession:
    """An ESMEProtocol as the lane uses it."""

    def __init__(self):
        self.submits = []  # [done, request, encoded]
        self.bound = True

    def submit_then(self, done, request, encoded):
        if not self.bound:
            return False
        self.submits.append((done, request, encoded))
        return True

    def answer(self, index=-1, status=0, message_id="abc1"):
        done = self.submits[index][0]
        done(SubmitResult(status, message_id if status == 0 else None))

    def fail(self, index=-1, error=None):
        self.submits[index][0](Failure(error or SMPPConnectionLost("smsc1: connection lost")))


class LaneSmpp(FakeSmpp):
    """FakeSmpp (full path C{submit}) plus C{transmitter} for the lane."""

    def __init__(self):
        super().__init__()
        self.sessions = {"smsc1": FakeSession(), "smsc2": FakeSession()}
        self.unbound = set()

    def transmitter(self, name):
        if name in self.unbound:
            return None
        return self.sessions.get(name)


def datagram(body="hello", to="+4915112345678", sender="sip:+4930123@example.org",
             call_id="call-1", cseq=1, tag="t1", branch=None, via=None,
             content_type="text/plain;charset=UTF-8", extra="", to_tag=None,
             max_forwards=70) -> bytes:
    if isinstance(body, str):
        body = body.encode("utf-8")
    if via is None:
        via = f"SIP/2.0/UDP 10.0.0.1:5060;branch={branch or f'z9hG4bK-{call_id}-{cseq}'};rport"
    to_header = f"<sip:{to}@gw.example>" + (f";tag={to_tag}" if to_tag else "")
    head = (
        f"MESSAGE sip:{to}@gw.example SIP/2.0\r\n"
        f"Via: {via}\r\n"
        f"Max-Forwards: {max_forwards}\r\n"
        f"From: <{sender}>;tag={tag}\r\n"
        f"To: {to_header}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} MESSAGE\r\n"
        + extra
        + (f"Content-Type: {content_type}\r\n" if content_type else "")
        + f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("utf-8") + body


class LaneHarness:
    """
    Gateway + SIP service on one fake reactor, SQLite file store, fake SMPP;
    the lane in the transport layer's fast paths when C{lane} is true.
    """

    def __init__(self, testcase, lane=True, links=None, routes=None, sip=None, **config):
        self.testcase = testcase
        self.clock = FakeReactor()
        self.clock.advance(1_000_000)
        path = os.path.join(os.path.abspath(testcase.mktemp()), "gw.sqlite3")
        self.db = open_database_sync("sqlite:" + path)
        testcase.addCleanup(self.db.close)
        testcase.successResultOf(migrate.upgrade(self.db))
        self.config = GatewayConfig(**config)
        self.writer = BatchWriter(self.db, self.clock, interval=self.config.commit_interval,
                                  batch_size=self.config.batch_size)
        self.store = MessageStore(self.db, self.writer)
        self.smpp = LaneSmpp()
        self.smpp.auto = False
        self.sip_config = SipConfig(listen=("udp:127.0.0.1:5060",), domain="gw.example",
                                    t1=T1, **(sip or {}))
        if links is None:
            links = [make_link("smsc1", dst_ton=1, dst_npi=1), make_link("smsc2")]
        if routes is None:
            routes = [Route(direction="mt", prefix="", smsc="smsc1", priority=0),
                      Route(direction="mt", prefix="", smsc="smsc2", priority=1)]
        self.gateway = Gateway(self.clock, self.config, self.sip_config, self.store,
                               smpp=self.smpp, uac=FakeUac(), links=links, routes=routes)
        self.sip = SipService(self.clock, self.sip_config, self.gateway, resolver=NoDNS())
        self.gateway.startService()
        self.sip.startService()
        port = self.clock.udp_ports[0]
        self.socket = FakeSocket()
        port.transport.socket = self.socket
        self.proto = port.protocol
        self.lane = FastMtLane(self.clock, self.gateway, self.sip_config, self.smpp,
                               trusted=self.sip.uas._trusted, t1=T1)
        if lane:
            self.sip.transport.fast_paths.append(self.lane)
            self.lane.startService()
        testcase.addCleanup(self.stop)
        self.flush()

    @property
    def session(self):
        return self.smpp.sessions["smsc1"]

    def stop(self):
        if self.lane.running:
            self.lane.stopService()
        self.sip.stopService()
        if self.gateway.running:
            self.gateway.stopService()
        self.flush()

    def flush(self, seconds=0.0):
        self.clock.advance(0)
        if seconds:
            self.clock.advance(seconds)
        self.clock.advance(0)

    def take(self, data, addr=SOURCE):
        """The lane's own answer to a datagram (the full path is not tried)."""
        return self.lane(self.proto, data, addr)

    def receive(self, data, addr=SOURCE):
        """A datagram through the transport layer (lane first, then the full path)."""
        self.proto.datagramReceived(data, addr)
        self.flush()

    def responses(self):
        return [(parse_message(data), data, addr) for data, addr in self.socket.sent]

    def finals(self):
        return [(r, data, addr) for r, data, addr in self.responses() if r.status >= 200]

    def rows(self):
        return self.testcase.successResultOf(self.store.list(limit=1000))

    def row(self, message_id):
        return self.testcase.successResultOf(self.store.get(message_id))


def codec_submit(source, dest, esm_class, registered, data_coding, short_message) -> bytes:
    return smpp_pdu.encode(smpp_pdu.make(
        "submit_sm", sequence_number=0, source_addr_ton=source.ton,
        source_addr_npi=source.npi, source_addr=source.addr, dest_addr_ton=dest.ton,
        dest_addr_npi=dest.npi, destination_addr=dest.addr, esm_class=esm_class,
        registered_delivery=registered, data_coding=data_coding, short_message=short_message))


class EncodeTests(SynchronousTestCase):
    def test_equal_to_the_codec(self):
        A = numbers.Address
        cases = [
            (A("4930123", 1, 1), A("4915112345678", 1, 1), 0, 0, 0, b"hello \x00 world"),
            (A("Shop", 5, 0), A("015112345", 2, 8), 0, 1, 0, b"x"),
            (A("0301234", 0, 0), A("4915112345678", 1, 1), 0, 0, 8,
             "Grüße 😀".encode("utf-16-be")),
            (A("", 0, 0), A("1", 0, 0), 0x40, 17, 3, b""),
            (A("12345678901234567890", 6, 18), A("09876543210987654321", 4, 9), 3, 0, 8,
             b"\xff" * 140),
            (A("4930", 1, 1), A("4915", 1, 1), 0, 1, 0, bytes(range(254))),
        ]
        for case in cases:
            self.assertEqual(encode_submit_sm(*case), codec_submit(*case), case)
            decoded = smpp_pdu.decode(encode_submit_sm(*case))
            self.assertEqual((decoded.command, decoded.params["short_message"]),
                             ("submit_sm", case[5]))

    def test_too_long_fields(self):
        A = numbers.Address
        ok = A("4930", 1, 1)
        for source, dest, text in ((A("1" * 21, 1, 1), ok, b"x"), (ok, A("1" * 21, 1, 1), b"x"),
                                   (ok, ok, b"x" * 255)):
            self.assertRaises(ValueError, encode_submit_sm, source, dest, 0, 0, 0, text)
            self.assertRaises(ValueError, codec_submit, source, dest, 0, 0, 0, text)


class LaneTestsBase(SynchronousTestCase):
    harness_options: dict = {}

    def setUp(self):
        self.h = LaneHarness(self, **self.harness_options)

    def assertAccepted(self, response, data, status=202):
        """A final answer to C{data} as RFC 3261 8.2.6 / RFC 3581 want it."""
        request = parse_message(data)
        self.assertEqual(response.status, status)
        via = response.headers.get_all("Via")
        self.assertEqual(len(via), 1)
        sent = request.headers.get("Via").replace(";rport", "")
        self.assertEqual(via[0], f"{sent};rport={SOURCE[1]};received={SOURCE[0]}")
        self.assertEqual(response.headers.get("From"), request.headers.get("From"))
        to = response.headers.get("To")
        self.assertTrue(to.startswith(request.headers.get("To") + ";tag="), to)
        self.assertGreater(len(response.to.params.get("tag") or ""), 0)
        self.assertEqual(response.call_id, request.call_id)
        self.assertEqual(response.headers.get("CSeq"), request.headers.get("CSeq"))
        self.assertEqual(response.headers.get("Content-Length"), "0")
        self.assertEqual(response.body, b"")


class TakenTests(LaneTestsBase):
    def test_plain_message_stored_submitted_answered(self):
        h = self.h
        data = datagram("hello @ world")
        self.assertTrue(h.take(data))
        self.assertEqual(h.lane.stats["taken"], 1)
        self.assertEqual(h.session.submits, [])  # nothing before the commit
        h.flush()
        [row] = h.rows()
        self.assertEqual((row["state"], row["smsc"], row["body"]), ("queued", "smsc1",
                                                                    "hello @ world"))
        [(_done, request, encoded)] = h.session.submits
        self.assertEqual(request.command_id, 4)
        A = numbers.Address
        self.assertEqual(encoded, codec_submit(A("4930123", 1, 1), A("4915112345678", 1, 1),
                                               0, 0, 0, b"hello \x00 world"))
        self.assertEqual(h.socket.sent, [])  # sip_reply = submitted: after the SMSC
        h.session.answer(message_id="abc1")
        h.flush()
        [(response, _raw, addr)] = h.responses()
        self.assertAccepted(response, data)
        self.assertEqual(addr, SOURCE)  # rport: back to the source port
        row = h.row(row["id"])
        self.assertEqual((row["state"], row["parts_done"]), ("submitted", 1))
        self.assertEqual([(p["state"], p["smsc_message_id"]) for p in row["parts"]],
                         [("submitted", "abc1")])
        self.assertEqual(h.smpp.calls, [])  # never the full path
        self.assertEqual(h.gateway.mt.active, {})
        self.assertEqual(h.gateway.mt.pending, 0)

    def test_through_the_transport_layer(self):
        h = self.h
        h.receive(datagram("hi"))
        h.session.answer()
        h.flush()
        self.assertEqual(h.lane.stats["taken"], 1)
        self.assertEqual([r.status for r, _d, _a in h.responses()], [202])
        self.assertEqual(h.sip.uas.stats["received"], 0)  # the UAS never saw it

    def test_via_without_rport(self):
        h = self.h
        via = "SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKnorport"
        data = datagram(via=via)
        self.assertTrue(h.take(data))
        h.flush()
        h.session.answer()
        h.flush()
        [(response, _raw, addr)] = h.responses()
        self.assertEqual(response.headers.get("Via"), via)  # sent-by is the source host
        self.assertEqual(addr, ("10.0.0.1", 5070))  # RFC 3261 18.2.2: the Via port
        via = "SIP/2.0/UDP proxy.example:5080;branch=z9hG4bKbyname"
        self.assertTrue(h.take(datagram(via=via, call_id="c2")))
        h.flush()
        h.session.answer()
        h.flush()
        response, _raw, addr = h.responses()[-1]
        self.assertEqual(response.headers.get("Via"), via + ";received=10.0.0.1")
        self.assertEqual(addr, ("10.0.0.1", 5080))

    def test_several_vias_copied_in_order(self):
        h = self.h
        data = datagram(extra="Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKsecond\r\n")
        self.assertTrue(h.take(data))
        h.flush()
        h.session.answer()
        h.flush()
        [(response, _raw, _addr)] = h.responses()
        vias = response.headers.get_all("Via")
        self.assertEqual(len(vias), 2)
        self.assertEqual(vias[1], "SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKsecond")

    def test_ucs2_text(self):
        h = self.h
        text = "Grüße 😀 ✓"
        self.assertTrue(h.take(datagram(text)))
        h.flush()
        [(_done, _request, encoded)] = h.session.submits
        pdu = smpp_pdu.decode(encoded)
        self.assertEqual(pdu.params["data_coding"], 8)
        self.assertEqual(pdu.params["short_message"].decode("utf-16-be"), text)
        self.assertEqual(h.rows()[0]["body"], text)

    def test_sip_reply_accepted_answers_after_the_commit(self):
        h = self.h = LaneHarness(self, sip_reply="accepted", commit_interval=0.01)
        data = datagram()
        self.assertTrue(h.take(data))
        h.flush()
        self.assertEqual(h.socket.sent, [])  # not before the durable write
        self.assertEqual(h.session.submits, [])
        h.flush(0.01)
        [(response, _raw, _addr)] = h.responses()
        self.assertAccepted(response, data)
        self.assertEqual(len(h.rows()), 1)
        self.assertEqual(len(h.session.submits), 1)  # then submitted
        h.session.answer(message_id="m9")
        h.flush(0.01)
        self.assertEqual(len(h.responses()), 1)  # answered once
        [row] = h.rows()
        self.assertEqual((row["state"], h.row(row["id"])["parts"][0]["smsc_message_id"]),
                         ("submitted", "m9"))


class RetransmissionTests(LaneTestsBase):
    def test_absorbed_before_the_answer(self):
        h = self.h
        data = datagram()
        self.assertTrue(h.take(data))
        h.flush()
        self.assertTrue(h.take(data))
        h.receive(data)
        self.assertEqual(h.lane.stats["absorbed"], 2)
        self.assertEqual(len(h.session.submits), 1)
        self.assertEqual(len(h.rows()), 1)
        self.assertEqual(h.socket.sent, [])
        h.session.answer()
        h.flush()
        self.assertEqual(len(h.socket.sent), 1)

    def test_absorbed_before_the_commit(self):
        h = self.h
        data = datagram()
        self.assertTrue(h.take(data))
        self.assertTrue(h.take(data))
        h.flush()
        self.assertEqual(len(h.session.submits), 1)
        self.assertEqual(len(h.rows()), 1)

    def test_same_answer_after_the_answer(self):
        h = self.h
        data = datagram()
        h.take(data)
        h.flush()
        h.session.answer()
        h.flush()
        h.receive(data)
        self.assertEqual(h.lane.stats["absorbed"], 1)
        [(first, raw1, addr1), (again, raw2, addr2)] = h.responses()
        self.assertEqual(again.status, 202)
        self.assertEqual(again.to.params["tag"], first.to.params["tag"])
        self.assertEqual((raw2, addr2), (raw1, addr1))
        self.assertEqual(len(h.session.submits), 1)

    def test_kept_one_rotation_forgotten_after_two(self):
        h = self.h
        data = datagram()
        h.take(data)
        h.flush()
        h.session.answer()
        h.flush()
        h.flush(64 * T1)
        h.receive(data)
        self.assertEqual(h.lane.stats["absorbed"], 1)
        self.assertEqual(len(h.responses()), 2)
        h.flush(64 * T1)
        self.assertEqual(len(h.lane), 0)
        h.receive(data)
        self.assertEqual(h.lane.stats["absorbed"], 1)  # a new transaction now
        self.assertEqual(h.lane.stats["taken"], 2)
        # ... recognised as a duplicate by the store: not submitted again
        self.assertEqual(len(h.session.submits), 1)
        self.assertEqual(h.smpp.calls, [])
        self.assertEqual(len(h.rows()), 1)
        self.assertEqual([r.status for r, _d, _a in h.responses()], [202, 202, 202])

    def test_answered_after_a_rotation_kept_from_the_answer(self):
        # Timer J runs from the final answer: a transaction answered after
        # one rotation is still recognised a whole period later
        h = self.h
        data = datagram()
        h.take(data)
        h.flush()
        h.flush(64 * T1)  # one rotation: still waiting for the SMSC
        self.assertTrue(h.take(data))
        self.assertEqual(h.lane.stats["absorbed"], 1)
        self.assertEqual(h.socket.sent, [])
        h.session.answer()
        h.flush()
        h.flush(64 * T1)
        h.receive(data)
        self.assertEqual(h.lane.stats["absorbed"], 2)
        self.assertEqual([r.status for r, _d, _a in h.responses()], [202, 202])
        self.assertEqual(h.lane.stats["taken"], 1)

    def test_unanswered_forgotten_after_two_rotations(self):
        h = self.h
        h.take(datagram())
        h.flush()
        self.assertEqual(len(h.lane), 1)
        h.flush(64 * T1)
        self.assertEqual(len(h.lane), 1)
        h.flush(64 * T1)
        self.assertEqual(len(h.lane), 0)
        h.session.answer()  # far too late: answered, nothing kept for it
        h.flush()
        self.assertEqual([r.status for r, _d, _a in h.responses()], [202])
        self.assertEqual(len(h.lane), 0)

    def test_late_answer_leaves_a_new_transaction_with_the_same_key(self):
        h = self.h
        data = datagram()
        h.take(data)
        h.flush()
        h.flush(64 * T1)
        h.flush(64 * T1)  # forgotten while the SMSC has not answered
        self.assertTrue(h.take(data))  # the same branch again: a new transaction
        self.assertEqual(h.lane.stats["taken"], 2)
        h.session.answer(0)  # the first one's answer, late
        h.flush()
        self.assertEqual(len(h.lane), 1)
        self.assertTrue(h.take(data))  # the second still waits: absorbed
        self.assertEqual(h.lane.stats["absorbed"], 1)

    def test_collector_never_walks_the_generations(self):
        # the two big maps hold only octets and the "declined" marker, so
        # CPython never tracks them (a young collection walking a quarter
        # of a million keys paused the reactor for milliseconds)
        h = self.h
        lane = h.lane
        for n in range(3):
            h.take(datagram(call_id=f"g{n}"))
        self.assertFalse(lane(h.proto, datagram(call_id="d", to_tag="x"), SOURCE))  # declined
        h.flush()
        h.session.answer(0)
        h.session.answer(1, status=0x0B)  # permanent: 4xx
        h.flush()
        h.flush(64 * T1)
        h.session.answer(2)
        h.flush()
        self.assertEqual(len(lane), 4)
        self.assertEqual(len(h.responses()), 3)
        for generation in (lane._txns, lane._old):
            self.assertFalse(gc.is_tracked(generation), generation)
        self.assertEqual(len(lane._txns) + len(lane._old), 4)
        self.assertEqual(len(lane._live) + len(lane._live_old), 0)


class DeclinedTests(LaneTestsBase):
    def assertDeclined(self, data, addr=SOURCE, lane=None, scanned=True):
        """
        @param scanned: whether the lane got as far as the transaction key
            (then it remembers the decision); a datagram it cannot scan
            (folded header) is refused the same way each time.
        """
        h = self.h
        lane = h.lane if lane is None else lane  # (an empty lane is falsy: __len__)
        before = lane.stats["declined"]
        self.assertFalse(lane(h.proto, data, addr))
        self.assertEqual(lane.stats["declined"], before + int(scanned))
        self.assertFalse(lane(h.proto, data, addr))  # its retransmission too
        self.assertEqual(lane.stats["declined"], before + int(scanned))  # remembered
        self.assertEqual(len(lane), int(scanned))
        self.assertEqual(lane.stats["taken"], 0)
        h.flush()
        self.assertEqual(h.rows(), [])
        self.assertEqual(h.session.submits, [])
        self.assertEqual(h.socket.sent, [])

    def test_to_tag(self):
        self.assertDeclined(datagram(to_tag="dialog1"))

    def test_require(self):
        self.assertDeclined(datagram(extra="Require: 100rel\r\n"))

    def test_max_forwards_zero(self):
        self.assertDeclined(datagram(max_forwards=0))

    def test_cpim(self):
        body = ("From: <sip:+4930123@example.org>\r\nTo: <sip:+4915112345678@gw.example>\r\n"
                "\r\nContent-Type: text/plain\r\n\r\nhi")
        self.assertDeclined(datagram(body, content_type="message/cpim"))

    def test_other_charset(self):
        self.assertDeclined(datagram("Grüße".encode("latin-1"),
                                     content_type="text/plain;charset=ISO-8859-1"))

    def test_no_content_type(self):
        self.assertDeclined(datagram(content_type=""))

    def test_content_encoding(self):
        self.assertDeclined(datagram(extra="Content-Encoding: gzip\r\n"))

    def test_two_sms(self):
        self.assertDeclined(datagram("x" * 161))

    def test_no_route(self):
        self.h = LaneHarness(self, routes=[Route(direction="mt", prefix="4917", smsc="smsc1")])
        self.assertDeclined(datagram())

    def test_link_not_bound_remembered(self):
        h = self.h
        h.smpp.unbound = {"smsc1"}
        data = datagram()
        self.assertDeclined(data)
        h.smpp.unbound = set()
        self.assertFalse(h.take(data))  # the transaction belongs to the full path

    def test_folded_header(self):
        data = datagram().replace(b"Call-ID: call-1\r\n", b"Call-ID:\r\n call-1\r\n")
        self.assertDeclined(data, scanned=False)
        self.h.receive(data)  # the full path takes it
        self.h.smpp.auto = True
        self.h.flush()
        self.assertEqual(len(self.h.rows()), 1)
        self.assertEqual(self.h.rows()[0]["call_id"], "call-1")

    def test_ipv6_via(self):
        self.assertDeclined(datagram(via="SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKv6"))

    def test_tcp_via(self):
        self.assertDeclined(datagram(via="SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bKtcp"))

    def test_rfc2543_branch(self):
        self.assertDeclined(datagram(via="SIP/2.0/UDP 10.0.0.1:5060;branch=old-style-1"))

    def test_maddr(self):
        self.assertDeclined(datagram(
            via="SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKm;maddr=239.1.1.1"))

    def test_sips_request_uri(self):
        data = datagram().replace(b"MESSAGE sip:", b"MESSAGE sips:", 1)
        self.assertDeclined(data)

    def test_auth_untrusted(self):
        h = self.h
        lane = FastMtLane(h.clock, h.gateway, SipConfig(auth=True), h.smpp,
                          trusted={"10.0.0.9"}, t1=T1)
        self.assertDeclined(datagram(), lane=lane)
        self.assertTrue(lane(h.proto, datagram(call_id="c2"), ("10.0.0.9", 5060)))

    def test_overload(self):
        h = self.h = LaneHarness(self, max_pending=1)
        self.assertTrue(h.take(datagram(call_id="c1")))
        self.assertFalse(h.take(datagram(call_id="c2")))  # one is being stored
        self.assertEqual(h.lane.stats["declined"], 1)
        h.flush()
        self.assertEqual(len(h.rows()), 1)

    def test_declined_goes_to_the_full_path(self):
        h = self.h
        h.receive(datagram(extra="Require: 100rel\r\n"))
        [(response, _raw, _addr)] = h.finals()
        self.assertEqual((response.status, response.headers.get("Unsupported")),
                         (420, "100rel"))
        h.receive(datagram("x" * 200, call_id="long"))
        self.assertEqual(len(h.smpp.calls), 2)  # two parts through MtJob
        self.assertEqual(h.lane.stats["taken"], 0)

    def test_us_ascii_body_with_other_octets(self):
        """
        charset=us-ascii with octets above 0x7F: the full path answers 400
        (the body is not valid US-ASCII); the lane must not accept it.
        """
        h = self.h
        data = datagram("Grüße", content_type="text/plain;charset=us-ascii")
        h.receive(data)
        h.flush()
        h.session.submits and h.session.answer()
        h.flush()
        self.assertEqual(h.session.submits, [])
        self.assertEqual(h.smpp.calls, [])
        self.assertEqual([r.status for r, _d, _a in h.finals()], [400])


class OutcomeTests(LaneTestsBase):
    def send(self, data=None):
        h = self.h
        data = data or datagram()
        self.assertTrue(h.take(data))
        h.flush()
        return data

    def test_temporary_status_hands_over_to_mtjob(self):
        for status in (S.ESME_RTHROTTLED, S.ESME_RMSGQFUL):
            h = self.h = LaneHarness(self)
            data = self.send()
            h.session.answer(status=int(status))
            h.flush()
            self.assertEqual(h.lane.stats["handed_over"], 1)
            self.assertEqual(h.socket.sent, [])  # the job answers
            [(link, params, tlvs, _d)] = h.smpp.calls  # submitted again by the full path
            self.assertEqual((link, params["short_message"], params["destination_addr"]),
                             ("smsc1", b"hello", "4915112345678"))
            h.smpp.answer(0, message_id="full1")
            h.flush()
            [(response, _raw, _addr)] = h.responses()
            self.assertAccepted(response, data)
            [row] = h.rows()
            self.assertEqual(row["state"], "submitted")
            self.assertEqual(h.row(row["id"])["parts"][0]["smsc_message_id"], "full1")
            self.assertEqual(len(h.session.submits), 1)
            self.assertEqual(h.gateway.mt.active, {})

    def test_failure_hands_over_and_queue_retries(self):
        h = self.h
        data = self.send()
        h.smpp.down = {"smsc1", "smsc2"}
        h.session.fail()
        h.flush()
        self.assertEqual(h.lane.stats["handed_over"], 1)
        h.flush(h.config.down_wait + 0.1)
        [(response, _raw, _addr)] = h.responses()  # queue_when_down: 202, kept queued
        self.assertAccepted(response, data)
        [row] = h.rows()
        self.assertEqual(row["state"], "queued")
        self.assertEqual(h.smpp.calls, [])
        h.smpp.down = set()
        h.smpp.auto = True
        h.flush(30)
        self.assertEqual(len(h.smpp.calls), 1)  # the queue runner, through the full path
        self.assertEqual(h.rows()[0]["state"], "submitted")
        h.flush(600)
        self.assertEqual(len(h.smpp.calls), 1)
        self.assertEqual(len(h.session.submits), 1)
        self.assertEqual(len(h.responses()), 1)

    def test_permanent_status_404(self):
        h = self.h
        data = self.send()
        h.session.answer(status=int(S.ESME_RINVDSTADR))
        h.flush()
        [(response, _raw, _addr)] = h.responses()
        self.assertAccepted(response, data, status=404)
        self.assertIn("ESME_RINVDSTADR", response.reason)
        [row] = h.rows()
        self.assertEqual((row["state"], row["sip_status"]), ("failed", 404))
        self.assertIn("ESME_RINVDSTADR", row["last_error"])
        self.assertEqual(h.smpp.calls, [])
        # a duplicate later gets the same answer, nothing is sent again
        h.receive(datagram(branch="z9hG4bKnew"))
        self.assertEqual([r.status for r, _d, _a in h.responses()], [404, 404])
        self.assertEqual(len(h.session.submits), 1)

    def test_store_failure_503(self):
        h = self.h
        h.db.run_interaction("break", lambda txn: txn.execute("DROP TABLE message_dedup"))
        data = datagram()
        self.assertTrue(h.take(data))
        h.flush()
        [(response, _raw, _addr)] = h.responses()
        self.assertAccepted(response, data, status=503)
        self.assertEqual(response.headers.get("Retry-After"), str(h.config.retry_after))
        self.assertEqual(h.session.submits, [])
        self.assertEqual(h.gateway.mt.pending, 0)
        self.assertGreater(len(self.flushLoggedErrors()), 0)
        h.receive(data)  # its retransmission: the same answer
        self.assertEqual([r.status for r, _d, _a in h.responses()], [503, 503])

    def test_duplicate_new_branch_not_submitted_twice(self):
        h = self.h
        self.send()
        h.session.answer()
        h.flush()
        h.receive(datagram(branch="z9hG4bKother"))
        self.assertEqual([r.status for r, _d, _a in h.responses()], [202, 202])
        self.assertEqual(len(h.session.submits), 1)
        self.assertEqual(h.smpp.calls, [])
        self.assertEqual(len(h.rows()), 1)

    def test_accepted_mode_temporary_status_hands_over_without_second_answer(self):
        h = self.h = LaneHarness(self, sip_reply="accepted")
        data = self.send()
        [(response, _raw, _addr)] = h.responses()
        self.assertAccepted(response, data)
        h.session.answer(status=int(S.ESME_RTHROTTLED))
        h.flush()
        self.assertEqual(h.lane.stats["handed_over"], 1)
        self.assertEqual(len(h.smpp.calls), 1)
        h.smpp.answer(0, message_id="full2")
        h.flush()
        self.assertEqual(len(h.responses()), 1)  # answered once, before
        [row] = h.rows()
        self.assertEqual(row["state"], "submitted")
        self.assertEqual(h.row(row["id"])["parts"][0]["smsc_message_id"], "full2")

    def test_session_refuses_the_submit_hands_over(self):
        """The link unbinds between the check and the commit: submit_then says False."""
        h = self.h
        data = datagram()
        self.assertTrue(h.take(data))
        h.session.bound = False
        h.flush()
        self.assertEqual(h.session.submits, [])
        self.assertEqual(h.lane.stats["handed_over"], 1)
        [(link, _params, _tlvs, _d)] = h.smpp.calls
        self.assertEqual(link, "smsc1")
        h.smpp.answer(0)
        h.flush()
        [(response, _raw, _addr)] = h.responses()
        self.assertAccepted(response, data)
        self.assertEqual(h.rows()[0]["state"], "submitted")

    def test_duplicate_of_a_handed_over_message_waits_for_the_job(self):
        h = self.h
        self.send()
        h.session.answer(status=int(S.ESME_RTHROTTLED))
        h.flush()
        [_call] = h.smpp.calls  # the job's submit is outstanding
        h.receive(datagram(branch="z9hG4bKdup"))
        self.assertEqual(h.socket.sent, [])
        h.smpp.answer(0)
        h.flush()
        self.assertEqual([r.status for r, _d, _a in h.responses()], [202, 202])
        self.assertEqual((len(h.smpp.calls), len(h.session.submits), len(h.rows())), (1, 1, 1))

    def test_full_socket_buffer_loses_the_answer_like_a_datagram(self):
        h = self.h
        data = self.send()
        h.socket.sendto = _raise(BlockingIOError())
        h.session.answer()
        h.flush()
        self.assertEqual(h.proto.send_dropped, 1)
        del h.socket.sendto
        h.receive(data)  # the client retransmits: the answer again
        [(response, _raw, _addr)] = h.responses()
        self.assertAccepted(response, data)

    def test_receipts_match_what_the_lane_recorded(self):
        """Submit ids recorded in one batch (bulk write) are found by their receipts."""
        from tests.test_core_gateway import deliver_pdu

        h = self.h = LaneHarness(self, registered_delivery=1)
        for n in range(3):
            self.assertTrue(h.take(datagram(call_id=f"r{n}")))
        h.flush()
        for n in range(3):
            h.session.answer(n, message_id=f"a{n}")
        h.flush()
        self.assertEqual(len(h.responses()), 3)
        for n in range(3):
            text = (f"id:a{n} sub:001 dlvrd:001 submit date:2601011200 done date:2601011201 "
                    "stat:DELIVRD err:000 text:hello").encode()
            d = h.gateway.deliver_received("smsc1", deliver_pdu(text=text, esm_class=4))
            h.flush()
            self.assertEqual(self.successResultOf(d), 0)
        self.assertEqual(h.gateway.dlr.stats["matched"], 3)
        self.assertEqual({r["state"] for r in h.rows()}, {"delivered"})

    def test_duplicate_in_flight_gets_the_same_answer(self):
        """
        As the full path (tests.test_core_mt
        test_duplicate_message_in_flight_gets_same_answer): a duplicate of a
        message whose submit_sm is outstanding waits for its outcome.
        """
        h = self.h
        self.assertTrue(h.take(datagram()))
        self.assertTrue(h.take(datagram(branch="z9hG4bKother")))  # same batch
        h.flush()
        h.receive(datagram(branch="z9hG4bKthird"))  # a later batch
        self.assertEqual(len(h.session.submits), 1)
        self.assertEqual(h.socket.sent, [])  # nobody answered before the SMSC
        h.session.answer(status=int(S.ESME_RINVDSTADR))
        h.flush()
        self.assertEqual([r.status for r, _d, _a in h.responses()], [404, 404, 404])
        self.assertEqual(len(h.rows()), 1)


class HeaderFormTests(LaneTestsBase):
    def test_compact_header_names(self):
        h = self.h
        data = (datagram()
                .replace(b"\r\nVia: ", b"\r\nv: ").replace(b"\r\nFrom: ", b"\r\nf: ")
                .replace(b"\r\nTo: ", b"\r\nt: ").replace(b"\r\nCall-ID: ", b"\r\ni: ")
                .replace(b"\r\nContent-Type: ", b"\r\nc: ")
                .replace(b"\r\nContent-Length: ", b"\r\nl: "))
        self.assertTrue(h.take(data))
        h.flush()
        h.session.answer()
        h.flush()
        [(response, _raw, _addr)] = h.responses()
        self.assertAccepted(response, data)
        [row] = h.rows()
        self.assertEqual((row["call_id"], row["body"]), ("call-1", "hello"))

    def test_to_tag_after_whitespace(self):
        """
        RFC 3261 25.1: SEMI = SWS ";" SWS, so C{To: <...> ; tag=abc} has a
        tag; the answer must keep that one tag (as the full path does), not
        add a second.
        """
        h = self.h
        data = datagram().replace(b"To: <sip:+4915112345678@gw.example>",
                                  b"To: <sip:+4915112345678@gw.example> ; tag=abc")
        h.smpp.auto = True
        h.receive(data)
        if h.session.submits:
            h.session.answer()
        h.flush()
        [(response, raw, _addr)] = h.finals()
        to_line = [line for line in raw.split(b"\r\n") if line.startswith(b"To:")][0]
        self.assertEqual(to_line.lower().count(b"tag="), 1, to_line)
        self.assertEqual(response.to.params.get("tag"), "abc")


class AcrossPathsTests(LaneTestsBase):
    """
    Duplicate recognition must not depend on which path stored a message:
    the lane and the full path compute the same key (exactly once).
    """

    def lane_first(self, sender):
        h = self.h
        self.assertTrue(h.take(datagram(sender=sender)))
        h.flush()
        h.session.answer()
        h.flush()
        h.smpp.unbound = {"smsc1", "smsc2"}  # the lane declines: the full path
        h.smpp.auto = True
        h.receive(datagram(sender=sender, branch="z9hG4bKagain"))
        h.flush(1)
        self.assertEqual(h.lane.stats["declined"], 1)
        self.assertEqual([r.status for r, _d, _a in h.finals()], [202, 202])
        self.assertEqual(h.smpp.calls, [])  # not submitted again
        self.assertEqual(len(h.rows()), 1)

    def full_first(self, sender):
        h = self.h
        h.smpp.unbound = {"smsc1", "smsc2"}
        h.smpp.auto = True
        h.receive(datagram(sender=sender))
        h.flush(1)
        self.assertEqual(len(h.smpp.calls), 1)
        h.smpp.unbound = set()
        h.receive(datagram(sender=sender, branch="z9hG4bKagain"))
        h.flush(1)
        self.assertEqual(h.lane.stats["taken"], 1)
        self.assertEqual(h.session.submits, [])  # recognised: not submitted again
        self.assertEqual([r.status for r, _d, _a in h.finals()], [202, 202])
        self.assertEqual(len(h.rows()), 1)

    def test_lane_then_full_path(self):
        self.lane_first("sip:+4930123@example.org")

    def test_full_path_then_lane(self):
        self.full_first("sip:+4930123@example.org")

    def test_escaped_sender_lane_then_full_path(self):
        self.lane_first("sip:%2B4930123@example.org")

    def test_escaped_sender_full_path_then_lane(self):
        self.full_first("sip:%2B4930123@example.org")


def _comparable(row):
    return {k: v for k, v in row.items()
            if k not in ("id", "created_at", "updated_at", "concat_ref", "events")}


class SameAsFullPathTests(SynchronousTestCase):
    """The lane stores and answers what the full path does for the same MESSAGE."""

    inputs = [
        dict(body="hello @ world {ok}", call_id="a"),
        dict(body="Grüße 😀", call_id="b", to="+4915199999999"),
        dict(body="shop", call_id="c", sender="sip:Shop@example.org", to="015112345"),
        dict(body="national", call_id="d", sender="sip:0301234@example.org;user=phone"),
        dict(body="", call_id="e"),
        dict(body="quoted", call_id="f", content_type='text/plain; charset="utf-8"'),
        dict(body="display", call_id="g",
             replace=(b"From: <", b'From: "Alice B." <')),
        dict(body="bare", call_id="h",
             replace=(b"From: <sip:+4930123@example.org>", b"From: sip:+4930123@example.org")),
        dict(body="port", call_id="i", sender="sip:+4930123@Example.ORG:5070"),
        dict(body="separators", call_id="j", to="+49-151-2345678"),
        dict(body="zeros", call_id="k", to="004915112345678", sender="sip:4930123@example.org"),
        dict(body="ascii", call_id="l", content_type="text/plain; charset=US-ASCII"),
    ]

    def run_path(self, lane: bool, **config):
        h = LaneHarness(self, lane=lane, **config)
        h.smpp.auto = not lane
        for n, kw in enumerate(self.inputs):
            kw = dict(kw)
            old, new = kw.pop("replace", (b"", b""))
            h.receive(datagram(**kw).replace(old, new, 1) if old else datagram(**kw))
            if lane and h.session.submits and len(h.session.submits) == n + 1:
                h.session.answer(message_id=f"{n + 1:x}")
                h.flush()
            h.flush()
        h.flush(1)
        return h

    def compare(self, **config):
        fast = self.run_path(True, **config)
        full = self.run_path(False, **config)
        self.assertEqual(fast.lane.stats["taken"], len(self.inputs))
        self.assertEqual(fast.smpp.calls, [])
        fast_rows = sorted(fast.rows(), key=lambda r: r["call_id"])
        full_rows = sorted(full.rows(), key=lambda r: r["call_id"])
        self.assertEqual(len(full_rows), len(self.inputs))
        for a, b in zip(fast_rows, full_rows):
            self.assertEqual(_comparable(a), _comparable(b), a["call_id"])
            self.assertEqual([(p["seq"], p["state"], p["smsc_message_id"])
                              for p in fast.row(a["id"])["parts"]],
                             [(p["seq"], p["state"], p["smsc_message_id"])
                              for p in full.row(b["id"])["parts"]])
        # the submit_sm: same fields
        lane_pdus = [smpp_pdu.decode(e).params for _d, _r, e in fast.session.submits]
        full_params = [c[1] for c in full.smpp.calls]
        self.assertEqual(len(lane_pdus), len(full_params))
        for got, want in zip(lane_pdus, full_params):
            for name, value in want.items():
                self.assertEqual(got[name], value, name)
        # the answers: same status and copied fields
        fast_answers = fast.finals()
        full_answers = full.finals()
        self.assertEqual(len(fast_answers), len(self.inputs))
        for (a, _ra, addr_a), (b, _rb, addr_b) in zip(fast_answers, full_answers):
            self.assertEqual((a.status, addr_a), (b.status, addr_b))
            for name in ("Via", "From", "Call-ID", "CSeq"):
                self.assertEqual(a.headers.get_all(name), b.headers.get_all(name), name)
            self.assertEqual(a.to.uri, b.to.uri)

    def test_submitted_mode(self):
        self.compare()

    def test_accepted_mode_with_receipts(self):
        self.compare(sip_reply="accepted", receipts="text")

    def test_escaped_sender(self):
        """C{sip:%2B4930123@...}: the full path stores the URI as parsed (unescaped)."""
        self.inputs = [dict(body="escaped", call_id="x", sender="sip:%2B4930123@example.org")]
        self.compare()


class BacklogSocket(FakeSocket):
    """A UDP socket whose receive queue (SO_MEMINFO) the test sets."""

    queued = 0

    def getsockopt(self, level, option, size):
        assert (level, option, size) == (socket.SOL_SOCKET, 55, 4)
        return struct.pack("=I", self.queued)


class BacklogTests(LaneTestsBase):
    """[gateway] max_backlog: 503 at once while the socket's backlog is high."""

    def setUp(self):
        super().setUp()
        self.h.socket = BacklogSocket()
        self.h.proto.transport.socket = self.h.socket
        self.h.lane.max_backlog = 10000

    def send(self, first, count):
        for n in range(first, first + count):
            self.assertTrue(self.h.take(datagram(call_id=f"b{n}")))
        self.h.flush()

    def test_sheds_until_half(self):
        h = self.h
        self.send(0, 16)  # the 16th MESSAGE checks the queue: low
        self.assertFalse(h.lane.shedding)
        h.socket.queued = 20000
        self.send(16, 16)  # the 32nd sees it high: from then on 503
        self.assertTrue(h.lane.shedding)
        self.send(32, 3)
        sheds = [r for r, _data, _addr in h.responses() if r.status == 503]
        self.assertEqual(len(sheds), 4)  # the 32nd and the next three
        self.assertEqual(sheds[0].headers.get("Retry-After"), "60")
        self.assertEqual(h.lane.stats["shed"], 4)
        self.assertEqual(h.gateway.mt.shed, 4)
        self.assertEqual(len(h.session.submits), 31)  # nothing shed was stored or submitted
        self.assertEqual(len(h.rows()), 31)
        h.socket.queued = 6000  # above half: still shedding
        self.send(35, 1)
        self.assertTrue(h.lane.shedding)
        h.socket.queued = 4000
        self.send(36, 1)
        self.assertFalse(h.lane.shedding)
        self.assertEqual(len(h.session.submits), 32)

    def test_retransmission_of_a_shed_message_gets_503_again(self):
        h = self.h
        h.socket.queued = 20000
        h.lane.shedding = True
        data = datagram(call_id="again")
        self.assertTrue(h.take(data))
        h.socket.queued = 0
        h.lane.shedding = False
        self.assertTrue(h.take(data))  # a retransmission: the same answer
        self.assertEqual([r.status for r, _d, _a in h.responses()], [503, 503])
        self.assertEqual(h.session.submits, [])

    def test_not_linux_never_sheds(self):
        h = self.h
        h.socket = FakeSocket()  # no getsockopt
        h.proto.transport.socket = h.socket
        self.send(0, 16)
        self.assertEqual(h.lane.max_backlog, 0)
        self.assertEqual(len(h.session.submits), 16)

    def test_sheds_while_the_oldest_answer_is_late(self):
        h = self.h
        h.lane.max_backlog = 0
        h.lane.max_delay = 0.25
        self.send(0, 15)  # stored and submitted, not answered by the SMSC
        h.flush(0.3)
        self.send(15, 1)  # the 16th checks: the oldest waits 0.3 s > 0.25
        self.assertTrue(h.lane.shedding)
        self.assertEqual([r.status for r, _d, _a in h.responses()], [503])
        for index in range(len(h.session.submits)):
            h.session.answer(index)  # the SMSC answers them all: 202s
        h.flush()
        self.send(16, 1)  # nothing waits now: taken again
        self.assertFalse(h.lane.shedding)
        self.assertEqual(len(h.session.submits), 16)
        self.assertEqual(sorted(r.status for r, _d, _a in h.responses()), [202] * 15 + [503])


class AsciiTextTests(SynchronousTestCase):
    """The lane's shortcut for texts that are the same in ASCII and GSM."""

    def test_same_segments_as_split_for(self):
        import random
        import string

        from gwsms.core import text
        from gwsms.core.fastmt import _GSM_AS_ASCII
        from gwsms.core.mtjob import coding_preference, split_for

        rnd = random.Random(5)
        safe = string.ascii_letters + string.digits + " !\"#%&'()*+,-./:;<=>?\r\n"
        unsafe = "@$_`[]{}~^|\\£é€\t"
        config = GatewayConfig()
        taken = 0
        for dc0 in ("gsm", "ascii", "latin1"):
            for coding in ("auto", "latin1", "ucs2"):
                for default_dc in (0, 1, 3, 8):
                    link = make_link("x", dc0_charset=dc0, coding=coding,
                                     default_data_coding=default_dc)
                    for _ in range(100):
                        body = "".join(rnd.choice(safe) for _ in range(rnd.randint(0, 170)))
                        if rnd.random() < 0.3:
                            spot = rnd.randint(0, len(body))
                            body = body[:spot] + rnd.choice(unsafe) + body[spot:]
                        data = body.encode("utf-8")
                        if len(data) <= 160 and _GSM_AS_ASCII(data) is not None and \
                                coding_preference(link, body) == "gsm":
                            taken += 1
                            self.assertEqual(
                                split_for(body, link, config, 7),
                                [text.Segment(data, 0, {}, text.DC_DEFAULT, body)], body)
        self.assertGreater(taken, 300)
