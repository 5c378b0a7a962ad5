"""
Tests for L{gwsms.core.numbers}.
"""

from urllib.parse import unquote

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from gwsms.core.numbers import (
    Address,
    AddressError,
    destination_address,
    sip_user_to_smpp,
    smpp_to_sip_user,
    source_address,
    user_from_uri,
)
from gwsms.sip.uri import SipURI
from gwsms.smpp.link import SmscLink


def _map(user, ton=2, npi=8, **kw):
    return sip_user_to_smpp(user, default_ton=ton, default_npi=npi, **kw)


class SipToSmppTests(SynchronousTestCase):
    def test_table(self):
        table = [
            ("+4915112345678", Address("4915112345678", 1, 1)),
            ("+49 151 1234 5678", Address("4915112345678", 1, 1)),
            ("+49-(151)-1234.5678", Address("4915112345678", 1, 1)),
            ("%2B4915112345678", Address("4915112345678", 1, 1)),
            ("+1 (555) 010-9999", Address("15550109999", 1, 1)),
            ("015112345678", Address("015112345678", 2, 8)),
            ("0151-123 456", Address("0151123456", 2, 8)),
            ("12345", Address("12345", 2, 8)),
            ("004915112345678", Address("004915112345678", 2, 8)),
            ("Acme", Address("Acme", 5, 0)),
            ("Acme Shop", Address("Acme Shop", 5, 0)),
            ("Acme%20Shop", Address("Acme Shop", 5, 0)),
            ("INFO-2000", Address("INFO-2000", 5, 0)),
            ("H&M", Address("H&M", 5, 0)),
            ("Bank1", Address("Bank1", 5, 0)),
            ("ABCDEFGHIJK", Address("ABCDEFGHIJK", 5, 0)),
            ("  +4930123  ", Address("4930123", 1, 1)),
            ("+4930123;phone-context=+49", Address("4930123", 1, 1)),
        ]
        for user, expected in table:
            self.assertEqual(_map(user), expected, user)

    def test_uris(self):
        table = [
            ("tel:+49-151-1234-5678", Address("4915112345678", 1, 1)),
            ("tel:+1.555.010.9999;ext=12", Address("15550109999", 1, 1)),
            ("tel:7042;phone-context=example.com", Address("7042", 2, 8)),
            ("sip:+4915112345678@example.com;user=phone", Address("4915112345678", 1, 1)),
            ("sip:+49-151-123;isub=7@example.com;user=phone", Address("49151123", 1, 1)),
            ("sips:+4915112345678@example.com", Address("4915112345678", 1, 1)),
            ("SIP:%2B4930123@example.com", Address("4930123", 1, 1)),
            ("sip:015112345@gw.example.com:5060;transport=tcp", Address("015112345", 2, 8)),
            ("sip:Acme%20Shop@example.com", Address("Acme Shop", 5, 0)),
            ('"Alice" <sip:+4930123@example.com>;tag=abc', Address("4930123", 1, 1)),
            ("<tel:+4930123>", Address("4930123", 1, 1)),
            ("im:alice@example.com", Address("alice", 5, 0)),
        ]
        for uri, expected in table:
            self.assertEqual(_map(uri), expected, uri)

    def test_errors(self):
        table = [
            ("", "empty address"),
            ("   ", "empty address"),
            ("+", "bad international number"),
            ("++4930123", "bad international number"),
            ("+49abc", "bad international number"),
            ("ABCDEFGHIJKL", "12 characters long; at most 11"),
            ("1" * 21, "21 characters long; SMPP allows at most 20"),
            ("+" + "1" * 21, "21 characters long; SMPP allows at most 20"),
            ("#123", "neither a phone number nor an alphanumeric"),
            ("J\u00fcrgen", "neither a phone number nor an alphanumeric"),
            ("a@b", "neither a phone number nor an alphanumeric"),
            ("%FF%FE", "bad %-escape"),
            ("im:%FF@example.com", "bad %-escape"),
            ("sip:%FF@example.com", "neither a phone number"),
            ("sip:example.com", "has no user part"),
            ("tel:+49 30", "bad URI"),
            ("sip:alice@", "bad URI"),
            ("http://example.com/", "neither a phone number"),
            ("<mailto:a@example.com>", "unsupported URI scheme 'mailto'"),
        ]
        for user, message in table:
            e = self.assertRaises(AddressError, _map, user)
            self.assertIn(message, str(e), user)
            self.assertIsInstance(e, ValueError)

    def test_error_names_address(self):
        e = self.assertRaises(AddressError, _map, "#9999")
        self.assertIn("'#9999'", str(e))
        e = self.assertRaises(AddressError, _map, "x" * 500)
        self.assertLess(len(str(e)), 200)

    def test_not_text(self):
        self.assertRaises(AddressError, _map, b"+4930123")

    def test_max_length_data_sm(self):
        self.assertEqual(_map("1" * 64, max_length=64), Address("1" * 64, 2, 8))
        self.assertRaises(AddressError, _map, "1" * 65, max_length=64)

    def test_alphanumeric_refused(self):
        e = self.assertRaises(AddressError, _map, "Acme", alphanumeric=False)
        self.assertIn("only be a sender", str(e))
        self.assertEqual(_map("+4930123", alphanumeric=False), Address("4930123", 1, 1))

    def test_link_defaults(self):
        link = SmscLink(name="a", ip="127.0.0.1", port=2775, system_id="u",
                        password="p", system_type="", src_ton=5, src_npi=0,
                        dst_ton=1, dst_npi=1, session_type=1)
        self.assertEqual(source_address("12345", link), Address("12345", 5, 0))
        self.assertEqual(source_address("Acme", link), Address("Acme", 5, 0))
        self.assertEqual(destination_address("4930123", link), Address("4930123", 1, 1))
        self.assertEqual(destination_address("tel:+4930123", link),
                         Address("4930123", 1, 1))
        self.assertRaises(AddressError, destination_address, "Acme", link)


