"""
A second independent SMSC for gwsms integration tests: the server side of
smpp.twisted3 (the Jasmin fork of txsmpp), run in its own process.

Usage: python twisted_smsc.py [--port 0] --system-id ID --password PW

Prints "PORT <n>" once listening, then "SUBMIT <message_id> <source_addr>
<destination_addr> <hex short_message>" per accepted submit_sm.  Exits when
stdin reaches end of file.  This is a test peer, an entry point of its own
process, so it runs the global reactor.
"""

import argparse
import sys

from zope.interface import implementer
from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import IRealm, Portal
from twisted.internet import stdio
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Protocol

from smpp.pdu.pdu_types import CommandStatus
from smpp.twisted.config import SMPPServerConfig
from smpp.twisted.protocol import DataHandlerResponse
from smpp.twisted.server import IAuthenticatedSMPP, SMPPServerFactory


@implementer(IRealm)
class _Realm:
    def requestAvatar(self, avatar_id, mind, *interfaces):
        return (IAuthenticatedSMPP, avatar_id, lambda: None)


class _StdinWatcher(Protocol):
    def __init__(self, reactor):
        self.reactor = reactor

    def connectionLost(self, reason):
        if self.reactor.running:
            self.reactor.stop()


def _text(value):
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return "" if value is None else str(value)


def main(argv):
    from twisted.internet import reactor

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--system-id", required=True)
    parser.add_argument("--password", required=True)
    args = parser.parse_args(argv)

    accepted = [0]

    def on_message(system_id, smpp, pdu):
        accepted[0] += 1
        mid = "t%d" % accepted[0]
        short = pdu.params.get("short_message") or b""
        print(
            "SUBMIT %s %s %s %s"
            % (
                mid,
                _text(pdu.params.get("source_addr")),
                _text(pdu.params.get("destination_addr")),
                bytes(short).hex(),
            ),
            flush=True,
        )
        return DataHandlerResponse(status=CommandStatus.ESME_ROK, message_id=mid)

    config = SMPPServerConfig(
        msgHandler=on_message,
        systems={args.system_id: {"max_bindings": 10}},
        enquireLinkTimerSecs=30,
    )
    checker = InMemoryUsernamePasswordDatabaseDontUse()
    checker.addUser(args.system_id, args.password)
    factory = SMPPServerFactory(config, auth_portal=Portal(_Realm(), [checker]))

    def listening(port):
        print("PORT %d" % port.getHost().port, flush=True)

    def failed(reason):
        print("ERROR %s" % reason.getErrorMessage(), flush=True)
        reactor.stop()

    TCP4ServerEndpoint(reactor, args.port, interface="127.0.0.1").listen(
        factory
    ).addCallbacks(listening, failed)
    stdio.StandardIO(_StdinWatcher(reactor), reactor=reactor)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
