"""
Integration test of the SIP -> SMPP lane (L{gwsms.core.fastmt}) on
127.0.0.1: the real gateway service (L{gwsms.service.GatewayService}, SQLite
file store) with C{[gateway] fast_path} on and then off, the Perl Net::SMPP
SMSC (tests/peers/smsc.pl) and a sipp UAC (tests/sipp/e2e_uac.xml) sending
the same MESSAGEs to each.  Every MESSAGE is answered 202 and submitted
exactly once; the lane took all of them; the stored rows are the same in
both modes.

Skipped only when sipp or Perl Net::SMPP is missing (CI installs both).
"""

from __future__ import annotations

import os
import re

from twisted.internet import defer

from gwsms.core import gsm
from tests.test_e2e_gateway import SCENARIOS, E2eBase, _events, free_port

COUNT = 50
#: columns that differ between two runs by nature (ids, times, sipp's ports)
_VARYING = ("id", "created_at", "updated_at", "expires_at", "next_attempt_at", "call_id",
            "concat_ref")


def _comparable(row):
    out = {k: v for k, v in row.items() if k not in _VARYING}
    for name in ("sip_from", "sip_to"):
        out[name] = re.sub(r":\d+\b", ":PORT", out[name])
    return out


class FastMtLaneEndToEndTests(E2eBase):
    def texts(self):
        texts = []
        for i in range(COUNT):
            text = f"lane {i} @ {{x}} 10€" if i % 2 else f"lane {i} Grüße 😀"
            texts.append((f"+49153000{i:05d}", text))
        return texts

    @defer.inlineCallbacks
    def run_mode(self, fast_path: bool):
        """
        One gateway (fresh store, fresh SMSC) with C{fast_path}; COUNT
        MESSAGEs from sipp.

        @return: (rows, SUBMIT lines of the SMSC, the service).
        """
        self.workdir = os.path.abspath(self.mktemp())
        os.makedirs(self.workdir)
        if fast_path is False:
            yield self.start_smsc()  # the first run's SMSC keeps its own log
        yield self.start_gateway(fast_path=fast_path)
        texts = self.texts()
        result = yield self.sipp(
            f"127.0.0.1:{self.sip_port}", "-sf", os.path.join(SCENARIOS, "e2e_uac.xml"),
            "-inf", self.write_csv(texts), "-t", "u1", "-i", "127.0.0.1",
            "-p", str(free_port()), "-m", str(COUNT), "-r", "100", "-l", str(COUNT))
        self.assertSippOk(result)  # every MESSAGE answered 202
        lines = yield self.smsc.wait_for(lambda ls: len(_events(ls, "SUBMIT")) >= COUNT,
                                         f"{COUNT} submit_sm")
        rows = yield self.settled("mt", COUNT, {"submitted"})
        submits = _events(lines, "SUBMIT")
        by_dest: dict[str, list[bytes]] = {}
        for _kind, _mid, source, dest, hexdata in submits:
            self.assertEqual(source, "4930555000")
            by_dest.setdefault(dest, []).append(bytes.fromhex(hexdata))
        for dest, text in texts:
            parts = by_dest.get(dest.lstrip("+"), [])
            self.assertEqual(len(parts), 1, f"{dest} submitted {len(parts)} times")
            if gsm.fits(text):
                self.assertEqual(parts[0], gsm.encode(text), dest)
            else:
                self.assertEqual(parts[0].decode("utf-16-be"), text, dest)
        self.assertEqual(len(submits), COUNT)
        return rows, submits, self.service

    @defer.inlineCallbacks
    def test_lane_and_full_path_same_outcome(self):
        fast_rows, _fast_submits, fast_service = yield self.run_mode(True)
        lane = fast_service.mt_lane
        self.assertIsNotNone(lane)
        self.assertEqual(lane.stats["taken"], COUNT)
        self.assertEqual((lane.stats["declined"], lane.stats["handed_over"]), (0, 0))
        self.assertEqual(lane.stats["answered"], COUNT)
        full_rows, _full_submits, full_service = yield self.run_mode(False)
        self.assertIsNone(full_service.mt_lane)
        self.assertEqual(len(fast_rows), COUNT)
        self.assertEqual(len(full_rows), COUNT)
        fast = sorted((_comparable(r) for r in fast_rows), key=lambda r: r["dest_addr"])
        full = sorted((_comparable(r) for r in full_rows), key=lambda r: r["dest_addr"])
        self.assertEqual(fast, full)
        self.assertEqual({(r["state"], r["parts_done"], r["attempts"]) for r in fast},
                         {("submitted", 1, 0)})
