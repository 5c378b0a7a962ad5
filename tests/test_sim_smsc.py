# -*- test-case-name: tests.test_sim_smsc -*-
"""
Tests for the simulated SMSC (L{gwsms.sim.smsc}, L{gwsms.sim.session})
and its command line (L{gwsms.cli.sim}).

Unit tests drive the protocol over C{StringTransport} with a C{Clock};
one integration test binds smpplib (a client we did not write) over a real
loopback socket.
"""

import argparse
import io
import os
import re
import shutil
import socket
import time

from twisted.internet import defer, error, reactor, threads, utils
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.internet.task import Clock
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from gwsms.cli import sim as sim_cli
from gwsms.sim.smsc import NoReceiverError, ResponseTimeout, SimulatedSMSC, format_receipt
from gwsms.smpp import pdu
from gwsms.smpp.constants import CommandStatus

S = CommandStatus
ADDRESS = IPv4Address("TCP", "127.0.0.1", 40000)


def split_pdus(data):
    """
    Decode back-to-back PDUs.
    """
    pdus = []
    while data:
        length = int.from_bytes(data[:4], "big")
        pdus.append(pdu.decode(data[:length]))
        data = data[length:]
    return pdus


class Esme:
    """
    A test ESME talking to one simulator session over a StringTransport.
    """

    def __init__(self, factory, proto=None):
        self.proto = proto or factory.buildProtocol(ADDRESS)
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)
        self.seq = 0

    def send(self, command, **params):
        self.seq += 1
        self.proto.dataReceived(pdu.encode(pdu.make(command, self.seq, **params)))
        return self.seq

    def read(self):
        data = self.transport.value()
        self.transport.clear()
        return split_pdus(data)

    def bind(self, command="bind_transceiver", system_id="esme", password="pw"):
        self.send(command, system_id=system_id, password=password)
        (resp,) = self.read()
        return resp

    def answer(self, request, status=0):
        self.proto.dataReceived(pdu.encode(request.response(status)))


