# -*- test-case-name: tests.test_bench_ladder -*-
"""
The shipped simulated SMSC (L{gwsms.sim.smsc.SimulatedSMSC}) in its own
process, steered by L{bench.run} over stdin/stdout so that one simulator
serves every ladder step (the gateway stays bound) and its CPU is not the
gateway's.

  python bench/smsc_driver.py [--port 0] [--window 100]

Prints C{{"listening": PORT}} once, then answers one JSON line per command
line on stdin:

  stats             counters of the simulator + MO answer latencies
                    (p50/p99 ms since the last C{mo} command) and
                    C{mo_window_held_percent}: % of the generator's ticks
                    at which earlier messages still waited for room in the
                    window (then the window, not the rate, paced them)
  progress          the same without the latency percentiles (cheap: no
                    sort of every latency; what a poll loop should ask)
  mo RATE COUNT     send COUNT MO deliver_sm at RATE per second (the
                    generator of the simulator runs forever, this one
                    stops); answers C{{"ok": true}} at once
  quit              stop

The MO latency is deliver_sm sent (or queued behind the window) ->
deliver_sm_resp, i.e. the gateway's durable write plus queueing.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from twisted.internet import endpoints, stdio, task  # noqa: E402
from twisted.logger import Logger  # noqa: E402
from twisted.protocols.basic import LineReceiver  # noqa: E402

from gwsms.sim.smsc import SimulatedSMSC  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ladder import percentile  # noqa: E402

#: Seconds between MO bursts (each burst: what accrued since, one write).
#: 4 ms is the granularity sipp sends its MESSAGEs with (its coarse clock),
#: and each tick costs the simulator a reactor wake-up (~70 us).
TICK = 0.004


class MoGenerator:
    """
    Sends a fixed number of MO messages at a rate (credit based, one
    LoopingCall) and records each answer's latency.
    """

    _log = Logger()

    def __init__(self, clock, smsc):
        self.clock = clock
        self.smsc = smsc
        self.latencies = []
        self.errors = 0
        self.statuses = {}
        self.first_sent = self.last_answer = None
        self._loop = None
        self.left = 0
        self._counter = 0
        self.ticks = self.held_ticks = 0

    def start(self, rate, count):
        self.stop()
        self.latencies = []
        self.errors = 0
        self.statuses = {}
        self.first_sent = self.last_answer = None
        self.ticks = self.held_ticks = 0
        self._rate, self.left, self._credit = float(rate), int(count), 1.0
        self._last = self.clock.seconds()
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = self.clock
        self._loop.start(TICK, now=True).addErrback(lambda f: self._log.failure("MO loop", f))

    def stop(self):
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def _tick(self):
        try:
            now = self.clock.seconds()
            self._credit = min(self._credit + (now - self._last) * self._rate, max(1.0, self._rate))
            self._last = now
            count = min(int(self._credit), self.left)
            if count < 1 or not self.smsc.has_receiver():
                return
            self.ticks += 1
            if any(s.backlog for s in self.smsc.sessions):
                self.held_ticks += 1  # the window is still full of the previous ticks' messages
            started = time.perf_counter()
            first = self._counter + 1
            texts = [b"bench MO %d" % (n,) for n in range(first, first + count)]
            # One burst per tick: a cached deliver_sm prefix, no Deferred or
            # timer per message, one write (the simulator's lean lane).
            sent = self.smsc.send_mo_many(texts, self._result, started, source="4915100000001",
                                          dest="491701234567")
            if not sent:
                return  # no receiver bound yet
            if self.first_sent is None:
                self.first_sent = started
            self._credit -= sent
            self.left -= sent
            self._counter += sent
            if self.left <= 0:
                self.stop()
        except Exception:
            self._log.failure("MO tick failed")

    def held_percent(self):
        """
        @return: % of the ticks at which messages of earlier ticks were
            still waiting for room in the window (the window, not the rate,
            paced the messages), or None before the first tick.
        """
        return round(100.0 * self.held_ticks / self.ticks, 1) if self.ticks else None

    def span(self):
        """@return: seconds from the first deliver_sm to the last answer, or None."""
        if self.first_sent is None or self.last_answer is None:
            return None
        return self.last_answer - self.first_sent

    def _result(self, started, result):
        """One deliver_sm's outcome: its resp's command_status or an exception."""
        self.last_answer = now = time.perf_counter()
        if result.__class__ is int:
            self.latencies.append((now - started) * 1000.0)
            if not result:
                return
            key = "0x%02X" % (result,)
        else:
            key = type(result).__name__
        self.errors += 1
        self.statuses[key] = self.statuses.get(key, 0) + 1


class Commands(LineReceiver):
    delimiter = b"\n"
    _log = Logger()

    def __init__(self, reactor, smsc, generator):
        self.reactor = reactor
        self.smsc = smsc
        self.generator = generator

    def reply(self, obj):
        self.sendLine(json.dumps(obj).encode("ascii"))

    def lineReceived(self, line):
        words = line.decode("ascii", "replace").split()
        try:
            if not words:
                return
            if words[0] in ("stats", "progress"):
                lat = self.generator.latencies
                out = dict(self.smsc.counters)
                out.update(mo_answers=len(lat), mo_errors=self.generator.errors,
                           mo_statuses=self.generator.statuses, mo_left=self.generator.left,
                           mo_span_s=self.generator.span(), mo_window_held_percent=self.generator.held_percent(),
                           bound=sum(1 for s in self.smsc.sessions if s.state.startswith("bound")))
                if words[0] == "stats":
                    out.update(mo_p50_ms=round(percentile(lat, 50), 2) if lat else None,
                               mo_p99_ms=round(percentile(lat, 99), 2) if lat else None)
                self.reply(out)
            elif words[0] == "mo" and len(words) == 3:
                self.generator.start(float(words[1]), int(words[2]))
                self.reply({"ok": True})
            elif words[0] == "quit":
                self.reply({"ok": True})
                self.reactor.stop()
            else:
                self.reply({"error": "unknown command %r" % (" ".join(words),)})
        except Exception as e:
            self.reply({"error": str(e)})

    def connectionLost(self, reason):
        if self.reactor.running:
            self.reactor.stop()


def main(argv=None):
    from twisted.internet import reactor

    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--window", type=int, default=100, help="outstanding deliver_sm per bind")
    args = parser.parse_args(argv)
    smsc = SimulatedSMSC(reactor, record=False, window=args.window, response_timeout=30.0)
    generator = MoGenerator(reactor, smsc)

    def listening(port):
        sys.stdout.write(json.dumps({"listening": port.getHost().port}) + "\n")
        sys.stdout.flush()
        stdio.StandardIO(Commands(reactor, smsc, generator), reactor=reactor)

    def failed(failure):
        sys.stdout.write(json.dumps({"error": failure.getErrorMessage()}) + "\n")
        sys.stdout.flush()
        reactor.stop()

    endpoint = endpoints.TCP4ServerEndpoint(reactor, args.port, interface="127.0.0.1")
    endpoint.listen(smsc).addCallbacks(listening, failed)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
