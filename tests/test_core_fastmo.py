"""
Tests for L{gwsms.core.fastmo}: the SMPP -> SIP lane, on a Clock with a
fake UDP socket and the real store (SQLite file, synchronous).
"""

from __future__ import annotations

import socket

from twisted.trial.unittest import SynchronousTestCase

from gwsms.core import fastmo
from gwsms.core.mo import _GRACE, single_text
from gwsms.core.routing import Route
from gwsms.sip import message as sipmsg
from gwsms.sip.transport import TransportLayer
from gwsms.sip.ua import MessageUAC
from gwsms.config import SipConfig
from gwsms.smpp import pdu as pdu_module
from gwsms.smpp.constants import CommandStatus as S
from gwsms.store.messages import MO, dedup_key
from tests.test_core_gateway import Harness, deliver_pdu
from tests.test_core_mo import Binding, FakeRegistrar

UAS = ("10.0.0.9", 5080)
SENT_BY = ("10.0.0.1", 5060)


class FakeSocket:
    family = socket.AF_INET

    def __init__(self):
        self.sent = []
        self.error = None
        self.options = {(socket.SOL_SOCKET, socket.SO_RCVBUF): 212992}

    def getsockopt(self, level, name):
        return self.options[level, name]

    def setsockopt(self, level, name, value):
        self.options[level, name] = value

    def sendto(self, data, addr):
        if self.error is not None:
            raise self.error
        self.sent.append((data, addr))


class FakeLayer:
    """The parts of a TransportLayer the lane uses."""

    def __init__(self):
        self.fast_paths = []
        self.socket = FakeSocket()
        transport = type("Port", (), {"socket": self.socket})()
        protocol = type("Proto", (), {"transport": transport, "sent_by": SENT_BY})()
        self.listener = type("Listener", (), {"protocol": protocol})()

    def udp_sender(self, ipv6=False):
        return self.listener.protocol


def mo_route(uri=f"sip:bench@{UAS[0]}:{UAS[1]}"):
    return Route(direction="mo", prefix="", sip_uri=uri)


def response(data: bytes, status=200, reason="OK", method="MESSAGE", via=None) -> bytes:
    """A response to the request C{data} as a UAS would send it."""
    request = sipmsg.parse_message(data)
    top = via or request.headers.get("Via")
    return (f"SIP/2.0 {status} {reason}\r\nVia: {top}\r\n"
            f"From: {request.headers.get('From')}\r\nTo: {request.headers.get('To')};tag=u1\r\n"
            f"Call-ID: {request.call_id}\r\nCSeq: 1 {method}\r\n"
            "Content-Length: 0\r\n\r\n").encode()


class LaneTestsBase(SynchronousTestCase):
    routes = None

    def setUp(self):
        routes = self.routes if self.routes is not None else [mo_route()]
        self.h = h = Harness(self, routes=routes)
        self.layer = FakeLayer()
        self.lane = h.gateway.set_fast_mo(self.layer, t1=0.5, t2=4.0)
        h.start()

    @property
    def sent(self):
        return [data for data, _addr in self.layer.socket.sent]

    def deliver(self, pdu, link="smsc1"):
        d = self.h.gateway.deliver_received(link, pdu)
        self.h.flush()
        return d

    def answer(self, data, status=200, reason="OK", **kw):
        return self.lane.uac.datagram_received(None, response(data, status, reason, **kw), UAS)


