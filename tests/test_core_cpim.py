"""
Tests for L{gwsms.core.cpim}.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from gwsms.core.cpim import (
    IMDN_NS,
    CpimError,
    CpimMessage,
    build_cpim,
    imdn_message_id,
    parse_content_type,
    parse_cpim,
    wants_imdn,
)

# RFC 3862 section 2 example (re-typed, CRLF line ends).
RFC3862 = (
    b"From: MR SANDERS <im:piglet@100akerwood.com>\r\n"
    b"To: Depressed Donkey <im:eeyore@100akerwood.com>\r\n"
    b"DateTime: 2000-12-13T13:40:00-08:00\r\n"
    b"Subject: the weather will be fine today\r\n"
    b"Subject:;lang=fr beau temps prevu pour aujourd'hui\r\n"
    b"NS: MyFeatures <mid:MessageFeatures@id.foo.com>\r\n"
    b"Require: MyFeatures.VitalMessageOption\r\n"
    b"MyFeatures.VitalMessageOption: Confirmation-requested\r\n"
    b"MyFeatures.WackyMessageOption: Use-silly-font\r\n"
    b"\r\n"
    b"Content-type: text/xml; charset=utf-8\r\n"
    b"Content-ID: <1234567890@foo.com>\r\n"
    b"\r\n"
    b"<body>\r\n"
    b"Here is the text of my message.\r\n"
    b"</body>\r\n"
)

# RFC 5438 section 7.1.1 style request for notifications.
RFC5438_REQUEST = (
    b"From: Alice <im:alice@example.com>\r\n"
    b"To: Bob <im:bob@example.com>\r\n"
    b"NS: imdn <urn:ietf:params:imdn>\r\n"
    b"imdn.Message-ID: 34jk324j\r\n"
    b"DateTime: 2006-04-04T12:16:49-05:00\r\n"
    b"imdn.Disposition-Notification: positive-delivery, negative-delivery\r\n"
    b"\r\n"
    b"Content-type: text/plain\r\n"
    b"Content-length: 12\r\n"
    b"\r\n"
    b"Hello World\n"
)

# What some RCS clients send: Content-* among the message headers.
SINGLE_BLOCK = (
    b"From: <sip:001010123456789@ims.example.org>\r\n"
    b"To: <sip:+14448880011@ims.example.org;user=phone>\r\n"
    b"DateTime: 2026-05-15T12:00:00Z\r\n"
    b"NS: imdn <urn:ietf:params:imdn>\r\n"
    b"imdn.Message-ID: msg-001-abc\r\n"
    b"imdn.Disposition-Notification: positive-delivery,display\r\n"
    b"Content-Type: text/plain;charset=UTF-8\r\n"
    b"Content-Length: 13\r\n"
    b"\r\n"
    b"Hello world!\n"
)


class ParseTests(SynchronousTestCase):
    def test_rfc3862_example(self):
        m = parse_cpim(RFC3862)
        self.assertEqual(m.get("From"), "MR SANDERS <im:piglet@100akerwood.com>")
        self.assertEqual(m.get_all("subject"), [
            "the weather will be fine today",
            ";lang=fr beau temps prevu pour aujourd'hui",
        ])
        self.assertEqual(m.ns, {"MyFeatures": "mid:MessageFeatures@id.foo.com"})
        self.assertEqual(m.get_ns("mid:MessageFeatures@id.foo.com", "WackyMessageOption"),
                         ["Use-silly-font"])
        self.assertEqual(m.get("MyFeatures.VitalMessageOption"), "Confirmation-requested")
        self.assertEqual(m.content_type, "text/xml; charset=utf-8")
        self.assertEqual(m.media_type, "text/xml")
        self.assertEqual(m.charset, "utf-8")
        self.assertEqual(m.content_header("content-id"), "<1234567890@foo.com>")
        self.assertEqual(m.content,
                         b"<body>\r\nHere is the text of my message.\r\n</body>\r\n")
        self.assertEqual(len(m.headers), 9)
        self.assertEqual(wants_imdn(m), set())
        self.assertIsNone(imdn_message_id(m))

    def test_lf_only(self):
        lf = RFC3862.replace(b"\r\n", b"\n")
        m = parse_cpim(lf)
        crlf = parse_cpim(RFC3862)
        self.assertEqual(m.headers, crlf.headers)
        self.assertEqual(m.content_headers, crlf.content_headers)
        self.assertEqual(m.content, b"<body>\nHere is the text of my message.\n</body>\n")

    def test_rfc5438_request(self):
        m = parse_cpim(RFC5438_REQUEST)
        self.assertEqual(imdn_message_id(m), "34jk324j")
        self.assertEqual(wants_imdn(m), {"positive-delivery", "negative-delivery"})
        self.assertEqual(m.get("DateTime"), "2006-04-04T12:16:49-05:00")
        self.assertEqual(m.content, b"Hello World\n")
        self.assertEqual(m.text(), "Hello World\n")

    def test_single_block_form(self):
        m = parse_cpim(SINGLE_BLOCK)
        self.assertEqual(m.content_type, "text/plain;charset=UTF-8")
        self.assertEqual([n for n, _ in m.content_headers], ["Content-Type", "Content-Length"])
        self.assertNotIn("Content-Type", [n for n, _ in m.headers])
        self.assertEqual(m.content, b"Hello world!\n")
        self.assertEqual(wants_imdn(m), {"positive-delivery", "display"})
        self.assertEqual(imdn_message_id(m), "msg-001-abc")

    def test_single_block_without_content(self):
        m = parse_cpim(b"From: <sip:a@x>\r\nContent-Type: text/plain\r\n")
        self.assertEqual((m.content_type, m.content), ("text/plain", b""))

    def test_any_prefix_for_imdn(self):
        body = (b"From: <sip:a@x>\r\nTo: <sip:b@x>\r\n"
                b"NS: n <urn:ietf:params:imdn>\r\nNS: imdn <urn:example:other>\r\n"
                b"imdn.Message-ID: wrong\r\nn.Message-ID: right\r\n"
                b"N.disposition-notification: Positive-Delivery\r\n"
                b"imdn.Disposition-Notification: display\r\n"
                b"\r\nContent-Type: text/plain\r\n\r\nx")
        m = parse_cpim(body)
        self.assertEqual(imdn_message_id(m), "right")
        self.assertEqual(wants_imdn(m), {"positive-delivery"})

    def test_default_namespace(self):
        body = (b"From: <sip:a@x>\r\nNS: <urn:ietf:params:imdn>\r\nMessage-ID: m1\r\n"
                b"Disposition-Notification: negative-delivery\r\n"
                b"\r\nContent-Type: text/plain\r\n\r\n")
        m = parse_cpim(body)
        self.assertEqual(m.ns, {"": IMDN_NS})
        self.assertEqual(imdn_message_id(m), "m1")
        self.assertEqual(wants_imdn(m), {"negative-delivery"})

    def test_undeclared_imdn_prefix_accepted(self):
        body = (b"From: <sip:a@x>\r\nimdn.Message-ID: m2\r\n"
                b"imdn.Disposition-Notification: positive-delivery\r\n"
                b"\r\nContent-Type: text/plain\r\n\r\nhi")
        m = parse_cpim(body)
        self.assertEqual((imdn_message_id(m), wants_imdn(m)), ("m2", {"positive-delivery"}))

    def test_no_message_id_no_imdn(self):
        body = (b"From: <sip:a@x>\r\nNS: imdn <urn:ietf:params:imdn>\r\n"
                b"imdn.Disposition-Notification: positive-delivery\r\n"
                b"\r\nContent-Type: text/plain\r\n\r\nhi")
        self.assertEqual(wants_imdn(parse_cpim(body)), set())

    def test_binary_content_untouched(self):
        content = b"\x00\r\n\r\n\xff\xfeFrom: x\r\n\n"
        m = parse_cpim(b"From: <sip:a@x>\r\n\r\nContent-Type: application/octet-stream\r\n\r\n"
                       + content)
        self.assertEqual(m.content, content)

    def test_content_length(self):
        head = b"From: <sip:a@x>\r\n\r\nContent-Type: text/plain\r\n"
        # Trailing white space after Content-Length bytes is dropped...
        self.assertEqual(parse_cpim(head + b"Content-Length: 5\r\n\r\nHello\r\n").content,
                         b"Hello")
        # ...other trailing bytes are content (the length was wrong).
        self.assertEqual(parse_cpim(head + b"Content-Length: 3\r\n\r\nHello").content,
                         b"Hello")
        self.assertEqual(parse_cpim(head + b"Content-Length: 99\r\n\r\nHello").content,
                         b"Hello")
        self.assertEqual(parse_cpim(head + b"Content-Length: x\r\n\r\nHi\r\n").content,
                         b"Hi\r\n")

    def test_folded_header(self):
        m = parse_cpim(b"From: <sip:a@x>\r\nSubject: one\r\n  two\r\n\r\n"
                       b"Content-Type: text/plain;\r\n\tcharset=utf-8\r\n\r\nx")
        self.assertEqual(m.get("Subject"), "one two")
        self.assertEqual(m.charset, "utf-8")

    def test_header_value_whitespace(self):
        m = parse_cpim(b"From :  <sip:a@x>  \r\n\r\nContent-Type:text/plain\r\n\r\n")
        self.assertEqual(m.headers, [("From", "<sip:a@x>")])

    def test_text(self):
        m = parse_cpim(b"From: <sip:a@x>\r\n\r\nContent-Type: text/plain; "
                       b"charset=\"ISO-8859-1\"\r\n\r\n\xe9t\xe9")
        self.assertEqual(m.text(), "\u00e9t\u00e9")
        m = parse_cpim(b"From: <sip:a@x>\r\n\r\nContent-Type: text/plain\r\n\r\n\xe9")
        e = self.assertRaises(CpimError, m.text)
        self.assertIn("not valid utf-8", str(e))
        m = parse_cpim(b"From: <sip:a@x>\r\n\r\nContent-Type: text/plain;charset=bogus\r\n\r\n")
        e = self.assertRaises(CpimError, m.text)
        self.assertIn("unknown charset 'bogus'", str(e))

    def test_errors(self):
        table = [
            (b"", "CPIM body is empty"),
            (b"\r\n\r\n", "CPIM body is empty"),
            (b"From: <sip:a@x>\r\n", "not followed by an empty line"),
            (b"From: <sip:a@x>\r\n\r\n", "no Content-Type"),
            (b"From: <sip:a@x>\r\n\r\nContent-ID: <x>\r\n\r\nhi", "no Content-Type"),
            (b"From <sip:a@x>\r\n\r\nContent-Type: text/plain\r\n\r\n",
             "malformed CPIM header line 1"),
            (b"From: <sip:a@x>\r\nBad Name: v\r\n\r\nContent-Type: text/plain\r\n\r\n",
             "malformed CPIM header line 2"),
            (b"From: <sip:a@x>\r\n\r\nContent-Type: text/plain\r\nnocolon\r\n\r\n",
             "malformed CPIM content header line 2"),
            (b" From: <sip:a@x>\r\n\r\nContent-Type: text/plain\r\n\r\n",
             "starts with white space"),
            (b"From: \xff\r\n\r\nContent-Type: text/plain\r\n\r\n", "not UTF-8"),
            (b"NS: imdn urn:ietf:params:imdn\r\n\r\nContent-Type: text/plain\r\n\r\n",
             "malformed NS header"),
        ]
        for body, message in table:
            e = self.assertRaises(CpimError, parse_cpim, body)
            self.assertIn(message, str(e), body)
        self.assertRaises(CpimError, parse_cpim, "From: text")


class ParseContentTypeTests(SynchronousTestCase):
    def test_parse(self):
        self.assertEqual(parse_content_type('Text/Plain; Charset="UTF-8"; format=flowed;;x'),
                         ("text/plain", {"charset": "UTF-8", "format": "flowed", "x": ""}))


class BuildTests(SynchronousTestCase):
    def test_layout(self):
        body = build_cpim(
            "sip:alice@example.com", "Bob <sip:bob@example.com>", "text/plain;charset=UTF-8",
            "H\u00e9llo".encode(), [("imdn.Message-ID", "34jk324j"),
                                    ("imdn.Disposition-Notification", "positive-delivery")],
            {"imdn": IMDN_NS}, datetime="2006-04-04T12:16:49-05:00",
        )
        self.assertEqual(body, (
            "From: <sip:alice@example.com>\r\n"
            "To: Bob <sip:bob@example.com>\r\n"
            "DateTime: 2006-04-04T12:16:49-05:00\r\n"
            "NS: imdn <urn:ietf:params:imdn>\r\n"
            "imdn.Message-ID: 34jk324j\r\n"
            "imdn.Disposition-Notification: positive-delivery\r\n"
            "\r\n"
            "Content-Type: text/plain;charset=UTF-8\r\n"
            "Content-Length: 6\r\n"
            "\r\n"
            "H\u00e9llo").encode())

    def test_multiple_to_default_ns_no_length(self):
        body = build_cpim("sip:a@x", ["sip:b@x", "sip:c@x"], "text/plain", b"",
                          ns={"": "urn:example:ns"}, content_length=False,
                          content_headers=[("Content-ID", "<1@x>")])
        m = parse_cpim(body)
        self.assertEqual(m.get_all("To"), ["<sip:b@x>", "<sip:c@x>"])
        self.assertEqual(m.ns, {"": "urn:example:ns"})
        self.assertEqual(m.content_headers, [("Content-Type", "text/plain"),
                                             ("Content-ID", "<1@x>")])

    def test_errors(self):
        def build(**kw):
            args = dict(from_uri="sip:a@x", to_uri="sip:b@x", content_type="text/plain",
                        content=b"x")
            args.update(kw)
            return build_cpim(**args)

        table = [
            (dict(headers=[("Subject", "a\r\nInjected: yes")]), "contains CR, LF or NUL"),
            (dict(headers=[("Bad Name", "v")]), "invalid CPIM header name"),
            (dict(from_uri="sip:a@x\r\nX: y"), "contains CR, LF or NUL"),
            (dict(content_type=" "), "content type is empty"),
            (dict(content_type="text/plain\nX: y"), "contains CR, LF or NUL"),
            (dict(content="text"), "must be bytes"),
            (dict(ns={"a.b": IMDN_NS}), "invalid CPIM namespace prefix"),
            (dict(ns={"a b": IMDN_NS}), "invalid CPIM namespace prefix"),
            (dict(ns={"x": "urn:a b"}), "invalid CPIM namespace URN"),
            (dict(ns={"x": ""}), "invalid CPIM namespace URN"),
        ]
        for kw, message in table:
            e = self.assertRaises(CpimError, build, **kw)
            self.assertIn(message, str(e), kw)


_VALUE = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
    max_size=30,
).map(str.strip)
_NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9\-]{0,15}", fullmatch=True)


class RoundTripTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(_VALUE, _VALUE, st.binary(max_size=200),
           st.lists(st.tuples(_NAME, _VALUE), max_size=5),
           st.sampled_from(["imdn", "n", "X-1"]), st.booleans(), st.booleans())
    def test_build_parse(self, frm, to, content, extra, prefix, lf_only, with_length):
        # Strip after removing the brackets: "0\x0c<" would otherwise leave
        # trailing white space, which a header value cannot carry.
        frm = frm.replace("<", "").replace(">", "").strip()
        to = to.replace("<", "").replace(">", "").strip()
        headers = [(f"{prefix}.Message-ID", "id1"),
                   (f"{prefix}.Disposition-Notification", "positive-delivery, display")]
        headers += [(n, v) for n, v in extra if n.lower() not in ("ns", "content-type")
                    and not n.lower().startswith("content-")]
        body = build_cpim(f"sip:{frm}", f"sip:{to}", "text/plain", content, headers,
                          {prefix: IMDN_NS}, datetime="2024-01-01T00:00:00Z",
                          content_length=with_length)
        if lf_only:
            head, sep, rest = body.partition(b"\r\n\r\n")
            head2, sep2, rest2 = rest.partition(b"\r\n\r\n")
            body = (head.replace(b"\r\n", b"\n") + b"\n\n" + head2.replace(b"\r\n", b"\n")
                    + b"\n\n" + rest2)
        m = parse_cpim(body)
        self.assertIsInstance(m, CpimMessage)
        self.assertEqual(m.content, content)
        self.assertEqual(m.get("From"), f"<sip:{frm}>")
        self.assertEqual(m.get("To"), f"<sip:{to}>")
        self.assertEqual(m.ns, {prefix: IMDN_NS})
        self.assertEqual(imdn_message_id(m), "id1")
        self.assertEqual(wants_imdn(m), {"positive-delivery", "display"})
        self.assertEqual(m.headers[4:], headers)
        self.assertEqual(m.content_type, "text/plain")

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=300))
    def test_parse_never_crashes(self, data):
        try:
            m = parse_cpim(data)
        except CpimError as e:
            self.assertTrue(str(e))
            return
        self.assertTrue(m.content_type)
        wants_imdn(m)
