"""
Fuzz the SIP transports: >= 100k mutated SIP messages through
L{SipDatagramProtocol} and L{SipStreamProtocol} (with the real transaction
layer and a trivial TU answering 200).  Each message must be answered
(400/4xx by the transport, or by the TU / transaction layer), or dropped
and counted (the drop is logged, rate-limited); nothing may raise or log an
error, and the protocols must keep serving.
"""

import random
import time

from twisted.internet.address import IPv4Address
from twisted.internet.testing import FakeDatagramTransport, MemoryReactorClock, StringTransport
from twisted.internet import error
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.trial import unittest

from gwsms.sip import message as sipmsg
from gwsms.sip import transaction as txnmod
from gwsms.sip import wire
from gwsms.sip.transaction import TransactionLayer
from gwsms.sip.transport import TransportLayer

#: messages per run (UDP, stream); together >= 100k
UDP_COUNT = 70000
STREAM_COUNT = 32000

SEEDS = [
    b"MESSAGE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bKseed1;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: \"Alice\" <sip:alice@example.com>;tag=f1\r\n"
    b"To: <sip:bob@example.com>\r\n"
    b"Call-ID: seed1@192.0.2.7\r\n"
    b"CSeq: 1 MESSAGE\r\n"
    b"Content-Type: text/plain;charset=UTF-8\r\n"
    b"Content-Length: 5\r\n\r\nhello",
    b"OPTIONS sip:[2001:db8::1]:5060;transport=udp SIP/2.0\r\n"
    b"v: SIP/2.0/UDP [2001:db8::7]:5060;branch=z9hG4bKseed2,SIP/2.0/TCP proxy.example.com\r\n"
    b"f: <sip:alice@example.com>;tag=x\r\nt: sip:bob@example.com\r\ni: seed2\r\n"
    b"CSeq: 7 OPTIONS\r\nl: 0\r\n\r\n",
    b"REGISTER sip:example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKseed3;received=192.0.2.99\r\n"
    b"From: <sip:carol@example.com>;tag=r1\r\nTo: <sip:carol@example.com>\r\n"
    b"Call-ID: seed3\r\nCSeq: 2 REGISTER\r\nContact: <sip:carol@192.0.2.9>;expires=60\r\n"
    b"Expires: 60\r\nContent-Length: 0\r\n\r\n",
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKseed4\r\n"
    b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n"
    b"Call-ID: seed4\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n",
    b"CANCEL sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.7;branch=z9hG4bKseed5\r\n"
    b"From: <sip:alice@example.com>;tag=f1\r\nTo: <sip:bob@example.com>\r\n"
    b"Call-ID: seed5\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n",
    b"ACK sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.7;branch=z9hG4bKseed6\r\n"
    b"From: <sip:alice@example.com>;tag=f1\r\nTo: <sip:bob@example.com>;tag=9\r\n"
    b"Call-ID: seed6\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.7;branch=z9hG4bKseed7;maddr=192.0.2.77\r\n"
    b"From: <sip:alice@example.com>;tag=f1\r\nTo: <sip:bob@example.com>\r\n"
    b"Call-ID: seed7\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n\r\nv=0\n",
]

TOKENS = [b"\r\n", b"\n", b"\r", b":", b";", b",", b"<", b">", b"\"", b"\\", b"\x00", b"\xff",
          b" ", b"\t", b"=", b"[", b"]", b"@", b"%", b"%zz", b"z9hG4bK", b";rport", b";rport=",
          b";received=", b";maddr=", b"Content-Length: 99999999999", b"Content-Length: 3",
          b"Via: ", b"SIP/2.0/TCP ", b"SIP/3.0", b"\r\n\r\n", b"\xc3\x28", b"99999",
          b"-1", b"CSeq: 1 ACK", b"To: <sip:x@y>;tag=t", b"\r\n ", b"\r\n\tcontinued"]


