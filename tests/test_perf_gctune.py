"""
Tests for L{gwsms.gctune}.
"""

import gc
import sys

from twisted.trial import unittest

from gwsms import gctune


class TuneTests(unittest.SynchronousTestCase):
    def setUp(self):
        before = gc.get_threshold()
        interval = sys.getswitchinterval()

        def restore():
            gc.set_threshold(*before)
            gc.unfreeze()
            sys.setswitchinterval(interval)

        self.addCleanup(restore)

    def test_freezes_existing_objects_and_sets_thresholds(self):
        kept = [object() for _ in range(10)] + [[] for _ in range(10)]
        previous = gctune.tune((5000, 7, 9))
        self.assertEqual(len(previous), 3)
        self.assertEqual(gc.get_threshold(), (5000, 7, 9))
        self.assertGreater(gc.get_freeze_count(), len(kept) // 2)

    def test_default_thresholds(self):
        gctune.tune()
        self.assertEqual(gc.get_threshold(), gctune.THRESHOLDS)
        self.assertEqual(sys.getswitchinterval(), gctune.SWITCH_INTERVAL)
