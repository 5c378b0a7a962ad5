# -*- test-case-name: tests.test_sim_session -*-
"""
Tests for the lean lanes of the simulated SMSC (L{gwsms.sim.session},
L{gwsms.sim.smsc}): the raw submit_sm scan against the full codec, the
fast submit answers against the full path, raw deliver_sm bursts, the one
response timer per session, and the direct socket write.
"""

import socket

from hypothesis import given, settings, strategies as st
from twisted.internet import defer, error, protocol, reactor, task, tcp, threads
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols import policies
from twisted.trial.unittest import SynchronousTestCase, TestCase

from gwsms.sim import session as session_module
from gwsms.sim.session import ResponseTimeout, SmscProtocol, scan_submit_sm
from gwsms.sim.smsc import SimulatedSMSC
from gwsms.smpp import pdu
from gwsms.smpp.constants import CommandStatus

S = CommandStatus
ADDRESS = IPv4Address("TCP", "127.0.0.1", 40000)


def split_pdus(data):
    out = []
    while data:
        length = int.from_bytes(data[:4], "big")
        out.append(pdu.decode(data[:length]))
        data = data[length:]
    return out


class CountingTransport(StringTransport):
    """A StringTransport that counts write calls."""

    writes = 0

    def write(self, data):
        self.writes += 1
        StringTransport.write(self, data)


def connect(factory, command="bind_transceiver"):
    proto = factory.buildProtocol(ADDRESS)
    transport = CountingTransport()
    proto.makeConnection(transport)
    proto.dataReceived(pdu.encode(pdu.make(command, 1, system_id="esme", password="pw")))
    transport.clear()
    transport.writes = 0
    return proto, transport


def submit(seq, **params):
    base = dict(source_addr_ton=1, source_addr_npi=1, source_addr="4915112345678", dest_addr_ton=1,
                dest_addr_npi=1, destination_addr="491701234567", short_message=b"gwsms bench message")
    base.update(params)
    return pdu.encode(pdu.make("submit_sm", seq, **base))


cstrings = st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=255), max_size=24)
octets = st.integers(0, 255)


class ScanTests(SynchronousTestCase):
    """
    L{scan_submit_sm} accepts only what the full decoder accepts, with the
    same registered_delivery, and accepts every well-formed submit_sm
    without TLVs.
    """

    @settings(max_examples=300, deadline=None)
    @given(service_type=st.text(alphabet="ABC", max_size=5), source=st.text(alphabet="0123456789", max_size=20),
           dest=st.text(alphabet="0123456789+", max_size=20), registered=octets, data_coding=octets,
           text=st.binary(max_size=254), schedule=st.sampled_from(["", "261127103000000+"]))
    def test_well_formed(self, service_type, source, dest, registered, data_coding, text, schedule):
        data = pdu.encode(pdu.make("submit_sm", 7, service_type=service_type, source_addr=source,
                                   destination_addr=dest, registered_delivery=registered,
                                   data_coding=data_coding, short_message=text,
                                   schedule_delivery_time=schedule))
        self.assertEqual(scan_submit_sm(bytearray(data), 16, len(data)), registered)
        # Inside a larger buffer (the PDUs before and after do not matter).
        buf = bytearray(b"\0" * 5 + data + data)
        self.assertEqual(scan_submit_sm(buf, 5 + 16, 5 + len(data)), registered)

    @settings(max_examples=500, deadline=None)
    @given(body=st.binary(max_size=120), cut=st.integers(0, 40), flips=st.lists(
        st.tuples(st.integers(0, 200), octets), max_size=4))
    def test_never_accepts_what_the_codec_refuses(self, body, cut, flips):
        data = bytearray(submit(3, registered_delivery=1, short_message=body))
        for index, value in flips:
            if 16 + index < len(data):
                data[16 + index] = value
        if cut:
            data = data[:max(16, len(data) - cut)]
        data[:4] = len(data).to_bytes(4, "big")
        result = scan_submit_sm(data, 16, len(data))
        if result >= 0:
            decoded = pdu.decode(bytes(data))
            self.assertEqual(decoded.tlvs, {})
            self.assertEqual(decoded.params["registered_delivery"], result)

    def test_refuses(self):
        ok = submit(1)
        self.assertGreaterEqual(scan_submit_sm(ok, 16, len(ok)), 0)
        with_tlv = pdu.encode(pdu.make("submit_sm", 1, short_message=b"x", tlvs={"user_message_reference": 5}))
        self.assertEqual(scan_submit_sm(with_tlv, 16, len(with_tlv)), -1)
        long_source = bytearray(pdu.encode(pdu.make("submit_sm", 1, source_addr="1" * 20)))
        long_source[16 + 3 + 20] = ord("2")  # the NUL after 20 digits becomes a 21st digit
        self.assertEqual(scan_submit_sm(long_source, 16, len(long_source)), -1)
        self.assertRaises(pdu.PduError, pdu.decode, bytes(long_source))
        sm_255 = bytearray(pdu.encode(pdu.make("submit_sm", 1, short_message=b"y" * 254)) + b"z")
        sm_255[-256] = 255
        sm_255[:4] = len(sm_255).to_bytes(4, "big")
        self.assertEqual(scan_submit_sm(sm_255, 16, len(sm_255)), -1)


