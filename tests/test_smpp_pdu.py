# -*- test-case-name: tests.test_smpp_pdu -*-
"""
Tests for L{gwsms.smpp.pdu} and L{gwsms.smpp.constants}: round trips for
every command and TLV, wire layouts built by hand from the SMPP 3.4 field
tables, every decode / encode error and its command_status.
"""

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from gwsms.smpp import constants, pdu, pdu_codegen
from gwsms.smpp.constants import CommandId, CommandStatus, Tag

S = CommandStatus


def cstr(text):
    return text.encode("latin-1") + b"\0"


def frame(command_id, body, status=0, seq=1):
    return struct.pack("!IIII", 16 + len(body), command_id, status, seq) + body


#: Realistic parameters for every command.
SAMPLES = {
    "bind_transmitter": dict(
        system_id="gwsms", password="s3cret", system_type="VMA", interface_version=0x34,
        addr_ton=1, addr_npi=1, address_range="^49",
    ),
    "bind_receiver": dict(system_id="rx-user", password="pw", system_type="", addr_ton=0),
    "bind_transceiver": dict(system_id="trx", password="12345678", address_range="[0-9]+"),
    "bind_transmitter_resp": dict(system_id="SMSC-A"),
    "bind_receiver_resp": dict(system_id="SMSC-B"),
    "bind_transceiver_resp": dict(system_id="SMSC-C"),
    "outbind": dict(system_id="smsc", password="outpw"),
    "unbind": {},
    "unbind_resp": {},
    "enquire_link": {},
    "enquire_link_resp": {},
    "generic_nack": {},
    "submit_sm": dict(
        service_type="CMT", source_addr_ton=5, source_addr_npi=0, source_addr="gwsms",
        dest_addr_ton=1, dest_addr_npi=1, destination_addr="4915123456789", esm_class=0x40,
        protocol_id=0, priority_flag=1, schedule_delivery_time="261127103000000+",
        validity_period="000001000000000R", registered_delivery=1, replace_if_present_flag=0,
        data_coding=8, sm_default_msg_id=0,
        short_message=b"\x05\x00\x03\x2a\x02\x01" + "Grüße ☺".encode("utf-16-be"),
    ),
    "submit_sm_resp": dict(message_id="0a1b2c3d"),
    "deliver_sm": dict(
        source_addr_ton=1, source_addr_npi=1, source_addr="447700900123", dest_addr_ton=0,
        dest_addr_npi=1, destination_addr="1234", esm_class=0x04,
        short_message=b"id:0a1b2c3d sub:001 dlvrd:001 submit date:2611271030 done date:2611271031"
        b" stat:DELIVRD err:000 text:hello",
    ),
    "deliver_sm_resp": dict(message_id=""),
    "submit_multi": dict(
        service_type="", source_addr_ton=1, source_addr_npi=1, source_addr="4930123",
        dest_addresses=[
            dict(dest_flag=1, dest_addr_ton=1, dest_addr_npi=1, destination_addr="4915100000001"),
            dict(dest_flag=2, dl_name="sales-team"),
            dict(dest_flag=1, dest_addr_ton=2, dest_addr_npi=8, destination_addr="01511234"),
        ],
        esm_class=0, registered_delivery=1, data_coding=0, short_message=b"meeting at 10",
    ),
    "submit_multi_resp": dict(
        message_id="77",
        unsuccess_sme=[
            dict(dest_addr_ton=2, dest_addr_npi=8, destination_addr="01511234",
                 error_status_code=S.ESME_RINVDSTADR),
        ],
    ),
    "data_sm": dict(
        service_type="WAP", source_addr_ton=1, source_addr_npi=1, source_addr="4930" + "1" * 40,
        dest_addr_ton=1, dest_addr_npi=1, destination_addr="49151" + "2" * 50, esm_class=0,
        registered_delivery=0, data_coding=4,
    ),
    "data_sm_resp": dict(message_id="ds-1"),
    "query_sm": dict(message_id="0a1b2c3d", source_addr_ton=5, source_addr_npi=0, source_addr="gwsms"),
    "query_sm_resp": dict(message_id="0a1b2c3d", final_date="261127103100000+", message_state=2, error_code=0),
    "cancel_sm": dict(
        service_type="", message_id="0a1b2c3d", source_addr_ton=5, source_addr_npi=0,
        source_addr="gwsms", dest_addr_ton=1, dest_addr_npi=1, destination_addr="4915123456789",
    ),
    "cancel_sm_resp": {},
    "replace_sm": dict(
        message_id="0a1b2c3d", source_addr_ton=5, source_addr_npi=0, source_addr="gwsms",
        schedule_delivery_time="", validity_period="000002000000000R", registered_delivery=1,
        sm_default_msg_id=0, short_message=b"replaced text",
    ),
    "replace_sm_resp": {},
    "alert_notification": dict(
        source_addr_ton=1, source_addr_npi=1, source_addr="4915123456789", esme_addr_ton=0,
        esme_addr_npi=0, esme_addr="gwsms",
    ),
}

