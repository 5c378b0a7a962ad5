# -*- test-case-name: tests.test_sip_uri -*-
"""
Tests for L{gwsms.sip.uri}: L{SipURI}, L{NameAddr}, L{Via}.
"""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from gwsms.sip.message import GenericURI, NameAddr, SipParseError, SipURI, Via, parse_uri
from gwsms.sip.uri import format_params, parse_params, quote_string, unquote_string


class SipURITests(SynchronousTestCase):
    """
    sip:, sips: and tel: URIs.
    """

    def assert_round_trip(self, text: str) -> SipURI:
        uri = SipURI.parse(text)
        self.assertEqual(str(uri), text)
        self.assertEqual(SipURI.parse(str(uri)), uri)
        return uri

    def test_simple(self) -> None:
        uri = self.assert_round_trip("sip:alice@example.com")
        self.assertEqual((uri.scheme, uri.user, uri.host, uri.port), ("sip", "alice", "example.com", None))
        self.assertEqual(uri.params, {})
        self.assertEqual(uri.headers, {})
        self.assertEqual(uri.transport, "udp")
        self.assertEqual(uri.effective_port, 5060)

    def test_full(self) -> None:
        uri = self.assert_round_trip(
            "sips:bob:secret@[2001:db8::1]:5061;transport=tls;lr?subject=project%20x&priority=urgent")
        self.assertEqual(uri.scheme, "sips")
        self.assertEqual(uri.password, "secret")
        self.assertEqual(uri.host, "2001:db8::1")
        self.assertEqual(uri.port, 5061)
        self.assertEqual(uri.params, {"transport": "tls", "lr": None})
        self.assertEqual(uri.headers, {"subject": "project%20x", "priority": "urgent"})
        self.assertEqual(uri.transport, "tls")
        self.assertNotIn("secret", repr(uri))
        self.assertIn("****", repr(uri))

    def test_ipv4_and_host_only(self) -> None:
        uri = self.assert_round_trip("sip:192.0.2.4:5070;maddr=239.255.255.1;ttl=15")
        self.assertIsNone(uri.user)
        self.assertEqual((uri.host, uri.port), ("192.0.2.4", 5070))
        self.assertEqual(uri.params["maddr"], "239.255.255.1")
        self.assertEqual(uri.aor, "sip:192.0.2.4")

    def test_underscore_host(self) -> None:
        """
        Underscores are not valid in host names but common on private
        networks; they are accepted.
        """
        self.assertEqual(SipURI.parse("sip:a@sbc_1.corp:5070").host, "sbc_1.corp")
        self.assertEqual(Via.parse("SIP/2.0/UDP sbc_1.corp;branch=z9hG4bK1").host, "sbc_1.corp")

    def test_sips_default_port(self) -> None:
        uri = SipURI.parse("sips:gw.example.net")
        self.assertEqual(uri.effective_port, 5061)
        self.assertEqual(uri.transport, "tls")

    def test_escaped_user(self) -> None:
        uri = SipURI.parse("sip:%2B4915%40x@host")
        self.assertEqual(uri.user, "+4915@x")
        self.assertEqual(str(uri), "sip:+4915%40x@host")
        self.assertEqual(SipURI.parse(str(uri)), uri)
        self.assertEqual(SipURI.parse("sip:%61lice@h"), SipURI.parse("sip:alice@h"))
        self.assertEqual(SipURI.parse("sip:j%C3%B6rg@h").user, "jörg")
        self.assertEqual(str(SipURI(host="h", user="a b")), "sip:a%20b@h")

    def test_user_with_semicolon(self) -> None:
        uri = self.assert_round_trip("sip:+4915123;phone-context=+49@example.com;user=phone")
        self.assertEqual(uri.user, "+4915123;phone-context=+49")
        self.assertEqual(uri.params, {"user": "phone"})

    def test_question_mark_in_user(self) -> None:
        """
        Found by the property test: '?' is legal in a user part; it is
        parsed as such and escaped on output.
        """
        uri = SipURI.parse("sip:a?b@h?x=1")
        self.assertEqual((uri.user, uri.host, uri.headers), ("a?b", "h", {"x": "1"}))
        self.assertEqual(str(uri), "sip:a%3Fb@h?x=1")
        self.assertEqual(SipURI.parse(str(uri)), uri)

    def test_scheme_case(self) -> None:
        uri = SipURI.parse("SIP:Alice@EXAMPLE.com")
        self.assertEqual(uri.scheme, "sip")
        self.assertEqual(uri, SipURI.parse("sip:Alice@example.com"))
        self.assertNotEqual(uri, SipURI.parse("sip:alice@example.com"))
        self.assertEqual(uri.aor, "sip:Alice@example.com")

    def test_tel(self) -> None:
        uri = self.assert_round_trip("tel:+4915112345678;phone-context=+49")
        self.assertEqual((uri.scheme, uri.user, uri.host), ("tel", "+4915112345678", ""))
        self.assertEqual(uri.params, {"phone-context": "+49"})
        self.assertEqual(uri.aor, "tel:+4915112345678")
        local = self.assert_round_trip("tel:7042;phone-context=example.com")
        self.assertEqual(local.user, "7042")
        self.assert_round_trip("tel:+1-201-555-0123")

    def test_equality_rules(self) -> None:
        """
        RFC 3261 19.1.4.
        """
        p = SipURI.parse
        self.assertEqual(p("sip:carol@chicago.com"), p("sip:carol@chicago.com;newparam=5"))
        self.assertEqual(p("sip:carol@chicago.com;security=on"), p("sip:carol@chicago.com;newparam=5"))
        self.assertEqual(p("sip:alice@atlanta.com;transport=TCP"), p("sip:alice@AtLanTa.CoM;Transport=tcp"))
        self.assertNotEqual(p("sip:bob@biloxi.com"), p("sip:bob@biloxi.com:5060"))
        self.assertNotEqual(p("sip:bob@biloxi.com"), p("sip:bob@biloxi.com;transport=udp"))
        self.assertNotEqual(p("sip:carol@chicago.com;security=on"), p("sip:carol@chicago.com;security=off"))
        self.assertNotEqual(p("sip:carol@chicago.com"), p("sip:carol@chicago.com?Subject=next%20meeting"))
        self.assertNotEqual(p("sip:a@h"), p("sips:a@h"))
        self.assertNotEqual(p("sip:a@h"), "sip:a@h")
        self.assertEqual(len({p("sip:a@H"), p("sip:a@h")}), 1)

    def test_copy(self) -> None:
        uri = SipURI.parse("sip:a@h;lr")
        other = uri.copy(port=5080)
        other.params["transport"] = "tcp"
        self.assertEqual(str(other), "sip:a@h:5080;lr;transport=tcp")
        self.assertEqual(str(uri), "sip:a@h;lr")

    def test_errors(self) -> None:
        for text, status in (
            ("http://example.com", 416),
            ("mailto:a@b", 416),
            ("sip:", 400),
            ("sip:a@", 400),
            ("sip:@h", 400),
            ("sip:h:99999", 400),
            ("sip:h:", 400),
            ("sip:[::1", 400),
            ("sip:[zz]", 400),
            ("sip:[1.2.3.4]", 400),
            ("sip:%zz@h", 400),
            ("sip:%2@h", 400),
            ("sip:a b@c", 400),
            ("sip:a@b c", 400),
            ("sip:a@h;=x", 400),
            ("sip:a@h?x", 400),
            ("tel:abc@x", 400),
            ("notauri", 400),
            ("", 400),
        ):
            e = self.assertRaises(SipParseError, SipURI.parse, text)
            self.assertEqual(e.status, status, text)
            self.assertTrue(e.reason)

    def test_parse_uri_generic(self) -> None:
        uri = parse_uri("im:alice@example.com")
        self.assertIsInstance(uri, GenericURI)
        self.assertEqual((uri.scheme, uri.rest), ("im", "alice@example.com"))
        self.assertEqual(str(uri), "im:alice@example.com")
        self.assertEqual(uri, GenericURI("im", "alice@example.com"))
        self.assertIsInstance(parse_uri("sip:a@b"), SipURI)
        self.assertIsInstance(parse_uri("SIPS:a@b"), SipURI)
        self.assertIsInstance(parse_uri("sipsx:a@b"), GenericURI)
        self.assertRaises(SipParseError, parse_uri, "no scheme")
        self.assertRaises(SipParseError, parse_uri, "urn:")


