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
"""

from __future__ import annotations

import gc

#: gc.set_threshold() of a running gateway
THRESHOLDS = (10000, 10, 10)


def tune(thresholds: tuple[int, int, int] = THRESHOLDS) -> tuple[int, int, int]:
    """
    Freeze the objects that exist now and set the collection thresholds.

    @param thresholds: C{(gen0, gen1, gen2)} for C{gc.set_threshold}.
    @return: the previous thresholds.
    """
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
    return previous