#: One valid value per TLV kind and size.
TLV_SAMPLES = {
    "additional_status_info_text": "no route to destination",
    "receipted_message_id": "0a1b2c3d",
    "source_subaddress": b"\xa0" + b"1234",
    "dest_subaddress": b"\x80" + b"99",
    "callback_num_atag": b"\x00Helpdesk",
    "callback_num": b"\x00\x01\x01" + b"4930123",
    "network_error_code": b"\x03\x00\x1b",
    "message_payload": b"x" * 1000,
    "alert_on_message_delivery": b"",
    "its_session_info": b"\x02\x01",
}


def tlv_value(name):
    """
    A valid value for TLV C{name}.
    """
    if name in TLV_SAMPLES:
        return TLV_SAMPLES[name]
    tag, kind, low, high = pdu.TLV_TYPES[name]
    assert kind == "int", name
    return {1: 0x7F, 2: 0x1234, 4: 0x01020304}[low]


class ConstantsTests(SynchronousTestCase):
    """
    The constants follow the SMPP 3.4 numbering.
    """

    def test_every_request_has_its_response(self):
        """
        Every request except outbind and alert_notification has a response
        with the high bit set.
        """
        for command in CommandId:
            if command & constants.RESPONSE_BIT or command.name in ("outbind", "alert_notification"):
                continue
            self.assertEqual(CommandId[command.name + "_resp"], command | constants.RESPONSE_BIT)
        self.assertEqual(len(CommandId), 27)

    def test_well_known_values(self):
        """
        Spot checks against the spec tables.
        """
        self.assertEqual(CommandId.submit_multi, 0x21)
        self.assertEqual(CommandId.data_sm_resp, 0x80000103)
        self.assertEqual(S.ESME_RMSGQFUL, 0x14)
        self.assertEqual(S.ESME_RTHROTTLED, 0x58)
        self.assertEqual(S.ESME_RX_T_APPN, 0x64)
        self.assertEqual(S.ESME_RINVOPTPARSTREAM, 0xC0)
        self.assertEqual(S.ESME_RUNKNOWNERR, 0xFF)
        self.assertEqual(Tag.congestion_state, 0x0428)
        self.assertEqual(Tag.message_payload, 0x0424)
        self.assertEqual(Tag.its_session_info, 0x1383)

    def test_every_tag_has_a_type(self):
        """
        Every tag has a TLV type with sane bounds.
        """
        self.assertEqual(set(pdu.TLV_TYPES), {t.name for t in Tag})
        for name, (tag, kind, low, high) in pdu.TLV_TYPES.items():
            self.assertEqual(Tag[name], tag)
            self.assertIn(kind, ("int", "cstr", "octets"))
            self.assertLessEqual(low, high)
            if kind == "int":
                self.assertIn(low, (1, 2, 4))
                self.assertEqual(low, high)


