"""
Tests for L{gwsms.smpp.esme}: bind per session type, outbind, submit
under window / rate / throttling / congestion, deliveries through the sink,
graceful unbind and connection loss.  Clock + StringTransport; what the
ESME writes is decoded with the codec.
"""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from gwsms.smpp import pdu as smpp_pdu
from gwsms.smpp.constants import CommandId, CommandStatus
from gwsms.smpp.esme import (
    BindError,
    ESMEProtocol,
    NotBoundError,
    SubmitResult,
)
from gwsms.smpp.interfaces import IDeliverySink, RejectingDeliverySink
from gwsms.smpp.link import SessionType, SmscLink
from gwsms.smpp.protocol import SMPPConnectionLost, SMPPTimeoutError
from tests.test_smpp_protocol import take, wire

S = CommandStatus


@implementer(IDeliverySink)
class RecordingSink:
    """Records deliveries; answers with C{self.answer} (value or callable)."""

    def __init__(self, answer=0):
        self.answer = answer
        self.received = []

    def deliver_received(self, link_name, pdu):
        self.received.append((link_name, pdu))
        return self.answer(pdu) if callable(self.answer) else self.answer


def make_link(**changes):
    values = dict(
        name="smsc1",
        ip="127.0.0.1",
        port=2775,
        system_id="gwuser",
        password="secret",
        system_type="VMA",
        src_ton=1,
        src_npi=1,
        address_range="^123",
    )
    values.update(changes)
    return SmscLink(**values)


class ESMETestsMixin:
    link_changes: dict = {}

    def setUp(self):
        self.clock = Clock()
        self.sink = RecordingSink()
        self.states = []
        self.link = make_link(**self.link_changes)
        self.proto = ESMEProtocol(
            self.link,
            self.clock,
            self.sink,
            on_state_change=lambda name, state: self.states.append((name, state)),
        )
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)

    def feed(self, data: bytes) -> None:
        self.proto.dataReceived(data)

    def do_bind(self):
        d = self.proto.bind()
        [req] = take(self.transport)
        self.feed(smpp_pdu.encode(req.response(system_id="SMSC")))
        return self.successResultOf(d)

    def lose(self):
        self.proto.connectionLost(Failure(Exception("gone")))

    def run_pump(self) -> float:
        """Advance the clock exactly to the scheduled submit pump; return the wait."""
        call = self.proto._pump_call
        if call is None:
            return 0.0
        wait = call.getTime() - self.clock.seconds()
        self.clock.advance(wait)
        return wait

    def submit(self, n=1, **params):
        params.setdefault("destination_addr", "4912345")
        params.setdefault("short_message", b"hello")
        return [self.proto.submit(dict(params)) for _ in range(n)]

    def answer(self, req, status=0, tlvs=None, message_id=None):
        resp = req.response(command_status=status)
        if status == 0:
            resp.params["message_id"] = message_id or f"id{req.sequence_number}"
        if tlvs:
            resp.tlvs.update(tlvs)
        self.feed(smpp_pdu.encode(resp))


