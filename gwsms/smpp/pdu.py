# -*- test-case-name: tests.test_smpp_pdu -*-
"""
SMPP 3.4 PDU codec: bytes <-> L{Pdu} objects.  Pure; no I/O.

Each command's mandatory fields are described once in
L{gwsms.smpp.constants.BODY_FIELDS} (names and sizes from SMPP v3.4
section 4).  At import time every table is turned into one specialised
encoder and one decoder function (L{gwsms.smpp.pdu_codegen}).  The fast
decoder only detects that something is wrong; the PDU is then decoded again
by the table-driven L{_decode_body_checked}, which names the field and the
command_status to answer.  Likewise a failing fast encoder falls back to
L{_encode_checked}, which fills in defaults or names the bad value.

Value types: integers are C{int}; C-Octet strings are C{str} (latin-1);
octet strings (C{short_message}, octet TLVs) are C{bytes}.  C{sm_length},
C{number_of_dests} and C{no_unsuccess} are implicit.  TLVs are keyed by
their spec name; unknown tags are keyed by the integer tag with the raw
value bytes and are re-encoded unchanged.
"""

import functools
import struct

from gwsms.smpp.constants import (
    BODY_FIELDS as _BODIES,
    CSTR as _CSTR,
    DESTS as _DESTS,
    EMPTY_BODY_ON_ERROR as _EMPTY_ON_ERROR,
    FIELD_STATUS as _FIELD_STATUS,
    INT1 as _INT1,
    INT2 as _INT2,
    INT4 as _INT4,
    INTERFACE_VERSION_34,
    RESPONSE_BIT,
    SM as _SM,
    TLV_CSTR as _TCSTR,
    TLV_INT as _TINT,
    TLV_SPECS as _TLV_SPECS,
    UNSUCCESS as _UNSUCCESS,
    CommandId,
    CommandStatus,
)
from gwsms.smpp.pdu_codegen import compile_decoder, compile_encoder

__all__ = ["HEADER", "Pdu", "PduError", "make", "encode", "decode", "TLV_TYPES"]

HEADER = struct.Struct("!IIII")

_S = CommandStatus
_NUL = b"\0"
_TLV_HEAD = struct.Struct("!HH")


class PduError(ValueError):
    """
    A PDU could not be decoded or encoded.

    @ivar status: the L{CommandStatus} to answer a malformed request with.
    @ivar command_id: the command_id from the header, or L{None} if the
        header could not be read.
    @ivar sequence_number: the sequence_number from the header, or L{None}.
    """

    def __init__(self, message, status=_S.ESME_RSYSERR, command_id=None, sequence_number=None):
        ValueError.__init__(self, message)
        self.message = message
        self.status = status
        self.command_id = command_id
        self.sequence_number = sequence_number

    def __str__(self):
        return self.message


_NAMES = {int(c): c.name for c in CommandId}
_IDS = {c.name: int(c) for c in CommandId}

#: Public view: TLV name -> (tag, kind, min length, max length).
TLV_TYPES = {t.name: (int(t),) + spec for t, spec in _TLV_SPECS.items()}
_TLV_BY_TAG = {int(t): (t.name,) + spec for t, spec in _TLV_SPECS.items()}
_TLV_BY_NAME = {t.name: (int(t),) + spec for t, spec in _TLV_SPECS.items()}
_INT_TLV_STRUCTS = {1: struct.Struct("!HHB"), 2: struct.Struct("!HHH"), 4: struct.Struct("!HHI")}


