# -*- test-case-name: tests.test_bench_instructions -*-
"""
Instructions per SIP -> SMPP message in the gateway's reactor-thread code,
counted by valgrind's callgrind: the same figure on a busy machine, where
CPU time is not (this box drifts by 20-40 % within an hour).

In one process, on a fake clock, with the running gateway's collector
settings (L{gwsms.gctune}): the SIP UDP transport with the MT lane,
the gateway core, the SQLite store (group commit, statements in this
thread) and a real L{gwsms.smpp.esme.ESMEProtocol}
bound over a C{StringTransport}, whose C{submit_sm} are answered in batches
(the window).  Per batch of MESSAGEs it counts three phases:

  - C{lane}: the datagrams read, checked, the messages prepared and queued
    for the store (L{gwsms.core.fastmt.FastMtLane.__call__});
  - C{submit}: the write batch (the store's statements and C{COMMIT}), the
    commit callbacks, the C{submit_sm} written;
  - C{answer}: the C{submit_sm_resp} read, the 202 sent, the "submitted"
    write batch.

Not counted: the sockets, the event loop, the other processes; the kernel.

With C{--direction mo} it counts SMPP -> SIP instead: a bound
L{gwsms.smpp.esme.ESMEProtocol} over a C{StringTransport} whose sink is the
gateway with its MO lane (L{gwsms.core.fastmo}), its SIP MESSAGEs sent
through a fake UDP socket, per batch of deliver_sm:

  - C{deliver}: the deliver_sm read and decoded, taken by the lane;
  - C{store}: the write batch, the deliver_sm_resp written, the SIP
    MESSAGEs sent;
  - C{answer}: the UAS's 200 OKs read and matched, the "delivered" write
    batch.

  .venv/bin/python bench/instructions.py [--direction mt|mo] [--count 2000] [--batch 100] [--json]

runs itself under valgrind (C{--inside}: the flow alone, no valgrind) and
prints instructions per message of each phase and in all.  The phases are
told apart by C{os.getppid()} calls, before each of which callgrind dumps
its counters (C{--dump-before=getppid}: the C library's function, which has
its name in any build of Python, a stripped one such as Debian's too).
"""

from __future__ import annotations

import argparse
import gc
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MARKER = "getppid"  # the C library function behind os.getppid()
ADDR = ("127.0.0.1", 40000)


def datagram(number: int) -> bytes:
    """A MESSAGE as the bench's sipp scenario sends it (C{bench/sipp/uac_message.xml})."""
    body = b"gwsms bench message %d" % number
    return (b"MESSAGE sip:+491701234567@127.0.0.1:5060 SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-%d-1-0\r\n"
            b"From: <sip:+4915112345678@127.0.0.1>;tag=4242b%d\r\n"
            b"To: <sip:+491701234567@127.0.0.1:5060>\r\n"
            b"Call-ID: %d-4242@127.0.0.1\r\n"
            b"CSeq: 1 MESSAGE\r\n"
            b"Max-Forwards: 70\r\n"
            b"Content-Type: text/plain;charset=UTF-8\r\n"
            b"Content-Length: %d\r\n\r\n%s"
            % (number, number, number, len(body), body))


def submit_responses(raw: bytes) -> bytes:
    """A C{submit_sm_resp} (status 0, a message id) for every PDU in C{raw}."""
    from gwsms.smpp.constants import RESPONSE_BIT
    from gwsms.smpp.pdu import HEADER

    out = []
    offset = 0
    while offset < len(raw):
        length, command_id, _status, seq = HEADER.unpack_from(raw, offset)
        out.append(HEADER.pack(HEADER.size + 9, command_id | RESPONSE_BIT, 0, seq)
                   + b"%08x\x00" % seq)
        offset += length
    return b"".join(out)


def _flow_case():
    """A trial case for the tests' harnesses (their databases, cleanups)."""
    from twisted.trial.unittest import SynchronousTestCase

    class Flow(SynchronousTestCase):
        def test(self):
            pass

    return Flow("test")


