"""
Tests for L{gwsms.sip.transaction}: RFC 3261 section 17 timers and
matching, on a L{task.Clock} with a recording fake transport.
"""

from twisted.internet import defer, task
from twisted.trial import unittest

from gwsms.sip import message as sipmsg
from gwsms.sip import transaction
from gwsms.sip.transaction import TransactionLayer, server_key
from gwsms.sip.transport import Peer, TransportError

UDP = Peer("udp", "192.0.2.7", 5060)
TCP = Peer("tcp", "192.0.2.7", 5060)


def request(method="MESSAGE", branch="z9hG4bKabc", transport="UDP", cseq=1,
            call_id="c1@x", to_tag=None, body=b"hi"):
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    headers = [("Via", f"SIP/2.0/{transport} 192.0.2.7:5060;branch={branch}"),
               ("Max-Forwards", "70"), ("From", "<sip:alice@example.com>;tag=f1"),
               ("To", to), ("Call-ID", call_id), ("CSeq", f"{cseq} {method}")]
    return sipmsg.Request(method, "sip:bob@example.com", headers, body)


def response_to(req, status, branch=None):
    resp = sipmsg.make_response(req, status, to_tag="t9")
    if branch is not None:
        resp.headers.replace_first("Via", f"SIP/2.0/UDP 192.0.2.1;branch={branch}")
    return resp


class FakeTransport:
    """Records sends; fails them when C{self.error} is set."""

    def __init__(self):
        self.sent = []
        self.error = None
        self.listeners = {"udp"}
        self.transaction_layer = None

    def send(self, msg, peer):
        if self.error is not None:
            return defer.fail(self.error)
        self.sent.append((msg, peer))
        return defer.succeed(peer)

    def has_listener(self, name):
        return name in self.listeners

    def statuses(self):
        return [m.status for m, _ in self.sent if isinstance(m, sipmsg.Response)]


class RecordingTU:
    def __init__(self, answer=None):
        self.calls = []
        self.answer = answer

    def request_received(self, req, source, txn):
        self.calls.append((req, source, txn))
        if self.answer is not None:
            txn.respond(sipmsg.make_response(req, self.answer, to_tag="tu"))


class Base(unittest.SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.transport = FakeTransport()
        self.tu = RecordingTU()
        self.layer = TransactionLayer(self.clock, t1=0.5, t2=4.0, t4=5.0, tu=self.tu,
                                      transport=self.transport)

    def assert_clean(self):
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.layer.server_transactions, {})
        self.assertEqual(self.layer.client_transactions, {})

    def send_times(self):
        return list(self.times)

    def run_until(self, end, step=0.05):
        """Advance to C{end}, recording when requests were sent."""
        self.times = getattr(self, "times", [])
        seen = len(self.transport.sent)
        while self.clock.seconds() < end - 1e-9:
            self.clock.advance(step)
            while seen < len(self.transport.sent):
                self.times.append(round(self.clock.seconds(), 2))
                seen += 1


