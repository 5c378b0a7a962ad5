"""Tests for L{gwsms.cli.main}: argument errors are one line, exit status 2."""

import io
from contextlib import redirect_stderr, redirect_stdout

from twisted.trial.unittest import SynchronousTestCase

from gwsms.cli import main


class MainTests(SynchronousTestCase):
    def run_main(self, argv):
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main.main(argv)
            except SystemExit as e:
                code = e.code
        return code, out.getvalue(), err.getvalue()

    def test_no_command(self):
        code, out, err = self.run_main([])
        self.assertEqual(code, 2)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn("required", err)

    def test_unknown_command(self):
        code, out, err = self.run_main(["frobnicate"])
        self.assertEqual(code, 2)
        self.assertIn("frobnicate", err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)

    def test_version(self):
        from gwsms import __version__

        code, out, err = self.run_main(["--version"])
        self.assertEqual(code, 0)
        self.assertIn(__version__, out)

    def test_bad_config_file(self):
        """A command that needs the config names the file in one line."""
        parser = main.build_parser()
        names = parser._subparsers._group_actions[0].choices
        if "db" not in names:
            raise self.skipTest("db command not available")
        code, out, err = self.run_main(["--config", "/nonexistent.toml", "db", "version"])
        self.assertEqual(code, 2)
        self.assertIn("/nonexistent.toml", err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