class RoundTripTests(SynchronousTestCase):
    """
    encode and decode are inverse for every command and TLV.
    """

    def assertRoundTrip(self, original):
        data = pdu.encode(original)
        self.assertEqual(struct.unpack("!I", data[:4])[0], len(data))
        decoded = pdu.decode(data)
        self.assertEqual(decoded, original)
        self.assertEqual(pdu.encode(decoded), data)
        # The generated fast decoder agrees with the reference decoder.
        fast = pdu._DECODERS[original.command_id](
            data, original.command_id, original.command_status, original.sequence_number, len(data)
        )
        self.assertEqual(fast, pdu._decode_checked(data))
        return data

    def test_every_command(self):
        """
        Every command survives a round trip with realistic values.
        """
        self.assertEqual(set(SAMPLES), {c.name for c in CommandId})
        for seq, (command, params) in enumerate(sorted(SAMPLES.items()), 1):
            original = pdu.make(command, seq, **params)
            self.assertEqual(original.command, command)
            self.assertRoundTrip(original)

    def test_every_command_with_defaults(self):
        """
        A PDU with only spec defaults survives a round trip.
        """
        for command in CommandId:
            self.assertRoundTrip(pdu.make(command.name, 0x7FFFFFFF))

    def test_every_tlv(self):
        """
        Every TLV survives a round trip in a data_sm (which allows most).
        """
        tlvs = {name: tlv_value(name) for name in pdu.TLV_TYPES}
        original = pdu.make("data_sm", 9, tlvs=tlvs, **SAMPLES["data_sm"])
        data = self.assertRoundTrip(original)
        decoded = pdu.decode(data)
        for name in pdu.TLV_TYPES:
            self.assertEqual(decoded.tlvs[name], tlvs[name], name)
            self.assertIs(type(decoded.tlvs[name]), type(tlvs[name]), name)

    def test_tlv_wire_layout(self):
        """
        TLVs are tag, length, value; int TLVs use their spec size, C-string
        TLVs carry their NUL.
        """
        original = pdu.make(
            "deliver_sm",
            3,
            tlvs={"message_state": 2, "receipted_message_id": "ab", "sar_msg_ref_num": 0x0102,
                  "qos_time_to_live": 7},
        )
        data = pdu.encode(original)
        self.assertTrue(
            data.endswith(
                b"\x04\x27\x00\x01\x02" + b"\x00\x1e\x00\x03ab\x00" + b"\x02\x0c\x00\x02\x01\x02"
                + b"\x00\x17\x00\x04\x00\x00\x00\x07"
            )
        )

    def test_unknown_tlv_kept_raw(self):
        """
        Unknown tags are keyed by the int tag and re-encoded unchanged.
        """
        body = pdu.encode(pdu.make("submit_sm_resp", 4, message_id="x"))[16:]
        body += b"\x14\x01\x00\x03abc" + b"\x14\x02\x00\x00"
        decoded = pdu.decode(frame(CommandId.submit_sm_resp, body, seq=4))
        self.assertEqual(decoded.tlvs, {0x1401: b"abc", 0x1402: b""})
        self.assertEqual(pdu.encode(decoded), frame(CommandId.submit_sm_resp, body, seq=4))

    def test_tlv_by_int_tag(self):
        """
        A known tag given as an int (or L{Tag}) is encoded by its type and
        decoded by name.
        """
        data = pdu.encode(pdu.make("deliver_sm", tlvs={Tag.message_state: 2, 0x001E: "m1"}))
        self.assertEqual(pdu.decode(data).tlvs, {"message_state": 2, "receipted_message_id": "m1"})

    def test_cstr_tlv_without_nul_accepted(self):
        """
        A C-string TLV whose terminating NUL is missing (seen in the wild
        for receipted_message_id) decodes to the whole value.
        """
        body = pdu.encode(pdu.make("deliver_sm"))[16:] + b"\x00\x1e\x00\x04abcd"
        self.assertEqual(pdu.decode(frame(5, body)).tlvs, {"receipted_message_id": "abcd"})

    def test_decode_accepts_buffers(self):
        """
        bytearray and memoryview are accepted.
        """
        data = pdu.encode(pdu.make("submit_sm", 1, **SAMPLES["submit_sm"]))
        self.assertEqual(pdu.decode(bytearray(data)), pdu.decode(data))
        self.assertEqual(pdu.decode(memoryview(data)), pdu.decode(data))

    def test_short_message_max(self):
        """
        254 octets fit in short_message.
        """
        self.assertRoundTrip(pdu.make("submit_sm", 1, short_message=bytes(range(254))))

    def test_latin1_cstrings(self):
        """
        C-Octet strings are latin-1 str.
        """
        self.assertRoundTrip(pdu.make("submit_sm", 1, source_addr="Café"))

    @settings(max_examples=200, deadline=None)
    @given(
        st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=255), max_size=20),
        st.integers(0, 255),
        st.binary(max_size=254),
        st.integers(1, 0xFFFFFFFF),
        st.dictionaries(st.integers(0x1400, 0x3FFF), st.binary(max_size=50), max_size=3),
    )
    def test_submit_sm_property(self, addr, byte, message, seq, tlvs):
        """
        Random submit_sm values round-trip.
        """
        self.assertRoundTrip(
            pdu.make("submit_sm", seq, source_addr=addr, destination_addr=addr[::-1],
                     esm_class=byte, data_coding=byte, short_message=message, tlvs=tlvs)
        )