class FastSubmitTests(SynchronousTestCase):
    """
    Without recording, submit_sm takes the lean lane; its answers are the
    bytes the full path gives.
    """

    def setUp(self):
        self.clock = Clock()

    def smsc(self, **kwargs):
        factory = SimulatedSMSC(self.clock, **kwargs)
        factory.start()
        self.addCleanup(factory.stop)
        return factory

    def both(self, data, **kwargs):
        outputs = []
        for record in (True, False):
            factory = self.smsc(record=record, **kwargs)
            proto, transport = connect(factory)
            proto.dataReceived(data)
            outputs.append((transport.value(), dict(factory.counters)))
        return outputs

    def test_same_answers_as_full_path(self):
        data = b"".join(submit(seq) for seq in range(10, 40))
        data += pdu.encode(pdu.make("submit_sm", 40, short_message=b"t", tlvs={"user_message_reference": 1}))
        bad = bytearray(submit(41))
        bad[-(len(b"gwsms bench message") + 1)] = 200  # sm_length past the end
        data += bytes(bad) + submit(42) + pdu.encode(pdu.make("enquire_link", 43))
        for kwargs in ({}, {"throttle_every": 4}, {"message_id_format": "decimal"}):
            (full, full_counters), (fast, fast_counters) = self.both(data, **kwargs)
            self.assertEqual(fast, full, kwargs)
            self.assertEqual(fast_counters, full_counters)
        resps = split_pdus(fast)
        self.assertEqual(resps[-3].command_status, S.ESME_RINVMSGLEN)
        self.assertEqual(resps[-1].command, "enquire_link_resp")

    def test_one_write_per_data_received(self):
        factory = self.smsc(record=False)
        proto, transport = connect(factory)
        decoded = []
        full_decode = session_module.smpp_pdu.decode
        self.patch(session_module.smpp_pdu, "decode", lambda data: decoded.append(data) or full_decode(data))
        proto.dataReceived(b"".join(submit(seq) for seq in range(2, 52)))
        self.assertEqual(decoded, [])  # the lean lane decodes nothing
        self.assertEqual(transport.writes, 1)
        resps = split_pdus(transport.value())
        self.assertEqual([r.sequence_number for r in resps], list(range(2, 52)))
        self.assertEqual([r.params["message_id"] for r in resps[:2]], ["00000001", "00000002"])
        self.assertEqual(factory.counters["submits"], 50)

    def test_receipt_requested_takes_the_full_path(self):
        factory = self.smsc(record=False, dlr=True)
        proto, transport = connect(factory)
        proto.dataReceived(submit(2, registered_delivery=1) + submit(3, registered_delivery=0))
        (resp1, resp2) = split_pdus(transport.value())
        transport.clear()
        self.clock.advance(0)
        (receipt,) = split_pdus(transport.value())
        self.assertEqual(receipt.tlvs["receipted_message_id"], resp1.params["message_id"])
        self.assertEqual(factory.message_state(resp1.params["message_id"])[0], 2)  # DELIVERED
        self.assertEqual(factory.message_state(resp2.params["message_id"]), (1, ""))  # ENROUTE

    def test_not_bound_for_submits(self):
        factory = self.smsc(record=False)
        proto, transport = connect(factory, "bind_receiver")
        proto.dataReceived(submit(2))
        self.assertEqual(split_pdus(transport.value())[0].command_status, S.ESME_RINVBNDSTS)
        self.assertEqual(factory.counters["submits"], 0)

    def test_message_state_window(self):
        factory = self.smsc(record=False, history=3)
        proto, transport = connect(factory)
        proto.dataReceived(b"".join(submit(seq) for seq in range(2, 7)))
        ids = [r.params["message_id"] for r in split_pdus(transport.value())]
        self.assertEqual([factory.message_state(i) for i in ids], [None, None, (1, ""), (1, ""), (1, "")])
        for other in ("5", "0000000x", "00000006", ""):
            self.assertIsNone(factory.message_state(other), other)

    def test_wait_for_submits(self):
        factory = self.smsc(record=False)
        d = factory.wait_for_submits(2)
        proto, _ = connect(factory)
        proto.dataReceived(submit(2))
        self.assertNoResult(d)
        proto.dataReceived(submit(3))
        self.assertEqual(self.successResultOf(d), 2)