class SimTestCase(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()

    def smsc(self, **kwargs):
        factory = SimulatedSMSC(self.clock, **kwargs)
        factory.start()
        self.addCleanup(factory.stop)
        return factory


class BindTests(SimTestCase):
    def test_bind_any(self):
        """
        Without configured credentials any bind is accepted; the resp
        names the simulator and announces SMPP 3.4.
        """
        factory = self.smsc()
        for command, state in (("bind_transceiver", "bound_trx"), ("bind_transmitter", "bound_tx"),
                               ("bind_receiver", "bound_rx")):
            esme = Esme(factory)
            resp = esme.bind(command, system_id="anyone", password="anything")
            self.assertEqual(resp.command, command + "_resp")
            self.assertEqual(resp.command_status, 0)
            self.assertEqual(resp.params["system_id"], "gwsms-sim")
            self.assertEqual(resp.tlvs, {"sc_interface_version": 0x34})
            self.assertEqual(esme.proto.state, state)
            self.assertEqual(esme.proto.system_id, "anyone")
        self.assertEqual(factory.counters["binds"], 3)

    def test_credentials(self):
        factory = self.smsc(system_id="gw", password="secret")
        self.assertEqual(Esme(factory).bind(system_id="other", password="secret").command_status, S.ESME_RBINDFAIL)
        self.assertEqual(Esme(factory).bind(system_id="gw", password="wrong").command_status, S.ESME_RINVPASWD)
        esme = Esme(factory)
        self.assertEqual(esme.bind(system_id="gw", password="secret").command_status, 0)
        self.assertEqual(factory.counters["bind_failures"], 2)
        self.assertEqual(factory.counters["binds"], 1)
        self.assertNotIn("secret", repr(factory))
        # A second bind on a bound session.
        self.assertEqual(esme.bind(system_id="gw", password="secret").command_status, S.ESME_RALYBND)

    def test_submit_needs_transmitter_bind(self):
        factory = self.smsc()
        esme = Esme(factory)
        esme.send("submit_sm", destination_addr="1")
        self.assertEqual(esme.read()[0].command_status, S.ESME_RINVBNDSTS)
        esme.bind("bind_receiver")
        esme.send("submit_sm", destination_addr="1")
        self.assertEqual(esme.read()[0].command_status, S.ESME_RINVBNDSTS)
        self.assertEqual(factory.counters["submits"], 0)

    def test_enquire_link_and_unbind(self):
        factory = self.smsc()
        esme = Esme(factory)
        esme.bind()
        seq = esme.send("enquire_link")
        self.assertEqual(esme.read(), [pdu.make("enquire_link_resp", seq)])
        seq = esme.send("unbind")
        self.assertEqual(esme.read(), [pdu.make("unbind_resp", seq)])
        self.assertTrue(esme.transport.disconnecting)
        self.assertEqual(factory.sessions, [])

    def test_wait_for_binds(self):
        factory = self.smsc()
        d = factory.wait_for_binds(1)
        self.assertNoResult(d)
        esme = Esme(factory)
        esme.bind()
        self.assertIs(self.successResultOf(d), esme.proto)
        self.assertIs(self.successResultOf(factory.wait_for_binds(1)), esme.proto)


class SubmitTests(SimTestCase):
    def test_message_ids_and_record(self):
        factory = self.smsc()
        esme = Esme(factory)
        esme.bind()
        for n in range(1, 4):
            seq = esme.send("submit_sm", destination_addr="49151%d" % n, short_message=b"m%d" % n)
            self.assertEqual(esme.read(), [pdu.make("submit_sm_resp", seq, message_id="%08x" % n)])
        self.assertEqual(factory.counters["submits"], 3)
        self.assertEqual([p.params["short_message"] for p in factory.received], [b"m1", b"m2", b"m3"])
        self.assertEqual(factory.received[0].params["destination_addr"], "491511")

    def test_decimal_ids_and_no_record(self):
        factory = self.smsc(message_id_format="decimal", record=False)
        esme = Esme(factory)
        esme.bind()
        for n in range(1, 12):
            esme.send("submit_sm")
        self.assertEqual(esme.read()[-1].params["message_id"], "11")
        self.assertEqual(len(factory.received), 0)

    def test_record_limit(self):
        factory = self.smsc(record_limit=2)
        esme = Esme(factory)
        esme.bind()
        for n in range(5):
            esme.send("submit_sm", short_message=b"%d" % n)
        self.assertEqual([p.params["short_message"] for p in factory.received], [b"3", b"4"])

    def test_pipelined_window(self):
        """
        Many requests in one segment, or split anywhere, are all answered
        in order.
        """
        factory = self.smsc()
        esme = Esme(factory)
        esme.bind()
        data = b"".join(
            pdu.encode(pdu.make("submit_sm", seq, destination_addr=str(seq))) for seq in range(100, 200)
        )
        esme.proto.dataReceived(data)
        resps = esme.read()
        self.assertEqual([r.sequence_number for r in resps], list(range(100, 200)))
        self.assertEqual({r.command_status for r in resps}, {0})
        for i in range(len(data)):
            esme.proto.dataReceived(data[i:i + 1])
        self.assertEqual([r.sequence_number for r in esme.read()], list(range(100, 200)))
        self.assertEqual(factory.counters["submits"], 200)

    def test_throttle_every(self):
        factory = self.smsc(throttle_every=3)
        esme = Esme(factory)
        esme.bind()
        for _ in range(9):
            esme.send("submit_sm")
        statuses = [r.command_status for r in esme.read()]
        self.assertEqual(statuses, [0, 0, S.ESME_RTHROTTLED] * 3)
        self.assertEqual(factory.counters["throttled"], 3)
        self.assertEqual(factory.counters["submits"], 6)

    def test_submit_multi_and_data_sm(self):
        factory = self.smsc()
        esme = Esme(factory)
        esme.bind()
        seq = esme.send("submit_multi", dest_addresses=[{"dest_flag": 1, "destination_addr": "1"},
                                                        {"dest_flag": 2, "dl_name": "team"}])
        seq2 = esme.send("data_sm", destination_addr="2")
        self.assertEqual(
            esme.read(),
            [pdu.make("submit_multi_resp", seq, message_id="00000001"),
             pdu.make("data_sm_resp", seq2, message_id="00000002")],
        )
        self.assertEqual([p.command for p in factory.received], ["submit_multi", "data_sm"])

    def test_wait_for_submits(self):
        factory = self.smsc()
        esme = Esme(factory)
        esme.bind()
        d2, d3 = factory.wait_for_submits(2), factory.wait_for_submits(3)
        esme.send("submit_sm")
        self.assertNoResult(d2)
        esme.send("submit_sm")
        self.assertEqual(self.successResultOf(d2), 2)
        self.assertNoResult(d3)
        esme.send("submit_sm")
        self.assertEqual(self.successResultOf(d3), 3)
        self.assertEqual(self.successResultOf(factory.wait_for_submits(1)), 3)

    def test_query_cancel_replace(self):
        factory = self.smsc(dlr=True, dlr_delay=10)
        esme = Esme(factory)
        esme.bind()
        esme.send("submit_sm", registered_delivery=1)
        message_id = esme.read()[0].params["message_id"]
        seq = esme.send("query_sm", message_id=message_id)
        self.assertEqual(esme.read(), [pdu.make("query_sm_resp", seq, message_id=message_id, message_state=1)])
        self.clock.advance(10)
        dlr = esme.read()[0]
        esme.answer(dlr)
        esme.send("query_sm", message_id=message_id)
        resp = esme.read()[0]
        self.assertEqual(resp.params["message_state"], 2)
        self.assertEqual(len(resp.params["final_date"]), 16)
        esme.send("query_sm", message_id="nope")
        self.assertEqual(esme.read()[0].command_status, S.ESME_RQUERYFAIL)
        esme.send("cancel_sm", message_id=message_id)
        esme.send("cancel_sm", message_id="nope")
        esme.send("replace_sm", message_id="nope")
        self.assertEqual([r.command_status for r in esme.read()], [0, S.ESME_RCANCELFAIL, S.ESME_RREPLACEFAIL])


class MalformedTests(SimTestCase):
    def test_unknown_command(self):
        factory = self.smsc()
        esme = Esme(factory)
        esme.proto.dataReceived(pdu.HEADER.pack(16, 0x77, 0, 5))
        self.assertEqual(esme.read(), [pdu.make("generic_nack", 5, S.ESME_RINVCMDID)])
        # An ESME may not send deliver_sm to an SMSC.
        esme.bind()
        seq = esme.send("deliver_sm")
        self.assertEqual(esme.read(), [pdu.make("generic_nack", seq, S.ESME_RINVCMDID)])

    def test_bad_body(self):
        """
        A request with a malformed body gets its own resp with the status
        the codec chose.
        """
        factory = self.smsc()
        esme = Esme(factory)
        esme.bind()
        data = bytearray(pdu.encode(pdu.make("submit_sm", 9, short_message=b"abc")))
        data[-4] = 200  # sm_length beyond the PDU
        esme.proto.dataReceived(bytes(data))
        self.assertEqual(esme.read(), [pdu.make("submit_sm_resp", 9, S.ESME_RINVMSGLEN)])
        self.assertFalse(esme.transport.disconnecting)

    def test_command_length_out_of_bounds(self):
        factory = self.smsc(max_command_length=1000)
        esme = Esme(factory)
        esme.proto.dataReceived(pdu.HEADER.pack(1001, 4, 0, 1))
        self.assertEqual(esme.read(), [pdu.make("generic_nack", 0, S.ESME_RINVCMDLEN)])
        self.assertTrue(esme.transport.disconnecting)


class ReceiptTests(SimTestCase):
    def submit(self, esme, **params):
        base = dict(source_addr_ton=5, source_addr="gwsms", dest_addr_ton=1, dest_addr_npi=1,
                    destination_addr="4915123456789", registered_delivery=1,
                    short_message=b"Hello world, this is longer than twenty")
        base.update(params)
        esme.send("submit_sm", **base)
        (resp,) = esme.read()
        return resp.params["message_id"]

    def test_receipt(self):
        self.clock.advance(1795775400)  # 2026-11-27 10:30:00 UTC
        factory = self.smsc(dlr=True)
        esme = Esme(factory)
        esme.bind()
        message_id = self.submit(esme)
        self.assertEqual(esme.read(), [])
        self.clock.advance(0)
        (dlr,) = esme.read()
        self.assertEqual(dlr.command, "deliver_sm")
        self.assertEqual(dlr.params["esm_class"], 0x04)
        self.assertEqual((dlr.params["source_addr"], dlr.params["source_addr_ton"]), ("4915123456789", 1))
        self.assertEqual((dlr.params["destination_addr"], dlr.params["dest_addr_ton"]), ("gwsms", 5))
        self.assertEqual(dlr.tlvs, {"receipted_message_id": message_id, "message_state": 2})
        self.assertEqual(
            dlr.params["short_message"],
            ("id:%s sub:001 dlvrd:001 submit date:2611271030 done date:2611271030 stat:DELIVRD err:000 "
             "text:Hello world, this is" % (message_id,)).encode("ascii"),
        )
        self.assertEqual(factory.counters["dlr_sent"], 1)
        esme.answer(dlr)
        self.assertEqual(esme.read(), [])

    def test_no_receipt_unless_requested(self):
        factory = self.smsc(dlr=True)
        esme = Esme(factory)
        esme.bind()
        self.submit(esme, registered_delivery=0)
        self.submit(esme, registered_delivery=2)  # failure only
        self.clock.advance(1)
        self.assertEqual(esme.read(), [])
        factory_off = self.smsc(dlr=False)
        esme = Esme(factory_off)
        esme.bind()
        self.submit(esme)
        self.clock.advance(1)
        self.assertEqual(esme.read(), [])

    def test_delay_and_separate_receiver(self):
        """
        Receipts go to a receiver-capable bind, after dlr_delay.
        """
        factory = self.smsc(dlr=True, dlr_delay=5)
        tx, rx = Esme(factory), Esme(factory)
        tx.bind("bind_transmitter")
        rx.bind("bind_receiver", system_id="esme")
        message_id = self.submit(tx)
        self.clock.advance(4.9)
        self.assertEqual(rx.read(), [])
        self.clock.advance(0.1)
        (dlr,) = rx.read()
        self.assertEqual(dlr.tlvs["receipted_message_id"], message_id)
        self.assertEqual(tx.read(), [])

    def test_queued_until_receiver_binds(self):
        factory = self.smsc(dlr=True)
        tx = Esme(factory)
        tx.bind("bind_transmitter")
        self.submit(tx)
        self.submit(tx)
        self.clock.advance(1)
        self.assertEqual(factory.counters["dlr_sent"], 0)
        rx = Esme(factory)
        rx.bind("bind_receiver")
        self.clock.advance(0)
        self.assertEqual([p.command for p in rx.read()], ["deliver_sm", "deliver_sm"])
        self.assertEqual(factory.counters["dlr_sent"], 2)

    def test_format_receipt(self):
        self.assertEqual(
            format_receipt("ab", 0, 90061, b"x" * 30, stat="UNDELIV", err=12),
            b"id:ab sub:001 dlvrd:000 submit date:7001010000 done date:7001020101 stat:UNDELIV err:012 "
            b"text:" + b"x" * 20,
        )


class MobileOriginatedTests(SimTestCase):
    def test_mo_rate(self):
        factory = self.smsc(mo_rate=10, mo_source="4917000", mo_dest="999")
        rx = Esme(factory)
        rx.bind("bind_receiver")
        for _ in range(10):
            self.clock.advance(0.1)
        mos = rx.read()
        self.assertEqual(len(mos), 10)
        self.assertEqual(mos[0].params["source_addr"], "4917000")
        self.assertEqual(mos[0].params["destination_addr"], "999")
        self.assertEqual([m.params["short_message"] for m in mos[:2]], [b"MO message 1", b"MO message 2"])
        for mo in mos:
            rx.answer(mo)
        self.assertEqual((factory.counters["mo_sent"], factory.counters["mo_acked"]), (10, 10))

    def test_mo_window(self):
        """
        At most C{window} deliver_sm are outstanding; the rest wait.
        """
        factory = self.smsc(mo_rate=100, window=5)
        rx = Esme(factory)
        rx.bind("bind_transceiver")
        self.clock.advance(0.1)
        first = rx.read()
        self.assertEqual(len(first), 5)
        rx.answer(first[0])
        self.assertEqual(len(rx.read()), 1)

    def test_no_mo_without_receiver(self):
        factory = self.smsc(mo_rate=10)
        tx = Esme(factory)
        tx.bind("bind_transmitter")
        self.clock.advance(1)
        self.assertEqual(tx.read(), [])
        self.assertEqual(factory.counters["mo_sent"], 0)

    def test_send_mo(self):
        factory = self.smsc()
        self.failureResultOf(factory.send_mo("1", "2", b"x"), NoReceiverError)
        rx = Esme(factory)
        rx.bind("bind_receiver")
        d = factory.send_mo("4917", "123", "Grüße".encode("utf-16-be"), data_coding=8,
                            tlvs={"user_message_reference": 5})
        (mo,) = rx.read()
        self.assertEqual(mo.params["data_coding"], 8)
        self.assertEqual(mo.params["short_message"], "Grüße".encode("utf-16-be"))
        self.assertEqual(mo.tlvs, {"user_message_reference": 5})
        rx.answer(mo, S.ESME_RX_T_APPN)
        self.assertEqual(self.successResultOf(d), S.ESME_RX_T_APPN)
        self.assertEqual(factory.counters["mo_failed"], 1)
        # Long text goes in message_payload.
        factory.send_mo("4917", "123", b"y" * 300)
        (mo,) = rx.read()
        self.assertEqual((mo.params["short_message"], mo.tlvs["message_payload"]), (b"", b"y" * 300))

    def test_send_mo_timeout_and_connection_lost(self):
        factory = self.smsc(response_timeout=3)
        rx = Esme(factory)
        rx.bind("bind_receiver")
        d = factory.send_mo("1", "2", b"x")
        self.clock.advance(3)
        self.failureResultOf(d, ResponseTimeout)
        d = factory.send_mo("1", "2", b"x")
        rx.proto.connectionLost(error.ConnectionDone())
        self.failureResultOf(d, error.ConnectionLost)
        self.assertEqual(factory.sessions, [])


class OutbindTests(SimTestCase):
    def test_outbind_then_bind_receiver(self):
        factory = self.smsc()
        esme = Esme(factory, factory.build_outbind_protocol("smsc", "obpw"))
        (outbind,) = esme.read()
        self.assertEqual(outbind, pdu.make("outbind", 1, system_id="smsc", password="obpw"))
        self.assertEqual(esme.proto.state, "outbound")
        resp = esme.bind("bind_receiver")
        self.assertEqual(resp.command_status, 0)
        self.assertEqual(esme.proto.state, "bound_rx")
        factory.send_mo("1", "2", b"to outbound esme")
        self.assertEqual(esme.read()[0].params["short_message"], b"to outbound esme")

    def test_outbind_connects_endpoint(self):
        factory = self.smsc()
        connected = []

        class Endpoint:
            def connect(self, client_factory):
                proto = client_factory.buildProtocol(ADDRESS)
                connected.append(proto)
                return defer.succeed(proto)

        proto = self.successResultOf(factory.outbind(Endpoint(), "s", "p"))
        self.assertIs(proto, connected[0])
        transport = StringTransport()
        proto.makeConnection(transport)
        self.assertEqual(split_pdus(transport.value())[0].command, "outbind")

    def test_stop_closes_sessions(self):
        factory = self.smsc(mo_rate=5)
        esme = Esme(factory)
        esme.bind()
        factory.stop()
        self.assertTrue(esme.transport.disconnecting)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class CliTests(SynchronousTestCase):
    def parser(self):
        parser = argparse.ArgumentParser(prog="gwsms")
        sub = parser.add_subparsers(dest="area")
        sim_cli.register(sub)
        return parser

    def test_parse(self):
        args = self.parser().parse_args(
            ["sim", "smsc", "--port", "0", "--system-id", "u", "--password", "p", "--dlr", "--mo-rate", "2.5",
             "--mo-source", "491", "--mo-dest", "12", "--throttle-every", "7", "--quiet"]
        )
        self.assertEqual((args.port, args.host, args.system_id, args.password), (0, "127.0.0.1", "u", "p"))
        self.assertEqual((args.dlr, args.mo_rate, args.mo_source, args.mo_dest), (True, 2.5, "491", "12"))
        self.assertEqual((args.throttle_every, args.quiet), (7, True))
        self.assertIs(args.func, sim_cli.run_smsc)

    def test_bad_arguments(self):
        for argv in (["sim", "smsc"], ["sim", "smsc", "--port", "x"], ["sim", "smsc", "--port", "70000"],
                     ["sim", "smsc", "--port", "1", "--mo-rate", "-1"],
                     ["sim", "smsc", "--port", "1", "--throttle-every", "1.5"], ["sim"]):
            stderr = io.StringIO()
            self.patch(__import__("sys"), "stderr", stderr)
            e = self.assertRaises(SystemExit, self.parser().parse_args, argv)
            self.assertEqual(e.code, 2, argv)
            self.assertIn("error:", stderr.getvalue())

    def test_serve(self):
        """
        serve() listens, prints the real address, then counters every
        second; the listener is stopped at shutdown.
        """
        clock = MemoryReactorClock()
        args = self.parser().parse_args(["sim", "smsc", "--port", "0", "--dlr"])
        out, err = io.StringIO(), io.StringIO()
        self.assertEqual(sim_cli.serve(args, clock, out, err), 0)
        port, factory, backlog, interface = clock.tcpServers[0]
        self.assertEqual((port, interface), (0, "127.0.0.1"))
        self.assertIsInstance(factory, SimulatedSMSC)
        self.assertTrue(factory.dlr)
        self.assertRegex(out.getvalue(), r"^gwsms sim smsc listening on [0-9.]+:0 \(system_id=\*, dlr=on")
        esme = Esme(factory)
        esme.bind()
        esme.send("submit_sm")
        clock.advance(1)
        self.assertIn("binds=1 bind_failures=0 submits=1 (1/s) throttled=0", out.getvalue().splitlines()[-1])
        self.assertEqual(err.getvalue(), "")

    def test_serve_outbind(self):
        """
        --outbind connects to the ESME endpoint once listening and sends
        outbind with the given credentials.
        """
        clock = MemoryReactorClock()
        args = self.parser().parse_args(
            ["sim", "smsc", "--port", "0", "--quiet", "--outbind", "tcp:127.0.0.1:2776",
             "--outbind-system-id", "smsc1", "--outbind-password", "obpw"]
        )
        out, err = io.StringIO(), io.StringIO()
        self.assertEqual(sim_cli.serve(args, clock, out, err), 0)
        host, port, client_factory, timeout, bind = clock.tcpClients[0]
        self.assertEqual((host, port), ("127.0.0.1", 2776))
        proto = client_factory.buildProtocol(ADDRESS)
        transport = StringTransport()
        proto.makeConnection(transport)
        self.assertEqual(split_pdus(transport.value()), [pdu.make("outbind", 1, system_id="smsc1", password="obpw")])
        self.assertIn("outbind sent to tcp:127.0.0.1:2776", out.getvalue())

    def test_serve_bad_outbind_endpoint(self):
        args = self.parser().parse_args(["sim", "smsc", "--port", "0", "--outbind", "nonsense:x"])
        err = io.StringIO()
        self.assertEqual(sim_cli.serve(args, MemoryReactorClock(), io.StringIO(), err), 2)
        self.assertIn("invalid --outbind endpoint", err.getvalue())

    def test_serve_listen_failure(self):
        clock = MemoryReactorClock()

        def listen_fails(*a, **kw):
            raise error.CannotListenError("127.0.0.1", 1, OSError("in use"))

        clock.listenTCP = listen_fails
        args = self.parser().parse_args(["sim", "smsc", "--port", "1"])
        out, err = io.StringIO(), io.StringIO()
        self.assertEqual(sim_cli.serve(args, clock, out, err), 1)
        self.assertEqual(len(err.getvalue().splitlines()), 1)
        self.assertIn("cannot listen on 127.0.0.1:1", err.getvalue())


class SmpplibIntegrationTests(TestCase):
    """
    smpplib, run in a thread, binds to the simulator over loopback.
    """

    timeout = 30

    def setUp(self):
        self.factory = SimulatedSMSC(reactor, system_id="esme", password="pw", dlr=True)
        self.port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)

    def run_client(self, port):
        import smpplib.client

        client = smpplib.client.Client("127.0.0.1", port, timeout=10, allow_unknown_opt_params=True)
        sent, received = [], []
        client.set_message_sent_handler(lambda pdu: sent.append((pdu.status, pdu.message_id)))
        client.set_message_received_handler(lambda pdu: received.append((pdu.esm_class, pdu.short_message)))
        client.connect()
        try:
            client.bind_transceiver(system_id="esme", password="pw")
            client.send_message(source_addr_ton=1, source_addr_npi=1, source_addr="4930123", dest_addr_ton=1,
                                dest_addr_npi=1, destination_addr="4915123", short_message=b"hello from smpplib",
                                registered_delivery=1)
            deadline = time.monotonic() + 10
            while (not sent or not received) and time.monotonic() < deadline:
                client.read_once()
            client.unbind()
        finally:
            client.disconnect()
        return sent, received

    @defer.inlineCallbacks
    def test_smpplib_submits(self):
        d = threads.deferToThread(self.run_client, self.port.getHost().port)
        submits = self.factory.wait_for_submits(1)
        submits.addTimeout(20, reactor)
        sent, received = yield d
        yield submits
        self.assertEqual(sent, [(0, b"00000001")])
        (request,) = self.factory.received
        self.assertEqual(request.params["destination_addr"], "4915123")
        self.assertEqual(request.params["short_message"], b"hello from smpplib")
        self.assertEqual(len(received), 1)
        esm_class, text = received[0]
        self.assertEqual(esm_class, 4)
        self.assertTrue(re.match(rb"id:00000001 sub:001 dlvrd:001 .* stat:DELIVRD err:000 text:hello from smpplib",
                                 text), text)
        self.assertEqual(self.factory.counters["binds"], 1)
        self.assertEqual(self.factory.counters["dlr_sent"], 1)