class WireLayoutTests(SynchronousTestCase):
    """
    Bytes built by hand from the SMPP 3.4 field tables.
    """

    def test_enquire_link(self):
        self.assertEqual(
            pdu.encode(pdu.make("enquire_link", 1)),
            bytes.fromhex("00000010 00000015 00000000 00000001"),
        )

    def test_bind_transceiver(self):
        body = cstr("gwsms") + cstr("pw") + cstr("") + b"\x34\x01\x01" + cstr("")
        self.assertEqual(
            pdu.encode(pdu.make("bind_transceiver", 2, system_id="gwsms", password="pw",
                                addr_ton=1, addr_npi=1)),
            frame(9, body, seq=2),
        )

    def test_submit_sm(self):
        params = SAMPLES["submit_sm"]
        body = (
            cstr("CMT") + b"\x05\x00" + cstr("gwsms") + b"\x01\x01" + cstr("4915123456789")
            + b"\x40\x00\x01" + cstr("261127103000000+") + cstr("000001000000000R")
            + b"\x01\x00\x08\x00" + bytes([len(params["short_message"])]) + params["short_message"]
        )
        self.assertEqual(pdu.encode(pdu.make("submit_sm", 7, **params)), frame(4, body, seq=7))
        self.assertEqual(pdu.decode(frame(4, body, seq=7)).params, pdu.make("submit_sm", **params).params)

    def test_submit_multi(self):
        body = (
            cstr("") + b"\x01\x01" + cstr("4930123") + b"\x03"
            + b"\x01\x01\x01" + cstr("4915100000001") + b"\x02" + cstr("sales-team")
            + b"\x01\x02\x08" + cstr("01511234")
            + b"\x00\x00\x00" + cstr("") + cstr("") + b"\x01\x00\x00\x00" + b"\x0d" + b"meeting at 10"
        )
        self.assertEqual(pdu.encode(pdu.make("submit_multi", 1, **SAMPLES["submit_multi"])), frame(0x21, body))

    def test_submit_multi_resp(self):
        body = cstr("77") + b"\x01" + b"\x02\x08" + cstr("01511234") + b"\x00\x00\x00\x0b"
        self.assertEqual(
            pdu.encode(pdu.make("submit_multi_resp", 1, **SAMPLES["submit_multi_resp"])),
            frame(0x80000021, body),
        )

    def test_error_response_without_body(self):
        """
        bind and submit_sm responses with an error status carry no body
        (SMPP 3.4 4.1.2, 4.4.2); decoding an empty error body gives the
        defaults for any response.
        """
        self.assertEqual(
            pdu.encode(pdu.make("submit_sm_resp", 3, S.ESME_RTHROTTLED)),
            frame(0x80000004, b"", status=0x58, seq=3),
        )
        self.assertEqual(
            pdu.encode(pdu.make("bind_transceiver_resp", 3, S.ESME_RINVPASWD, system_id="x")),
            frame(0x80000009, b"", status=0x0E, seq=3),
        )
        for command in ("submit_sm_resp", "data_sm_resp", "query_sm_resp", "submit_multi_resp"):
            cid = CommandId[command]
            decoded = pdu.decode(frame(cid, b"", status=S.ESME_RSYSERR, seq=9))
            self.assertEqual(decoded, pdu.make(command, 9, S.ESME_RSYSERR))
        # With TLVs the body is sent.
        withtlv = pdu.make("submit_sm_resp", 3, 0x45, tlvs={"additional_status_info_text": "no"})
        self.assertEqual(pdu.decode(pdu.encode(withtlv)), withtlv)
        # data_sm_resp keeps its body (and may carry failure TLVs).
        self.assertEqual(pdu.encode(pdu.make("data_sm_resp", 3, 0x45)), frame(0x80000103, b"\0", 0x45, 3))


