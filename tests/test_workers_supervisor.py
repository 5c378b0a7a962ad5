"""
Tests for L{gwsms.workers}: the supervisor (restart with backoff, stop with
SIGTERM then SIGKILL) on a Clock with a fake process spawner, what each
worker binds, control socket paths, merged SMSC state and the fan-out.
"""

from __future__ import annotations

from twisted.internet import defer, error, task
from twisted.python.failure import Failure
from twisted.trial import unittest

from gwsms import workers
from gwsms.config import SmppConfig
from gwsms.smpp.link import SessionType, SmscLink


class FakeProcess:
    """An IProcessTransport stand-in that records signals."""

    def __init__(self, proto, argv, pid):
        self.proto = proto
        self.argv = argv
        self.pid = pid
        self.signals: list[str] = []
        self.ended = False

    def signalProcess(self, name):
        if self.ended:
            raise error.ProcessExitedAlready()
        self.signals.append(name)

    def end(self, code=0, sig=None):
        self.ended = True
        if code == 0 and sig is None:
            reason = error.ProcessDone(0)
        else:
            reason = error.ProcessTerminated(code, sig)
        self.proto.processEnded(Failure(reason))


class FakeSpawner:
    def __init__(self, fail=0):
        self.spawned: list[FakeProcess] = []
        self.fail = fail

    def __call__(self, proto, executable, args, env, path):
        if self.fail:
            self.fail -= 1
            raise OSError("no such file")
        assert executable == args[0]
        proc = FakeProcess(proto, args, 1000 + len(self.spawned))
        self.spawned.append(proc)
        return proc

    def running(self, worker):
        return [p for p in self.spawned if p.proto.worker == worker and not p.ended]


class SupervisorTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.spawner = FakeSpawner()

    def supervisor(self, count=3, **kw):
        sup = workers.WorkerSupervisor(
            self.clock, self.spawner, count,
            lambda k: ["/usr/bin/python3", "-m", "gwsms.workers", "--worker", str(k)],
            env={"A": "1"}, path="/tmp", stop_timeout=10.0, **kw)
        sup.startService()
        return sup

    def test_starts_workers_1_to_n_minus_1(self):
        sup = self.supervisor(3)
        self.assertEqual([p.argv[-1] for p in self.spawner.spawned], ["1", "2"])
        self.assertEqual(sorted(sup.processes), [1, 2])
        self.assertEqual([s["running"] for s in sup.state()], [True, True])

    def test_restart_with_doubling_backoff(self):
        sup = self.supervisor(2, restart_initial=1.0, restart_max=8.0, restart_stable=60.0)
        delays = []
        for _ in range(6):
            (proc,) = self.spawner.running(1)
            self.clock.advance(0.5)  # dies quickly
            proc.end(1)
            self.assertNotIn(1, sup.processes)
            delays.append(round(sup.restart_delay(1), 6))
            self.clock.advance(sup.restart_delay(1) - 0.01)
            self.assertEqual(self.spawner.running(1), [])  # not yet
            self.clock.advance(0.01)
            self.assertEqual(len(self.spawner.running(1)), 1)
        self.assertEqual(delays, [1.0, 2.0, 4.0, 8.0, 8.0, 8.0])
        self.assertEqual(sup.restarts[1], 6)

    def test_backoff_starts_over_after_a_stable_run(self):
        sup = self.supervisor(2, restart_initial=1.0, restart_max=30.0, restart_stable=60.0)
        for _ in range(3):
            self.spawner.running(1)[0].end(1)
            self.clock.advance(sup.restart_delay(1))
        self.clock.advance(61.0)  # the fourth ran for a minute
        self.spawner.running(1)[0].end(None, 9)
        self.assertEqual(sup.restart_delay(1), 1.0)

    def test_spawn_failure_is_retried(self):
        self.spawner.fail = 1
        sup = self.supervisor(2)
        self.assertEqual(sup.processes, {})
        self.assertEqual(sup.restart_delay(1), 1.0)
        self.clock.advance(1.0)
        self.assertEqual(sorted(sup.processes), [1])

    def test_stop_terms_then_kills(self):
        sup = self.supervisor(3)
        one, two = self.spawner.spawned
        done = sup.stopService()
        self.assertEqual((one.signals, two.signals), (["TERM"], ["TERM"]))
        one.end(0)
        self.assertNoResult(done)
        self.clock.advance(10.0)
        self.assertEqual(two.signals, ["TERM", "KILL"])
        self.assertNoResult(done)
        two.end(None, 9)
        self.successResultOf(done)
        self.assertEqual(len(self.spawner.spawned), 2)  # nothing restarted
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_gives_up_after_kill(self):
        sup = self.supervisor(2)
        done = sup.stopService()
        self.clock.advance(10.0)
        self.assertNoResult(done)
        self.clock.advance(5.0)
        self.successResultOf(done)

    def test_stop_cancels_pending_restart(self):
        sup = self.supervisor(2)
        self.spawner.spawned[0].end(1)
        self.assertIsNotNone(sup.restart_delay(1))
        self.successResultOf(sup.stopService())
        self.clock.advance(100)
        self.assertEqual(len(self.spawner.spawned), 1)

    def test_signal_all(self):
        sup = self.supervisor(3)
        self.spawner.spawned[1].ended = True  # gone, its processEnded pending
        sup.signal_all("HUP")
        self.assertEqual([p.signals for p in self.spawner.spawned], [["HUP"], []])

    def test_output_becomes_log_lines(self):
        logged = []
        sup = self.supervisor(2)
        proto = self.spawner.spawned[0].proto
        from twisted.logger import globalLogPublisher
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        proto.childDataReceived(1, b"hello\nwor")
        proto.childDataReceived(1, b"ld\n")
        proto.childDataReceived(2, b"[gwsms.x#critical] cannot start\n")
        got = [(e["line"], e["log_level"].name) for e in logged
               if e.get("log_format", "").startswith("worker")]
        self.assertEqual(got, [("hello", "info"), ("world", "info"),
                               ("[gwsms.x#critical] cannot start", "critical")])
        self.assertTrue(sup.running)