class BindTests(ESMETestsMixin, SynchronousTestCase):
    def test_bind_transceiver_fields(self):
        d = self.proto.bind()
        self.assertEqual(self.proto.state, "binding")
        [req] = take(self.transport)
        self.assertEqual(req.command_id, CommandId.bind_transceiver)
        self.assertEqual(req.sequence_number, 1)
        self.assertEqual(
            req.params,
            {
                "system_id": "gwuser",
                "password": "secret",
                "system_type": "VMA",
                "interface_version": 0x34,
                "addr_ton": 1,
                "addr_npi": 1,
                "address_range": "^123",
            },
        )
        self.feed(smpp_pdu.encode(req.response(system_id="SMSC")))
        self.assertEqual(self.successResultOf(d).params["system_id"], "SMSC")
        self.assertEqual(self.proto.state, "bound_trx")
        self.assertEqual(self.proto.bound_since, 0)
        self.assertEqual(self.states, [("smsc1", "binding"), ("smsc1", "bound_trx")])

    def check_session_type(self, session_type, command, state):
        self.proto = ESMEProtocol(make_link(session_type=session_type), self.clock, self.sink)
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)
        d = self.proto.bind()
        [req] = take(self.transport)
        self.assertEqual(req.command_id, command)
        self.feed(smpp_pdu.encode(req.response(system_id="S")))
        self.successResultOf(d)
        self.assertEqual(self.proto.state, state)

    def test_bind_transmitter(self):
        self.check_session_type(SessionType.TRANSMITTER, CommandId.bind_transmitter, "bound_tx")

    def test_bind_receiver(self):
        self.check_session_type(SessionType.RECEIVER, CommandId.bind_receiver, "bound_rx")

    def test_bind_refused_credentials(self):
        for status in (S.ESME_RINVPASWD, S.ESME_RINVSYSID, S.ESME_RBINDFAIL):
            self.setUp()
            d = self.proto.bind()
            [req] = take(self.transport)
            self.feed(smpp_pdu.encode(req.response(status)))
            error = self.failureResultOf(d, BindError).value
            self.assertEqual(error.status, status)
            self.assertTrue(error.is_credentials)
            self.assertIn(status.name, str(error))
            self.assertNotIn("secret", str(error))
            self.assertTrue(self.transport.disconnecting)
            self.lose()
            self.assertEqual(self.proto.state, "closed")
            self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_bind_refused_other(self):
        d = self.proto.bind()
        [req] = take(self.transport)
        self.feed(smpp_pdu.encode(req.response(S.ESME_RALYBND)))
        error = self.failureResultOf(d, BindError).value
        self.assertFalse(error.is_credentials)

    def test_bind_generic_nack(self):
        d = self.proto.bind()
        [req] = take(self.transport)
        self.feed(wire("generic_nack", req.sequence_number, S.ESME_RINVCMDID))
        self.assertEqual(self.failureResultOf(d, BindError).value.status, S.ESME_RINVCMDID)
        self.assertTrue(self.transport.disconnecting)

    def test_bind_timeout(self):
        self.proto.session_init_timeout = 0
        self.proto._cancel_call("_session_init_call")
        d = self.proto.bind()
        self.clock.advance(self.link.response_timeout)
        self.failureResultOf(d, SMPPTimeoutError)
        self.assertTrue(self.transport.disconnecting)

    def test_session_init_timeout(self):
        d = self.proto.bind()
        self.clock.advance(self.link.session_init_timeout)
        self.assertTrue(self.transport.disconnecting)
        self.lose()
        self.failureResultOf(d, SMPPConnectionLost)
        self.assertEqual(self.proto.state, "closed")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_bind_twice_refused(self):
        self.do_bind()
        self.assertIn("bound_trx", str(self.failureResultOf(self.proto.bind()).value))
        self.lose()
        self.failureResultOf(self.proto.bind(), SMPPConnectionLost)

    def test_password_not_in_repr_or_logs(self):
        self.proto.bind()
        [req] = take(self.transport)
        self.assertNotIn("secret", repr(req))
        self.assertNotIn("secret", repr(self.link))

    def test_state_callback_error_logged(self):
        def broken(name, state):
            raise RuntimeError("boom")

        self.proto.on_state_change = broken
        self.do_bind()
        self.assertEqual(self.proto.state, "bound_trx")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)