class Pdu:
    """
    One SMPP PDU.

    @ivar command_id: the command_id (see L{CommandId}).
    @ivar command_status: the command_status (see L{CommandStatus}).
    @ivar sequence_number: the sequence_number.
    @ivar params: mandatory parameters by SMPP 3.4 name.
    @ivar tlvs: optional parameters by spec name (or int tag if unknown).
    """

    __slots__ = ("command_id", "command_status", "sequence_number", "params", "tlvs")

    def __init__(self, command_id, command_status=0, sequence_number=0, params=None, tlvs=None):
        self.command_id = command_id
        self.command_status = command_status
        self.sequence_number = sequence_number
        self.params = {} if params is None else params
        self.tlvs = {} if tlvs is None else tlvs

    @property
    def command(self):
        """
        @return: the command name, e.g. C{"submit_sm"} (hex for unknown ids).
        """
        name = _NAMES.get(self.command_id)
        return name if name is not None else "0x%08x" % (self.command_id,)

    @property
    def is_response(self):
        """
        @return: whether this PDU is a response (including generic_nack).
        """
        return bool(self.command_id & RESPONSE_BIT)

    def response(self, command_status=0, **params):
        """
        Build the response to this request.

        @param command_status: the status to answer with.
        @param params: mandatory parameters of the response.
        @return: a L{Pdu} with the matching response command_id and the same
            sequence_number.
        @raise PduError: if this PDU is a response or has no response
            (outbind, alert_notification).
        """
        resp = self.command_id | RESPONSE_BIT
        if self.is_response or resp not in _NAMES:
            raise PduError("%s has no response" % (self.command,))
        return make(resp, self.sequence_number, command_status, **params)

    def __eq__(self, other):
        if not isinstance(other, Pdu):
            return NotImplemented
        return (
            self.command_id == other.command_id
            and self.command_status == other.command_status
            and self.sequence_number == other.sequence_number
            and self.params == other.params
            and self.tlvs == other.tlvs
        )

    __hash__ = None

    def __repr__(self):
        params = self.params
        if params.get("password"):
            params = dict(params, password="***")
        return "Pdu(%s, seq=%d, status=0x%x, params=%r, tlvs=%r)" % (
            self.command,
            self.sequence_number,
            self.command_status,
            params,
            self.tlvs,
        )


def _default(kind):
    if kind == _CSTR:
        return ""
    if kind == _SM:
        return b""
    if kind in (_DESTS, _UNSUCCESS):
        return None  # replaced by a fresh list in make()
    return 0


def _cstr_fail(data, pos, name, size):
    """
    Raise the right L{PduError} for a C-Octet string not NUL-terminated
    within C{size} octets at C{pos}.
    """
    if data.find(_NUL, pos) < 0:
        raise PduError("PDU body ends inside %s" % (name,), _S.ESME_RINVCMDLEN)
    raise PduError(
        "%s longer than %d octets" % (name, size - 1), _FIELD_STATUS.get(name, _S.ESME_RINVPARLEN)
    )


def _read_cstr(data, pos, name, size):
    end = data.find(_NUL, pos, pos + size)
    if end < 0:
        _cstr_fail(data, pos, name, size)
    return data[pos:end].decode("latin-1"), end + 1


def _sm_fail(data, pos, length):
    if length > 254:
        raise PduError("sm_length %d exceeds 254" % (length,), _S.ESME_RINVMSGLEN)
    raise PduError(
        "sm_length %d exceeds the %d octets left in the PDU" % (length, len(data) - pos),
        _S.ESME_RINVMSGLEN,
    )


_BB = struct.Struct("!BB")
_UNSUCCESS_TAIL = struct.Struct("!I")


def _decode_dests(data, pos):
    count = data[pos]
    pos += 1
    dests = []
    for _ in range(count):
        flag = data[pos]
        pos += 1
        if flag == 1:
            ton, npi = _BB.unpack_from(data, pos)
            addr, pos = _read_cstr(data, pos + 2, "destination_addr", 21)
            dests.append(
                {"dest_flag": 1, "dest_addr_ton": ton, "dest_addr_npi": npi, "destination_addr": addr}
            )
        elif flag == 2:
            dl_name, pos = _read_cstr(data, pos, "dl_name", 21)
            dests.append({"dest_flag": 2, "dl_name": dl_name})
        else:
            raise PduError("invalid dest_flag %d" % (flag,), _S.ESME_RINVDESTFLAG)
    return dests, pos


