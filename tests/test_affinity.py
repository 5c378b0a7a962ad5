"""
L{gwsms.affinity}: the event loop's thread on a CPU of its own
(C{[gateway] reactor_cpus}), on this process's real threads.
"""

from __future__ import annotations

import os
import threading

from twisted.internet import task
from twisted.trial import unittest

from gwsms import affinity, config


class CheckTests(unittest.SynchronousTestCase):
    def test_empty_is_fine(self):
        self.assertIsNone(affinity.check((), allowed={0}))

    def test_not_allowed(self):
        if not affinity.supported():
            raise unittest.SkipTest("not Linux")
        self.assertEqual(affinity.check((0, 5), allowed={0, 1, 2, 4}),
                         "CPU 5 not available to this process (it may use 0-2,4)")

    def test_twice_and_negative(self):
        if not affinity.supported():
            raise unittest.SkipTest("not Linux")
        self.assertEqual(affinity.check((0, 0), allowed={0, 1}), "lists a CPU twice")
        self.assertEqual(affinity.check((-1,), allowed={0, 1}), "CPU numbers must be >= 0")

    def test_ok(self):
        if not affinity.supported():
            raise unittest.SkipTest("not Linux")
        self.assertIsNone(affinity.check((1,), allowed={0, 1}))

    def test_ranges(self):
        self.assertEqual(affinity._ranges({0, 1, 2, 5, 7, 8}), "0-2,5,7-8")
        self.assertEqual(affinity._ranges({3}), "3")


class PlanTests(unittest.SynchronousTestCase):
    def test_others_get_the_rest(self):
        self.assertEqual(affinity.plan((0,), 0, {0, 1, 2, 3}), (0, frozenset({1, 2, 3})))

    def test_workers_take_turns(self):
        cpus = (0, 1)
        self.assertEqual(affinity.plan(cpus, 0, {0, 1, 2, 3}), (0, frozenset({2, 3})))
        self.assertEqual(affinity.plan(cpus, 1, {0, 1, 2, 3}), (1, frozenset({2, 3})))
        self.assertEqual(affinity.plan(cpus, 2, {0, 1, 2, 3})[0], 0)

    def test_every_cpu_an_event_loop(self):
        """No CPU left over: the helpers avoid at least their own event loop's."""
        self.assertEqual(affinity.plan((0, 1), 1, {0, 1}), (1, frozenset({0})))

    def test_one_cpu(self):
        self.assertEqual(affinity.plan((0,), 0, {0}), (0, frozenset({0})))


class ConfigTests(unittest.SynchronousTestCase):
    def load(self, text: str):
        path = self.mktemp() + ".toml"
        with open(path, "w") as f:
            f.write(text)
        return path, config.load

    def test_default_empty(self):
        self.assertEqual(config.GatewayConfig().reactor_cpus, ())

    def test_list_of_integers(self):
        path, load = self.load("[gateway]\nreactor_cpus = 0\n")
        e = self.assertRaises(config.ConfigError, load, path)
        self.assertEqual(str(e), f"{path}: gateway.reactor_cpus: expected a list of integers,"
                                 " got 0")
        path, load = self.load('[gateway]\nreactor_cpus = ["0"]\n')
        self.assertIn("gateway.reactor_cpus", str(self.assertRaises(config.ConfigError, load, path)))

    def test_cpu_not_available(self):
        if not affinity.supported():
            raise unittest.SkipTest("not Linux")
        missing = max(affinity.allowed_cpus()) + 1
        path, load = self.load(f"[gateway]\nreactor_cpus = [{missing}]\n")
        message = str(self.assertRaises(config.ConfigError, load, path))
        self.assertTrue(message.startswith(f"{path}: gateway.reactor_cpus: CPU {missing} not"
                                           " available to this process (it may use "), message)
        self.assertNotIn("\n", message)

    def test_loaded(self):
        if not affinity.supported():
            raise unittest.SkipTest("not Linux")
        cpu = min(affinity.allowed_cpus())
        path, load = self.load(f"[gateway]\nreactor_cpus = [{cpu}]\n")
        self.assertEqual(load(path).gateway.reactor_cpus, (cpu,))


class PinningTests(unittest.TestCase):
    """Real threads of this process; each test gives them their CPUs back."""

    def setUp(self):
        if not affinity.supported():
            raise unittest.SkipTest("not Linux")
        allowed = sorted(affinity.allowed_cpus())
        if len(allowed) < 2:
            raise unittest.SkipTest("needs two CPUs")
        self.cpu, self.others = allowed[0], frozenset(allowed[1:])
        self.clock = task.Clock()
        self.pinning = affinity.Pinning(self.clock, self.cpu, self.others, interval=10.0)
        self.addCleanup(self.pinning.stop, restore=True)
        self.before = frozenset(os.sched_getaffinity(0))
        self.stop_helpers = threading.Event()
        self.addCleanup(self.stop_helpers.set)

    def helper(self) -> int:
        """@return: the thread id of a new thread that runs until the test ends."""
        started = threading.Event()
        ident = []

        def run():
            ident.append(threading.get_native_id())
            started.set()
            self.stop_helpers.wait(30)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        started.wait(30)
        self.addCleanup(thread.join, 30)
        self.addCleanup(self.stop_helpers.set)  # runs before the join
        return ident[0]

    def test_event_loop_and_helpers(self):
        early = self.helper()
        self.pinning.start()
        self.assertEqual(os.sched_getaffinity(0), {self.cpu})
        self.assertEqual(os.sched_getaffinity(early), self.others)
        # a thread started later inherits the event loop's CPU until the sweep
        late = self.helper()
        self.assertEqual(os.sched_getaffinity(late), {self.cpu})
        self.clock.advance(10.0)
        self.assertEqual(os.sched_getaffinity(late), self.others)
        self.assertIn(late, self.pinning.moved)

    def test_restore(self):
        early = self.helper()
        early_before = os.sched_getaffinity(early)
        self.pinning.start()
        self.pinning.stop(restore=True)
        self.assertEqual(os.sched_getaffinity(0), self.before)
        self.assertEqual(os.sched_getaffinity(early), early_before)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_unpinned_for_a_child(self):
        """What a child process started inside C{unpinned} inherits: the CPUs from before."""
        self.pinning.start()
        with self.pinning.unpinned():
            self.assertEqual(os.sched_getaffinity(0), self.before)
        self.assertEqual(os.sched_getaffinity(0), {self.cpu})

    def test_ended_threads_forgotten(self):
        """A thread that ended is forgotten at the next sweep (its id may come back)."""
        go = threading.Event()
        ident = []

        def run():
            ident.append(threading.get_native_id())
            go.wait(30)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        while not ident:
            thread.join(0.01)
        self.pinning.start()
        self.assertIn(ident[0], self.pinning.moved)
        go.set()
        thread.join(30)
        # the OS thread goes a moment after the Python thread has ended
        for _ in range(1000000):
            if str(ident[0]) not in os.listdir("/proc/self/task"):
                break
            os.sched_yield()
        self.clock.advance(10.0)
        self.assertNotIn(ident[0], self.pinning.moved)
        self.assertNotIn(ident[0], self.pinning._before)
