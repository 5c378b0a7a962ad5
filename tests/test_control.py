"""Tests for gwsms.control: protocol on StringTransport, real UNIX socket round-trips."""

import json
import os
import shutil
import socket
import stat
import tempfile

from twisted.internet import defer, threads
from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from gwsms.control import (
    ControlError,
    ControlFactory,
    ControlUnavailable,
    call,
    control_service,
)


class Controller:
    def __init__(self):
        self.reloads = 0
        self.pending = None

    def smsc_state(self):
        return [{"name": "a", "state": "bound_trx"}]

    def smsc_reload(self):
        self.reloads += 1
        return defer.succeed({"added": ["x"], "removed": [], "changed": [], "unchanged": []})

    async def echo(self, text, repeat=1):
        return text * repeat

    def slow(self):
        self.pending = defer.Deferred()
        return self.pending

    def fail_value(self):
        raise ValueError("no smsc named 'zz'")

    def crash(self):
        raise ZeroDivisionError("boom")

    def unserialisable(self):
        return object()

    _private = "not a command"


class ProtocolTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.controller = Controller()
        self.proto = ControlFactory(self.controller).buildProtocol(None)
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)

    def ask(self, obj):
        self.transport.clear()
        raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.proto.dataReceived(raw + b"\n")
        out = self.transport.value()
        return [json.loads(line) for line in out.splitlines()]

    def test_plain_result(self):
        self.assertEqual(
            self.ask({"command": "smsc_state"}),
            [{"ok": True, "result": [{"name": "a", "state": "bound_trx"}]}],
        )

    def test_deferred_and_coroutine_results_with_args(self):
        self.assertEqual(self.ask({"command": "smsc_reload", "args": {}})[0]["result"]["added"], ["x"])
        self.assertEqual(
            self.ask({"command": "echo", "args": {"text": "ab", "repeat": 2}}),
            [{"ok": True, "result": "abab"}],
        )

    def test_unknown_command(self):
        for command in ("nope", "_private", "__class__", "Smsc_state"):
            (answer,) = self.ask({"command": command})
            self.assertEqual(answer, {"ok": False, "error": f"unknown command {command!r}"})

    def test_allow_list(self):
        factory = ControlFactory(self.controller, commands=["smsc_state"])
        proto = factory.buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        proto.dataReceived(b'{"command":"smsc_reload"}\n{"command":"smsc_state"}\n')
        answers = [json.loads(x) for x in transport.value().splitlines()]
        self.assertEqual(answers[0], {"ok": False, "error": "unknown command 'smsc_reload'"})
        self.assertTrue(answers[1]["ok"])
        self.assertEqual(self.controller.reloads, 0)

    def test_allow_list_from_controller_attribute(self):
        self.controller.control_commands = ("echo",)
        self.assertEqual(ControlFactory(self.controller).commands, frozenset({"echo"}))

    def test_service_methods_unreachable(self):
        from twisted.application.service import MultiService

        class ServiceController(MultiService):
            def smsc_state(self):
                return "ok"

        proto = ControlFactory(ServiceController()).buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        proto.dataReceived(b'{"command":"stopService"}\n{"command":"smsc_state"}\n')
        answers = [json.loads(x) for x in transport.value().splitlines()]
        self.assertFalse(answers[0]["ok"])
        self.assertEqual(answers[1], {"ok": True, "result": "ok"})

    def test_bad_requests(self):
        self.assertIn("not JSON", self.ask(b"{nope")[0]["error"])
        self.assertIn('"command"', self.ask({"args": {}})[0]["error"])
        self.assertIn('"args"', self.ask({"command": "echo", "args": [1]})[0]["error"])
        self.assertIn("bad arguments for echo", self.ask({"command": "echo", "args": {"x": 1}})[0]["error"])

    def test_errors(self):
        self.assertEqual(self.ask({"command": "fail_value"}), [{"ok": False, "error": "no smsc named 'zz'"}])
        (answer,) = self.ask({"command": "crash"})
        self.assertFalse(answer["ok"])
        self.assertIn("ZeroDivisionError: boom", answer["error"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertIn("not JSON-serialisable", self.ask({"command": "unserialisable"})[0]["error"])

    def test_answers_in_request_order(self):
        self.proto.dataReceived(b'{"command":"slow"}\n{"command":"smsc_state"}\n')
        self.assertEqual(self.transport.value(), b"")
        self.controller.pending.callback("late")
        lines = [json.loads(x) for x in self.transport.value().splitlines()]
        self.assertEqual([x["result"] for x in lines], ["late", [{"name": "a", "state": "bound_trx"}]])

    def test_overlong_line(self):
        self.proto.MAX_LENGTH = 10
        self.proto.dataReceived(b"x" * 20)
        self.assertIn(b"longer than 10 bytes", self.transport.value())
        self.assertTrue(self.transport.disconnecting)


class SocketTests(unittest.TestCase):
    """Round trips over a real UNIX socket (short path in the system temp dir)."""

    def setUp(self):
        from twisted.internet import reactor

        self.reactor = reactor
        self.dir = tempfile.mkdtemp(prefix="gwsms-ctl-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.path = os.path.join(self.dir, "run", "gwsms.sock")
        self.controller = Controller()

    def start(self):
        svc = control_service(self.reactor, self.path, self.controller)
        svc.startService()
        self.addCleanup(lambda: svc.stopService() if svc.running else None)
        return svc

    @defer.inlineCallbacks
    def test_round_trip(self):
        self.start()
        self.assertTrue(stat.S_ISSOCK(os.stat(self.path).st_mode))
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        result = yield threads.deferToThread(call, self.path, "smsc_reload")
        self.assertEqual(result["added"], ["x"])
        self.assertEqual(self.controller.reloads, 1)
        result = yield threads.deferToThread(call, self.path, "echo", text="é", repeat=3)
        self.assertEqual(result, "ééé")
        e = yield self.assertFailure(threads.deferToThread(call, self.path, "nope"), ControlError)
        self.assertEqual(str(e), "unknown command 'nope'")
        self.assertNotIsInstance(e, ControlUnavailable)

    @defer.inlineCallbacks
    def test_stop_removes_socket_then_unavailable(self):
        svc = self.start()
        yield svc.stopService()
        self.assertFalse(os.path.exists(self.path))
        e = self.assertRaises(ControlUnavailable, call, self.path, "smsc_state")
        self.assertIn("not running", str(e))

    def test_unavailable_on_stale_socket(self):
        os.makedirs(os.path.dirname(self.path))
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(self.path)
        s.close()  # file stays, nobody listens
        self.assertRaises(ControlUnavailable, call, self.path, "smsc_state", timeout=1)

    @defer.inlineCallbacks
    def test_stale_socket_replaced_and_live_one_refused(self):
        os.makedirs(os.path.dirname(self.path))
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(self.path)
        s.close()
        self.start()
        result = yield threads.deferToThread(call, self.path, "smsc_state")
        self.assertEqual(result[0]["name"], "a")
        second = control_service(self.reactor, self.path, self.controller)
        e = self.assertRaises(ControlError, second.startService)
        self.assertIn("another gwsms", str(e))

    def test_not_a_socket(self):
        os.makedirs(os.path.dirname(self.path))
        with open(self.path, "w") as f:
            f.write("x")
        svc = control_service(self.reactor, self.path, self.controller)
        e = self.assertRaises(ControlError, svc.startService)
        self.assertIn("not a socket", str(e))

    @defer.inlineCallbacks
    def test_timeout(self):
        self.start()
        e = yield self.assertFailure(
            threads.deferToThread(call, self.path, "slow", timeout=0.2), ControlError
        )
        self.assertIn("within 0.2s", str(e))
        self.controller.pending.callback(None)  # the answer goes to a closed socket
