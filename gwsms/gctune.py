# -*- test-case-name: tests.test_perf_gctune -*-
"""
Garbage-collector settings for the running gateway.

Every message allocates a few hundred short-lived container objects (parsed
headers, Deferreds, delayed calls); with CPython's default thresholds
(700, 10, 10) the collector ran a young collection every few messages and
a full collection of the whole heap (every module, function and class plus
the transactions kept for Timer J) every second or so, which was more than
a third of the gateway's CPU in C{bench/profile_mt.py} and paused the
reactor for hundreds of milliseconds.  Once the service has started,
L{tune} moves what exists then (code, configuration, caches) to the
permanent generation (C{gc.freeze}) and raises the thresholds, so that
collections are rarer and only look at objects created since.

It also shortens the interpreter's thread switch interval from 5 ms to
1 ms: the group commit's own thread (the lanes' multi-row statements and
C{COMMIT}, L{gwsms.store.sqlitecommit}; a pool thread when this was
measured) needs the GIL back a few times per batch while the reactor
thread is busy, and each time waited up to a whole interval.  Measured
with C{bench/profile_mo.py --rate 7000}: deliver_sm -> resp p50 296 -> 57
ms, p99 775 -> 259 ms, the same CPU per message.  A shorter interval
(0.2 ms, C{--switch-interval}) changed nothing measurable with the commit
thread at SMPP -> SIP 8,500/s and cost more at SIP -> SMPP 6,000/s
(C{bench/profile_mt.py}, three pairs: 163-168 -> 175-181 us per message,
write-batch p99 11 -> 15-18 ms).
"""

from __future__ import annotations

import gc
import sys

#: gc.set_threshold() of a running gateway
THRESHOLDS = (10000, 10, 10)
#: sys.setswitchinterval() of a running gateway (seconds)
SWITCH_INTERVAL = 0.001


def tune(thresholds: tuple[int, int, int] = THRESHOLDS,
         switch_interval: float = SWITCH_INTERVAL) -> tuple[int, int, int]:
    """
    Freeze the objects that exist now, set the collection thresholds and
    the thread switch interval.

    @param thresholds: C{(gen0, gen1, gen2)} for C{gc.set_threshold}.
    @param switch_interval: for C{sys.setswitchinterval}.
    @return: the previous thresholds.
    """
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
    sys.setswitchinterval(switch_interval)
    return previous
