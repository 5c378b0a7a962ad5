# -*- test-case-name: tests.test_sip_transaction -*-
"""
The RFC 3261 section 17 transaction layer (non-INVITE client and server
transactions; a minimal INVITE server transaction so INVITEs can be
refused properly).

Timers (RFC 3261 table 4), with T1/T2/T4 configurable:
  - client: E = T1 doubling up to T2 (UDP only; every T2 in Proceeding),
    F = 64*T1 (fails the Deferred with L{TimeoutError}), K = T4 on UDP,
    0 on TCP/TLS;
  - server: J = 64*T1 on UDP, 0 on TCP/TLS; INVITE: G, H, I.

A non-INVITE server transaction sends 100 Trying only over UDP and only if
the TU has not answered after C{trying_delay} (default T2), which RFC 4320
section 4.1 allows (Timer E of the client has reached T2 by then).

The transaction user (TU) has C{request_received(request, source,
server_txn)} and answers with C{server_txn.respond(response)} (or
L{TransactionLayer.respond}), now or later.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger

from gwsms.sip import message as sipmsg
from gwsms.sip.transport import Peer, TransportError, top_via

__all__ = ["TransactionLayer", "ServerTransaction", "ClientTransaction",
           "TimeoutError", "TransportError", "MAGIC_COOKIE", "server_key"]

MAGIC_COOKIE = "z9hG4bK"

TRYING, PROCEEDING, COMPLETED, CONFIRMED, TERMINATED = (
    "trying", "proceeding", "completed", "confirmed", "terminated")


_DEFAULT = object()


class TimeoutError(Exception):  # noqa: A001 - the contract's name
    """Timer F fired: no final response within 64*T1."""


def new_branch() -> str:
    """@return: a fresh RFC 3261 branch (magic cookie + random bits)."""
    return sipmsg.generate_branch()


def server_key(request, method: str | None = None) -> tuple:
    """
    The server transaction key of a request (RFC 3261 section 17.2.3).

    With an RFC 3261 branch: C{(branch, sent-by host, sent-by port,
    method)}, ACK keyed as INVITE.  Otherwise (RFC 2543): Request-URI,
    To tag (not for INVITE/ACK), From tag, Call-ID, CSeq number, method and
    the top Via.

    @param method: override the method (used to find the INVITE a CANCEL
        targets).
    @raise ValueError: the request lacks a Via (or the 2543 fields).
    """
    via = top_via(request)
    if via is None:
        raise ValueError("request has no valid Via")
    method = method or request.method
    if method == "ACK":
        method = "INVITE"
    branch = via.branch
    if branch and branch.startswith(MAGIC_COOKIE):
        return (branch, via.host.lower(), via.port, method)
    cseq_number = request.cseq[0]
    to_tag = None if method == "INVITE" else request.to.tag
    return ("2543", str(request.uri), to_tag, request.from_.tag, request.call_id,
            cseq_number, method, via.transport, via.host.lower(), via.port)


class _Answered:
    """
    What a completed non-INVITE server transaction keeps of its request
    while Timer J runs (32 s over UDP): the names its log lines use.  The
    parsed request itself (headers, URIs, caches) is let go, so thousands
    of completed transactions do not keep tens of objects each alive for
    the garbage collector to walk.
    """

    __slots__ = ("method", "call_id")

    def __init__(self, request) -> None:
        self.method = request.method
        self.call_id = request.call_id


def _cancel_later(call) -> None:
    if call is not None and call.active():
        call.cancel()


class ServerTransaction:
    """
    One server transaction.

    @ivar request: the request that created it (once a non-INVITE is
        completed over UDP, only its C{method} and C{call_id}).
    @ivar source: the L{Peer} it came from.
    @ivar state: C{"trying"}, C{"proceeding"}, C{"completed"},
        C{"confirmed"} (INVITE) or C{"terminated"}.
    @ivar last_response: the last response sent, or L{None}.
    """

    _log = Logger()

    def __init__(self, layer: TransactionLayer, key: tuple, request, source: Peer):
        self.layer = layer
        self.key = key
        self.request = request
        self.source = source
        self.is_invite = request.method == "INVITE"
        self.state = TRYING
        self.last_response = None
        self._trying_call = None  # 100 Trying / TU timeout
        self._timer = None  # J, H (INVITE) or I
        self._retransmit = None  # G (INVITE over UDP)
        self._interval = layer.t1
        self._born = layer.clock.seconds()
        conn = source.connection
        self._held = conn if source.reliable and hasattr(conn, "hold") else None
        if self._held is not None:
            self._held.hold()

    def _start(self) -> None:
        clock, layer = self.layer.clock, self.layer
        if self.is_invite:
            delay = 0.2
        elif not self.source.reliable and layer.trying_delay is not None:
            delay = layer.trying_delay
        else:
            delay = None
        if delay is not None and delay < layer.tu_timeout:
            self._trying_call = clock.callLater(delay, self._send_trying)
        else:
            self._trying_call = clock.callLater(layer.tu_timeout, self._tu_timeout)

    def _send_trying(self) -> None:
        self._trying_call = None
        if self.state == TRYING:
            self.respond(sipmsg.make_response(self.request, 100))
        if self.state in (TRYING, PROCEEDING):
            self._trying_call = self.layer.clock.callLater(
                max(0.0, self.layer.tu_timeout - self.layer.clock.seconds() + self._born),
                self._tu_timeout)

    def _tu_timeout(self) -> None:
        self._trying_call = None
        self._log.warn("no answer from the TU to {method} {call_id} in {t} s; giving up",
                       method=self.request.method, call_id=self.request.call_id,
                       t=self.layer.tu_timeout)
        self.layer.stats["tu_timeouts"] += 1
        self.terminate()

    def respond(self, response) -> None:
        """
        Send a response in this transaction.

        Provisional responses move it to Proceeding (non-INVITE: only 100,
        RFC 4320); a final response moves it to Completed (Timer J) and is
        re-sent for each retransmitted request.  Responses after the final
        one are discarded with a log line.

        @param response: a L{sipmsg.Response} (normally from
            C{make_response(self.request, ...)}).
        @raise ValueError: a non-100 provisional response to a non-INVITE.
        """
        if self.state not in (TRYING, PROCEEDING):
            self._log.info("discarding {status} for {method} {call_id}: transaction {state}",
                           status=response.status, method=self.request.method,
                           call_id=self.request.call_id, state=self.state)
            return
        status = response.status
        if status < 200:
            if not self.is_invite and status != 100:
                raise ValueError(f"provisional {status} to a non-INVITE request (RFC 4320)")
            self.state = PROCEEDING
            self.last_response = response
            self._send(response)
            return
        _cancel_later(self._trying_call)
        self._trying_call = None
        self.last_response = response
        clock, layer = self.layer.clock, self.layer
        reliable = self.source.reliable
        if self.is_invite and status < 300:
            self._send(response)
            self.terminate()
            return
        self.state = COMPLETED
        if self.is_invite:
            self._timer = clock.callLater(64 * layer.t1, self._timer_h)
            if not reliable:
                self._retransmit = clock.callLater(layer.t1, self._timer_g)
        elif not reliable:
            self._timer = clock.callLater(64 * layer.t1, self.terminate)
        self._send(response)
        if not self.is_invite and self.state == COMPLETED:
            if reliable:
                self.terminate()  # Timer J = 0
            else:
                # only retransmissions of the response from here on
                self.request = _Answered(self.request)
                response._cache.clear()

    def _send(self, response) -> None:
        d = self.layer.transport.send(response, self.source)
        d.addErrback(self._send_failed, response)

    def _send_failed(self, failure, response) -> None:
        self.layer.stats["send_errors"] += 1
        self._log.info("could not send {status} for {method} {call_id}: {error}",
                       status=response.status, method=self.request.method,
                       call_id=self.request.call_id, error=failure.getErrorMessage())
        self.terminate()

    def retransmission(self, request) -> None:
        """A retransmitted request (or the ACK of an INVITE) arrived."""
        self.layer.stats["absorbed"] += 1
        if request.method == "ACK":
            if self.is_invite and self.state == COMPLETED:
                self.state = CONFIRMED
                _cancel_later(self._retransmit)
                _cancel_later(self._timer)
                self._retransmit = None
                if self.source.reliable:
                    self.terminate()
                else:
                    self._timer = self.layer.clock.callLater(self.layer.t4, self.terminate)
            return
        if self.state in (PROCEEDING, COMPLETED) and self.last_response is not None:
            self._send(self.last_response)

    def _timer_g(self) -> None:
        self._retransmit = None
        if self.state != COMPLETED:
            return
        self._interval = min(2 * self._interval, self.layer.t2)
        self._retransmit = self.layer.clock.callLater(self._interval, self._timer_g)
        self._send(self.last_response)

    def _timer_h(self) -> None:
        self._timer = None
        self._log.info("no ACK for {status} to INVITE {call_id} (Timer H)",
                       status=self.last_response.status, call_id=self.request.call_id)
        self.terminate()

    def terminate(self) -> None:
        """Stop every timer and forget this transaction (idempotent)."""
        if self.state == TERMINATED:
            return
        self.state = TERMINATED
        for call in (self._trying_call, self._timer, self._retransmit):
            _cancel_later(call)
        self._trying_call = self._timer = self._retransmit = None
        if self.layer.server_transactions.get(self.key) is self:
            del self.layer.server_transactions[self.key]
        if self._held is not None:
            self._held.release()
            self._held = None


class ClientTransaction:
    """
    One non-INVITE client transaction.

    @ivar deferred: fires with the final response or fails with
        L{TimeoutError} / L{TransportError}.
    """

    _log = Logger()

    def __init__(self, layer: TransactionLayer, key: tuple, request, peer: Peer):
        self.layer = layer
        self.key = key
        self.request = request
        self.peer = peer
        self.state = TRYING
        self.deferred: defer.Deferred = defer.Deferred()
        self._interval = layer.t1
        self._timer_e = self._timer_f = self._timer_k = None
        self._held = None

    def _start(self) -> None:
        clock, layer = self.layer.clock, self.layer
        self._timer_f = clock.callLater(64 * layer.t1, self._fire_f)
        if not self.peer.reliable:
            self._timer_e = clock.callLater(self._interval, self._fire_e)
        self._send()

    def _send(self) -> None:
        d = self.layer.transport.send(self.request, self.peer)
        d.addCallbacks(self._sent, self._send_failed)

    def _sent(self, used) -> None:
        conn = getattr(used, "connection", None)
        if self.state != TERMINATED and self._held is None and hasattr(conn, "hold") \
                and used.reliable:
            self._held = conn
            conn.hold(self)

    def connection_lost(self, conn, reason) -> None:
        """The stream connection carrying the request closed (e.g. TLS failed)."""
        self._held = None
        if self.state in (TRYING, PROCEEDING):
            why = reason.getErrorMessage() if reason is not None else "closed"
            self._fail(TransportError(
                f"{self.peer.transport} connection to {self.peer.host}:{self.peer.port}"
                f" lost: {why}"))

    def _send_failed(self, failure) -> None:
        if self.state in (COMPLETED, TERMINATED):
            return
        self.layer.stats["send_errors"] += 1
        err = failure.value
        if not isinstance(err, TransportError):
            err = TransportError(str(err))
        self._fail(err)

    def _fire_e(self) -> None:
        self._timer_e = None
        if self.state == TRYING:
            self._interval = min(2 * self._interval, self.layer.t2)
        elif self.state == PROCEEDING:
            self._interval = self.layer.t2
        else:
            return
        self.layer.stats["retransmissions"] += 1
        self._timer_e = self.layer.clock.callLater(self._interval, self._fire_e)
        self._send()

    def _fire_f(self) -> None:
        self._timer_f = None
        self.layer.stats["timeouts"] += 1
        self._fail(TimeoutError(
            f"no final response to {self.request.method} {self.request.call_id}"
            f" within {64 * self.layer.t1:g} s"))

    def _fail(self, err: Exception) -> None:
        self.terminate()
        if not self.deferred.called:
            self.deferred.errback(err)

    def response_received(self, response) -> None:
        """A response matched this transaction (RFC 3261 17.1.2.2)."""
        if self.state not in (TRYING, PROCEEDING):
            self.layer.stats["absorbed"] += 1
            return
        if response.status < 200:
            self.state = PROCEEDING
            return
        self.state = COMPLETED
        _cancel_later(self._timer_e)
        _cancel_later(self._timer_f)
        self._timer_e = self._timer_f = None
        if self.peer.reliable:
            self.terminate()  # Timer K = 0
        else:
            self._timer_k = self.layer.clock.callLater(self.layer.t4, self.terminate)
        self.deferred.callback(response)

    def terminate(self) -> None:
        """Stop every timer and forget this transaction (idempotent)."""
        if self.state == TERMINATED:
            return
        self.state = TERMINATED
        for call in (self._timer_e, self._timer_f, self._timer_k):
            _cancel_later(call)
        self._timer_e = self._timer_f = self._timer_k = None
        if self.layer.client_transactions.get(self.key) is self:
            del self.layer.client_transactions[self.key]
        if self._held is not None:
            self._held.release(self)
            self._held = None


class TransactionLayer:
    """
    Client and server transactions over a L{gwsms.sip.transport.TransportLayer}.

    @ivar server_transactions: key (L{server_key}) -> L{ServerTransaction}.
    @ivar client_transactions: C{(branch, method)} -> L{ClientTransaction}.
    @ivar stats: counters (requests, responses, absorbed, retransmissions,
        timeouts, stray_responses, stray_acks, send_errors, tu_errors,
        tu_timeouts, dropped).
    """

    _log = Logger()

    def __init__(self, clock, t1: float = 0.5, t2: float = 4.0, t4: float = 5.0,
                 tu=None, transport=None, trying_delay: float | None | object = _DEFAULT,
                 tu_timeout: float | None = None, udp_size_limit: int = 1300):
        """
        @param clock: IReactorTime for every timer.
        @param t1: RTT estimate (s).  @param t2: max non-INVITE retransmit
            interval (s).  @param t4: max time a message stays in the network (s).
        @param tu: the transaction user: C{request_received(request, source,
            server_txn)}; optional C{cancel_received(server_txn)}.  May be set
            later as C{.tu}.
        @param transport: the TransportLayer; its C{transaction_layer} is set
            to this object.  May be set later with L{attach}.
        @param trying_delay: send 100 Trying to a non-INVITE over UDP when the
            TU has not answered after this many seconds (default T2; L{None}
            = never).
        @param tu_timeout: give up on a request the TU did not answer after
            this many seconds (default 64*T1, when the client has given up).
        @param udp_size_limit: requests larger than this go over TCP when a
            TCP listener exists (RFC 3261 18.1.1).
        """
        self.clock = clock
        self.t1, self.t2, self.t4 = t1, t2, t4
        self.tu = tu
        self.trying_delay = t2 if trying_delay is _DEFAULT else trying_delay
        self.tu_timeout = 64 * t1 if tu_timeout is None else tu_timeout
        self.udp_size_limit = udp_size_limit
        self.server_transactions: dict[tuple, ServerTransaction] = {}
        self.client_transactions: dict[tuple, ClientTransaction] = {}
        self.stats = dict.fromkeys(
            ("requests", "responses", "absorbed", "retransmissions", "timeouts",
             "stray_responses", "stray_acks", "send_errors", "tu_errors", "tu_timeouts",
             "dropped"), 0)
        self.transport = None
        if transport is not None:
            self.attach(transport)

    def attach(self, transport) -> None:
        """Use C{transport} (a TransportLayer) and receive its messages."""
        self.transport = transport
        transport.transaction_layer = self

    # -- incoming ----------------------------------------------------------

    def message_received(self, msg, source: Peer) -> None:
        """Entry point for the transport layer."""
        if isinstance(msg, sipmsg.Response):
            self._response_received(msg, source)
        else:
            self._request_received(msg, source)

    def _request_received(self, request, source: Peer) -> None:
        self.stats["requests"] += 1
        try:
            key = server_key(request)
        except (ValueError, AttributeError, TypeError, sipmsg.SipError) as e:
            self.stats["dropped"] += 1
            self._log.info("dropping {method} from {host}: cannot key it ({error})",
                           method=request.method, host=source.host, error=e)
            return
        txn = self.server_transactions.get(key)
        if txn is not None:
            txn.retransmission(request)
            return
        if request.method == "ACK":
            self.stats["stray_acks"] += 1
            self._log.debug("ignoring stray ACK {call_id}", call_id=request.call_id)
            return
        txn = ServerTransaction(self, key, request, source)
        self.server_transactions[key] = txn
        txn._start()
        if request.method == "CANCEL":
            self._cancel(txn)
            return
        if self.tu is None:
            txn.respond(sipmsg.make_response(request, 503, to_tag=sipmsg.generate_tag()))
            return
        try:
            self.tu.request_received(request, source, txn)
        except Exception:
            self.stats["tu_errors"] += 1
            self._log.failure("TU failed on {method} {call_id}", method=request.method,
                              call_id=request.call_id)
            if txn.state == TRYING:
                txn.respond(sipmsg.make_response(request, 500, to_tag=sipmsg.generate_tag()))

    def _cancel(self, txn: ServerTransaction) -> None:
        """RFC 3261 9.2: 200 if the CANCEL matches an INVITE, else 481."""
        try:
            target = self.server_transactions.get(server_key(txn.request, "INVITE"))
        except (ValueError, AttributeError, sipmsg.SipError):
            target = None
        to_tag = sipmsg.generate_tag()
        if target is None:
            txn.respond(sipmsg.make_response(txn.request, 481, to_tag=to_tag))
            return
        txn.respond(sipmsg.make_response(txn.request, 200, to_tag=to_tag))
        if target.state in (TRYING, PROCEEDING):
            hook = getattr(self.tu, "cancel_received", None)
            if hook is not None:
                hook(target)
            else:
                target.respond(sipmsg.make_response(target.request, 487, to_tag=to_tag))

    def _response_received(self, response, source: Peer) -> None:
        self.stats["responses"] += 1
        via = top_via(response)
        try:
            method = response.cseq[1]
        except (AttributeError, TypeError, ValueError, sipmsg.SipError):
            method = None
        txn = self.client_transactions.get((via.branch if via else None, method))
        if txn is None:
            self.stats["stray_responses"] += 1
            self._log.debug("dropping stray {status} response from {host}",
                            status=response.status, host=source.host)
            return
        txn.response_received(response)

    # -- TU API ------------------------------------------------------------

    def respond(self, request, response) -> bool:
        """
        Answer a request received through C{tu.request_received}.

        @return: C{False} (and a log line) if its transaction is gone.
        """
        try:
            txn = self.server_transactions.get(server_key(request))
        except (ValueError, AttributeError, sipmsg.SipError):
            txn = None
        if txn is None:
            self._log.info("no transaction for {status} to {method} {call_id}; dropped",
                           status=response.status, method=request.method,
                           call_id=request.call_id)
            return False
        txn.respond(response)
        return True

    def send_request(self, request, peer: Peer) -> defer.Deferred:
        """
        Send a non-INVITE request in a new client transaction.

        A top Via with an RFC 3261 branch is added if the request has none
        (the transport fills in its sent-by).  Requests larger than
        C{udp_size_limit} go over TCP to the same host and port when a TCP
        listener exists.

        @param request: a L{sipmsg.Request} (not INVITE / ACK).
        @param peer: where to send it.
        @return: Deferred firing with the final L{sipmsg.Response} (1xx do
            not fire it), failing with L{TimeoutError} (Timer F) or
            L{TransportError}.
        @raise ValueError: INVITE or ACK, or a branch already in use.
        """
        if request.method in ("INVITE", "ACK"):
            raise ValueError(f"{request.method} client transactions are not supported")
        via = top_via(request)
        if via is None:
            via = sipmsg.Via(peer.transport, "0.0.0.0", None, {"branch": new_branch()})
            request.headers.add("Via", str(via), prepend=True)
        elif not (via.branch or "").startswith(MAGIC_COOKIE):
            via.params["branch"] = new_branch()
            request.headers.replace_first("Via", str(via))
        key = (via.params["branch"], request.method)
        if key in self.client_transactions:
            raise ValueError(f"branch {key[0]} already in use")
        if peer.transport == "udp" and self.transport.has_listener("tcp") \
                and len(request.to_bytes()) > self.udp_size_limit:
            peer = Peer("tcp", peer.host, peer.port, server_name=peer.server_name)
        txn = ClientTransaction(self, key, request, peer)
        self.client_transactions[key] = txn
        txn._start()
        return txn.deferred

    def send_stateless(self, msg, peer: Peer) -> defer.Deferred:
        """
        Send a message outside any transaction (e.g. an ACK).

        @return: the transport's Deferred (fires with the L{Peer} used).
        """
        return self.transport.send(msg, peer)

    def stop(self) -> None:
        """
        Terminate every transaction (cancelling its timers); pending
        client Deferreds fail with L{TransportError}.
        """
        for txn in list(self.server_transactions.values()):
            txn.terminate()
        for txn in list(self.client_transactions.values()):
            txn._fail(TransportError("SIP transaction layer stopped"))