class WireTests(LaneTestsBase):
    def test_request_as_the_slow_path_builds_it(self):
        """Byte for byte what MessageUAC + TransportLayer send (random parts aside)."""
        text = "Grüße 😀 {x}"
        d = self.deliver(deliver_pdu(text=text.encode("utf-16-be"), data_coding=8))
        self.assertEqual(self.successResultOf(d), S.ESME_ROK)
        [(data, addr)] = self.layer.socket.sent
        self.assertEqual(addr, UAS)
        ours = sipmsg.parse_message(data)
        branch = ours.top_via.branch
        self.assertTrue(branch.startswith(fastmo.PREFIX))
        [row] = self.h.rows()
        uac = MessageUAC(self.h.sip_config, None, None)
        slow = uac.build_request(
            f"sip:bench@{UAS[0]}:{UAS[1]}",
            "sip:+4915112345678@gw.example", "sip:4930123@gw.example", text,
            "text/plain;charset=UTF-8",
            (("X-SMSC", "smsc1"), ("X-Gwsms-Message-Id", str(row["id"]))),
            call_id=ours.call_id, from_tag=ours.from_.params["tag"])
        slow.headers.replace_first("Via", f"SIP/2.0/UDP 0.0.0.0;branch={branch}")
        TransportLayer(self.h.clock)._stamp_via(slow, "udp", SENT_BY)
        self.assertEqual(data, slow.to_bytes())
        self.assertTrue(ours.call_id.endswith("@gw.example"))

    def test_target_without_user_gets_the_destination(self):
        self.h.gateway.set_routes([mo_route(f"sip:{UAS[0]}:{UAS[1]};user=phone")])
        self.deliver(deliver_pdu())
        [data] = self.sent
        self.assertTrue(data.startswith(
            f"MESSAGE sip:4930123@{UAS[0]}:{UAS[1]};user=phone SIP/2.0\r\n".encode()))

    def test_routes_reloaded(self):
        self.deliver(deliver_pdu(text=b"one"))
        self.h.gateway.set_routes([mo_route("sip:other@10.0.0.10:5090")])
        self.deliver(deliver_pdu(text=b"two"))
        self.assertEqual([addr for _data, addr in self.layer.socket.sent],
                         [UAS, ("10.0.0.10", 5090)])

    def test_outbound_uri_when_no_route(self):
        self.h.gateway.set_routes([])
        self.h.sip_config = self.h.gateway.ctx.sip_config = type(self.h.sip_config)(
            domain="gw.example", outbound_uri="sip:192.0.2.7")
        self.deliver(deliver_pdu())
        [(data, addr)] = self.layer.socket.sent
        self.assertEqual(addr, ("192.0.2.7", 5060))
        self.assertTrue(data.startswith(b"MESSAGE sip:4930123@192.0.2.7 SIP/2.0\r\n"))

    def test_texts_decoded_as_the_slow_path(self):
        for data, coding, text in ((b"Hello \x00\x1b\x65", 0, "Hello @€"),
                                   ("Grüße".encode("latin-1"), 3, "Grüße"),
                                   (b"plain", 1, "plain")):
            self.layer.socket.sent.clear()
            self.deliver(deliver_pdu(text=data, data_coding=coding,
                                     source=f"49151{coding}"))
            [sent] = self.sent
            self.assertEqual(sent.split(b"\r\n\r\n", 1)[1].decode("utf-8"), text)

    def test_ack_only_after_the_commit(self):
        h = Harness(self, routes=[mo_route()], commit_interval=0.01)
        layer = FakeLayer()
        h.gateway.set_fast_mo(layer)
        h.start()
        d = h.gateway.deliver_received("smsc1", deliver_pdu())
        h.clock.advance(0)
        h.clock.advance(0.005)
        self.assertNoResult(d)
        self.assertEqual(layer.socket.sent, [])
        h.clock.advance(0.01)
        self.assertEqual(self.successResultOf(d), S.ESME_ROK)
        self.assertEqual(len(layer.socket.sent), 1)