def _link(name, session_type):
    return SmscLink(name=name, ip="127.0.0.1", port=2775, system_id="u", password="p",
                    session_type=session_type)


class PerWorkerTests(unittest.SynchronousTestCase):
    def test_links_for_worker(self):
        links = [_link("trx", SessionType.TRANSCEIVER), _link("tx", SessionType.TRANSMITTER),
                 _link("rx", SessionType.RECEIVER), _link("ob", SessionType.OUTBIND)]
        self.assertEqual(workers.links_for_worker(links, 0), links)
        other = workers.links_for_worker(links, 2)
        self.assertEqual([(l.name, l.session_type) for l in other],
                         [("trx", SessionType.TRANSMITTER), ("tx", SessionType.TRANSMITTER)])
        self.assertEqual(other[0].connection_key()[:1], links[0].connection_key()[:1])

    def test_outbind_listen_only_in_worker_0(self):
        config = SmppConfig(outbind_listen=("tcp:2776",))
        self.assertEqual(workers.smpp_config_for_worker(config, 0).outbind_listen,
                         ("tcp:2776",))
        self.assertEqual(workers.smpp_config_for_worker(config, 1).outbind_listen, ())

    def test_control_path(self):
        self.assertEqual(workers.control_path("var/gwsms.sock", 0), "var/gwsms.sock")
        self.assertEqual(workers.control_path("var/gwsms.sock", 3), "var/gwsms.sock.3")

    def test_merge_states(self):
        merged = workers.merge_states({
            0: [{"name": "a", "state": "bound_trx", "host": "h"}, {"name": "r", "state": "bound_rx"}],
            1: [{"name": "a", "state": "bound_tx", "host": "h"}],
            2: None,
        })
        self.assertEqual([m["name"] for m in merged], ["a", "r"])
        self.assertEqual(merged[0]["state"], "w0 bound_trx, w1 bound_tx, w2 ?")
        self.assertEqual(merged[0]["host"], "h")
        self.assertEqual(merged[0]["workers"]["1"]["state"], "bound_tx")
        self.assertEqual(merged[1]["state"], "w0 bound_rx, w2 ?")

    def test_worker_command(self):
        argv = workers.worker_command("etc/x.toml", 2)
        self.assertEqual(argv[1:], ["-m", "gwsms.workers", "--config", "etc/x.toml",
                                    "--worker", "2"])


class _ThreadlessReactor:
    """deferToThreadPool on a pool that runs the function at once."""

    class _Pool:
        def callInThreadWithCallback(self, on_result, fn, *args, **kw):
            try:
                result = fn(*args, **kw)
            except Exception:
                on_result(False, Failure())
            else:
                on_result(True, result)

    def getThreadPool(self):
        return self._Pool()

    def callFromThread(self, fn, *args, **kw):
        fn(*args, **kw)


class FanOutTests(unittest.SynchronousTestCase):
    def test_asks_every_other_worker(self):
        from gwsms.control import ControlUnavailable

        calls = []

        def call(path, command, timeout):
            calls.append((path, command))
            if path.endswith(".2"):
                raise ControlUnavailable("no service")
            return {"routes": 3}

        fan = workers.FanOut(_ThreadlessReactor(), "var/s.sock", 3, call=call)
        result = self.successResultOf(fan.ask("routes_reload"))
        self.assertEqual(result, {1: {"routes": 3}, 2: None})
        self.assertEqual(calls, [("var/s.sock.1", "routes_reload"),
                                 ("var/s.sock.2", "routes_reload")])
        self.flushLoggedErrors()


class _BeatStore:
    lease = 30.0

    def __init__(self, fail=False):
        self.calls = []
        self.fail = fail

    def heartbeat(self, now, pid):
        self.calls.append((now, pid))
        if self.fail:
            return defer.fail(RuntimeError("database is locked"))
        return defer.succeed(None)


class LeaseKeeperTests(unittest.SynchronousTestCase):
    def test_beats_every_quarter_lease(self):
        clock = task.Clock()
        store = _BeatStore()
        keeper = workers.LeaseKeeper(clock, store, pid=99)
        self.successResultOf(keeper.beat())
        keeper.startService()
        clock.advance(7.5)
        clock.advance(7.5)
        self.assertEqual(store.calls, [(0.0, 99), (7.5, 99), (15.0, 99)])
        keeper.stopService()
        clock.advance(100)
        self.assertEqual(len(store.calls), 3)

    def test_failure_logged_and_retried(self):
        clock = task.Clock()
        store = _BeatStore(fail=True)
        keeper = workers.LeaseKeeper(clock, store)
        keeper.startService()
        clock.advance(7.5)
        clock.advance(7.5)
        self.assertEqual(len(store.calls), 2)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)
        keeper.stopService()


class MainTests(unittest.SynchronousTestCase):
    def test_bad_worker_index(self):
        import os
        import tempfile

        fd, path = tempfile.mkstemp(suffix=".toml")
        os.write(fd, b"[gateway]\nworkers = 2\n[sip]\nlisten = ['udp:127.0.0.1:5999']\n")
        os.close(fd)
        self.addCleanup(os.remove, path)
        self.assertEqual(workers.main(["--config", path, "--worker", "2"]), 2)
        self.assertEqual(workers.main(["--config", path + ".missing", "--worker", "1"]), 2)

