"""
Tests for L{gwsms.core.text} (with L{gwsms.core.inbound} and
L{gwsms.core.reassembly}): coding choice, splitting, decoding by
data_coding, UDH parsing and reassembly (3GPP TS 23.038 / 23.040).
"""

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from gwsms.core import gsm, text
from gwsms.smpp import pdu

_SETTINGS = settings(deadline=None, max_examples=200)


def _texts(alphabet, max_size=600):
    """
    Text up to about C{max_size} characters: a random head repeated a random
    number of times plus a random tail.  Plain st.text stays short (never
    multi-part), and drawing every character of long texts is slow; the
    repetition still moves escape pairs and surrogate pairs across every
    offset of a part boundary.
    """
    piece = max_size // 10
    return st.builds(
        lambda head, times, tail: head * times + tail,
        st.text(alphabet=alphabet, min_size=1, max_size=piece),
        st.sampled_from([1, 10, 40, 80, 160]),
        st.text(alphabet=alphabet, max_size=piece),
    )


_GSM_TEXT = _texts(sorted(gsm.CHARACTERS), 900)
# any character but lone surrogates, astral ones included
_ANY_TEXT = _texts(st.characters(exclude_categories=("Cs",)), 400)
_EMOJI_TEXT = _texts(st.sampled_from(["😀", "𝄞", "a", "Ж", "€", "{", " "]), 400)
_METHODS = st.sampled_from(text.METHODS)


def _through_smsc(segments, link="smsc1", src="491701", dst="gw", gsm_packed=False):
    """
    Deliver each segment as a deliver_sm through the SMPP codec, read it
    with mo_part and reassemble: the decoded text or None.
    """
    reassembler = text.Reassembler()
    result = None
    for segment in segments:
        wire = pdu.encode(pdu.make(
            "deliver_sm", 1, source_addr=src, destination_addr=dst,
            esm_class=segment.esm_class, data_coding=segment.data_coding,
            short_message=segment.short_message, tlvs=dict(segment.tlvs)))
        received = pdu.decode(wire)
        part = text.mo_part(received.params["short_message"], received.params["data_coding"],
                            received.params["esm_class"], received.tlvs,
                            gsm_packed=gsm_packed)
        if part.is_single:
            return part
        message = reassembler.add((link, src, dst, part.ref), part.seq, part.total,
                                  part.payload, part.data_coding, 0.0)
        if message is not None:
            result = message
    return result


class ChooseCodingTests(SynchronousTestCase):
    def test_gsm_when_everything_fits(self):
        dc, encoder = text.choose_coding("Hi {there} €5 Δ")
        self.assertEqual((dc, encoder.name), (0, "gsm"))
        self.assertEqual(encoder("@"), b"\x00")

    def test_ucs2_otherwise(self):
        dc, encoder = text.choose_coding("Привет 😀")
        self.assertEqual((dc, encoder.name), (8, "ucs2"))
        self.assertEqual(encoder("😀"), "😀".encode("utf-16-be"))
        self.assertEqual(text.choose_coding("façade")[0], 8)  # ç is not GSM

    def test_prefer_ucs2(self):
        self.assertEqual(text.choose_coding("abc", prefer="ucs2")[0], 8)

    def test_prefer_latin1_when_it_fits(self):
        dc, encoder = text.choose_coding("façade `x`", prefer="latin1")
        self.assertEqual((dc, encoder.name), (3, "latin1"))
        self.assertEqual(encoder("façade"), b"fa\xe7ade")
        # Δ is GSM but not Latin-1: GSM; Cyrillic: UCS-2
        self.assertEqual(text.choose_coding("Δ", prefer="latin1")[0], 0)
        self.assertEqual(text.choose_coding("Ж", prefer="latin1")[0], 8)

    def test_dc0_latin1(self):
        """
        When data_coding 0 means Latin-1 on the SMSC, GSM text is sent as
        Latin-1 octets; GSM characters outside Latin-1 force UCS-2.
        """
        dc, encoder = text.choose_coding("café @", dc0_charset="latin1")
        self.assertEqual((dc, encoder.name), (0, "gsm-latin1"))
        self.assertEqual(encoder("café @"), b"caf\xe9 @")
        self.assertEqual(text.choose_coding("ΔΦ", dc0_charset="latin1")[0], 8)

    def test_dc0_ascii(self):
        dc, encoder = text.choose_coding("a@b{}", dc0_charset="ascii")
        self.assertEqual((dc, encoder.name), (0, "gsm-ascii"))
        self.assertEqual(encoder("a@b{}"), b"a@b{}")
        self.assertEqual(text.choose_coding("café", dc0_charset="ascii")[0], 8)
        self.assertEqual(text.choose_coding("a`b", dc0_charset="ascii")[0], 8)

    def test_bad_choices(self):
        e = self.assertRaises(ValueError, text.choose_coding, "a", prefer="utf8")
        self.assertIn("prefer", str(e))
        self.assertRaises(ValueError, text.choose_coding, "a", dc0_charset="ebcdic")

    def test_encoder_error_names_character(self):
        e = self.assertRaises(text.TextError, text.LATIN1.encode, "abЖ")
        self.assertIn("U+0416", str(e))
        self.assertIn("index 2", str(e))