def mutate(rng: random.Random, data: bytes) -> bytes:
    """Apply 1-4 random mutations."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9)
        n = len(buf)
        pos = rng.randrange(n + 1) if n else 0
        if op == 0 and n:  # flip a byte
            buf[rng.randrange(n)] = rng.randrange(256)
        elif op == 1:  # insert a token
            buf[pos:pos] = rng.choice(TOKENS)
        elif op == 2 and n:  # delete a range
            buf[pos:pos + rng.randint(1, 16)] = b""
        elif op == 3:  # truncate
            del buf[pos:]
        elif op == 4:  # duplicate a line
            lines = bytes(buf).split(b"\r\n")
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i])
            buf = bytearray(b"\r\n".join(lines))
        elif op == 5:  # drop a line
            lines = bytes(buf).split(b"\r\n")
            if len(lines) > 1:
                del lines[rng.randrange(len(lines))]
            buf = bytearray(b"\r\n".join(lines))
        elif op == 6:  # swap two lines
            lines = bytes(buf).split(b"\r\n")
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            buf = bytearray(b"\r\n".join(lines))
        elif op == 7:  # random bytes
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        else:  # a fresh branch, so the message is not a retransmission
            buf = bytearray(bytes(buf).replace(b"z9hG4bKseed", b"z9hG4bK%d" % rng.randrange(10**9)))
    return bytes(buf)


class AnswerTU:
    def __init__(self):
        self.calls = 0

    def request_received(self, request, source, txn):
        self.calls += 1
        txn.respond(sipmsg.make_response(request, 200, to_tag="fz"))


class FuzzBase(unittest.TestCase):
    def setUp(self):
        self.rng = random.Random(20261127)
        self.reactor = MemoryReactorClock()
        self.layer = TransportLayer(self.reactor, max_message_size=4096)
        self.tu = AnswerTU()
        self.txn = TransactionLayer(self.reactor, tu=self.tu, transport=self.layer)
        # keep logging cheap: the limiter still runs, lines go nowhere
        quiet = Logger(observer=lambda event: None)
        self.layer._log = quiet
        for cls in (wire.SipDatagramProtocol, wire.SipStreamProtocol,
                    txnmod.ServerTransaction, txnmod.ClientTransaction):
            self.patch(cls, "_log", quiet)
        self.txn._log = quiet

    def tally(self):
        s, t = self.layer.stats, self.txn.stats
        return (s["dropped"] + s["keepalives"] + s["bad_answered"] + t["stray_responses"]
                + t["stray_acks"] + t["dropped"] + t["absorbed"] + t["send_errors"]
                + self.tu.calls)

    def tearDown(self):
        self.txn.stop()
        self.assertEqual(self.txn.server_transactions, {})
        self.assertEqual(self.txn.client_transactions, {})


class DatagramFuzzTests(FuzzBase):
    def test_fuzz_udp(self):
        proto = wire.SipDatagramProtocol(self.layer)
        udp = FakeDatagramTransport()
        proto.makeConnection(udp)
        proto.sent_by = ("127.0.0.1", 5060)
        started = time.monotonic()
        unaccounted = 0
        for i in range(UDP_COUNT):
            data = mutate(self.rng, self.rng.choice(SEEDS))
            before_written, before = len(udp.written), self.tally()
            proto.datagramReceived(data, ("198.51.100.1", 6000 + i % 1000))
            if len(udp.written) == before_written and self.tally() == before:
                unaccounted += 1
            if i % 2000 == 1999:
                self.reactor.advance(40)  # Timers J/H/K run out; maps drain
                del udp.written[:]
        self.assertEqual(unaccounted, 0)
        self.assertGreater(self.layer.stats["bad_answered"], 1000)
        self.assertGreater(self.tu.calls, 1000)
        self.assertGreater(self.layer.stats["dropped"], 1000)
        # still serving
        del udp.written[:]
        proto.datagramReceived(SEEDS[0].replace(b"seed1", b"final"), ("198.51.100.1", 7000))
        self.assertEqual(sipmsg.parse_message(udp.written[-1][0]).status, 200)
        self.reactor.advance(40)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertLess(time.monotonic() - started, 60)


class StreamFuzzTests(FuzzBase):
    def connect(self, port):
        proto = wire.SipStreamFactory(self.layer, "tcp").buildProtocol(None)
        transport = StringTransport(peerAddress=IPv4Address("TCP", "198.51.100.2", port))
        proto.makeConnection(transport)
        return proto, transport

    def feed(self, proto, data):
        """Feed in 1-4 random chunks."""
        cuts = sorted(self.rng.randrange(len(data) + 1) for _ in range(self.rng.randint(0, 3)))
        last = 0
        for cut in cuts + [len(data)]:
            if proto.connected_ and not proto.transport.disconnecting:
                proto.dataReceived(data[last:cut])
            last = cut

    def close(self, proto):
        proto.connectionLost(Failure(error.ConnectionDone()))

    def test_fuzz_stream_one_connection_each(self):
        """Each message on its own connection: answered, dropped or closed."""
        unaccounted = 0
        for i in range(STREAM_COUNT // 2):
            data = mutate(self.rng, self.rng.choice(SEEDS)).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP")
            proto, transport = self.connect(10000 + i % 50000)
            before = self.tally()
            self.feed(proto, data)
            closed = transport.disconnecting
            self.close(proto)
            blank = not data.strip(b"\r\n")  # CRLFs between messages are skipped
            if not transport.value() and self.tally() == before and not closed and not blank:
                unaccounted += 1
            if i % 2000 == 1999:
                self.reactor.advance(40)
        self.assertEqual(unaccounted, 0)
        self.assertEqual(self.layer._connections, {})
        self.reactor.advance(40)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_fuzz_stream_shared_connection(self):
        """Many messages on one connection; reconnect when it is closed."""
        proto, transport = self.connect(20000)
        closes = 0
        for i in range(STREAM_COUNT // 2):
            data = mutate(self.rng, self.rng.choice(SEEDS))
            self.feed(proto, data)
            if transport.disconnecting:
                closes += 1
                self.close(proto)
                proto, transport = self.connect(20001 + closes)
            if i % 2000 == 1999:
                self.reactor.advance(40)
        self.assertGreater(self.layer.stats["bad_answered"] + self.tu.calls, 1000)
        self.close(proto)
        # a fresh connection is served
        proto, transport = self.connect(30000)
        proto.dataReceived(SEEDS[0].replace(b"seed1", b"final").replace(b"UDP", b"TCP"))
        items = sipmsg.StreamParser().feed(transport.value() + b"\r\n\r\n")
        self.assertEqual(items[0].status, 200)
        self.close(proto)
