# -*- test-case-name: tests.test_core_imdn -*-
"""
RFC 5438 Instant Message Disposition Notifications: the
message/imdn+xml document for delivery notifications, the message/cpim
body that carries it (section 7), and reading such documents back.

Pure code: no I/O.  The time is always passed in by the caller.
"""

from __future__ import annotations

import re
import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.parsers import expat

from gwsms.core.cpim import IMDN_NS, CpimMessage, build_cpim, imdn_message_id

__all__ = [
    "ImdnError",
    "ImdnNotification",
    "IMDN_XML_NS",
    "IMDN_CONTENT_TYPE",
    "DELIVERY_STATUSES",
    "new_message_id",
    "build_delivery_notification",
    "wrap_in_cpim",
    "delivery_notification_for",
    "status_for_receipt",
    "should_notify",
    "parse_notification",
]

#: XML namespace of the message/imdn+xml document.
IMDN_XML_NS = "urn:ietf:params:xml:ns:imdn"
#: Content type of the document.
IMDN_CONTENT_TYPE = "message/imdn+xml"
#: The <status> children allowed in a <delivery-notification>.
DELIVERY_STATUSES = ("delivered", "failed", "forbidden", "error")

_NOTIFICATION_KINDS = ("delivery-notification", "display-notification",
                       "processing-notification")
# Characters XML 1.0 cannot carry at all, and CR (parsers turn it into LF).
_XML_BAD_RE = re.compile("[\x00-\x08\x0b\x0c\r\x0e-\x1f\ufffe\uffff]")


class ImdnError(ValueError):
    """
    An IMDN document that cannot be built or read; the message says why.
    """


@dataclass(frozen=True)
class ImdnNotification:
    """
    A parsed message/imdn+xml document.

    @ivar message_id: the C{imdn.Message-ID} of the message it is about.
    @ivar datetime: the DateTime of that message (text, RFC 3339).
    @ivar recipient_uri: the recipient the notification is from, or C{None}.
    @ivar original_recipient_uri: or C{None}.
    @ivar subject: or C{None}.
    @ivar kind: C{"delivery"}, C{"display"} or C{"processing"}.
    @ivar status: the status element's name, e.g. C{"delivered"}.
    """

    message_id: str
    datetime: str
    recipient_uri: str | None
    original_recipient_uri: str | None
    subject: str | None
    kind: str
    status: str


def new_message_id() -> str:
    """
    @return: a fresh, globally unique C{imdn.Message-ID} (16 URL-safe
        characters, 96 random bits).
    """
    return secrets.token_urlsafe(12)


def _check_text(what: str, value: object, required: bool = True) -> str:
    if not isinstance(value, str):
        raise ImdnError(f"IMDN {what} must be text, not {type(value).__name__}")
    if required and not value.strip():
        raise ImdnError(f"IMDN {what} is empty")
    if _XML_BAD_RE.search(value):
        raise ImdnError(f"IMDN {what} contains characters XML cannot carry: {value[:40]!r}")
    return value.strip()


def _bare_uri(value: str) -> str:
    value = value.strip()
    start, end = value.find("<"), value.rfind(">")
    if 0 <= start < end:
        return value[start + 1:end].strip()
    return value


def build_delivery_notification(
    message_id: str,
    original_to: str,
    status: str,
    datetime_iso: str,
    original_recipient: str | None = None,
    subject: str | None = None,
) -> bytes:
    """
    Build a message/imdn+xml delivery notification::

        <?xml version="1.0" encoding="UTF-8"?>
        <imdn xmlns="urn:ietf:params:xml:ns:imdn">
          <message-id>...</message-id> <datetime>...</datetime>
          <recipient-uri>...</recipient-uri>
          <original-recipient-uri>...</original-recipient-uri>
          <delivery-notification><status><delivered/></status>
          </delivery-notification>
        </imdn>

    @param message_id: the C{imdn.Message-ID} of the message reported on.
    @param original_to: its recipient (URI; C{<>} are removed) ->
        C{<recipient-uri>}.
    @param status: one of L{DELIVERY_STATUSES}.
    @param datetime_iso: the C{DateTime} of the message reported on
        (RFC 5438: the original's, not the notification's).
    @param original_recipient: C{<original-recipient-uri>} when the
        message was re-targeted, else left out.
    @param subject: C{<subject>}, else left out.
    @return: the UTF-8 document.
    @raise ImdnError: for an unknown status or text XML cannot carry.
    """
    if status not in DELIVERY_STATUSES:
        raise ImdnError(f"unknown IMDN delivery status {status!r}: expected one of "
                        + ", ".join(DELIVERY_STATUSES))
    root = ET.Element("imdn", {"xmlns": IMDN_XML_NS})
    ET.SubElement(root, "message-id").text = _check_text("message id", message_id)
    ET.SubElement(root, "datetime").text = _check_text("datetime", datetime_iso)
    ET.SubElement(root, "recipient-uri").text = _bare_uri(
        _check_text("recipient URI", original_to))
    if original_recipient is not None:
        ET.SubElement(root, "original-recipient-uri").text = _bare_uri(
            _check_text("original recipient URI", original_recipient))
    if subject is not None:
        ET.SubElement(root, "subject").text = _check_text("subject", subject, required=False)
    note = ET.SubElement(root, "delivery-notification")
    ET.SubElement(ET.SubElement(note, "status"), status)
    return b'<?xml version="1.0" encoding="UTF-8"?>\r\n' + ET.tostring(root, "utf-8")