class SplitSizeTests(SynchronousTestCase):
    def test_160_gsm_one_part_161_two(self):
        [one] = text.split("a" * 160)
        self.assertEqual((one.short_message, one.esm_class, one.tlvs, one.data_coding),
                         (b"a" * 160, 0, {}, 0))
        parts = text.split("a" * 161, ref=7)
        self.assertEqual([len(p.short_message) for p in parts], [6 + 153, 6 + 8])

    def test_escape_counts_two_in_single(self):
        self.assertEqual(len(text.split("a" * 158 + "€")), 1)
        self.assertEqual(len(text.split("a" * 159 + "€")), 2)

    def test_escape_pair_not_split(self):
        """
        152 septets then an escape pair: the pair moves whole to part 2.
        """
        parts = text.split("a" * 152 + "€" + "b" * 10, ref=1)
        self.assertEqual([p.text for p in parts], ["a" * 152, "€" + "b" * 10])
        self.assertEqual(parts[0].short_message[6:], b"a" * 152)
        self.assertEqual(parts[1].short_message[6:8], b"\x1b\x65")
        parts = text.split("a" * 151 + "€" + "b" * 10, ref=1)
        self.assertEqual([len(p.short_message) - 6 for p in parts], [153, 10])

    def test_400_gsm_chars_three_parts(self):
        parts = text.split("x" * 400, ref=9)
        self.assertEqual([len(p.short_message) - 6 for p in parts], [153, 153, 94])

    def test_udh16_sizes(self):
        parts = text.split("x" * 400, method="udh16", ref=0x1234)
        self.assertEqual([len(p.short_message) - 7 for p in parts], [152, 152, 96])

    def test_ucs2_70_and_71(self):
        [one] = text.split("Ж" * 70)
        self.assertEqual((one.data_coding, len(one.short_message)), (8, 140))
        parts = text.split("Ж" * 71, ref=3)
        self.assertEqual([len(p.short_message) - 6 for p in parts], [134, 8])
        parts = text.split("Ж" * 71, method="udh16", ref=3)
        self.assertEqual([len(p.short_message) - 7 for p in parts], [132, 10])

    def test_emoji_never_split(self):
        """
        66 Cyrillic characters then an emoji: 132 + 4 octets exceed 134, so
        the emoji (a surrogate pair) starts part 2.
        """
        parts = text.split("Ж" * 66 + "😀" + "Ж" * 10, ref=3)
        self.assertEqual([p.text for p in parts], ["Ж" * 66, "😀" + "Ж" * 10])
        self.assertEqual(parts[1].short_message[6:10], "😀".encode("utf-16-be"))
        # an astral character counts as two UCS-2 characters in a single SMS
        self.assertEqual(len(text.split("😀" * 35)), 1)
        self.assertEqual(len(text.split("😀" * 35 + "a")), 2)

    def test_latin1_sizes(self):
        [one] = text.split("é" * 140, prefer="latin1")
        self.assertEqual((one.data_coding, one.short_message), (3, b"\xe9" * 140))
        parts = text.split("é" * 141, prefer="latin1", ref=1)
        self.assertEqual([len(p.short_message) - 6 for p in parts], [134, 7])

    def test_dc0_latin1_counts_septets(self):
        """
        GSM text sent as Latin-1 still counts septets (the SMSC converts it):
        76 "{" take 152 septets but 76 octets.
        """
        parts = text.split("{" * 100, dc0_charset="latin1", ref=1)
        self.assertEqual([p.short_message[6:] for p in parts], [b"{" * 76, b"{" * 24])
        self.assertEqual(len(text.split("{" * 80, dc0_charset="ascii")), 1)
        self.assertEqual(len(text.split("{" * 81, dc0_charset="ascii")), 2)

    def test_too_long(self):
        e = self.assertRaises(text.TooLong, text.split, "x" * 400, max_parts=2)
        self.assertEqual((e.parts_needed, e.max_parts), (3, 2))
        self.assertIn("3 parts", str(e))
        self.assertEqual(len(text.split("x" * 306, max_parts=2)), 2)
        e = self.assertRaises(text.TooLong, text.split, "x" * 400, method="payload",
                              max_parts=2)
        self.assertEqual(e.parts_needed, 3)

    def test_bad_arguments(self):
        self.assertRaises(ValueError, text.split, "a", method="udh")
        self.assertRaises(ValueError, text.split, "a", max_parts=0)
        self.assertRaises(ValueError, text.split, "a", max_parts=256)
        self.assertRaises(ValueError, text.split, "a", method="udh8", ref=256)
        self.assertRaises(ValueError, text.split, "a", method="udh16", ref=65536)
        self.assertEqual(len(text.split("a", method="udh16", ref=65535)), 1)

    def test_lone_surrogate_refused(self):
        e = self.assertRaises(text.TextError, text.split, "ab\ud800")
        self.assertIn("U+D800", str(e))

    def test_empty_text(self):
        [one] = text.split("")
        self.assertEqual((one.short_message, one.esm_class), (b"", 0))