def _decode_unsuccess(data, pos):
    count = data[pos]
    pos += 1
    smes = []
    for _ in range(count):
        ton, npi = _BB.unpack_from(data, pos)
        addr, pos = _read_cstr(data, pos + 2, "destination_addr", 21)
        (error,) = _UNSUCCESS_TAIL.unpack_from(data, pos)
        pos += 4
        smes.append(
            {
                "dest_addr_ton": ton,
                "dest_addr_npi": npi,
                "destination_addr": addr,
                "error_status_code": error,
            }
        )
    return smes, pos


def _cstr_bytes(value, name, size):
    """
    Encode one C-Octet string value (without its NUL), checking its size.
    """
    if not isinstance(value, str):
        raise PduError("%s must be str, not %s" % (name, type(value).__name__))
    try:
        data = value.encode("latin-1")
    except UnicodeEncodeError:
        raise PduError("%s is not latin-1: %r" % (name, value), _FIELD_STATUS.get(name, _S.ESME_RINVPARLEN))
    if len(data) >= size or _NUL in data:
        raise PduError(
            "%s must be at most %d octets without NUL: %r" % (name, size - 1, value),
            _FIELD_STATUS.get(name, _S.ESME_RINVPARLEN),
        )
    return data


def _encode_dests(dests):
    if dests is None:
        dests = []
    if len(dests) > 255:
        raise PduError("too many dest_addresses: %d" % (len(dests),), _S.ESME_RINVNUMDESTS)
    parts = [bytes((len(dests),))]
    for dest in dests:
        flag = dest.get("dest_flag", 1)
        if flag == 1:
            parts.append(b"\x01")
            parts.append(_pack_int("dest_addr_ton", 1, dest.get("dest_addr_ton", 0)))
            parts.append(_pack_int("dest_addr_npi", 1, dest.get("dest_addr_npi", 0)))
            parts.append(_cstr_bytes(dest.get("destination_addr", ""), "destination_addr", 21) + _NUL)
        elif flag == 2:
            parts.append(b"\x02" + _cstr_bytes(dest.get("dl_name", ""), "dl_name", 21) + _NUL)
        else:
            raise PduError("invalid dest_flag %r" % (flag,), _S.ESME_RINVDESTFLAG)
    return b"".join(parts)


def _encode_unsuccess(smes):
    if smes is None:
        smes = []
    if len(smes) > 255:
        raise PduError("too many unsuccess_sme entries: %d" % (len(smes),))
    parts = [bytes((len(smes),))]
    for sme in smes:
        parts.append(_pack_int("dest_addr_ton", 1, sme.get("dest_addr_ton", 0)))
        parts.append(_pack_int("dest_addr_npi", 1, sme.get("dest_addr_npi", 0)))
        parts.append(_cstr_bytes(sme.get("destination_addr", ""), "destination_addr", 21) + _NUL)
        parts.append(_pack_int("error_status_code", 4, sme.get("error_status_code", 0)))
    return b"".join(parts)


def _pack_int(name, size, value):
    if not isinstance(value, int):
        raise PduError("%s must be int, not %s" % (name, type(value).__name__))
    if not 0 <= value < (1 << (8 * size)):
        raise PduError("%s out of range for %d octet(s): %d" % (name, size, value), _S.ESME_RINVPARLEN)
    return value.to_bytes(size, "big")


def _as_octets(value, name):
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise PduError("%s must be bytes, not %s" % (name, type(value).__name__))


