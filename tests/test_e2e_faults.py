"""
End-to-end fault tests (see tests.test_e2e_gateway for the set-up): the
SMSC goes away in the middle of a run and comes back; the SIP target
refuses (503) for a while.  Every message must still arrive exactly once.
"""

from __future__ import annotations

import os

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater

from tests.test_e2e_gateway import SCENARIOS, E2eBase, _events, free_port


class FaultTests(E2eBase):
    @defer.inlineCallbacks
    def test_smsc_away_mid_run_mt_each_once(self):
        yield self.start_gateway()
        texts = self.mt_texts()
        csv = self.write_csv(texts)
        sipp = self.sipp(
            f"127.0.0.1:{self.sip_port}", "-sf", os.path.join(SCENARIOS, "e2e_uac.xml"),
            "-inf", csv, "-t", "u1", "-i", "127.0.0.1", "-p", str(free_port()),
            "-m", "100", "-r", "40", "-l", "100")
        first = self.smsc
        yield first.wait_for(lambda ls: len(_events(ls, "SUBMIT")) >= 30, "30 submit_sm")
        first.send("quit")  # the SMSC goes away
        yield first.ended
        yield deferLater(reactor, 10.0)  # for 10 s, as issue 4 asks
        yield self.start_smsc(port=self.smsc_port)  # and comes back
        self.assertSippOk((yield sipp))  # every MESSAGE answered 202 (queued or submitted)
        yield self.settled("mt", 100, {"submitted"})
        expected = 40 + 40 + 20 * 3
        yield self.smsc.wait_for(
            lambda ls: len(_events(first.lines + ls, "SUBMIT")) >= expected,
            f"{expected} submit_sm over both SMSC runs")
        self.check_submits(texts, first.lines + self.smsc.lines)

    @defer.inlineCallbacks
    def test_sip_target_503_for_a_while_mo_each_once(self):
        # short SIP timers: a MESSAGE sent while no sipp listens times out fast
        yield self.start_gateway(sip={"t1": 0.05, "t2": 0.4})
        down = self.sipp("-sf", os.path.join(SCENARIOS, "e2e_uas_503.xml"), "-t", "u1",
                         "-i", "127.0.0.1", "-p", str(self.uas_port), "-m", "30")
        commands, expected = self.mo_commands()
        for command in commands:
            self.smsc.send(command)
        self.assertSippOk((yield down))  # 30 MESSAGEs refused with 503
        log = os.path.join(self.workdir, "uas_messages.log")
        up = self.sipp("-sf", os.path.join(SCENARIOS, "e2e_uas.xml"), "-t", "u1",
                       "-i", "127.0.0.1", "-p", str(self.uas_port), "-m", "100",
                       "-trace_msg", "-message_file", log)
        self.assertSippOk((yield up))
        self.assertEqual(self.received_messages(log), expected)
        rows = yield self.settled("mo", 100, {"delivered"})
        self.assertTrue(any(r["attempts"] > 1 for r in rows))