class OutcomeTests(LaneTestsBase):
    def test_2xx_delivered_in_one_batch(self):
        for i in range(3):
            self.deliver(deliver_pdu(text=b"m%d" % i))
        self.assertEqual(len(self.lane.inflight), 3)
        for data in self.sent:
            self.assertTrue(self.answer(data, 202, "Accepted"))
        self.assertEqual(self.lane.inflight, {})
        self.h.flush()
        rows = self.h.rows()
        self.assertEqual({(r["state"], r["sip_status"], r["attempts"], r["last_error"])
                          for r in rows}, {("delivered", 202, 1, "")})
        self.assertEqual({r["sip_to"] for r in rows}, {f"sip:bench@{UAS[0]}:{UAS[1]}"})
        self.assertEqual(self.h.gateway.mo.active, set())
        self.assertEqual(self.row_events(rows[0]["id"]), [])  # hot path: no history rows
        self.assertEqual(self.lane.stats["delivered"], 3)
        # a retransmitted 200 is absorbed (Timer K's job), not parsed again
        self.assertTrue(self.answer(self.sent[0]))
        self.assertEqual(self.lane.stats["absorbed"], 1)

    def row_events(self, message_id):
        return self.h.row(message_id)["events"]

    def test_timeout_hands_over_to_the_retry_machinery(self):
        h = self.h
        start = h.clock.seconds()
        self.deliver(deliver_pdu())
        [row] = h.rows()
        self.assertIn(row["id"], h.gateway.mo.active)
        h.clock.advance(6)  # past _GRACE: the queue runner must not start it again
        self.assertEqual(h.uac.sent, [])
        while not self.lane.stats["timeouts"]:
            h.clock.advance(0.125)
        self.assertAlmostEqual(h.clock.seconds() - start, 32, delta=0.25)
        h.clock.advance(0)
        row = h.row(row["id"])
        self.assertEqual((row["state"], row["attempts"], row["sip_status"]), ("queued", 1, 0))
        self.assertIn("no final response", row["last_error"])
        self.assertEqual([e["event"] for e in row["events"]], ["retry"])
        self.assertEqual(self.lane.stats["timeouts"], 1)
        self.assertEqual(self.lane.inflight, {})
        self.assertEqual(self.lane.uac._wheel, {})
        # then the slow path retries it (backoff retry_initial = 1 s)
        h.flush(2)
        self.assertEqual(len(h.uac.sent), 1)
        self.assertEqual(h.uac.sent[0]["headers"]["X-Gwsms-Message-Id"], str(row["id"]))
        row = h.row(row["id"])
        self.assertEqual((row["state"], row["attempts"]), ("delivered", 2))

    def test_retry_statuses(self):
        for status in (408, 480, 503):
            self.layer.socket.sent.clear()
            self.deliver(deliver_pdu(source=f"4915{status}"))
            [data] = self.sent
            self.answer(data, status, "Nope")
        self.h.flush()
        rows = self.h.rows()
        self.assertEqual(sorted((r["state"], r["sip_status"], r["attempts"]) for r in rows),
                         [("queued", 408, 1), ("queued", 480, 1), ("queued", 503, 1)])
        self.assertTrue(all(r["next_attempt_at"] > self.h.clock.seconds() for r in rows))
        self.assertEqual(self.h.gateway.mo.active, set())

    def test_other_answers_fail(self):
        self.deliver(deliver_pdu())
        [data] = self.sent
        self.answer(data, 404, "Not Found")
        self.h.flush()
        [row] = self.h.rows()
        self.assertEqual((row["state"], row["sip_status"]), ("failed", 404))
        self.assertIn("404 Not Found", row["last_error"])

    def test_auth_challenge_goes_to_the_slow_path(self):
        self.deliver(deliver_pdu())
        [data] = self.sent
        self.answer(data, 407, "Proxy Authentication Required")
        self.h.flush()
        [sent] = self.h.uac.sent
        self.assertEqual(sent["uri"], f"sip:bench@{UAS[0]}:{UAS[1]}")
        [row] = self.h.rows()
        self.assertEqual(row["state"], "delivered")  # the fake UAC answers 200

    def test_transport_error_is_retried(self):
        self.layer.socket.error = OSError(101, "Network is unreachable")
        self.deliver(deliver_pdu())
        self.h.flush()
        [row] = self.h.rows()
        self.assertEqual((row["state"], row["attempts"]), ("queued", 1))
        self.assertIn("unreachable", row["last_error"])

    def test_full_socket_buffer_is_a_lost_datagram(self):
        self.layer.socket.error = BlockingIOError()
        self.deliver(deliver_pdu())
        self.assertEqual(self.lane.stats["send_dropped"], 1)
        self.layer.socket.error = None
        for _ in range(6):
            self.h.clock.advance(0.125)
        self.assertEqual(len(self.sent), 1)  # Timer E sent it

    def test_max_pending_leaves_it_to_the_queue_runner(self):
        h = Harness(self, routes=[mo_route()], max_pending=1)
        layer = FakeLayer()
        lane = h.gateway.set_fast_mo(layer)
        h.start()
        for i in range(2):
            h.gateway.deliver_received("smsc1", deliver_pdu(text=b"x%d" % i))
        h.flush()
        self.assertEqual(len(layer.socket.sent), 1)
        self.assertEqual(lane.stats["not_sent"], 1)
        h.flush(_GRACE + 1)
        self.assertEqual(len(h.uac.sent), 1)  # the queue runner, through the slow path


