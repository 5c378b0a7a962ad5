# -*- test-case-name: tests.test_core_fastmo -*-
"""
Lean non-INVITE client transactions over UDP for the hot-path lanes
(RFC 3261 17.1.2), on raw bytes: no L{gwsms.sip.message} objects, no
Deferred and no timer per transaction.

  - L{UdpTransactions.start} sends a request the lane built (its top Via
    branch from L{UdpTransactions.new_branch}, which starts with L{PREFIX})
    with C{sendto} on the listener's socket;
  - L{UdpTransactions.datagram_received} (a C{TransportLayer.fast_paths}
    handler) recognises the answers by the status line, the top Via's
    branch and the CSeq method; a 1xx moves the transaction to Proceeding,
    a final answer ends it (C{owner.final(tx, status, data)}); answers to
    ended transactions (retransmitted or late) are absorbed, as Timer K
    would;
  - Timer E retransmits (T1 doubling to T2; T2 in Proceeding) and Timer F
    (64*T1) ends it (C{owner.failed(tx, detail)}, as does a send error);
    both run from one periodic sweep over a timer wheel (slots of T1/4),
    which runs only while transactions are open.  A sweep that runs late
    (the reactor lagged) leaves its retransmissions to the next sweep (once;
    not two sweeps in a row), so that answers waiting unread in the socket
    buffer are read first.

Nothing outlives its timer: a transaction is in the table until its final
answer, Timer F or a send error, and in one wheel slot at a time.
"""

from __future__ import annotations

import os
import re

from twisted.internet import task
from twisted.logger import Logger

from gwsms.sip.message import SipURI
from gwsms.sip.wire import is_ip

#: the Via branch prefix of the lanes' requests (RFC 3261 magic cookie + "gwf")
PREFIX = "z9hG4bKgwf"
_PREFIX_B = PREFIX.encode("ascii")
_BRANCH_B = b"branch=" + _PREFIX_B
#: the timer wheel's slots per T1
SLOTS_PER_T1 = 4
_TOP_VIA = re.compile(rb"\n(?:via|v)[ \t]*:[ \t]*([^\r\n]*)", re.I).search
_CSEQ = re.compile(rb"\n(?:cseq)[ \t]*:[ \t]*\d+[ \t]+([A-Za-z]+)", re.I).search


def reason_of(data: bytes) -> str:
    """@return: the reason phrase of a response's status line (at most 80 characters)."""
    end = data.find(b"\r\n")
    return data[12:end if end >= 0 else 80].decode("utf-8", "replace").strip()[:80]


def response_branch(data: bytes, method: bytes = b"MESSAGE"):
    """
    Read what matching a response needs from its raw bytes.

    @param data: a datagram.
    @param method: the method of the lanes' requests.
    @return: C{(status, branch)} for a response to C{method} whose top Via
        branch starts with L{PREFIX}, else C{None}.
    """
    if data[:8] != b"SIP/2.0 " or _BRANCH_B not in data:
        return None
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        head_end = len(data)
    # the common forms first (Via right after the status line, "CSeq:"),
    # the header-name rules (compact form, any case, whitespace) otherwise
    first = data.find(b"\r\n")
    if data.startswith(b"\r\nVia: ", first):
        line = data[first + 7:data.find(b"\r\n", first + 7)]
    else:
        via = _TOP_VIA(data, 0, head_end)
        if via is None:
            return None
        line = via.group(1)
    at = line.find(_BRANCH_B)
    comma = line.find(b",")
    if at < 0 or 0 <= comma < at:
        return None  # ours is not the top Via
    start = at + 7
    stop = len(line)
    for sep in (b";", b",", b" ", b"\t"):
        i = line.find(sep, start)
        if 0 <= i < stop:
            stop = i
    at = data.find(b"\nCSeq: ", 0, head_end)
    if at >= 0:
        number_end = data.find(b" ", at + 8, head_end)
        method_ok = number_end > 0 and data[number_end + 1:number_end + 2 + len(method)] \
            in (method + b"\r", method + b"\n") and data[at + 7:number_end].isdigit()
        if not method_ok:
            cseq = _CSEQ(data, 0, head_end)
            method_ok = cseq is not None and cseq.group(1).upper() == method
    else:
        cseq = _CSEQ(data, 0, head_end)
        method_ok = cseq is not None and cseq.group(1).upper() == method
    if not method_ok:
        return None
    try:
        status = int(data[8:11])
    except ValueError:
        return None
    if not 100 <= status <= 699:
        return None
    return status, line[start:stop].decode("ascii", "replace")