def _decode_body_checked(data, cid):
    """
    Reference decoder of the mandatory body, interpreting L{_BODIES} with
    a precise L{PduError} for every failure.

    @return: C{(position after the body, params)}.
    """
    pos, size, params = 16, len(data), {}
    for field in _BODIES[cid]:
        name, kind = field[0], field[1]
        if kind == _CSTR:
            value, pos = _read_cstr(data, pos, name, field[2])
        elif kind == _INT1:
            if pos >= size:
                raise PduError("PDU body ends before %s" % (name,), _S.ESME_RINVCMDLEN)
            value = data[pos]
            pos += 1
        elif kind == _SM:
            if pos >= size:
                raise PduError("PDU body ends before sm_length", _S.ESME_RINVCMDLEN)
            length = data[pos]
            pos += 1
            if length > 254 or pos + length > size:
                _sm_fail(data, pos, length)
            value = data[pos:pos + length]
            pos += length
        elif kind == _DESTS:
            value, pos = _decode_dests(data, pos)
        else:
            value, pos = _decode_unsuccess(data, pos)
        params[name] = value
    return pos, params


def _too_long(name, value):
    raise PduError("%s longer than 254 octets: %d" % (name, len(value)), _S.ESME_RINVMSGLEN)


def _build():
    namespace = {
        "NUL": _NUL,
        "decode_dests": _decode_dests,
        "decode_unsuccess": _decode_unsuccess,
        "encode_dests": _encode_dests,
        "encode_unsuccess": _encode_unsuccess,
        "cstr_bytes": _cstr_bytes,
        "as_octets": _as_octets,
        "too_long": _too_long,
        "HEADER_PACK": HEADER.pack,
        "new_pdu": functools.partial(object.__new__, Pdu),
        "decode_tlvs": _decode_tlvs,
    }
    decoders, encoders, defaults = {}, {}, {}
    for cid, fields in _BODIES.items():
        ns = dict(namespace)
        decoders[int(cid)] = compile_decoder(cid.name, fields, ns)
        encoders[int(cid)] = compile_encoder(cid.name, fields, ns)
        defaults[int(cid)] = {f[0]: _default(f[1]) for f in fields}
    for cid in (CommandId.bind_receiver, CommandId.bind_transmitter, CommandId.bind_transceiver):
        defaults[int(cid)]["interface_version"] = INTERFACE_VERSION_34
    return decoders, encoders, defaults


_LIST_FIELDS = ("dest_addresses", "unsuccess_sme")


def _command_id(command):
    if isinstance(command, str):
        cid = _IDS.get(command)
        if cid is None:
            raise PduError("unknown SMPP command %r" % (command,), _S.ESME_RINVCMDID)
        return cid
    if command not in _NAMES:
        raise PduError("unknown SMPP command_id %r" % (command,), _S.ESME_RINVCMDID)
    return int(command)


def make(command, sequence_number=0, command_status=0, tlvs=None, **params):
    """
    Build a PDU; mandatory parameters not given take their spec defaults
    (0, C{""} or C{b""}; empty lists).

    @param command: command name (e.g. C{"submit_sm"}) or command_id.
    @param sequence_number: the sequence_number.
    @param command_status: the command_status.
    @param tlvs: optional parameters by name (or int tag with raw bytes).
    @param params: mandatory parameters by SMPP 3.4 name.
    @return: a L{Pdu}.
    @raise PduError: for an unknown command or parameter name.
    """
    cid = _command_id(command)
    defaults = _DEFAULTS[cid]
    unknown = params.keys() - defaults.keys()
    if unknown:
        raise PduError(
            "unknown parameter(s) for %s: %s" % (_NAMES[cid], ", ".join(sorted(unknown))),
            _S.ESME_RSYSERR,
        )
    values = dict(defaults)
    values.update(params)
    for name in _LIST_FIELDS:
        if name in values:
            items = values[name] or ()
            if not isinstance(items, (list, tuple)) or not all(isinstance(i, dict) for i in items):
                raise PduError("%s must be a list of dicts" % (name,))
            values[name] = [dict(item) for item in items]
    return Pdu(cid, command_status, sequence_number, values, dict(tlvs) if tlvs else {})


