# -*- test-case-name: tests.test_sim_smsc -*-
"""
C{gwsms sim smsc}: run the simulated SMSC (L{gwsms.sim.smsc}) in the
foreground.

  gwsms sim smsc --port P [--host 127.0.0.1] [--system-id U] [--password X]
                 [--dlr] [--dlr-delay S] [--mo-rate N] [--mo-source A]
                 [--mo-dest A] [--throttle-every N] [--quiet]
                 [--outbind ENDPOINT [--outbind-system-id U] [--outbind-password X]]

Prints one line with the address it listens on (the real port, so
C{--port 0} works), then the counters every second unless C{--quiet}.
Ctrl-C or SIGTERM stops it with exit status 0.
"""

import argparse
import sys

from twisted.internet import endpoints, task
from twisted.logger import Logger

from gwsms.sim.smsc import SimulatedSMSC

_log = Logger()


def _port(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("invalid port %r" % (text,)) from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("port %d outside 0..65535" % (value,))
    return value


def _non_negative(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError("invalid number %r" % (text,)) from None
        if not value >= 0 or value == float("inf"):
            raise argparse.ArgumentTypeError("%r must be a finite number >= 0" % (text,))
        return value

    return parse


def register(subparsers):
    """
    Add C{sim} and its C{smsc} sub-command.

    @param subparsers: the C{gwsms} argparse sub-parsers action.
    """
    sim = subparsers.add_parser("sim", help="simulators for demos, tests and benchmarks")
    simulators = sim.add_subparsers(dest="simulator", metavar="SIMULATOR")
    simulators.required = True
    parser = simulators.add_parser("smsc", help="run a simulated SMSC")
    parser.add_argument("--port", type=_port, required=True, help="TCP port (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--system-id", default=None, help="required system_id (default: accept any)")
    parser.add_argument("--password", default=None, help="required password (default: accept any)")
    parser.add_argument("--dlr", action="store_true", help="send delivery receipts when requested")
    parser.add_argument("--dlr-delay", type=_non_negative(float), default=0.0,
                        help="seconds from submit to receipt (default 0)")
    parser.add_argument("--mo-rate", type=_non_negative(float), default=0.0,
                        help="mobile-originated deliver_sm per second (default 0)")
    parser.add_argument("--mo-source", default="4915100000001", help="source_addr of MO messages")
    parser.add_argument("--mo-dest", default="12345", help="destination_addr of MO messages")
    parser.add_argument("--throttle-every", type=_non_negative(int), default=0,
                        help="answer every Nth submit_sm with ESME_RTHROTTLED (default 0: never)")
    parser.add_argument("--message-id-format", choices=("hex", "decimal"), default="hex",
                        help="message ids in submit_sm_resp (default hex)")
    parser.add_argument("--quiet", action="store_true", help="do not print counters every second")
    parser.add_argument("--outbind", metavar="ENDPOINT", default=None,
                        help="also connect to an ESME (client endpoint, e.g. tcp:127.0.0.1:2776) and send outbind")
    parser.add_argument("--outbind-system-id", default="gwsms-sim", help="system_id sent in the outbind")
    parser.add_argument("--outbind-password", default="", help="password sent in the outbind")
    parser.set_defaults(func=run_smsc)


def run_smsc(args):
    """
    Handler of C{gwsms sim smsc}: runs the global reactor until stopped.

    @param args: the parsed arguments.
    @return: the exit status.
    """
    from twisted.internet import reactor

    return serve(args, reactor, sys.stdout, sys.stderr)


def _server_endpoint(reactor, host, port):
    if ":" in host:
        return endpoints.TCP6ServerEndpoint(reactor, port, interface=host)
    return endpoints.TCP4ServerEndpoint(reactor, port, interface=host)


def format_counters(counters, previous, elapsed):
    """
    @return: one status line with each counter and the per-second rate of
        submits, receipts and MO messages.
    """
    parts = []
    for name, value in counters.items():
        text = "%s=%d" % (name, value)
        if name in ("submits", "dlr_sent", "mo_sent") and elapsed > 0:
            text += " (%d/s)" % (round((value - previous.get(name, 0)) / elapsed),)
        parts.append(text)
    return " ".join(parts)


def serve(args, reactor, out, err):
    """
    Listen, print, and run C{reactor} until it stops.

    @param args: the parsed C{sim smsc} arguments.
    @param reactor: provides C{IReactorTCP}, C{IReactorTime} and C{run}/C{stop}.
    @param out: stream for the listening line and counters.
    @param err: stream for the one-line error.
    @return: the exit status (0, or 1 if it could not listen).
    """
    factory = SimulatedSMSC(
        reactor,
        system_id=args.system_id,
        password=args.password,
        dlr=args.dlr,
        dlr_delay=args.dlr_delay,
        mo_rate=args.mo_rate,
        mo_source=args.mo_source,
        mo_dest=args.mo_dest,
        throttle_every=args.throttle_every,
        message_id_format=args.message_id_format,
        record=False,
    )
    result = {"status": 0}
    state = {"previous": dict(factory.counters), "at": reactor.seconds()}

    def tick():
        try:
            now = reactor.seconds()
            line = format_counters(factory.counters, state["previous"], now - state["at"])
            state["previous"], state["at"] = dict(factory.counters), now
            out.write(line + "\n")
            out.flush()
        except Exception:
            _log.failure("printing counters failed")

    def listening(port):
        address = port.getHost()
        out.write(
            "gwsms sim smsc listening on %s:%d (system_id=%s, dlr=%s, mo_rate=%g, throttle_every=%d)\n"
            % (address.host, address.port, args.system_id or "*", "on" if args.dlr else "off",
               args.mo_rate, args.throttle_every)
        )
        out.flush()
        reactor.addSystemEventTrigger("before", "shutdown", port.stopListening)
        if args.outbind:
            start_outbind()
        if not args.quiet:
            loop = task.LoopingCall(tick)
            loop.clock = reactor
            loop.start(1.0, now=False).addErrback(lambda f: _log.failure("counter loop", f))
            reactor.addSystemEventTrigger("before", "shutdown", loop.stop)

    def start_outbind():
        def connected(session):
            out.write("outbind sent to %s\n" % (args.outbind,))
            out.flush()

        def not_connected(failure):
            err.write("gwsms: outbind to %s failed: %s\n" % (args.outbind, failure.getErrorMessage()))
            err.flush()

        factory.outbind(outbind_endpoint, args.outbind_system_id, args.outbind_password).addCallbacks(
            connected, not_connected
        ).addErrback(lambda f: _log.failure("outbind", f))

    def failed(failure):
        err.write("gwsms: cannot listen on %s:%d: %s\n" % (args.host, args.port, failure.getErrorMessage()))
        err.flush()
        result["status"] = 1
        reactor.callWhenRunning(reactor.stop)

    try:
        endpoint = _server_endpoint(reactor, args.host, args.port)
    except Exception as e:
        err.write("gwsms: invalid --host %r: %s\n" % (args.host, e))
        return 2
    outbind_endpoint = None
    if args.outbind:
        try:
            outbind_endpoint = endpoints.clientFromString(reactor, args.outbind)
        except Exception as e:
            err.write("gwsms: invalid --outbind endpoint %r: %s\n" % (args.outbind, e))
            return 2
    endpoint.listen(factory).addCallbacks(listening, failed).addErrback(
        lambda f: _log.failure("starting the simulator", f)
    )
    reactor.run()
    return result["status"]
