# -*- test-case-name: tests.test_smpp_pdu -*-
"""
SMPP 3.4 constants: command ids, command statuses, TLV tags and the
well-known values of a few fields (TON, NPI, esm_class, message_state).

Names follow the SMPP v3.4 specification (section 5) exactly, so that
code reads like the spec.  C{congestion_state} (0x0428) comes from SMPP
v5.0; it is compatible with 3.4 sessions and SMSCs use it to signal load.
"""

from enum import IntEnum


class CommandId(IntEnum):
    """
    SMPP 3.4 command_id values (section 5.1.2.1).
    """

    generic_nack = 0x80000000
    bind_receiver = 0x00000001
    bind_receiver_resp = 0x80000001
    bind_transmitter = 0x00000002
    bind_transmitter_resp = 0x80000002
    query_sm = 0x00000003
    query_sm_resp = 0x80000003
    submit_sm = 0x00000004
    submit_sm_resp = 0x80000004
    deliver_sm = 0x00000005
    deliver_sm_resp = 0x80000005
    unbind = 0x00000006
    unbind_resp = 0x80000006
    replace_sm = 0x00000007
    replace_sm_resp = 0x80000007
    cancel_sm = 0x00000008
    cancel_sm_resp = 0x80000008
    bind_transceiver = 0x00000009
    bind_transceiver_resp = 0x80000009
    outbind = 0x0000000B
    enquire_link = 0x00000015
    enquire_link_resp = 0x80000015
    submit_multi = 0x00000021
    submit_multi_resp = 0x80000021
    alert_notification = 0x00000102
    data_sm = 0x00000103
    data_sm_resp = 0x80000103


#: Bit set in the command_id of every response PDU.
RESPONSE_BIT = 0x80000000


class CommandStatus(IntEnum):
    """
    SMPP 3.4 command_status / error codes (section 5.1.3).
    """

    ESME_ROK = 0x00000000
    ESME_RINVMSGLEN = 0x00000001
    ESME_RINVCMDLEN = 0x00000002
    ESME_RINVCMDID = 0x00000003
    ESME_RINVBNDSTS = 0x00000004
    ESME_RALYBND = 0x00000005
    ESME_RINVPRTFLG = 0x00000006
    ESME_RINVREGDLVFLG = 0x00000007
    ESME_RSYSERR = 0x00000008
    ESME_RINVSRCADR = 0x0000000A
    ESME_RINVDSTADR = 0x0000000B
    ESME_RINVMSGID = 0x0000000C
    ESME_RBINDFAIL = 0x0000000D
    ESME_RINVPASWD = 0x0000000E
    ESME_RINVSYSID = 0x0000000F
    ESME_RCANCELFAIL = 0x00000011
    ESME_RREPLACEFAIL = 0x00000013
    ESME_RMSGQFUL = 0x00000014
    ESME_RINVSERTYP = 0x00000015
    ESME_RINVNUMDESTS = 0x00000033
    ESME_RINVDLNAME = 0x00000034
    ESME_RINVDESTFLAG = 0x00000040
    ESME_RINVSUBREP = 0x00000042
    ESME_RINVESMCLASS = 0x00000043
    ESME_RCNTSUBDL = 0x00000044
    ESME_RSUBMITFAIL = 0x00000045
    ESME_RINVSRCTON = 0x00000048
    ESME_RINVSRCNPI = 0x00000049
    ESME_RINVDSTTON = 0x00000050
    ESME_RINVDSTNPI = 0x00000051
    ESME_RINVSYSTYP = 0x00000053
    ESME_RINVREPFLAG = 0x00000054
    ESME_RINVNUMMSGS = 0x00000055
    ESME_RTHROTTLED = 0x00000058
    ESME_RINVSCHED = 0x00000061
    ESME_RINVEXPIRY = 0x00000062
    ESME_RINVDFTMSGID = 0x00000063
    ESME_RX_T_APPN = 0x00000064
    ESME_RX_P_APPN = 0x00000065
    ESME_RX_R_APPN = 0x00000066
    ESME_RQUERYFAIL = 0x00000067
    ESME_RINVOPTPARSTREAM = 0x000000C0
    ESME_ROPTPARNOTALLWD = 0x000000C1
    ESME_RINVPARLEN = 0x000000C2
    ESME_RMISSINGOPTPARAM = 0x000000C3
    ESME_RINVOPTPARAMVAL = 0x000000C4
    ESME_RDELIVERYFAILURE = 0x000000FE
    ESME_RUNKNOWNERR = 0x000000FF