class SplitFormatTests(SynchronousTestCase):
    def test_udh8_bytes(self):
        """
        TS 23.040 9.2.3.24.1: 05 00 03 ref total seq.
        """
        parts = text.split("a" * 400, method="udh8", ref=0xAB)
        self.assertEqual([p.short_message[:6].hex() for p in parts],
                         ["050003ab0301", "050003ab0302", "050003ab0303"])
        self.assertEqual({p.esm_class for p in parts}, {0x40})
        self.assertEqual({p.data_coding for p in parts}, {0})
        self.assertEqual({len(p.tlvs) for p in parts}, {0})

    def test_udh16_bytes(self):
        """
        TS 23.040 9.2.3.24.8: 06 08 04 ref_hi ref_lo total seq.
        """
        parts = text.split("Ж" * 100, method="udh16", ref=0xBEEF)
        self.assertEqual([p.short_message[:7].hex() for p in parts],
                         ["060804beef0201", "060804beef0202"])

    def test_sar_tlvs(self):
        parts = text.split("a" * 200, method="sar", ref=0x1234)
        self.assertEqual([p.tlvs for p in parts], [
            {"sar_msg_ref_num": 0x1234, "sar_total_segments": 2, "sar_segment_seqnum": 1},
            {"sar_msg_ref_num": 0x1234, "sar_total_segments": 2, "sar_segment_seqnum": 2},
        ])
        self.assertEqual({p.esm_class for p in parts}, {0})
        # no UDH; sized for the 16-bit UDH an SMSC would need for ref > 255
        self.assertEqual([len(p.short_message) for p in parts], [152, 48])
        parts = text.split("a" * 200, method="sar", ref=12)
        self.assertEqual([len(p.short_message) for p in parts], [153, 47])

    def test_payload(self):
        [one] = text.split("Ж" * 100, method="payload")
        self.assertEqual((one.short_message, one.esm_class, one.data_coding), (b"", 0, 8))
        self.assertEqual(one.tlvs, {"message_payload": ("Ж" * 100).encode("utf-16-be")})
        # fits one SMS: plain short_message
        [one] = text.split("hello", method="payload")
        self.assertEqual((one.short_message, one.tlvs), (b"hello", {}))

    def test_gsm_packed(self):
        [one] = text.split("hellohello", gsm_packed=True)
        self.assertEqual(one.short_message, bytes.fromhex("e8329bfd4697d9ec37"))
        parts = text.split("a" * 200, gsm_packed=True, ref=5)
        self.assertEqual(parts[0].short_message[:6].hex(), "050003050201")
        self.assertEqual(len(parts[0].short_message), 140)
        self.assertEqual(
            gsm.unpack(parts[0].short_message[6:], 153, gsm.fill_bits_after(6)), b"a" * 153)