class OutbindTests(ESMETestsMixin, SynchronousTestCase):
    link_changes = {"session_type": SessionType.OUTBIND, "port": 0}

    def outbind(self, system_id="gwuser", password="secret", seq=1):
        self.feed(wire("outbind", seq, system_id=system_id, password=password))

    def test_outbind_then_bind_receiver(self):
        d = self.proto.bind()
        self.assertEqual(self.transport.value(), b"")
        self.outbind()
        [req] = take(self.transport)
        self.assertEqual(req.command_id, CommandId.bind_receiver)
        self.assertEqual(req.params["system_id"], "gwuser")
        self.assertEqual(req.params["password"], "secret")
        self.feed(smpp_pdu.encode(req.response(system_id="SMSC")))
        self.assertEqual(self.successResultOf(d).command_id, CommandId.bind_receiver_resp)
        self.assertEqual(self.proto.state, "bound_rx")

    def test_outbind_wrong_password(self):
        d = self.proto.bind()
        self.outbind(password="wrong")
        self.assertEqual(self.transport.value(), b"")
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.failureResultOf(d, BindError).value.status, S.ESME_RINVPASWD)

    def test_outbind_wrong_system_id(self):
        d = self.proto.bind()
        self.outbind(system_id="other")
        self.assertTrue(self.transport.disconnecting)
        self.failureResultOf(d, BindError)

    def test_bind_receiver_after_outbind_directly(self):
        d = self.proto.bind_receiver_after_outbind()
        [req] = take(self.transport)
        self.assertEqual(req.command_id, CommandId.bind_receiver)
        self.feed(smpp_pdu.encode(req.response(system_id="S")))
        self.successResultOf(d)
        self.assertEqual(self.proto.state, "bound_rx")

    def test_outbind_on_bound_session_refused(self):
        self.proto.bind()
        self.outbind()
        [req] = take(self.transport)
        self.feed(smpp_pdu.encode(req.response(system_id="S")))
        self.outbind(seq=2)
        [nack] = take(self.transport)
        self.assertEqual(nack.command_id, CommandId.generic_nack)
        self.assertEqual(nack.command_status, S.ESME_RINVBNDSTS)
        self.assertEqual(nack.sequence_number, 2)
        self.assertEqual(self.proto.state, "bound_rx")

    def test_non_ascii_password(self):
        d = self.proto.bind()
        self.outbind(password="s\xe9cret")
        self.failureResultOf(d, BindError)

    def test_no_outbind_in_time(self):
        d = self.proto.bind()
        self.clock.advance(self.link.session_init_timeout)
        self.assertTrue(self.transport.disconnecting)
        self.lose()
        self.failureResultOf(d, SMPPConnectionLost)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class SubmitTests(ESMETestsMixin, SynchronousTestCase):
    def setUp(self):
        super().setUp()
        self.do_bind()

    def test_submit_ok(self):
        [d] = self.submit(source_addr="GW", data_coding=8, short_message=b"\x00h")
        [req] = take(self.transport)
        self.assertEqual(req.command_id, CommandId.submit_sm)
        self.assertEqual(req.params["source_addr"], "GW")
        self.assertEqual(req.params["data_coding"], 8)
        self.assertEqual(req.params["short_message"], b"\x00h")
        self.answer(req, message_id="M1")
        result = self.successResultOf(d)
        self.assertEqual(result, SubmitResult(0, "M1"))
        self.assertTrue(result.ok)
        self.assertEqual(self.proto.stats["submitted"], 1)
        self.assertEqual(self.proto.stats["submit_ok"], 1)

    def test_submit_with_tlvs(self):
        d = self.proto.submit({"destination_addr": "1"}, {"message_payload": b"long"})
        [req] = take(self.transport)
        self.assertEqual(req.tlvs["message_payload"], b"long")
        self.answer(req, message_id="P")
        self.assertEqual(self.successResultOf(d), SubmitResult(0, "P"))

    def test_submit_refused_status(self):
        [d] = self.submit()
        [req] = take(self.transport)
        self.answer(req, S.ESME_RINVDSTADR)
        self.assertEqual(self.successResultOf(d), SubmitResult(S.ESME_RINVDSTADR, None))
        self.assertEqual(self.proto.stats["submit_failed"], 1)

    def test_bad_params_fail_at_once(self):
        self.failureResultOf(self.proto.submit({"no_such_field": 1}), ValueError)
        self.failureResultOf(self.proto.submit({"destination_addr": "1" * 30}), ValueError)
        self.assertEqual(self.transport.value(), b"")

    def test_window_eleventh_waits(self):
        ds = self.submit(11)
        sent = take(self.transport)
        self.assertEqual(len(sent), 10)
        self.assertEqual(self.proto.pending_submits, 1)
        self.answer(sent[3])
        self.assertTrue(ds[3].called)
        [eleventh] = take(self.transport)
        self.assertEqual(eleventh.command_id, CommandId.submit_sm)
        self.assertEqual(self.proto.pending_submits, 0)
        for req in sent[:3] + sent[4:] + [eleventh]:
            self.answer(req)
        for d in ds:
            self.assertEqual(self.successResultOf(d).status, 0)

    def test_timeout_fails_submit(self):
        [d] = self.submit()
        self.clock.advance(self.link.response_timeout)
        self.failureResultOf(d, SMPPTimeoutError)
        self.assertEqual(self.proto.stats["submit_errors"], 1)

    def test_not_bound_transmit(self):
        self.proto.state = "bound_rx"
        self.failureResultOf(self.proto.submit({"destination_addr": "1"}), NotBoundError)

    def test_connection_lost_fails_outstanding_and_queued(self):
        ds = self.submit(15)
        self.lose()
        for d in ds:
            self.failureResultOf(d, SMPPConnectionLost)
        self.assertEqual(self.proto.state, "closed")
        self.assertEqual(self.proto.pending_submits, 0)
        self.assertEqual(self.proto.outstanding, {})
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.failureResultOf(self.proto.submit({"destination_addr": "1"}), NotBoundError)