class Tag(IntEnum):
    """
    SMPP 3.4 optional parameter (TLV) tags (section 5.3.2), plus
    C{congestion_state} from SMPP v5.0.
    """

    dest_addr_subunit = 0x0005
    dest_network_type = 0x0006
    dest_bearer_type = 0x0007
    dest_telematics_id = 0x0008
    source_addr_subunit = 0x000D
    source_network_type = 0x000E
    source_bearer_type = 0x000F
    source_telematics_id = 0x0010
    qos_time_to_live = 0x0017
    payload_type = 0x0019
    additional_status_info_text = 0x001D
    receipted_message_id = 0x001E
    ms_msg_wait_facilities = 0x0030
    privacy_indicator = 0x0201
    source_subaddress = 0x0202
    dest_subaddress = 0x0203
    user_message_reference = 0x0204
    user_response_code = 0x0205
    source_port = 0x020A
    destination_port = 0x020B
    sar_msg_ref_num = 0x020C
    language_indicator = 0x020D
    sar_total_segments = 0x020E
    sar_segment_seqnum = 0x020F
    sc_interface_version = 0x0210
    callback_num_pres_ind = 0x0302
    callback_num_atag = 0x0303
    number_of_messages = 0x0304
    callback_num = 0x0381
    dpf_result = 0x0420
    set_dpf = 0x0421
    ms_availability_status = 0x0422
    network_error_code = 0x0423
    message_payload = 0x0424
    delivery_failure_reason = 0x0425
    more_messages_to_send = 0x0426
    message_state = 0x0427
    congestion_state = 0x0428
    ussd_service_op = 0x0501
    display_time = 0x1201
    sms_signal = 0x1203
    ms_validity = 0x1204
    alert_on_message_delivery = 0x130C
    its_reply_type = 0x1380
    its_session_info = 0x1383


class Ton(IntEnum):
    """
    Type of number (section 5.2.5).
    """

    unknown = 0
    international = 1
    national = 2
    network_specific = 3
    subscriber_number = 4
    alphanumeric = 5
    abbreviated = 6


class Npi(IntEnum):
    """
    Numbering plan indicator (section 5.2.6).
    """

    unknown = 0
    isdn = 1
    data = 3
    telex = 4
    land_mobile = 6
    national = 8
    private = 9
    ermes = 10
    internet = 13
    wap_client_id = 18


class MessageState(IntEnum):
    """
    message_state values (section 5.2.28), used by query_sm_resp and the
    message_state TLV of delivery receipts.
    """

    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8


#: esm_class bits (section 5.2.12).
ESM_CLASS_MODE_MASK = 0x03
ESM_CLASS_TYPE_MASK = 0x3C
ESM_CLASS_DELIVERY_RECEIPT = 0x04
ESM_CLASS_INTERMEDIATE_NOTIFICATION = 0x20
ESM_CLASS_UDHI = 0x40
ESM_CLASS_REPLY_PATH = 0x80

#: interface_version announced by an SMPP 3.4 peer.
INTERFACE_VERSION_34 = 0x34

# Field kinds.
INT1, INT2, INT4, CSTR, SM, DESTS, UNSUCCESS = "B", "H", "I", "c", "sm", "dests", "unsuccess"

_BIND = (
    ("system_id", CSTR, 16),
    ("password", CSTR, 9),
    ("system_type", CSTR, 13),
    ("interface_version", INT1),
    ("addr_ton", INT1),
    ("addr_npi", INT1),
    ("address_range", CSTR, 41),
)
_SUBMIT = (
    ("service_type", CSTR, 6),
    ("source_addr_ton", INT1),
    ("source_addr_npi", INT1),
    ("source_addr", CSTR, 21),
    ("dest_addr_ton", INT1),
    ("dest_addr_npi", INT1),
    ("destination_addr", CSTR, 21),
    ("esm_class", INT1),
    ("protocol_id", INT1),
    ("priority_flag", INT1),
    ("schedule_delivery_time", CSTR, 17),
    ("validity_period", CSTR, 17),
    ("registered_delivery", INT1),
    ("replace_if_present_flag", INT1),
    ("data_coding", INT1),
    ("sm_default_msg_id", INT1),
    ("short_message", SM),
)
_SUBMIT_MULTI = (
    ("service_type", CSTR, 6),
    ("source_addr_ton", INT1),
    ("source_addr_npi", INT1),
    ("source_addr", CSTR, 21),
    ("dest_addresses", DESTS),
) + _SUBMIT[7:]
_MESSAGE_ID = (("message_id", CSTR, 65),)
_SYSTEM_ID = (("system_id", CSTR, 16),)

