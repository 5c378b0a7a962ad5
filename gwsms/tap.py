# -*- test-case-name: tests.test_tap -*-
"""
The twistd plugin body: C{twistd -n gwsms --config etc/gwsms.toml}.

C{Options} loads and checks the configuration (a bad file or key stops
twistd with one line naming both); C{makeService} assembles the service tree.
This is the only module that imports the global reactor.
"""

from __future__ import annotations

from twisted.python import usage

from gwsms.config import ConfigError, load


class Options(usage.Options):
    synopsis = "[--config FILE]"
    longdesc = "Run the gwsms SIP <-> SMPP gateway."
    optParameters = [
        ["config", "c", "etc/gwsms.toml", "configuration file (TOML)"],
    ]

    def postOptions(self) -> None:
        try:
            self["gwsms_config"] = load(self["config"])
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None


def makeService(options: Options):
    from twisted.internet import reactor

    from gwsms.service import GatewayService

    return GatewayService(options["gwsms_config"], reactor)