class PduObjectTests(SynchronousTestCase):
    """
    L{pdu.Pdu} and L{pdu.make}.
    """

    def test_make_defaults(self):
        p = pdu.make("submit_sm")
        self.assertEqual(p.params["short_message"], b"")
        self.assertEqual(p.params["source_addr"], "")
        self.assertEqual(p.params["esm_class"], 0)
        self.assertEqual(p.sequence_number, 0)
        self.assertEqual(p.tlvs, {})
        self.assertEqual(pdu.make("bind_transmitter").params["interface_version"], 0x34)
        self.assertEqual(pdu.make("submit_multi").params["dest_addresses"], [])

    def test_make_copies(self):
        """
        make copies lists and TLV dicts so PDUs share no mutable state.
        """
        dests = [dict(dest_flag=2, dl_name="a")]
        tlvs = {"message_state": 1}
        p = pdu.make("submit_multi", dest_addresses=dests, tlvs=tlvs)
        dests[0]["dl_name"] = "b"
        tlvs["message_state"] = 2
        self.assertEqual(p.params["dest_addresses"][0]["dl_name"], "a")
        self.assertEqual(p.tlvs, {"message_state": 1})
        self.assertIsNot(pdu.make("submit_multi").params["dest_addresses"],
                         pdu.make("submit_multi").params["dest_addresses"])

    def test_make_unknown(self):
        e = self.assertRaises(pdu.PduError, pdu.make, "submit_sm", sm_lenght=3)
        self.assertIn("sm_lenght", str(e))
        e = self.assertRaises(pdu.PduError, pdu.make, "submit_sms")
        self.assertIn("submit_sms", str(e))
        self.assertIsInstance(e, ValueError)
        self.assertRaises(pdu.PduError, pdu.make, 0x77)

    def test_make_by_id(self):
        self.assertEqual(pdu.make(CommandId.unbind, 5), pdu.make("unbind", 5))

    def test_properties(self):
        p = pdu.make("deliver_sm", 12)
        self.assertEqual(p.command, "deliver_sm")
        self.assertFalse(p.is_response)
        self.assertTrue(pdu.make("generic_nack").is_response)
        self.assertEqual(pdu.Pdu(0x1234).command, "0x00001234")

    def test_response(self):
        resp = pdu.make("submit_sm", 42).response(message_id="abc")
        self.assertEqual(resp, pdu.make("submit_sm_resp", 42, message_id="abc"))
        resp = pdu.make("enquire_link", 43).response(S.ESME_RSYSERR)
        self.assertEqual((resp.command, resp.sequence_number, resp.command_status),
                         ("enquire_link_resp", 43, S.ESME_RSYSERR))
        self.assertRaises(pdu.PduError, pdu.make("outbind").response)
        self.assertRaises(pdu.PduError, pdu.make("alert_notification").response)
        self.assertRaises(pdu.PduError, resp.response)

    def test_equality(self):
        self.assertEqual(pdu.make("unbind", 1), pdu.make("unbind", 1))
        self.assertNotEqual(pdu.make("unbind", 1), pdu.make("unbind", 2))
        self.assertNotEqual(pdu.make("unbind", 1), pdu.make("unbind", 1, 1))
        self.assertNotEqual(pdu.make("submit_sm", 1), pdu.make("submit_sm", 1, tlvs={"message_state": 1}))
        self.assertNotEqual(pdu.make("unbind"), "unbind")

    def test_repr_hides_password(self):
        for command in ("bind_transmitter", "outbind"):
            text = repr(pdu.make(command, 1, system_id="me", password="hunter2"))
            self.assertNotIn("hunter2", text)
            self.assertIn("me", text)
            self.assertIn(command, text)

    def test_partial_params_encode_with_defaults(self):
        """
        A L{pdu.Pdu} built directly with some params encodes the rest as
        defaults.
        """
        partial = pdu.Pdu(CommandId.submit_sm, 0, 3, {"destination_addr": "123"})
        self.assertEqual(pdu.encode(partial), pdu.encode(pdu.make("submit_sm", 3, destination_addr="123")))


