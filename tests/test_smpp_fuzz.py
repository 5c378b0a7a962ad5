"""
Robustness of the SMPP session against hostile input.

More than 100,000 mutated PDUs (bit flips, truncation, corrupted
command_length / command_id / status, random TLVs, splices; seeded, so
every run is identical) are fed to a bound L{ESMEProtocol} on a
L{StringTransport}.  After each one the session must have answered every
request it got, closed with a logged reason, or be waiting for the rest of
a PDU; nothing may raise out of C{dataReceived}, nothing may be logged at
error level, and no request, queue entry or DelayedCall may leak across
reconnects.
"""

import collections
import random
import time

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import Logger, LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from gwsms.smpp import pdu as smpp_pdu
from gwsms.smpp.constants import RESPONSE_BIT, CommandId, CommandStatus, Tag
from gwsms.smpp.esme import ESMEProtocol, NotBoundError
from gwsms.smpp.link import SmscLink
from gwsms.smpp.protocol import (
    SMPPConnectionLost,
    SMPPGenericNack,
    SMPPProtocolError,
    SMPPTimeoutError,
)

COUNT = 100_000
SEED = 0x5EED_2026
#: A well-formed alert_notification has no answer (a malformed one gets generic_nack).
_NO_ANSWER = {int(CommandId.alert_notification)}
_KNOWN_IDS = [int(c) for c in CommandId]
_TAGS = [int(t) for t in Tag]


class FastSink:
    """Accepts every delivery synchronously."""

    def __init__(self):
        self.count = 0

    def deliver_received(self, link_name, pdu):
        self.count += 1
        return 0


def seed_pdus() -> list:
    """Valid PDUs an SMSC might send, as bytes."""
    make = smpp_pdu.make
    pdus = [
        make("deliver_sm", 10, source_addr="491701234", destination_addr="4930123",
             short_message=b"hello world", data_coding=0),
        make("deliver_sm", 11, source_addr="4917", esm_class=4,
             short_message=b"id:123 sub:001 dlvrd:001 stat:DELIVRD err:000 text:",
             tlvs={"receipted_message_id": "123", "message_state": 2}),
        make("deliver_sm", 12, esm_class=0x40, data_coding=8,
             short_message=b"\x05\x00\x03\x01\x02\x01\x00h\x00i",
             tlvs={"sar_msg_ref_num": 7, "sar_total_segments": 2, "sar_segment_seqnum": 1}),
        make("data_sm", 13, source_addr="1", destination_addr="2",
             tlvs={"message_payload": b"payload" * 5}),
        make("enquire_link", 14),
        make("enquire_link_resp", 3),
        make("submit_sm_resp", 2, message_id="abc"),
        make("submit_sm_resp", 3, message_id="def", tlvs={"congestion_state": 85}),
        make("submit_sm_resp", 4, CommandStatus.ESME_RTHROTTLED),
        make("submit_sm_resp", 5, CommandStatus.ESME_RINVDSTADR),
        make("generic_nack", 6, CommandStatus.ESME_RINVCMDLEN),
        make("query_sm", 15, message_id="abc", source_addr="1"),
        make("alert_notification", 16, source_addr="1", esme_addr="2"),
        make("outbind", 17, system_id="smsc", password="pw"),
        make("bind_transceiver_resp", 18, system_id="SMSC"),
        make("unbind_resp", 19),
        make("cancel_sm", 20, message_id="x", source_addr="1", destination_addr="2"),
        make("replace_sm", 21, message_id="x", source_addr="1", short_message=b"new"),
    ]
    out = [smpp_pdu.encode(p) for p in pdus]
    out.append(smpp_pdu.encode(make("unbind", 22)))  # closes the session
    return out