class NameAddrTests(SynchronousTestCase):
    """
    From/To/Contact style values.
    """

    def test_quoted_display(self) -> None:
        na = NameAddr.parse('"Display \\"Name\\"" <sip:a@b;lr>;tag=x')
        self.assertEqual(na.display_name, 'Display "Name"')
        self.assertEqual(str(na.uri), "sip:a@b;lr")
        self.assertEqual(na.uri.params, {"lr": None})
        self.assertEqual(na.params, {"tag": "x"})
        self.assertEqual(na.tag, "x")
        self.assertEqual(str(na), '"Display \\"Name\\"" <sip:a@b;lr>;tag=x')
        self.assertEqual(NameAddr.parse(str(na)), na)

    def test_token_display(self) -> None:
        na = NameAddr.parse("Bob Smith <sip:bob@example.com>")
        self.assertEqual(na.display_name, "Bob Smith")
        self.assertEqual(str(na), '"Bob Smith" <sip:bob@example.com>')
        self.assertEqual(NameAddr.parse(str(na)), na)

    def test_no_display(self) -> None:
        na = NameAddr.parse("<sip:bob@example.com>")
        self.assertIsNone(na.display_name)
        self.assertEqual(str(na), "<sip:bob@example.com>")
        self.assertIsNone(NameAddr.parse("  <sip:b@e>").display_name)

    def test_bare_addr_spec(self) -> None:
        """
        Parameters after a bare addr-spec belong to the header.
        """
        na = NameAddr.parse("sip:a@b;tag=x;expires=60")
        self.assertEqual(na.uri.params, {})
        self.assertEqual(na.params, {"tag": "x", "expires": "60"})
        self.assertEqual(str(na), "<sip:a@b>;tag=x;expires=60")
        self.assertEqual(NameAddr.parse(str(na)), na)
        self.assertEqual(NameAddr.parse("tel:+49301234").uri.user, "+49301234")

    def test_wildcard(self) -> None:
        na = NameAddr.parse(" * ")
        self.assertTrue(na.wildcard)
        self.assertIsNone(na.uri)
        self.assertEqual(str(na), "*")
        self.assertEqual(repr(na), "NameAddr('*')")

    def test_params(self) -> None:
        na = NameAddr.parse('<sip:a@b>;expires=3600;q=0.7;+sip.instance="<urn:uuid:1;x>";reg-id=1')
        self.assertEqual(na.params["expires"], "3600")
        self.assertEqual(na.params["q"], "0.7")
        self.assertEqual(na.params["+sip.instance"], '"<urn:uuid:1;x>"')
        self.assertEqual(na.params["reg-id"], "1")
        self.assertEqual(NameAddr.parse(str(na)), na)
        spaced = NameAddr.parse("<sip:a@b> ; tag = 7 ; lr")
        self.assertEqual(spaced.params, {"tag": "7", "lr": None})

    def test_expires_and_q(self) -> None:
        na = NameAddr.parse("<sip:a@b>;expires=3600;q=0.7")
        self.assertEqual((na.expires, na.q), (3600, 0.7))
        plain = NameAddr.parse("<sip:a@b>")
        self.assertEqual((plain.expires, plain.q), (None, None))
        self.assertEqual(NameAddr.parse("<sip:a@b>;q=1.000").q, 1.0)
        for bad in ("expires=-1", "expires=soon", "q=1.5", "q=.5", "q=0.1234", "q"):
            na = NameAddr.parse("<sip:a@b>;" + bad)
            self.assertRaises(SipParseError, lambda: (na.expires, na.q))

    def test_unicode_display(self) -> None:
        na = NameAddr.parse('"Jörg Müller 😀" <sip:j@example.com>')
        self.assertEqual(na.display_name, "Jörg Müller 😀")
        self.assertEqual(NameAddr.parse(str(na)), na)

    def test_construct(self) -> None:
        na = NameAddr("sip:gw@example.net", "SMS", {"tag": "t1"})
        self.assertEqual(str(na), '"SMS" <sip:gw@example.net>;tag=t1')
        na.params["tag"] = "t2"
        self.assertEqual(na.tag, "t2")

    def test_errors(self) -> None:
        for text in (
            '"unterminated <sip:a@b>',
            "<sip:a@b",
            '"x" sip:a@b',
            "Bad@Name <sip:a@b>",
            "<sip:a@b>;tag=x;;",
            "<>",
            "",
            "<sip:a@b> junk",
        ):
            e = self.assertRaises(SipParseError, NameAddr.parse, text)
            self.assertEqual(e.status, 400, text)