class SplitReassembleProperties(SynchronousTestCase):
    """
    Split, send each part through the SMPP codec as a deliver_sm, read with
    mo_part, reassemble, decode: the identity.
    """

    def _check(self, value, method, ref=0x42, **kwargs):
        segments = text.split(value, method=method, ref=ref, **kwargs)
        result = _through_smsc(segments, gsm_packed=kwargs.get("gsm_packed", False))
        decoded = result.decode(kwargs.get("dc0_charset", "gsm"))
        self.assertEqual(decoded.text, value)
        self.assertFalse(decoded.binary)

    @_SETTINGS
    @given(_ANY_TEXT, _METHODS)
    def test_any_text(self, value, method):
        self._check(value, method, ref=0x1FF if method != "udh8" else 0x42)

    @_SETTINGS
    @given(_EMOJI_TEXT, _METHODS)
    def test_astral_heavy_text(self, value, method):
        self._check(value, method)

    @_SETTINGS
    @given(_GSM_TEXT, _METHODS, st.sampled_from(["gsm", "latin1", "ascii"]))
    def test_gsm_text(self, value, method, dc0):
        self._check(value, method, dc0_charset=dc0)

    @_SETTINGS
    @given(_texts(sorted(gsm.CHARACTERS - {"\r"}), 900), _METHODS)
    def test_gsm_packed(self, value, method):
        self._check(value, method, gsm_packed=True)

    @_SETTINGS
    @given(_texts(st.characters(max_codepoint=0xFF), 600), _METHODS)
    def test_latin1(self, value, method):
        self._check(value, method, prefer="latin1")


