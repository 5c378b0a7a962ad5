# -*- test-case-name: tests.test_sip_ua -*-
"""
The SIP user agent above the transaction layer: the MESSAGE UAS (the
"transaction user") and the MESSAGE UAC (RFC 3261, RFC 3428).

UAS decisions worth knowing:
  - Max-Forwards 0 is answered 483 (OPTIONS is answered instead, as RFC
    3261 §16.3 allows); a missing Max-Forwards is accepted.
  - MESSAGE bodies must be C{text/plain} (any charset Python knows, UTF-8
    when absent) or C{message/cpim} wrapping text/plain (RFC 3862; the
    handler gets the unwrapped text); others get 415 with Accept. An empty
    body is accepted and handed on (the handler decides). A body larger
    than C{[sip] max_message_size} gets 413.
  - 513 Message Too Large is the transport's answer to an oversized
    datagram; our own responses never carry a body (RFC 3428: 2xx to
    MESSAGE has none, and no Contact), so they stay far below the path MTU
    and RFC 3261 §18.1.1's size rule only matters to the UAC, which moves a
    request over 1300 bytes from UDP to TCP unless the URI forced UDP.
  - MESSAGE and REGISTER from sources outside C{[sip] trusted} are
    challenged with 401 when C{[sip] auth} is on.
  - CANCEL is answered by the transaction layer (200 when it matches an
    INVITE, else 481; CANCEL has no effect on a non-INVITE request), and
    stray ACKs are dropped there; should one reach us it is ignored.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger

from gwsms.sip.digest import (
    DigestAuthenticator,
    DigestError,
    TrustedSources,
    build_authorization,
)
from gwsms.sip.interfaces import IncomingMessage, SipAnswer
from gwsms.sip.resolver import Target
from gwsms.sip.message import (
    Request,
    SipError,
    SipURI,
    generate_branch,
    generate_call_id,
    generate_tag,
    make_response,
)

#: Media types a MESSAGE may carry.
ACCEPTED_TYPES = ("text/plain", "message/cpim")

#: Methods answered 405 (known SIP methods we do not serve).
KNOWN_METHODS = frozenset(
    "INVITE BYE SUBSCRIBE NOTIFY PUBLISH INFO UPDATE PRACK REFER".split()
)

#: RFC 3261 §18.1.1: a request within 200 bytes of a 1500-byte MTU goes TCP.
UDP_SIZE_LIMIT = 1300


def parse_content_type(value: str | None) -> tuple[str, dict[str, str]]:
    """
    @param value: a Content-Type header value (or C{None}).
    @return: C{(media type lower case, {param: value})}; C{("", {})} when
        absent.
    """
    if not value:
        return "", {}
    parts = value.split(";")
    media = parts[0].strip().lower()
    params = {}
    for part in parts[1:]:
        name, _, val = part.partition("=")
        val = val.strip()
        if len(val) >= 2 and val[0] == val[-1] == '"':
            val = val[1:-1]
        params[name.strip().lower()] = val
    return media, params


def parse_cpim(body: bytes) -> tuple[list[tuple[str, str]], str, dict[str, str], bytes]:
    """
    Unwrap a message/cpim body (RFC 3862): CPIM headers, a blank line, the
    MIME headers of the content, a blank line, the content.

    @return: C{(cpim headers, content media type, its params, content)}.
    @raise ValueError: naming what is missing.
    """
    def split(data: bytes) -> tuple[bytes, bytes]:
        for sep in (b"\r\n\r\n", b"\n\n"):
            index = data.find(sep)
            if index >= 0:
                return data[:index], data[index + len(sep):]
        raise ValueError("CPIM body lacks the blank line after its headers")

    def headers(block: bytes) -> list[tuple[str, str]]:
        out = []
        for line in block.decode("utf-8", "replace").splitlines():
            name, sep, value = line.partition(":")
            if not sep or not name.strip():
                raise ValueError(f"bad CPIM header line {line[:40]!r}")
            out.append((name.strip(), value.strip()))
        return out

    cpim_block, rest = split(body.lstrip(b"\r\n"))
    mime_block, content = split(rest)
    mime = headers(mime_block)
    content_type = next((v for n, v in mime if n.lower() == "content-type"), "")
    if not content_type:
        raise ValueError("CPIM content has no Content-Type")
    media, params = parse_content_type(content_type)
    return headers(cpim_block), media, params, content


class MessageUAS:
    """
    The transaction user: answers every request the transaction layer
    hands up.
    """

    _log = Logger()

    def __init__(
        self,
        sip_config,
        handler,
        respond=None,
        authenticator: DigestAuthenticator | None = None,
        registrar=None,
    ) -> None:
        """
        @param sip_config: the C{[sip]} L{gwsms.config.SipConfig}.
        @param handler: an L{IMessageHandler}.
        @param respond: C{callable(request, response)} sending a response
            through the server transaction (L{TransactionLayer.respond});
            may be set later as C{.respond}.
        @param authenticator: the L{DigestAuthenticator}; required when
            C{sip_config.auth} is on.
        @param registrar: a L{gwsms.sip.registrar.Registrar} or C{None}
            (REGISTER then gets 405).
        """
        if sip_config.auth and authenticator is None:
            raise ValueError("[sip] auth is on but no digest authenticator was given")
        self._config = sip_config
        self.handler = handler
        self.respond = respond
        self._auth = authenticator
        self._trusted = TrustedSources(sip_config.trusted)
        self.registrar = registrar
        self.stats = dict.fromkeys(("received", "accepted", "refused", "challenged", "errors"), 0)

    @property
    def allow(self) -> str:
        """The Allow header value."""
        methods = ["MESSAGE", "OPTIONS"]
        if self.registrar is not None:
            methods.append("REGISTER")
        return ", ".join(methods + ["ACK", "CANCEL"])

    # -- entry point from the transaction layer ---------------------------

    def request_received(self, request, source, server_txn=None) -> None:
        """
        Handle one new request (retransmissions are absorbed below us).

        @param request: the L{Request}.
        @param source: the L{Peer} it came from.
        @param server_txn: its L{ServerTransaction}; the answer goes to its
            C{respond}, else to C{self.respond(request, response)}.
        """
        if request.method == "ACK":
            return
        self.stats["received"] += 1
        d = defer.maybeDeferred(self.handle, request, source)
        d.addErrback(self._crashed, request)
        d.addCallback(self._send, request, server_txn)
        d.addErrback(lambda f: self._log.failure("could not answer {method} from {host}", f,
                                                 method=request.method, host=source.host))

    def _crashed(self, failure, request):
        self.stats["errors"] += 1
        self._log.failure("failed handling {method} {call_id}", failure,
                          method=request.method, call_id=request.call_id)
        return make_response(request, 500, "Server Internal Error", to_tag=generate_tag())

    def _send(self, response, request, server_txn) -> None:
        if response is None:
            return
        if response.status >= 300:
            self.stats["refused"] += 1
        if server_txn is not None:
            server_txn.respond(response)
        else:
            self.respond(request, response)

    # -- the decisions -----------------------------------------------------

    def handle(self, request, source) -> defer.Deferred:
        """
        Decide the answer to C{request}.

        @return: a L{Deferred} firing with the L{Response} (C{None} for a
            request that gets no answer).
        """
        tag = generate_tag()

        def reply(status, reason=None, headers=()):
            return defer.succeed(make_response(request, status, reason, list(headers), to_tag=tag))

        method = request.method
        try:
            max_forwards = request.max_forwards
        except SipError:
            return reply(400, "Bad Request (Max-Forwards is not a number)")
        if max_forwards == 0 and method not in ("OPTIONS", "CANCEL"):
            return reply(483, "Too Many Hops")
        try:
            scheme = request.request_uri.scheme
        except SipError as e:
            return reply(e.status, e.reason)
        if scheme not in ("sip", "sips", "tel"):
            return reply(416, "Unsupported URI Scheme")
        if method == "CANCEL":
            return reply(481)
        require = [r.strip() for v in request.headers.get_all("Require") for r in v.split(",") if r.strip()]
        if require:
            return reply(420, "Bad Extension", [("Unsupported", ", ".join(require))])
        if method == "OPTIONS":
            return reply(200, "OK", [
                ("Allow", self.allow),
                ("Accept", ", ".join(ACCEPTED_TYPES)),
                ("Accept-Encoding", "identity"),
                ("Accept-Language", "en"),
                ("User-Agent", self._config.user_agent),
            ])
        if method == "MESSAGE":
            return self._message(request, source, tag)
        if method == "REGISTER":
            if self.registrar is None:
                return reply(405, "Method Not Allowed", [("Allow", self.allow)])
            return self._with_auth(request, source, tag, self._register)
        if method in KNOWN_METHODS:
            return reply(405, "Method Not Allowed", [("Allow", self.allow)])
        return reply(501, "Not Implemented", [("Allow", self.allow)])

    def _with_auth(self, request, source, tag, then) -> defer.Deferred:
        if not self._config.auth or source.host in self._trusted:
            return defer.maybeDeferred(then, request, source, tag, None)
        d = self._auth.authenticate(
            request.method, request.uri, request.headers.get_all("Authorization"), request.body
        )

        def checked(result):
            if result.ok:
                return then(request, source, tag, result.username)
            self.stats["challenged"] += 1
            if request.headers.get("Authorization") is not None:
                self._log.info("authentication failed for {method} from {host}: {reason}",
                               method=request.method, host=source.host, reason=result.reason)
            headers = [("WWW-Authenticate", c) for c in self._auth.challenges(stale=result.stale)]
            return make_response(request, 401, "Unauthorized", headers, to_tag=tag)

        d.addCallback(checked)
        return d

    def _register(self, request, source, tag, user):
        d = self.registrar.register(request, source, user)

        def tagged(response):
            to = response.headers.get("To")
            if to is not None and ";tag=" not in to.lower():
                response.headers.set("To", f"{to};tag={tag}")
            return response

        return d.addCallback(tagged)

    def _message(self, request, source, tag) -> defer.Deferred:
        def reply(status, reason=None, headers=()):
            return defer.succeed(make_response(request, status, reason, list(headers), to_tag=tag))

        accept = [("Accept", ", ".join(ACCEPTED_TYPES))]
        encoding = (request.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding != "identity":
            return reply(415, "Unsupported Media Type", accept + [("Accept-Encoding", "identity")])
        media, params = parse_content_type(request.content_type)
        if not media and request.body:
            return reply(415, "Unsupported Media Type (no Content-Type)", accept)
        media = media or "text/plain"
        if media not in ACCEPTED_TYPES:
            return reply(415, "Unsupported Media Type", accept)
        if len(request.body) > self._config.max_message_size:
            return reply(413, "Request Entity Too Large")
        body = request.body
        if media == "message/cpim":
            try:
                _cpim_headers, inner, params, body = parse_cpim(body)
            except ValueError as e:
                return reply(400, f"Bad Request ({e})")
            if inner != "text/plain":
                return reply(415, "Unsupported Media Type (CPIM content must be text/plain)", accept)
        charset = (params.get("charset") or "utf-8").lower()
        try:
            b"a".decode(charset, "replace")  # also refuses non-text codecs (base64, rot13)
        except (LookupError, ValueError, TypeError):
            return reply(415, "Unsupported Media Type (unknown charset)", accept)
        try:
            sender = str(request.from_.uri)
        except (SipError, AttributeError):
            return reply(400, "Bad Request (From)")

        def deliver(_request, _source, _tag, user):
            message = IncomingMessage(
                request=request,
                source=source,
                sender_uri=sender,
                recipient_uri=request.uri,
                content_type=media,
                body=body,
                charset=charset,
                authenticated_user=user,
            )
            d = defer.maybeDeferred(self.handler.message_received, message)
            d.addCallbacks(self._answer, self._handler_failed, (request, tag), None, (request, tag))
            return d

        return self._with_auth(request, source, tag, deliver)

    def _handler_failed(self, failure, request, tag):
        self.stats["errors"] += 1
        self._log.failure("message handler failed for {call_id}", failure, call_id=request.call_id)
        return make_response(request, 500, "Server Internal Error", to_tag=tag)

    def _answer(self, answer, request, tag):
        if not isinstance(answer, SipAnswer) or not 200 <= int(answer.status) <= 699:
            self.stats["errors"] += 1
            self._log.error("message handler answered {answer!r}, not a final SipAnswer",
                            answer=answer)
            return make_response(request, 500, "Server Internal Error", to_tag=tag)
        headers = list(answer.headers)
        if answer.status < 300:
            self.stats["accepted"] += 1
            headers = [(n, v) for n, v in headers if n.lower() not in ("contact", "m")]
        return make_response(request, answer.status, answer.reason, headers, to_tag=tag)


class MessageUAC:
    """
    Sends MESSAGE requests (RFC 3428) through the transaction layer.
    """

    _log = Logger()

    def __init__(self, sip_config, transactions, resolver, peer_factory=None) -> None:
        """
        @param sip_config: the C{[sip]} config (domain, user_agent,
            outbound_username, outbound_password).
        @param transactions: the L{TransactionLayer}
            (C{send_request(request, target) -> Deferred[Response]}).
        @param resolver: a L{gwsms.sip.resolver.SipResolver}.
        @param peer_factory: C{callable(transport, host, port) -> Peer};
            L{gwsms.sip.transport.Peer} by default.
        """
        if peer_factory is None:
            from gwsms.sip.transport import Peer as peer_factory
        self._config = sip_config
        self._transactions = transactions
        self._resolver = resolver
        self._peer = peer_factory
        self.stats = dict.fromkeys(("sent", "failed", "authenticated"), 0)

    def __repr__(self) -> str:
        return f"<MessageUAC domain={self._config.domain!r}>"

    def _complete(self, address: str) -> str:
        """A bare user or number gets C{sip:} and the configured domain."""
        text = address.strip()
        if text.startswith("<") and text.endswith(">"):
            text = text[1:-1]
        if text.lower().startswith(("sip:", "sips:", "tel:")):
            return text
        if "@" in text:
            return "sip:" + text
        return str(SipURI(self._config.domain, text))

    def build_request(self, uri, from_uri, to_uri, body, content_type, extra_headers=(),
                      call_id=None, cseq=1, from_tag=None) -> Request:
        """
        Build a MESSAGE request (no network).

        @return: the L{Request} with Via (fresh branch), From (with tag),
            To, Call-ID, CSeq, Max-Forwards 70, User-Agent, Content-Type.
        @raise SipError: for a URI that does not parse.
        """
        target = SipURI.parse(self._complete(str(uri)))
        from_text = self._complete(from_uri)
        to_text = self._complete(to_uri) if to_uri else str(target)
        SipURI.parse(from_text)
        SipURI.parse(to_text)
        if isinstance(body, str):
            body = body.encode("utf-8")
        headers = [
            ("Via", f"SIP/2.0/UDP 0.0.0.0;branch={generate_branch()}"),
            ("Max-Forwards", "70"),
            ("From", f"<{from_text}>;tag={from_tag or generate_tag()}"),
            ("To", f"<{to_text}>"),
            ("Call-ID", call_id or generate_call_id(self._config.domain or None)),
            ("CSeq", f"{cseq} MESSAGE"),
            ("User-Agent", self._config.user_agent),
        ]
        if content_type:
            headers.append(("Content-Type", content_type))
        headers += list(extra_headers)
        return Request("MESSAGE", str(target), headers, body)

    def send_message(self, uri, from_uri, to_uri, body, content_type="text/plain;charset=UTF-8",
                     extra_headers=(), peer=None) -> defer.Deferred:
        """
        Send one MESSAGE and wait for its final response.

        @param uri: the Request-URI (a L{SipURI} or text; a bare user or
            number gets the configured domain); C{None} or C{""} means
            C{[sip] outbound_uri}.
        @param from_uri: the sender (e.g. C{"+4930123"} or a URI).
        @param to_uri: the To URI; C{None} or C{""} uses C{uri}.
        @param body: the body (str is sent as UTF-8).
        @param content_type: the Content-Type value.
        @param extra_headers: C{(name, value)} pairs to add.
        @param peer: send to this L{Peer} instead of resolving the URI
            (e.g. a registered phone's source address behind NAT, see
            L{gwsms.sip.registrar.binding_peer}); no failover then.
        @return: a L{Deferred} firing with the final L{Response} (any
            status; one 401/407 is answered with the configured outbound
            credentials first); failing with
            L{gwsms.sip.resolver.ResolveError}, the transaction layer's
            timeout error or L{gwsms.sip.transport.TransportError}, or
            L{SipError} for a bad URI, L{ValueError} when no URI is given
            and no outbound_uri is configured.
        """
        if not uri:
            uri = self._config.outbound_uri
            if not uri:
                return defer.fail(ValueError("no Request-URI given and [sip] outbound_uri is empty"))
        try:
            request = self.build_request(uri, from_uri, to_uri, body, content_type, extra_headers)
        except SipError as e:
            return defer.fail(e)
        d = defer.ensureDeferred(self._send(request, peer))

        def count(result):
            self.stats["sent"] += 1
            return result

        def failed(failure):
            self.stats["failed"] += 1
            return failure

        d.addCallbacks(count, failed)
        return d

    async def _targets(self, request):
        uri = request.request_uri
        targets = await self._resolver.resolve_uri(uri)
        forced = bool(uri.params.get("transport")) or uri.scheme == "sips"
        if not forced and len(request.to_bytes()) > UDP_SIZE_LIMIT:
            targets = [t if t.transport != "udp" else type(t)("tcp", t.host, t.port) for t in targets]
        return targets

    async def _send(self, request, peer=None):
        if peer is not None:
            targets = [Target(peer.transport, peer.host, peer.port)]
        else:
            targets = await self._targets(request)
        response = await self._try_targets(request, targets)
        if response.status in (401, 407) and self._config.outbound_username:
            retry = self._authenticated_retry(request, response)
            if retry is not None:
                self.stats["authenticated"] += 1
                response = await self._try_targets(retry, targets)
        return response

    async def _try_targets(self, request, targets):
        last = None
        for index, target in enumerate(targets):
            peer = self._peer(target.transport, target.host, target.port)
            attempt = request if index == 0 else self._rebranch(request)
            try:
                return await self._transactions.send_request(attempt, peer)
            except Exception as e:  # timeout or transport error: next target (RFC 3263 §4.3)
                last = e
                self._log.info("MESSAGE to {target} failed ({error}); {left} target(s) left",
                               target=f"{target.transport}:{target.host}:{target.port}",
                               error=e, left=len(targets) - index - 1)
        raise last

    @staticmethod
    def _rebranch(request) -> Request:
        new = Request(request.method, request.uri, request.headers.copy(), request.body)
        new.headers.remove("Via")
        new.headers.add("Via", f"SIP/2.0/UDP 0.0.0.0;branch={generate_branch()}", prepend=True)
        return new

    def _authenticated_retry(self, request, response) -> Request | None:
        challenge_header, answer_header = (
            ("WWW-Authenticate", "Authorization") if response.status == 401
            else ("Proxy-Authenticate", "Proxy-Authorization")
        )
        try:
            value = build_authorization(
                response.headers.get_all(challenge_header),
                request.method,
                request.uri,
                self._config.outbound_username,
                self._config.outbound_password,
                request.body,
            )
        except DigestError as e:
            self._log.warn("cannot answer the {status} challenge: {error}",
                           status=response.status, error=e)
            return None
        retry = self._rebranch(request)
        number, method = request.cseq
        retry.headers.set("CSeq", f"{number + 1} {method}")
        retry.headers.add(answer_header, value)
        return retry