def _bound_esme(clock, sink, window: int):
    """
    @return: C{(esme, transport)}: an L{gwsms.smpp.esme.ESMEProtocol}
        bound (transceiver) over a C{StringTransport}, delivering to C{sink}.
    """
    from twisted.internet.testing import StringTransport

    from gwsms.smpp.esme import ESMEProtocol
    from gwsms.smpp.pdu import encode
    from tests.test_smpp_esme import make_link as esme_link
    from tests.test_smpp_protocol import take

    esme = ESMEProtocol(esme_link(name="smsc1", window=window), clock, sink)
    transport = StringTransport()
    esme.makeConnection(transport)
    esme.bind()
    [bind] = take(transport)
    esme.dataReceived(encode(bind.response(system_id="SMSC")))
    return esme, transport


def run(count: int, batch: int, warmup: int = 200, mark=lambda: None, tune: bool = False) -> dict:
    """
    Carry C{warmup} and then C{count} MESSAGEs through the flow, in batches.

    @param mark: called before each phase of each counted batch (the
        callgrind marker; L{PHASES}), and once after the last.
    @param tune: after the warm-up, set the garbage collector as the running
        gateway does (L{gwsms.gctune.tune}: for good, in this process).
    @return: C{{"messages", "answered_202", "submits"}} of the counted ones.
    @raise RuntimeError: a MESSAGE was not answered 202 after its submit_sm.
    """
    from tests.test_core_fastmt import LaneHarness
    from tests.test_smpp_esme import RecordingSink

    harness = LaneHarness(_flow_case(), max_pending=10 ** 9, sip_reply="submitted")
    esme, transport = _bound_esme(harness.clock, RecordingSink(), batch)
    harness.smpp.sessions["smsc1"] = esme
    receive = harness.proto.datagramReceived

    def carry(first: int, last: int, marked: bool) -> None:
        mark_now = mark if marked else (lambda: None)
        batches = [[datagram(n) for n in range(start, min(start + batch, last))]
                   for start in range(first, last, batch)]
        for datagrams in batches:
            mark_now()  # lane
            for data in datagrams:
                receive(data, ADDR)
            mark_now()  # submit: the write batch, stored -> submit_sm written
            harness.flush(0.01)
            raw = transport.value()
            transport.clear()
            mark_now()  # the SMSC's side: not counted
            responses = submit_responses(raw)
            mark_now()  # answer: submit_sm_resp read, 202 sent, the "submitted" batch
            esme.dataReceived(responses)
            harness.flush(0.01)

    carry(0, warmup, False)
    sent = len(harness.socket.sent)
    if tune:
        from gwsms import gctune

        gctune.tune()
    else:
        gc.collect()
    carry(warmup, warmup + count, True)
    mark()
    answers = harness.socket.sent[sent:]
    ok = sum(1 for data, _addr in answers if data.startswith(b"SIP/2.0 202 "))
    submits = esme.stats["submit_ok"]
    harness.stop()
    harness.db.close()
    if ok != count:
        raise RuntimeError("%d of %d MESSAGEs answered 202 (answers: %r)"
                           % (ok, count, sorted({d.split(b"\r\n", 1)[0] for d, _a in answers})))
    return {"messages": count, "answered_202": ok, "submits": submits - warmup}


def deliver_sms(first: int, last: int) -> bytes:
    """deliver_sm C{first} to C{last - 1} (sequence numbers alike), as the bench's simulator sends them."""
    from gwsms.smpp import pdu

    return b"".join(pdu.encode(pdu.make(
        "deliver_sm", sequence_number=number, source_addr_ton=1, source_addr_npi=1,
        source_addr="4915100000001", dest_addr_ton=1, dest_addr_npi=1,
        destination_addr="491701234567", short_message=b"bench MO %d" % number))
        for number in range(first, last))


