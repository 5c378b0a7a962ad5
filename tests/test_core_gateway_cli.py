"""
Tests for C{gwsms message list|show} (L{gwsms.cli.message}).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from gwsms.store import migrate
from gwsms.store.batch import BatchWriter
from gwsms.store.database import open_database_sync
from gwsms.store.messages import MessageStore
from tests.test_cli_smsc import run_cli, write_config


class MessageCliTests(SynchronousTestCase):
    def setUp(self):
        _base, self.config, url, _sock = write_config(self)
        db = open_database_sync(url)
        self.addCleanup(db.close)
        self.successResultOf(migrate.upgrade(db))

        class Now:
            def callLater(self, delay, fn, *a):
                fn(*a)

        store = MessageStore(db, BatchWriter(db, Now()))
        self.mt, _ = self.successResultOf(store.add(
            dict(direction="mt", source_addr="4930123", dest_addr="4915112345678",
                 body="hello there", parts_total=2, smsc="smsc1"), 1000.0))
        self.successResultOf(store.part_submitted(self.mt, 1, "smsc1", "abc", 1001.0))
        self.successResultOf(store.update(self.mt, 1001.5, "retry", "ESME_RTHROTTLED",
                                          attempts=1))
        self.mo, _ = self.successResultOf(store.add(
            dict(direction="mo", state="queued", source_addr="4915", dest_addr="4930",
                 body="incoming"), 1002.0))
        self.successResultOf(store.update(self.mo, 1003.0, "failed", "sip 404", state="failed"))

    def test_list(self):
        code, out, err = run_cli(self.config, "message", "list")
        self.assertEqual((code, err), (0, ""))
        lines = out.splitlines()
        self.assertTrue(lines[0].startswith("ID"))
        self.assertIn("incoming", lines[1])
        self.assertIn("hello there", lines[2])
        self.assertIn("1/2", lines[2])

    def test_list_filters(self):
        code, out, _ = run_cli(self.config, "message", "list", "--state", "failed")
        self.assertEqual(code, 0)
        self.assertIn("incoming", out)
        self.assertNotIn("hello", out)
        code, out, _ = run_cli(self.config, "message", "list", "--direction", "mt", "--limit", "1")
        self.assertIn("hello", out)
        self.assertNotIn("incoming", out)
        code, out, _ = run_cli(self.config, "message", "list", "--state", "expired")
        self.assertEqual((code, out.strip()), (0, "no messages"))

    def test_show(self):
        code, out, err = run_cli(self.config, "message", "show", str(self.mt))
        self.assertEqual((code, err), (0, ""))
        self.assertIn("hello there", out)
        self.assertIn("abc", out)  # part 1's SMSC message id
        self.assertIn("ESME_RTHROTTLED", out)  # history

    def test_errors(self):
        code, _, err = run_cli(self.config, "message", "show", "999")
        self.assertEqual(code, 1)
        self.assertIn("no message with id 999", err)
        self.assertEqual(len(err.strip().splitlines()), 1)
        code, _, err = run_cli(self.config, "message", "show", "x1")
        self.assertEqual(code, 2)
        code, _, err = run_cli(self.config, "message", "list", "--state", "bogus")
        self.assertEqual(code, 2)
        code, _, err = run_cli(self.config, "message", "list", "--limit", "0")
        self.assertEqual(code, 2)