class SmppToSipTests(SynchronousTestCase):
    def test_table(self):
        table = [
            (("4915112345678", 1, 1), "+4915112345678"),
            (("+4915112345678", 1, 1), "+4915112345678"),
            (("++4915112345678", 1, 1), "+4915112345678"),
            (("015112345678", 2, 8), "015112345678"),
            (("12345", 0, 0), "12345"),
            (("12345", 3, 0), "12345"),
            (("Acme", 5, 0), "Acme"),
            (("Acme Shop", 5, 0), "Acme%20Shop"),
            (("H&M", 5, 0), "H&M"),
            (("a@b:c", 5, 0), "a%40b%3Ac"),
            (("100%", 5, 0), "100%25"),
            (("Acme", 1, 1), "Acme"),  # TON 1 but not digits: left alone
            ((" 4930123\x00", 1, 1), "+4930123"),
        ]
        for (addr, ton, npi), user in table:
            self.assertEqual(smpp_to_sip_user(addr, ton, npi), user, addr)

    def test_result_fits_in_uri(self):
        for addr in ("Acme Shop", "a@b:c", "<x>", "100%"):
            user = smpp_to_sip_user(addr, 5, 0)
            uri = SipURI.parse(f"sip:{user}@example.com")
            self.assertEqual(uri.user, addr)
            self.assertEqual(user_from_uri(f"sip:{user}@example.com"), addr)

    def test_empty(self):
        self.assertRaises(AddressError, smpp_to_sip_user, "", 1, 1)
        self.assertRaises(AddressError, smpp_to_sip_user, "\x00", 5, 0)


class UserFromUriTests(SynchronousTestCase):
    def test_table(self):
        table = [
            ("sip:alice@example.com", "alice"),
            ("sips:alice@example.com:5061", "alice"),
            ("sip:alice:secret@example.com", "alice"),
            ("sip:%61lice@example.com", "alice"),
            ("sip:+4930123;npdi@example.com;user=phone", "+4930123"),
            ("sip:a;b@example.com", "a;b"),  # not user=phone: kept
            ("tel:+49-30-123", "+49-30-123"),
            ("tel:+4930123;phone-context=+49", "+4930123"),
            ('"A" <sip:bob@example.com>;tag=x', "bob"),
            ("im:bob@example.com", "bob"),
            ("pres:bob%20b@example.com", "bob b"),
        ]
        for uri, user in table:
            self.assertEqual(user_from_uri(uri), user, uri)

    def test_errors(self):
        for uri in ("sip:example.com", "im:example.com", "mailto:a@b", "nonsense",
                    "tel:", '"A" <sip:bob@example.com'):
            self.assertRaises(AddressError, user_from_uri, uri)


_ALNUM = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .-_&'",
                 min_size=1, max_size=11).filter(
    lambda s: s.strip() == s and any(c.isalpha() for c in s))


class RoundTripTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(st.text(alphabet="0123456789", min_size=1, max_size=20))
    def test_international(self, digits):
        user = smpp_to_sip_user(digits, 1, 1)
        self.assertEqual(user, "+" + digits)
        self.assertEqual(_map(user), Address(digits, 1, 1))
        uri = f"sip:{user}@example.com;user=phone"
        self.assertEqual(_map(uri), Address(digits, 1, 1))
        self.assertEqual(_map(f"tel:{user}"), Address(digits, 1, 1))

    @settings(max_examples=200, deadline=None)
    @given(st.text(alphabet="0123456789", min_size=1, max_size=20),
           st.sampled_from([0, 2, 3, 4, 6]), st.sampled_from([0, 1, 8, 9]))
    def test_default_ton(self, digits, ton, npi):
        user = smpp_to_sip_user(digits, ton, npi)
        self.assertEqual(_map(user, ton, npi), Address(digits, ton, npi))

    @settings(max_examples=200, deadline=None)
    @given(_ALNUM)
    def test_alphanumeric(self, name):
        user = smpp_to_sip_user(name, 5, 0)
        self.assertEqual(_map(user), Address(name, 5, 0))
        self.assertEqual(unquote(user), name)
        self.assertEqual(_map(f"sip:{user}@example.com"), Address(name, 5, 0))

    @settings(max_examples=500, deadline=None)
    @given(st.sampled_from(["", "sip:", "sips:", "tel:", "im:", "<sip:", '"A" <tel:', "%", "+"]),
           st.text(max_size=40))
    def test_never_crashes(self, prefix, text):
        try:
            address = _map(prefix + text)
        except AddressError as e:
            self.assertTrue(str(e))
            return
        self.assertLessEqual(len(address.addr), 20)
        self.assertIn(address.ton, (1, 2, 5))