def pipelined_client(port, count, window):
    """
    A blocking raw-socket ESME: bind, then keep C{window} submit_sm in
    flight until C{count} are answered.

    @return: the submit_sm_resp PDUs in arrival order.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    buf = bytearray()

    def read_some():
        data = sock.recv(1 << 16)
        if not data:
            raise ConnectionError("simulator closed the connection")
        buf.extend(data)
        pdus = []
        while len(buf) >= 16 and len(buf) >= int.from_bytes(buf[:4], "big"):
            length = int.from_bytes(buf[:4], "big")
            pdus.append(pdu.decode(bytes(buf[:length])))
            del buf[:length]
        return pdus

    try:
        sock.sendall(pdu.encode(pdu.make("bind_transmitter", 1, system_id="load", password="x")))
        while not read_some():
            pass
        resps, sent = [], 0
        while len(resps) < count:
            if sent - len(resps) < window and sent < count:
                batch = range(sent, min(count, sent + window - (sent - len(resps))))
                sock.sendall(b"".join(
                    pdu.encode(pdu.make("submit_sm", 2 + i, destination_addr="49151%05d" % i,
                                        short_message=b"load %d" % i))
                    for i in batch
                ))
                sent += len(batch)
            resps.extend(read_some())
        return resps
    finally:
        sock.close()


class PipelineIntegrationTests(TestCase):
    """
    A peer keeping hundreds of requests in flight over a real socket gets
    every answer, in order.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_window_of_500(self):
        factory = SimulatedSMSC(reactor, record=False, throttle_every=1000)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        resps = yield threads.deferToThread(pipelined_client, port.getHost().port, 5000, 500)
        self.assertEqual([r.sequence_number for r in resps], list(range(2, 5002)))
        accepted = [r for r in resps if r.command_status == 0]
        self.assertEqual(len(resps) - len(accepted), 5)
        self.assertEqual({r.command_status for r in resps} - {0}, {S.ESME_RTHROTTLED})
        ids = [int(r.params["message_id"], 16) for r in accepted]
        self.assertEqual(ids, list(range(1, 4996)))
        self.assertEqual((factory.counters["submits"], factory.counters["throttled"]), (4995, 5))


