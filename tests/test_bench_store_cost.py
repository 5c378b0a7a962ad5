"""
Tests for L{bench.store_cost}: it stores what it says with the lane's own
writes, and reports each stretch.
"""

import io
import json
import os
import sqlite3

from twisted.trial.unittest import SynchronousTestCase

from bench import store_cost


class RunTests(SynchronousTestCase):
    def run_cost(self, keys, count=120, batch=25, every=50):
        path = os.path.join(os.path.abspath(self.mktemp()))
        os.makedirs(path)
        out = io.StringIO()
        report = store_cost.run(os.path.join(path, "db.sqlite3"), count, batch, every, keys, out)
        conn = sqlite3.connect(os.path.join(path, "db.sqlite3"))
        self.addCleanup(conn.close)
        return report, out.getvalue(), conn

    def test_rows_and_report(self):
        report, text, conn = self.run_cost("random")
        self.assertEqual([line["messages"] for line in report], [50, 100, 120])
        self.assertEqual([json.loads(line) for line in text.splitlines()], report)
        for line in report:
            self.assertEqual(sorted(line), ["batch_us", "commit_us", "later_us", "messages"])
            self.assertGreaterEqual(min(line["batch_us"], line["later_us"], line["commit_us"]), 0)
        states = dict(conn.execute(
            "SELECT state, COUNT(*) FROM messages GROUP BY state").fetchall())
        # every batch but the last is marked delivered by the next one
        self.assertEqual(states, {"delivered": 100, "queued": 20})
        self.assertEqual(conn.execute("SELECT COUNT(DISTINCT dedup_key) FROM message_dedup")
                         .fetchone()[0], 120)

    def test_key_modes(self):
        _report, _text, conn = self.run_cost("none", count=30)
        self.assertEqual(conn.execute("SELECT COUNT(*) FROM message_dedup").fetchone()[0], 0)
        self.assertEqual(conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0], 30)
        _report, _text, conn = self.run_cost("time-ordered", count=30)
        keys = [k for (k,) in conn.execute("SELECT dedup_key FROM message_dedup ORDER BY rowid")]
        self.assertEqual(len(set(keys)), 30)
        self.assertEqual(keys, sorted(keys, key=lambda k: k[:12]))

    def test_bad_arguments(self):
        with self.assertRaises(SystemExit):
            store_cost.main(["--count", "0"])
