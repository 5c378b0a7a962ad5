"""
Tests for L{gwsms.core.receipts}.
"""

from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from gwsms.core.receipts import (
    FINAL_STATES,
    STATES,
    Receipt,
    ReceiptError,
    canonical_ids,
    ids_match,
    is_receipt,
    message_id_variants,
    normalize_state,
    parse_receipt,
    parse_receipt_text,
    receipt_key,
    receipt_kind,
)
from gwsms.smpp import pdu as pdumod


def _dr(text, esm_class=0x04, data_coding=0, **tlvs):
    if isinstance(text, str):
        text = text.encode("latin-1")
    return parse_receipt(
        {"esm_class": esm_class, "data_coding": data_coding, "short_message": text}, tlvs
    )


class EsmClassTests(SynchronousTestCase):
    def test_kinds(self):
        table = {
            0x00: None,
            0x04: "smsc_delivery_receipt",
            0x08: "sme_delivery_ack",
            0x10: "sme_manual_ack",
            0x18: None,  # conversation abort
            0x20: "intermediate_notification",
            0x0C: None,  # reserved
            0x40: None,  # UDHI alone: an ordinary (concatenated) message
            0x44: "smsc_delivery_receipt",  # UDHI + receipt
            0x87: "smsc_delivery_receipt",  # reply path + mode bits
            0x03: None,  # mode bits only
        }
        for esm_class, kind in table.items():
            self.assertEqual(receipt_kind(esm_class), kind, hex(esm_class))
            self.assertEqual(is_receipt(esm_class), kind is not None, hex(esm_class))


class StateTests(SynchronousTestCase):
    def test_message_state_values(self):
        self.assertEqual(
            [normalize_state(v) for v in range(1, 9)],
            ["ENROUTE", "DELIVRD", "EXPIRED", "DELETED", "UNDELIV", "ACCEPTD",
             "UNKNOWN", "REJECTD"],
        )
        self.assertIsNone(normalize_state(0))
        self.assertIsNone(normalize_state(9))
        self.assertEqual(normalize_state("2"), "DELIVRD")

    def test_aliases(self):
        table = {
            "delivrd": "DELIVRD", "Delivered": "DELIVRD", " DELIVRD ": "DELIVRD",
            "UNDELIVERABLE": "UNDELIV", "failed": "UNDELIV", "REJECTED": "REJECTD",
            "ACCEPTED": "ACCEPTD", "BUFFRED": "ENROUTE", "expired": "EXPIRED",
            "deleted": "DELETED", "unknown": "UNKNOWN", "NONSENSE": None, "": None,
            None: None,
        }
        for raw, state in table.items():
            self.assertEqual(normalize_state(raw), state, raw)

    def test_final_states(self):
        self.assertEqual(
            {s for s in STATES if s in FINAL_STATES},
            {"DELIVRD", "EXPIRED", "DELETED", "UNDELIV", "REJECTD"},
        )