class ViaTests(SynchronousTestCase):
    """
    Via values.
    """

    def test_basic(self) -> None:
        text = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport;received=1.2.3.4"
        via = Via.parse(text)
        self.assertEqual(via.protocol, "SIP/2.0")
        self.assertEqual((via.transport, via.host, via.port), ("UDP", "192.0.2.1", 5060))
        self.assertEqual(via.branch, "z9hG4bK776asdhds")
        self.assertEqual(via.received, "1.2.3.4")
        self.assertIn("rport", via.params)
        self.assertIsNone(via.rport)
        self.assertEqual(str(via), text)
        self.assertEqual(Via.parse(str(via)), via)

    def test_ipv6(self) -> None:
        via = Via.parse("SIP/2.0/TLS [2001:db8::9:1]:5061;branch=z9hG4bKx;rport=5061")
        self.assertEqual(via.host, "2001:db8::9:1")
        self.assertEqual(via.port, 5061)
        self.assertEqual(via.rport, 5061)
        self.assertEqual(str(via), "SIP/2.0/TLS [2001:db8::9:1]:5061;branch=z9hG4bKx;rport=5061")
        self.assertIsNone(Via.parse("SIP/2.0/UDP [::1];branch=z9hG4bKy").port)

    def test_lenient_spacing_and_case(self) -> None:
        via = Via.parse("SIP / 2.0 / udp host.example.com : 5070 ; branch = z9hG4bKs ; ttl=1")
        self.assertEqual((via.transport, via.host, via.port), ("UDP", "host.example.com", 5070))
        self.assertEqual(via.params, {"branch": "z9hG4bKs", "ttl": "1"})
        self.assertEqual(str(via), "SIP/2.0/UDP host.example.com:5070;branch=z9hG4bKs;ttl=1")

    def test_no_params(self) -> None:
        via = Via.parse("SIP/2.0/TCP client.example.com")
        self.assertEqual(via.params, {})
        self.assertIsNone(via.branch)
        self.assertIsNone(via.port)

    def test_construct(self) -> None:
        via = Via("tcp", "2001:db8::1", 5060, {"branch": "z9hG4bK1", "rport": None})
        self.assertEqual(str(via), "SIP/2.0/TCP [2001:db8::1]:5060;branch=z9hG4bK1;rport")
        via.params["received"] = "2001:db8::2"
        self.assertEqual(Via.parse(str(via)).received, "2001:db8::2")

    def test_errors(self) -> None:
        for text in (
            "",
            "SIP/2.0 host",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP host:99999",
            "SIP/2.0/UDP [zz]:5060",
            "SIP/2.0/UDP host;branch=a b",
            "SIP/2.0/UDP host junk",
            "SIP/2.0/UDP host;=x",
        ):
            e = self.assertRaises(SipParseError, Via.parse, text)
            self.assertEqual(e.status, 400, text)


