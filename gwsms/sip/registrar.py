# -*- test-case-name: tests.test_sip_registrar -*-
"""
A REGISTER handler (RFC 3261 §10.3) storing bindings in a
L{gwsms.store.sip.RegistrationStore}, so they survive a restart.

Addresses-of-record are normalised to C{sip:user@domain}: when C{[sip]
domain} is set every AOR is filed under it whatever host the phone put in
its To header (a single-domain gateway; phones often register to an IP
address), otherwise under the To host. L{Registrar.lookup} accepts an AOR
or a bare number and also tries the number with and without a leading
C{+}, so the gateway core can find a phone by E.164 number.

Authentication is the user agent's job (shared with MESSAGE); this module
only checks that an authenticated user registers its own AOR.
"""

from __future__ import annotations

from twisted.internet import defer, task
from twisted.logger import Logger

from gwsms.sip.message import NameAddr, SipError, SipURI, make_response


#: Column sizes of C{sip_registrations} (schema 001), checked up front so a
#: REGISTER is refused whole (400) rather than applied in part.
MAX_AOR = 255
MAX_CALL_ID = 255
MAX_CONTACT = 512


def _header(request, name: str):
    return request.headers.get(name)


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def binding_peer(binding):
    """
    Where a registered phone can be reached: the address its REGISTER came
    from (works behind NAT, unlike the Contact's private address).

    @param binding: a L{gwsms.store.sip.Binding}.
    @return: a L{gwsms.sip.transport.Peer}.
    @raise ValueError: for a binding whose source is not C{host:port}.
    """
    from gwsms.sip.transport import Peer

    host, sep, port = binding.source.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"binding source {binding.source!r} is not host:port")
    return Peer(binding.transport, host.strip("[]"), int(port))