class SubmitThenTests(ESMETestsMixin, SynchronousTestCase):
    """submit_then: the hot path's submit, outcome to a callable."""

    def setUp(self):
        super().setUp()
        self.do_bind()
        self.outcomes = []

    def submit_then(self, **params):
        params.setdefault("destination_addr", "4912345")
        request = smpp_pdu.make("submit_sm", **params)
        return self.proto.submit_then(self.outcomes.append, request, smpp_pdu.encode(request))

    def test_ok(self):
        self.assertTrue(self.submit_then(short_message=b"hi"))
        [req] = take(self.transport)
        self.assertEqual(req.params["short_message"], b"hi")
        self.answer(req, message_id="M9")
        self.assertEqual(self.outcomes, [SubmitResult(0, "M9")])
        self.assertEqual(self.proto.stats["submit_ok"], 1)

    def test_throttled_is_sent_again(self):
        self.submit_then()
        [req] = take(self.transport)
        self.answer(req, S.ESME_RTHROTTLED)
        self.assertEqual(self.outcomes, [])  # paused, not answered
        self.run_pump()
        [again] = take(self.transport)
        self.assertNotEqual(again.sequence_number, req.sequence_number)
        self.answer(again, message_id="M2")
        self.assertEqual(self.outcomes, [SubmitResult(0, "M2")])
        self.assertEqual(self.proto.stats["throttled"], 1)

    def test_timeout_and_loss_are_failures(self):
        self.submit_then()
        self.clock.advance(self.link.response_timeout * 1.1)
        [failure] = self.outcomes
        self.assertTrue(failure.check(SMPPTimeoutError))
        self.submit_then()
        self.lose()
        self.assertTrue(self.outcomes[1].check(SMPPConnectionLost))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_refused_when_not_bound(self):
        self.proto.state = "bound_rx"
        self.assertFalse(self.submit_then())
        self.assertEqual(self.transport.value(), b"")


class ThenSink(RecordingSink):
    """A sink with the hot path's deliver_then."""

    def __init__(self, take=True):
        super().__init__()
        self.take = take
        self.answers = []

    def deliver_then(self, link_name, pdu, answer):
        if self.take == "raise":
            raise RuntimeError("lane defect")
        if self.take:
            self.answers.append((pdu, answer))
        return self.take


