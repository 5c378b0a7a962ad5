"""Tests for gwsms.smpp.link: the per-connection message options."""

from twisted.trial import unittest

from gwsms.smpp.link import CODINGS, COLUMNS, MESSAGE_OPTIONS, SmscLink


def make_link(**kw):
    kw.setdefault("name", "s1")
    kw.setdefault("ip", "127.0.0.1")
    kw.setdefault("port", 2775)
    kw.setdefault("system_id", "gw")
    return SmscLink(**kw)


class MessageOptionTests(unittest.SynchronousTestCase):
    def test_defaults(self):
        link = make_link()
        self.assertEqual((link.coding, link.concat, link.max_parts), ("auto", "", 0))
        self.assertEqual(CODINGS, ("auto", "latin1", "ucs2"))
        for name in ("coding", "concat", "max_parts"):
            self.assertIn(name, COLUMNS)

    def test_valid_values(self):
        for coding in ("auto", "latin1", "ucs2"):
            self.assertEqual(make_link(coding=coding).coding, coding)
        for concat in ("", "udh8", "udh16", "sar", "payload"):
            self.assertEqual(make_link(concat=concat).concat, concat)
        for parts in (0, 1, 255):
            self.assertEqual(make_link(max_parts=parts).max_parts, parts)

    def test_bad_values_named(self):
        e = self.assertRaises(ValueError, make_link, coding="gsm7")
        self.assertIn("coding 'gsm7' must be one of auto, latin1, ucs2", str(e))
        e = self.assertRaises(ValueError, make_link, concat="udh32")
        self.assertIn("concat 'udh32' must be one of udh8, udh16, sar, payload", str(e))
        for bad in (-1, 256, True, "3"):
            e = self.assertRaises(ValueError, make_link, max_parts=bad)
            self.assertIn("max_parts", str(e))
        e = self.assertRaises(ValueError, make_link, coding="x", max_parts=999)
        self.assertIn("coding 'x'", str(e))
        self.assertIn("max_parts 999", str(e))

    def test_effective_values(self):
        self.assertEqual(make_link().concat_method("udh16"), "udh16")
        self.assertEqual(make_link(concat="sar").concat_method("udh16"), "sar")
        self.assertEqual(make_link().part_limit(10), 10)
        self.assertEqual(make_link(max_parts=3).part_limit(10), 3)

    def test_message_options_do_not_change_connection_key(self):
        link = make_link()
        for changes in ({"coding": "ucs2"}, {"concat": "payload"}, {"max_parts": 4},
                        {"default_data_coding": 3}, {"dc0_charset": "latin1"},
                        {"enabled": False}, {"id": 7}):
            self.assertEqual(link.replace(**changes).connection_key(), link.connection_key(),
                             changes)
        self.assertEqual(set(MESSAGE_OPTIONS),
                         {"coding", "concat", "max_parts", "default_data_coding", "dc0_charset"})

    def test_session_settings_change_connection_key(self):
        link = make_link()
        for changes in ({"port": 2776}, {"window": 3}, {"system_id": "other"},
                        {"password": "x"}, {"session_type": 2}, {"tls": True}):
            self.assertNotEqual(link.replace(**changes).connection_key(),
                                link.connection_key(), changes)