class Registrar:
    """
    REGISTER processing, binding lookup and periodic expiry.
    """

    _log = Logger()

    def __init__(
        self,
        clock,
        store,
        domain: str = "",
        min_expires: int = 60,
        default_expires: int = 3600,
        max_expires: int = 86400,
        expire_interval: float = 60.0,
    ) -> None:
        """
        @param clock: an L{IReactorTime}; C{clock.seconds()} is the epoch
            time stored as C{expires_at}.
        @param store: a L{RegistrationStore} (C{save}, C{lookup},
            C{remove}, C{remove_all}, C{expire}).
        @param domain: the domain AORs are filed under (C{""}: the To host).
        @param min_expires: shorter non-zero requests get 423.
        @param default_expires: when neither the Contact nor an Expires
            header says.
        @param max_expires: longer requests are shortened to this.
        @param expire_interval: seconds between sweeps of expired bindings.
        """
        self._clock = clock
        self._store = store
        self.domain = domain.lower()
        self.min_expires = min_expires
        self.default_expires = default_expires
        self.max_expires = max_expires
        self._expire_interval = expire_interval
        self._loop: task.LoopingCall | None = None
        self._locks: dict[str, defer.DeferredLock] = {}

    # -- lifecycle --------------------------------------------------------

    def start(self) -> None:
        """
        Start the periodic expiry sweep (the first one runs now).
        """
        if self._loop is None:
            self._loop = task.LoopingCall(self._sweep)
            self._loop.clock = self._clock
            self._loop.start(self._expire_interval, now=True).addErrback(
                lambda f: self._log.failure("registration expiry loop stopped", f)
            )

    def stop(self) -> None:
        """
        Stop the expiry sweep.
        """
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def _sweep(self) -> defer.Deferred | None:
        try:
            d = self._store.expire(self._clock.seconds())
        except Exception:
            self._log.failure("expiring registrations failed")
            return None

        def done(count):
            if count:
                self._log.info("expired {count} registration(s)", count=count)

        d.addCallback(done)
        d.addErrback(lambda f: self._log.failure("expiring registrations failed", f))
        return d

    # -- AORs -------------------------------------------------------------

    def normalise_aor(self, uri) -> str:
        """
        @param uri: the To URI (a L{SipURI}).
        @return: C{sip:user@domain} as filed in the store.
        @raise SipError: 404 for a URI without a user or of another scheme.
        """
        if getattr(uri, "scheme", None) not in ("sip", "sips") or not uri.user:
            raise SipError(404, "Not Found (To must be a sip: URI with a user part)")
        host = self.domain or uri.host.lower()
        return str(SipURI(host, uri.user)) if ":" not in host else f"sip:{uri.user}@[{host}]"

    def _candidates(self, number_or_aor: str) -> list[str]:
        text = number_or_aor.strip()
        if text.lower().startswith(("sip:", "sips:", "tel:")):
            uri = SipURI.parse(text)
            if uri.scheme == "tel":
                user, host = uri.user or "", ""
            else:
                user, host = uri.user or "", uri.host
        else:
            user, host = text, ""
        host = self.domain or host.lower()
        if not user or not host:
            return []
        users = [user]
        digits = user[1:] if user.startswith("+") else user
        if digits.isdigit():
            users = [user, digits if user.startswith("+") else "+" + digits]
        return [str(SipURI(host, u)) for u in users]

    def lookup(self, number_or_aor: str) -> defer.Deferred:
        """
        Current bindings for an AOR or a number.

        @param number_or_aor: C{"sip:alice@example.org"}, C{"tel:+4930123"},
            C{"+4930123"} or C{"4930123"} (numbers are tried with and
            without C{+}).
        @return: a L{Deferred} firing with a list of
            L{gwsms.store.sip.Binding} (highest q first, no duplicates).
        """
        try:
            candidates = self._candidates(number_or_aor)
        except SipError as e:
            return defer.fail(ValueError(f"not an AOR or number: {number_or_aor!r} ({e.reason})"))
        now = self._clock.seconds()
        d = defer.gatherResults([self._store.lookup(aor, now) for aor in candidates], consumeErrors=True)

        def merge(lists):
            seen = set()
            result = []
            for binding in sorted((b for lst in lists for b in lst), key=lambda b: -b.q):
                if binding.contact_uri not in seen:
                    seen.add(binding.contact_uri)
                    result.append(binding)
            return result

        d.addCallback(merge)
        d.addErrback(lambda f: f.value.subFailure if isinstance(f.value, defer.FirstError) else f)
        return d

    # -- REGISTER ---------------------------------------------------------

    def register(self, request, source, authenticated_user: str | None = None) -> defer.Deferred:
        """
        Process a REGISTER request atomically per AOR.

        @param request: the L{Request}.
        @param source: the L{Peer} it came from (stored with the binding so
            the phone can be reached behind NAT).
        @param authenticated_user: the digest user, C{None} when not
            authenticated (trusted source or auth off).
        @return: a L{Deferred} firing with the L{Response} to send (200 with
            the current bindings, or 400/403/404/423/500); it fails only on
            a programming error.
        """
        try:
            to = request.to
            aor = self.normalise_aor(to.uri)
            if authenticated_user is not None and authenticated_user != to.uri.user:
                raise SipError(403, f"Forbidden ({authenticated_user} may not register {to.uri.user})")
        except SipError as e:
            return defer.succeed(make_response(request, e.status, e.reason))
        except Exception as e:  # a malformed To header
            return defer.succeed(make_response(request, 400, f"Bad Request ({e})"[:120]))
        lock = self._locks.get(aor)
        if lock is None:
            lock = self._locks[aor] = defer.DeferredLock()

        def release(result):
            if not lock.locked and not lock.waiting and self._locks.get(aor) is lock:
                del self._locks[aor]
            return result

        d = lock.run(lambda: defer.ensureDeferred(self._register(request, source, aor)))
        d.addErrback(self._error_response, request)
        d.addBoth(release)
        return d

    def _error_response(self, failure, request):
        if failure.check(SipError):
            response = make_response(request, failure.value.status, failure.value.reason)
            if failure.value.status == 423:
                response.headers.set("Min-Expires", str(self.min_expires))
            return response
        self._log.failure("REGISTER processing failed", failure)
        return make_response(request, 500, "Server Internal Error")

    def _expires_of(self, contact, header_expires: int | None) -> int:
        raw = contact.params.get("expires")
        if raw is not None:
            try:
                return int(raw)
            except ValueError:
                # RFC 3261 §10.2.1.1: a malformed value is treated as the default.
                return self.default_expires
        if header_expires is not None:
            return header_expires
        return self.default_expires

    def _parse_contacts(self, request):
        values = request.headers.get_all("Contact")
        contacts = []
        for value in values:
            try:
                contacts.append(NameAddr.parse(value))
            except SipError as e:
                raise SipError(400, f"Bad Contact ({e.reason})") from None
        return contacts

    async def _register(self, request, source, aor: str):
        header = _header(request, "Expires")
        header_expires = None
        if header is not None:
            try:
                header_expires = max(0, int(header.strip()))
            except ValueError:
                header_expires = None
        call_id = request.call_id
        cseq, _method = request.cseq
        contacts = self._parse_contacts(request)
        now = self._clock.seconds()
        existing = await self._store.lookup(aor, now)

        if any(c.wildcard for c in contacts):
            if len(contacts) != 1 or header_expires != 0:
                raise SipError(400, "Bad Request (Contact: * needs Expires: 0 and no other Contact)")
            for binding in existing:
                if binding.call_id == call_id and cseq <= binding.cseq:
                    raise SipError(500, "Server Internal Error (CSeq out of order)")
            count = await self._store.remove_all(aor)
            self._log.info("{aor}: removed all {count} binding(s)", aor=aor, count=count)
            return make_response(request, 200, "OK")

        if len(aor) > MAX_AOR or len(call_id or "") > MAX_CALL_ID:
            raise SipError(400, "Bad Request (To or Call-ID too long)")
        by_contact = {b.contact_uri: b for b in existing}
        changes = []
        for contact in contacts:
            if not isinstance(contact.uri, SipURI):
                raise SipError(400, f"Bad Request (unsupported Contact URI {str(contact.uri)[:64]!r})")
            expires = max(0, self._expires_of(contact, header_expires))
            if 0 < expires < self.min_expires:
                raise SipError(423, "Interval Too Brief")
            expires = min(expires, self.max_expires)
            try:
                q = float(contact.params.get("q") or 1.0)
            except ValueError:
                raise SipError(400, "Bad Request (q parameter is not a number)") from None
            if not 0.0 <= q <= 1.0:
                raise SipError(400, "Bad Request (q outside 0..1)")
            key = str(contact.uri)
            if len(key) > MAX_CONTACT:
                raise SipError(400, f"Bad Request (Contact longer than {MAX_CONTACT} characters)")
            old = by_contact.get(key)
            if old is not None and old.call_id == call_id and cseq <= old.cseq:
                raise SipError(500, "Server Internal Error (CSeq out of order)")
            changes.append((key, expires, q))

        for key, expires, q in changes:
            if expires == 0:
                await self._store.remove(aor, key)
            else:
                try:
                    await self._store.save(
                        aor, key, now + expires, call_id, cseq, q,
                        _hostport(source.host, source.port), source.transport,
                    )
                except ValueError as e:  # the store names the field that does not fit
                    raise SipError(400, f"Bad Request ({e})") from None
        if changes:
            self._log.info(
                "{aor}: {count} contact(s) updated from {host}:{port}",
                aor=aor, count=len(changes), host=source.host, port=source.port,
            )
        current = await self._store.lookup(aor, now)
        response = make_response(request, 200, "OK")
        for binding in current:
            remaining = max(0, int(round(binding.expires_at - now)))
            response.headers.add("Contact", f"<{binding.contact_uri}>;expires={remaining}")
        return response