class DecodeErrorTests(SynchronousTestCase):
    """
    Malformed PDUs raise L{pdu.PduError} with the status to answer.
    """

    def assertDecodeError(self, data, status, command_id=None, sequence_number=None, text=None):
        e = self.assertRaises(pdu.PduError, pdu.decode, data)
        self.assertEqual(e.status, status, str(e))
        self.assertEqual(e.command_id, command_id)
        self.assertEqual(e.sequence_number, sequence_number)
        if text:
            self.assertIn(text, str(e))
        return e

    def submit_body(self, **params):
        return pdu.encode(pdu.make("submit_sm", **params))[16:]

    def test_short_header(self):
        self.assertDecodeError(b"\x00\x00\x00\x10\x00", S.ESME_RINVCMDLEN, text="header")
        self.assertDecodeError(b"", S.ESME_RINVCMDLEN)

    def test_command_length_mismatch(self):
        data = frame(0x15, b"", seq=5)
        self.assertDecodeError(data + b"\0", S.ESME_RINVCMDLEN, 0x15, 5, "command_length")
        self.assertDecodeError(struct.pack("!IIII", 15, 0x15, 0, 5), S.ESME_RINVCMDLEN, 0x15, 5)

    def test_unknown_command_id(self):
        self.assertDecodeError(frame(0x99, b"", seq=6), S.ESME_RINVCMDID, 0x99, 6, "0x00000099")
        self.assertDecodeError(frame(0x80000099, b"", seq=6), S.ESME_RINVCMDID, 0x80000099, 6)

    def test_truncated_body(self):
        """
        A body that ends inside a field is ESME_RINVCMDLEN.
        """
        body = self.submit_body(source_addr="123")
        for cut in (1, 3, 5, 8, len(body) - 2):
            self.assertDecodeError(frame(4, body[:cut], seq=7), S.ESME_RINVCMDLEN, 4, 7)
        self.assertDecodeError(frame(4, b"", seq=7), S.ESME_RINVCMDLEN, 4, 7)
        self.assertDecodeError(frame(2, cstr("sys"), seq=7), S.ESME_RINVCMDLEN, 2, 7, "password")

    def test_empty_body_of_successful_response(self):
        """
        A successful submit_sm_resp must have its message_id; a
        deliver_sm_resp without its unused message_id is tolerated (common
        in the wild).
        """
        self.assertDecodeError(frame(0x80000004, b"", seq=8), S.ESME_RINVCMDLEN, 0x80000004, 8)
        self.assertDecodeError(frame(0x80000009, b"", seq=8), S.ESME_RINVCMDLEN, 0x80000009, 8)
        self.assertEqual(pdu.decode(frame(0x80000005, b"", seq=8)), pdu.make("deliver_sm_resp", 8))

    def test_cstring_too_long(self):
        """
        A C-Octet string not terminated within its maximum size gets the
        field's own status.
        """
        cases = [
            (2, b"a" * 16 + b"\0" + cstr("pw") + cstr("") + b"\x34\0\0" + cstr(""), S.ESME_RINVSYSID, "system_id"),
            (2, cstr("a") + b"p" * 9 + b"\0" + cstr("") + b"\x34\0\0" + cstr(""), S.ESME_RINVPASWD, "password"),
            (2, cstr("a") + cstr("p") + b"t" * 13 + b"\0" + b"\x34\0\0" + cstr(""), S.ESME_RINVSYSTYP, None),
            (2, cstr("a") + cstr("p") + cstr("") + b"\x34\0\0" + b"r" * 41 + b"\0", S.ESME_RINVPARLEN, "address_range"),
            (4, b"s" * 6 + self.submit_body()[1:], S.ESME_RINVSERTYP, "service_type"),
            (4, cstr("") + b"\0\0" + b"1" * 21 + b"\0" + self.submit_body()[4:], S.ESME_RINVSRCADR, "source_addr"),
            (0x80000004, b"m" * 65 + b"\0", S.ESME_RINVMSGID, "message_id"),
        ]
        for cid, body, status, name in cases:
            self.assertDecodeError(frame(cid, body, seq=11), status, cid, 11, name)
        body = cstr("") + b"\0\0" + cstr("1") + b"\0\0" + b"2" * 21 + b"\0" + b"\0" * 3 + b"\0\0" + b"\0" * 5
        self.assertDecodeError(frame(4, body, seq=11), S.ESME_RINVDSTADR, 4, 11, "destination_addr")
        # data_sm allows 64-octet addresses, submit_sm only 20.
        data_sm = pdu.make("data_sm", source_addr="1" * 64)
        self.assertEqual(pdu.decode(pdu.encode(data_sm)), data_sm)

    def test_sm_length(self):
        """
        sm_length must fit in the PDU and be at most 254.
        """
        body = self.submit_body(short_message=b"hello")
        self.assertDecodeError(frame(4, body[:-1], seq=12), S.ESME_RINVMSGLEN, 4, 12, "sm_length")
        long_body = body[:-6] + b"\xff" + b"x" * 255
        self.assertDecodeError(frame(4, long_body, seq=12), S.ESME_RINVMSGLEN, 4, 12, "254")

    def test_tlv_stream_errors(self):
        base = self.submit_body()
        self.assertDecodeError(frame(4, base + b"\x04\x27\x00", seq=13), S.ESME_RINVOPTPARSTREAM, 4, 13)
        self.assertDecodeError(frame(4, base + b"\x04\x24\x00\x05abc", seq=13), S.ESME_RINVOPTPARSTREAM, 4, 13)
        self.assertDecodeError(frame(4, base + b"\x14\x00\x00\x01", seq=13), S.ESME_RINVOPTPARSTREAM, 4, 13)

    def test_tlv_wrong_length(self):
        """
        A TLV whose length is outside its type's bounds is ESME_RINVPARLEN.
        """
        base = self.submit_body()
        cases = [
            b"\x04\x27\x00\x02\x00\x02",  # message_state is 1 octet
            b"\x02\x0c\x00\x01\x05",  # sar_msg_ref_num is 2 octets
            b"\x00\x17\x00\x02\x00\x01",  # qos_time_to_live is 4 octets
            b"\x00\x1e\x00\x00",  # receipted_message_id needs its NUL
            b"\x00\x1e\x00\x42" + b"1" * 65 + b"\0",  # receipted_message_id max 65
            b"\x04\x23\x00\x02\x03\x00",  # network_error_code is 3 octets
            b"\x03\x81\x00\x02\x00\x01",  # callback_num is 4..19
        ]
        for tlv in cases:
            e = self.assertDecodeError(frame(4, base + tlv, seq=14), S.ESME_RINVPARLEN, 4, 14)
            self.assertIn(pdu._TLV_BY_TAG[struct.unpack("!H", tlv[:2])[0]][0], str(e))

    def test_tlv_embedded_nul(self):
        base = self.submit_body()
        self.assertDecodeError(
            frame(4, base + b"\x00\x1e\x00\x04a\0b\0", seq=15), S.ESME_RINVOPTPARAMVAL, 4, 15
        )

    def test_invalid_dest_flag(self):
        body = cstr("") + b"\1\1" + cstr("1") + b"\x01" + b"\x03" + cstr("x")
        self.assertDecodeError(frame(0x21, body, seq=16), S.ESME_RINVDESTFLAG, 0x21, 16, "dest_flag")

    def test_truncated_dest_list(self):
        body = cstr("") + b"\1\1" + cstr("1") + b"\x02" + b"\x02" + cstr("dl")
        self.assertDecodeError(frame(0x21, body, seq=17), S.ESME_RINVCMDLEN, 0x21, 17)

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=120), st.sampled_from(sorted(CommandId)))
    def test_fuzz_only_pdu_errors(self, body, cid):
        """
        Arbitrary bodies either decode or raise L{pdu.PduError} with the
        header fields filled in; the fast and reference decoders agree.
        """
        data = frame(cid, body, seq=99)
        try:
            decoded = pdu.decode(data)
        except pdu.PduError as e:
            self.assertEqual((e.command_id, e.sequence_number), (cid, 99))
            self.assertIn(e.status, set(S))
        else:
            self.assertEqual(decoded.command_id, cid)
            self.assertEqual(pdu.decode(pdu.encode(decoded)), decoded)


