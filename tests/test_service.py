"""
Integration tests for L{gwsms.service.GatewayService}: the whole service tree
over real sockets on 127.0.0.1 (OS-chosen ports), a temporary SQLite file,
the shipped SMSC simulator, and the control socket used by the C{gwsms}
command.
"""

import dataclasses
import os
import socket
import threading

from twisted.internet import defer, endpoints, task, threads
from twisted.trial.unittest import SkipTest, TestCase

from gwsms import config as gwconfig
from gwsms import control
from gwsms.service import GatewayService
from gwsms.sim.smsc import SimulatedSMSC
from gwsms.smpp.link import SmscLink
from gwsms.store.database import open_database_sync
from gwsms.store.migrate import upgrade
from gwsms.store.smsc import SmscStore

TIMEOUT = 20.0


def _options_request(port: int) -> bytes:
    return (
        "OPTIONS sip:gw@127.0.0.1:%d SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-svc-1;rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:probe@127.0.0.1>;tag=p1\r\n"
        "To: <sip:gw@127.0.0.1>\r\n"
        "Call-ID: svc-options-1@127.0.0.1\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n" % port
    ).encode()


def _udp_exchange(port: int, data: bytes) -> bytes:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.settimeout(5)
        sock.sendto(data, ("127.0.0.1", port))
        return sock.recv(65535)
    finally:
        sock.close()


