"""
End-to-end tests for C{gwsms smsc ...} and C{gwsms db ...}: the real parser
(gwsms.cli.main), a temporary config with a SQLite file, and for the live
state / reload paths a real control socket served by a fake controller.
"""

import io
import os
import shutil
import tempfile
from contextlib import redirect_stderr, redirect_stdout

from twisted.internet import defer, threads
from twisted.trial import unittest

from gwsms.cli import main
from gwsms.control import control_service
from gwsms.smpp.link import SessionType
from gwsms.store import migrate
from gwsms.store.database import open_database_sync
from gwsms.store.smsc import SmscStore

PASSWORD = "Pw9!xq"


def write_config(testcase, db_url=None, extra=""):
    base = tempfile.mkdtemp(prefix="gwsms-cli-")
    testcase.addCleanup(shutil.rmtree, base, True)
    db_url = db_url or "sqlite:" + os.path.join(base, "var", "gwsms.sqlite3")
    path = os.path.join(base, "gwsms.toml")
    with open(path, "w") as f:
        f.write(
            f'[database]\nurl = "{db_url}"\n'
            f'[sip]\ndomain = "example.com"\n{extra}'
            f'[control]\nsocket = "{os.path.join(base, "run", "gwsms.sock")}"\n'
        )
    return base, path, db_url, os.path.join(base, "run", "gwsms.sock")