def _encode_tlvs(tlvs):
    parts = []
    for key, value in tlvs.items():
        if isinstance(key, str):
            name, spec = key, _TLV_BY_NAME.get(key)
        else:
            name = _TLV_BY_TAG[key][0] if key in _TLV_BY_TAG else None
            spec = _TLV_BY_NAME.get(name)
        if spec is None:
            if isinstance(key, str):
                raise PduError("unknown TLV name %r" % (key,), _S.ESME_RINVOPTPARSTREAM)
            if not isinstance(value, bytes):
                value = _as_octets(value, "TLV 0x%04x" % (key,))
            if not 0 <= key <= 0xFFFF or len(value) > 0xFFFF:
                raise PduError("TLV 0x%04x does not fit" % (key,), _S.ESME_RINVOPTPARSTREAM)
            parts.append(_TLV_HEAD.pack(key, len(value)))
            parts.append(value)
            continue
        tag, kind, low, high = spec
        if kind == _TINT:
            if not isinstance(value, int) or not 0 <= value < (1 << (8 * low)):
                raise PduError("TLV %s must be an int of %d octet(s): %r" % (name, low, value), _S.ESME_RINVOPTPARAMVAL)
            parts.append(_INT_TLV_STRUCTS[low].pack(tag, low, value))
            continue
        if kind == _TCSTR:
            value = _cstr_bytes(value, name, high) + _NUL
        elif not isinstance(value, bytes):
            value = _as_octets(value, name)
        if not low <= len(value) <= high:
            raise PduError(
                "TLV %s length %d outside %d..%d" % (name, len(value), low, high), _S.ESME_RINVPARLEN
            )
        parts.append(_TLV_HEAD.pack(tag, len(value)))
        parts.append(value)
    return b"".join(parts)


def _decode_tlvs(data, pos, end):
    tlvs = {}
    by_tag = _TLV_BY_TAG
    while pos < end:
        if pos + 4 > end:
            raise PduError("truncated TLV header at offset %d" % (pos,), _S.ESME_RINVOPTPARSTREAM)
        tag, length = _TLV_HEAD.unpack_from(data, pos)
        pos += 4
        stop = pos + length
        if stop > end:
            raise PduError(
                "TLV 0x%04x length %d exceeds the %d octets left" % (tag, length, end - pos),
                _S.ESME_RINVOPTPARSTREAM,
            )
        spec = by_tag.get(tag)
        if spec is None:
            tlvs[tag] = data[pos:stop]
        else:
            name, kind, low, high = spec
            if length < low or length > high:
                raise PduError(
                    "TLV %s length %d outside %d..%d" % (name, length, low, high), _S.ESME_RINVPARLEN
                )
            if kind == _TINT:
                tlvs[name] = data[pos] if length == 1 else int.from_bytes(data[pos:stop], "big")
            elif kind == _TCSTR:
                # Tolerate a missing terminator (common for receipted_message_id).
                raw = data[pos:stop - 1] if data[stop - 1] == 0 else data[pos:stop]
                if _NUL in raw:
                    raise PduError("TLV %s has an embedded NUL" % (name,), _S.ESME_RINVOPTPARAMVAL)
                tlvs[name] = raw.decode("latin-1")
            else:
                tlvs[name] = data[pos:stop]
        pos = stop
    return tlvs


def decode(data):
    """
    Decode exactly one PDU, header included.

    @param data: the PDU bytes.
    @return: a L{Pdu}.
    @raise PduError: with the status to answer and, when the header was
        readable, the command_id and sequence_number.
    """
    if data.__class__ is not bytes:
        data = bytes(data)
    # Fast path for well-formed PDUs; anything unusual is redone by
    # _decode_checked, which produces the precise error.
    try:
        length, cid, status, seq = _HEADER_UNPACK(data)
        if length == len(data):
            return _DECODERS[cid](data, cid, status, seq, length)
    except (struct.error, IndexError, KeyError, ValueError):
        pass
    return _decode_checked(data)


_HEADER_UNPACK = HEADER.unpack_from


