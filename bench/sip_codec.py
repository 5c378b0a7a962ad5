"""
Micro-benchmark of the SIP message codec (gwsms.sip.message).

Usage: python bench/sip_codec.py [--seconds N] [--json]

Measures, for a typical ~450-byte MESSAGE request:
  parse           parse_message(data)
  parse+access    parse, then read call_id, cseq, top_via.branch, from_.tag, to, request_uri
  parse+serialise parse_message(data).to_bytes()
  stream          StreamParser.feed() of 100 back-to-back messages, per message
  make_response   make_response(request, 202, to_tag=...).to_bytes()
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gwsms.sip.message import StreamParser, make_response, parse_message  # noqa: E402

MESSAGE = (
    b"MESSAGE sip:+491701234567@gw.example.net SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: \"Alice Example\" <sip:alice@example.com>;tag=49583\r\n"
    b"To: <sip:+491701234567@gw.example.net>\r\n"
    b"Call-ID: asd88asd77a@192.0.2.10\r\n"
    b"CSeq: 1 MESSAGE\r\n"
    b"Contact: <sip:alice@192.0.2.10:5060;transport=udp>\r\n"
    b"User-Agent: Softphone/1.2.3\r\n"
    b"Content-Type: text/plain;charset=UTF-8\r\n"
    b"Content-Length: 42\r\n"
    b"\r\n"
    b"Hello from SIP, this is a test message :-)"
)


def _run(fn, seconds: float, rounds: int = 5) -> float:
    """
    @return: operations per CPU second of C{fn} (process CPU time, so that
        other processes on a busy machine disturb the figure little): the
        best of C{rounds} rounds of about C{seconds / rounds} each.
    """
    best = 0.0
    clock = time.process_time
    for _ in range(rounds):
        n = 0
        batch = 200
        start = clock()
        wall_deadline = time.perf_counter() + seconds / rounds
        while True:
            for _ in range(batch):
                fn()
            n += batch
            if time.perf_counter() >= wall_deadline and clock() > start:
                break
        best = max(best, n / (clock() - start))
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per case")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)

    data = MESSAGE
    request = parse_message(data)

    def access() -> None:
        m = parse_message(data)
        m.call_id, m.cseq, m.top_via.branch, m.from_.tag, m.to, m.request_uri  # noqa: B018

    stream_data = data * 100

    def stream() -> None:
        items = StreamParser().feed(stream_data)
        assert len(items) == 100

    cases = {
        "parse": lambda: parse_message(data),
        "parse+access": access,
        "parse+serialise": lambda: parse_message(data).to_bytes(),
        "serialise": request.to_bytes,
        "make_response": lambda: make_response(request, 202, to_tag="abc").to_bytes(),
    }
    results = {name: _run(fn, args.seconds) for name, fn in cases.items()}
    results["stream (per msg)"] = _run(stream, args.seconds) * 100
    report = {
        "message_bytes": len(data),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "timing": "process CPU time, best of 5 rounds",
        "ops_per_second": {k: round(v) for k, v in results.items()},
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"SIP codec, {len(data)}-byte MESSAGE, Python {report['python']}, CPU time, best of 5 rounds")
        for name, value in results.items():
            print(f"  {name:18s} {value:12,.0f} ops/s  {1e6 / value:7.2f} us/op")
    return 0


if __name__ == "__main__":
    sys.exit(main())