def lane_target(uri: str):
    """
    Whether a target URI can go a lane's way (UDP to an IP literal), and where.

    @param uri: the SIP target URI (with its user part).
    @return: C{(request-URI text, host, port)} or C{None} (slow path).
    """
    try:
        parsed = SipURI.parse(uri)
    except Exception:
        return None
    if getattr(parsed, "scheme", "") != "sip":
        return None
    params = {str(k).lower(): v for k, v in (parsed.params or {}).items()}
    if params.get("maddr") or (params.get("transport") or "udp").lower() != "udp":
        return None
    host = parsed.host.strip("[]")
    if not is_ip(host):
        return None
    return str(parsed), host, parsed.port or 5060


class UdpTx:
    """One open client transaction; C{context} is the owner's."""

    __slots__ = ("branch", "data", "addr", "sock", "interval", "next_e", "deadline",
                 "proceeding", "done", "context")

    def __init__(self, branch, data, addr, sock, context):
        self.branch = branch
        self.data = data
        self.addr = addr
        self.sock = sock
        self.context = context
        self.interval = 0.0
        self.next_e = 0.0
        self.deadline = 0.0
        self.proceeding = False
        self.done = False


class UdpTransactions:
    """
    The table of a lane's open client transactions (see the module
    docstring).

    @ivar inflight: C{{branch: UdpTx}} of the open transactions.
    @ivar stats: C{sent}, C{retransmissions}, C{timeouts}, C{absorbed}
        (answers to ended transactions), C{send_dropped} (socket buffer
        full: lost like any datagram, Timer E sends again).
    """

    _log = Logger()

    def __init__(self, clock, owner, t1: float = 0.5, t2: float = 4.0) -> None:
        """
        @param clock: C{IReactorTime}.
        @param owner: has C{final(tx, status, data)} (a final answer) and
            C{failed(tx, detail)} (Timer F or a send error); neither may
            raise.
        @param t1: RFC 3261 T1 in seconds.  @param t2: T2 in seconds.
        """
        self.clock = clock
        self.owner = owner
        self.t1, self.t2 = t1, t2
        self._slot = t1 / SLOTS_PER_T1
        self.inflight: dict[str, UdpTx] = {}
        self._wheel: dict[int, list] = {}
        self._next_slot = 0
        self._sweep = None
        self._last_tick = 0.0
        self._held = False
        self._counter = 0
        self._process = os.urandom(3).hex()
        self._pool: list = []
        self.stats = dict.fromkeys(
            ("sent", "retransmissions", "timeouts", "absorbed", "send_dropped"), 0)

    def new_branch(self) -> str:
        """@return: a branch unique to this process (L{PREFIX}, process id, counter)."""
        self._counter += 1
        return f"{PREFIX}{self._process}{self._counter:x}"

    def token(self) -> str:
        """@return: 40 random hex digits (e.g. a tag and a Call-ID), from a bulk pool."""
        pool = self._pool
        if not pool:
            text = os.urandom(20 * 256).hex()
            pool.extend(text[i:i + 40] for i in range(0, len(text), 40))
        return pool.pop()

    def start(self, branch: str, data: bytes, addr, sock, context) -> UdpTx:
        """
        Open a transaction and send its request.

        @param branch: the request's top Via branch (L{new_branch}).
        @param data: the request.
        @param addr: C{(ip, port)} to send it to.
        @param sock: the UDP socket to send from (its family fits C{addr}).
        @param context: the owner's, kept in C{tx.context}.
        @return: the L{UdpTx} (already ended when the send failed).
        """
        tx = UdpTx(branch, data, addr, sock, context)
        now = self.clock.seconds()
        tx.interval = self.t1
        tx.next_e = now + self.t1
        tx.deadline = now + 64 * self.t1
        self.inflight[branch] = tx
        self._schedule(tx, tx.next_e)
        self.stats["sent"] += 1
        self._send(tx)
        return tx

    def _send(self, tx: UdpTx) -> None:
        try:
            tx.sock.sendto(tx.data, tx.addr)
        except BlockingIOError:
            self.stats["send_dropped"] += 1
        except InterruptedError:
            self._send(tx)
        except OSError as e:
            self._end(tx)
            self.owner.failed(tx, f"UDP send to {tx.addr[0]}:{tx.addr[1]} failed: {e}")

    def _end(self, tx: UdpTx) -> None:
        tx.done = True
        self.inflight.pop(tx.branch, None)

    # -- answers ----------------------------------------------------------------
    def datagram_received(self, protocol, data: bytes, addr) -> bool:
        """
        C{TransportLayer.fast_paths} handler.

        @return: C{True} when C{data} answered one of our requests (now or
            before: absorbed), else C{False} (not ours: parse it).
        """
        found = response_branch(data)
        if found is None:
            return False
        status, branch = found
        tx = self.inflight.get(branch)
        if tx is None:
            self.stats["absorbed"] += 1
            return True
        if status < 200:
            tx.proceeding = True
            return True
        self._end(tx)
        self.owner.final(tx, status, data)
        return True

    # -- timers ---------------------------------------------------------------
    def _schedule(self, tx: UdpTx, when: float) -> None:
        # the first slot not before it (and not one the sweep has passed)
        slot = max(-int(-min(when, tx.deadline) // self._slot), self._next_slot)
        bucket = self._wheel.get(slot)
        if bucket is None:
            self._wheel[slot] = [tx]
        else:
            bucket.append(tx)
        if self._sweep is None:
            now = self.clock.seconds()
            self._next_slot = int(now / self._slot)
            self._last_tick = now
            self._sweep = task.LoopingCall(self._tick)
            self._sweep.clock = self.clock
            d = self._sweep.start(self._slot, now=False)
            d.addErrback(lambda f: self._log.failure("lane timer sweep stopped", f))

    def _tick(self) -> None:
        try:
            now = self.clock.seconds()
            # late (the reactor lagged): hold the retransmissions back for
            # one sweep, never two in a row (a lost datagram still goes again)
            hold = now - self._last_tick > 2 * self._slot and not self._held
            self._held = hold
            self._last_tick = now
            self.sweep(now, retransmit=not hold)
        except Exception:
            self._log.failure("lane timer sweep failed")

    def sweep(self, now: float, retransmit: bool = True) -> None:
        """
        Run the timers due at C{now}; stops the periodic sweep when
        nothing is open.

        @param retransmit: C{False}: due retransmissions wait for the next
            sweep (the reactor lagged).
        """
        current = int(now / self._slot)
        wheel = self._wheel
        while self._next_slot <= current:
            bucket = wheel.pop(self._next_slot, None)
            self._next_slot += 1
            if not bucket:
                continue
            for tx in bucket:
                if tx.done:
                    continue
                if now >= tx.deadline:
                    self.stats["timeouts"] += 1
                    self._end(tx)
                    self.owner.failed(tx, f"no final response within {64 * self.t1:g} s")
                    continue
                if retransmit and now >= tx.next_e:
                    tx.interval = self.t2 if tx.proceeding else min(2 * tx.interval, self.t2)
                    # from when it was due: the sweep's lateness does not add up
                    tx.next_e = max(tx.next_e + tx.interval, now)
                    self.stats["retransmissions"] += 1
                    self._send(tx)
                if not tx.done:
                    self._schedule(tx, tx.next_e)
        if not self.inflight and not wheel:
            self._stop_sweep()

    def _stop_sweep(self) -> None:
        if self._sweep is not None and self._sweep.running:
            self._sweep.stop()
        self._sweep = None

    def stop(self) -> list:
        """
        Forget every open transaction and stop the sweep.

        @return: the transactions that were open.
        """
        open_ = list(self.inflight.values())
        for tx in open_:
            tx.done = True
        self.inflight.clear()
        self._wheel.clear()
        self._stop_sweep()
        return open_