def wrap_in_cpim(
    notification: bytes,
    *,
    from_uri: str,
    to_uri: str,
    datetime_iso: str,
    message_id: str | None = None,
) -> bytes:
    """
    Wrap an IMDN document in the message/cpim body that carries it
    (RFC 5438 section 7): From, To, DateTime, C{NS: imdn
    <urn:ietf:params:imdn>}, a new C{imdn.Message-ID}, then
    C{Content-Type: message/imdn+xml} and
    C{Content-Disposition: notification}.  It asks for no notification.

    @param notification: from L{build_delivery_notification}.
    @param from_uri: who sends the notification (the original recipient
        or the gateway on its behalf).
    @param to_uri: the original sender.
    @param datetime_iso: now, RFC 3339 (e.g. C{"2024-01-01T12:00:00Z"}).
    @param message_id: the notification's own C{imdn.Message-ID}; a new
        one (L{new_message_id}) when C{None}.
    @return: the message/cpim body.
    @raise gwsms.core.cpim.CpimError: for values that cannot be written.
    """
    return build_cpim(
        from_uri,
        to_uri,
        IMDN_CONTENT_TYPE,
        notification,
        [("imdn.Message-ID", message_id or new_message_id())],
        {"imdn": IMDN_NS},
        datetime=datetime_iso,
        content_headers=[("Content-Disposition", "notification")],
    )


def delivery_notification_for(
    original: CpimMessage,
    status: str,
    now_iso: str,
    *,
    from_uri: str | None = None,
    message_id: str | None = None,
) -> bytes:
    """
    The whole message/cpim delivery notification answering a message.

    @param original: the parsed message/cpim that asked for it.
    @param status: one of L{DELIVERY_STATUSES}.
    @param now_iso: the notification's DateTime.
    @param from_uri: sender of the notification; the original's first To
        when C{None}.
    @param message_id: the notification's own Message-ID, new when C{None}.
    @return: the message/cpim body (Content-Type of the SIP MESSAGE:
        message/cpim).
    @raise ImdnError: when the original lacks imdn.Message-ID, From, To
        or DateTime.
    """
    original_id = imdn_message_id(original)
    sender, recipient = original.get("From"), original.get("To")
    sent_at = original.get("DateTime")
    for what, value in (("imdn.Message-ID", original_id), ("From", sender),
                        ("To", recipient), ("DateTime", sent_at)):
        if not value:
            raise ImdnError(f"cannot answer with an IMDN: the message has no {what} header")
    xml = build_delivery_notification(original_id, recipient, status, sent_at)
    return wrap_in_cpim(xml, from_uri=from_uri or recipient, to_uri=sender,
                        datetime_iso=now_iso, message_id=message_id)


def status_for_receipt(state: str) -> str | None:
    """
    @param state: an SMPP receipt state (L{gwsms.core.receipts.STATES}).
    @return: C{"delivered"} for DELIVRD, C{"failed"} for UNDELIV, EXPIRED,
        DELETED and REJECTD, C{None} for intermediate states (no
        notification yet).
    """
    if state == "DELIVRD":
        return "delivered"
    if state in ("UNDELIV", "EXPIRED", "DELETED", "REJECTD"):
        return "failed"
    return None


def should_notify(wanted: set[str], status: str) -> bool:
    """
    @param wanted: L{gwsms.core.cpim.wants_imdn} of the original message.
    @param status: a delivery status.
    @return: whether the sender asked for it: C{positive-delivery} for
        C{delivered}, C{negative-delivery} for the others.
    """
    if status == "delivered":
        return "positive-delivery" in wanted
    return "negative-delivery" in wanted


def _refuse_declarations(data: bytes) -> None:
    """Refuse DOCTYPE (and so entity declarations) before building a tree."""

    def refuse(*_args: object) -> None:
        raise ImdnError("IMDN document contains a DOCTYPE or entity declaration")

    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    try:
        parser.Parse(data, True)
    except expat.ExpatError as e:
        raise ImdnError(f"IMDN document is not well-formed XML: {e}") from None


def parse_notification(xml_bytes: bytes) -> ImdnNotification:
    """
    Read a message/imdn+xml document.

    @param xml_bytes: the document.
    @return: an L{ImdnNotification}.
    @raise ImdnError: not well-formed, a DOCTYPE/entity declaration, not an
        C{imdn} root in L{IMDN_XML_NS}, a missing element, or not exactly
        one notification with one status.
    """
    if not isinstance(xml_bytes, (bytes, bytearray)):
        raise ImdnError(f"IMDN document must be bytes, not {type(xml_bytes).__name__}")
    data = bytes(xml_bytes)
    _refuse_declarations(data)
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise ImdnError(f"IMDN document is not well-formed XML: {e}") from None
    q = "{" + IMDN_XML_NS + "}"
    if root.tag != q + "imdn":
        raise ImdnError(f"IMDN document root is {root.tag!r}, expected "
                        f"'imdn' in namespace {IMDN_XML_NS}")

    def text(name: str, required: bool) -> str | None:
        element = root.find(q + name)
        if element is None:
            if required:
                raise ImdnError(f"IMDN document has no <{name}>")
            return None
        return (element.text or "").strip()

    notes = [child for child in root
             if child.tag in {q + kind for kind in _NOTIFICATION_KINDS}]
    if len(notes) != 1:
        raise ImdnError(f"IMDN document has {len(notes)} notification elements, expected 1")
    status = notes[0].find(q + "status")
    children = list(status) if status is not None else []
    if len(children) != 1 or not children[0].tag.startswith(q):
        raise ImdnError("IMDN notification needs a <status> with exactly one element")
    return ImdnNotification(
        message_id=text("message-id", True),
        datetime=text("datetime", True),
        recipient_uri=text("recipient-uri", False),
        original_recipient_uri=text("original-recipient-uri", False),
        subject=text("subject", False),
        kind=notes[0].tag[len(q):].split("-", 1)[0],
        status=children[0].tag[len(q):],
    )