class PerTurnWritesTests(OutcomeTests):
    """Engines whose batches run in a pool thread: batches sealed as the writer hands them over."""

    def setUp(self):
        super().setUp()
        self.h.writer.fills_in_reactor = False


class TimerTests(LaneTestsBase):
    def send_times(self, until):
        times = []
        h = self.h
        while h.clock.seconds() < until:
            before = len(self.layer.socket.sent)
            h.clock.advance(0.0625)
            times += [h.clock.seconds()] * (len(self.layer.socket.sent) - before)
        return times

    def test_timer_e_doubles_to_t2(self):
        start = self.h.clock.seconds()
        self.deliver(deliver_pdu())
        times = [t - start for t in self.send_times(start + 20)]
        # RFC 3261: retransmit after 0.5, 1, 2, 4, 4, ... (one slot = T1/4 late at most)
        expected = [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5]
        self.assertEqual(len(times), len(expected))
        for got, want in zip(times, expected):
            self.assertTrue(want <= got <= want + 0.25, (times, expected))
        self.assertEqual(self.lane.stats["retransmissions"], len(expected))

    def test_provisional_makes_it_t2(self):
        start = self.h.clock.seconds()
        self.deliver(deliver_pdu())
        self.assertTrue(self.answer(self.sent[0], 100, "Trying"))
        times = [t - start for t in self.send_times(start + 13)]
        expected = [0.5, 4.5, 8.5, 12.5]
        self.assertEqual(len(times), len(expected), times)
        for got, want in zip(times, expected):
            self.assertTrue(want <= got <= want + 0.25, (times, expected))

    def test_timer_f_and_no_timer_left(self):
        start = self.h.clock.seconds()
        self.deliver(deliver_pdu())
        self.assertTrue(self.h.clock.getDelayedCalls())
        self.send_times(start + 32 + 0.25)
        self.assertEqual(self.lane.stats["timeouts"], 1)
        self.h.flush(0.25)
        self.assertIsNone(self.lane.uac._sweep)  # the sweep stops when nothing is open
        self.assertEqual(self.lane.uac._wheel, {})

    def test_answered_early_no_retransmission(self):
        self.deliver(deliver_pdu())
        self.answer(self.sent[0])
        self.send_times(self.h.clock.seconds() + 5)
        self.assertEqual(len(self.sent), 1)
        self.assertIsNone(self.lane.uac._sweep)


class MatchingTests(LaneTestsBase):
    def test_not_ours(self):
        self.deliver(deliver_pdu())
        [data] = self.sent
        lane = self.lane
        # a request, another branch, our branch below another Via, another method
        self.assertFalse(lane.uac.datagram_received(None, data, UAS))
        other = response(data, via="SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKother")
        self.assertFalse(lane.uac.datagram_received(None, other, UAS))
        top = sipmsg.parse_message(data).headers.get("Via")
        below = response(data, via=f"SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKx, {top}")
        self.assertFalse(lane.uac.datagram_received(None, below, UAS))
        self.assertFalse(lane.uac.datagram_received(None, response(data, method="OPTIONS"), UAS))
        self.assertEqual(len(lane.inflight), 1)

    def test_compact_and_lower_case_headers(self):
        self.deliver(deliver_pdu())
        [data] = self.sent
        raw = response(data).replace(b"\r\nVia:", b"\r\nv:").replace(b"CSeq:", b"cseq:")
        self.assertTrue(self.lane.uac.datagram_received(None, raw, UAS))
        self.assertEqual(self.lane.inflight, {})

    def test_responses_reach_the_lane_through_the_transport_layer(self):
        """The handler is registered in the transport layer's fast paths."""
        self.assertEqual(self.layer.fast_paths, [self.lane.uac.datagram_received])


