"""
End-to-end: the gateway process (twistd -n gwsms) is killed with SIGKILL
in the middle of a run of 100 MT messages and started again over the same
SQLite file.  Nothing acknowledged is lost (every MESSAGE sipp got a 202
for reaches the SMSC) and nothing is sent twice, except what the gateway
documents: a part whose submit_sm was on the wire at the moment of the
kill has no stored SMSC id and is submitted again after the restart.
"""

from __future__ import annotations

import os
import sys

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater

from gwsms.store.database import open_database_sync
from gwsms.store.messages import MessageStore
from tests.test_e2e_gateway import SCENARIOS, E2eBase, _events, _Lines, free_port

TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")


class RestartTests(E2eBase):
    def write_config(self):
        self.db_path = os.path.join(self.workdir, "gwsms.sqlite3")
        self.sip_port = free_port()
        path = os.path.join(self.workdir, "gwsms.toml")
        with open(path, "w") as f:
            f.write(
                f'[database]\nurl = "sqlite:{self.db_path}"\n'
                f'[smpp]\nreconnect_initial = 0.2\nreconnect_max = 1.0\n'
                f'[sip]\nlisten = ["udp:127.0.0.1:{self.sip_port}"]\ndomain = "gw.test"\n'
                f'[control]\nsocket = "{os.path.join(self._short_dir(), "gwsms.sock")}"\n'
                f'[gateway]\nretry_initial = 0.2\nretry_max = 1.0\nqueue_interval = 0.2\n'
                f'down_wait = 2.0\n'
            )
        return path

    def prepare_store(self):
        return self.provision_store("sqlite:" + self.db_path)

    def start_twistd(self, config, n):
        proto = _Lines()
        log = os.path.join(self.workdir, f"gwsms-{n}.log")
        argv = [TWISTD, "--nodaemon", "--pidfile=", f"--logfile={log}", "gwsms",
                "--config", config]
        process = reactor.spawnProcess(proto, TWISTD, argv, env=dict(os.environ),
                                       path=self.workdir)
        self.addCleanup(self._stop_process, process, proto)
        return process, proto

    @defer.inlineCallbacks
    def test_sigkill_mid_run(self):
        if not os.access(TWISTD, os.X_OK):
            raise self.skipTest(f"no twistd next to {sys.executable}")
        config = self.write_config()
        yield self.prepare_store()
        process, proto = self.start_twistd(config, 1)
        yield self.smsc.wait_for(lambda ls: len(_events(ls, "BIND")) >= 1, "the first bind", 30)
        texts = self.mt_texts()
        csv = self.write_csv(texts)
        sipp = self.sipp(
            f"127.0.0.1:{self.sip_port}", "-sf", os.path.join(SCENARIOS, "e2e_uac.xml"),
            "-inf", csv, "-t", "u1", "-i", "127.0.0.1", "-p", str(free_port()),
            "-m", "100", "-r", "40", "-l", "100")
        yield self.smsc.wait_for(lambda ls: len(_events(ls, "SUBMIT")) >= 40, "40 submit_sm")
        process.signalProcess("KILL")
        yield proto.ended
        yield deferLater(reactor, 1.0)
        self.start_twistd(config, 2)
        # sipp retransmits unanswered MESSAGEs; the new process answers them
        self.assertSippOk((yield sipp))
        expected = 40 + 40 + 20 * 3
        yield self.smsc.wait_for(lambda ls: len(_events(ls, "SUBMIT")) >= expected,
                                         f"{expected} submit_sm")
        yield deferLater(reactor, 1.0)  # anything submitted twice would show up now
        db = open_database_sync("sqlite:" + self.db_path)
        self.addCleanup(db.close)
        store = MessageStore(db, None)
        rows = yield store.list(direction="mt", limit=1000)
        self.assertEqual(len(rows), 100)
        self.assertEqual({r["state"] for r in rows}, {"submitted"})
        recorded = set()
        for row in rows:
            for _seq, _state, mid in (yield store.parts(row["id"])):
                recorded.add(mid)
        submits = _events(self.smsc.lines, "SUBMIT")
        # every recorded id is a submit the SMSC saw, once
        seen = [s[1] for s in submits]
        self.assertEqual(len(seen), len(set(seen)))
        self.assertTrue(recorded <= set(seen))
        # extra submits (in flight at the kill) are few and never recorded
        extra = [s for s in submits if s[1] not in recorded]
        self.assertLessEqual(len(extra), 10, extra)
        kept = [s for s in submits if s[1] in recorded]
        self.check_submits(texts, [" ".join(s) for s in kept])