def _decode_checked(data):
    size = len(data)
    if size < 16:
        raise PduError("PDU of %d octets is shorter than its header" % (size,), _S.ESME_RINVCMDLEN)
    length, cid, status, seq = HEADER.unpack_from(data)
    if length != size:
        raise PduError(
            "command_length %d does not match the %d octets received" % (length, size),
            _S.ESME_RINVCMDLEN,
            cid,
            seq,
        )
    decoder = _DECODERS.get(cid)
    if decoder is None:
        raise PduError("unknown command_id 0x%08x" % (cid,), _S.ESME_RINVCMDID, cid, seq)
    if size == 16 and cid & RESPONSE_BIT and (status or cid == CommandId.deliver_sm_resp):
        # Error responses may omit their body; so do many ESMEs for the
        # (unused) message_id of deliver_sm_resp.
        return Pdu(cid, status, seq, make(cid).params, {})
    try:
        pos, params = _decode_body_checked(data, cid)
        tlvs = _decode_tlvs(data, pos, size) if pos < size else {}
    except (struct.error, IndexError):
        raise PduError(
            "%s body is truncated" % (_NAMES[cid],), _S.ESME_RINVCMDLEN, cid, seq
        ) from None
    except PduError as e:
        e.command_id, e.sequence_number = cid, seq
        e.message = "%s: %s" % (_NAMES[cid], e.message)
        raise
    return Pdu(cid, status, seq, params, tlvs)


def _diagnose(cid, params):
    """
    Find the field whose value made the fast encoder fail.
    """
    for field in _BODIES[cid]:
        name, kind = field[0], field[1]
        value = params.get(name, _default(kind))
        if kind == _CSTR:
            _cstr_bytes(value, name, field[2])
        elif kind == _SM:
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise PduError("%s must be bytes, not %s" % (name, type(value).__name__))
        elif kind in (_INT1, _INT2, _INT4):
            _pack_int(name, struct.calcsize("!" + kind), value)
        elif kind == _DESTS:
            _encode_dests(value)
        else:
            _encode_unsuccess(value)


def encode(pdu):
    """
    Encode a PDU.

    @param pdu: the L{Pdu}.
    @return: its bytes, header included.
    @raise PduError: (a C{ValueError}) naming the value that does not fit.
    """
    cid = pdu.command_id
    status = pdu.command_status
    tlvs = pdu.tlvs
    try:
        if status and not tlvs and cid in _EMPTY_ON_ERROR:
            return _HEADER_PACK(16, cid, status, pdu.sequence_number)
        return _ENCODERS[cid](
            pdu.params, cid, status, pdu.sequence_number, _encode_tlvs(tlvs) if tlvs else b""
        )
    except (KeyError, struct.error, TypeError, AttributeError, UnicodeEncodeError, OverflowError):
        return _encode_checked(pdu)


_HEADER_PACK = HEADER.pack


def _encode_checked(pdu):
    """
    Slow path of L{encode}: fill in missing parameters, or name the value
    that does not fit.
    """
    cid = pdu.command_id
    encoder = _ENCODERS.get(cid)
    if encoder is None:
        raise PduError("unknown command_id %r" % (cid,), _S.ESME_RINVCMDID)
    status, seq = pdu.command_status, pdu.sequence_number
    for name, value in (("command_status", status), ("sequence_number", seq)):
        if not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFF:
            raise PduError("%s out of range: %r" % (name, value))
    params = dict(_DEFAULTS[cid])
    params.update(pdu.params)
    tail = _encode_tlvs(pdu.tlvs) if pdu.tlvs else b""
    if status and not pdu.tlvs and cid in _EMPTY_ON_ERROR:
        return _HEADER_PACK(16, cid, status, seq)
    try:
        return encoder(params, cid, status, seq, tail)
    except (struct.error, TypeError, AttributeError, UnicodeEncodeError, OverflowError) as e:
        try:
            _diagnose(cid, params)
        except (TypeError, AttributeError) as e2:
            raise PduError("cannot encode %s: %s" % (_NAMES[cid], e2)) from e2
        raise PduError("cannot encode %s: %s" % (_NAMES[cid], e)) from e


_DECODERS, _ENCODERS, _DEFAULTS = _build()