class DeliverThenTests(ESMETestsMixin, SynchronousTestCase):
    def setUp(self):
        super().setUp()
        self.do_bind()

    def test_taken_answered_later_without_deliver_received(self):
        self.proto.sink = sink = ThenSink()
        self.feed(wire("deliver_sm", 7, source_addr="4917", short_message=b"hi"))
        [(pdu, answer)] = sink.answers
        self.assertEqual(pdu.params["short_message"], b"hi")
        self.assertEqual(sink.received, [])
        self.assertEqual(self.transport.value(), b"")  # nothing before the answer
        answer(int(S.ESME_RX_T_APPN))
        [resp] = take(self.transport)
        self.assertEqual((resp.command_id, resp.sequence_number, resp.command_status),
                         (CommandId.deliver_sm_resp, 7, S.ESME_RX_T_APPN))
        self.assertEqual(self.proto._pending_deliveries, 0)

    def test_answer_bytes_are_the_codecs(self):
        # deliver_sm_resp is written without the codec: the same bytes
        self.proto.sink = sink = ThenSink()
        for seq, status in ((11, 0), (12, int(S.ESME_RX_T_APPN)), (13, 0xFFFFFFFF)):
            self.feed(wire("deliver_sm", seq, source_addr="4917", short_message=b"hi"))
            pdu, answer = sink.answers[-1]
            answer(status)
            self.assertEqual(self.transport.value(),
                             smpp_pdu.encode(pdu.response(command_status=status)))
            self.transport.clear()
        # data_sm_resp (message_id and TLVs) still through the codec
        self.feed(wire("data_sm", 14, source_addr="4917"))
        pdu, answer = sink.answers[-1]
        answer(0)
        self.assertEqual(self.transport.value(), smpp_pdu.encode(pdu.response(command_status=0)))

    def test_not_taken_or_failing_goes_the_full_way(self):
        for take_it in (False, "raise"):
            self.proto.sink = sink = ThenSink(take_it)
            self.feed(wire("deliver_sm", 8))
            self.assertEqual(len(sink.received), 1)
            [resp] = take(self.transport)
            self.assertEqual((resp.sequence_number, resp.command_status), (8, 0))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class DeliveryTests(ESMETestsMixin, SynchronousTestCase):
    def setUp(self):
        super().setUp()
        self.do_bind()

    def test_resp_only_after_sink_fires(self):
        waiting = defer.Deferred()
        self.sink.answer = waiting
        self.feed(wire("deliver_sm", 33, source_addr="4917", short_message=b"hi"))
        [(name, pdu)] = self.sink.received
        self.assertEqual(name, "smsc1")
        self.assertEqual(pdu.params["short_message"], b"hi")
        self.assertEqual(self.transport.value(), b"")
        waiting.callback(0)
        [resp] = take(self.transport)
        self.assertEqual(resp.command_id, CommandId.deliver_sm_resp)
        self.assertEqual(resp.sequence_number, 33)
        self.assertEqual(resp.command_status, 0)
        self.assertEqual(self.proto.stats["delivered"], 1)

    def test_sink_status_used(self):
        self.sink.answer = int(S.ESME_RX_P_APPN)
        self.feed(wire("deliver_sm", 2))
        [resp] = take(self.transport)
        self.assertEqual(resp.command_status, S.ESME_RX_P_APPN)
        self.assertEqual(self.proto.stats["deliver_failed"], 1)

    def test_sink_exception_answers_temporary_error(self):
        def boom(pdu):
            raise RuntimeError("disk full")

        self.sink.answer = boom
        self.feed(wire("deliver_sm", 3))
        [resp] = take(self.transport)
        self.assertEqual(resp.command_status, S.ESME_RX_T_APPN)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_sink_failed_deferred(self):
        self.sink.answer = lambda pdu: defer.fail(RuntimeError("db down"))
        self.feed(wire("deliver_sm", 4))
        self.assertEqual(take(self.transport)[0].command_status, S.ESME_RX_T_APPN)
        self.flushLoggedErrors(RuntimeError)

    def test_sink_returns_garbage(self):
        self.sink.answer = "yes"
        self.feed(wire("deliver_sm", 4))
        self.assertEqual(take(self.transport)[0].command_status, S.ESME_RX_T_APPN)

    def test_data_sm(self):
        self.feed(wire("data_sm", 9, source_addr="1", destination_addr="2",
                       tlvs={"message_payload": b"payload"}))
        [resp] = take(self.transport)
        self.assertEqual(resp.command_id, CommandId.data_sm_resp)
        self.assertEqual(resp.sequence_number, 9)
        self.assertEqual(self.sink.received[0][1].tlvs["message_payload"], b"payload")

    def test_connection_lost_before_sink_fires(self):
        waiting = defer.Deferred()
        self.sink.answer = waiting
        self.feed(wire("deliver_sm", 5))
        self.lose()
        waiting.callback(0)
        self.assertEqual(self.transport.value(), b"")

    def test_rejecting_sink(self):
        sink = RejectingDeliverySink()
        verifyObject(IDeliverySink, sink)
        self.proto.sink = sink
        self.feed(wire("deliver_sm", 6))
        self.assertEqual(take(self.transport)[0].command_status, S.ESME_RX_T_APPN)


class TransmitterDeliveryTests(ESMETestsMixin, SynchronousTestCase):
    link_changes = {"session_type": SessionType.TRANSMITTER}

    def test_deliver_on_transmitter_refused(self):
        self.do_bind()
        self.feed(wire("deliver_sm", 7))
        [resp] = take(self.transport)
        self.assertEqual(resp.command_id, CommandId.deliver_sm_resp)
        self.assertEqual(resp.command_status, S.ESME_RINVBNDSTS)
        self.assertEqual(self.sink.received, [])

    def test_deliver_before_bind_refused(self):
        self.feed(wire("deliver_sm", 8))
        self.assertEqual(take(self.transport)[0].command_status, S.ESME_RINVBNDSTS)