class DedupTests(LaneTestsBase):
    def test_same_key_as_the_slow_path(self):
        for source, dest, coding, payload in (("4915112345678", "4930123", 0, b"hi"),
                                              ("Acme Shop", "+49 30", 8, b"\x00h"),
                                              ("", "1", 245, b"")):
            self.assertEqual(self.lane._key("smsc1", source, dest, coding, payload),
                             dedup_key(MO, "smsc1", source, dest, coding, payload))

    def test_twice_in_one_batch_and_later(self):
        h = self.h
        first = h.gateway.deliver_received("smsc1", deliver_pdu(seq=1))
        second = h.gateway.deliver_received("smsc1", deliver_pdu(seq=2))
        h.flush()
        third = self.deliver(deliver_pdu(seq=3))
        for d in (first, second, third):
            self.assertEqual(self.successResultOf(d), S.ESME_ROK)
        self.assertEqual(len(h.rows()), 1)
        self.assertEqual(len(self.sent), 1)
        self.assertEqual(self.lane.stats["duplicates"], 2)

    def test_duplicate_of_a_slow_path_message(self):
        h = self.h
        lane, h.gateway.fast_mo = h.gateway.fast_mo, None
        h.deliver("smsc1", deliver_pdu())
        self.assertEqual(len(h.uac.sent), 1)
        h.gateway.fast_mo = lane
        self.assertEqual(self.successResultOf(self.deliver(deliver_pdu())), S.ESME_ROK)
        self.assertEqual(len(h.rows()), 1)
        self.assertEqual(self.sent, [])

    def test_after_the_window_it_is_new(self):
        self.deliver(deliver_pdu())
        self.answer(self.sent[0])
        self.h.flush(self.h.config.dedup_window + 1)
        self.deliver(deliver_pdu())
        self.assertEqual(len(self.h.rows()), 2)


