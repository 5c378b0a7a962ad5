"""
Micro-benchmark of the SMPP PDU codec (gwsms.smpp.pdu).

Usage: .venv/bin/python bench/codec.py [--number N] [--repeat R] [--wall] [--json]

Measures operations per second (best of R runs of N operations, timeit;
process CPU time by default so a busy machine disturbs the figures less,
wall-clock time with --wall):
  submit_sm encode / decode    a single-part MT: alphanumeric sender,
                               international destination, 160-octet text,
                               registered_delivery, no TLVs
  deliver_sm encode / decode   a delivery receipt: receipt text plus the
                               receipted_message_id and message_state TLVs
  submit_sm+sar encode / decode  one part of a concatenated MT (three SAR TLVs)
"""

import argparse
import json
import os
import platform
import sys
import time
import timeit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gwsms.smpp import pdu  # noqa: E402

SUBMIT = pdu.make(
    "submit_sm",
    123456,
    source_addr_ton=5,
    source_addr_npi=0,
    source_addr="gwsms",
    dest_addr_ton=1,
    dest_addr_npi=1,
    destination_addr="4915123456789",
    registered_delivery=1,
    data_coding=0,
    short_message=b"Hello from the gateway! " * 6 + b"0123456789abcdef",
)

SUBMIT_SAR = pdu.make(
    "submit_sm",
    123457,
    **dict(SUBMIT.params, short_message=b"part one of a long text " * 5),
    tlvs={"sar_msg_ref_num": 42, "sar_total_segments": 2, "sar_segment_seqnum": 1},
)

DELIVER = pdu.make(
    "deliver_sm",
    654321,
    source_addr_ton=1,
    source_addr_npi=1,
    source_addr="4915123456789",
    dest_addr_ton=5,
    destination_addr="gwsms",
    esm_class=0x04,
    short_message=b"id:0000a1b2 sub:001 dlvrd:001 submit date:2611271030 done date:2611271031"
    b" stat:DELIVRD err:000 text:Hello from the gat",
    tlvs={"receipted_message_id": "0000a1b2", "message_state": 2},
)


def measure(number, repeat, timer=time.process_time):
    """
    @param timer: the clock timeit uses.
    @return: dict of benchmark name -> operations per second.
    """
    cases = []
    for name, sample in (("submit_sm", SUBMIT), ("deliver_sm", DELIVER), ("submit_sm+sar", SUBMIT_SAR)):
        data = pdu.encode(sample)
        assert pdu.decode(data) == sample
        cases.append((name + " encode", pdu.encode, sample))
        cases.append((name + " decode", pdu.decode, data))
    results = {}
    for name, func, arg in cases:
        runner = timeit.Timer("func(arg)", globals={"func": func, "arg": arg}, timer=timer)
        best = min(runner.repeat(repeat=repeat, number=number))
        results[name] = round(number / best)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description="SMPP PDU codec micro-benchmark")
    parser.add_argument("--number", type=int, default=200000, help="operations per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (best is kept)")
    parser.add_argument("--wall", action="store_true", help="wall-clock instead of process CPU time")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    if args.number < 1 or args.repeat < 1:
        parser.error("--number and --repeat must be positive")
    timer = time.perf_counter if args.wall else time.process_time
    results = measure(args.number, args.repeat, timer)
    if args.json:
        print(
            json.dumps(
                {
                    "benchmark": "smpp_codec",
                    "python": platform.python_version(),
                    "machine": platform.machine(),
                    "number": args.number,
                    "timer": "wall" if args.wall else "cpu",
                    "ops_per_second": results,
                    "submit_sm_octets": len(pdu.encode(SUBMIT)),
                    "deliver_sm_octets": len(pdu.encode(DELIVER)),
                }
            )
        )
    else:
        print("SMPP codec, Python %s, %s time, best of %d x %d"
              % (platform.python_version(), "wall" if args.wall else "CPU", args.repeat, args.number))
        for name, ops in results.items():
            print("%-22s %10d ops/s" % (name, ops))
    return 0


if __name__ == "__main__":
    sys.exit(main())