def run_mo(count: int, batch: int, warmup: int = 200, mark=lambda: None,
           tune: bool = False) -> dict:
    """
    Carry C{warmup} and then C{count} deliver_sm through the SMPP -> SIP
    flow, in batches (L{MO_PHASES}); like L{run}.

    @return: C{{"messages", "answered_ok", "delivered"}} of the counted ones.
    @raise RuntimeError: a deliver_sm was not answered ESME_ROK, or its
        MESSAGE not sent and answered 200.
    """
    from tests.test_core_fastmo import UAS, FakeLayer, mo_route, response
    from tests.test_core_gateway import Harness
    from tests.test_smpp_protocol import take

    harness = Harness(_flow_case(), routes=[mo_route()], max_pending=10 ** 9)
    layer = FakeLayer()
    lane = harness.gateway.set_fast_mo(layer, t1=0.5, t2=4.0)
    harness.start()
    esme, transport = _bound_esme(harness.clock, harness.gateway, batch)
    sent = layer.socket.sent
    answer = lane.uac.datagram_received

    def carry(first: int, last: int, marked: bool) -> int:
        mark_now = mark if marked else (lambda: None)
        ok = 0
        raws = [deliver_sms(start + 1, min(start + batch, last) + 1)
                for start in range(first, last, batch)]
        for raw in raws:
            before = len(sent)
            mark_now()  # deliver
            esme.dataReceived(raw)
            mark_now()  # store: the write batch, the answers, the MESSAGEs sent
            harness.flush()
            mark_now()  # the UAS's side: not counted
            ok += sum(1 for pdu in take(transport) if pdu.command == "deliver_sm_resp"
                      and pdu.command_status == 0)
            oks = [response(data) for data, _addr in sent[before:]]
            mark_now()  # answer: the 200 OKs read, the "delivered" write batch
            for data in oks:
                answer(None, data, UAS)
            harness.flush()
        return ok

    carry(0, warmup, False)
    delivered = lane.stats["delivered"]
    if tune:
        from gwsms import gctune

        gctune.tune()
    else:
        gc.collect()
    ok = carry(warmup, warmup + count, True)
    mark()
    delivered = lane.stats["delivered"] - delivered
    harness.stop()
    if ok != count or delivered != count:
        raise RuntimeError("of %d deliver_sm, %d answered ESME_ROK and %d delivered (lane: %r)"
                           % (count, ok, delivered, dict(lane.stats)))
    return {"messages": count, "answered_ok": ok, "delivered": delivered}


def totals(out_file: str) -> list[int]:
    """
    @return: the instruction totals of callgrind's dumps of one run
        (C{out_file}, C{out_file.1}, ...), in the order they were taken.
    """
    parts = []
    for path in glob.glob(glob.escape(out_file) + ".*") + [out_file]:
        suffix = path[len(out_file) + 1:]
        if suffix and not suffix.isdigit():
            continue
        with open(path) as f:
            total = next((int(line.split()[1]) for line in f if line.startswith("totals:")), None)
        if total is None:
            raise ValueError("no totals in %s" % path)
        # the last dump (at exit) has no number
        parts.append((int(suffix) if suffix else 1 << 30, total))
    return [total for _index, total in sorted(parts)]


#: what the dumps between the markers of one batch count (L{run})
PHASES = ("lane", "submit", None, "answer")
#: the same for SMPP -> SIP (L{run_mo})
MO_PHASES = ("deliver", "store", None, "answer")


def phases(parts: list[int], batches: int, names: tuple = PHASES) -> dict:
    """
    Instructions of each phase from the dumps: before the first counted
    batch, then C{names} (L{PHASES}, L{MO_PHASES}) for each batch, then the
    exit.
    """
    expected = len(names) * batches + 2
    if len(parts) != expected:
        raise ValueError("expected %d callgrind dumps, found %d: does os.getppid() call"
                         " %s()?" % (expected, len(parts), MARKER))
    counted = parts[1:-1]
    return {name: sum(counted[index::len(names)])
            for index, name in enumerate(names) if name is not None}