class DecodeTests(SynchronousTestCase):
    def test_dc0_by_charset(self):
        self.assertEqual(text.decode_sm(b"\x00a\x1b\x65", 0).text, "@a€")
        decoded = text.decode_sm(b"caf\xe9@", 0, dc0_charset="latin1")
        self.assertEqual((decoded.text, decoded.charset), ("café@", "latin1"))
        decoded = text.decode_sm(b"a@b\xe9", 0, dc0_charset="ascii")
        self.assertEqual((decoded.text, decoded.charset), ("a@b\ufffd", "ascii"))

    def test_ia5_latin1_ucs2(self):
        self.assertEqual(text.decode_sm(b"a{b", 1).text, "a{b")
        self.assertEqual(text.decode_sm(b"\xe9\xff", 3).text, "éÿ")
        self.assertEqual(text.decode_sm("Жa😀".encode("utf-16-be"), 8).text, "Жa😀")

    def test_ucs2_tolerant(self):
        """
        Odd length and lone surrogates give U+FFFD, never an exception.
        """
        self.assertEqual(text.decode_sm(b"\x04\x16\x00", 8).text, "Ж\ufffd")
        self.assertEqual(text.decode_sm(b"\xd8\x3d\x00\x61", 8).text, "\ufffda")
        self.assertEqual(text.decode_sm(b"\x00\x61\xde\x00", 8).text, "a\ufffd")

    def test_message_class_codings(self):
        """
        0xF0-0xF3: GSM 7-bit with class 0-3; 0xF4-0xF7: 8-bit data.
        """
        for dc in range(0xF0, 0xF4):
            decoded = text.decode_sm(b"Hi\x00", dc, dc0_charset="latin1")
            self.assertEqual((decoded.text, decoded.charset, decoded.message_class),
                             ("Hi@", "gsm", dc & 3))
        for dc in range(0xF4, 0xF8):
            decoded = text.decode_sm(b"\x01\xff", dc)
            self.assertEqual((decoded.text, decoded.data, decoded.binary,
                              decoded.message_class), (None, b"\x01\xff", True, dc & 3))

    def test_general_data_coding_groups(self):
        cases = {
            0x10: ("gsm", 0), 0x11: ("gsm", 1), 0x15: ("binary", 1), 0x18: ("ucs2", 0),
            0x1B: ("ucs2", 3), 0x1C: ("binary", 0), 0x00 | 0x40: ("gsm", None),
            0x48: ("ucs2", None), 0x20: ("binary", None), 0x31: ("binary", 1),
            0xC0: ("gsm", None), 0xD3: ("gsm", None), 0xE0: ("ucs2", None),
            0x80: ("binary", None), 0xBF: ("binary", None),
        }
        for dc, expected in cases.items():
            self.assertEqual(text.coding_of(dc), expected, hex(dc))
        self.assertEqual(text.decode_sm("Ж".encode("utf-16-be"), 0x18).text, "Ж")
        self.assertEqual(text.decode_sm(b"abc", 0x11).text, "abc")

    def test_binary_codings(self):
        for dc in (2, 4, 9, 0x0B, 0x0C, 0x0F, 0xF4, 0xF6):
            decoded = text.decode_sm(b"\x00\x80\xff", dc)
            self.assertEqual((decoded.text, decoded.binary, decoded.charset, decoded.data),
                             (None, True, "binary", b"\x00\x80\xff"), hex(dc))

    def test_other_smpp_charsets(self):
        self.assertEqual(text.decode_sm("Привет".encode("iso-8859-5"), 6).text, "Привет")
        self.assertEqual(text.decode_sm("שלום".encode("iso-8859-8"), 7).text, "שלום")
        self.assertEqual(text.decode_sm("日本".encode("iso-2022-jp"), 0x0A).text, "日本")
        raw = bytes(b & 0x7F for b in "日本".encode("euc_jp"))
        self.assertEqual(text.decode_sm(raw, 5).text, "日本")
        raw = bytes(b & 0x7F for b in "한국".encode("euc_kr"))
        self.assertEqual(text.decode_sm(raw, 0x0E).text, "한국")
        # JIS X 0212: U+4E02 is EUC-JP 8F B0 A1, raw code 30 21
        self.assertEqual(text.decode_sm(b"\x30\x21", 0x0D).text, "\u4e02")
        self.assertEqual(text.decode_sm(b"\x30\x21\x30", 0x0D).text, "\u4e02\ufffd")

    def test_udh_stripped(self):
        decoded = text.decode_sm(b"\x05\x00\x03\x07\x02\x01" + "Ж".encode("utf-16-be"), 8, 0x40)
        self.assertEqual(decoded.text, "Ж")
        self.assertEqual((decoded.udh.concat_ref, decoded.udh.concat_total,
                          decoded.udh.concat_seq), (7, 2, 1))
        # without UDHI the same octets are text
        self.assertIsNone(text.decode_sm(b"\x05\x00\x03abc", 0).udh)

    def test_packed_gsm_after_udh(self):
        udh = b"\x05\x00\x03\x07\x02\x01"
        body = gsm.pack(gsm.encode("hello"), gsm.fill_bits_after(6))
        decoded = text.decode_sm(udh + body, 0, 0x40, gsm_packed=True)
        self.assertEqual(decoded.text, "hello")

    def test_malformed_udh_is_one_message(self):
        decoded = text.decode_sm(b"\x09\x00\x03ab", 3, 0x40)
        self.assertEqual((decoded.udh, decoded.malformed_udh, decoded.text),
                         (None, True, "\x09\x00\x03ab"))
        self.assertTrue(text.decode_sm(b"", 0, 0x40).malformed_udh)

    @_SETTINGS
    @given(st.binary(max_size=300), st.integers(0, 255), st.sampled_from([0, 0x40, 0x43]),
           st.sampled_from(text.DC0_CHARSETS), st.booleans())
    def test_never_raises(self, data, dc, esm, dc0, packed):
        decoded = text.decode_sm(data, dc, esm, dc0, gsm_packed=packed)
        self.assertEqual(decoded.binary, decoded.text is None)
        part = text.mo_part(data, dc, esm, {}, gsm_packed=packed)
        self.assertGreaterEqual(part.total, 1)
        part.decode(dc0)