class EncodeErrorTests(SynchronousTestCase):
    """
    Values that do not fit raise L{pdu.PduError} naming the field.
    """

    def assertEncodeError(self, p, text, status=None):
        e = self.assertRaises(pdu.PduError, pdu.encode, p)
        self.assertIsInstance(e, ValueError)
        self.assertIn(text, str(e))
        if status is not None:
            self.assertEqual(e.status, status)
        return e

    def test_cstring_too_long(self):
        self.assertEncodeError(pdu.make("submit_sm", source_addr="1" * 21), "source_addr", S.ESME_RINVSRCADR)
        self.assertEncodeError(pdu.make("bind_transmitter", system_id="x" * 16), "system_id", S.ESME_RINVSYSID)
        self.assertEncodeError(pdu.make("bind_transmitter", password="x" * 9), "password", S.ESME_RINVPASWD)
        # The limit itself fits.
        pdu.encode(pdu.make("submit_sm", source_addr="1" * 20))

    def test_cstring_bad_values(self):
        self.assertEncodeError(pdu.make("submit_sm", source_addr="a\0b"), "source_addr")
        self.assertEncodeError(pdu.make("submit_sm", source_addr="☺"), "latin-1")
        self.assertEncodeError(pdu.make("submit_sm", source_addr=b"123"), "must be str")
        self.assertEncodeError(pdu.make("submit_sm", source_addr=None), "must be str")

    def test_int_out_of_range(self):
        self.assertEncodeError(pdu.make("submit_sm", esm_class=256), "esm_class")
        self.assertEncodeError(pdu.make("submit_sm", data_coding=-1), "data_coding")
        self.assertEncodeError(pdu.make("submit_sm", priority_flag="1"), "priority_flag")

    def test_short_message(self):
        self.assertEncodeError(pdu.make("submit_sm", short_message=b"x" * 255), "short_message",
                               S.ESME_RINVMSGLEN)
        self.assertEncodeError(pdu.make("submit_sm", short_message="text"), "must be bytes")
        # bytearray is accepted
        data = pdu.encode(pdu.make("submit_sm", short_message=bytearray(b"ab")))
        self.assertEqual(pdu.decode(data).params["short_message"], b"ab")

    def test_header_values(self):
        self.assertEncodeError(pdu.make("unbind", 1 << 32), "sequence_number")
        self.assertEncodeError(pdu.make("unbind", -1), "sequence_number")
        self.assertEncodeError(pdu.Pdu(0x99), "command_id", S.ESME_RINVCMDID)

    def test_tlv_errors(self):
        self.assertEncodeError(pdu.make("submit_sm", tlvs={"message_state": 256}), "message_state")
        self.assertEncodeError(pdu.make("submit_sm", tlvs={"sar_msg_ref_num": "1"}), "sar_msg_ref_num")
        self.assertEncodeError(pdu.make("submit_sm", tlvs={"network_error_code": b"\x01"}), "network_error_code",
                               S.ESME_RINVPARLEN)
        self.assertEncodeError(pdu.make("submit_sm", tlvs={"receipted_message_id": "x" * 65}),
                               "receipted_message_id")
        self.assertEncodeError(pdu.make("submit_sm", tlvs={"message_payload": "text"}), "message_payload")
        self.assertEncodeError(pdu.make("submit_sm", tlvs={"no_such_tlv": 1}), "no_such_tlv")
        self.assertEncodeError(pdu.make("submit_sm", tlvs={0x1400: "text"}), "0x1400")
        self.assertEncodeError(pdu.make("submit_sm", tlvs={0x10000: b""}), "0x10000")

    def test_list_errors(self):
        self.assertEncodeError(pdu.make("submit_multi", dest_addresses=[{"dest_flag": 3}]), "dest_flag",
                               S.ESME_RINVDESTFLAG)
        self.assertEncodeError(
            pdu.make("submit_multi", dest_addresses=[{"dest_flag": 2, "dl_name": "x" * 21}]), "dl_name"
        )
        self.assertEncodeError(
            pdu.make("submit_multi", dest_addresses=[{"dest_flag": 1}] * 256), "dest_addresses",
            S.ESME_RINVNUMDESTS,
        )
        self.assertEncodeError(
            pdu.make("submit_multi_resp", unsuccess_sme=[{"error_status_code": 1 << 32}]), "error_status_code"
        )
        e = self.assertRaises(pdu.PduError, pdu.make, "submit_multi", dest_addresses=["4915123"])
        self.assertIn("dest_addresses", str(e))
        self.assertEncodeError(pdu.Pdu(0x21, 0, 1, {"dest_addresses": 5}), "submit_multi")


