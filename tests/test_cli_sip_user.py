"""End-to-end tests for C{gwsms sip-user ...} against a temporary SQLite config."""

import hashlib

from twisted.trial import unittest

from gwsms.store.database import open_database_sync
from gwsms.store.sip import SipUserStore
from tests.test_cli_smsc import run_cli, write_config

PASSWORD = "Zq7-secret"


class CliSipUserTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.base, self.config, self.url, _ = write_config(self)

    def cli(self, *argv, config=None, **kw):
        code, out, err = run_cli(config or self.config, *argv, **kw)
        self.assertNotIn(PASSWORD, out + err)
        self.assertNotIn("Traceback", err)
        return code, out, err

    def stored(self, username, realm):
        db = open_database_sync(self.url)
        self.addCleanup(db.close)
        return self.successResultOf(SipUserStore(db).get(username, realm))

    def test_add_default_realm_is_domain(self):
        code, out, err = self.cli("sip-user", "add", "alice", "--password", PASSWORD)
        self.assertEqual(code, 0, err)
        self.assertIn("added sip user 'alice' in realm 'example.com'", out)
        user = self.stored("alice", "example.com")
        self.assertEqual(user.ha1_md5, hashlib.md5(f"alice:example.com:{PASSWORD}".encode()).hexdigest())
        self.assertEqual(user.ha1_sha256,
                         hashlib.sha256(f"alice:example.com:{PASSWORD}".encode()).hexdigest())

    def test_realm_from_config_and_option(self):
        _, config, url, _ = write_config(self, extra='realm = "auth.example"\n')
        self.url = url
        self.assertEqual(self.cli("sip-user", "add", "bob", "--password", PASSWORD, config=config)[0], 0)
        self.assertIsNotNone(self.stored("bob", "auth.example"))
        self.assertEqual(self.cli("sip-user", "add", "bob", "--password", "-", "--realm", "r2",
                                  config=config, stdin=PASSWORD + "\n")[0], 0)
        self.assertEqual(self.stored("bob", "r2").ha1_md5,
                         hashlib.md5(f"bob:r2:{PASSWORD}".encode()).hexdigest())

    def test_list_and_rm(self):
        code, out, err = self.cli("sip-user", "list")
        self.assertIn("no SIP users", out)
        self.cli("sip-user", "add", "carol", "--password", PASSWORD)
        self.cli("sip-user", "add", "alice", "--password", PASSWORD, "--realm", "other")
        code, out, err = self.cli("sip-user", "list")
        self.assertEqual(code, 0, err)
        self.assertEqual([line.split() for line in out.splitlines()],
                         [["USER", "REALM"], ["carol", "example.com"], ["alice", "other"]])
        user = self.stored("carol", "example.com")
        self.assertNotIn(user.ha1_md5, out)
        code, out, err = self.cli("sip-user", "rm", "alice")
        self.assertEqual(code, 2)
        self.assertIn("no sip user 'alice' in realm 'example.com'", err)
        code, out, err = self.cli("sip-user", "rm", "alice", "--realm", "other")
        self.assertEqual(code, 0, err)
        self.assertIsNone(self.stored("alice", "other"))

    def test_errors(self):
        self.cli("sip-user", "add", "dave", "--password", PASSWORD)
        code, out, err = self.cli("sip-user", "add", "dave", "--password", PASSWORD)
        self.assertEqual(code, 2)
        self.assertEqual(err.strip(), "gwsms: error: sip user 'dave' already exists in realm 'example.com'")
        code, out, err = self.cli("sip-user", "add", "dave")
        self.assertEqual(code, 2)
        self.assertIn("--password", err)
        code, out, err = self.cli("sip-user", "add", "a:b", "--password", PASSWORD)
        self.assertEqual(code, 2)
        self.assertIn("must not contain ':'", err)
