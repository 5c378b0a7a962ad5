"""
Tests for L{gwsms.gctune}.
"""

import gc

from twisted.trial import unittest

from gwsms import gctune


class TuneTests(unittest.SynchronousTestCase):
    def setUp(self):
        before = gc.get_threshold()

        def restore():
            gc.set_threshold(*before)
            gc.unfreeze()

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