class TextReceiptTests(SynchronousTestCase):
    """
    Receipt texts shaped like the ones real SMSCs and gateways send.
    """

    def test_appendix_b(self):
        r = _dr("id:1234567890 sub:001 dlvrd:001 submit date:0501011200 "
                "done date:0501011201 stat:DELIVRD err:000 Text:Hello world ...")
        self.assertEqual(
            r,
            Receipt(message_id="1234567890", state="DELIVRD", final=True, error="000",
                    submit_date=datetime(2005, 1, 1, 12, 0),
                    done_date=datetime(2005, 1, 1, 12, 1), sub=1, dlvrd=1,
                    text="Hello world ...", kind="smsc_delivery_receipt"),
        )
        self.assertTrue(r.delivered)

    def test_kannel_shape(self):
        r = _dr("id:73b1ad2b sub:001 dlvrd:001 submit date:1010131527 "
                "done date:1010131528 stat:DELIVRD err:000 text:Test message from kannel")
        self.assertEqual((r.message_id, r.state, r.text),
                         ("73b1ad2b", "DELIVRD", "Test message from kannel"))

    def test_jasmin_shape(self):
        r = _dr("id:8fa8c8d4-4cb5-4d11-8c6f-1a1d2a2f2c53 sub:001 dlvrd:001 "
                "submit date:200101120000 done date:200101120005 stat:DELIVRD "
                "err:000 text:Hello World")
        self.assertEqual(r.message_id, "8fa8c8d4-4cb5-4d11-8c6f-1a1d2a2f2c53")
        self.assertEqual(r.submit_date, datetime(2020, 1, 1, 12, 0, 0))
        self.assertEqual(r.done_date, datetime(2020, 1, 1, 12, 0, 5))

    def test_net_smpp_shape(self):
        r = _dr("id:12345 sub:001 dlvrd:000 submit date:0810291200 "
                "done date:0810291201 stat:UNDELIV err:0 Text:")
        self.assertEqual((r.message_id, r.state, r.final, r.error, r.dlvrd, r.text),
                         ("12345", "UNDELIV", True, "0", 0, ""))

    def test_logica_expired(self):
        r = _dr("id:2942157 sub:001 dlvrd:000 submit date:0711011403 "
                "done date:0711021403 stat:EXPIRED err:000 text:")
        self.assertEqual((r.state, r.final), ("EXPIRED", True))

    def test_upper_case_keys(self):
        r = _dr("ID:ABC123 SUB:001 DLVRD:001 SUBMIT DATE:2301011200 "
                "DONE DATE:2301011201 STAT:REJECTD ERR:00B TEXT:Hi")
        self.assertEqual((r.message_id, r.state, r.error, r.text, r.sub),
                         ("ABC123", "REJECTD", "00B", "Hi", 1))

    def test_missing_fields(self):
        r = _dr("id:1A2B stat:DELIVRD")
        self.assertEqual(r, Receipt(message_id="1A2B", state="DELIVRD", final=True,
                                    kind="smsc_delivery_receipt"))

    def test_extra_spaces(self):
        r = _dr("  id:  12345   sub:  001   dlvrd: 001  submit  date: 2301011200  "
                "done date:   2301011201 stat:   DELIVRD    err: 000   text:  spaced  ")
        self.assertEqual((r.message_id, r.state, r.error, r.sub, r.text),
                         ("12345", "DELIVRD", "000", 1, "spaced"))
        self.assertEqual(r.submit_date, datetime(2023, 1, 1, 12, 0))

    def test_other_order(self):
        r = _dr("stat:UNDELIV err:034 done date:2301011201 id:987 "
                "submit date:2301011200 dlvrd:000 sub:001 text:abc")
        self.assertEqual((r.message_id, r.state, r.error, r.dlvrd, r.text),
                         ("987", "UNDELIV", "034", 0, "abc"))

    def test_underscore_and_joined_date_keys(self):
        r = _dr("id:5 submit_date:2301011200 donedate:2301011201 stat:DELIVRD")
        self.assertEqual(r.submit_date, datetime(2023, 1, 1, 12, 0))
        self.assertEqual(r.done_date, datetime(2023, 1, 1, 12, 1))

    def test_error_spelled_out(self):
        r = _dr("id:5 stat:UNDELIV Error:011 text:x")
        self.assertEqual((r.state, r.error, r.text), ("UNDELIV", "011", "x"))

    def test_text_may_contain_anything(self):
        r = _dr("id:42 sub:001 dlvrd:001 submit date:2301011200 done date:2301011201 "
                "stat:DELIVRD err:000 text:my id:99 stat:UNDELIV err:7 \x00\xff ok")
        self.assertEqual((r.message_id, r.state, r.error), ("42", "DELIVRD", "000"))
        self.assertEqual(r.text, "my id:99 stat:UNDELIV err:7 \x00\xff ok")

    def test_text_before_other_fields(self):
        r = _dr("id:7 text:hello there stat:EXPIRED err:001")
        self.assertEqual((r.text, r.state, r.error), ("hello there", "EXPIRED", "001"))

    def test_key_inside_word_is_not_a_key(self):
        fields = parse_receipt_text("id:1 xstat:DELIVRD msgid:9")
        self.assertEqual(fields, {"id": "1 xstat:DELIVRD msgid:9"})
        r = _dr("id:1 xstat:DELIVRD")
        self.assertEqual((r.message_id, r.state), ("1", "UNKNOWN"))

    def test_comma_separated(self):
        r = _dr("id:77,sub:001,dlvrd:001,stat:DELIVRD,err:000")
        self.assertEqual((r.message_id, r.state), ("77", "DELIVRD"))

    def test_stat_spellings(self):
        for raw, state, final in [
            ("DELIVERED", "DELIVRD", True), ("delivrd", "DELIVRD", True),
            ("UNDELIVERABLE", "UNDELIV", True), ("ACCEPTD", "ACCEPTD", False),
            ("ENROUTE", "ENROUTE", False), ("BUFFRED", "ENROUTE", False),
            ("UNKNOWN", "UNKNOWN", False), ("DELETED", "DELETED", True),
            ("WHATEVER", "UNKNOWN", False),
        ]:
            r = _dr(f"id:1 stat:{raw} err:000")
            self.assertEqual((r.state, r.final), (state, final), raw)

    def test_no_stat_is_unknown(self):
        r = _dr("id:1 err:000")
        self.assertEqual((r.state, r.final), ("UNKNOWN", False))

    def test_dates(self):
        r = _dr("id:1 submit date:231231235959 done date:2401010000 stat:DELIVRD")
        self.assertEqual(r.submit_date, datetime(2023, 12, 31, 23, 59, 59))
        self.assertEqual(r.done_date, datetime(2024, 1, 1, 0, 0))
        r = _dr("id:1 submit date:20231231235959 done date:2313011200 stat:DELIVRD")
        self.assertEqual(r.submit_date, datetime(2023, 12, 31, 23, 59, 59))
        self.assertIsNone(r.done_date)  # month 13
        r = _dr("id:1 submit date:12345 done date:abcdefghij stat:DELIVRD")
        self.assertEqual((r.submit_date, r.done_date), (None, None))

    def test_intermediate_notification_not_final(self):
        r = _dr("id:1 stat:DELIVRD", esm_class=0x20)
        self.assertEqual((r.kind, r.final), ("intermediate_notification", False))

    def test_sme_ack(self):
        r = _dr("id:1 stat:DELIVRD", esm_class=0x08)
        self.assertEqual((r.kind, r.final), ("sme_delivery_ack", True))

    def test_ucs2_receipt(self):
        text = "id:0815 stat:DELIVRD err:000 text:\u041f\u0440\u0438\u0432\u0435\u0442"
        r = _dr(text.encode("utf-16-be"), data_coding=8)
        self.assertEqual((r.message_id, r.state, r.text), ("0815", "DELIVRD", "Привет"))

    def test_message_payload(self):
        r = parse_receipt(
            {"esm_class": 4, "short_message": b""},
            {"message_payload": b"id:55 sub:001 dlvrd:001 stat:DELIVRD err:000 text:x"},
        )
        self.assertEqual((r.message_id, r.state, r.text), ("55", "DELIVRD", "x"))

    def test_no_id(self):
        e = self.assertRaises(ReceiptError, _dr, "sub:001 dlvrd:001 stat:DELIVRD")
        self.assertIn("no message id", str(e).replace("without a message id", "no message id"))
        self.assertIn("receipted_message_id", str(e))
        self.assertIn("stat:DELIVRD", str(e))
        e = self.assertRaises(ReceiptError, _dr, "")
        self.assertIn("(empty)", str(e))
        self.assertRaises(ReceiptError, _dr, "id:   stat:DELIVRD")
        self.assertRaises(ReceiptError, parse_receipt, {}, {})