class GatewayServiceTests(TestCase):
    timeout = 60

    def setUp(self):
        from twisted.internet import reactor

        self.reactor = reactor
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.db_url = "sqlite:" + os.path.join(self.dir, "gwsms.sqlite3")
        # A short path: UNIX socket names are limited to ~100 bytes.
        self.sock_path = os.path.join(self.dir, "ctl.sock")
        if len(self.sock_path) > 100:
            import tempfile

            short = tempfile.mkdtemp(prefix="gwsms")
            self.addCleanup(os.rmdir, short)
            self.sock_path = os.path.join(short, "ctl.sock")
        self.config = gwconfig.parse(
            {
                "database": {"url": self.db_url},
                "sip": {"listen": ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"], "domain": "gw.test"},
                "smpp": {"reconnect_initial": 0.2, "reconnect_max": 1.0},
                "control": {"socket": self.sock_path},
            },
            path="test.toml",
        )

    @defer.inlineCallbacks
    def start_smsc(self):
        smsc = SimulatedSMSC(self.reactor, system_id="gw", password="pw")
        port = yield endpoints.TCP4ServerEndpoint(
            self.reactor, 0, interface="127.0.0.1"
        ).listen(smsc)
        self.addCleanup(port.stopListening)
        self.addCleanup(smsc.stop)
        return smsc, port.getHost().port

    def add_link(self, name, port, **kw):
        db = open_database_sync(self.db_url)
        try:
            upgrade(db)
            link = SmscLink(name=name, ip="127.0.0.1", port=port, system_id="gw",
                            password="pw", **kw)
            return SmscStore(db).add(link)
        finally:
            db.close()

    @defer.inlineCallbacks
    def start_gateway(self):
        gateway = GatewayService(self.config, self.reactor, install_signals=False)
        gateway.startService()
        self.addCleanup(lambda: gateway.stopService() if gateway.running else None)
        yield gateway.started
        return gateway

    @defer.inlineCallbacks
    def wait_until(self, predicate, what):
        for _ in range(int(TIMEOUT / 0.05)):
            if predicate():
                return
            yield task.deferLater(self.reactor, 0.05, lambda: None)
        self.fail(f"timed out waiting for {what}")

    @defer.inlineCallbacks
    def test_start_binds_rows_and_answers_sip(self):
        """
        On start the schema is migrated, every row of the smpp table binds,
        SIP answers OPTIONS, and the control socket reports live state.
        """
        smsc, smsc_port = yield self.start_smsc()
        self.add_link("smsc1", smsc_port)
        gateway = yield self.start_gateway()
        yield smsc.wait_for_binds(1)

        states = yield self.wait_state("smsc1", lambda s: s["state"].startswith("bound"))
        self.assertEqual(states["session_type"], "transceiver")
        self.assertNotIn("pw", repr(states))

        udp_port = gateway.sip.port("udp")
        answer = yield threads.deferToThread(_udp_exchange, udp_port, _options_request(udp_port))
        self.assertTrue(answer.startswith(b"SIP/2.0 200 "), answer[:80])
        self.assertIn(b"MESSAGE", answer)

    @defer.inlineCallbacks
    def wait_state(self, name, predicate):
        found = {}

        def check():
            result = control.call(self.sock_path, "smsc_state")
            for row in result:
                if row["name"] == name and predicate(row):
                    found.update(row)
                    return True
            return False

        for _ in range(int(TIMEOUT / 0.1)):
            ok = yield threads.deferToThread(check)
            if ok:
                return found
            yield task.deferLater(self.reactor, 0.1, lambda: None)
        self.fail(f"smsc {name} never reached the expected state")

    @defer.inlineCallbacks
    def test_reload_through_control_socket(self):
        """
        C{smsc_reload} over the control socket binds a new row, unbinds a
        removed one and leaves the others alone.
        """
        smsc, smsc_port = yield self.start_smsc()
        self.add_link("keep", smsc_port)
        self.add_link("drop", smsc_port)
        gateway = yield self.start_gateway()
        yield smsc.wait_for_binds(2)
        yield self.wait_state("keep", lambda s: s["state"].startswith("bound"))
        keep_session = gateway.smpp.state()

        db = open_database_sync(self.db_url)
        try:
            SmscStore(db).remove("drop")
            SmscStore(db).add(SmscLink(name="new", ip="127.0.0.1", port=smsc_port,
                                       system_id="gw", password="pw"))
        finally:
            db.close()
        diff = yield threads.deferToThread(control.call, self.sock_path, "smsc_reload")
        self.assertEqual(diff["added"], ["new"])
        self.assertEqual(diff["removed"], ["drop"])
        self.assertEqual(diff["changed"], [])
        self.assertEqual(diff["unchanged"], ["keep"])
        yield self.wait_state("new", lambda s: s["state"].startswith("bound"))
        names = sorted(row["name"] for row in gateway.smpp.state())
        self.assertEqual(names, ["keep", "new"])
        before = [r for r in keep_session if r["name"] == "keep"][0]["bound_since"]
        after = [r for r in gateway.smpp.state() if r["name"] == "keep"][0]["bound_since"]
        self.assertEqual(before, after)

    @defer.inlineCallbacks
    def test_stop_unbinds(self):
        """Stopping the service unbinds and removes the control socket."""
        smsc, smsc_port = yield self.start_smsc()
        self.add_link("smsc1", smsc_port)
        gateway = yield self.start_gateway()
        yield smsc.wait_for_binds(1)
        yield self.wait_state("smsc1", lambda s: s["state"].startswith("bound"))
        yield gateway.stopService()
        yield self.wait_until(lambda: not smsc.sessions, "the SMSC session to end")
        self.assertFalse(os.path.exists(self.sock_path))

    @defer.inlineCallbacks
    def test_start_failure_is_reported(self):
        """A SIP port already in use fails start-up with a clear reason."""
        busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        busy.bind(("127.0.0.1", 0))
        self.addCleanup(busy.close)
        port = busy.getsockname()[1]
        self.config = gwconfig.parse(
            {
                "database": {"url": self.db_url},
                "sip": {"listen": [f"udp:127.0.0.1:{port}"]},
                "control": {"socket": self.sock_path},
            },
            path="test.toml",
        )
        gateway = GatewayService(self.config, self.reactor, install_signals=False)
        gateway.startService()
        self.addCleanup(gateway.stopService)
        failure = yield self.assertFailure(gateway.started, Exception)
        self.assertIn(str(port), str(failure))
        self.flushLoggedErrors()


class ReactorCpusTests(TestCase):
    """[gateway] reactor_cpus on the running service (Linux, two CPUs)."""

    timeout = 60
    start_gateway = GatewayServiceTests.start_gateway

    def setUp(self):
        from gwsms import affinity

        if not affinity.supported() or len(affinity.allowed_cpus()) < 2:
            raise SkipTest("needs Linux and two CPUs")
        GatewayServiceTests.setUp(self)
        self.cpus = sorted(affinity.allowed_cpus())
        self.before = os.sched_getaffinity(0)
        self.config = dataclasses.replace(
            self.config, gateway=dataclasses.replace(self.config.gateway,
                                                     reactor_cpus=(self.cpus[0],)))

    @defer.inlineCallbacks
    def test_event_loop_pinned_helpers_not(self):
        """
        Started: the event loop's thread on its CPU, the helper threads
        (the database's pool) on the others; stopped: the CPUs the threads
        had before.
        """
        gateway = yield self.start_gateway()
        self.assertEqual(os.sched_getaffinity(0), {self.cpus[0]})
        helpers = [t for t in threading.enumerate() if t is not threading.main_thread()]
        self.assertTrue(helpers)
        for thread in helpers:
            self.assertEqual(os.sched_getaffinity(thread.native_id), set(self.cpus[1:]),
                             thread.name)
        # a SIP answer still comes from the pinned event loop
        udp_port = gateway.sip.port("udp")
        answer = yield threads.deferToThread(_udp_exchange, udp_port, _options_request(udp_port))
        self.assertTrue(answer.startswith(b"SIP/2.0 200 "), answer[:80])
        yield gateway.stopService()
        self.assertIsNone(gateway.pinning)
        self.assertEqual(os.sched_getaffinity(0), self.before)
