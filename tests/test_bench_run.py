"""
Tests for the pure parts of L{bench.run} and L{bench.harness} (C{make
bench}): the generated gateway configuration, the time bound, the memory
verdict, the GC log summary, the host's description and the command line.  No
gateway is started.
"""

import io
import os
import platform
import sys

from twisted.trial.unittest import SynchronousTestCase

from bench import harness, run
from gwsms import config


class GatewayConfigTests(SynchronousTestCase):
    def test_loads_with_the_gateway_config_loader(self):
        """
        The generated file is a valid gwsms configuration: SQLite file in
        the temp dir, one SIP UDP listener on 127.0.0.1, the control socket
        in the temp dir, the requested reply mode.
        """
        tmp = self.mktemp()
        os.mkdir(tmp)
        path = os.path.join(tmp, "gwsms.toml")
        with open(path, "w") as f:
            f.write(harness.gateway_config(os.path.abspath(tmp), 45060, "accepted",
                                       [("commit_interval", "0.002"), ("concat", '"sar"')]))
        loaded = config.load(path)
        self.assertEqual(loaded.database.url, "sqlite:" + os.path.join(os.path.abspath(tmp), "gwsms.sqlite3"))
        self.assertEqual(loaded.sip.listen, ("udp:127.0.0.1:45060",))
        self.assertEqual(loaded.control.socket, os.path.join(os.path.abspath(tmp), "gwsms.sock"))
        self.assertEqual(loaded.gateway.sip_reply, "accepted")
        self.assertEqual((loaded.gateway.commit_interval, loaded.gateway.concat), (0.002, "sar"))
        self.assertEqual(loaded.sip.udp_receive_buffer, config.SipConfig().udp_receive_buffer)

    def test_sip_options(self):
        """--sip-option's pairs land in [sip]."""
        tmp = self.mktemp()
        os.mkdir(tmp)
        path = os.path.join(tmp, "gwsms.toml")
        with open(path, "w") as f:
            f.write(harness.gateway_config(os.path.abspath(tmp), 45060, "submitted", [],
                                           [("udp_receive_buffer", "0")]))
        loaded = config.load(path)
        self.assertEqual(loaded.sip.udp_receive_buffer, 0)
        self.assertEqual(loaded.sip.listen, ("udp:127.0.0.1:45060",))


class GatewayOptionTests(SynchronousTestCase):
    def test_parse(self):
        self.assertEqual(run.parse_gateway_option(" batch_size = 40 "), ("batch_size", "40"))
        self.assertEqual(run.parse_gateway_option('concat="udh16"'), ("concat", '"udh16"'))

    def test_bad(self):
        for text in ("commit_interval", "=1", "a b=1", "x="):
            e = self.assertRaises(ValueError, run.parse_gateway_option, text)
            self.assertIn("KEY=VALUE", str(e))
        self.assertRaises(ValueError, run.parse_gateway_option, "sip_reply=\"accepted\"")

    def test_sip_option_named(self):
        e = self.assertRaises(ValueError, run.parse_gateway_option, "udp_receive_buffer",
                              "--sip-option")
        self.assertEqual(str(e), "--sip-option 'udp_receive_buffer' is not KEY=VALUE")
        self.assertEqual(run.parse_gateway_option("udp_receive_buffer=0", "--sip-option"),
                         ("udp_receive_buffer", "0"))


class TimeoutTests(SynchronousTestCase):
    def test_grows_with_steps_and_directions(self):
        one = run.default_timeout((1000,), 15.0, 1)
        self.assertEqual(one, 120 + 3 * 15 + 30)
        self.assertEqual(run.default_timeout((1000, 2000), 15.0, 2), 120 + 2 * 2 * (3 * 15 + 30))

    def test_memory_run(self):
        self.assertEqual(run.default_timeout((), 15.0, 1, memory_minutes=10), 120 + 600 + 60)