class TlvReceiptTests(SynchronousTestCase):
    def test_tlv_only(self):
        r = parse_receipt(
            {"esm_class": 4, "short_message": b""},
            {"receipted_message_id": "ABC123", "message_state": 2,
             "network_error_code": b"\x03\x00\x00"},
        )
        self.assertEqual(r, Receipt(message_id="ABC123", state="DELIVRD", final=True,
                                    error="000", kind="smsc_delivery_receipt",
                                    network_error=(3, 0)))

    def test_tlv_wins_over_text(self):
        r = _dr("id:111 stat:DELIVRD err:000 text:x", receipted_message_id="222",
                message_state=5, network_error_code=b"\x03\x01\x02")
        self.assertEqual((r.message_id, r.state, r.final, r.error, r.network_error),
                         ("222", "UNDELIV", True, "258", (3, 258)))
        self.assertEqual(r.text, "x")

    def test_bad_tlv_values_fall_back_to_text(self):
        r = _dr("id:111 stat:EXPIRED err:005", receipted_message_id="  \x00",
                message_state=42, network_error_code=b"\x01")
        self.assertEqual((r.message_id, r.state, r.error, r.network_error),
                         ("111", "EXPIRED", "005", None))

    def test_int_tag_keys_and_bytes(self):
        r = parse_receipt({"esm_class": 4}, {0x001E: b"00FF\x00", 0x0427: 8})
        self.assertEqual((r.message_id, r.state, r.final), ("00FF", "REJECTD", True))

    def test_decoded_pdu(self):
        """A deliver_sm through the real codec, TLVs and all."""
        original = pdumod.make(
            "deliver_sm", sequence_number=7, source_addr="4915123", destination_addr="100",
            esm_class=0x04, short_message=b"id:0A1B2C sub:001 dlvrd:001 stat:DELIVRD",
            tlvs={"receipted_message_id": "0A1B2C", "message_state": 2,
                  "network_error_code": b"\x03\x00\x07"},
        )
        decoded = pdumod.decode(pdumod.encode(original))
        r = parse_receipt(decoded.params, decoded.tlvs)
        self.assertEqual((r.message_id, r.state, r.error, r.network_error, r.sub),
                         ("0A1B2C", "DELIVRD", "007", (3, 7), 1))
        self.assertTrue(ids_match("662316", r.message_id))


