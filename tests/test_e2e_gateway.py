"""
End-to-end tests of the whole gateway (L{gwsms.service.GatewayService}) on
127.0.0.1 with peers gwsms did not write:

  - the SMSC is tests/peers/smsc.pl (Perl Net::SMPP); its C{deliver SRC
    DST HEX esm_class=E data_coding=D source_addr_ton=1 ...} command gives
    a deliver_sm the fields UDH parts and receipts need;
  - SIP senders and receivers are sipp (UAC and UAS scenarios
    tests/sipp/e2e_*.xml).

Checked: 100 MT messages (GSM with extension characters, UCS-2 with emoji,
400-character texts in 3 parts) arrive at the SMSC exactly once with the
right addresses and octets; 100 MO messages (some in two parts sent out of
order) reach the sipp UAS exactly once; a receipt becomes an IMDN for a
CPIM sender; with the SMSC gone for a few seconds every MT message still
arrives once; with the SIP target refusing (503) for a while every MO
message still arrives once.

Skipped only when sipp or Perl Net::SMPP is missing (CI installs both).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess

from twisted.internet import defer, protocol, reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from gwsms import config as gwconfig
from gwsms.core import gsm
from gwsms.core.routing import Route
from gwsms.service import GatewayService
from gwsms.smpp.link import SmscLink
from gwsms.store import migrate
from gwsms.store.database import open_database_sync
from gwsms.store.routes import RouteStore
from gwsms.store.smsc import SmscStore

HERE = os.path.dirname(os.path.abspath(__file__))
SMSC_PL = os.path.join(HERE, "peers", "smsc.pl")
SCENARIOS = os.path.join(HERE, "sipp")
SIPP = shutil.which("sipp") or "/usr/bin/sipp"
PERL = shutil.which("perl") or "/usr/bin/perl"
WAIT = 60.0


def deliver(source: str, dest: str, data: bytes, esm_class: int = 0, data_coding: int = 0) -> str:
    """
    @return: the smsc.pl command sending a deliver_sm from the international
        number C{source} (TON 1, NPI 1) to C{dest}.
    """
    return (f"deliver {source} {dest} {data.hex() or '-'} esm_class={esm_class}"
            f" data_coding={data_coding} source_addr_ton=1 source_addr_npi=1")


def _have_net_smpp() -> bool:
    try:
        return subprocess.run([PERL, "-MNet::SMPP", "-e", "1"], capture_output=True,
                              timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def free_port(kind=socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Lines(protocol.ProcessProtocol):
    """Collects stdout lines; waiters are checked on each new line."""

    def __init__(self):
        self.lines: list[str] = []
        self.output: list[bytes] = []
        self._buf = b""
        self._waiters: list = []
        self.ended = defer.Deferred()

    def outReceived(self, data):
        self.output.append(data)
        self._buf += data
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            self.lines.append(line.decode("utf-8", "replace").strip())
        self._check()

    def errReceived(self, data):
        self.output.append(data)

    def processEnded(self, reason):
        self.ended.callback(reason.value.exitCode)
        self._check()

    def _check(self):
        for waiter in list(self._waiters):
            predicate, d, timer = waiter
            if predicate(self.lines):
                self._waiters.remove(waiter)
                timer.cancel()
                d.callback(self.lines)

    def wait_for(self, predicate, what: str, timeout: float = WAIT) -> defer.Deferred:
        d = defer.Deferred()
        if predicate(self.lines):
            d.callback(self.lines)
            return d

        def expire():
            self._waiters[:] = [w for w in self._waiters if w[1] is not d]
            tail = "\n".join(self.lines[-15:])
            d.errback(AssertionError(f"timed out waiting for {what}; last lines:\n{tail}"))

        self._waiters.append((predicate, d, reactor.callLater(timeout, expire)))
        return d

    def send(self, line: str) -> None:
        self.transport.write(line.encode() + b"\n")


def _events(lines, kind):
    return [line.split() for line in lines if line.startswith(kind + " ")]


class E2eBase(TestCase):
    """Peers and the gateway; the tests are in subclasses."""

    timeout = 120

    def setUp(self):
        if not os.access(SIPP, os.X_OK):
            raise self.skipTest("sipp (Debian package sip-tester) is not installed")
        if not _have_net_smpp():
            raise self.skipTest("Perl Net::SMPP (libnet-smpp-perl) is not installed")
        self.workdir = os.path.abspath(self.mktemp())
        os.makedirs(self.workdir)
        self.uas_port = free_port()
        return self.start_smsc()

    # -- peers ------------------------------------------------------------
    @defer.inlineCallbacks
    def start_smsc(self, port=0):
        self.smsc = _Lines()
        argv = [PERL, SMSC_PL, "--port", str(port)]
        process = reactor.spawnProcess(self.smsc, PERL, argv, env=dict(os.environ),
                                       path=self.workdir)
        self.addCleanup(self._stop_process, process, self.smsc)
        lines = yield self.smsc.wait_for(lambda ls: any(x.startswith("PORT ") for x in ls),
                                         "the SMSC to listen", 20)
        self.smsc_port = int([x for x in lines if x.startswith("PORT ")][0].split()[1])

    def _stop_process(self, process, proto):
        if proto.ended.called:
            return None
        try:
            process.closeStdin()
        except Exception:
            pass
        killer = reactor.callLater(5, lambda: proto.ended.called or process.signalProcess("KILL"))
        return proto.ended.addBoth(lambda _: killer.active() and killer.cancel())

    def sipp(self, *args, name="sipp"):
        proto = _Lines()
        argv = [SIPP, *args, "-nostdin", "-timeout", f"{int(WAIT)}s", "-timeout_error",
                "-trace_err"]
        process = reactor.spawnProcess(proto, SIPP, argv, env=dict(os.environ),
                                       path=self.workdir)
        self.addCleanup(self._stop_process, process, proto)
        return proto.ended.addCallback(lambda code: (code, b"".join(proto.output).decode(
            "utf-8", "replace")))

    def assertSippOk(self, result):
        code, output = result
        errors = ""
        for name in os.listdir(self.workdir):
            if name.endswith("_errors.log"):
                with open(os.path.join(self.workdir, name), errors="replace") as f:
                    errors += f.read()[-2000:]
        self.assertEqual(code, 0, f"sipp exit {code}\n{output[-2000:]}\n{errors}")

    # -- the gateway ------------------------------------------------------
    @defer.inlineCallbacks
    def provision_store(self, url, link=None, route=None):
        """
        Migrate the database at C{url} and add the Perl SMSC's row
        (C{"perl"}) and a default MT route to it.

        @param link: extra L{SmscLink} fields of the SMSC row.
        @param route: extra L{Route} fields of the default MT route.
        """
        db = open_database_sync(url)
        try:
            yield migrate.upgrade(db)
            yield SmscStore(db).add(SmscLink(
                name="perl", ip="127.0.0.1", port=self.smsc_port, system_id="gw",
                password="pw", enquire_link_interval=30.0, response_timeout=5.0,
                **(link or {})))
            yield RouteStore(db).add(Route(direction="mt", prefix="", smsc="perl",
                                           **(route or {})))
        finally:
            db.close()

    @defer.inlineCallbacks
    def start_gateway(self, sip=None, link=None, route=None, **gateway):
        """
        @param link: extra L{SmscLink} fields of the SMSC row.
        @param route: extra L{Route} fields of the default MT route.
        """
        url = "sqlite:" + os.path.join(self.workdir, "gwsms.sqlite3")
        yield self.provision_store(url, link=link, route=route)
        settings = {"retry_initial": 0.2, "retry_max": 1.0, "queue_interval": 0.2,
                    "down_wait": 2.0}
        settings.update(gateway)
        self.config = gwconfig.parse({
            "database": {"url": url},
            "smpp": {"reconnect_initial": 0.2, "reconnect_max": 1.0},
            "sip": {"listen": ["udp:127.0.0.1:0"], "domain": "gw.test",
                    "outbound_uri": f"sip:127.0.0.1:{self.uas_port}", **(sip or {})},
            "control": {"socket": os.path.join(self._short_dir(), "gwsms.sock")},
            "gateway": settings,
        }, path="e2e.toml")
        self.service = GatewayService(self.config, reactor, install_signals=False)
        self.service.startService()
        self.addCleanup(self.service.stopService)
        yield self.service.started
        self.sip_port = self.service.sip.port("udp")
        yield self.smsc.wait_for(lambda ls: any(x.startswith("BIND transceiver gw 0")
                                                for x in ls), "the gateway to bind", 20)

    def _short_dir(self):
        import tempfile

        path = tempfile.mkdtemp(prefix="gwsms-e2e-")  # AF_UNIX paths are short
        self.addCleanup(shutil.rmtree, path, True)
        return path

    def rows(self, direction):
        return self.service.messages.list(direction=direction, limit=10000)

    @defer.inlineCallbacks
    def settled(self, direction, count, states, timeout=WAIT):
        """Wait (bounded) until C{count} rows exist and all are in C{states}."""
        deadline = reactor.seconds() + timeout
        while True:
            yield self.service.messages.barrier()
            rows = yield self.rows(direction)
            if len(rows) >= count and all(r["state"] in states for r in rows):
                return rows
            if reactor.seconds() > deadline:
                stuck = [(r["id"], r["state"], r["attempts"], r["last_error"]) for r in rows
                         if r["state"] not in states]
                active = sorted(self.service.gateway.mt.active)[:20]
                self.fail(f"{direction}: {len(rows)} rows, not settled: {stuck[:20]}; "
                          f"live MT jobs {active}")
            yield deferLater(reactor, 0.05)

    # -- helpers ----------------------------------------------------------
    def write_csv(self, rows):
        path = os.path.join(self.workdir, "messages.csv")
        with open(path, "w", encoding="utf-8") as f:
            f.write("SEQUENTIAL\n")
            for dest, text in rows:
                f.write(f"{dest};{text}\n")
        return path

    @staticmethod
    def mt_texts():
        texts = []
        for i in range(100):
            if i < 40:
                text = f"GSM {i} hello @ world {{ok}} [x] 10€ ~ ^"
            elif i < 80:
                text = f"UCS {i} Grüße 😀 ✓ ✈"
            else:
                text = (f"Long {i} " + "abcdefghij" * 40)[:400]
            texts.append((f"+49151000{i:05d}", text))
        return texts

    def check_submits(self, texts, lines):
        """Every text arrived exactly once, in its parts, with the right octets."""
        by_dest: dict[str, list[bytes]] = {}
        for _kind, _mid, source, dest, *hexdata in _events(lines, "SUBMIT"):
            self.assertEqual(source, "4930555000")
            by_dest.setdefault(dest, []).append(bytes.fromhex(hexdata[0] if hexdata else ""))
        self.assertEqual(len(by_dest), len(texts))
        for dest, text in texts:
            parts = by_dest[dest.lstrip("+")]
            if len(parts) > 1:
                total = parts[0][4]
                self.assertEqual(len(parts), total, f"{dest}: parts {len(parts)} of {total}")
                ordered = sorted(parts, key=lambda p: p[5])
                self.assertEqual([p[5] for p in ordered], list(range(1, total + 1)))
                data = b"".join(p[6:] for p in ordered)
            else:
                self.assertEqual(len(parts), 1, f"{dest} submitted {len(parts)} times")
                data = parts[0]
            if gsm.fits(text):
                self.assertEqual(data, gsm.encode(text), dest)
            else:
                self.assertEqual(data.decode("utf-16-be"), text, dest)

    def mo_commands(self, count=100, long_every=10):
        """
        @return: (deliver commands for the SMSC, {"+source": text}): every
            C{long_every}-th message in two UDH parts sent out of order.
        """
        expected = {}
        commands = []
        for i in range(count):
            if long_every and i % long_every == long_every - 1:
                first, second = f"long MO {i} part one " + "x" * 130, f"and part two {i}"
                source, dest = f"4915300{i:05d}", f"4931{i:06d}"
                expected[f"+{source}"] = first + second
                for seq, piece in ((2, second), (1, first)):  # out of order
                    udh = bytes((5, 0, 3, i % 256, 2, seq))
                    commands.append(deliver(source, dest, udh + gsm.encode(piece), esm_class=64))
            else:
                text = f"MO {i} hello @ you"
                source, dest = f"4915200{i:05d}", f"4930{i:06d}"
                expected[f"+{source}"] = text
                commands.append(deliver(source, dest, gsm.encode(text)))
        return commands, expected

    def received_messages(self, log):
        with open(log, encoding="utf-8", errors="replace") as f:
            return self.parse_messages(f.read())

    @staticmethod
    def parse_messages(text):
        """@return: {From user: body} of the MESSAGE requests, once per Call-ID."""
        seen = {}
        out = {}
        for block in re.split(r"-{5,}.*\n", text):
            m = re.search(r"^MESSAGE sip:", block, re.M)
            if not m:
                continue
            request = block[m.start():]
            head, _, body = request.partition("\n\n")
            if not _:
                head, _, body = request.partition("\r\n\r\n")
            call_id = re.search(r"^Call-ID:\s*(\S+)", head, re.M).group(1)
            user = re.search(r"^From:\s*<sip:([^@]+)@", head, re.M).group(1)
            assert re.search(r"^X-SMSC: perl\s*$", head, re.M), head
            if call_id in seen:
                continue
            seen[call_id] = True
            assert user not in out, f"{user} delivered twice"
            out[user] = body.strip()
        return out


class EndToEndTests(E2eBase):
    @defer.inlineCallbacks
    def test_mt_100_messages_exactly_once(self):
        yield self.start_gateway()
        texts = self.mt_texts()
        csv = self.write_csv(texts)
        result = yield self.sipp(
            f"127.0.0.1:{self.sip_port}", "-sf", os.path.join(SCENARIOS, "e2e_uac.xml"),
            "-inf", csv, "-t", "u1", "-i", "127.0.0.1", "-p", str(free_port()),
            "-m", "100", "-r", "100", "-l", "50")
        self.assertSippOk(result)  # every MESSAGE got its 202
        expected = 40 + 40 + 20 * 3
        lines = yield self.smsc.wait_for(lambda ls: len(_events(ls, "SUBMIT")) >= expected,
                                         f"{expected} submit_sm")
        self.check_submits(texts, lines)
        rows = yield self.settled("mt", 100, {"submitted"})
        self.assertEqual(len(rows), 100)
        self.assertEqual({r["state"] for r in rows}, {"submitted"})

    @defer.inlineCallbacks
    def test_mt_connection_text_options(self):
        """A connection set to coding ucs2 and concat udh16, a route asking receipts."""
        yield self.start_gateway(link={"coding": "ucs2", "concat": "udh16", "max_parts": 3},
                                 route={"registered_delivery": 1})
        texts = [(f"+49152000{i:05d}", f"Plain ASCII {i} " + "x" * 80) for i in range(5)]
        result = yield self.sipp(
            f"127.0.0.1:{self.sip_port}", "-sf", os.path.join(SCENARIOS, "e2e_uac.xml"),
            "-inf", self.write_csv(texts), "-t", "u1", "-i", "127.0.0.1",
            "-p", str(free_port()), "-m", str(len(texts)), "-r", "100", "-l", "10")
        self.assertSippOk(result)
        lines = yield self.smsc.wait_for(lambda ls: len(_events(ls, "SUBMIT")) >= 10,
                                         "10 submit_sm")
        by_dest: dict[str, list[bytes]] = {}
        for _kind, _mid, _source, dest, hexdata in _events(lines, "SUBMIT"):
            by_dest.setdefault(dest, []).append(bytes.fromhex(hexdata))
        for dest, text in texts:
            parts = sorted(by_dest[dest.lstrip("+")], key=lambda p: p[6])
            self.assertEqual(len(parts), 2, dest)
            refs = set()
            for seq, part in enumerate(parts, 1):
                self.assertEqual(part[:3], b"\x06\x08\x04")  # 16-bit reference UDH
                self.assertEqual(part[5:7], bytes((2, seq)))
                refs.add(part[3:5])
            self.assertEqual(len(refs), 1)
            self.assertEqual(b"".join(p[7:] for p in parts).decode("utf-16-be"), text)
        rows = yield self.settled("mt", len(texts), {"submitted"})
        self.assertEqual({(r["data_coding"], r["parts_total"], r["registered_delivery"])
                          for r in rows}, {(8, 2, 1)})

    @defer.inlineCallbacks
    def test_mo_100_messages_exactly_once(self):
        yield self.start_gateway()
        log = os.path.join(self.workdir, "uas_messages.log")
        uas = self.sipp("-sf", os.path.join(SCENARIOS, "e2e_uas.xml"), "-t", "u1",
                        "-i", "127.0.0.1", "-p", str(self.uas_port), "-m", "100",
                        "-trace_msg", "-message_file", log)
        commands, expected = self.mo_commands()
        for command in commands:
            self.smsc.send(command)
        self.assertSippOk((yield uas))
        lines = yield self.smsc.wait_for(
            lambda ls: len(_events(ls, "DELIVER_RESP")) >= len(commands), "deliver_sm_resp")
        self.assertEqual({e[2] for e in _events(lines, "DELIVER_RESP")}, {"0"})
        self.assertEqual(self.received_messages(log), expected)
        rows = yield self.settled("mo", 100, {"delivered"})
        self.assertEqual(len(rows), 100)
        self.assertEqual({(r["state"], r["attempts"]) for r in rows}, {("delivered", 1)})

    @defer.inlineCallbacks
    def test_mo_to_registered_phone(self):
        yield self.start_gateway(sip={"registrar": True})
        phone = free_port()
        registered = yield self.sipp(
            f"127.0.0.1:{self.sip_port}", "-sf", os.path.join(SCENARIOS, "e2e_register.xml"),
            "-t", "u1", "-i", "127.0.0.1", "-p", str(phone), "-m", "1", "-s", "4930777")
        self.assertSippOk(registered)
        log = os.path.join(self.workdir, "phone_messages.log")
        uas = self.sipp("-sf", os.path.join(SCENARIOS, "e2e_uas.xml"), "-t", "u1",
                        "-i", "127.0.0.1", "-p", str(phone), "-m", "1",
                        "-trace_msg", "-message_file", log)
        self.smsc.send(deliver("4915200000001", "4930777", gsm.encode("to the phone")))
        self.assertSippOk((yield uas))
        self.assertEqual(self.received_messages(log), {"+4915200000001": "to the phone"})
        with open(log, errors="replace") as f:
            self.assertIn(f"MESSAGE sip:4930777@127.0.0.1:{phone} SIP/2.0", f.read())

    @defer.inlineCallbacks
    def test_receipt_becomes_imdn(self):
        yield self.start_gateway()
        imdn_port = free_port()
        uas = self.sipp("-sf", os.path.join(SCENARIOS, "e2e_uas_imdn.xml"), "-t", "u1",
                        "-i", "127.0.0.1", "-p", str(imdn_port), "-m", "1")
        result = yield self.sipp(
            f"127.0.0.1:{self.sip_port}", "-sf", os.path.join(SCENARIOS, "e2e_uac_cpim.xml"),
            "-t", "u1", "-i", "127.0.0.1", "-p", str(free_port()), "-m", "1",
            "-key", "uasport", str(imdn_port))
        self.assertSippOk(result)
        lines = yield self.smsc.wait_for(lambda ls: _events(ls, "SUBMIT"), "the submit_sm")
        _kind, mid, source, dest, hexdata = _events(lines, "SUBMIT")[0]
        self.assertEqual(bytes.fromhex(hexdata), gsm.encode("please confirm"))
        receipt = (f"id:{mid} sub:001 dlvrd:001 submit date:2601011200 "
                   "done date:2601011201 stat:DELIVRD err:000 text:please confirm")
        self.smsc.send(deliver(dest, source, receipt.encode(), esm_class=4))
        self.assertSippOk((yield uas))
        [row] = yield self.settled("mt", 1, {"delivered"})
        self.assertEqual((yield self.rows("mo")), [])  # never forwarded as an SMS
