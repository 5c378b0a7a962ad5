"""
Tests for L{gwsms.core.gsm}: the GSM 03.38 default alphabet, extension
table, and 7-bit packing (3GPP TS 23.038).
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from gwsms.core import gsm

_SETTINGS = settings(deadline=None, max_examples=200)
_GSM_TEXT = st.text(alphabet=sorted(gsm.CHARACTERS), max_size=400)


class TablesTests(SynchronousTestCase):
    """
    The tables match TS 23.038 6.2.1 at the positions that differ from ASCII.
    """

    def test_default_alphabet_landmarks(self):
        expected = {
            0x00: "@", 0x01: "£", 0x02: "$", 0x03: "¥", 0x09: "Ç", 0x0A: "\n",
            0x0D: "\r", 0x10: "Δ", 0x11: "_", 0x1C: "Æ", 0x1F: "É", 0x24: "¤",
            0x40: "¡", 0x5B: "Ä", 0x5F: "§", 0x60: "¿", 0x7B: "ä", 0x7F: "à",
            0x41: "A", 0x7A: "z", 0x30: "0",
        }
        for septet, char in expected.items():
            self.assertEqual(gsm.DEFAULT_ALPHABET[septet], char, hex(septet))
            self.assertEqual(gsm.encode(char), bytes([septet]))

    def test_extension_table(self):
        self.assertEqual(
            gsm.encode("\f^{}\\[~]|€"),
            bytes.fromhex("1b0a1b141b281b291b2f1b3c1b3d1b3e1b401b65"),
        )

    def test_every_default_character_round_trips(self):
        """
        Each of the 127 characters (all but the escape) encodes to its own
        septet and back.
        """
        for septet, char in enumerate(gsm.DEFAULT_ALPHABET):
            if septet == gsm.ESCAPE:
                continue
            self.assertEqual(gsm.encode(char), bytes([septet]))
            self.assertEqual(gsm.decode(bytes([septet])), char)
            self.assertEqual(gsm.septet_length(char), 1)
            self.assertEqual(gsm.char_septets(char), 1)
        self.assertEqual(len(gsm.CHARACTERS), 127 + 10)

    def test_every_extension_character_round_trips(self):
        for code, char in gsm.EXTENSION.items():
            self.assertEqual(gsm.encode(char), bytes([gsm.ESCAPE, code]))
            self.assertEqual(gsm.decode(bytes([gsm.ESCAPE, code])), char)
            self.assertEqual(gsm.septet_length(char), 2)
            self.assertEqual(gsm.char_septets(char), 2)


class EncodeTests(SynchronousTestCase):
    def test_not_gsm_names_first_bad_character(self):
        """
        Characters outside the alphabet, including ASCII ones such as the
        backtick and lower-case c-cedilla, raise NotGsm naming the first.
        """
        e = self.assertRaises(gsm.NotGsm, gsm.encode, "ab`cЖ")
        self.assertEqual((e.char, e.index), ("`", 2))
        self.assertIn("U+0060", str(e))
        e = self.assertRaises(gsm.NotGsm, gsm.encode, "façade")
        self.assertEqual((e.char, e.index), ("ç", 2))
        for char in "`\x00\t\x7f\x1bЖ😀\u00a0":
            self.assertFalse(gsm.fits(char), repr(char))
            self.assertRaises(gsm.NotGsm, gsm.char_septets, char)

    def test_fits(self):
        self.assertTrue(gsm.fits("Hello @ world {€} ΔΦ ÄÖÜß"))
        self.assertTrue(gsm.fits(""))
        self.assertFalse(gsm.fits("Hello 😀"))

    def test_septet_length(self):
        self.assertEqual(gsm.septet_length("a" * 160), 160)
        self.assertEqual(gsm.septet_length("[a]"), 5)
        self.assertEqual(gsm.septet_length(""), 0)

    @_SETTINGS
    @given(_GSM_TEXT)
    def test_round_trip(self, text):
        data = gsm.encode(text)
        self.assertEqual(gsm.decode(data), text)
        self.assertEqual(len(data), gsm.septet_length(text))
        self.assertTrue(all(b < 0x80 for b in data))


class DecodeTests(SynchronousTestCase):
    def test_unknown_escape_decodes_default_character(self):
        """
        TS 23.038 6.2.1.1: an escape followed by a code not in the extension
        table shows the default-alphabet character.
        """
        self.assertEqual(gsm.decode(b"\x1b\x41b"), "Ab")

    def test_trailing_and_double_escape(self):
        self.assertEqual(gsm.decode(b"a\x1b"), "a ")
        self.assertEqual(gsm.decode(b"\x1b\x1ba"), " a")

    def test_high_octets_replaced(self):
        self.assertEqual(gsm.decode(b"a\xe9\x1b\xffb"), "a\ufffd\ufffdb")

    @_SETTINGS
    @given(st.binary(max_size=300))
    def test_never_raises(self, data):
        self.assertIsInstance(gsm.decode(data), str)

    @_SETTINGS
    @given(st.lists(st.sampled_from([0x1B, 0x1B, 0x65, 0x41, 0x0A, 0x3C, 0x80, 0x00]),
                    max_size=30).map(bytes))
    def test_matches_septet_by_septet_definition(self, data):
        """
        The fast decoder agrees with a plain reading of TS 23.038: escape +
        code -> extension character, else the default character of the code
        (escape + escape shows a space), trailing escape a space.
        """
        out = []
        index = 0
        while index < len(data):
            if data[index] == gsm.ESCAPE and index + 1 < len(data):
                code = data[index + 1]
                if code in gsm.EXTENSION:
                    out.append(gsm.EXTENSION[code])
                elif code == gsm.ESCAPE:
                    out.append(" ")
                else:
                    out.append(gsm.decode(bytes([code])))
                index += 2
            else:
                out.append(gsm.decode(bytes([data[index]])))
                index += 1
        self.assertEqual(gsm.decode(data), "".join(out))


class PackTests(SynchronousTestCase):
    def test_known_vector(self):
        """
        "hellohello" packs to the well-known E8329BFD4697D9EC37.
        """
        septets = gsm.encode("hellohello")
        self.assertEqual(gsm.pack(septets), bytes.fromhex("e8329bfd4697d9ec37"))
        self.assertEqual(gsm.unpack(bytes.fromhex("e8329bfd4697d9ec37")), septets)
        self.assertEqual(gsm.unpack(bytes.fromhex("e8329bfd4697d9ec37"), 10), septets)

    def test_fill_bits_after_udh(self):
        """
        A 6-octet UDH needs 1 fill bit, a 7-octet one none (TS 23.040).
        """
        self.assertEqual(gsm.fill_bits_after(6), 1)
        self.assertEqual(gsm.fill_bits_after(7), 0)
        self.assertEqual(gsm.fill_bits_after(0), 0)
        packed = gsm.pack(b"\x41", 1)
        self.assertEqual(packed, bytes([0x41 << 1]))
        self.assertEqual(gsm.unpack(packed, 1, 1), b"\x41")

    def test_packed_length(self):
        self.assertEqual(gsm.packed_length(160), 140)
        self.assertEqual(gsm.packed_length(153, 1), 134)
        self.assertEqual(gsm.packed_length(152, 0), 133)

    def test_cr_padding_seven_spare_bits(self):
        """
        Seven septets leave 7 spare bits: a CR goes there (not "@"), and
        unpacking without a count drops it.
        """
        septets = gsm.encode("abcdefg")
        packed = gsm.pack(septets)
        self.assertEqual(len(packed), 7)
        self.assertEqual(packed[-1] >> 1, 0x0D)
        self.assertEqual(gsm.unpack(packed), septets)
        self.assertEqual(gsm.unpack(gsm.pack(septets, cr_padding=False)), septets + b"\x00")

    def test_cr_on_octet_boundary_doubled(self):
        """
        A wanted CR ending on an octet boundary gets a second CR (TS 23.038
        6.1.2.3.1), so it is not taken for padding.
        """
        septets = gsm.encode("abcdefg\r")
        packed = gsm.pack(septets)
        self.assertEqual(gsm.unpack(packed), septets + b"\r")
        self.assertEqual(gsm.unpack(packed, 8), septets)

    def test_bad_arguments(self):
        self.assertRaises(ValueError, gsm.pack, b"\x80")
        self.assertRaises(ValueError, gsm.pack, b"a", 7)
        self.assertRaises(ValueError, gsm.unpack, b"a", 2)
        self.assertRaises(ValueError, gsm.unpack, b"a", None, -1)
        self.assertEqual(gsm.unpack(b""), b"")
        self.assertEqual(gsm.pack(b""), b"")

    @_SETTINGS
    @given(st.binary(max_size=200).map(lambda b: bytes(x & 0x7F for x in b)),
           st.integers(0, 6))
    def test_pack_unpack_with_count(self, septets, fill):
        packed = gsm.pack(septets, fill, cr_padding=False)
        self.assertEqual(len(packed), gsm.packed_length(len(septets), fill))
        self.assertEqual(gsm.unpack(packed, len(septets), fill), septets)

    @_SETTINGS
    @given(st.text(alphabet=sorted(gsm.CHARACTERS - {"\r"}), max_size=200),
           st.integers(0, 6))
    def test_pack_unpack_without_count(self, text, fill):
        """
        With CR padding the septets come back exactly without a count.
        """
        septets = gsm.encode(text)
        self.assertEqual(gsm.unpack(gsm.pack(septets, fill), None, fill), septets)