class FallbackTests(LaneTestsBase):
    def not_taken(self, pdu, link="smsc1"):
        self.assertIsNone(self.lane.take(link, pdu))

    def test_declined_by_deliver_then_is_not_tried_again(self):
        tries = []
        take_then = self.lane.take_then

        def counting(*args):
            tries.append(args[1])
            return take_then(*args)

        self.lane.take_then = counting
        gateway = self.h.gateway
        udh = bytes((5, 0, 3, 7, 2, 1)) + b"part"
        part = deliver_pdu(text=udh, esm_class=0x40)
        answers = []
        self.assertFalse(gateway.deliver_then("smsc1", part, answers.append))
        gateway.deliver_received("smsc1", part)  # what the session does next
        self.assertEqual(tries, [part])  # the lane was asked once
        plain = deliver_pdu(text=b"plain")
        gateway.deliver_received("smsc1", plain)  # a direct call still uses the lane
        self.assertEqual(tries, [part, plain])
        self.assertEqual(answers, [])

    def test_what_the_lane_leaves(self):
        udh = bytes((5, 0, 3, 7, 2, 1)) + b"part"
        self.not_taken(deliver_pdu(text=udh, esm_class=0x40))  # UDH part
        self.not_taken(deliver_pdu(esm_class=0x04))  # receipt
        self.not_taken(deliver_pdu(esm_class=0x08))  # SME ack
        self.not_taken(deliver_pdu(text=b"", tlvs={"message_payload": b"long"}))
        self.not_taken(deliver_pdu(tlvs={"sar_msg_ref_num": 1, "sar_total_segments": 2,
                                         "sar_segment_seqnum": 1}))
        self.not_taken(deliver_pdu(text=b"\x00\x01", data_coding=4))  # binary
        self.not_taken(pdu_module.make("data_sm", source_addr="4915112345678",
                                       destination_addr="4930123",
                                       tlvs={"message_payload": b"hi"}))
        self.not_taken(deliver_pdu(source=""))  # no address: the slow path fails it

    def test_targets_the_lane_leaves(self):
        for uri in ("sip:bench@proxy.example:5070", "sip:bench@10.0.0.9;transport=tcp",
                    "sips:bench@10.0.0.9", "sip:bench@10.0.0.9;maddr=10.0.0.10",
                    "tel:+4930123"):
            self.assertIsNone(fastmo.lane_target(uri), uri)
        self.assertEqual(fastmo.lane_target("sip:b@[2001:db8::1]:5070;transport=UDP"),
                         ("sip:b@[2001:db8::1]:5070;transport=UDP", "2001:db8::1", 5070))
        self.h.gateway.set_routes([mo_route("sip:bench@proxy.example:5070")])
        self.not_taken(deliver_pdu())
        self.h.deliver("smsc1", deliver_pdu())
        self.assertEqual(len(self.h.uac.sent), 1)  # the slow path sent it
        self.assertEqual(self.sent, [])

    def test_registered_contact_over_udp(self):
        """As the slow path: the contact first, sent where its REGISTER came from."""
        registrar = FakeRegistrar({"4930123": [Binding("sip:phone@192.168.1.5:5062",
                                                        "10.1.1.1:5062")]})
        self.h.gateway.attach(registrar=registrar)
        self.deliver(deliver_pdu())
        self.assertEqual(registrar.looked_up, ["4930123"])
        [(data, addr)] = self.layer.socket.sent
        self.assertEqual(addr, ("10.1.1.1", 5062))
        self.assertTrue(data.startswith(b"MESSAGE sip:phone@192.168.1.5:5062 SIP/2.0\r\n"))
        self.answer(data)
        self.h.flush()
        [row] = self.h.rows()
        self.assertEqual((row["state"], row["sip_to"]),
                         ("delivered", "sip:phone@192.168.1.5:5062"))

    def test_not_registered_goes_to_the_route(self):
        self.h.gateway.attach(registrar=FakeRegistrar({}))
        self.deliver(deliver_pdu())
        self.assertEqual([addr for _data, addr in self.layer.socket.sent], [UAS])

    def test_registered_over_tcp_goes_slow(self):
        registrar = FakeRegistrar({"4930123": [Binding("sip:phone@10.1.1.1:5062;transport=tcp",
                                                        "10.1.1.1:40000", "tcp")]})
        self.h.gateway.attach(registrar=registrar)
        self.deliver(deliver_pdu())
        self.assertEqual(self.sent, [])
        [sent] = self.h.uac.sent
        self.assertEqual(sent["uri"], "sip:phone@10.1.1.1:5062;transport=tcp")

    def test_no_registration_and_no_lane_target_goes_slow(self):
        self.h.gateway.set_routes([mo_route("sip:bench@proxy.example")])
        self.h.gateway.attach(registrar=FakeRegistrar({}))
        self.deliver(deliver_pdu())  # stored by the lane: a registration might have come
        self.assertEqual(self.sent, [])
        self.assertEqual(self.h.uac.sent[0]["uri"], "sip:bench@proxy.example")

    def test_no_listener_of_that_family_goes_slow(self):
        self.h.gateway.set_routes([mo_route("sip:bench@[2001:db8::1]:5070")])
        self.deliver(deliver_pdu())
        self.assertEqual(self.sent, [])
        self.assertEqual(len(self.h.uac.sent), 1)
        self.assertEqual(self.lane.stats["handed_over"], 1)

    def test_large_request_goes_slow(self):
        """Over 1300 bytes: the slow path moves it to TCP (RFC 3261 18.1.1)."""
        self.h.gateway.set_routes([])
        self.h.gateway.ctx.sip_config = SipConfig(
            domain="gw.example", outbound_uri=f"sip:{'u' * 700}@{UAS[0]}:{UAS[1]}")
        self.deliver(deliver_pdu(text="€".encode("utf-16-be") * 120, data_coding=8))
        self.assertEqual(self.sent, [])
        self.assertEqual(len(self.h.uac.sent), 1)
        self.deliver(deliver_pdu(text=b"short", source="1"))
        self.assertEqual(len(self.sent), 1)


class LagTests(LaneTestsBase):
    def test_a_late_sweep_reads_before_it_retransmits(self):
        """After a reactor stall the answer waiting in the buffer wins."""
        self.deliver(deliver_pdu())
        self.h.clock.advance(0.125)
        self.h.clock.advance(2.0)  # the reactor was busy for 2 s
        self.assertEqual(len(self.sent), 1)
        self.assertTrue(self.answer(self.sent[0]))  # read on the next poll
        self.h.clock.advance(0.125)
        self.assertEqual(len(self.sent), 1)
        self.assertEqual(self.lane.stats["retransmissions"], 0)

    def test_still_retransmits_on_the_next_sweep(self):
        self.deliver(deliver_pdu())
        self.h.clock.advance(0.125)
        self.h.clock.advance(2.0)
        self.h.clock.advance(0.125)
        self.assertEqual(len(self.sent), 2)