class CodegenTests(SynchronousTestCase):
    """
    L{pdu_codegen} also handles field kinds SMPP 3.4 bodies do not use
    today (2- and 4-octet integers).
    """

    def test_wide_integers(self):
        fields = (("a", constants.CSTR, 5), ("b", constants.INT2), ("c", constants.INT4),
                  ("d", constants.INT1), ("e", constants.CSTR, 3))
        namespace = {"NUL": b"\0", "HEADER_PACK": pdu.HEADER.pack, "new_pdu": lambda: pdu.Pdu(0),
                     "decode_tlvs": pdu._decode_tlvs}
        decoder = pdu_codegen.compile_decoder("t", fields, dict(namespace))
        encoder = pdu_codegen.compile_encoder("t", fields, dict(namespace))
        params = {"a": "ab", "b": 0x0102, "c": 0x01020304, "d": 9, "e": "x"}
        data = encoder(params, 0x77, 0, 5, b"")
        self.assertEqual(data, frame(0x77, b"ab\0" + b"\x01\x02" + b"\x01\x02\x03\x04" + b"\x09" + b"x\0", seq=5))
        self.assertEqual(decoder(data, 0x77, 0, 5, len(data)), pdu.Pdu(0x77, 0, 5, params, {}))
        tail = b"\x04\x27\x00\x01\x02"
        self.assertEqual(decoder(data + tail, 0x77, 0, 5, len(data) + 5).tlvs, {"message_state": 2})
        self.assertRaises(ValueError, decoder, data[:-1], 0x77, 0, 5, len(data) - 1)
