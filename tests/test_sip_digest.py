"""
Tests for L{gwsms.sip.digest}.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase

from gwsms.sip import digest
from gwsms.sip.digest import (
    DigestAuthenticator,
    DigestError,
    TrustedSources,
    build_authorization,
    compute_ha1,
    compute_response,
    parse_auth_header,
)

# RFC 7616 §3.9.1 (HTTP, but the arithmetic is the same for SIP).
R7616 = dict(
    username="Mufasa",
    password="Circle of Life",
    realm="http-auth@example.org",
    method="GET",
    uri="/dir/index.html",
    nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS",
)


@dataclass(frozen=True)
class User:
    username: str
    realm: str
    ha1_md5: str
    ha1_sha256: str


class FakeUsers:
    """In-memory stand-in for SipUserStore.get."""

    def __init__(self):
        self.users = {}
        self.calls = 0

    def add(self, username, password, realm):
        self.users[(username, realm)] = User(
            username,
            realm,
            compute_ha1("MD5", username, realm, password),
            compute_ha1("SHA-256", username, realm, password),
        )

    def get(self, username, realm):
        self.calls += 1
        return defer.succeed(self.users.get((username, realm)))


class VectorTests(SynchronousTestCase):
    def test_rfc7616_md5(self):
        ha1 = compute_ha1("MD5", R7616["username"], R7616["realm"], R7616["password"])
        response = compute_response(
            "MD5", ha1, R7616["nonce"], "GET", R7616["uri"], "auth", "00000001", R7616["cnonce"]
        )
        self.assertEqual(response, "8ca523f5e9506fed4657c9700eebdbec")

    def test_rfc7616_sha256(self):
        ha1 = compute_ha1("SHA-256", R7616["username"], R7616["realm"], R7616["password"])
        response = compute_response(
            "SHA-256", ha1, R7616["nonce"], "GET", R7616["uri"], "auth", "00000001", R7616["cnonce"]
        )
        self.assertEqual(response, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1")

    def test_rfc2617(self):
        ha1 = compute_ha1("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life")
        response = compute_response(
            "MD5",
            ha1,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "GET",
            "/dir/index.html",
            "auth",
            "00000001",
            "0a4f113b",
        )
        self.assertEqual(response, "6629fae49393a05397450978507c4ef1")

    def test_client_reproduces_rfc7616(self):
        challenges = [
            'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
            'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
            'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"',
            'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, '
            'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
            'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"',
        ]
        # MD5 listed last but SHA-256 must win regardless of order.
        for order in (challenges, challenges[::-1]):
            value = build_authorization(
                order, "GET", R7616["uri"], "Mufasa", "Circle of Life", cnonce=R7616["cnonce"]
            )
            [(scheme, params)] = parse_auth_header(value)
            self.assertEqual(scheme, "Digest")
            self.assertEqual(params["algorithm"], "SHA-256")
            self.assertEqual(params["qop"], "auth")
            self.assertEqual(params["nc"], "00000001")
            self.assertEqual(params["opaque"], R7616["opaque"])
            self.assertEqual(
                params["response"], "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
            )

    def test_client_md5_only(self):
        value = build_authorization(
            ['Digest realm="http-auth@example.org", qop="auth", nonce="%s"' % R7616["nonce"]],
            "GET",
            R7616["uri"],
            "Mufasa",
            "Circle of Life",
            cnonce=R7616["cnonce"],
        )
        params = parse_auth_header(value)[0][1]
        self.assertEqual(params["algorithm"], "MD5")
        self.assertEqual(params["response"], "8ca523f5e9506fed4657c9700eebdbec")

    def test_client_rfc2069(self):
        """Without qop the answer is H(HA1:nonce:HA2) and carries no nc/cnonce."""
        value = build_authorization(
            ['Digest realm="r", nonce="abc"'], "MESSAGE", "sip:x@y", "u", "p"
        )
        params = parse_auth_header(value)[0][1]
        self.assertNotIn("nc", params)
        self.assertNotIn("cnonce", params)
        ha1 = compute_ha1("MD5", "u", "r", "p")
        expected = compute_response("MD5", ha1, "abc", "MESSAGE", "sip:x@y")
        self.assertEqual(params["response"], expected)

    def test_client_no_digest(self):
        self.assertRaises(DigestError, build_authorization, ['Basic realm="x"'], "M", "u", "a", "b")

    def test_client_unsupported_algorithm(self):
        e = self.assertRaises(
            DigestError,
            build_authorization,
            ['Digest realm="x", nonce="n", algorithm=SHA-512-256'],
            "M",
            "u",
            "a",
            "b",
        )
        self.assertIn("SHA-512-256", str(e))


class ParseTests(SynchronousTestCase):
    def test_quoted_commas_and_escapes(self):
        parsed = parse_auth_header(
            'Digest realm="a, b=c", nonce="x\\"y", qop="auth,auth-int" , algorithm=MD5'
        )
        self.assertEqual(
            parsed,
            [("Digest", {"realm": "a, b=c", "nonce": 'x"y', "qop": "auth,auth-int", "algorithm": "MD5"})],
        )

    def test_several_challenges_in_one_value(self):
        parsed = parse_auth_header('Digest realm="a", nonce="1", Digest realm="b", nonce="2"')
        self.assertEqual([p["realm"] for _s, p in parsed], ["a", "b"])

    def test_unterminated_quote(self):
        self.assertRaises(DigestError, parse_auth_header, 'Digest realm="abc')

    def test_param_without_scheme(self):
        self.assertRaises(DigestError, parse_auth_header, 'realm="abc"')

    def test_quote_round_trip(self):
        parsed = parse_auth_header("Digest x=" + digest.quote('a"b\\c'))
        self.assertEqual(parsed[0][1]["x"], 'a"b\\c')


class AuthenticatorTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1_000_000)
        self.users = FakeUsers()
        self.users.add("alice", "s3cret", "gw.example")
        self.auth = DigestAuthenticator(self.clock, "gw.example", self.users, nonce_ttl=300)
        self.uri = "sip:+4930123@gw.example"

    def answer(self, challenges=None, uri=None, password="s3cret", nc=1, cnonce="c1", method="MESSAGE"):
        return build_authorization(
            challenges or self.auth.challenges(),
            method,
            uri or self.uri,
            "alice",
            password,
            cnonce=cnonce,
            nc=nc,
        )

    def check(self, value, method="MESSAGE", uri=None):
        return self.successResultOf(self.auth.authenticate(method, uri or self.uri, [value]))

    def test_challenges_sha256_first(self):
        values = self.auth.challenges()
        algos = [parse_auth_header(v)[0][1]["algorithm"] for v in values]
        self.assertEqual(algos, ["SHA-256", "MD5"])
        for value in values:
            params = parse_auth_header(value)[0][1]
            self.assertEqual(params["qop"], "auth")
            self.assertEqual(params["realm"], "gw.example")
            self.assertEqual(params["opaque"], self.auth.opaque)
            self.assertNotIn("stale", params)
        self.assertIn("stale=true", self.auth.challenges(stale=True)[0])

    def test_success_sha256(self):
        result = self.check(self.answer())
        self.assertTrue(result.ok)
        self.assertEqual(result.username, "alice")

    def test_success_md5(self):
        md5_only = [self.auth.challenges()[1]]
        result = self.check(self.answer(md5_only))
        self.assertEqual(result.username, "alice")

    def test_wrong_password(self):
        result = self.check(self.answer(password="nope"))
        self.assertFalse(result.ok)
        self.assertFalse(result.stale)
        self.assertIn("wrong response", result.reason)
        self.assertNotIn("nope", result.reason)

    def test_unknown_user(self):
        value = build_authorization(self.auth.challenges(), "MESSAGE", self.uri, "mallory", "x")
        result = self.check(value)
        self.assertIn("unknown user", result.reason)

    def test_undecodable_username_refused_before_store(self):
        value = self.answer().replace('username="alice"', 'username="al\udcffice"')
        calls = self.users.calls
        self.assertIn("UTF-8", self.check(value).reason)
        self.assertEqual(self.users.calls, calls)

    def test_uri_mismatch(self):
        result = self.check(self.answer(uri="sip:other@gw.example"))
        self.assertFalse(result.ok)
        self.assertIn("Request-URI", result.reason)

    def test_method_mismatch(self):
        result = self.check(self.answer(method="REGISTER"))
        self.assertFalse(result.ok)

    def test_wrong_realm(self):
        other = DigestAuthenticator(self.clock, "elsewhere", self.users)
        result = self.check(self.answer(other.challenges()))
        self.assertIn("realm", result.reason)

    def test_forged_nonce(self):
        other = DigestAuthenticator(self.clock, "gw.example", self.users)  # other secret
        value = self.answer(other.challenges()).replace(other.opaque, self.auth.opaque)
        result = self.check(value)
        self.assertFalse(result.ok)
        self.assertIn("nonce not issued by us", result.reason)

    def test_no_credentials(self):
        result = self.successResultOf(self.auth.authenticate("MESSAGE", self.uri, []))
        self.assertFalse(result.ok)
        result = self.successResultOf(self.auth.authenticate("MESSAGE", self.uri, ['Digest realm="x']))
        self.assertFalse(result.ok)

    def test_rfc2069_refused_by_default(self):
        nonce = parse_auth_header(self.auth.challenges()[0])[0][1]["nonce"]
        value = build_authorization(
            [f'Digest realm="gw.example", nonce="{nonce}"'], "MESSAGE", self.uri, "alice", "s3cret"
        )
        self.assertIn("qop", self.check(value).reason)
        lenient = DigestAuthenticator(
            self.clock, "gw.example", self.users, secret=self.auth._secret, require_qop=False
        )
        result = self.successResultOf(lenient.authenticate("MESSAGE", self.uri, [value]))
        self.assertEqual(result.username, "alice")

    def test_stale_nonce(self):
        challenges = self.auth.challenges()
        self.clock.advance(301)
        result = self.check(self.answer(challenges))
        self.assertFalse(result.ok)
        self.assertTrue(result.stale)

    def test_expired_nonce_wrong_password_not_stale(self):
        challenges = self.auth.challenges()
        self.clock.advance(301)
        result = self.check(self.answer(challenges, password="bad"))
        self.assertFalse(result.stale)

    def test_replay_refused_and_count_must_increase(self):
        challenges = self.auth.challenges()
        first = self.answer(challenges, nc=1)
        self.assertTrue(self.check(first).ok)
        replay = self.check(first)
        self.assertFalse(replay.ok)
        self.assertIn("replayed", replay.reason)
        self.assertTrue(self.check(self.answer(challenges, nc=2, cnonce="c2")).ok)
        self.assertFalse(self.check(self.answer(challenges, nc=2, cnonce="c3")).ok)
        self.assertTrue(self.check(self.answer(challenges, nc=5, cnonce="c4")).ok)

    def test_bounded_memory_forgotten_nonce_is_stale(self):
        auth = DigestAuthenticator(self.clock, "gw.example", self.users, max_nonces=2)
        old = auth.challenges()
        self.clock.advance(1)
        answers = []
        for i in range(3):
            c = auth.challenges()
            self.clock.advance(1)
            answers.append((c, build_authorization(c, "MESSAGE", self.uri, "alice", "s3cret")))
        first = build_authorization(old, "MESSAGE", self.uri, "alice", "s3cret", nc=1)
        self.assertTrue(self.successResultOf(auth.authenticate("MESSAGE", self.uri, [first])).ok)
        for _c, value in answers:
            self.assertTrue(self.successResultOf(auth.authenticate("MESSAGE", self.uri, [value])).ok)
        self.assertLessEqual(len(auth._counts), 2)
        # The first nonce's entry was evicted: a replay must not pass.
        replay = self.successResultOf(auth.authenticate("MESSAGE", self.uri, [first]))
        self.assertFalse(replay.ok)
        self.assertTrue(replay.stale)

    def test_entries_expire_with_ttl(self):
        self.assertTrue(self.check(self.answer()).ok)
        self.assertEqual(len(self.auth._counts), 1)
        self.clock.advance(400)
        self.assertTrue(self.check(self.answer()).ok)
        self.assertEqual(len(self.auth._counts), 1)

    def test_bad_nc(self):
        value = self.answer().replace("nc=00000001", "nc=1")
        self.assertIn("nonce count", self.check(value).reason)

    def test_opaque_mismatch(self):
        value = self.answer().replace(self.auth.opaque, "x" * 32)
        self.assertIn("opaque", self.check(value).reason)

    def test_picks_credentials_for_our_realm(self):
        ours = self.answer()
        other = 'Digest username="alice", realm="proxy", nonce="n", uri="x", response="00"'
        result = self.successResultOf(self.auth.authenticate("MESSAGE", self.uri, [other, ours]))
        self.assertTrue(result.ok)

    def test_store_failure_propagates(self):
        class Broken:
            def get(self, username, realm):
                return defer.fail(RuntimeError("db down"))

        auth = DigestAuthenticator(self.clock, "gw.example", Broken())
        value = build_authorization(auth.challenges(), "MESSAGE", self.uri, "alice", "s3cret")
        self.failureResultOf(auth.authenticate("MESSAGE", self.uri, [value]), RuntimeError)

    def test_repr_hides_secret(self):
        self.assertNotIn(self.auth._secret.hex(), repr(self.auth))


class TrustedTests(SynchronousTestCase):
    def test_membership(self):
        trusted = TrustedSources(["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"])
        self.assertIn("10.1.2.3", trusted)
        self.assertIn("192.0.2.7", trusted)
        self.assertIn("2001:db8::1", trusted)
        self.assertIn("::ffff:10.9.9.9", trusted)
        self.assertNotIn("192.0.2.8", trusted)
        self.assertNotIn("not-an-ip", trusted)
        self.assertNotIn("10.0.0.1", TrustedSources())

    def test_bad_entry(self):
        e = self.assertRaises(ValueError, TrustedSources, ["10.0.0.0/8", "bogus"])
        self.assertIn("bogus", str(e))


class RobustnessTests(SynchronousTestCase):
    """Arbitrary header text gives DigestError or a refusal, never another exception."""

    def test_parse_never_crashes(self):
        from hypothesis import given, settings
        from hypothesis import strategies as st

        alphabet = st.sampled_from(list('Digest realm=",\\ \t\r\nabc=,"'))

        @settings(max_examples=300, deadline=None)
        @given(st.one_of(st.text(alphabet), st.text()))
        def check(value):
            try:
                parsed = parse_auth_header(value)
            except DigestError:
                return
            for scheme, params in parsed:
                self.assertIsInstance(scheme, str)
                self.assertIsInstance(params, dict)

        check()

    def test_authenticate_never_crashes(self):
        from hypothesis import given, settings
        from hypothesis import strategies as st

        clock = task.Clock()
        users = FakeUsers()
        users.add("alice", "pw", "r")
        auth = DigestAuthenticator(clock, "r", users)
        good = build_authorization(auth.challenges(), "MESSAGE", "sip:x@y", "alice", "pw")
        params = parse_auth_header(good)[0][1]
        keys = st.sampled_from(sorted(params) + ["qop", "nc", "algorithm", "cnonce", "opaque"])

        texts = st.one_of(st.text(max_size=40),
                          st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=5),
                          st.from_regex(r"[0-9a-f.]{1,40}", fullmatch=True))

        @settings(max_examples=300, deadline=None)
        @given(st.dictionaries(keys, texts, max_size=10))
        def check(changes):
            mutated = dict(params, **changes)
            value = "Digest " + ", ".join(f"{k}={digest.quote(v)}" for k, v in mutated.items())
            result = self.successResultOf(auth.authenticate("MESSAGE", "sip:x@y", [value]))
            # qop/algorithm compare case-insensitively; any other change must fail
            strict = {k: v for k, v in changes.items() if k not in ("qop", "algorithm")}
            if any(params.get(k) != v for k, v in strict.items()):
                self.assertFalse(result.ok, changes)

        check()