class DecodeTests(SynchronousTestCase):
    def test_same_text_as_decode_payload(self):
        from gwsms.core.inbound import decode_payload

        payloads = [b"", b"Hello \x00\x1b\x65\x1b", bytes(range(256)), "Grüße".encode("latin-1"),
                    "😀 é".encode("utf-16-be"), b"\xd8\x00x"]
        for dc0 in ("gsm", "ascii", "latin1"):
            for coding in (0, 1, 2, 3, 4, 5, 6, 7, 8, 0x10, 0x11, 0x18, 0xF0, 0xF4):
                for payload in payloads:
                    want = decode_payload(payload, coding, dc0)
                    got = single_text(payload, coding, dc0)
                    self.assertEqual(got, None if want.binary else want.text,
                                     (dc0, coding, payload))


class ResponseBranchTests(SynchronousTestCase):
    """L{fastuac.response_branch}: the common forms fast, the rest by the header rules."""

    def parse(self, head, body=b""):
        from gwsms.sip.fastuac import response_branch

        return response_branch(head.replace(b"\n", b"\r\n") + b"\r\n" + body)

    def test_forms(self):
        ours = b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKgwfab12;rport=5060"
        cases = [
            (b"SIP/2.0 200 OK\nVia: %s\nCSeq: 1 MESSAGE\n" % ours, (200, "z9hG4bKgwfab12")),
            (b"SIP/2.0 180 Ringing\nTo: x\nVIA : %s\ncseq:  7   message\n" % ours,
             (180, "z9hG4bKgwfab12")),
            (b"SIP/2.0 503 Busy\nv: %s, SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKx\n"
             b"CSeq: 1 MESSAGE \n" % ours, (503, "z9hG4bKgwfab12")),
            (b"SIP/2.0 200 OK\nVia: SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKx, %s\n"
             b"CSeq: 1 MESSAGE\n" % ours, None),  # ours is not the top one
            (b"SIP/2.0 200 OK\nv: SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKx\nVia: %s\n"
             b"CSeq: 1 MESSAGE\n" % ours, None),
            (b"SIP/2.0 200 OK\nVia: %s\nCSeq: 1 OPTIONS\n" % ours, None),
            (b"SIP/2.0 200 OK\nVia: %s\nCSeq: 1 MESSAGEX\n" % ours, None),
            (b"SIP/2.0 2x0 OK\nVia: %s\nCSeq: 1 MESSAGE\n" % ours, None),
            (b"MESSAGE sip:x SIP/2.0\nVia: %s\nCSeq: 1 MESSAGE\n" % ours, None),
        ]
        for head, want in cases:
            self.assertEqual(self.parse(head), want, head)

    def test_common_form_without_the_header_rules(self):
        """
        "CSeq: <number> MESSAGE" (what the lane sends, echoed) is read
        without the general header-rule scan, whatever the number's length.
        """
        from gwsms.sip import fastuac

        def scan(*args):
            raise AssertionError("the header-rule scan ran")

        self.patch(fastuac, "_CSEQ", scan)
        ours = b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKgwfab12"
        for number in (b"1", b"42", b"4294967295"):
            self.assertEqual(
                self.parse(b"SIP/2.0 200 OK\nVia: %s\nCSeq: %s MESSAGE\n" % (ours, number)),
                (200, "z9hG4bKgwfab12"), number)

    def test_cseq_in_the_body_does_not_count(self):
        ours = b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKgwfab12"
        head = b"SIP/2.0 200 OK\nVia: %s\nCSeq: 1 OPTIONS\nContent-Length: 17\n" % ours
        self.assertIsNone(self.parse(head, b"\r\nCSeq: 1 MESSAGE"))


class SustainedLagTests(LaneTestsBase):
    def test_held_back_once_not_forever(self):
        """Every sweep late: a lost MESSAGE still goes again (every other sweep)."""
        self.deliver(deliver_pdu())
        for _ in range(4):
            self.h.clock.advance(0.5)  # each sweep two slots late
        self.assertGreaterEqual(len(self.sent), 2)