class ParamsTests(SynchronousTestCase):
    """
    Parameter and quoting helpers.
    """

    def test_params(self) -> None:
        self.assertEqual(parse_params(""), {})
        self.assertEqual(parse_params(";A=1;b;c=x=y"), {"a": "1", "b": None, "c": "x=y"})
        self.assertEqual(parse_params(';q="a;b,c"'), {"q": '"a;b,c"'})
        self.assertEqual(format_params({"a": "1", "b": None}), ";a=1;b")
        for bad in ("x", ";", ";a=1,b", ';a="x', ";a;b c"):
            self.assertRaises(SipParseError, parse_params, bad)

    def test_quote(self) -> None:
        self.assertEqual(quote_string('a"b\\c'), '"a\\"b\\\\c"')
        self.assertEqual(unquote_string(quote_string('a"b\\c')), 'a"b\\c')
        self.assertEqual(unquote_string("plain"), "plain")


# --- property tests (hypothesis, deterministic) ------------------------------

_SETTINGS = settings(max_examples=300, derandomize=True, database=None, deadline=None)
_TOKEN = st.text("abcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~", min_size=1, max_size=12)
_HOSTS = st.one_of(
    st.from_regex(r"[a-z0-9]([a-z0-9\-]{0,10}[a-z0-9])?(\.[a-z0-9]{1,8}){0,3}", fullmatch=True),
    st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n))),
    st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n))),
)
_PORTS = st.one_of(st.none(), st.integers(0, 65535))
_PARAMS = st.dictionaries(_TOKEN.map(str.lower), st.one_of(st.none(), _TOKEN), max_size=4)
_USERS = st.text(
    st.characters(blacklist_categories=("Cs",), min_codepoint=1), min_size=1, max_size=20)