class ClientTransactionTests(Base):
    def test_attach_sets_back_reference(self):
        self.assertIs(self.transport.transaction_layer, self.layer)

    def test_timer_e_doubles_to_t2_then_timer_f(self):
        """E: 0.5, 1, 2, 4, 4 ... s; F at 32 s fails with TimeoutError."""
        d = self.layer.send_request(request(), UDP)
        self.assertEqual(len(self.transport.sent), 1)
        self.times = []
        self.run_until(32.0, step=0.5)
        self.assertEqual(self.times, [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])
        self.failureResultOf(d, transaction.TimeoutError)
        self.assertEqual(self.layer.stats["timeouts"], 1)
        self.assert_clean()

    def test_timer_f_not_before_32s(self):
        d = self.layer.send_request(request(), UDP)
        self.clock.advance(31.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.failureResultOf(d, transaction.TimeoutError)

    def test_proceeding_retransmits_every_t2(self):
        req = request()
        d = self.layer.send_request(req, UDP)
        self.clock.advance(0.5)  # first retransmission at 0.5; next E at 1.5
        self.layer.message_received(response_to(req, 100), UDP)
        self.assertNoResult(d)
        self.times = []
        self.run_until(20.0, step=0.5)
        # E already scheduled for 1.5 s fires, then every T2
        self.assertEqual(self.times, [1.5, 5.5, 9.5, 13.5, 17.5])

    def test_final_response_fires_and_timer_k(self):
        req = request()
        d = self.layer.send_request(req, UDP)
        resp = response_to(req, 202)
        self.layer.message_received(resp, UDP)
        self.assertIs(self.successResultOf(d), resp)
        sent = len(self.transport.sent)
        # Completed: retransmitted responses absorbed, no more requests
        self.layer.message_received(response_to(req, 202), UDP)
        self.assertEqual(self.layer.stats["absorbed"], 1)
        self.clock.advance(4.9)
        self.assertEqual(len(self.layer.client_transactions), 1)
        self.clock.advance(0.1)  # Timer K = T4
        self.assertEqual(len(self.transport.sent), sent)
        self.assert_clean()

    def test_reliable_no_retransmission_and_k_zero(self):
        req = request(transport="TCP")
        d = self.layer.send_request(req, TCP)
        self.clock.advance(20)
        self.assertEqual(len(self.transport.sent), 1)
        self.layer.message_received(response_to(req, 200), TCP)
        self.successResultOf(d)
        self.assert_clean()

    def test_reliable_timer_f(self):
        d = self.layer.send_request(request(transport="TCP"), TCP)
        self.clock.advance(32)
        self.failureResultOf(d, transaction.TimeoutError)
        self.assertEqual(len(self.transport.sent), 1)
        self.assert_clean()

    def test_provisional_does_not_fire(self):
        req = request()
        d = self.layer.send_request(req, UDP)
        self.layer.message_received(response_to(req, 100), UDP)
        self.assertNoResult(d)
        self.assertEqual(self.layer.client_transactions[("z9hG4bKabc", "MESSAGE")].state,
                         "proceeding")
        self.layer.message_received(response_to(req, 404), UDP)
        self.assertEqual(self.successResultOf(d).status, 404)

    def test_matching_needs_branch_and_cseq_method(self):
        req = request()
        d = self.layer.send_request(req, UDP)
        other_method = response_to(req, 200)
        other_method.headers.set("CSeq", "1 OPTIONS")
        self.layer.message_received(other_method, UDP)
        self.layer.message_received(response_to(req, 200, branch="z9hG4bKother"), UDP)
        self.assertNoResult(d)
        self.assertEqual(self.layer.stats["stray_responses"], 2)
        self.layer.message_received(response_to(req, 200), UDP)
        self.successResultOf(d)

    def test_transport_error_fails_deferred(self):
        self.transport.error = TransportError("refused")
        d = self.layer.send_request(request(), TCP)
        f = self.failureResultOf(d, TransportError)
        self.assertIn("refused", str(f.value))
        self.assert_clean()

    def test_transport_error_on_retransmission(self):
        d = self.layer.send_request(request(), UDP)
        self.transport.error = TransportError("unreachable")
        self.clock.advance(0.5)
        self.failureResultOf(d, TransportError)
        self.assert_clean()

    def test_branch_added_when_missing(self):
        req = request()
        req.headers.remove("Via")
        self.layer.send_request(req, UDP)
        branch = req.top_via.branch
        self.assertTrue(branch.startswith("z9hG4bK"))
        self.assertIn((branch, "MESSAGE"), self.layer.client_transactions)
        old = request(branch="1234")  # RFC 2543 branch gets replaced
        self.layer.send_request(old, UDP)
        self.assertTrue(old.top_via.branch.startswith("z9hG4bK"))

    def test_duplicate_branch_and_invite_refused(self):
        self.layer.send_request(request(), UDP)
        self.assertRaises(ValueError, self.layer.send_request, request(), UDP)
        self.assertRaises(ValueError, self.layer.send_request,
                          request("INVITE", branch="z9hG4bKinv"), UDP)

    def test_large_request_goes_over_tcp(self):
        self.transport.listeners.add("tcp")
        d = self.layer.send_request(request(body=b"x" * 1400), UDP)
        self.assertEqual(self.transport.sent[0][1].transport, "tcp")
        self.clock.advance(10)
        self.assertEqual(len(self.transport.sent), 1)  # reliable: no Timer E
        self.layer.stop()
        self.failureResultOf(d, TransportError)
        self.assert_clean()

    def test_large_request_stays_udp_without_tcp_listener(self):
        self.layer.send_request(request(body=b"x" * 1400), UDP)
        self.assertEqual(self.transport.sent[0][1].transport, "udp")

    def test_stop_fails_pending(self):
        d = self.layer.send_request(request(), UDP)
        self.layer.stop()
        self.failureResultOf(d, TransportError)
        self.assert_clean()


class ServerTransactionTests(Base):
    def test_duplicate_absorbed_last_response_resent(self):
        req = request()
        self.layer.message_received(req, UDP)
        self.assertEqual(len(self.tu.calls), 1)
        _, source, txn = self.tu.calls[0]
        self.assertEqual(source, UDP)
        txn.respond(sipmsg.make_response(req, 200, to_tag="x"))
        self.assertEqual(self.transport.statuses(), [200])
        self.layer.message_received(request(), UDP)
        self.layer.message_received(request(), UDP)
        self.assertEqual(len(self.tu.calls), 1)
        self.assertEqual(self.transport.statuses(), [200, 200, 200])
        self.assertEqual(self.layer.stats["absorbed"], 2)

    def test_timer_j_udp(self):
        self.tu.answer = 200
        self.layer.message_received(request(), UDP)
        self.clock.advance(31.9)
        self.assertEqual(len(self.layer.server_transactions), 1)
        self.clock.advance(0.1)
        self.assert_clean()
        # after J a retransmission is a new request
        self.layer.message_received(request(), UDP)
        self.assertEqual(len(self.tu.calls), 2)

    def test_timer_j_zero_on_tcp(self):
        self.tu.answer = 202
        self.layer.message_received(request(transport="TCP"), TCP)
        self.assertEqual(self.transport.statuses(), [202])
        self.assert_clean()

    def test_retransmission_in_trying_absorbed_silently(self):
        req = request()
        self.layer.message_received(req, UDP)
        self.layer.message_received(request(), UDP)
        self.assertEqual(self.transport.sent, [])
        self.assertEqual(len(self.tu.calls), 1)

    def test_asynchronous_answer_and_100_after_t2(self):
        req = request()
        self.layer.message_received(req, UDP)
        txn = self.tu.calls[0][2]
        self.clock.advance(3.9)
        self.assertEqual(self.transport.sent, [])  # RFC 4320: no early 100
        self.clock.advance(0.1)
        self.assertEqual(self.transport.statuses(), [100])
        self.assertEqual(txn.state, "proceeding")
        self.layer.message_received(request(), UDP)
        self.assertEqual(self.transport.statuses(), [100, 100])
        self.clock.advance(10)
        self.assertTrue(self.layer.respond(req, sipmsg.make_response(req, 202, to_tag="a")))
        self.assertEqual(self.transport.statuses(), [100, 100, 202])
        self.assertEqual(txn.state, "completed")
        self.clock.advance(32)
        self.assert_clean()

    def test_no_100_over_tcp(self):
        self.layer.message_received(request(transport="TCP"), TCP)
        self.clock.advance(10)
        self.assertEqual(self.transport.sent, [])

    def test_tu_timeout(self):
        req = request()
        self.layer.message_received(req, UDP)
        self.clock.advance(32)
        self.assert_clean()
        self.assertEqual(self.layer.stats["tu_timeouts"], 1)
        self.assertFalse(self.layer.respond(req, sipmsg.make_response(req, 200)))

    def test_responses_after_final_discarded(self):
        req = request()
        self.layer.message_received(req, UDP)
        txn = self.tu.calls[0][2]
        txn.respond(sipmsg.make_response(req, 200, to_tag="a"))
        txn.respond(sipmsg.make_response(req, 500, to_tag="a"))
        self.assertEqual(self.transport.statuses(), [200])

    def test_non_100_provisional_refused(self):
        req = request()
        self.layer.message_received(req, UDP)
        txn = self.tu.calls[0][2]
        self.assertRaises(ValueError, txn.respond, sipmsg.make_response(req, 180))

    def test_tu_exception_answers_500(self):
        class Broken:
            def request_received(self, req, source, txn):
                raise RuntimeError("boom")
        self.layer.tu = Broken()
        self.layer.message_received(request(), UDP)
        self.assertEqual(self.transport.statuses(), [500])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_send_failure_terminates(self):
        req = request()
        self.layer.message_received(req, UDP)
        self.transport.error = TransportError("gone")
        self.tu.calls[0][2].respond(sipmsg.make_response(req, 200))
        self.assert_clean()

    def test_stray_ack_ignored(self):
        self.layer.message_received(request("ACK", branch="z9hG4bKack"), UDP)
        self.assertEqual(self.tu.calls, [])
        self.assertEqual(self.layer.stats["stray_acks"], 1)
        self.assert_clean()

    def test_cancel_without_match_481(self):
        self.layer.message_received(request("CANCEL", branch="z9hG4bKnone"), UDP)
        self.assertEqual(self.transport.statuses(), [481])
        self.assertEqual(self.tu.calls, [])

    def test_invite_cancel_ack_timers(self):
        inv = request("INVITE", branch="z9hG4bKinv")
        self.layer.message_received(inv, UDP)
        self.clock.advance(0.2)
        self.assertEqual(self.transport.statuses(), [100])
        self.layer.message_received(request("CANCEL", branch="z9hG4bKinv"), UDP)
        self.assertEqual(self.transport.statuses(), [100, 200, 487])
        # Timer G retransmits the 487 (0.5, 1, 2, 4, 4...) until the ACK
        self.clock.advance(0.5)
        self.clock.advance(1.0)
        self.assertEqual(self.transport.statuses()[3:], [487, 487])
        self.layer.message_received(request("ACK", branch="z9hG4bKinv"), UDP)
        txn = self.layer.server_transactions[server_key(inv)]
        self.assertEqual(txn.state, "confirmed")
        self.clock.advance(5)  # Timer I = T4
        self.clock.advance(32)  # the CANCEL's Timer J
        self.assertEqual(self.transport.statuses()[5:], [])
        self.assert_clean()

    def test_invite_timer_h(self):
        self.tu.answer = 405
        self.layer.message_received(request("INVITE", branch="z9hG4bKinv"), UDP)
        self.times = []
        self.run_until(32.0, step=0.5)
        self.assertEqual(self.transport.statuses(), [405] * 11)
        # Timer G: 0.5, 1, 2, 4, 4 ... then Timer H at 64*T1
        self.assertEqual(self.times, [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])
        self.assert_clean()

    def test_rfc2543_key(self):
        self.tu.answer = 200
        self.layer.message_received(request(branch="old1"), UDP)
        self.layer.message_received(request(branch="old1"), UDP)
        self.assertEqual(len(self.tu.calls), 1)
        self.assertEqual(self.transport.statuses(), [200, 200])
        self.layer.message_received(request(branch="old1", cseq=2), UDP)
        self.assertEqual(len(self.tu.calls), 2)

    def test_key_includes_method_and_sent_by(self):
        a = server_key(request())
        self.assertNotEqual(a, server_key(request("OPTIONS")))
        other = request()
        other.headers.replace_first("Via", "SIP/2.0/UDP 192.0.2.8:5060;branch=z9hG4bKabc")
        self.assertNotEqual(a, server_key(other))
        self.assertEqual(server_key(request("ACK", branch="z9hG4bKi")),
                         server_key(request("INVITE", branch="z9hG4bKi")))

    def test_no_tu_answers_503(self):
        self.layer.tu = None
        self.layer.message_received(request(), UDP)
        self.assertEqual(self.transport.statuses(), [503])

    def test_no_leak_after_many(self):
        self.tu.answer = 200
        pending = []
        for i in range(200):
            self.layer.message_received(request(branch=f"z9hG4bK{i}"), UDP)
            if i % 2:
                pending.append(self.layer.send_request(request(branch=f"z9hG4bKc{i}"), UDP))
        self.clock.advance(60)
        for d in pending:
            self.failureResultOf(d, transaction.TimeoutError)
        self.assert_clean()
