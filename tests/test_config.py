"""Tests for L{gwsms.config}."""

import os

from twisted.trial.unittest import SynchronousTestCase

from gwsms import config


class LoadTests(SynchronousTestCase):
    def write(self, text: str) -> str:
        path = self.mktemp() + ".toml"
        with open(path, "w") as f:
            f.write(text)
        return path

    def assertConfigError(self, text: str, *fragments: str) -> str:
        path = self.write(text)
        e = self.assertRaises(config.ConfigError, config.load, path)
        message = str(e)
        self.assertIn(path, message)
        for fragment in fragments:
            self.assertIn(fragment, message)
        self.assertNotIn("\n", message)
        return message

    def test_shipped_example(self):
        """etc/gwsms.toml loads and matches the built-in defaults."""
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        loaded = config.load(os.path.join(here, "etc", "gwsms.toml"))
        self.assertEqual(loaded.database, config.DatabaseConfig())
        self.assertEqual(loaded.smpp, config.SmppConfig())
        self.assertEqual(loaded.sip, config.SipConfig())
        self.assertEqual(loaded.control, config.ControlConfig())
        self.assertEqual(loaded.gateway, config.GatewayConfig())

    def test_empty_file_defaults(self):
        loaded = config.load(self.write(""))
        self.assertEqual(loaded.database.url, "sqlite:var/gwsms.sqlite3")
        self.assertEqual(loaded.sip.t1, 0.5)
        self.assertEqual(loaded.smpp.max_command_length, 65536)

    def test_values_typed(self):
        loaded = config.load(self.write(
            '[database]\nurl = "mysql://u:p@127.0.0.1:3306/gw"\n'
            '[sip]\nlisten = "udp:127.0.0.1:0"\nt1 = 1\ntrusted = ["10.0.0.0/8"]\n'
            '[smpp]\noutbind_listen = ["tcp:2776"]\n'
        ))
        self.assertEqual(loaded.sip.listen, ("udp:127.0.0.1:0",))
        self.assertIsInstance(loaded.sip.t1, float)
        self.assertEqual(loaded.sip.trusted, ("10.0.0.0/8",))
        self.assertEqual(loaded.smpp.outbind_listen, ("tcp:2776",))

    def test_frozen(self):
        loaded = config.load(self.write(""))
        self.assertRaises(AttributeError, setattr, loaded.sip, "t1", 2.0)

    def test_missing_file(self):
        e = self.assertRaises(config.ConfigError, config.load, "/nonexistent/gwsms.toml")
        self.assertEqual(str(e), "/nonexistent/gwsms.toml: no such configuration file")

    def test_syntax_error(self):
        self.assertConfigError("[sip\n", "not valid TOML")

    def test_unknown_section(self):
        self.assertConfigError("[smsc]\nx = 1\n", "unknown section [smsc]")

    def test_unknown_key(self):
        self.assertConfigError("[sip]\nlistn = []\n", "unknown key sip.listn")

    def test_wrong_type(self):
        self.assertConfigError('[sip]\nt1 = "fast"\n', "sip.t1", "expected a number")
        self.assertConfigError("[sip]\nregistrar = 1\n", "sip.registrar", "true or false")
        self.assertConfigError("[smpp]\nmax_command_length = 1.5\n", "smpp.max_command_length")
        self.assertConfigError("[sip]\nlisten = [1]\n", "sip.listen", "list of strings")

    def test_bad_values(self):
        self.assertConfigError('[database]\nurl = "postgres://x"\n', "database.url")
        self.assertConfigError('[sip]\nlisten = ["sctp:1.2.3.4:5060"]\n', "sip.listen")
        self.assertConfigError('[sip]\nlisten = ["udp:1.2.3.4:99999"]\n', "sip.listen", "port")
        self.assertConfigError('[sip]\nlisten = ["tls:1.2.3.4:5061"]\n', "sip.tls_cert")
        self.assertConfigError('[sip]\ntrusted = ["10.0.0.300/8"]\n', "sip.trusted")
        self.assertConfigError('[sip]\noutbound_uri = "http://x"\n', "sip.outbound_uri")
        self.assertConfigError("[sip]\nt1 = 5.0\nt2 = 4.0\n", "sip.t2")
        self.assertConfigError("[smpp]\nreconnect_initial = 0\n", "smpp.reconnect_initial")
        self.assertConfigError("[smpp]\nreconnect_jitter = 1.5\n", "smpp.reconnect_jitter")
        self.assertConfigError('[smpp]\ntls_ca = "/nonexistent.pem"\n', "smpp.tls_ca")
        self.assertConfigError("[sip]\nmin_expires = 0\n", "sip.default_expires")

    def test_secret_not_in_repr(self):
        loaded = config.parse({"sip": {"outbound_password": "s3cret"}})
        self.assertNotIn("s3cret", repr(loaded))

    def test_database_password_not_in_repr(self):
        loaded = config.parse({"database": {"url": "mysql://gw:s3cret@db:3306/gw"}})
        self.assertNotIn("s3cret", repr(loaded))
        self.assertIn("gw:***@db:3306/gw", repr(loaded))


