"""
L{gwsms.service.GatewayService} as worker 1 of 2 (in this process, real
sockets on 127.0.0.1, the shipped SMSC simulator), and the configuration
checks of C{[gateway] workers}.
"""

from __future__ import annotations

import os
import socket
import tempfile

from twisted.internet import defer, endpoints, task, threads
from twisted.trial.unittest import SynchronousTestCase, TestCase

from gwsms import config as gwconfig
from gwsms import control
from gwsms.service import GatewayService
from gwsms.sim.smsc import SimulatedSMSC
from gwsms.sip import reuseport
from gwsms.smpp.link import SessionType, SmscLink
from gwsms.store.database import open_database_sync
from gwsms.store.migrate import upgrade
from gwsms.store.smsc import SmscStore


class ConfigTests(SynchronousTestCase):
    def parse(self, gateway, sip=None, database=None):
        data = {"gateway": gateway, "sip": sip or {"listen": ["udp:127.0.0.1:5999"]}}
        if database:
            data["database"] = database
        return gwconfig.parse(data, "w.toml")

    def test_default_is_one(self):
        self.assertEqual(gwconfig.parse({}).gateway.workers, 1)

    def test_range(self):
        self.assertEqual(self.parse({"workers": 4}).gateway.workers, 4)
        for bad in (0, 65, -1):
            e = self.assertRaises(gwconfig.ConfigError, self.parse, {"workers": bad})
            self.assertIn("gateway.workers", str(e))
        e = self.assertRaises(gwconfig.ConfigError, self.parse, {"workers": "2"})
        self.assertIn("gateway.workers", str(e))

    def test_fixed_ports_needed(self):
        e = self.assertRaises(gwconfig.ConfigError, self.parse, {"workers": 2},
                              {"listen": ["udp:127.0.0.1:5999", "tcp:127.0.0.1:0"]})
        self.assertIn("sip.listen", str(e))
        self.assertIn("fixed port", str(e))
        # one process may still use port 0
        self.parse({"workers": 1}, {"listen": ["udp:127.0.0.1:0"]})

    def test_memory_database_refused(self):
        e = self.assertRaises(gwconfig.ConfigError, self.parse, {"workers": 2},
                              database={"url": "sqlite::memory:"})
        self.assertIn("database.url", str(e))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WorkerServiceTests(TestCase):
    timeout = 30

    def setUp(self):
        from twisted.internet import reactor

        self.reactor = reactor
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.db_url = "sqlite:" + os.path.join(self.dir, "gwsms.sqlite3")
        short = tempfile.mkdtemp(prefix="gwsmsw")
        self.addCleanup(os.rmdir, short)
        self.sock_path = os.path.join(short, "ctl.sock")
        self.sip_port = _free_port()
        self.config = gwconfig.parse({
            "database": {"url": self.db_url},
            "sip": {"listen": [f"udp:127.0.0.1:{self.sip_port}"], "domain": "gw.test"},
            "smpp": {"reconnect_initial": 0.2, "reconnect_max": 1.0},
            "control": {"socket": self.sock_path},
            "gateway": {"workers": 2},
        }, path="w.toml")

    @defer.inlineCallbacks
    def test_worker_1(self):
        """
        Worker 1: SIP port shared (another SO_REUSEPORT socket binds it
        too), a private UDP port for requests, the transceiver row bound as
        a transmitter, the receiver row not at all, control on
        C{<socket>.1}, the message store owned by 1, no supervisor.
        """
        smsc = SimulatedSMSC(self.reactor, system_id="gw", password="pw")
        port = yield endpoints.TCP4ServerEndpoint(self.reactor, 0,
                                                  interface="127.0.0.1").listen(smsc)
        self.addCleanup(port.stopListening)
        self.addCleanup(smsc.stop)
        db = open_database_sync(self.db_url)
        try:
            upgrade(db)
            for name, kind in (("trx", SessionType.TRANSCEIVER), ("rx", SessionType.RECEIVER)):
                SmscStore(db).add(SmscLink(name=name, ip="127.0.0.1",
                                           port=port.getHost().port, system_id="gw",
                                           password="pw", session_type=kind))
        finally:
            db.close()

        gateway = GatewayService(self.config, self.reactor, install_signals=False, worker=1)
        gateway.startService()
        self.addCleanup(lambda: gateway.stopService() if gateway.running else None)
        yield gateway.started
        yield smsc.wait_for_binds(1)

        self.assertIsNone(gateway.supervisor)
        self.assertEqual(gateway.messages.owner, 1)
        self.assertEqual(gateway.sip.port("udp"), self.sip_port)
        private = [p for t, _h, p in gateway.sip.addresses() if t == "udp-private"]
        self.assertEqual(len(private), 1)
        self.assertNotEqual(private[0], self.sip_port)
        other = reuseport.bound_socket(socket.SOCK_DGRAM, "127.0.0.1", self.sip_port)
        other.close()

        states = None
        for _ in range(200):
            states = yield threads.deferToThread(control.call, self.sock_path + ".1",
                                                 "smsc_state")
            if states and states[0]["state"].startswith("bound"):
                break
            yield task.deferLater(self.reactor, 0.05, lambda: None)
        self.assertEqual([(s["name"], s["state"]) for s in states], [("trx", "bound_tx")])
        self.assertFalse(os.path.exists(self.sock_path))
        self.assertEqual(len([s for s in smsc.sessions if s.state.startswith("bound")]), 1)

        diff = yield defer.ensureDeferred(gateway.smsc_reload())
        self.assertEqual(diff["unchanged"], ["trx"])
        self.assertNotIn("failed_workers", diff)