class MessageIdTests(SynchronousTestCase):
    def test_table(self):
        table = [
            ("0A1B2C", "662316", True),
            ("662316", "0A1B2C", True),
            ("662316", "a1b2c", True),
            ("0A1B2C", "0000662316", True),
            ("00012345", "12345", True),
            ("abcdef", "ABCDEF", True),
            ("ABCDEF", "11259375", True),
            ("12345", "3039", True),  # 12345 == 0x3039
            ("12345", "12346", False),
            ("0A1B2C", "0A1B2D", False),
            ("10", "22", False),  # "16" is shared only via two conversions
            ("8fa8c8d4-4cb5", "8FA8C8D4-4CB5", True),
            ("8fa8c8d4-4cb5", "8fa8c8d4-4cb6", False),
            ("", "", False),
            ("0", "000", True),
            (" 42 ", "42", True),
        ]
        for a, b, expected in table:
            self.assertEqual(ids_match(a, b), expected, (a, b))
            self.assertEqual(ids_match(b, a), expected, (b, a))

    def test_canonical_ids(self):
        self.assertEqual(canonical_ids("0A1B2C"), ["a1b2c", "662316"])
        self.assertEqual(canonical_ids("662316"), ["662316", "a1b2c", "6693654"])
        self.assertEqual(canonical_ids("0000"), ["0"])
        self.assertEqual(canonical_ids("Msg-01"), ["msg-01"])
        self.assertEqual(canonical_ids("xyz"), ["xyz"])
        self.assertEqual(receipt_key(" 000ABC "), "abc")
        self.assertEqual(message_id_variants("0A1B2C"), {"a1b2c", "662316"})

    def test_non_ascii_digits(self):
        self.assertEqual(canonical_ids("\u00b2\u0663"), ["\u00b2\u0663"])
        self.assertFalse(ids_match("\u0663", "3"))

    @settings(max_examples=300, deadline=None)
    @given(st.integers(min_value=0, max_value=2**64), st.integers(0, 4),
           st.booleans(), st.booleans())
    def test_hex_decimal_property(self, n, pad, upper, hex_first):
        hex_id = "0" * pad + format(n, "X" if upper else "x")
        dec_id = "0" * pad + str(n)
        a, b = (hex_id, dec_id) if hex_first else (dec_id, hex_id)
        self.assertTrue(ids_match(a, b))
        self.assertIn(receipt_key(b), canonical_ids(a))

    @settings(max_examples=300, deadline=None)
    @given(st.text(alphabet="0123456789abcdefABCDEFxyz-", min_size=1, max_size=12),
           st.text(alphabet="0123456789abcdefABCDEFxyz-", min_size=1, max_size=12))
    def test_symmetric_and_store_consistent(self, a, b):
        self.assertEqual(ids_match(a, b), ids_match(b, a))
        # The store's single-key lookup agrees with ids_match.
        self.assertEqual(ids_match(a, b), receipt_key(b) in canonical_ids(a))
        self.assertTrue(ids_match(a, a))
        self.assertLessEqual(len(canonical_ids(a)), 3)

    @settings(max_examples=200, deadline=None)
    @given(st.text(max_size=200))
    def test_parse_never_crashes(self, text):
        try:
            r = _dr(text.encode("latin-1", "replace"))
        except ReceiptError:
            return
        self.assertIn(r.state, STATES)
        self.assertTrue(r.message_id)