class ParseUdhTests(SynchronousTestCase):
    def test_extra_ies_skipped(self):
        """
        Port addressing (0x05) before and a national language shift (0x25)
        after an 8-bit concatenation IE.
        """
        data = bytes.fromhex("0e" "0504 0b84 23f0" "0003 2a 03 02" "2501 01") + b"xy"
        udh = text.parse_udh(data)
        self.assertEqual((udh.concat_ref, udh.concat_total, udh.concat_seq, udh.ref_bits),
                         (0x2A, 3, 2, 8))
        self.assertEqual(udh.ies, ((0x05, bytes.fromhex("0b8423f0")),
                                   (0x00, b"\x2a\x03\x02"), (0x25, b"\x01")))
        self.assertEqual(data[udh.length:], b"xy")

    def test_16bit(self):
        udh = text.parse_udh(bytes.fromhex("0c 2401 01 0804 beef 0302 2501 01"))
        self.assertEqual((udh.concat_ref, udh.concat_total, udh.concat_seq, udh.ref_bits),
                         (0xBEEF, 3, 2, 16))

    def test_invalid_concat_ie_ignored(self):
        """
        TS 23.040: sequence 0 or above the total, total 0: ignore the IE.
        """
        for ie in ("000301 02 00", "000301 02 03", "000301 00 00", "0002 0102"):
            udh = text.parse_udh(bytes([len(bytes.fromhex(ie))]) + bytes.fromhex(ie))
            self.assertIsNone(udh.concat_ref, ie)

    def test_malformed(self):
        for hexdata in ("", "05000301", "03 0005 01", "02 00", "01 00"):
            self.assertRaises(text.MalformedUdh, text.parse_udh, bytes.fromhex(hexdata))
        self.assertEqual(text.parse_udh(b"\x00rest").ies, ())


class MoPartTests(SynchronousTestCase):
    def test_single(self):
        part = text.mo_part(b"hi", 0)
        self.assertEqual((part.ref, part.total, part.seq, part.method), (None, 1, 1, "none"))
        self.assertEqual(part.decode().text, "hi")

    def test_sar(self):
        tlvs = {"sar_msg_ref_num": 500, "sar_total_segments": 3, "sar_segment_seqnum": 2}
        part = text.mo_part(b"hi", 0, 0, tlvs)
        self.assertEqual((part.ref, part.total, part.seq, part.method, part.payload),
                         (500, 3, 2, "sar", b"hi"))

    def test_bad_sar_is_single_flagged(self):
        tlvs = {"sar_msg_ref_num": 5, "sar_total_segments": 2, "sar_segment_seqnum": 3}
        part = text.mo_part(b"hi", 0, 0, tlvs)
        self.assertEqual((part.total, part.malformed), (1, True))
        self.assertTrue(part.decode().malformed_udh)

    def test_message_payload(self):
        part = text.mo_part(b"", 8, 0, {"message_payload": "Ж".encode("utf-16-be")})
        self.assertEqual((part.total, part.decode().text), (1, "Ж"))

    def test_packed_only_for_gsm(self):
        packed = gsm.pack(gsm.encode("hello"))
        self.assertEqual(text.mo_part(packed, 0, gsm_packed=True).payload, gsm.encode("hello"))
        self.assertEqual(text.mo_part(b"hello", 0, dc0_charset="latin1",
                                      gsm_packed=True).payload, b"hello")
        self.assertEqual(text.mo_part(b"\x00h", 8, gsm_packed=True).payload, b"\x00h")

    def test_malformed_udh_single(self):
        part = text.mo_part(b"\x07\x00\x03\x01\x02\x01ab", 0, 0x40)
        self.assertEqual((part.total, part.malformed, part.payload),
                         (1, True, b"\x07\x00\x03\x01\x02\x01ab"))