class RawDeliverTests(SynchronousTestCase):
    """
    L{SimulatedSMSC.send_mo_many}: a burst of deliver_sm built from a cached
    prefix, one write, callbacks instead of Deferreds, one timer.
    """

    def setUp(self):
        self.clock = Clock()
        self.results = []

    def smsc(self, **kwargs):
        factory = SimulatedSMSC(self.clock, record=False, **kwargs)
        self.addCleanup(factory.stop)
        return factory

    def record(self, arg, result):
        self.results.append((arg, result))

    def test_same_pdus_as_send_mo(self):
        factory = self.smsc()
        proto, transport = connect(factory)
        factory.send_mo("4917", "123", b"one", data_coding=8)
        self.assertEqual(factory.send_mo_many([b"one", b"two"], self.record, "a", source="4917", dest="123",
                                              data_coding=8), 2)
        one, raw_one, raw_two = split_pdus(transport.value())
        self.assertEqual(raw_one.params, one.params)
        self.assertEqual(raw_one.tlvs, {})
        self.assertEqual(raw_two.params["short_message"], b"two")
        self.assertEqual([p.sequence_number for p in (one, raw_one, raw_two)], [1, 2, 3])
        self.assertEqual(transport.writes, 2)  # send_mo, then the burst
        self.assertEqual(factory.counters["mo_sent"], 3)
        proto.dataReceived(pdu.encode(raw_two.response(S.ESME_RX_T_APPN)) + pdu.encode(raw_one.response())
                           + pdu.HEADER.pack(16, 0x80000005, 0, 1))
        self.assertEqual(self.results, [("a", S.ESME_RX_T_APPN), ("a", 0)])
        self.assertEqual((factory.counters["mo_acked"], factory.counters["mo_failed"]), (2, 1))

    def test_defaults_and_no_receiver(self):
        factory = self.smsc(mo_source="4915100000001", mo_dest="999")
        self.assertEqual(factory.send_mo_many([b"x"]), 0)
        proto, transport = connect(factory, "bind_transmitter")
        self.assertFalse(factory.has_receiver())
        self.assertEqual(factory.send_mo_many([b"x"]), 0)
        self.assertEqual(transport.value(), b"")
        rx, rx_transport = connect(factory, "bind_receiver")
        self.assertTrue(factory.has_receiver())
        self.assertEqual(factory.send_mo_many([b"x"]), 1)
        (mo,) = split_pdus(rx_transport.value())
        self.assertEqual((mo.params["source_addr"], mo.params["destination_addr"]), ("4915100000001", "999"))
        self.assertRaises(ValueError, factory.send_mo_many, [b"y" * 255])

    def test_window(self):
        factory = self.smsc(window=3)
        proto, transport = connect(factory)
        factory.send_mo_many([b"%d" % n for n in range(7)], self.record, None)
        first = split_pdus(transport.value())
        transport.clear()
        self.assertEqual([p.params["short_message"] for p in first], [b"0", b"1", b"2"])
        self.assertEqual(proto.backlog, 4)
        proto.dataReceived(b"".join(pdu.encode(p.response()) for p in first[:2]))
        second = split_pdus(transport.value())
        self.assertEqual([p.params["short_message"] for p in second], [b"3", b"4"])
        self.assertEqual(proto.backlog, 2)
        self.assertEqual(len(self.results), 2)

    def test_one_timer(self):
        factory = self.smsc(response_timeout=3)
        proto, transport = connect(factory)
        factory.send_mo_many([b"a", b"b"], self.record, 0)
        self.clock.advance(1)
        factory.send_mo_many([b"c"], self.record, 1)
        factory.send_mo("1", "2", b"d").addErrback(lambda f: self.results.append(("d", f.type)))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(2)
        self.assertEqual([(arg, type(r)) for arg, r in self.results], [(0, ResponseTimeout), (0, ResponseTimeout)])
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(1)
        self.assertEqual([a for a, _ in self.results], [0, 0, 1, "d"])
        self.assertEqual(self.results[-1][1], ResponseTimeout)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(factory.counters["mo_failed"], 4)

    def test_connection_lost(self):
        factory = self.smsc(window=1)
        proto, transport = connect(factory)
        factory.send_mo_many([b"a", b"b"], self.record, 0)
        proto.connectionLost(error.ConnectionDone())
        self.assertEqual([type(r) for _, r in self.results], [error.ConnectionLost, error.ConnectionLost])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_mo_generator_bursts(self):
        """
        The built-in generator (C{mo_rate}) sends each tick's messages as
        one burst: one write, not one per message.
        """
        factory = self.smsc(mo_rate=1000, window=1000)
        factory.start()
        proto, transport = connect(factory)
        self.clock.advance(0.01)
        self.assertEqual(transport.writes, 1)
        mos = split_pdus(transport.value())
        self.assertEqual(len(mos), 10)
        self.assertEqual(mos[-1].params["short_message"], b"MO message 10")


