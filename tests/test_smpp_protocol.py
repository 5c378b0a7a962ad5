"""
Tests for L{gwsms.smpp.protocol}: framing, sequence numbers, the window,
the SMPP 3.4 section 7.2 timers and the mandatory answers, all on a
L{Clock} and a L{StringTransport}.  What the protocol writes is decoded
with the codec and checked field by field.
"""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from gwsms.smpp import pdu as smpp_pdu
from gwsms.smpp.constants import CommandId, CommandStatus
from gwsms.smpp.protocol import (
    MAX_SEQUENCE,
    SMPPConnectionLost,
    SMPPGenericNack,
    SMPPProtocol,
    SMPPProtocolError,
    SMPPTimeoutError,
)


def split_pdus(data: bytes) -> list:
    """Decode a stream of PDUs as written by a protocol."""
    out = []
    while data:
        length = int.from_bytes(data[:4], "big")
        out.append(smpp_pdu.decode(data[:length]))
        data = data[length:]
    return out


def take(transport: StringTransport) -> list:
    """Decode and clear what was written to C{transport}."""
    pdus = split_pdus(transport.value())
    transport.clear()
    return pdus


def wire(command: str, seq: int = 1, status: int = 0, tlvs=None, **params) -> bytes:
    """Encode one PDU as the peer would send it."""
    return smpp_pdu.encode(smpp_pdu.make(command, seq, status, tlvs=tlvs, **params))


class ProtocolTestsMixin:
    """Builds a connected SMPPProtocol; C{feed} delivers bytes."""

    window = 3

    def setUp(self):
        self.clock = Clock()
        self.proto = SMPPProtocol(
            self.clock,
            name="test",
            window=self.window,
            response_timeout=10.0,
            enquire_link_interval=30.0,
            inactivity_timeout=0.0,
            session_init_timeout=5.0,
            max_command_length=1024,
        )
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)

    def feed(self, data: bytes) -> None:
        self.proto.dataReceived(data)

    def lose(self):
        self.proto.connectionLost(Failure(Exception("test closed it")))


class FramingTests(ProtocolTestsMixin, SynchronousTestCase):
    """
    Requests from the peer are answered; several PDUs per read and PDUs
    split across reads are framed correctly.
    """

    def test_enquire_link_echoes_sequence(self):
        self.feed(wire("enquire_link", 77))
        [resp] = take(self.transport)
        self.assertEqual(resp.command_id, CommandId.enquire_link_resp)
        self.assertEqual(resp.sequence_number, 77)
        self.assertEqual(resp.command_status, 0)

    def test_several_pdus_in_one_read(self):
        self.feed(wire("enquire_link", 1) + wire("enquire_link", 2) + wire("enquire_link", 3))
        self.assertEqual([p.sequence_number for p in take(self.transport)], [1, 2, 3])

    def test_partial_pdu_waits(self):
        data = wire("enquire_link", 9) + wire("enquire_link", 10)
        self.feed(data[:20])
        self.assertEqual([p.sequence_number for p in take(self.transport)], [9])
        self.feed(data[20:])
        self.assertEqual([p.sequence_number for p in take(self.transport)], [10])

    def test_unbind_from_peer(self):
        self.feed(wire("unbind", 5))
        [resp] = take(self.transport)
        self.assertEqual(resp.command_id, CommandId.unbind_resp)
        self.assertEqual(resp.sequence_number, 5)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.proto.close_reason, "peer sent unbind")

    def test_unknown_command_id_gets_generic_nack(self):
        self.feed((16).to_bytes(4, "big") + (0x00000777).to_bytes(4, "big") + bytes(4)
                  + (42).to_bytes(4, "big"))
        [nack] = take(self.transport)
        self.assertEqual(nack.command_id, CommandId.generic_nack)
        self.assertEqual(nack.command_status, CommandStatus.ESME_RINVCMDID)
        self.assertEqual(nack.sequence_number, 42)
        # The session survives.
        self.assertFalse(self.transport.disconnecting)
        self.feed(wire("enquire_link", 43))
        self.assertEqual(take(self.transport)[0].sequence_number, 43)

    def test_malformed_known_request_gets_its_resp_with_error(self):
        good = wire("submit_sm", 8, destination_addr="123", short_message=b"hello")
        # Cut the body short but fix command_length: the body is truncated.
        bad = len(good[:-3]).to_bytes(4, "big") + good[4:-3]
        self.feed(bad)
        [resp] = take(self.transport)
        self.assertEqual(resp.command_id, CommandId.submit_sm_resp)
        self.assertEqual(resp.sequence_number, 8)
        self.assertNotEqual(resp.command_status, 0)
        self.assertEqual(self.proto.stats["malformed"], 1)
        self.assertFalse(self.transport.disconnecting)

    def test_garbage_body_gets_generic_nack_for_pdu_without_resp(self):
        # alert_notification with a body of garbage: no resp exists -> generic_nack.
        body = b"\xff" * 5
        data = (16 + len(body)).to_bytes(4, "big") + int(CommandId.alert_notification).to_bytes(
            4, "big") + bytes(4) + (11).to_bytes(4, "big") + body
        self.feed(data)
        [nack] = take(self.transport)
        self.assertEqual(nack.command_id, CommandId.generic_nack)
        self.assertEqual(nack.sequence_number, 11)
        self.assertNotEqual(nack.command_status, 0)

    def test_short_command_length_closes(self):
        self.feed((8).to_bytes(4, "big") + bytes(12))
        self.assertTrue(self.transport.disconnecting)
        self.assertIn("command_length 8", self.proto.close_reason)
        [nack] = take(self.transport)
        self.assertEqual(nack.command_status, CommandStatus.ESME_RINVCMDLEN)
        # Later data is ignored.
        self.feed(wire("enquire_link", 1))
        self.assertEqual(self.transport.value(), b"")

    def test_oversized_command_length_closes(self):
        self.feed((1025).to_bytes(4, "big"))
        self.assertTrue(self.transport.disconnecting)
        self.assertIn("command_length 1025", self.proto.close_reason)

    def test_max_command_length_accepted(self):
        body = b"x" * (1024 - 16)
        data = (1024).to_bytes(4, "big") + (0x777).to_bytes(4, "big") + bytes(4) + (3).to_bytes(
            4, "big") + body
        self.feed(data)
        self.assertFalse(self.transport.disconnecting)
        [nack] = take(self.transport)
        self.assertEqual(nack.command_status, CommandStatus.ESME_RINVCMDID)

    def test_unsupported_request_refused(self):
        self.feed(wire("submit_sm", 4, destination_addr="1"))
        [resp] = take(self.transport)
        self.assertEqual(resp.command_id, CommandId.submit_sm_resp)
        self.assertEqual(resp.command_status, CommandStatus.ESME_RINVCMDID)
        self.assertEqual(resp.sequence_number, 4)