class Mutator:
    """Deterministic PDU mutations."""

    def __init__(self, rng: random.Random, seeds: list):
        self.rng = rng
        self.seeds = seeds
        self.ops = (
            self.flip_bits,
            self.flip_bits,
            self.truncate,
            self.corrupt_length,
            self.add_tlv,
            self.add_tlv,
            self.change_command_id,
            self.change_status,
            self.overwrite_bytes,
            self.splice,
            self.drop_nul,
        )

    @staticmethod
    def set_length(data: bytearray) -> bytearray:
        data[0:4] = len(data).to_bytes(4, "big")
        return data

    def flip_bits(self, data):
        for _ in range(self.rng.randint(1, 3)):
            i = self.rng.randrange(len(data))
            data[i] ^= 1 << self.rng.randrange(8)
        return data

    def truncate(self, data):
        cut = self.rng.randrange(len(data)) if len(data) > 1 else 0
        del data[cut:]
        if self.rng.random() < 0.6 and len(data) >= 4:
            self.set_length(data)
        return data

    def corrupt_length(self, data):
        choice = self.rng.choice(
            (0, 15, 16, len(data) - 1, len(data) + 1, len(data) + 100, 0xFFFFFFFF,
             self.rng.getrandbits(32), self.rng.randint(16, max(16, len(data))))
        )
        if len(data) < 4:
            data.extend(bytes(4 - len(data)))
        data[0:4] = (choice & 0xFFFFFFFF).to_bytes(4, "big")
        return data

    def add_tlv(self, data):
        tag = self.rng.choice(_TAGS) if self.rng.random() < 0.7 else self.rng.getrandbits(16)
        size = self.rng.choice((0, 1, 2, 4, self.rng.randint(0, 70)))
        claimed = size if self.rng.random() < 0.8 else self.rng.randint(0, 300)
        data += tag.to_bytes(2, "big") + claimed.to_bytes(2, "big")
        data += bytes(self.rng.getrandbits(8) for _ in range(size))
        return self.set_length(data)

    def change_command_id(self, data):
        if len(data) >= 8:
            rng = self.rng
            cid = rng.choice(_KNOWN_IDS) if rng.random() < 0.7 else rng.getrandbits(32)
            data[4:8] = cid.to_bytes(4, "big")
        return data

    def change_status(self, data):
        if len(data) >= 12:
            data[8:12] = self.rng.choice((0, 1, 0x58, 0x14, 0xFFFFFFFF)).to_bytes(4, "big")
        return data

    def overwrite_bytes(self, data):
        if len(data) > 16:
            start = self.rng.randrange(16, len(data))
            for i in range(start, min(len(data), start + self.rng.randint(1, 8))):
                data[i] = self.rng.choice((0, 0xFF, self.rng.getrandbits(8)))
        return data

    def drop_nul(self, data):
        nuls = [i for i in range(16, len(data)) if data[i] == 0]
        if nuls:
            data[self.rng.choice(nuls)] = 0x41
        return data

    def splice(self, data):
        other = self.rng.choice(self.seeds)
        cut = self.rng.randrange(len(data))
        data = data[:cut] + other[self.rng.randrange(len(other)):]
        if self.rng.random() < 0.5:
            self.set_length(data)
        return data

    def mutate(self, outstanding=()) -> bytes:
        """
        @param outstanding: sequence numbers in flight; responses are
            usually aimed at one of them.
        """
        data = bytearray(self.rng.choice(self.seeds))
        if outstanding and data[4] & 0x80 and self.rng.random() < 0.8:
            data[12:16] = self.rng.choice(outstanding).to_bytes(4, "big")
        for _ in range(self.rng.choice((1, 1, 1, 2, 3))):
            if not data:
                break
            data = self.rng.choice(self.ops)(data)
        return bytes(data)


def frames_of(data: bytes, max_length: int):
    """
    Split like the protocol does: (command_id, sequence_number) per frame;
    a header after the last whole frame (bad length) is included too, as
    the generic_nack before closing carries its sequence_number.
    """
    out = []
    pos = 0
    while len(data) - pos >= 4:
        length = int.from_bytes(data[pos : pos + 4], "big")
        if length < 16 or length > max_length or len(data) - pos < length:
            if len(data) - pos >= 16 and (length < 16 or length > max_length):
                out.append((-1, int.from_bytes(data[pos + 12 : pos + 16], "big")))
            break
        out.append(
            (int.from_bytes(data[pos + 4 : pos + 8], "big"),
             int.from_bytes(data[pos + 12 : pos + 16], "big"))
        )
        pos += length
    return out


class FuzzTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.sink = FastSink()
        self.link = SmscLink(name="fuzz", ip="127.0.0.1", port=2775, system_id="u",
                             password="p", window=10)
        self.bind_resp = smpp_pdu.encode(smpp_pdu.make("bind_transceiver_resp", 1,
                                                       system_id="SMSC"))
        self.severe = []
        self.failures = {}
        self.submit_results = 0
        self.logger = Logger(namespace="gwsms.smpp.fuzz", observer=self.observe)
        # Anything else logging at error level is caught as well.
        globalLogPublisher.addObserver(self.observe)
        self.addCleanup(globalLogPublisher.removeObserver, self.observe)

    def observe(self, event):
        if event["log_level"] in (LogLevel.error, LogLevel.critical):
            self.severe.append(event)

    def submit_done(self, result):
        self.submit_results += 1

    def submit_failed(self, failure):
        kind = failure.check(SMPPConnectionLost, SMPPProtocolError, SMPPGenericNack,
                             SMPPTimeoutError, NotBoundError)
        name = kind.__name__ if kind else repr(failure.value)
        self.failures[name] = self.failures.get(name, 0) + 1

    def connect(self):
        proto = ESMEProtocol(self.link, self.clock, self.sink)
        # Log events go to the checking observer only: writing ~3 events per
        # PDU to trial's log file would double the run time.
        proto._log = self.logger
        transport = StringTransport()
        proto.makeConnection(transport)
        proto.bind()
        proto.dataReceived(self.bind_resp)
        self.assertEqual(proto.state, "bound_trx")
        transport.clear()
        return proto, transport

    def top_up(self, proto):
        while len(proto.outstanding) + proto.pending_submits < 5:
            d = proto.submit({"destination_addr": "4917", "short_message": b"x"})
            d.addCallbacks(self.submit_done, self.submit_failed)

    def reconnect(self, proto):
        proto.connectionLost(Failure(ConnectionError("fuzz reconnect")))
        self.assertEqual(proto.outstanding, {})
        self.assertEqual(proto.pending_submits, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        return self.connect()

    def complete_partial(self, proto, transport, data) -> bool:
        """
        Complete a partial PDU with zeros (cheaper than a new session); it
        must then be consumed: answered, dropped or closed, never left
        half-read.

        @return: whether the session is still usable.
        """
        buffered = bytes(proto._buffer)
        if len(buffered) < 4:
            return False
        missing = int.from_bytes(buffered[:4], "big") - len(buffered)
        if not 0 < missing <= 512:
            return False
        proto.dataReceived(bytes(missing))
        transport.clear()
        if transport.disconnecting:
            self.assertTrue(proto.close_reason, repr(data))
            return False
        self.assertEqual(proto._buffer, b"", repr(data))
        return True

    def test_mutated_pdus(self):
        rng = random.Random(SEED)
        seeds = seed_pdus()
        mutator = Mutator(rng, seeds)
        max_length = 65536
        outcomes = dict.fromkeys(("answered", "closed", "waiting", "no_answer"), 0)
        proto, transport = self.connect()
        self.top_up(proto)
        transport.clear()
        started = time.monotonic()
        for i in range(COUNT):
            data = mutator.mutate(list(proto.outstanding))
            proto.dataReceived(data)  # must not raise
            out = transport.value()
            transport.clear()
            frames = frames_of(data, max_length)
            seqs = {seq for _cid, seq in frames} | {0}
            if out:
                for cid, seq in frames_of(out, 1 << 32):
                    if cid & RESPONSE_BIT:
                        self.assertIn(seq, seqs, f"answer {cid:#x} seq={seq} to {data!r}")
                    else:
                        self.assertEqual(cid, CommandId.submit_sm, repr(data))
            if transport.disconnecting:
                self.assertTrue(proto.close_reason, repr(data))
                outcomes["closed"] += 1
                proto, transport = self.reconnect(proto)
            elif proto._buffer:
                outcomes["waiting"] += 1
                if not self.complete_partial(proto, transport, data):
                    proto, transport = self.reconnect(proto)
            elif any(cid >= 0 and not cid & RESPONSE_BIT and cid not in _NO_ANSWER
                     for cid, _ in frames):
                # Every request got its answer.
                answered = [seq for cid, seq in frames_of(out, 1 << 32) if cid & RESPONSE_BIT]
                requests = [seq for cid, seq in frames
                            if not cid & RESPONSE_BIT and cid not in _NO_ANSWER]
                missing = collections.Counter(requests) - collections.Counter(answered)
                self.assertFalse(missing, f"unanswered {missing} in {data!r}")
                outcomes["answered"] += 1
            else:
                outcomes["no_answer"] += 1
            if i % 16 == 0:
                # Let throttle pauses, enquire_link and response timers run.
                self.clock.advance(0.25)
                if transport.disconnecting:
                    proto, transport = self.reconnect(proto)
                self.top_up(proto)
                transport.clear()
            # Bounded state at every step.
            self.assertLessEqual(len(proto.outstanding), self.link.window + 2)
            self.assertLessEqual(len(self.clock.calls), self.link.window + 6)
        elapsed = time.monotonic() - started
        proto.connectionLost(Failure(ConnectionError("end")))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.severe, [], "errors were logged")
        self.assertEqual(sum(outcomes.values()), COUNT)
        # Every kind of outcome actually happened.
        for kind, n in outcomes.items():
            self.assertGreater(n, 100, f"{kind}: {outcomes}")
        self.assertGreater(self.sink.count, 1000)
        self.assertGreater(self.submit_results, 100)
        self.assertEqual(
            set(self.failures) - {"SMPPConnectionLost", "SMPPProtocolError", "SMPPGenericNack",
                                  "SMPPTimeoutError", "NotBoundError"},
            set(),
        )
        print(f"\nfuzz: {COUNT} PDUs in {elapsed:.1f}s: {outcomes}; "
              f"deliveries={self.sink.count} submits={self.submit_results} "
              f"failures={self.failures}")