class ReassemblerTests(SynchronousTestCase):
    KEY = ("smsc1", "4917012345", "gw", 0x42)

    @_SETTINGS
    @given(st.data(), st.sampled_from([(0, _GSM_TEXT), (8, _ANY_TEXT)]))
    def test_foreign_cuts_any_order_with_duplicates(self, data, coding):
        """
        A foreign SMSC cuts the user data anywhere (mid UCS-2 character, mid
        escape pair); parts arrive shuffled, some twice: the text comes back.
        """
        data_coding, strategy = coding
        value = data.draw(strategy)
        payload = gsm.encode(value) if data_coding == 0 else value.encode("utf-16-be")
        cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(payload) - 1)),
                                        max_size=8)))
        bounds = [0] + [c for c in cuts if c < len(payload)] + [len(payload)]
        pieces = [payload[a:b] for a, b in zip(bounds, bounds[1:])] or [b""]
        order = data.draw(st.permutations(range(len(pieces))))
        again = []
        if len(order) > 1:  # duplicates of parts already received
            again = data.draw(st.lists(st.sampled_from(order[:-1]), max_size=3))
        r = text.Reassembler()
        results = [r.add(self.KEY, i + 1, len(pieces), pieces[i], data_coding, 0.0)
                   for i in order[:-1] + again + order[-1:]]
        self.assertEqual(results[:-1], [None] * (len(results) - 1))
        self.assertEqual(results[-1].decode().text, value)
        self.assertEqual((len(r), r.duplicates), (0, len(again)))

    def test_udh_with_other_ies_end_to_end(self):
        """
        Parts with port addressing and a language shift IE around a 16-bit
        concatenation IE, out of order, one duplicated.
        """
        body = "Hello €uro [world]"
        septets = gsm.encode(body)
        r = text.Reassembler()
        results = []
        for seq in (2, 1, 2):
            udh = bytes.fromhex(f"0f 0504 1581 0000 0804 0102 02{seq:02x} 2401 01")
            chunk = septets[:10] if seq == 1 else septets[10:]
            part = text.mo_part(udh + chunk, 0, 0x43, {})
            self.assertEqual((part.ref, part.total, part.seq, part.method),
                             (0x0102, 2, seq, "udh16"))
            results.append(r.add(("smsc1", "a", "b", part.ref), part.seq, part.total,
                                 part.payload, part.data_coding, 0.0))
        self.assertIsNone(results[0])
        self.assertEqual(results[1].decode().text, body)
        self.assertIsNone(results[2])

    def test_out_of_order_and_duplicates(self):
        r = text.Reassembler()
        self.assertIsNone(r.add(self.KEY, 3, 3, b"ghi", 0, 1.0))
        self.assertIsNone(r.add(self.KEY, 1, 3, b"abc", 0, 2.0))
        self.assertIsNone(r.add(self.KEY, 3, 3, b"XXX", 0, 2.5))  # duplicate: ignored
        self.assertEqual(len(r), 1)
        message = r.add(self.KEY, 2, 3, b"def", 0, 3.0)
        self.assertEqual((message.payload, message.partial, message.first_seen, message.key),
                         (b"abcdefghi", False, 1.0, self.KEY + (3,)))
        self.assertEqual(message.decode().text, "abcdefghi")
        self.assertEqual((len(r), r.duplicates), (0, 1))

    def test_key_includes_total_and_fields(self):
        r = text.Reassembler()
        r.add(self.KEY, 1, 2, b"a", 0, 0)
        r.add(self.KEY, 1, 3, b"b", 0, 0)
        r.add(("smsc2",) + self.KEY[1:], 1, 2, b"c", 0, 0)
        self.assertEqual(len(r), 3)

    def test_ucs2_split_mid_character(self):
        """
        A foreign SMSC split UCS-2 after an odd octet: decoded after
        concatenation, it is still right; so is a GSM escape pair split.
        """
        data = "ЖЖ😀".encode("utf-16-be")
        r = text.Reassembler()
        r.add(self.KEY, 2, 2, data[3:], 8, 0)
        self.assertEqual(r.add(self.KEY, 1, 2, data[:3], 8, 0).decode().text, "ЖЖ😀")
        r.add(self.KEY, 1, 2, b"ab\x1b", 0, 0)
        self.assertEqual(r.add(self.KEY, 2, 2, b"\x65c", 0, 0).decode().text, "ab€c")

    def test_expired_partial(self):
        r = text.Reassembler()
        r.add(self.KEY, 2, 3, "b".encode("utf-16-be"), 8, 10.0)
        r.add(self.KEY[:3] + (7,), 1, 2, b"x", 0, 50.0)
        self.assertEqual(r.expired(39.0, 30.0), [])
        [old] = r.expired(40.0, 30.0)
        self.assertEqual((old.partial, old.parts, old.missing), (True, (2,), (1, 3)))
        self.assertEqual(old.decode(gap="…").text, "…b…")
        self.assertEqual(len(r), 1)

    def test_eviction(self):
        r = text.Reassembler(max_pending=2)
        for ref in range(3):
            r.add(self.KEY[:3] + (ref,), 1, 2, b"x", 0, float(ref))
        self.assertEqual(len(r), 2)
        [evicted] = r.expired(2.0, 100.0)
        self.assertEqual((evicted.key[3], evicted.partial), (0, True))

    def test_binary_message(self):
        r = text.Reassembler()
        r.add(self.KEY, 1, 2, b"\x00\x01", 0xF4, 0)
        decoded = r.add(self.KEY, 2, 2, b"\xff", 0xF4, 0).decode()
        self.assertEqual((decoded.text, decoded.binary, decoded.data),
                         (None, True, b"\x00\x01\xff"))

    def test_duplicate_window(self):
        r = text.Reassembler(duplicate_window=60.0)
        r.add(self.KEY, 1, 2, b"a", 0, 0.0)
        self.assertIsNotNone(r.add(self.KEY, 2, 2, b"b", 0, 1.0))
        self.assertIsNone(r.add(self.KEY, 2, 2, b"b", 0, 30.0))  # late resend
        self.assertEqual((len(r), r.duplicates), (0, 1))
        r.expired(100.0, 30.0)
        self.assertIsNone(r.add(self.KEY, 1, 2, b"a", 0, 100.0))  # window over: new
        self.assertEqual(len(r), 1)

    def test_single_part(self):
        message = text.Reassembler().add(self.KEY, 1, 1, b"hi", 0, 5.0)
        self.assertEqual((message.payload, message.partial), (b"hi", False))

    def test_bad_arguments(self):
        r = text.Reassembler()
        self.assertRaises(ValueError, r.add, self.KEY, 0, 2, b"", 0, 0)
        self.assertRaises(ValueError, r.add, self.KEY, 3, 2, b"", 0, 0)
        self.assertRaises(ValueError, r.add, self.KEY, 1, 256, b"", 0, 0)
        self.assertRaises(ValueError, r.add, ("a", 1.5), 1, 2, b"", 0, 0)
        self.assertRaises(ValueError, text.Reassembler, 0)

    def test_state_round_trip(self):
        r = text.Reassembler(max_pending=2, duplicate_window=60.0)
        r.add(self.KEY, 2, 3, b"\x00\xff", 0, 1.0)
        r.add(self.KEY[:3] + (1,), 1, 2, b"a", 0, 2.0)
        r.add(self.KEY[:3] + (1,), 2, 2, b"b", 0, 3.0)  # completed: recent
        r.add(self.KEY[:3] + (2,), 1, 2, b"c", 8, 4.0)
        r.add(self.KEY[:3] + (3,), 1, 2, b"d", 8, 5.0)  # evicts ref 0x42
        state = json.loads(json.dumps(r.to_state()))
        copy = text.Reassembler.from_state(state, max_pending=2, duplicate_window=60.0)
        self.assertEqual(copy.to_state(), r.to_state())
        self.assertIsNone(copy.add(self.KEY[:3] + (1,), 1, 2, b"a", 0, 6.0))  # recent
        message = copy.add(self.KEY[:3] + (2,), 2, 2, b"e", 8, 6.0)
        self.assertEqual((message.payload, message.first_seen), (b"ce", 4.0))
        [evicted] = copy.expired(6.0, 100.0)
        self.assertEqual((evicted.payload, evicted.key), (b"\x00\xff", self.KEY + (3,)))

    def test_bad_state(self):
        for state in ({}, {"version": 2}, {"version": 1, "pending": [{"key": []}]},
                      {"version": 1, "pending": [{"key": ["a"], "total": 2, "first_seen": 0,
                                                  "parts": [{"index": 3, "data_coding": 0,
                                                             "payload": ""}]}]},
                      {"version": 1, "pending": [{"key": ["a"], "total": 2, "first_seen": 0,
                                                  "parts": [{"index": 1, "data_coding": 0,
                                                             "payload": "!!"}]}]}):
            e = self.assertRaises(ValueError, text.Reassembler.from_state, state)
            self.assertIn("bad reassembly state", str(e))


class BodyToTextTests(SynchronousTestCase):
    def test_charsets(self):
        self.assertEqual(text.body_to_text("Жa".encode()), "Жa")
        self.assertEqual(text.body_to_text(b"caf\xe9", "ISO-8859-1"), "café")
        self.assertEqual(text.body_to_text("Жa".encode("utf-16"), '"UTF-16"'), "Жa")

    def test_errors(self):
        e = self.assertRaises(text.TextError, text.body_to_text, b"a", "x-klingon")
        self.assertIn("x-klingon", str(e))
        self.assertRaises(text.TextError, text.body_to_text, b"a", "base64")
        e = self.assertRaises(text.TextError, text.body_to_text, b"ab\xff", None)
        self.assertIn("octet 2", str(e))
