"""
Micro-benchmark of SMS text handling (gwsms.core.gsm, gwsms.core.text).

Usage: .venv/bin/python bench/text.py [--number N] [--repeat R] [--json]

Measures operations per second (best of R runs of N operations, timeit):
  gsm encode 160        gsm.encode of a 160-character GSM text
  gsm decode 160        gsm.decode of the same septets
  gsm split 400         text.split of a 400-character GSM text (3 parts, udh8)
  ucs2 split 400        text.split of a 400-character Cyrillic text (6 parts, udh8)
  decode_sm ucs2 udh    text.decode_sm of one UCS-2 part with a UDH
  reassemble 3 parts    mo_part + Reassembler.add of 3 parts + decode
"""

import argparse
import json
import os
import platform
import sys
import timeit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gwsms.core import gsm, text  # noqa: E402

GSM_160 = ("Hello from the gateway, your code is 1234. Reply STOP to opt out! " * 3)[:160]
GSM_400 = ("The quick brown fox jumps over the lazy dog {at} 10:00 EUR5. " * 7)[:400]
UCS2_400 = ("Съешь же ещё этих мягких французских булок, да выпей чаю. " * 7)[:400]
PARTS = text.split(("Привет, мир! " * 20)[:200], ref=42)  # 3 UCS-2 parts


def _reassemble():
    reassembler = text.Reassembler()
    message = None
    for segment in PARTS:
        part = text.mo_part(segment.short_message, segment.data_coding, segment.esm_class)
        message = reassembler.add(("smsc", "491701", "gw", part.ref), part.seq, part.total,
                                  part.payload, part.data_coding, 0.0) or message
    return message.decode().text


def measure(number, repeat):
    """
    @return: dict of benchmark name -> operations per second.
    """
    septets = gsm.encode(GSM_160)
    assert len(septets) == 160 and gsm.decode(septets) == GSM_160
    assert len(text.split(GSM_400)) == 3 and len(text.split(UCS2_400)) == 6
    assert len(PARTS) == 3 and _reassemble() == ("Привет, мир! " * 20)[:200]
    part = PARTS[0]
    cases = [
        ("gsm encode 160", lambda: gsm.encode(GSM_160)),
        ("gsm decode 160", lambda: gsm.decode(septets)),
        ("gsm split 400", lambda: text.split(GSM_400, ref=1)),
        ("ucs2 split 400", lambda: text.split(UCS2_400, ref=1)),
        ("decode_sm ucs2 udh",
         lambda: text.decode_sm(part.short_message, part.data_coding, part.esm_class)),
        ("reassemble 3 parts", _reassemble),
    ]
    results = {}
    for name, func in cases:
        best = min(timeit.Timer(func).repeat(repeat=repeat, number=number))
        results[name] = round(number / best)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description="SMS text handling micro-benchmark")
    parser.add_argument("--number", type=int, default=20000, help="operations per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (best is kept)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    if args.number < 1 or args.repeat < 1:
        parser.error("--number and --repeat must be positive")
    results = measure(args.number, args.repeat)
    if args.json:
        print(json.dumps({
            "benchmark": "sms_text",
            "python": platform.python_version(),
            "machine": platform.machine(),
            "number": args.number,
            "ops_per_second": results,
        }))
    else:
        for name, ops in results.items():
            print("%-20s %10d ops/s" % (name, ops))
    return 0


if __name__ == "__main__":
    sys.exit(main())