class MemoryVerdictTests(SynchronousTestCase):
    def test_flat(self):
        samples = [(10.0, 60.0), (60.0, 80.0), (70.0, 81.0), (600.0, 84.0)]
        verdict = harness.memory_verdict(samples)
        self.assertEqual(verdict, {"first_minute_mb": 80.0, "final_mb": 84.0, "ratio": 1.05, "flat": True})

    def test_growing(self):
        verdict = harness.memory_verdict([(60.0, 80.0), (600.0, 100.0)])
        self.assertEqual((verdict["ratio"], verdict["flat"]), (1.25, False))

    def test_shorter_than_a_minute(self):
        verdict = harness.memory_verdict([(10.0, 50.0), (20.0, 55.0)])
        self.assertEqual((verdict["first_minute_mb"], verdict["final_mb"]), (50.0, 55.0))

    def test_no_samples(self):
        self.assertIsNone(harness.memory_verdict([])["ratio"])


class ParserTests(SynchronousTestCase):
    def test_defaults(self):
        args = run.build_parser().parse_args([])
        self.assertEqual((args.direction, args.sip_reply, args.window, args.memory, args.quick),
                         ("both", "submitted", 100, False, False))

    def main_error(self, argv):
        """@return: C{run.main(argv)}'s exit status and what it wrote to stderr."""
        err = io.StringIO()
        self.patch(sys, "stderr", err)
        return run.main(argv), err.getvalue()

    def test_bad_steps_exit_2(self):
        self.assertEqual(self.main_error(["--steps", "fast", "--no-micro"]),
                         (2, "bench: bad rate 'fast' in --steps\n"))

    def test_bad_duration_exit_2(self):
        status, text = self.main_error(["--duration", "0", "--no-micro"])
        self.assertEqual(status, 2)
        self.assertIn("--duration", text)

    def test_bad_option_exit_2(self):
        self.assertEqual(self.main_error(["--gateway-option", "nonsense", "--no-micro"]),
                         (2, "bench: --gateway-option 'nonsense' is not KEY=VALUE\n"))

    def test_bad_sip_option_exit_2(self):
        self.assertEqual(self.main_error(["--sip-option", "nonsense", "--no-micro"]),
                         (2, "bench: --sip-option 'nonsense' is not KEY=VALUE\n"))

    def test_bad_gc_threshold_exit_2(self):
        for value in ("1,x", "1,2,3,4"):
            status, text = self.main_error(["--gc-threshold", value, "--no-micro"])
            self.assertEqual(status, 2)
            self.assertIn("--gc-threshold", text)

    def test_bad_udp_rcvbuf_exit_2(self):
        status, text = self.main_error(["--udp-rcvbuf", "0", "--no-micro"])
        self.assertEqual(status, 2)
        self.assertIn("--udp-rcvbuf", text)

    def test_bad_uacs_exit_2(self):
        status, text = self.main_error(["--uacs", "0", "--no-micro"])
        self.assertEqual(status, 2)
        self.assertIn("--uacs 1..16", text)


class GcPauseTests(SynchronousTestCase):
    def test_summary_within_the_step(self):
        log = "\n".join([
            "99.0 2 400.0",      # before the step
            "100.5 0 6.5",
            "101.0 1 12.0",
            "102.0 2 180.25",
            "garbage line",
            "103.0 2 60.0",
            "200.0 2 900.0",     # after the step
        ])
        self.assertEqual(harness.gc_pauses(log, 100.0, 110.0),
                         {"gen2": 2, "max_ms": 180.2, "total_ms": 258.8, "over_50ms": 2})

    def test_logger_source_compiles(self):
        compile(harness.GC_LOGGER, "sitecustomize.py", "exec")

    def test_udp_rcvbuf_experiment(self):
        """
        With GWSMS_BENCH_UDP_RCVBUF the gateway's sitecustomize grows the
        receive buffer of every UDP port when it starts reading.
        """
        import socket

        from twisted.internet import protocol, udp
        from twisted.internet.testing import MemoryReactor

        self.patch(udp.Port, "startReading", udp.Port.startReading)  # restored after the test
        self.patch(os, "environ", {"GWSMS_BENCH_UDP_RCVBUF": "1048576"})
        exec(compile(harness.GC_LOGGER, "sitecustomize.py", "exec"), {})
        port = udp.Port(0, protocol.DatagramProtocol(), interface="127.0.0.1", reactor=MemoryReactor())
        port.startListening()
        self.addCleanup(port.socket.close)
        # Linux reports twice the requested size (book-keeping), capped by rmem_max.
        self.assertGreater(port.socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF), 212992 * 2)