class DirectWriteTests(SynchronousTestCase):
    """
    On a plain TCP connection with nothing held back by Twisted, answers go
    straight to the socket; what does not fit is handed to the transport.
    A wrapper (TLS) never gets direct writes.
    """

    def setUp(self):
        self.a, self.b = socket.socketpair()
        self.addCleanup(self.a.close)
        self.addCleanup(self.b.close)
        self.a.setblocking(False)
        self.a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        self.transport = FakeTcp(self.a)
        self.factory = SimulatedSMSC(Clock(), record=False)

    def session(self, transport):
        proto = SmscProtocol()
        proto.factory = self.factory
        proto.makeConnection(transport)
        return proto

    def test_direct_then_transport(self):
        proto = self.session(self.transport)
        proto._write(b"hello")
        self.assertEqual(self.b.recv(100), b"hello")
        self.assertEqual(self.transport.written, [])
        big = b"x" * (1 << 20)
        proto._write(big)
        (rest,) = self.transport.written
        self.assertLess(len(rest), len(big))
        self.assertTrue(big.endswith(rest))
        self.transport._tempDataLen = len(rest)  # Twisted now holds data: queue behind it
        proto._write(b"later")
        self.assertEqual(self.transport.written[-1], b"later")
        self.transport._tempDataLen = 0
        self.transport.connected = False
        proto._write(b"closed")
        self.assertEqual(self.transport.written[-1], b"closed")

    def test_not_through_a_wrapper(self):
        wrapper = policies.ProtocolWrapper(policies.WrappingFactory(protocol.Factory()), protocol.Protocol())
        wrapper.makeConnection(self.transport)
        self.assertIs(wrapper.socket, self.a)  # attribute look-ups reach the TCP transport...
        proto = self.session(wrapper)
        proto._write(b"secret")
        self.assertEqual(self.transport.written, [b"secret"])  # ...but the write goes through the wrapper
        self.a.setblocking(False)
        self.b.setblocking(False)
        self.assertRaises(BlockingIOError, self.b.recv, 100)


class FakeTcp(tcp.Connection):
    """
    A plain TCP transport over a real socket pair, recording what goes
    through Twisted's C{write}.
    """

    def __init__(self, sock):
        self.socket = sock
        self._tempDataLen = 0
        self.dataBuffer = b""
        self.connected = True
        self.disconnecting = False
        self.written = []

    def write(self, data):
        self.written.append(data)

    def setTcpNoDelay(self, enabled):
        pass


def receiving_client(port, count):
    """
    A blocking raw-socket ESME: bind_receiver, answer every deliver_sm
    until C{count} arrived.

    @return: the deliver_sm PDUs in arrival order.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    buf = bytearray()
    received = []
    try:
        sock.sendall(pdu.encode(pdu.make("bind_receiver", 1, system_id="rx", password="x")))
        bound = False
        while len(received) < count:
            data = sock.recv(1 << 16)
            if not data:
                raise ConnectionError("simulator closed the connection")
            buf += data
            answers = []
            while len(buf) >= 16 and len(buf) >= int.from_bytes(buf[:4], "big"):
                length = int.from_bytes(buf[:4], "big")
                request = pdu.decode(bytes(buf[:length]))
                del buf[:length]
                if request.command == "bind_receiver_resp":
                    bound = request.command_status == 0
                elif request.command == "deliver_sm":
                    received.append(request)
                    answers.append(pdu.encode(request.response()))
            if answers:
                sock.sendall(b"".join(answers))
        if not bound:
            raise AssertionError("not bound")
        return received
    finally:
        sock.close()


class MoIntegrationTests(TestCase):
    """
    The MO generator's bursts over a real loopback socket (direct socket
    writes, raw deliver_sm_resp matching) reach a peer and are all
    acknowledged.
    """

    timeout = 30

    @defer.inlineCallbacks
    def test_generator_over_tcp(self):
        factory = SimulatedSMSC(reactor, record=False, mo_rate=2000, window=50)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.addCleanup(factory.stop)
        received = yield threads.deferToThread(receiving_client, port.getHost().port, 1000)
        self.assertEqual([m.params["short_message"] for m in received[:3]],
                         [b"MO message 1", b"MO message 2", b"MO message 3"])
        self.assertGreaterEqual(len(received), 1000)  # the last read may hold a few more
        self.assertEqual(len({m.sequence_number for m in received}), len(received))
        deadline = reactor.seconds() + 10
        while factory.sessions and reactor.seconds() < deadline:  # the client hung up
            yield task.deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(factory.sessions, [])
        counters = factory.counters
        # every answer was counted; what was still outstanding failed with the connection
        self.assertEqual(counters["mo_acked"], len(received))
        self.assertEqual(counters["mo_sent"], counters["mo_acked"] + counters["mo_failed"])