class UnbindTests(ESMETestsMixin, SynchronousTestCase):
    def setUp(self):
        super().setUp()
        self.do_bind()

    def test_graceful_unbind_waits_for_outstanding(self):
        ds = self.submit(12)
        sent = take(self.transport)
        done = self.proto.unbind(5.0)
        self.assertEqual(self.proto.state, "unbinding")
        # Not yet sent: failed with a clear error.
        for d in ds[10:]:
            self.assertIn("unbinding", str(self.failureResultOf(d, NotBoundError).value))
        self.failureResultOf(self.proto.submit({"destination_addr": "1"}), NotBoundError)
        self.assertEqual(self.transport.value(), b"")
        for req in sent:
            self.answer(req)
        [unbind] = take(self.transport)
        self.assertEqual(unbind.command_id, CommandId.unbind)
        self.assertNoResult(done)
        self.feed(smpp_pdu.encode(unbind.response()))
        self.assertTrue(self.transport.disconnecting)
        self.lose()
        self.assertIsNone(self.successResultOf(done))
        self.assertEqual(self.proto.state, "closed")
        for d in ds[:10]:
            self.assertEqual(self.successResultOf(d).status, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_unbind_bounded_by_timeout(self):
        [d] = self.submit()
        take(self.transport)
        done = self.proto.unbind(4.0)
        self.clock.advance(2.999)
        self.assertEqual(self.transport.value(), b"")
        self.clock.advance(0.001)  # timeout - min(timeout/2, 1)
        [unbind] = take(self.transport)
        self.assertEqual(unbind.command_id, CommandId.unbind)
        self.clock.advance(1.0)
        self.assertTrue(self.transport.disconnecting)
        self.lose()
        self.successResultOf(done)
        self.failureResultOf(d, SMPPConnectionLost)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_unbind_waits_for_sink(self):
        waiting = defer.Deferred()
        self.sink.answer = waiting
        self.feed(wire("deliver_sm", 5))
        self.proto.unbind(5.0)
        self.assertEqual(self.transport.value(), b"")
        waiting.callback(0)
        resp, unbind = take(self.transport)
        self.assertEqual(resp.command_id, CommandId.deliver_sm_resp)
        self.assertEqual(unbind.command_id, CommandId.unbind)

    def test_unbind_idle_session_immediate(self):
        done = self.proto.unbind(5.0)
        [unbind] = take(self.transport)
        self.assertEqual(unbind.command_id, CommandId.unbind)
        self.feed(smpp_pdu.encode(unbind.response()))
        self.lose()
        self.successResultOf(done)
        second = self.proto.unbind(5.0)
        self.successResultOf(second)

    def test_unbind_twice_shares_close(self):
        d1 = self.proto.unbind(5.0)
        d2 = self.proto.unbind(5.0)
        self.assertEqual(len(take(self.transport)), 1)
        self.lose()
        self.successResultOf(d1)
        self.successResultOf(d2)

    def test_unbind_before_bound_just_closes(self):
        self.setUp_unbound()
        done = self.proto.unbind(5.0)
        self.assertEqual(self.transport.value(), b"")
        self.assertTrue(self.transport.disconnecting)
        self.lose()
        self.successResultOf(done)

    def setUp_unbound(self):
        ESMETestsMixin.setUp(self)

    def test_peer_unbind(self):
        [d] = self.submit()
        take(self.transport)
        self.feed(wire("unbind", 40))
        [resp] = take(self.transport)
        self.assertEqual(resp.command_id, CommandId.unbind_resp)
        self.assertEqual(self.proto.state, "unbinding")
        self.failureResultOf(self.proto.submit({"destination_addr": "1"}), NotBoundError)
        self.lose()
        self.failureResultOf(d, SMPPConnectionLost)
        self.assertEqual(self.states[-2:], [("smsc1", "unbinding"), ("smsc1", "closed")])

    def test_inactivity_unbinds(self):
        self.lose()
        self.link_changes = {"inactivity_timeout": 100.0, "enquire_link_interval": 0}
        ESMETestsMixin.setUp(self)
        self.do_bind()
        self.clock.advance(100)
        [unbind] = take(self.transport)
        self.assertEqual(unbind.command_id, CommandId.unbind)
        self.assertEqual(self.proto.state, "unbinding")