#: Mandatory body of every command, in wire order.
BODY_FIELDS = {
    CommandId.generic_nack: (),
    CommandId.bind_receiver: _BIND,
    CommandId.bind_receiver_resp: _SYSTEM_ID,
    CommandId.bind_transmitter: _BIND,
    CommandId.bind_transmitter_resp: _SYSTEM_ID,
    CommandId.bind_transceiver: _BIND,
    CommandId.bind_transceiver_resp: _SYSTEM_ID,
    CommandId.outbind: (("system_id", CSTR, 16), ("password", CSTR, 9)),
    CommandId.unbind: (),
    CommandId.unbind_resp: (),
    CommandId.enquire_link: (),
    CommandId.enquire_link_resp: (),
    CommandId.submit_sm: _SUBMIT,
    CommandId.submit_sm_resp: _MESSAGE_ID,
    CommandId.deliver_sm: _SUBMIT,
    CommandId.deliver_sm_resp: _MESSAGE_ID,
    CommandId.submit_multi: _SUBMIT_MULTI,
    CommandId.submit_multi_resp: (("message_id", CSTR, 65), ("unsuccess_sme", UNSUCCESS)),
    CommandId.data_sm: (
        ("service_type", CSTR, 6),
        ("source_addr_ton", INT1),
        ("source_addr_npi", INT1),
        ("source_addr", CSTR, 65),
        ("dest_addr_ton", INT1),
        ("dest_addr_npi", INT1),
        ("destination_addr", CSTR, 65),
        ("esm_class", INT1),
        ("registered_delivery", INT1),
        ("data_coding", INT1),
    ),
    CommandId.data_sm_resp: _MESSAGE_ID,
    CommandId.query_sm: (
        ("message_id", CSTR, 65),
        ("source_addr_ton", INT1),
        ("source_addr_npi", INT1),
        ("source_addr", CSTR, 21),
    ),
    CommandId.query_sm_resp: (
        ("message_id", CSTR, 65),
        ("final_date", CSTR, 17),
        ("message_state", INT1),
        ("error_code", INT1),
    ),
    CommandId.cancel_sm: (
        ("service_type", CSTR, 6),
        ("message_id", CSTR, 65),
        ("source_addr_ton", INT1),
        ("source_addr_npi", INT1),
        ("source_addr", CSTR, 21),
        ("dest_addr_ton", INT1),
        ("dest_addr_npi", INT1),
        ("destination_addr", CSTR, 21),
    ),
    CommandId.cancel_sm_resp: (),
    CommandId.replace_sm: (
        ("message_id", CSTR, 65),
        ("source_addr_ton", INT1),
        ("source_addr_npi", INT1),
        ("source_addr", CSTR, 21),
        ("schedule_delivery_time", CSTR, 17),
        ("validity_period", CSTR, 17),
        ("registered_delivery", INT1),
        ("sm_default_msg_id", INT1),
        ("short_message", SM),
    ),
    CommandId.replace_sm_resp: (),
    CommandId.alert_notification: (
        ("source_addr_ton", INT1),
        ("source_addr_npi", INT1),
        ("source_addr", CSTR, 65),
        ("esme_addr_ton", INT1),
        ("esme_addr_npi", INT1),
        ("esme_addr", CSTR, 65),
    ),
}

#: Responses whose body is not returned when command_status is not
#: ESME_ROK (SMPP 3.4 sections 4.1.2 and 4.4.2) unless TLVs are sent.  The
#: decoder accepts an empty body for any response with a non-zero status.
EMPTY_BODY_ON_ERROR = frozenset(
    [
        CommandId.bind_receiver_resp,
        CommandId.bind_transmitter_resp,
        CommandId.bind_transceiver_resp,
        CommandId.submit_sm_resp,
    ]
)

