"""
Tests for L{gwsms.core.imdn}.
"""

import xml.etree.ElementTree as ET

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from gwsms.core.cpim import IMDN_NS, CpimError, imdn_message_id, parse_cpim, wants_imdn
from gwsms.core.imdn import (
    DELIVERY_STATUSES,
    IMDN_XML_NS,
    ImdnError,
    ImdnNotification,
    build_delivery_notification,
    delivery_notification_for,
    new_message_id,
    parse_notification,
    should_notify,
    status_for_receipt,
    wrap_in_cpim,
)
from gwsms.core.receipts import STATES

Q = "{" + IMDN_XML_NS + "}"

# RFC 5438 section 7.2.1.1 style delivery notification document.
RFC5438_DELIVERED = b"""<?xml version="1.0" encoding="UTF-8"?>
<imdn xmlns="urn:ietf:params:xml:ns:imdn">
  <message-id>34jk324j</message-id>
  <datetime>2008-04-04T12:16:49-05:00</datetime>
  <recipient-uri>im:bob@example.com</recipient-uri>
  <original-recipient-uri>im:bob@example.com</original-recipient-uri>
  <delivery-notification>
    <status>
      <delivered/>
    </status>
  </delivery-notification>
</imdn>
"""

REQUEST = (
    b"From: Alice <im:alice@example.com>\r\n"
    b"To: Bob <im:bob@example.com>\r\n"
    b"NS: imdn <urn:ietf:params:imdn>\r\n"
    b"imdn.Message-ID: 34jk324j\r\n"
    b"DateTime: 2006-04-04T12:16:49-05:00\r\n"
    b"imdn.Disposition-Notification: positive-delivery, negative-delivery\r\n"
    b"\r\n"
    b"Content-type: text/plain\r\n"
    b"\r\n"
    b"Hello World"
)


class BuildTests(SynchronousTestCase):
    def test_document(self):
        xml = build_delivery_notification("34jk324j", "<sip:bob@example.com>", "delivered",
                                          "2008-04-04T12:16:49-05:00")
        self.assertTrue(xml.startswith(b'<?xml version="1.0" encoding="UTF-8"?>'))
        root = ET.fromstring(xml)
        self.assertEqual(root.tag, Q + "imdn")
        self.assertEqual([child.tag[len(Q):] for child in root],
                         ["message-id", "datetime", "recipient-uri", "delivery-notification"])
        self.assertEqual(root.findtext(Q + "message-id"), "34jk324j")
        self.assertEqual(root.findtext(Q + "recipient-uri"), "sip:bob@example.com")
        status = root.find(f"{Q}delivery-notification/{Q}status")
        self.assertEqual([c.tag for c in status], [Q + "delivered"])

    def test_every_status_round_trips(self):
        for status in DELIVERY_STATUSES:
            xml = build_delivery_notification("m1", "sip:b@x", status, "2024-01-01T00:00:00Z",
                                              original_recipient="sip:orig@x", subject="Hi")
            self.assertEqual(parse_notification(xml), ImdnNotification(
                message_id="m1", datetime="2024-01-01T00:00:00Z", recipient_uri="sip:b@x",
                original_recipient_uri="sip:orig@x", subject="Hi", kind="delivery",
                status=status))

    def test_escaping(self):
        nasty = "a<b>&\"c'</message-id><x/>]]>"
        xml = build_delivery_notification(nasty, "sip:b@x;p=&'\"", "failed", "now & then",
                                          subject="<script>")
        self.assertNotIn(b"<x/>", xml)
        n = parse_notification(xml)
        self.assertEqual((n.message_id, n.recipient_uri, n.datetime, n.subject),
                         (nasty, "sip:b@x;p=&'\"", "now & then", "<script>"))

    def test_unicode(self):
        xml = build_delivery_notification("\u00e9\u4e2d", "sip:\u00fc@x", "delivered", "t")
        self.assertEqual(parse_notification(xml).message_id, "\u00e9\u4e2d")

    def test_errors(self):
        table = [
            (("m", "sip:b@x", "read", "t"), "unknown IMDN delivery status 'read'"),
            (("", "sip:b@x", "delivered", "t"), "message id is empty"),
            (("m", " ", "delivered", "t"), "recipient URI is empty"),
            (("m", "sip:b@x", "delivered", ""), "datetime is empty"),
            (("m\x01", "sip:b@x", "delivered", "t"), "characters XML cannot carry"),
            (("m\r", "sip:b@x", "delivered", "t"), "characters XML cannot carry"),
            ((5, "sip:b@x", "delivered", "t"), "must be text"),
        ]
        for args, message in table:
            e = self.assertRaises(ImdnError, build_delivery_notification, *args)
            self.assertIn(message, str(e))