class GatewayConfigTests(SynchronousTestCase):
    write = LoadTests.write
    assertConfigError = LoadTests.assertConfigError

    def test_gateway_defaults(self):
        gateway = config.load(self.write("")).gateway
        self.assertEqual(gateway.sip_reply, "submitted")
        self.assertTrue(gateway.queue_when_down)
        self.assertEqual(gateway.concat, "udh8")
        self.assertEqual(gateway.receipts, "none")
        self.assertEqual(gateway.retention, 30 * 86400.0)

    def test_gateway_retention(self):
        for text, value in (("0", 0.0), ("3600", 3600.0), ("1.5", 1.5)):
            gateway = config.load(self.write(f"[gateway]\nretention = {text}\n")).gateway
            self.assertEqual(gateway.retention, value)
            self.assertIsInstance(gateway.retention, float)
        self.assertConfigError("[gateway]\nretention = -1\n", "gateway.retention")
        self.assertConfigError('[gateway]\nretention = "30d"\n', "gateway.retention")

    def test_gateway_values(self):
        gateway = config.load(self.write(
            '[gateway]\nsip_reply = "accepted"\nqueue_when_down = false\nmax_parts = 3\n'
            'concat = "sar"\nmo_ttl = 60\nreceipts = "text"\nbinary = "octet-stream"\n'
            'reassembly_partial = "drop"\nbatch_size = 50\ncommit_interval = 0.002\n'
        )).gateway
        self.assertEqual((gateway.sip_reply, gateway.queue_when_down, gateway.max_parts),
                         ("accepted", False, 3))
        self.assertEqual((gateway.concat, gateway.receipts, gateway.binary),
                         ("sar", "text", "octet-stream"))
        self.assertIsInstance(gateway.mo_ttl, float)
        self.assertEqual((gateway.batch_size, gateway.commit_interval), (50, 0.002))

    def test_gateway_bad_values(self):
        self.assertConfigError('[gateway]\nsip_reply = "later"\n', "gateway.sip_reply")
        self.assertConfigError('[gateway]\nconcat = "udh7"\n', "gateway.concat")
        self.assertConfigError("[gateway]\nmax_parts = 0\n", "gateway.max_parts")
        self.assertConfigError("[gateway]\nmax_parts = 256\n", "gateway.max_parts")
        self.assertConfigError("[gateway]\nmt_ttl = 0\n", "gateway.mt_ttl")
        self.assertConfigError("[gateway]\nretry_initial = 10\nretry_max = 5\n",
                               "gateway.retry_max")
        self.assertConfigError('[gateway]\nreceipts = "imdn"\n', "gateway.receipts")
        self.assertConfigError("[gateway]\nbatch_size = 0\n", "gateway.batch_size")
        self.assertConfigError("[gateway]\nregistered_delivery = 99\n",
                               "gateway.registered_delivery")
        self.assertConfigError("[gateway]\nnope = 1\n", "gateway.nope")
        self.assertConfigError("[gateway]\nmax_pending = 0\n", "gateway.max_pending")
        self.assertConfigError("[gateway]\nmax_lag = -0.1\n", "gateway.max_lag")
        self.assertConfigError("[gateway]\nmax_lag = 61\n", "gateway.max_lag")
        self.assertConfigError('[gateway]\nmax_lag = "fast"\n', "gateway.max_lag")

    def test_gateway_max_lag(self):
        self.assertEqual(config.parse({}).gateway.max_lag, 0.0)  # off by default
        gateway = config.parse({"gateway": {"max_lag": 1}}).gateway
        self.assertEqual(gateway.max_lag, 1.0)
        self.assertIsInstance(gateway.max_lag, float)
        self.assertEqual(config.parse({"gateway": {"max_lag": 0.25}}).gateway.max_lag, 0.25)


class DigestAlgorithmsTests(SynchronousTestCase):
    def test_default_sha256_first(self):
        self.assertEqual(config.parse({}).sip.digest_algorithms, ("SHA-256", "MD5"))

    def test_md5_only(self):
        loaded = config.parse({"sip": {"digest_algorithms": ["MD5"]}})
        self.assertEqual(loaded.sip.digest_algorithms, ("MD5",))

    def test_unknown_algorithm(self):
        e = self.assertRaises(
            config.ConfigError, config.parse, {"sip": {"digest_algorithms": ["SHA-1"]}}, "f.toml"
        )
        self.assertIn("sip.digest_algorithms", str(e))


class HotPathConfigTests(SynchronousTestCase):
    """[sip] udp_receive_buffer and [gateway] fast_path."""

    write = LoadTests.write
    assertConfigError = LoadTests.assertConfigError

    def test_values(self):
        loaded = config.load(self.write(
            "[sip]\nudp_receive_buffer = 0\n[gateway]\nfast_path = false\n"))
        self.assertEqual(loaded.sip.udp_receive_buffer, 0)
        self.assertIs(loaded.gateway.fast_path, False)
        self.assertEqual(config.SipConfig().udp_receive_buffer, 4194304)
        self.assertIs(config.GatewayConfig().fast_path, True)

    def test_bad_values(self):
        self.assertConfigError("[sip]\nudp_receive_buffer = -1\n", "sip.udp_receive_buffer")
        self.assertConfigError("[sip]\nudp_receive_buffer = 999999999999\n",
                               "sip.udp_receive_buffer")
        self.assertConfigError("[gateway]\nfast_path = 1\n", "gateway.fast_path")