class PropertyTests(SynchronousTestCase):
    """
    Random values survive str() -> parse().
    """

    @_SETTINGS
    @given(host=_HOSTS, user=st.one_of(st.none(), _USERS), port=_PORTS, params=_PARAMS,
           headers=st.dictionaries(_TOKEN, _TOKEN, max_size=3),
           password=st.one_of(st.none(), st.text("abc%&=+$,:@ ", max_size=8)),
           scheme=st.sampled_from(["sip", "sips"]))
    def test_sip_uri_round_trip(self, host, user, port, params, headers, password, scheme):
        if user is None:
            password = None
        uri = SipURI(host, user, port, params, headers, scheme, password)
        text = str(uri)
        again = SipURI.parse(text)
        self.assertEqual(again, uri)
        self.assertEqual((again.user, again.password, again.host), (user, password, host))
        self.assertEqual(str(again), text)

    @_SETTINGS
    @given(number=st.from_regex(r"\+?[0-9][0-9\-.]{0,15}", fullmatch=True), params=_PARAMS)
    def test_tel_round_trip(self, number, params):
        uri = SipURI(user=number, params=params, scheme="tel")
        self.assertEqual(SipURI.parse(str(uri)), uri)

    @_SETTINGS
    @given(display=st.one_of(st.none(), st.text(
               st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
               max_size=20)),
           host=_HOSTS, user=st.one_of(st.none(), _USERS), params=_PARAMS, uri_params=_PARAMS)
    def test_name_addr_round_trip(self, display, host, user, params, uri_params):
        na = NameAddr(SipURI(host, user, params=uri_params), display, params)
        again = NameAddr.parse(str(na))
        self.assertEqual(again, na)
        self.assertEqual(str(again), str(na))

    @_SETTINGS
    @given(transport=st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS", "WSS"]), host=_HOSTS,
           port=_PORTS, params=_PARAMS)
    def test_via_round_trip(self, transport, host, port, params):
        via = Via(transport, host, port, params)
        self.assertEqual(Via.parse(str(via)), via)

    @_SETTINGS
    @given(st.text(max_size=60))
    def test_garbage_only_parse_errors(self, text):
        for parse in (SipURI.parse, NameAddr.parse, Via.parse, parse_uri, parse_params):
            try:
                parse(text)
            except SipParseError:
                pass
