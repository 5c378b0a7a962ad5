# -*- test-case-name: tests.test_core_receipts -*-
"""
SMPP delivery receipts: recognising them, parsing them, and matching their
message id to the id a C{submit_sm_resp} returned.

A receipt arrives as a C{deliver_sm} (or C{data_sm}) whose C{esm_class}
message-type bits say so.  Its facts come from two places, read in this
order:

 1. TLVs (SMPP 3.4 section 5.3.2): C{receipted_message_id},
    C{message_state} (L{gwsms.smpp.constants.MessageState}) and
    C{network_error_code};
 2. the text of C{short_message} (or the C{message_payload} TLV), in the
    de-facto format of SMPP 3.4 Appendix B::

        id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm
        done date:YYMMDDhhmm stat:DDDDDDD err:E text:...

    read tolerantly: keys in any case and any order, missing fields, extra
    spaces, C{submit_date}/C{submitdate} spellings, dates with or without
    seconds, C{error:} for C{err:}, and a C{text:} field that may contain
    anything.

Pure code: no I/O, no reactor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from gwsms.smpp.constants import (
    ESM_CLASS_DELIVERY_RECEIPT,
    ESM_CLASS_INTERMEDIATE_NOTIFICATION,
    ESM_CLASS_TYPE_MASK,
    MessageState,
    Tag,
)

__all__ = [
    "ReceiptError",
    "Receipt",
    "STATES",
    "FINAL_STATES",
    "RECEIPT_KINDS",
    "receipt_kind",
    "is_receipt",
    "parse_receipt",
    "parse_receipt_text",
    "normalize_state",
    "canonical_ids",
    "receipt_key",
    "message_id_variants",
    "ids_match",
]


class ReceiptError(ValueError):
    """
    A PDU that was expected to be a delivery receipt cannot be read as one
    (the message says what is missing).
    """


# --- esm_class --------------------------------------------------------------

#: esm_class message-type values (bits 5-2) that carry a delivery report,
#: SMPP 3.4 section 5.2.12, mapped to the name L{receipt_kind} returns.
RECEIPT_KINDS = {
    ESM_CLASS_DELIVERY_RECEIPT: "smsc_delivery_receipt",  # 0x04
    0x08: "sme_delivery_ack",
    0x10: "sme_manual_ack",
    ESM_CLASS_INTERMEDIATE_NOTIFICATION: "intermediate_notification",  # 0x20
}


def receipt_kind(esm_class: int) -> str | None:
    """
    Say which kind of delivery report an C{esm_class} announces.

    @param esm_class: the C{esm_class} of a C{deliver_sm} / C{data_sm}.
    @return: C{"smsc_delivery_receipt"} (type 0x04),
        C{"sme_delivery_ack"} (0x08), C{"sme_manual_ack"} (0x10),
        C{"intermediate_notification"} (0x20), or C{None} for an ordinary
        message (0x00) and every other type (e.g. 0x18 conversation abort).
    """
    return RECEIPT_KINDS.get(int(esm_class) & ESM_CLASS_TYPE_MASK)


def is_receipt(esm_class: int) -> bool:
    """
    @param esm_class: the C{esm_class} of a C{deliver_sm} / C{data_sm}.
    @return: C{True} when the message type (bits 5-2, mask 0x3C) is one of
        L{RECEIPT_KINDS}; the UDHI and reply-path bits are ignored.
    """
    return receipt_kind(esm_class) is not None


# --- states -----------------------------------------------------------------

#: The receipt states, in SMPP C{message_state} order (1..8).
STATES = ("ENROUTE", "DELIVRD", "EXPIRED", "DELETED", "UNDELIV", "ACCEPTD",
          "UNKNOWN", "REJECTD")

#: States after which nothing more will happen to the message.  ACCEPTD is
#: final in SMPP 3.4, but SMSCs commonly send it as "taken in by the SMSC"
#: followed by a later DELIVRD, so (like Kannel) it is treated as
#: intermediate; UNKNOWN is intermediate too (the store's expiry settles it).
FINAL_STATES = frozenset({"DELIVRD", "EXPIRED", "DELETED", "UNDELIV", "REJECTD"})

_STATE_BY_VALUE = {int(member): STATES[int(member) - 1] for member in MessageState}

# Spellings seen in the wild, upper-cased, mapped to the canonical 7 letters.
_STATE_ALIASES = {
    "DELIVRD": "DELIVRD", "DELIVERED": "DELIVRD", "DELIVER": "DELIVRD",
    "EXPIRED": "EXPIRED", "EXPIRD": "EXPIRED",
    "DELETED": "DELETED", "DELETD": "DELETED",
    "UNDELIV": "UNDELIV", "UNDELIVERABLE": "UNDELIV", "UNDELIVERED": "UNDELIV",
    "FAILED": "UNDELIV",
    "ACCEPTD": "ACCEPTD", "ACCEPTED": "ACCEPTD",
    "UNKNOWN": "UNKNOWN", "UNKNOWNN": "UNKNOWN",
    "REJECTD": "REJECTD", "REJECTED": "REJECTD",
    "ENROUTE": "ENROUTE", "BUFFRED": "ENROUTE", "BUFFERED": "ENROUTE",
}


def normalize_state(value: "str | int | None") -> str | None:
    """
    Map a C{stat:} text or a C{message_state} value to one of L{STATES}.

    @param value: e.g. C{"DELIVRD"}, C{"delivered"}, C{"UNDELIVERABLE"},
        C{2}, or C{None}.
    @return: the canonical state, or C{None} when C{value} is absent or
        not recognised.
    """
    if value is None:
        return None
    if isinstance(value, int):
        return _STATE_BY_VALUE.get(value)
    text = value.strip().upper()
    if text.isascii() and text.isdigit():
        return _STATE_BY_VALUE.get(int(text))
    return _STATE_ALIASES.get(text)


# --- the receipt ------------------------------------------------------------


@dataclass(frozen=True)
class Receipt:
    """
    A parsed delivery report.

    @ivar message_id: the SMSC's id of the message this report is about
        (as received; use L{receipt_key} to look it up).
    @ivar state: one of L{STATES}.
    @ivar final: C{True} when C{state} is in L{FINAL_STATES} and the report
        is not an intermediate notification.
    @ivar error: the error code as text (C{err:} field, else the code of the
        C{network_error_code} TLV as 3+ decimal digits), or C{None}.
    @ivar submit_date: C{datetime} (naive: SMSC local time) or C{None}.
    @ivar done_date: C{datetime} (naive) or C{None}.
    @ivar sub: the C{sub:} count as int, or C{None}.
    @ivar dlvrd: the C{dlvrd:} count as int, or C{None}.
    @ivar text: the C{text:} field (start of the original message) or C{""}.
    @ivar kind: L{receipt_kind} of the esm_class, or C{None} when unknown.
    @ivar network_error: C{(network_type, error_code)} from the
        C{network_error_code} TLV, or C{None}.
    """

    message_id: str
    state: str
    final: bool
    error: str | None = None
    submit_date: datetime | None = None
    done_date: datetime | None = None
    sub: int | None = None
    dlvrd: int | None = None
    text: str = ""
    kind: str | None = None
    network_error: tuple[int, int] | None = None

    @property
    def delivered(self) -> bool:
        """C{True} for a DELIVRD report."""
        return self.state == "DELIVRD"


# --- the text format --------------------------------------------------------

_KEY_RE = re.compile(
    r"(?:(?<=[\s,;])|^)"
    r"(id|sub|dlvrd|submit[ _]*date|done[ _]*date|stat|err(?:or)?|text)"
    r"[ \t]*:",
    re.IGNORECASE,
)


def _key_name(raw: str) -> str:
    name = raw.lower().replace(" ", "").replace("_", "")
    return {"submitdate": "submit date", "donedate": "done date",
            "error": "err"}.get(name, name)


def parse_receipt_text(text: str) -> dict[str, str]:
    """
    Split the text of a receipt into its fields.

    Keys are matched case-insensitively wherever they start a word, in any
    order; the first occurrence of each wins.  Once C{text:} is seen the
    rest of the message is its value, unless a key that has not appeared
    yet follows (receipts that put C{text:} before other fields).

    @param text: the decoded C{short_message} / C{message_payload}.
    @return: field name (C{"id"}, C{"sub"}, C{"dlvrd"}, C{"submit date"},
        C{"done date"}, C{"stat"}, C{"err"}, C{"text"}) -> stripped value
        (other than C{text}, also stripped of a trailing C{,} or C{;}, for
        comma-separated receipts).
    """
    matches = list(_KEY_RE.finditer(text))
    fields: dict[str, str] = {}
    i = 0
    while i < len(matches):
        m = matches[i]
        name = _key_name(m.group(1))
        j = i + 1
        if name == "text":
            # The text runs to the end, or to the first key not yet seen.
            seen = set(fields) | {"text"}
            while j < len(matches) and _key_name(matches[j].group(1)) in seen:
                j += 1
        end = matches[j].start() if j < len(matches) else len(text)
        if name not in fields:
            value = text[m.end():end].strip()
            if name != "text":
                value = value.rstrip(",;").rstrip()
            fields[name] = value
        i = j
    return fields


def _parse_date(value: str | None) -> datetime | None:
    """
    @param value: C{YYMMDDhhmm}, C{YYMMDDhhmmss} or C{YYYYMMDDhhmmss}.
    @return: a naive datetime, or C{None} when absent or malformed.
    """
    if not value:
        return None
    digits = value.strip()
    formats = {10: "%y%m%d%H%M", 12: "%y%m%d%H%M%S", 14: "%Y%m%d%H%M%S"}
    fmt = formats.get(len(digits))
    if fmt is None or not (digits.isascii() and digits.isdigit()):
        return None
    try:
        return datetime.strptime(digits, fmt)
    except ValueError:
        return None


def _parse_count(value: str | None) -> int | None:
    value = _first_word(value)
    return int(value) if value.isascii() and value.isdigit() else None


def _first_word(value: str | None) -> str:
    words = value.split() if value else ()
    return words[0] if words else ""


# --- TLVs -------------------------------------------------------------------


def _tlv(tlvs: dict, tag: Tag) -> object:
    if tag.name in tlvs:
        return tlvs[tag.name]
    return tlvs.get(int(tag))


def _text_value(value: object) -> str:
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).split(b"\x00", 1)[0].decode("latin-1")
    return str(value).strip().strip("\x00").strip()


def _network_error(value: object) -> tuple[int, int] | None:
    if isinstance(value, (bytes, bytearray)) and len(value) == 3:
        return value[0], int.from_bytes(value[1:3], "big")
    if isinstance(value, tuple) and len(value) == 2:
        return int(value[0]), int(value[1])
    if isinstance(value, int):
        return value >> 16 & 0xFF, value & 0xFFFF
    return None


def _message_text(pdu_params: dict, tlvs: dict) -> str:
    raw = pdu_params.get("short_message") or b""
    if not raw:
        raw = _tlv(tlvs, Tag.message_payload) or b""
    if isinstance(raw, str):
        return raw
    raw = bytes(raw)
    if pdu_params.get("data_coding") == 8:
        try:
            return raw.decode("utf-16-be")
        except UnicodeDecodeError:
            pass
    return raw.decode("latin-1")


def parse_receipt(pdu_params: dict, tlvs: dict | None = None) -> Receipt:
    """
    Read a delivery receipt out of a C{deliver_sm} / C{data_sm}.

    TLVs win over the text: C{receipted_message_id} over C{id:},
    C{message_state} over C{stat:}, C{network_error_code} over C{err:}.
    The text is C{short_message}, else the C{message_payload} TLV,
    decoded as UCS-2 when C{data_coding} is 8 and as latin-1 otherwise.

    @param pdu_params: the PDU's mandatory parameters (C{Pdu.params}).
    @param tlvs: the PDU's TLVs (C{Pdu.tlvs}), by spec name or int tag.
    @return: a L{Receipt}; C{state} is C{"UNKNOWN"} when neither the TLV
        nor the text gives one.
    @raise ReceiptError: when no message id is found in either place.
    """
    tlvs = tlvs or {}
    text = _message_text(pdu_params, tlvs)
    fields = parse_receipt_text(text) if text else {}

    message_id = ""
    raw_id = _tlv(tlvs, Tag.receipted_message_id)
    if raw_id is not None:
        message_id = _text_value(raw_id)
    if not message_id:
        message_id = _first_word(fields.get("id"))
    if not message_id:
        shown = text[:60] if text else "(empty)"
        raise ReceiptError(
            "delivery receipt without a message id: no receipted_message_id TLV "
            f"and no 'id:' field in the text {shown!r}"
        )

    state = None
    raw_state = _tlv(tlvs, Tag.message_state)
    if isinstance(raw_state, int):
        state = normalize_state(raw_state)
    if state is None:
        state = normalize_state(_first_word(fields.get("stat")) or None)
    if state is None:
        state = "UNKNOWN"

    network_error = None
    raw_error = _tlv(tlvs, Tag.network_error_code)
    if raw_error is not None:
        network_error = _network_error(raw_error)
    if network_error is not None:
        error: str | None = f"{network_error[1]:03d}"
    else:
        error = fields.get("err") or None

    kind = receipt_kind(pdu_params["esm_class"]) if "esm_class" in pdu_params else None
    final = state in FINAL_STATES and kind != "intermediate_notification"
    return Receipt(
        message_id=message_id,
        state=state,
        final=final,
        error=error,
        submit_date=_parse_date(fields.get("submit date")),
        done_date=_parse_date(fields.get("done date")),
        sub=_parse_count(fields.get("sub")),
        dlvrd=_parse_count(fields.get("dlvrd")),
        text=fields.get("text", ""),
        kind=kind,
        network_error=network_error,
    )


# --- message id matching ----------------------------------------------------
#
# SMSCs disagree with themselves about how to print a message id: the
# submit_sm_resp may say "0A1B2C" (hex) while the receipt says "662316"
# (the same number in decimal), or the other way round, zero-padded to ten
# digits, or in another letter case.  The store indexes every submitted id
# under canonical_ids(id) and looks a receipt up by receipt_key(id), a single
# key; ids_match() is the same relation without a store.

_HEX_RE = re.compile(r"[0-9a-f]+\Z")


def _key(message_id: str) -> str:
    text = message_id.strip().lower()
    if text.isascii() and text.isalnum():
        stripped = text.lstrip("0")
        text = stripped or "0"
    return text


def canonical_ids(message_id: str) -> list[str]:
    """
    The keys under which a submitted message id should be indexed so that
    any receipt id that L{ids_match} it is found by L{receipt_key}.

    Produced, in this order and without duplicates:
      1. the key: stripped of surrounding space, lower-cased, and (for an
         alphanumeric id) without leading zeros (C{"0"} for all zeros);
      2. when the id is all decimal digits: its value in lower-case hex
         without leading zeros (C{"662316"} -> C{"a1b2c"});
      3. when the id is all hex digits: its value in decimal
         (C{"0A1B2C"} -> C{"662316"}; C{"123"} -> C{"291"}).

    @param message_id: an id from a C{submit_sm_resp} (or any id).
    @return: one to three keys, the first being L{receipt_key}.
    """
    key = _key(message_id)
    keys = [key]
    if key.isascii() and key.isdigit():
        keys.append(format(int(key), "x"))
    if key and _HEX_RE.match(key):
        keys.append(str(int(key, 16)))
    out: list[str] = []
    for k in keys:
        if k not in out:
            out.append(k)
    return out


def receipt_key(message_id: str) -> str:
    """
    @param message_id: the id a receipt carries.
    @return: the single key to look it up by in an index built with
        L{canonical_ids} (the first of C{canonical_ids(message_id)}).
    """
    return _key(message_id)


def message_id_variants(message_id: str) -> set[str]:
    """
    @param message_id: any message id.
    @return: C{set(canonical_ids(message_id))}.  Two ids match when one's
        L{receipt_key} is among the other's variants (see L{ids_match});
        two variant sets merely sharing an element is not a match (that
        would equate "10" and "22" through "16").
    """
    return set(canonical_ids(message_id))


def ids_match(submit_resp_id: str, receipt_id: str) -> bool:
    """
    Does a receipt id refer to a submitted message id, allowing for
    hex/decimal confusion, leading zeros and letter case?

    The relation is symmetric: C{ids_match(a, b) == ids_match(b, a)}.
    Ambiguity is inherent ("10" may be ten or sixteen), so a store should
    prefer an exact match when several messages qualify.

    @param submit_resp_id: the id from the C{submit_sm_resp}.
    @param receipt_id: the id from the receipt.
    @return: C{True} when they match.
    """
    if not submit_resp_id.strip() or not receipt_id.strip():
        return False
    return receipt_key(receipt_id) in canonical_ids(submit_resp_id)
