"""
Integration test of the SMPP -> SIP lane (L{gwsms.core.fastmo}) on
127.0.0.1: the real gateway service (L{gwsms.service.GatewayService}, SQLite
file store), the Perl Net::SMPP SMSC (tests/peers/smsc.pl) sending
deliver_sm, and a sipp UAS (tests/sipp/e2e_uas.xml) as the MO route's
target.  Every message arrives exactly once, through the lane, and ends
C{delivered}; deliver_sm the SMSC sends twice are acknowledged twice and
delivered once.

Skipped only when sipp or Perl Net::SMPP is missing (CI installs both).
"""

from __future__ import annotations

import os

from twisted.internet import defer

from gwsms.core import gsm
from tests.test_e2e_gateway import SCENARIOS, E2eBase, _events, deliver

COUNT = 200
DUPLICATES = 5


class FastMoLaneEndToEndTests(E2eBase):
    @defer.inlineCallbacks
    def test_mo_messages_exactly_once_through_the_lane(self):
        yield self.start_gateway()
        lane = self.service.gateway.fast_mo
        self.assertIsNotNone(lane)
        log = os.path.join(self.workdir, "uas_messages.log")
        uas = self.sipp("-sf", os.path.join(SCENARIOS, "e2e_uas.xml"), "-t", "u1",
                        "-i", "127.0.0.1", "-p", str(self.uas_port), "-m", str(COUNT),
                        "-trace_msg", "-message_file", log)
        expected = {}
        commands = []
        for i in range(COUNT):
            source, dest = f"4915800{i:05d}", f"4932{i:06d}"
            text = f"lane {i} @ {'€' if i % 3 == 0 else 'x'}"
            expected[f"+{source}"] = text
            commands.append(deliver(source, dest, gsm.encode(text)))
        commands += commands[:DUPLICATES]  # the SMSC sends some again
        for command in commands:
            self.smsc.send(command)
        self.assertSippOk((yield uas))
        lines = yield self.smsc.wait_for(
            lambda ls: len(_events(ls, "DELIVER_RESP")) >= len(commands), "deliver_sm_resp")
        self.assertEqual({e[2] for e in _events(lines, "DELIVER_RESP")}, {"0"})
        self.assertEqual(self.received_messages(log), expected)
        rows = yield self.settled("mo", COUNT, {"delivered"})
        self.assertEqual(len(rows), COUNT)
        self.assertEqual({(r["state"], r["attempts"], r["sip_status"]) for r in rows},
                         {("delivered", 1, 200)})
        stats = lane.stats
        self.assertEqual((stats["taken"], stats["sent"], stats["delivered"],
                          stats["duplicates"]),
                         (COUNT + DUPLICATES, COUNT, COUNT, DUPLICATES))
        self.assertEqual((stats["handed_over"], stats["timeouts"]), (0, 0))
        self.assertEqual(lane.inflight, {})
        self.assertEqual(self.service.gateway.mo.active, set())
