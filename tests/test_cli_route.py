"""
End-to-end tests for C{gwsms route ...}: the real parser (gwsms.cli.main), a
temporary config with a SQLite file, and for the reload paths a real control
socket served by fake controllers.
"""

import os

from twisted.internet import defer, threads
from twisted.trial import unittest

from gwsms.core.routing import Route
from gwsms.store import migrate
from gwsms.store.database import open_database_sync
from gwsms.store.routes import RouteStore
from tests.test_cli_smsc import run_cli, write_config

SMSC = ["smsc", "add", "de", "--ip", "127.0.0.1", "--port", "2775",
        "--system-id", "gw", "--password", "pw"]


class CliRouteTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.base, self.config, self.url, self.socket = write_config(self)

    def cli(self, *argv):
        code, out, err = run_cli(self.config, *argv)
        self.assertNotIn("Traceback", out + err)
        return code, out, err

    def assertUsageError(self, result, needle):
        code, out, err = result
        self.assertEqual(code, 2, (out, err))
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn(needle, err)

    def stored(self, direction=None):
        db = open_database_sync(self.url)
        self.addCleanup(db.close)
        self.successResultOf(migrate.upgrade(db))
        return self.successResultOf(RouteStore(db).list(direction))

    def test_add_mt_with_known_smsc(self):
        self.assertEqual(self.cli(*SMSC)[0], 0)
        code, out, err = self.cli("route", "add", "--prefix", "+49", "--smsc", "de",
                                  "--priority", "5", "--source-prefix", "44")
        self.assertEqual(code, 0, err)
        self.assertEqual(err, "")  # no warning: the smsc exists
        self.assertIn("added mt route 49* from 44* -> smsc 'de' (id 1, priority 5)", out)
        self.assertIn("service not running: the change applies when it starts", out)
        self.assertEqual(self.stored(), [Route(1, "mt", "49", "44", "de", "", 5)])

    def test_add_mt_unknown_smsc_warns_but_saves(self):
        code, out, err = self.cli("route", "add", "--prefix", "", "--smsc", "later")
        self.assertEqual(code, 0, err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn("warning: no smsc named 'later' yet", err)
        self.assertEqual(self.stored("mt"), [Route(1, "mt", "", "", "later", "", 0)])

    def test_add_mo(self):
        code, out, err = self.cli("route", "add", "--direction", "mo", "--prefix", "4930",
                                  "--sip-uri", "sip:pbx.example.com;transport=tcp",
                                  "--priority", "-2")
        self.assertEqual(code, 0, err)
        self.assertEqual(err, "")
        self.assertIn("added mo route 4930* -> sip:pbx.example.com;transport=tcp", out)
        self.assertEqual(self.stored("mo"),
                         [Route(1, "mo", "4930", "", "", "sip:pbx.example.com;transport=tcp", -2)])

    def test_registered_delivery(self):
        code, out, err = self.cli("route", "add", "--prefix", "49", "--smsc", "de",
                                  "--registered-delivery", "1")
        self.assertEqual(code, 0, err)
        self.assertIn("(id 1, priority 0, registered_delivery 1)", out)
        self.assertEqual(self.cli("route", "add", "--prefix", "", "--smsc", "de")[0], 0)
        [default, de] = self.stored()
        self.assertEqual((default.prefix, default.registered_delivery), ("", None))
        self.assertEqual((de.prefix, de.registered_delivery), ("49", 1))
        code, out, err = self.cli("route", "list")
        self.assertEqual([line.split()[-1] for line in out.splitlines()],
                         ["REG_DELIVERY", "-", "1"])
        self.assertUsageError(self.cli("route", "add", "--prefix", "4", "--smsc", "de",
                                       "--registered-delivery", "32"),
                              "registered delivery 32 out of range 0-31")
        self.assertUsageError(self.cli("route", "add", "--prefix", "4", "--smsc", "de",
                                       "--registered-delivery", "x"), "invalid integer 'x'")
        self.assertUsageError(self.cli("route", "add", "--direction", "mo", "--prefix", "4",
                                       "--sip-uri", "sip:pbx", "--registered-delivery", "1"),
                              "an mo route takes no registered_delivery")
        self.assertEqual(len(self.stored()), 2)

    def test_bad_arguments_are_one_line_exit_2(self):
        add = ("route", "add")
        self.assertUsageError(self.cli(*add, "--smsc", "de"), "missing required option --prefix")
        self.assertUsageError(self.cli(*add, "--prefix", "49"), "an mt route needs an smsc")
        self.assertUsageError(self.cli(*add, "--prefix", "49", "--smsc", "de", "--sip-uri", "sip:h"),
                              "an mt route takes no sip_uri")
        self.assertUsageError(self.cli(*add, "--direction", "mo", "--prefix", "49"),
                              "an mo route needs a sip_uri")
        self.assertUsageError(self.cli(*add, "--direction", "mo", "--prefix", "49", "--sip-uri",
                                       "mailto:a@b"), "'mailto:a@b' is not a sip: or sips: URI")
        self.assertUsageError(self.cli(*add, "--direction", "up", "--prefix", "49"),
                              "invalid choice: 'up'")
        self.assertUsageError(self.cli(*add, "--prefix", "49-1", "--smsc", "de"),
                              "prefix '49-1' may only hold digits and letters")
        self.assertUsageError(self.cli(*add, "--prefix", "1" * 40, "--smsc", "de"),
                              "longer than 32 characters")
        self.assertUsageError(self.cli(*add, "--prefix", "49", "--smsc", "de", "--priority", "hi"),
                              "invalid integer 'hi'")
        self.assertUsageError(self.cli("route", "rm", "x"), "invalid integer 'x'")
        self.assertUsageError(self.cli("route", "rm", "0"), "invalid route id '0'")
        self.assertUsageError(self.cli("route", "list", "--direction", "in"), "invalid choice")
        # refused before the database was even opened
        self.assertFalse(os.path.exists(self.url.split(":", 1)[1]))

    def test_duplicate_is_exit_2(self):
        self.assertEqual(self.cli("route", "add", "--prefix", "49", "--smsc", "de")[0], 0)
        self.assertUsageError(self.cli("route", "add", "--prefix", "+49", "--smsc", "de",
                                       "--priority", "3"),
                              "mt route 49* -> smsc 'de' already exists (id 1)")
        self.assertEqual(len(self.stored()), 1)

    def test_list_and_rm(self):
        code, out, err = self.cli("route", "list")
        self.assertEqual((code, out.strip()),
                         (0, "no routes (add one with: gwsms route add --prefix P --smsc NAME)"))
        for argv in (("--prefix", "", "--smsc", "default", "--priority", "9"),
                     ("--prefix", "49", "--smsc", "de"),
                     ("--direction", "mo", "--prefix", "", "--sip-uri", "sip:pbx", "--smsc", "de")):
            self.assertEqual(self.cli("route", "add", *argv)[0], 0)
        code, out, err = self.cli("route", "list")
        self.assertEqual(code, 0, err)
        self.assertEqual([line.split() for line in out.splitlines()], [
            ["ID", "DIR", "PREFIX", "SOURCE", "SMSC", "SIP_URI", "PRIORITY", "REG_DELIVERY"],
            ["3", "mo", "*", "*", "de", "sip:pbx", "0", "-"],
            ["1", "mt", "*", "*", "default", "-", "9", "-"],
            ["2", "mt", "49*", "*", "de", "-", "0", "-"],
        ])
        code, out, err = self.cli("route", "list", "--direction", "mo")
        self.assertEqual(len(out.splitlines()), 2)
        code, out, err = self.cli("route", "rm", "2")
        self.assertEqual(code, 0, err)
        self.assertIn("removed mt route 49* -> smsc 'de' (id 2)", out)
        self.assertIn("service not running", out)
        self.assertEqual([r.id for r in self.stored()], [3, 1])
        self.assertUsageError(self.cli("route", "rm", "2"), "no route with id 2")
        code, out, err = self.cli("route", "list", "--direction", "mt")
        self.assertEqual(out.splitlines()[1].split()[:5], ["1", "mt", "*", "*", "default"])

    def test_list_warns_about_invalid_rows(self):
        self.assertEqual(self.cli("route", "add", "--prefix", "1", "--smsc", "us")[0], 0)
        db = open_database_sync(self.url)
        self.successResultOf(db.run_operation(
            "INSERT INTO routes (direction, prefix, smsc, sip_uri, priority, created)"
            " VALUES ('mt', '4 9', 'x', '', 0, 0)"))
        db.close()
        code, out, err = self.cli("route", "list")
        self.assertEqual(code, 0, err)
        self.assertIn("warning: routes row id=2: route: prefix '4 9'", err)
        self.assertEqual(len(out.splitlines()), 2)
        code, out, err = self.cli("route", "rm", "2")  # an invalid row can still be removed
        self.assertEqual(code, 0, err)
        self.assertIn("removed route (id 2)", out)

    def test_route_test_command(self):
        for argv in (("--prefix", "", "--smsc", "default"),
                     ("--prefix", "49", "--smsc", "de", "--priority", "1"),
                     ("--prefix", "49", "--smsc", "de-backup", "--priority", "2"),
                     ("--direction", "mo", "--prefix", "49", "--sip-uri", "sip:de-pbx",
                      "--smsc", "de")):
            self.assertEqual(self.cli("route", "add", *argv)[0], 0)
        code, out, err = self.cli("route", "test", "+4930123")
        self.assertEqual(code, 0, err)
        self.assertIn("+4930123: try de, de-backup, default", out)
        self.assertIn("registered_delivery: the [gateway] setting", out)
        self.assertEqual(self.cli("route", "add", "--prefix", "4930", "--smsc", "de",
                                  "--registered-delivery", "2")[0], 0)
        code, out, err = self.cli("route", "test", "+4930123")
        self.assertEqual(out.splitlines()[1], "registered_delivery 2 (route id 5)")
        self.assertEqual(self.cli("route", "rm", "5")[0], 0)
        code, out, err = self.cli("route", "test", "4930123", "--direction", "mo", "--smsc", "de")
        self.assertEqual((code, out.strip()), (0, "4930123: sip:de-pbx"))
        code, out, err = self.cli("route", "test", "4930123", "--direction", "mo", "--smsc", "fr")
        self.assertEqual(code, 1)
        self.assertIn("no mo route for 4930123", out)
        self.assertEqual(self.cli("route", "rm", "1")[0], 0)
        code, out, err = self.cli("route", "test", "3312")
        self.assertEqual(code, 1)
        self.assertIn("no route for 3312 (the gateway answers 404)", out)

    def test_reload_without_service(self):
        code, out, err = self.cli("route", "reload")
        self.assertEqual(code, 1)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn("not running", err)


class Controller:
    control_commands = ("smsc_reload", "routes_reload")

    def __init__(self):
        self.reloads = 0

    def routes_reload(self):
        self.reloads += 1
        return {"mt": 2, "mo": 1}


class OldController:
    """A service from before routing: does not know routes_reload."""

    def smsc_reload(self):
        return {}


class BrokenController:
    def routes_reload(self):
        raise ValueError("routes table unreadable")


class CliWithServiceTests(unittest.TestCase):
    """The CLI runs in a thread (it blocks on the socket); the service on the reactor."""

    def serve(self, controller):
        from twisted.internet import reactor

        from gwsms.control import control_service

        self.base, self.config, self.url, self.socket = write_config(self)
        svc = control_service(reactor, self.socket, controller)
        svc.startService()
        self.addCleanup(svc.stopService)

    def cli(self, *argv):
        return threads.deferToThread(run_cli, self.config, *argv)

    @defer.inlineCallbacks
    def test_add_and_rm_reload(self):
        controller = Controller()
        self.serve(controller)
        code, out, err = yield self.cli("route", "add", "--prefix", "49", "--smsc", "de")
        self.assertEqual(code, 0, err)
        self.assertIn("service reloaded routes (mo: 1; mt: 2)", out)
        self.assertEqual(controller.reloads, 1)
        code, out, err = yield self.cli("route", "rm", "1")
        self.assertEqual(code, 0, err)
        self.assertIn("service reloaded routes", out)
        code, out, err = yield self.cli("route", "reload")
        self.assertEqual((code, out.strip()), (0, "service reloaded routes (mo: 1; mt: 2)"))
        self.assertEqual(controller.reloads, 3)

    @defer.inlineCallbacks
    def test_older_service_is_not_an_error(self):
        self.serve(OldController())
        code, out, err = yield self.cli("route", "add", "--prefix", "49", "--smsc", "de")
        self.assertEqual(code, 0, err)
        self.assertIn("does not support routes_reload (older gwsms?)", out)
        self.assertIn("applies when it is restarted", out)
        code, out, err = yield self.cli("route", "reload")
        self.assertEqual(code, 1)
        self.assertIn("does not support routes_reload", err)

    @defer.inlineCallbacks
    def test_failed_reload_is_exit_1_but_saved(self):
        self.serve(BrokenController())
        code, out, err = yield self.cli("route", "add", "--prefix", "49", "--smsc", "de")
        self.assertEqual(code, 1)
        self.assertIn("added mt route 49*", out)
        self.assertEqual(len(err.strip().splitlines()), 2, err)  # smsc warning + the failure
        self.assertIn("saved, but the running service did not reload its routes: "
                      "routes table unreadable", err)


class CliRouteMysqlTests(unittest.SynchronousTestCase):
    """The same commands against MariaDB, when GWSMS_TEST_MYSQL_URL is set."""

    from tests.mysql_helpers import SKIP_MYSQL

    if SKIP_MYSQL:
        skip = SKIP_MYSQL

    def test_add_list_rm(self):
        from tests.mysql_helpers import fresh_mysql_url

        url = fresh_mysql_url(self)
        _, config, _, _ = write_config(self, db_url=url)
        password = url.split("://", 1)[1].split("@")[0].split(":", 1)[1]
        add = ("route", "add", "--prefix", "49", "--smsc", "de")
        outputs = []
        for argv, expected in (
            (add, 0), (add, 2),
            (("route", "add", "--direction", "mo", "--prefix", "", "--sip-uri", "sip:pbx"), 0),
            (("route", "list"), 0), (("route", "rm", "1"), 0), (("route", "rm", "1"), 2),
        ):
            code, out, err = run_cli(config, *argv)
            self.assertEqual(code, expected, (argv, out, err))
            outputs.append(out + err)
        self.assertIn("already exists (id 1)", outputs[1])
        self.assertEqual([line.split()[:3] for line in outputs[3].splitlines()[1:]],
                         [["3", "mo", "*"], ["1", "mt", "49*"]])
        self.assertIn("no route with id 1", outputs[5])
        for text in outputs:
            self.assertNotIn(password, text)
