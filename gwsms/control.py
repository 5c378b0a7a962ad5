# -*- test-case-name: tests.test_control -*-
"""
The control socket: how the C{gwsms} command talks to a running service.

JSON lines over a UNIX stream socket (C{config.control.socket}).  A request
is one line C{{"command": "smsc_state", "args": {...}}}; the answer is one
line C{{"ok": true, "result": ...}} or C{{"ok": false, "error": "..."}}.

Server side: L{ControlFactory} dispatches each command to the method of the
same name on a I{controller} object (plain value, Deferred or coroutine);
L{control_service} wraps it in an C{IService} that owns the socket file.
Client side: L{call}, plain blocking socket code for the command line.
"""

from __future__ import annotations

import errno
import inspect
import json
import os
import re
import socket
import stat

from twisted.application import service
from twisted.internet import defer, endpoints
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver

_COMMAND_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

#: the largest request or answer line, bytes
MAX_LINE = 1 << 20


class ControlError(Exception):
    """The service answered with an error, or the exchange failed."""


class ControlUnavailable(ControlError):
    """No service is listening on the control socket."""


def _encode(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode("utf-8") + b"\n"


class ControlProtocol(LineReceiver):
    """
    One client connection.  Requests are answered in the order received.
    """

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE
    _log = Logger()

    def connectionMade(self):
        self._tail = defer.succeed(None)
        self.closed = defer.Deferred()
        self.factory.connections.add(self)

    def connectionLost(self, reason):
        self.factory.connections.discard(self)
        self.closed.callback(None)

    def lineReceived(self, line: bytes):
        line = line.rstrip(b"\r")
        if not line.strip():
            return
        self._tail.addCallback(lambda _: self._handle(line))
        self._tail.addCallback(self._answer)
        self._tail.addErrback(
            lambda f: self._log.failure("control: answering failed", failure=f)
        )

    def lineLengthExceeded(self, line):
        self._answer({"ok": False, "error": f"request longer than {self.MAX_LENGTH} bytes"})
        self.transport.loseConnection()

    def _answer(self, response: dict) -> None:
        if self.transport is None or not self.connected:
            return
        try:
            data = _encode(response)
        except (TypeError, ValueError) as e:
            data = _encode({"ok": False, "error": f"result is not JSON-serialisable: {e}"})
        self.transport.write(data)

    def _handle(self, line: bytes) -> defer.Deferred:
        try:
            request = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            return defer.succeed({"ok": False, "error": f"request is not JSON: {e}"})
        if not isinstance(request, dict) or not isinstance(request.get("command"), str):
            return defer.succeed({"ok": False, "error": 'request needs a "command" string'})
        command = request["command"]
        args = request.get("args") or {}
        if not isinstance(args, dict) or not all(isinstance(k, str) for k in args):
            return defer.succeed({"ok": False, "error": '"args" must be an object'})
        method = None
        if self.factory.allows(command):
            method = getattr(self.factory.controller, command, None)
        if method is None or not callable(method):
            return defer.succeed({"ok": False, "error": f"unknown command {command!r}"})

        def run():
            result = method(**args)
            if inspect.isawaitable(result):
                return defer.ensureDeferred(result)
            return result

        d = defer.maybeDeferred(run)
        d.addCallbacks(
            lambda result: {"ok": True, "result": result},
            lambda f: self._failed(command, f),
        )
        return d

    def _failed(self, command: str, failure) -> dict:
        exc = failure.value
        if isinstance(exc, TypeError) and "argument" in str(exc):
            message = f"bad arguments for {command}: {exc}"
        elif isinstance(exc, (ValueError, LookupError, ControlError)):
            message = str(exc) or type(exc).__name__
        else:
            self._log.failure("control command {command} failed", failure=failure,
                              command=command)
            message = f"{command} failed: {type(exc).__name__}: {exc}"
        return {"ok": False, "error": message}


class ControlFactory(Factory):
    """
    Serves the control protocol for C{controller}.

    @ivar controller: an object with one method per command (C{smsc_state},
        C{smsc_reload}, ...), each taking the request's C{args} as keyword
        arguments and returning a JSON-serialisable value, a Deferred of
        one, or a coroutine.
    @ivar commands: the command names allowed, or None for every public
        lower-case method of the controller.
    """

    noisy = False  # no log line per connection / start

    protocol = ControlProtocol

    def __init__(self, controller, commands=None):
        """
        @param controller: see L{controller}.
        @param commands: names of the methods clients may call; default: the
            controller's C{control_commands} attribute when it has one, else
            any method whose name is lower-case and does not start with C{_}
            (Twisted's camelCase service methods are never reachable).
        """
        self.controller = controller
        if commands is None:
            commands = getattr(controller, "control_commands", None)
        self.commands = None if commands is None else frozenset(commands)
        #: the open client connections
        self.connections: set[ControlProtocol] = set()

    def allows(self, command: str) -> bool:
        """Whether C{command} may be called by clients."""
        if not _COMMAND_RE.match(command):
            return False
        return self.commands is None or command in self.commands


class ControlService(service.Service):
    """
    Listens on a UNIX socket file: creates its directory, removes a stale
    socket left by a crashed process, refuses to start when another process
    is still answering on it, and removes the file when stopped.
    """

    _log = Logger()

    def __init__(self, reactor, path: str, controller, commands=None):
        """
        @param reactor: an C{IReactorUNIX}.
        @param path: the socket file.
        @param controller: see L{ControlFactory}.
        @param commands: see L{ControlFactory}.
        """
        self._reactor = reactor
        self.path = path
        self.factory = ControlFactory(controller, commands)
        self._port = None

    def _prepare_path(self) -> None:
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise ControlError(f"control socket path {self.path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(1.0)
            probe.connect(self.path)
        except OSError:
            os.unlink(self.path)  # nobody there: left by a process that died
            return
        finally:
            probe.close()
        raise ControlError(
            f"control socket {self.path} is in use: is another gwsms running?"
        )

    def startService(self):
        self._prepare_path()
        endpoint = endpoints.UNIXServerEndpoint(self._reactor, self.path, mode=0o600)
        failures = []
        d = endpoint.listen(self.factory)
        d.addCallbacks(self._listening, failures.append)
        if failures:
            raise ControlError(
                f"cannot listen on control socket {self.path}: {failures[0].getErrorMessage()}"
            )
        super().startService()

    def _listening(self, port):
        self._port = port
        self._log.info("control socket listening on {path}", path=self.path)

    def stopService(self):
        """
        Stop listening and drop the connected clients.

        @return: Deferred firing when the socket is closed and removed.
        """
        super().stopService()
        waits = []
        port, self._port = self._port, None
        if port is not None:
            waits.append(defer.maybeDeferred(port.stopListening))
        for proto in list(self.factory.connections):
            waits.append(proto.closed)
            proto.transport.loseConnection()
        d = defer.DeferredList(waits, consumeErrors=True)
        d.addCallback(lambda _: None)
        return d


def control_service(reactor, path: str, controller, commands=None) -> ControlService:
    """
    @param commands: the allowed command names (see L{ControlFactory}).
    @return: an C{IService} serving C{controller} on the UNIX socket C{path}.
    """
    return ControlService(reactor, path, controller, commands)


def call(socket_path: str, command: str, timeout: float = 5.0, **args):
    """
    Send one command to the running service and wait for its answer
    (blocking; for the command line).

    @return: the C{result} of the answer.
    @raise ControlUnavailable: no service listens on C{socket_path}.
    @raise ControlError: the service answered with an error (its text is
        the message), or did not answer in C{timeout} seconds.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        try:
            sock.connect(socket_path)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            raise ControlUnavailable(
                f"the gwsms service is not running (nothing listening on {socket_path})"
            ) from None
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ECONNREFUSED):
                raise ControlUnavailable(
                    f"the gwsms service is not running (nothing listening on {socket_path})"
                ) from None
            raise ControlError(f"cannot connect to control socket {socket_path}: {e.strerror}") from None
        sock.sendall(_encode({"command": command, "args": args}))
        buf = b""
        while b"\n" not in buf:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                raise ControlError(
                    f"no answer from the gwsms service within {timeout:g}s"
                ) from None
            if not chunk:
                raise ControlError("the gwsms service closed the control connection without answering")
            buf += chunk
            if len(buf) > MAX_LINE:
                raise ControlError("answer from the gwsms service is too long")
    finally:
        sock.close()
    try:
        answer = json.loads(buf.split(b"\n", 1)[0].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ControlError("the gwsms service sent an answer that is not JSON") from None
    if not isinstance(answer, dict):
        raise ControlError("the gwsms service sent a malformed answer")
    if answer.get("ok"):
        return answer.get("result")
    raise ControlError(str(answer.get("error") or "unknown error"))