#: A Net::SMPP (Debian libnet-smpp-perl) ESME: bind_transceiver, one
#: submit_sm asking for a receipt, read the receipt, ack it, unbind.
NET_SMPP_CLIENT = r"""
use strict; use warnings; use Net::SMPP;
$| = 1;
my ($host, $port) = @ARGV;
alarm 20;
my $smpp = Net::SMPP->new_transceiver($host, port => $port, system_id => 'esme', password => 'pw',
                                       timeout => 10, enquire_interval => 0)
    or die "BIND_FAILED $!\n";
print "BOUND\n";
my $resp = $smpp->submit_sm(source_addr_ton => 1, source_addr_npi => 1, source_addr => '4930123',
                            dest_addr_ton => 1, dest_addr_npi => 1, destination_addr => '4915123',
                            short_message => 'hello from Net::SMPP', registered_delivery => 1);
print "SUBMIT_RESP $resp->{status} $resp->{message_id}\n";
my $pdu = $smpp->read_pdu() or die "NO_PDU\n";
printf "PDU 0x%08x %d %s\n", $pdu->{cmd}, $pdu->{esm_class}, unpack('H*', $pdu->{short_message});
$smpp->deliver_sm_resp(seq => $pdu->{seq}, message_id => '');
my $u = $smpp->unbind();
print "UNBIND_RESP $u->{status}\n";
"""