class WrapTests(SynchronousTestCase):
    def test_wrap(self):
        xml = build_delivery_notification("34jk324j", "im:bob@example.com", "delivered",
                                          "2006-04-04T12:16:49-05:00")
        body = wrap_in_cpim(xml, from_uri="im:bob@example.com", to_uri="im:alice@example.com",
                            datetime_iso="2006-04-04T12:16:52-05:00", message_id="d834jied93rf")
        m = parse_cpim(body)
        self.assertEqual(m.get("From"), "<im:bob@example.com>")
        self.assertEqual(m.get("To"), "<im:alice@example.com>")
        self.assertEqual(m.get("DateTime"), "2006-04-04T12:16:52-05:00")
        self.assertEqual(m.ns, {"imdn": IMDN_NS})
        self.assertEqual(imdn_message_id(m), "d834jied93rf")
        self.assertEqual(m.media_type, "message/imdn+xml")
        self.assertEqual(m.content_header("Content-Disposition"), "notification")
        self.assertEqual(m.content_header("Content-Length"), str(len(xml)))
        self.assertEqual(wants_imdn(m), set())  # a notification asks for none
        self.assertEqual(m.content, xml)
        self.assertEqual(parse_notification(m.content).message_id, "34jk324j")

    def test_new_message_id(self):
        xml = build_delivery_notification("a", "sip:b@x", "delivered", "t")
        ids = {imdn_message_id(parse_cpim(wrap_in_cpim(
            xml, from_uri="sip:b@x", to_uri="sip:a@x", datetime_iso="t"))) for _ in range(20)}
        self.assertEqual(len(ids), 20)
        self.assertEqual(len(new_message_id()), 16)

    def test_wrap_rejects_injection(self):
        self.assertRaises(CpimError, wrap_in_cpim, b"<x/>", from_uri="sip:a@x\r\nX: 1",
                          to_uri="sip:b@x", datetime_iso="t")

    def test_for_request(self):
        original = parse_cpim(REQUEST)
        body = delivery_notification_for(original, "delivered", "2006-04-04T12:17:00-05:00",
                                         message_id="n1")
        m = parse_cpim(body)
        self.assertEqual((m.get("From"), m.get("To")),
                         ("Bob <im:bob@example.com>", "Alice <im:alice@example.com>"))
        self.assertEqual(imdn_message_id(m), "n1")
        n = parse_notification(m.content)
        self.assertEqual((n.message_id, n.datetime, n.recipient_uri, n.status),
                         ("34jk324j", "2006-04-04T12:16:49-05:00", "im:bob@example.com",
                          "delivered"))
        body = delivery_notification_for(original, "failed", "t", from_uri="sip:gw@x")
        self.assertEqual(parse_cpim(body).get("From"), "<sip:gw@x>")

    def test_for_request_missing_headers(self):
        for drop in (b"imdn.Message-ID", b"DateTime", b"From", b"To"):
            lines = [line for line in REQUEST.split(b"\r\n") if not line.startswith(drop + b":")]
            original = parse_cpim(b"\r\n".join(lines))
            e = self.assertRaises(ImdnError, delivery_notification_for, original,
                                  "delivered", "t")
            self.assertIn(drop.decode(), str(e))