class FramingByteByByteTests(FramingTests):
    """The same, delivered one byte per dataReceived."""

    def feed(self, data: bytes) -> None:
        for i in range(len(data)):
            self.proto.dataReceived(data[i : i + 1])

    def test_a_pdu_is_copied_once_when_whole(self):
        """
        Reads that end inside a PDU only add to the buffer: it is copied out
        once the PDU is whole, not at every read (which, one octet at a time,
        would cost the square of the PDU's size).
        """

        class Buffer(bytearray):
            emptied = 0

            def clear(self):
                Buffer.emptied += 1
                super().clear()

        self.proto._buffer = Buffer()
        data = wire("submit_sm", 7, destination_addr="123", short_message=b"x" * 200)
        self.feed(data + wire("enquire_link", 8))
        self.assertEqual([p.sequence_number for p in take(self.transport)], [7, 8])
        # once per whole PDU (the first octet of each was read without a copy)
        self.assertEqual(Buffer.emptied, 2)


class RequestTests(ProtocolTestsMixin, SynchronousTestCase):
    """Sequence numbers, the outstanding map, the window and the response timer."""

    def setUp(self):
        super().setUp()
        self.proto.mark_bound()

    def send(self, command="query_sm", **params):
        return self.proto.send_request(smpp_pdu.make(command, **params))

    def test_sequence_starts_at_one(self):
        self.send(message_id="a")
        self.send(message_id="b")
        self.assertEqual([p.sequence_number for p in take(self.transport)], [1, 2])

    def test_sequence_wraps(self):
        self.proto._next_sequence = MAX_SEQUENCE
        self.send(message_id="a")
        self.send(message_id="b")
        self.assertEqual(
            [p.sequence_number for p in take(self.transport)], [MAX_SEQUENCE, 1]
        )

    def test_sequence_skips_outstanding(self):
        self.send(message_id="a")  # 1 stays outstanding
        self.proto._next_sequence = MAX_SEQUENCE
        self.send(message_id="b")
        self.send(message_id="c")
        self.assertEqual([p.sequence_number for p in take(self.transport)], [1, MAX_SEQUENCE, 2])

    def test_response_fires_deferred(self):
        d = self.send(message_id="a")
        [req] = take(self.transport)
        self.feed(smpp_pdu.encode(req.response(message_id="a", final_date="", message_state=2,
                                               error_code=0)))
        resp = self.successResultOf(d)
        self.assertEqual(resp.command_id, CommandId.query_sm_resp)
        self.assertEqual(resp.params["message_state"], 2)
        self.assertEqual(self.proto.outstanding, {})
        self.assertEqual(self.clock.getDelayedCalls(), [self.proto._enquire_call])

    def test_error_status_still_fires(self):
        d = self.send(message_id="a")
        [req] = take(self.transport)
        self.feed(smpp_pdu.encode(req.response(CommandStatus.ESME_RINVMSGID)))
        self.assertEqual(self.successResultOf(d).command_status, CommandStatus.ESME_RINVMSGID)

    def test_response_timeout(self):
        d = self.send(message_id="a")
        self.clock.advance(9.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        failure = self.failureResultOf(d, SMPPTimeoutError)
        self.assertEqual(failure.value.sequence_number, 1)
        self.assertEqual(self.proto.outstanding, {})
        self.assertEqual(self.proto.stats["timeouts"], 1)
        # A late response is dropped, not an error.
        self.feed(wire("query_sm_resp", 1, message_id="a"))
        self.assertEqual(self.proto.stats["unmatched"], 1)

    def test_timeout_override(self):
        d = self.proto.send_request(smpp_pdu.make("enquire_link"), windowed=False, timeout=2)
        self.clock.advance(2)
        self.failureResultOf(d, SMPPTimeoutError)

    def test_window_queues_fifo(self):
        ds = [self.send(message_id=str(i)) for i in range(5)]
        sent = take(self.transport)
        self.assertEqual([p.params["message_id"] for p in sent], ["0", "1", "2"])
        self.assertEqual(self.proto.queued, 2)
        self.assertEqual(self.proto.window_free(), 0)
        # The response to "1" frees a slot: "3" goes out, not "4".
        self.feed(smpp_pdu.encode(sent[1].response(message_id="1")))
        self.successResultOf(ds[1])
        [nxt] = take(self.transport)
        self.assertEqual(nxt.params["message_id"], "3")
        self.assertEqual(self.proto.queued, 1)
        # A timeout frees a slot too ("0", "2" and "3" were sent at t=0).
        self.clock.advance(10)
        for d in ds[0], ds[2], ds[3]:
            self.failureResultOf(d, SMPPTimeoutError)
        self.assertEqual([p.params["message_id"] for p in take(self.transport)], ["4"])
        self.clock.advance(10)
        self.failureResultOf(ds[4], SMPPTimeoutError)

    def test_unwindowed_requests_bypass_window(self):
        for i in range(3):
            self.send(message_id=str(i))
        self.send(message_id="queued")
        take(self.transport)
        self.proto.send_request(smpp_pdu.make("enquire_link"), windowed=False)
        [p] = take(self.transport)
        self.assertEqual(p.command_id, CommandId.enquire_link)

    def test_queued_request_cancel(self):
        for i in range(3):
            self.send(message_id=str(i))
        d = self.send(message_id="queued")
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.assertEqual(self.proto.queued, 0)

    def test_outstanding_request_cancel(self):
        d = self.send(message_id="x")
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.assertEqual(self.proto.outstanding, {})
        self.assertEqual(self.proto.window_free(), 3)

    def test_generic_nack_fails_request(self):
        d = self.send(message_id="a")
        [req] = take(self.transport)
        self.feed(wire("generic_nack", req.sequence_number, CommandStatus.ESME_RINVCMDLEN))
        failure = self.failureResultOf(d, SMPPGenericNack)
        self.assertEqual(failure.value.status, CommandStatus.ESME_RINVCMDLEN)
        self.assertEqual(failure.value.command, "query_sm")
        self.assertEqual(self.proto.outstanding, {})

    def test_generic_nack_unmatched(self):
        self.feed(wire("generic_nack", 99, CommandStatus.ESME_RINVCMDLEN))
        self.assertEqual(self.proto.stats["generic_nack_received"], 1)
        self.assertEqual(self.transport.value(), b"")

    def test_response_of_wrong_command_dropped(self):
        d = self.send(message_id="a")
        self.feed(wire("submit_sm_resp", 1, message_id="z"))
        self.assertNoResult(d)
        self.assertEqual(self.proto.stats["unmatched"], 1)

    def test_malformed_response_fails_request(self):
        d = self.send(message_id="a")
        # query_sm_resp with a message_id that is not NUL-terminated.
        data = (16 + 3).to_bytes(4, "big") + int(CommandId.query_sm_resp).to_bytes(4, "big") + \
            bytes(4) + (1).to_bytes(4, "big") + b"abc"
        self.feed(data)
        self.failureResultOf(d, SMPPProtocolError)
        self.assertEqual(self.transport.value()[-len(data):] != data, True)
        self.assertEqual(self.proto.outstanding, {})

    def test_encode_error_fails_at_once(self):
        d = self.proto.send_request(smpp_pdu.make("query_sm", message_id="x" * 100))
        self.failureResultOf(d, ValueError)
        self.assertEqual(self.proto.outstanding, {})

    def test_connection_lost_fails_everything(self):
        ds = [self.send(message_id=str(i)) for i in range(5)]
        self.lose()
        for d in ds:
            self.failureResultOf(d, SMPPConnectionLost)
        self.assertEqual(self.proto.outstanding, {})
        self.assertEqual(self.proto.queued, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        # Sending afterwards fails at once.
        self.failureResultOf(self.send(message_id="late"), SMPPConnectionLost)

    def test_callback_sending_again_keeps_fifo(self):
        order = []
        ds = [self.send(message_id=str(i)) for i in range(4)]
        sent = take(self.transport)

        def again(_):
            order.append("cb")
            self.send(message_id="from-callback")

        ds[0].addCallback(again)
        self.feed(smpp_pdu.encode(sent[0].response(message_id="0")))
        self.assertEqual(order, ["cb"])
        # "3" was queued first, so it went out; the new one waits.
        self.assertEqual([p.params["message_id"] for p in take(self.transport)], ["3"])
        self.assertEqual(self.proto.queued, 1)


class TimerTests(ProtocolTestsMixin, SynchronousTestCase):
    """Session-init, enquire-link and inactivity timers."""

    def test_session_init_timer_closes(self):
        self.clock.advance(4.9)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(self.transport.disconnecting)
        self.assertIn("session-init", self.proto.close_reason)

    def test_bound_in_time(self):
        self.clock.advance(4)
        self.proto.mark_bound()
        self.clock.advance(10)
        self.assertFalse(self.transport.disconnecting)

    def test_enquire_link_after_idle(self):
        self.proto.mark_bound()
        self.clock.advance(29.9)
        self.assertEqual(self.transport.value(), b"")
        self.clock.advance(0.1)
        [req] = take(self.transport)
        self.assertEqual(req.command_id, CommandId.enquire_link)
        self.feed(smpp_pdu.encode(req.response()))
        self.assertEqual(self.proto.outstanding, {})
        self.clock.advance(30)
        [req2] = take(self.transport)
        self.assertEqual(req2.command_id, CommandId.enquire_link)
        self.assertNotEqual(req2.sequence_number, req.sequence_number)
        self.assertEqual(self.proto.stats["enquire_link_sent"], 2)

    def test_traffic_postpones_enquire_link(self):
        self.proto.mark_bound()
        self.clock.advance(20)
        self.feed(wire("enquire_link", 5))
        take(self.transport)
        self.clock.advance(20)
        self.assertEqual(self.transport.value(), b"")
        self.clock.advance(10)
        [req] = take(self.transport)
        self.assertEqual(req.command_id, CommandId.enquire_link)

    def test_no_enquire_link_resp_closes(self):
        self.proto.mark_bound()
        self.clock.advance(30)
        [req] = take(self.transport)
        self.clock.advance(10)
        self.assertTrue(self.transport.disconnecting)
        self.assertIn("no enquire_link_resp", self.proto.close_reason)
        self.lose()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_inactivity_unbinds(self):
        self.proto.inactivity_timeout = 60
        self.proto.enquire_link_interval = 0
        self.proto.mark_bound()
        self.clock.advance(30)
        # enquire_link traffic does not count as activity ...
        self.feed(wire("enquire_link", 1))
        take(self.transport)
        self.clock.advance(29)
        self.assertEqual(self.transport.value(), b"")
        self.clock.advance(1)
        [unbind] = take(self.transport)
        self.assertEqual(unbind.command_id, CommandId.unbind)
        self.feed(smpp_pdu.encode(unbind.response()))
        self.assertTrue(self.transport.disconnecting)
        self.assertIn("inactivity", self.proto.close_reason)

    def test_activity_postpones_inactivity(self):
        self.proto.inactivity_timeout = 60
        self.proto.enquire_link_interval = 0
        self.proto.mark_bound()
        self.clock.advance(50)
        self.feed(wire("submit_sm", 1))
        take(self.transport)
        self.clock.advance(50)
        self.assertEqual(self.transport.value(), b"")
        self.clock.advance(10)
        [unbind] = take(self.transport)
        self.assertEqual(unbind.command_id, CommandId.unbind)

    def test_connection_lost_cancels_timers(self):
        self.proto.inactivity_timeout = 60
        self.proto.mark_bound()
        self.proto.send_request(smpp_pdu.make("enquire_link"), windowed=False).addErrback(
            lambda f: None)
        self.assertEqual(len(self.clock.getDelayedCalls()), 3)
        self.lose()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class _Sink:
    """Records what L{SMPPProtocol.send_request_to} hands over."""

    def __init__(self):
        self.results = []
        self.errors = []

    def callback(self, result):
        self.results.append(result)

    def errback(self, error):
        self.errors.append(error)


class HotPathRequestTests(ProtocolTestsMixin, SynchronousTestCase):
    """send_request_to: no Deferred, no timer per request, submit_sm_resp read directly."""

    def setUp(self):
        super().setUp()
        self.proto.mark_bound()

    def send(self, sink, **params):
        request = smpp_pdu.make("submit_sm", destination_addr="4915", **params)
        self.proto.send_request_to(sink, request, smpp_pdu.encode(request))
        return request

    def test_submit_sm_resp_without_codec(self):
        sink = _Sink()
        self.send(sink)
        [req] = take(self.transport)
        self.assertEqual(req.command, "submit_sm")
        self.assertEqual(req.params["destination_addr"], "4915")
        self.feed(wire("submit_sm_resp", req.sequence_number, message_id="abc123"))
        [resp] = sink.results
        self.assertEqual((resp.command_status, resp.params), (0, {"message_id": "abc123"}))
        self.assertIsNone(resp.tlvs)
        self.assertEqual(self.proto.outstanding, {})

    def test_error_without_body_and_with_tlvs_still_answered(self):
        sink = _Sink()
        self.send(sink)
        self.send(sink)
        first, second = take(self.transport)
        self.feed(wire("submit_sm_resp", first.sequence_number, CommandStatus.ESME_RTHROTTLED))
        self.feed(wire("submit_sm_resp", second.sequence_number, message_id="x",
                       tlvs={"congestion_state": 90}))
        self.assertEqual([r.command_status for r in sink.results],
                         [CommandStatus.ESME_RTHROTTLED, 0])
        self.assertEqual(sink.results[1].tlvs, {"congestion_state": 90})  # full decoder

    def test_window_and_queue(self):
        sink = _Sink()
        for _ in range(self.window + 2):
            self.send(sink)
        sent = take(self.transport)
        self.assertEqual(len(sent), self.window)
        self.feed(wire("submit_sm_resp", sent[0].sequence_number, message_id="1"))
        self.assertEqual(len(take(self.transport)), 1)  # a queued one goes out

    def test_one_sweep_timer_for_all_requests(self):
        sink = _Sink()
        before = len(self.clock.getDelayedCalls())
        self.send(sink)
        self.clock.advance(1)
        self.send(sink)
        self.assertEqual(len(self.clock.getDelayedCalls()), before + 1)
        self.clock.advance(9)  # the first one's deadline
        self.assertEqual(len(sink.errors), 1)
        self.assertIsInstance(sink.errors[0], SMPPTimeoutError)
        self.assertEqual(self.proto.stats["timeouts"], 1)
        self.clock.advance(1)  # the second one's, at most a tenth of the timeout late
        self.assertEqual(len(sink.errors), 2)
        self.assertEqual(self.proto.outstanding, {})

    def test_answered_requests_leave_no_timer(self):
        sink = _Sink()
        self.send(sink)
        [req] = take(self.transport)
        self.feed(wire("submit_sm_resp", req.sequence_number, message_id="a"))
        self.clock.advance(10)
        self.assertEqual(sink.errors, [])
        self.assertEqual(self.clock.getDelayedCalls(), [self.proto._enquire_call])

    def test_connection_lost_fails_them(self):
        sink = _Sink()
        for _ in range(self.window + 1):
            self.send(sink)
        self.lose()
        self.assertEqual(len(sink.errors), self.window + 1)
        self.assertTrue(all(isinstance(e, SMPPConnectionLost) for e in sink.errors))
        self.assertEqual(self.clock.getDelayedCalls(), [])