#: The status answered when a C-Octet string field is too long.
FIELD_STATUS = {
    "system_id": CommandStatus.ESME_RINVSYSID,
    "password": CommandStatus.ESME_RINVPASWD,
    "system_type": CommandStatus.ESME_RINVSYSTYP,
    "service_type": CommandStatus.ESME_RINVSERTYP,
    "source_addr": CommandStatus.ESME_RINVSRCADR,
    "destination_addr": CommandStatus.ESME_RINVDSTADR,
    "esme_addr": CommandStatus.ESME_RINVDSTADR,
    "message_id": CommandStatus.ESME_RINVMSGID,
    "schedule_delivery_time": CommandStatus.ESME_RINVSCHED,
    "validity_period": CommandStatus.ESME_RINVEXPIRY,
    "dl_name": CommandStatus.ESME_RINVDLNAME,
    "short_message": CommandStatus.ESME_RINVMSGLEN,
}

# TLV kinds and (kind, min length, max length) per tag; C-string bounds
# include the terminating NUL.
TLV_INT, TLV_CSTR, TLV_OCTETS = "int", "cstr", "octets"
_INT_TLV = {1: (TLV_INT, 1, 1), 2: (TLV_INT, 2, 2), 4: (TLV_INT, 4, 4)}
TLV_SPECS = {
    Tag.dest_addr_subunit: _INT_TLV[1],
    Tag.dest_network_type: _INT_TLV[1],
    Tag.dest_bearer_type: _INT_TLV[1],
    Tag.dest_telematics_id: _INT_TLV[2],
    Tag.source_addr_subunit: _INT_TLV[1],
    Tag.source_network_type: _INT_TLV[1],
    Tag.source_bearer_type: _INT_TLV[1],
    Tag.source_telematics_id: _INT_TLV[2],
    Tag.qos_time_to_live: _INT_TLV[4],
    Tag.payload_type: _INT_TLV[1],
    Tag.additional_status_info_text: (TLV_CSTR, 1, 256),
    Tag.receipted_message_id: (TLV_CSTR, 1, 65),
    Tag.ms_msg_wait_facilities: _INT_TLV[1],
    Tag.privacy_indicator: _INT_TLV[1],
    Tag.source_subaddress: (TLV_OCTETS, 2, 23),
    Tag.dest_subaddress: (TLV_OCTETS, 2, 23),
    Tag.user_message_reference: _INT_TLV[2],
    Tag.user_response_code: _INT_TLV[1],
    Tag.source_port: _INT_TLV[2],
    Tag.destination_port: _INT_TLV[2],
    Tag.sar_msg_ref_num: _INT_TLV[2],
    Tag.language_indicator: _INT_TLV[1],
    Tag.sar_total_segments: _INT_TLV[1],
    Tag.sar_segment_seqnum: _INT_TLV[1],
    Tag.sc_interface_version: _INT_TLV[1],
    Tag.callback_num_pres_ind: _INT_TLV[1],
    Tag.callback_num_atag: (TLV_OCTETS, 0, 65),
    Tag.number_of_messages: _INT_TLV[1],
    Tag.callback_num: (TLV_OCTETS, 4, 19),
    Tag.dpf_result: _INT_TLV[1],
    Tag.set_dpf: _INT_TLV[1],
    Tag.ms_availability_status: _INT_TLV[1],
    Tag.network_error_code: (TLV_OCTETS, 3, 3),
    Tag.message_payload: (TLV_OCTETS, 0, 0xFFFF),
    Tag.delivery_failure_reason: _INT_TLV[1],
    Tag.more_messages_to_send: _INT_TLV[1],
    Tag.message_state: _INT_TLV[1],
    Tag.congestion_state: _INT_TLV[1],
    Tag.ussd_service_op: _INT_TLV[1],
    Tag.display_time: _INT_TLV[1],
    Tag.sms_signal: _INT_TLV[2],
    Tag.ms_validity: _INT_TLV[1],
    # Zero length in 3.4; v5.0 allows one octet.
    Tag.alert_on_message_delivery: (TLV_OCTETS, 0, 1),
    Tag.its_reply_type: _INT_TLV[1],
    Tag.its_session_info: (TLV_OCTETS, 2, 2),
}