class PolicyTests(SynchronousTestCase):
    def test_status_for_receipt(self):
        self.assertEqual({s: status_for_receipt(s) for s in STATES}, {
            "ENROUTE": None, "DELIVRD": "delivered", "EXPIRED": "failed",
            "DELETED": "failed", "UNDELIV": "failed", "ACCEPTD": None, "UNKNOWN": None,
            "REJECTD": "failed"})

    def test_should_notify(self):
        both = {"positive-delivery", "negative-delivery"}
        self.assertTrue(should_notify(both, "delivered"))
        self.assertTrue(should_notify(both, "failed"))
        self.assertTrue(should_notify({"positive-delivery"}, "delivered"))
        self.assertFalse(should_notify({"positive-delivery"}, "failed"))
        self.assertFalse(should_notify({"negative-delivery", "display"}, "delivered"))
        self.assertTrue(should_notify({"negative-delivery"}, "error"))
        self.assertFalse(should_notify(set(), "delivered"))


class ParseTests(SynchronousTestCase):
    def test_rfc5438_document(self):
        self.assertEqual(parse_notification(RFC5438_DELIVERED), ImdnNotification(
            message_id="34jk324j", datetime="2008-04-04T12:16:49-05:00",
            recipient_uri="im:bob@example.com", original_recipient_uri="im:bob@example.com",
            subject=None, kind="delivery", status="delivered"))

    def test_other_prefix_and_kinds(self):
        xml = (b'<i:imdn xmlns:i="urn:ietf:params:xml:ns:imdn"><i:message-id>x</i:message-id>'
               b"<i:datetime>t</i:datetime><i:display-notification><i:status><i:displayed/>"
               b"</i:status></i:display-notification></i:imdn>")
        n = parse_notification(xml)
        self.assertEqual((n.kind, n.status, n.recipient_uri), ("display", "displayed", None))

    def test_rejects(self):
        table = [
            (b'<?xml version="1.0"?><!DOCTYPE imdn [<!ENTITY a "aaaa">]>'
             b'<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>&a;</message-id></imdn>',
             "DOCTYPE"),
            (b'<!DOCTYPE imdn SYSTEM "file:///etc/passwd"><imdn/>', "DOCTYPE"),
            (b"<imdn", "not well-formed"),
            (b"", "not well-formed"),
            (b"<imdn><message-id>x</message-id></imdn>", "expected 'imdn' in namespace"),
            (b'<imdn xmlns="urn:ietf:params:xml:ns:imdn"><datetime>t</datetime>'
             b"<delivery-notification><status><delivered/></status></delivery-notification>"
             b"</imdn>", "no <message-id>"),
            (b'<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>x</message-id>'
             b"<datetime>t</datetime></imdn>", "0 notification elements"),
            (b'<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>x</message-id>'
             b"<datetime>t</datetime><delivery-notification><status/>"
             b"</delivery-notification></imdn>", "exactly one element"),
            (b'<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>x</message-id>'
             b"<datetime>t</datetime><delivery-notification><status><delivered/><failed/>"
             b"</status></delivery-notification></imdn>", "exactly one element"),
        ]
        for xml, message in table:
            e = self.assertRaises(ImdnError, parse_notification, xml)
            self.assertIn(message, str(e), xml)
        self.assertRaises(ImdnError, parse_notification, "<imdn/>")

    @settings(max_examples=200, deadline=None)
    @given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40),
           st.sampled_from(DELIVERY_STATUSES))
    def test_round_trip(self, message_id, uri, status):
        try:
            xml = build_delivery_notification(message_id, uri, status, "2024-01-01T00:00:00Z")
        except ImdnError:
            return  # empty after stripping, or characters XML cannot carry
        n = parse_notification(xml)
        self.assertEqual((n.message_id, n.status), (message_id.strip(), status))

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=200))
    def test_parse_never_crashes(self, data):
        try:
            parse_notification(data)
        except ImdnError as e:
            self.assertTrue(str(e))