def measure(count: int, batch: int, valgrind: str = "valgrind", direction: str = "mt") -> dict:
    """
    Run L{run} (C{direction} C{"mt"}) or L{run_mo} (C{"mo"}) under
    callgrind; @return: the report (instructions per message).
    """
    names = MO_PHASES if direction == "mo" else PHASES
    tmp = tempfile.mkdtemp(prefix="gwsms-instructions-")
    try:
        out_file = os.path.join(tmp, "callgrind.out")
        command = [valgrind, "--tool=callgrind", "--dump-before=" + MARKER,
                   "--callgrind-out-file=" + out_file, sys.executable, os.path.abspath(__file__),
                   "--inside", "--count", str(count), "--batch", str(batch),
                   "--direction", direction]
        # one hash seed: the same dict and set layouts from run to run
        done = subprocess.run(command, cwd=tmp, capture_output=True, text=True,
                              env=dict(os.environ, PYTHONHASHSEED="0"))
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
            raise RuntimeError("the flow under valgrind failed: " + " | ".join(tail))
        flow = json.loads(done.stdout.strip().splitlines()[-1])
        batches = -(-count // batch)
        counted = phases(totals(out_file), batches, names)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report = {"messages": count, "batch": batch}
    report.update((key, value) for key, value in flow.items() if key != "messages")
    for name, value in counted.items():
        report[name + "_per_message"] = round(value / count)
    report["all_per_message"] = sum(report[name + "_per_message"] for name in names if name)
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bench/instructions.py",
                                     description=__doc__.strip().splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="MESSAGEs counted (2000)")
    parser.add_argument("--batch", type=int, default=100,
                        help="MESSAGEs per write batch and SMPP window (100)")
    parser.add_argument("--direction", choices=("mt", "mo"), default="mt",
                        help="mt: SIP -> SMPP MESSAGEs (default); mo: SMPP -> SIP deliver_sm")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--inside", action="store_true",
                        help="run the flow here, without valgrind (what the outer run counts)")
    args = parser.parse_args(argv)
    if args.count < 1 or args.batch < 1:
        parser.error("--count and --batch must be at least 1")
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    if args.inside:
        # the harness's trial case makes its database under the working
        # directory: a fresh one of our own
        work = tempfile.mkdtemp(prefix="gwsms-flow-")
        try:
            os.chdir(work)
            flow = run_mo if args.direction == "mo" else run
            print(json.dumps(flow(args.count, args.batch, mark=os.getppid, tune=True)))
        finally:
            os.chdir(ROOT)
            shutil.rmtree(work, ignore_errors=True)
        return 0
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        parser.error("valgrind not found (Debian package valgrind)")
    try:
        report = measure(args.count, args.batch, valgrind, args.direction)
    except (RuntimeError, ValueError) as e:
        print("bench/instructions.py: %s" % e, file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report))
    elif args.direction == "mo":
        print("instructions per deliver_sm (callgrind, %s deliver_sm in batches of %d, all"
              " answered ESME_ROK, their MESSAGEs answered 200): deliver %s, store %s,"
              " answer %s, in all %s"
              % (count_fmt(report["messages"]), report["batch"],
                 *(count_fmt(report[name + "_per_message"])
                   for name in ("deliver", "store", "answer", "all"))))
    else:
        print("instructions per MESSAGE (callgrind, %s MESSAGEs in batches of %d, all answered"
              " 202): lane %s, submit %s, answer %s, in all %s"
              % (count_fmt(report["messages"]), report["batch"],
                 *(count_fmt(report[name + "_per_message"])
                   for name in ("lane", "submit", "answer", "all"))))
    return 0


def count_fmt(value: int) -> str:
    return "{:,}".format(value)


if __name__ == "__main__":
    sys.exit(main())
