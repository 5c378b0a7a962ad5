"""
Tests for L{bench.micro}: reading the micro-benchmark scripts' JSON and
the report lines (no process is started).
"""

import json

from twisted.trial.unittest import SynchronousTestCase

from bench import micro


class ParseOutputTests(SynchronousTestCase):
    def test_ops(self):
        out = json.dumps({"benchmark": "smpp_codec", "ops_per_second": {"submit_sm encode": 250157,
                                                                         "parse": 6.5e4}})
        self.assertEqual(micro.parse_script_output("codec.py", out),
                         {"submit_sm encode": 250157, "parse": 65000.0})

    def test_not_json(self):
        e = self.assertRaises(ValueError, micro.parse_script_output, "text.py", "Traceback ...")
        self.assertIn("text.py printed no JSON", str(e))

    def test_no_ops(self):
        for out in ('{"ops": 1}', '[1, 2]', '{"ops_per_second": {"x": "fast"}}'):
            e = self.assertRaises(ValueError, micro.parse_script_output, "codec.py", out)
            self.assertIn("ops_per_second", str(e))


class FormatTests(SynchronousTestCase):
    def test_lines(self):
        text = micro.format_micro({
            "codec": {"ops_per_second": {"submit_sm encode": 250157}},
            "store": {"error": "OperationalError: disk I/O error"},
        })
        lines = text.splitlines()
        self.assertEqual(len(lines), 2)
        self.assertIn("250,157 ops/s", lines[0])
        self.assertIn("ERROR OperationalError: disk I/O error", lines[1])

    def test_missing_script(self):
        self.assertEqual(micro.run_script("nonexistent.py", quick=True),
                         {"error": "nonexistent.py does not exist"})
