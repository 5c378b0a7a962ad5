"""Tests for L{gwsms.tap} (the twistd plugin) and the plugin registration."""

from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from gwsms import tap


class OptionsTests(SynchronousTestCase):
    def test_bad_config_is_usage_error(self):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("[sip]\nt1 = -1\n")
        options = tap.Options()
        e = self.assertRaises(UsageError, options.parseOptions, ["--config", path])
        self.assertIn(path, str(e))
        self.assertIn("sip.t1", str(e))

    def test_missing_config(self):
        options = tap.Options()
        e = self.assertRaises(UsageError, options.parseOptions, ["--config", "/nope.toml"])
        self.assertIn("/nope.toml", str(e))

    def test_good_config(self):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write('[database]\nurl = "sqlite::memory:"\n')
        options = tap.Options()
        options.parseOptions(["-c", path])
        self.assertEqual(options["gwsms_config"].database.url, "sqlite::memory:")

    def test_unknown_option(self):
        self.assertRaises(UsageError, tap.Options().parseOptions, ["--bogus"])


class PluginTests(SynchronousTestCase):
    def test_plugin_registered(self):
        from twisted.application.service import IServiceMaker
        from twisted.plugin import getPlugins

        makers = {p.tapname: p for p in getPlugins(IServiceMaker)}
        self.assertIn("gwsms", makers)
        self.assertEqual(makers["gwsms"].options, tap.Options)