class HostInfoTests(SynchronousTestCase):
    def test_names_the_interpreter(self):
        """The report names the interpreter the venv was made from, a file that runs."""
        host = run._host_info("/nonexistent/sipp")
        self.assertTrue(os.path.isabs(host["interpreter"]))
        self.assertTrue(os.access(host["interpreter"], os.X_OK), host["interpreter"])
        self.assertEqual(host["python"], platform.python_version())
        self.assertEqual(host["sipp"], "?")


class PinPlanTests(SynchronousTestCase):
    """Where the bench puts the gateway's event loop and the load (harness.pin_plan)."""

    def test_two_cpus(self):
        self.assertEqual(harness.pin_plan({0, 1}, []), ("[0]", [1], None))

    def test_off_by_default(self):
        """make bench lets the kernel place everything unless --pin is given."""
        args = run.build_parser().parse_args([])
        self.assertFalse(args.pin)
        self.assertTrue(run.build_parser().parse_args(["--pin"]).pin)

    def test_first_allowed_cpu(self):
        self.assertEqual(harness.pin_plan({2, 3, 5}, []), ("[2]", [3, 5], None))

    def test_off(self):
        self.assertEqual(harness.pin_plan({0, 1}, [], enabled=False), (None, None, "no --pin"))
        self.assertEqual(harness.pin_plan({0}, []), (None, None, "fewer than two CPUs"))
        self.assertEqual(harness.pin_plan({0, 1}, [("workers", "2")]), (None, None, "workers > 1"))

    def test_users_reactor_cpus(self):
        """The user's reactor_cpus stand; the load goes on the CPUs they leave."""
        self.assertEqual(harness.pin_plan({0, 1, 2}, [("reactor_cpus", "[1]")]), (None, [0, 2], None))
        self.assertEqual(harness.pin_plan({0, 1}, [("reactor_cpus", "[0, 1]")]),
                         (None, None, "reactor_cpus leaves no CPU"))

    def test_placed_options(self):
        """The plan's reactor_cpus joins the gateway's options; nothing without --pin."""
        self.assertEqual(harness.placed([("workers", "1")], True, {0, 1}),
                         ([("workers", "1"), ("reactor_cpus", "[0]")], ("[0]", [1], None)))
        self.assertEqual(harness.placed([], False, {0, 1}), ([], (None, None, "no --pin")))

    def test_placement_line(self):
        self.assertEqual(run.placement("[0]", [1], None),
                         "gateway event loop alone on CPU 0; its other threads, sipp and the"
                         " simulator on CPU 1 (--pin)")
        self.assertEqual(run.placement(None, None, "no --pin"), "the kernel's choice (no --pin)")
        self.assertEqual(run.placement(None, [0, 2], None),
                         "sipp and the simulator on CPU 0,2 (the gateway as its reactor_cpus says)")

    def test_config_takes_it(self):
        """The option the plan gives is a valid [gateway] reactor_cpus."""
        tmp = self.mktemp()
        os.mkdir(tmp)
        path = os.path.join(tmp, "gwsms.toml")
        cpu = min(os.sched_getaffinity(0))
        with open(path, "w") as f:
            f.write(harness.gateway_config(os.path.abspath(tmp), 45060, "submitted",
                                           [("reactor_cpus", "[%d]" % cpu)]))
        self.assertEqual(config.load(path).gateway.reactor_cpus, (cpu,))


class OnCpusTests(SynchronousTestCase):
    def test_child_inherits_then_restored(self):
        """A child started inside on_cpus runs on those CPUs; this thread gets its own back."""
        import subprocess
        import sys

        before = os.sched_getaffinity(0)
        cpu = min(before)
        with harness.on_cpus([cpu]):
            self.assertEqual(os.sched_getaffinity(0), {cpu})
            child = subprocess.run([sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
                                   capture_output=True, text=True, check=True)
        self.assertEqual(child.stdout.strip(), str([cpu]))
        self.assertEqual(os.sched_getaffinity(0), before)

    def test_none_leaves_it(self):
        before = os.sched_getaffinity(0)
        with harness.on_cpus(None):
            self.assertEqual(os.sched_getaffinity(0), before)
