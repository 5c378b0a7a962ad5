"""
Tests for L{bench.procstat}: /proc/<pid>/stat parsing and the CPU/RSS
arithmetic of the benchmark (no processes are started).
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from bench import procstat

# A real line of this machine's format; the command name holds spaces and
# parentheses, which is why fields are counted from the last ')'.
LINE = (
    "4242 (twistd (gw) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 "
    "1500 250 0 0 20 0 3 0 98765 412345678 25000 18446744073709551615 "
    "1 1 0 0 0 0 0 16781312 2 0 0 0 17 1 0 0 0 0 0\n"
)


class ParseStatTests(SynchronousTestCase):
    def test_fields(self):
        sample = procstat.parse_stat(LINE, 7.5)
        self.assertEqual((sample.wall, sample.utime, sample.stime, sample.threads, sample.rss_pages),
                         (7.5, 1500, 250, 3, 25000))

    def test_conversions(self):
        sample = procstat.parse_stat(LINE, 0.0)
        self.assertEqual(sample.cpu_seconds(clk_tck=100), 17.5)
        self.assertEqual(sample.rss_bytes(page_size=4096), 25000 * 4096)

    def test_no_parenthesis(self):
        e = self.assertRaises(procstat.ProcStatError, procstat.parse_stat, "4242 twistd S 1 2", 0.0)
        self.assertIn("')'", str(e))

    def test_too_short(self):
        e = self.assertRaises(procstat.ProcStatError, procstat.parse_stat, "1 (x) S 1 2 3", 0.0)
        self.assertIn("fields", str(e))

    def test_not_numeric(self):
        bad = LINE.replace(" 1500 ", " abc ")
        self.assertRaises(procstat.ProcStatError, procstat.parse_stat, bad, 0.0)

    def test_read_own_process(self):
        """
        Reading /proc/self's pid gives this process's own thread count and a
        resident size above zero (Linux only, where the bench runs).
        """
        if not os.path.exists("/proc/self/stat"):
            raise self.skipTest("no /proc")
        sample = procstat.read(os.getpid(), 1.0)
        self.assertGreaterEqual(sample.threads, 1)
        self.assertGreater(sample.rss_bytes(), 0)


class CpuMathTests(SynchronousTestCase):
    def sample(self, wall, utime, stime):
        return procstat.Sample(wall=wall, utime=utime, stime=stime, rss_pages=1, threads=1)

    def test_percent_of_one_core(self):
        before, after = self.sample(10.0, 100, 50), self.sample(12.0, 220, 80)
        # 150 ticks = 1.5 s of CPU in 2 s of wall time.
        self.assertAlmostEqual(procstat.cpu_percent(before, after, clk_tck=100), 75.0)

    def test_percent_two_cores(self):
        before, after = self.sample(0.0, 0, 0), self.sample(1.0, 150, 50)
        self.assertAlmostEqual(procstat.cpu_percent(before, after, clk_tck=100), 200.0)

    def test_percent_no_wall_time(self):
        s = self.sample(5.0, 1, 1)
        self.assertEqual(procstat.cpu_percent(s, s, clk_tck=100), 0.0)

    def test_us_per_message(self):
        before, after = self.sample(0.0, 1000, 0), self.sample(15.0, 1600, 300)
        # 9 s of CPU for 100,000 messages = 90 us each.
        self.assertAlmostEqual(procstat.cpu_us_per_message(before, after, 100000, clk_tck=100), 90.0)

    def test_us_per_message_without_messages(self):
        s = self.sample(0.0, 0, 0)
        self.assertIsNone(procstat.cpu_us_per_message(s, s, 0))

    def test_system_share(self):
        before, after = self.sample(0.0, 100, 100), self.sample(1.0, 130, 170)
        self.assertAlmostEqual(procstat.system_share(before, after), 0.7)
        self.assertIsNone(procstat.system_share(before, before))


class SchedstatTests(SynchronousTestCase):
    def test_parse(self):
        self.assertEqual(procstat.parse_schedstat("1234567 89000 42\n"), (1234567, 89000))

    def test_bad(self):
        self.assertRaises(procstat.ProcStatError, procstat.parse_schedstat, "1 2")
        self.assertRaises(procstat.ProcStatError, procstat.parse_schedstat, "a b c")

    def test_wait_percent(self):
        # 0.5 s of run-queue wait in 2 s of wall time.
        self.assertAlmostEqual(procstat.wait_percent((0, 1000000000), (7, 1500000000), 2.0), 25.0)
        self.assertIsNone(procstat.wait_percent((0, 0), (0, 0), 0.0))


class TreeTests(SynchronousTestCase):
    def test_parse_ppid(self):
        self.assertEqual(procstat.parse_ppid(LINE), 1)
        self.assertRaises(procstat.ProcStatError, procstat.parse_ppid, "12 (x)")

    def test_descendants(self):
        parents = {1: 0, 10: 1, 11: 10, 12: 10, 13: 11, 20: 1, 21: 20}
        self.assertEqual(procstat.descendants(10, parents), [10, 12, 11, 13])
        self.assertEqual(procstat.descendants(99, parents), [99])

    def test_total(self):
        a = procstat.Sample(wall=1.0, utime=10, stime=5, rss_pages=100, threads=3)
        b = procstat.Sample(wall=1.1, utime=1, stime=2, rss_pages=50, threads=1)
        self.assertEqual(procstat.total([a, b], 2.0),
                         procstat.Sample(wall=2.0, utime=11, stime=7, rss_pages=150, threads=4))

    def test_read_tree_of_this_process(self):
        """This process (trial) as a tree: at least its own figures."""
        if not os.path.exists("/proc/self/stat"):
            raise self.skipTest("no /proc")
        own = procstat.read(os.getpid(), 1.0)
        tree = procstat.read_tree(os.getpid(), 1.0)
        self.assertGreaterEqual(tree.rss_pages, own.rss_pages)
        self.assertGreaterEqual(tree.threads, own.threads)


UDP_TABLE = """\
   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
 2733: 0100007F:1770 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 329431 2 000000005 12
 2734: 0100007F:1770 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 329433 2 000000006 3
 2735: 0100007F:1772 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 329432 2 000000009 0
"""


class UdpDropTests(SynchronousTestCase):
    def test_parse(self):
        self.assertEqual(procstat.parse_udp_drops(UDP_TABLE, 0x1770), 15)  # two SO_REUSEPORT sockets
        self.assertEqual(procstat.parse_udp_drops(UDP_TABLE, 0x1772), 0)
        self.assertIsNone(procstat.parse_udp_drops(UDP_TABLE, 5060))

    def test_bad(self):
        self.assertRaises(procstat.ProcStatError, procstat.parse_udp_drops, "nonsense", 1)
        self.assertRaises(procstat.ProcStatError, procstat.parse_udp_drops,
                          UDP_TABLE.splitlines()[0] + "\n 1: 0100007F:1770 x\n", 0x1770)
        bad = UDP_TABLE.replace(" 12\n", " many\n")
        self.assertRaises(procstat.ProcStatError, procstat.parse_udp_drops, bad, 0x1770)

    def test_read_own_socket(self):
        import socket
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.bind(("127.0.0.1", 0))
        self.assertEqual(procstat.read_udp_drops(sock.getsockname()[1]), 0)