def run_cli(config, *argv, stdin=None):
    """Run C{gwsms --config CONFIG argv...}; return (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    import sys

    old_stdin = sys.stdin
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main.main(["--config", config, *argv])
            except SystemExit as e:
                code = e.code
    finally:
        sys.stdin = old_stdin
    return code, out.getvalue(), err.getvalue()


ADD = ["smsc", "add", "s1", "--ip", "127.0.0.1", "--port", "2775",
       "--system-id", "gw", "--password", PASSWORD]


class CliSmscTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.base, self.config, self.url, self.socket = write_config(self)

    def cli(self, *argv, **kw):
        code, out, err = run_cli(self.config, *argv, **kw)
        self.assertNotIn(PASSWORD, out + err)
        return code, out, err

    def assertUsageError(self, result, needle):
        code, out, err = result
        self.assertEqual(code, 2, (out, err))
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn(needle, err)
        self.assertNotIn("Traceback", err)

    def stored(self, name):
        db = open_database_sync(self.url)
        self.addCleanup(db.close)
        self.successResultOf(migrate.upgrade(db))
        return self.successResultOf(SmscStore(db).get(name))

    def test_add_then_show_and_list(self):
        code, out, err = self.cli(*ADD, "--session-type", "rx", "--src-ton", "5",
                                  "--window", "20", "--max-rate", "7.5", "--tls",
                                  "--no-tls-verify", "--interface-version", "0x50",
                                  "--dc0-charset", "latin1", "--disabled")
        self.assertEqual(code, 0, err)
        self.assertIn("added smsc 's1'", out)
        self.assertIn("service not running", out)
        link = self.stored("s1")
        self.assertEqual(
            (link.session_type, link.src_ton, link.window, link.max_rate, link.tls,
             link.tls_verify, link.interface_version, link.dc0_charset, link.enabled,
             link.password),
            (SessionType.RECEIVER, 5, 20, 7.5, True, False, 0x50, "latin1", False, PASSWORD),
        )
        code, out, err = self.cli("smsc", "show", "s1")
        self.assertEqual(code, 0, err)
        self.assertIn("password               ***", out)
        self.assertIn("session_type           3 (receiver)", out)
        self.assertIn("(service not running)", out)
        code, out, err = self.cli("smsc", "list")
        self.assertEqual(code, 0, err)
        lines = out.splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "TYPE", "HOST:PORT", "SYSTEM_ID", "ENABLED", "STATE"])
        self.assertEqual(lines[1].split(), ["s1", "receiver", "127.0.0.1:2775", "gw", "no", "-"])
        self.assertEqual(lines[-1], "(service not running)")

    def test_message_options(self):
        """--coding, --concat, --max-parts on add and set; shown by show."""
        code, out, err = self.cli(*ADD, "--coding", "latin1", "--concat", "sar",
                                  "--max-parts", "4")
        self.assertEqual(code, 0, err)
        link = self.stored("s1")
        self.assertEqual((link.coding, link.concat, link.max_parts), ("latin1", "sar", 4))
        code, out, err = self.cli("smsc", "show", "s1")
        self.assertEqual(code, 0, err)
        shown = {line.split()[0]: line.split(None, 1)[1] for line in out.splitlines()
                 if len(line.split()) > 1}
        self.assertEqual((shown["coding"], shown["concat"], shown["max_parts"]),
                         ("latin1", "sar", "4"))
        code, out, err = self.cli("smsc", "set", "s1", "--coding", "ucs2", "--concat",
                                  "default", "--max-parts", "0")
        self.assertEqual(code, 0, err)
        link = self.stored("s1")
        self.assertEqual((link.coding, link.concat, link.max_parts), ("ucs2", "", 0))
        code, out, err = self.cli("smsc", "show", "s1")
        self.assertIn("default ([gateway] concat)", out)
        self.assertIn("0 ([gateway] max_parts)", out)
        self.assertUsageError(self.cli("smsc", "set", "s1", "--coding", "gsm"),
                              "invalid choice: 'gsm'")
        self.assertUsageError(self.cli("smsc", "set", "s1", "--concat", "udh32"),
                              "invalid concat 'udh32'")
        self.assertUsageError(self.cli("smsc", "set", "s1", "--max-parts", "256"),
                              "max parts 256 out of range 0-255")
        self.assertEqual(self.stored("s1").coding, "ucs2")

    def test_outbind_needs_no_port(self):
        code, out, err = self.cli("smsc", "add", "ob", "--ip", "10.0.0.1", "--system-id", "gw",
                                  "--password", "x", "--session-type", "outbind")
        self.assertEqual(code, 0, err)
        link = self.stored("ob")
        self.assertEqual((link.session_type, link.port), (SessionType.OUTBIND, 0))

    def test_password_from_stdin(self):
        argv = list(ADD)
        argv[argv.index(PASSWORD)] = "-"
        code, out, err = self.cli(*argv, stdin=PASSWORD + "\n")
        self.assertEqual(code, 0, err)
        self.assertEqual(self.stored("s1").password, PASSWORD)

    def test_bad_arguments_are_one_line_exit_2(self):
        self.assertUsageError(self.cli(*ADD, "--src-ton", "9"), "src_ton 9 is not a TON value")
        self.assertUsageError(self.cli(*ADD, "--session-type", "bogus"), "invalid session type 'bogus'")
        self.assertUsageError(self.cli(*ADD[:-2]), "missing required option(s): --password")
        port = ADD.index("2775")
        self.assertUsageError(self.cli(*ADD[:port], "70000", *ADD[port + 1:]), "port 70000 out of range")
        self.assertUsageError(self.cli(*ADD[:port], "x", *ADD[port + 1:]), "invalid integer 'x'")
        self.assertUsageError(self.cli(*ADD, "--dc0-charset", "ebcdic"), "invalid choice: 'ebcdic'")
        self.assertUsageError(self.cli(*ADD, "--max-rate", "nan"), "invalid number 'nan'")
        self.assertUsageError(self.cli(*ADD, "--password", "waytoolong"), "password longer than 8")
        # refused before the database was even opened
        self.assertFalse(os.path.exists(self.url.split(":", 1)[1]))
        self.assertIsNone(self.stored("s1"))

    def test_duplicate_and_unknown_names(self):
        self.assertEqual(self.cli(*ADD)[0], 0)
        self.assertUsageError(self.cli(*ADD), "smsc 's1' already exists")
        for argv in (("smsc", "show", "zz"), ("smsc", "rm", "zz"), ("smsc", "enable", "zz"),
                     ("smsc", "disable", "zz"), ("smsc", "set", "zz", "--window", "3")):
            self.assertUsageError(self.cli(*argv), "no smsc named 'zz'")

    def test_set_enable_disable_rm(self):
        self.assertEqual(self.cli(*ADD)[0], 0)
        code, out, err = self.cli("smsc", "set", "s1", "--window", "3", "--ip", "10.0.0.9",
                                  "--rename", "s2")
        self.assertEqual(code, 0, err)
        self.assertIn("updated smsc 's2'", out)
        link = self.stored("s2")
        self.assertEqual((link.window, link.ip, link.port), (3, "10.0.0.9", 2775))
        self.assertUsageError(self.cli("smsc", "set", "s2"), "nothing to change")
        self.assertUsageError(self.cli("smsc", "set", "s2", "--dst-npi", "2"), "dst_npi 2 is not an NPI value")
        self.assertEqual(self.cli("smsc", "disable", "s2")[0], 0)
        self.assertFalse(self.stored("s2").enabled)
        self.assertEqual(self.cli("smsc", "enable", "s2")[0], 0)
        self.assertTrue(self.stored("s2").enabled)
        code, out, err = self.cli("smsc", "rm", "s2")
        self.assertEqual(code, 0, err)
        self.assertIn("removed smsc 's2'", out)
        self.assertIsNone(self.stored("s2"))
        code, out, err = self.cli("smsc", "list")
        self.assertIn("no SMSC connections", out)

    def test_reload_without_service(self):
        code, out, err = self.cli("smsc", "reload")
        self.assertEqual(code, 1)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn("not running", err)

    def test_db_version_and_upgrade(self):
        code, out, err = self.cli("db", "version")
        self.assertEqual((code, out.split()[:3]), (0, ["schema", "version", "0"]), err)
        code, out, err = self.cli("db", "upgrade")
        self.assertEqual(code, 0, err)
        latest = migrate.latest_version()
        self.assertIn(f"schema version {latest} (upgraded from 0)", out)
        code, out, err = self.cli("db", "upgrade")
        self.assertIn(f"schema version {latest} (up to date)", out)
        code, out, err = self.cli("db", "version")
        self.assertEqual(out.strip(), f"schema version {latest}")

    def test_bad_database_url(self):
        _, config, _, _ = write_config(self, db_url="mysql://u:" + PASSWORD + "@127.0.0.1:1/db")
        code, out, err = run_cli(config, "smsc", "list")
        self.assertEqual(code, 1)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn("cannot open database mysql://u:***@127.0.0.1:1/db", err)
        self.assertNotIn(PASSWORD, err)

    def test_missing_config(self):
        code, out, err = run_cli(os.path.join(self.base, "nope.toml"), "smsc", "list")
        self.assertEqual(code, 2)
        self.assertIn("nope.toml", err)


class Controller:
    def __init__(self):
        self.reloads = 0

    def smsc_state(self):
        return [{"name": "s1", "session_type": 1, "state": "bound_trx", "host": "127.0.0.1",
                 "port": 2775}]

    def smsc_reload(self):
        self.reloads += 1
        return {"added": ["s1"], "removed": [], "changed": [], "unchanged": ["s0"]}


class CliWithServiceTests(unittest.TestCase):
    """The CLI runs in a thread (it blocks on the socket); the service on the reactor."""

    def setUp(self):
        from twisted.internet import reactor

        self.base, self.config, self.url, self.socket = write_config(self)
        self.controller = Controller()
        svc = control_service(reactor, self.socket, self.controller)
        svc.startService()
        self.addCleanup(svc.stopService)

    def cli(self, *argv):
        return threads.deferToThread(run_cli, self.config, *argv)

    @defer.inlineCallbacks
    def test_add_reloads_and_list_shows_state(self):
        code, out, err = yield self.cli(*ADD)
        self.assertEqual(code, 0, err)
        self.assertIn("service reloaded (added: s1)", out)
        self.assertEqual(self.controller.reloads, 1)
        code, out, err = yield self.cli("smsc", "list")
        self.assertEqual(code, 0, err)
        self.assertEqual(out.splitlines()[1].split()[-1], "bound_trx")
        self.assertNotIn("service not running", out)

    @defer.inlineCallbacks
    def test_reload_prints_diff(self):
        code, out, err = yield self.cli("smsc", "reload")
        self.assertEqual(code, 0, err)
        self.assertEqual(out.splitlines(), ["added: s1", "removed: -", "changed: -", "unchanged: s0"])


class CliMysqlTests(unittest.SynchronousTestCase):
    """The same commands against MariaDB, when GWSMS_TEST_MYSQL_URL is set."""

    from tests.mysql_helpers import SKIP_MYSQL

    if SKIP_MYSQL:
        skip = SKIP_MYSQL

    def test_add_list_show_rm(self):
        from tests.mysql_helpers import fresh_mysql_url

        url = fresh_mysql_url(self)
        _, config, _, _ = write_config(self, db_url=url)
        password = url.split("://", 1)[1].split("@")[0].split(":", 1)[1]
        outputs = []
        for argv, expected in (
            (ADD, 0), (ADD, 2), (("smsc", "list"), 0), (("smsc", "show", "s1"), 0),
            (("smsc", "rm", "s1"), 0), (("db", "version"), 0),
        ):
            code, out, err = run_cli(config, *argv)
            self.assertEqual(code, expected, (argv, out, err))
            outputs.append(out + err)
        self.assertIn("smsc 's1' already exists", outputs[1])
        self.assertEqual(outputs[2].splitlines()[1].split()[:3], ["s1", "transceiver", "127.0.0.1:2775"])
        self.assertIn("***", outputs[3])
        self.assertIn(f"schema version {migrate.latest_version()}", outputs[5])
        for text in outputs:
            self.assertNotIn(PASSWORD, text)
            self.assertNotIn(password, text)

    def test_message_options(self):
        from tests.mysql_helpers import fresh_mysql_url

        url = fresh_mysql_url(self)
        _, config, _, _ = write_config(self, db_url=url)
        self.assertEqual(run_cli(config, *ADD, "--coding", "ucs2", "--concat", "udh16",
                                 "--max-parts", "3")[0], 0)
        self.assertEqual(run_cli(config, "smsc", "set", "s1", "--concat", "payload")[0], 0)
        code, out, err = run_cli(config, "smsc", "show", "s1")
        self.assertEqual(code, 0, err)
        shown = {line.split()[0]: line.split(None, 1)[1] for line in out.splitlines()
                 if len(line.split()) > 1}
        self.assertEqual((shown["coding"], shown["concat"], shown["max_parts"]),
                         ("ucs2", "payload", "3"))