class NetSmppIntegrationTests(TestCase):
    """
    Net::SMPP (Perl), run as a child process, binds to the simulator over
    loopback, submits, receives its delivery receipt and unbinds.
    """

    timeout = 30

    @defer.inlineCallbacks
    def test_net_smpp_client(self):
        if shutil.which("perl") is None:
            raise SkipTest("perl is not installed")
        available = yield utils.getProcessValue("perl", ["-MNet::SMPP", "-e1"], env=os.environ)
        if available != 0:
            raise SkipTest("Net::SMPP (libnet-smpp-perl) is not installed")
        factory = SimulatedSMSC(reactor, system_id="esme", password="pw", dlr=True)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        script = self.mktemp()
        with open(script, "w") as f:
            f.write(NET_SMPP_CLIENT)
        out, err, code = yield utils.getProcessOutputAndValue(
            "perl", [script, "127.0.0.1", str(port.getHost().port)], env=os.environ
        )
        lines = out.decode("utf-8", "replace").splitlines()
        self.assertEqual(code, 0, (lines, err))
        self.assertEqual(lines[:2], ["BOUND", "SUBMIT_RESP 0 00000001"])
        command, esm_class, text = lines[2].split()[1:]
        self.assertEqual((command, esm_class), ("0x00000005", "4"))
        self.assertRegex(bytes.fromhex(text), rb"^id:00000001 sub:001 dlvrd:001 .* stat:DELIVRD err:000 "
                                              rb"text:hello from Net::SMPP$")
        self.assertEqual(lines[3], "UNBIND_RESP 0")
        (request,) = factory.received
        self.assertEqual(request.params["short_message"], b"hello from Net::SMPP")
        self.assertEqual((request.params["source_addr"], request.params["destination_addr"]), ("4930123", "4915123"))
        self.assertEqual(factory.counters["dlr_sent"], 1)
