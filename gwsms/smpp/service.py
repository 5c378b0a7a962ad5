# -*- test-case-name: tests.test_smpp_service -*-
"""
Keeps the configured SMSC sessions up.

One L{SmppService} owns every SMSC link.  An enabled transceiver,
transmitter or receiver link gets a supervisor that connects (TCP or TLS,
host names or IP addresses), binds, and after any failure or lost
connection tries again with capped exponential backoff and jitter; a bind
refused for its credentials waits C{auth_failure_delay}, so a wrong
password does not hammer the SMSC.  Outbind links wait for the SMSC: the
service listens on C{smpp.outbind_listen}, checks the system_id/password of
an incoming C{outbind} and binds as receiver on that connection.  The
per-link machinery is in L{gwsms.smpp.supervisor}.
"""

from __future__ import annotations

import random as _random

from twisted.application.service import MultiService
from twisted.internet import defer, endpoints
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.logger import Logger
from twisted.python.failure import Failure

from gwsms.smpp import tls
from gwsms.smpp.backoff import Backoff
from gwsms.smpp.link import SessionType, SmscLink
from gwsms.smpp.supervisor import (
    LinkSession,
    LinkSupervisor,
    OutbindFactory,
    OutbindSlot,
    SessionContext,
)


class NoSuchLink(KeyError):
    """No link of that name is configured."""

    def __str__(self) -> str:
        return f"no smsc link named {self.args[0]!r}"


class LinkDown(Exception):
    """The link exists but cannot take a submit now (not bound, or receive-only)."""


def _esme_protocol(link, clock, sink, max_command_length):
    from gwsms.smpp.esme import ESMEProtocol

    return ESMEProtocol(link, clock, sink, max_command_length=max_command_length)


class SmppService(MultiService):
    """
    All SMSC sessions of the gateway, kept up and reloadable.
    """

    _log = Logger()

    def __init__(
        self,
        reactor,
        smpp_config,
        sink,
        links,
        random=_random.random,
        protocol_factory=None,
    ) -> None:
        """
        @param reactor: provides C{IReactorTime}, C{IReactorTCP} (and
            whatever C{smpp_config.outbind_listen} endpoints need).
        @param smpp_config: the C{config.smpp} section
            (L{gwsms.config.SmppConfig}).
        @param sink: the L{gwsms.smpp.interfaces.IDeliverySink} for
            C{deliver_sm} / C{data_sm} from every link.
        @param links: the L{SmscLink} rows (disabled ones are listed by
            L{state} but not connected).
        @param random: random source for backoff jitter (tests fix it).
        @param protocol_factory: C{callable(link, clock, sink,
            max_command_length)} building the ESME protocol; default
            L{gwsms.smpp.esme.ESMEProtocol}.
        @raise ValueError: duplicate link names or a bad C{outbind_listen}
            endpoint string.
        """
        super().__init__()
        self._reactor = reactor
        self._config = smpp_config
        make_protocol = protocol_factory or _esme_protocol
        self._context = SessionContext(
            clock=reactor,
            backoff=Backoff.from_config(smpp_config, random),
            new_protocol=lambda link: make_protocol(
                link, reactor, sink, smpp_config.max_command_length
            ),
            endpoint_for=self._endpoint_for,
            find_outbind_slot=self._outbind_slot,
        )
        self._sessions: dict[str, LinkSession] = {}
        self._pending_stops: set[defer.Deferred] = set()  # sessions being closed
        self._shutting_down = False
        self._check_unique(links)
        for link in links:
            self._sessions[link.name] = self._make_session(link)
        self._listeners = []
        self._ports: list = []
        for description in smpp_config.outbind_listen:
            try:
                endpoint = endpoints.serverFromString(reactor, description)
            except (ValueError, TypeError, KeyError) as e:
                raise ValueError(f"smpp.outbind_listen {description!r}: {e}") from None
            self._listeners.append((description, endpoint))

    @staticmethod
    def _check_unique(links) -> None:
        seen = set()
        for link in links:
            if link.name in seen:
                raise ValueError(f"duplicate smsc link name {link.name!r}")
            seen.add(link.name)

    def _make_session(self, link: SmscLink) -> LinkSession:
        if link.session_type is SessionType.OUTBIND:
            session = OutbindSlot(self._context, link)
        else:
            session = LinkSupervisor(self._context, link)
        session.phase = "stopped" if link.enabled else "disabled"
        return session

    def _endpoint_for(self, link: SmscLink):
        """The client endpoint for C{link}: TCP (IPv4/IPv6/host name), maybe TLS."""
        timeout = link.session_init_timeout or 30.0
        if isIPAddress(link.ip):
            endpoint = endpoints.TCP4ClientEndpoint(self._reactor, link.ip, link.port, timeout=timeout)
        elif isIPv6Address(link.ip):
            endpoint = endpoints.TCP6ClientEndpoint(self._reactor, link.ip, link.port, timeout=timeout)
        else:
            endpoint = endpoints.HostnameEndpoint(self._reactor, link.ip, link.port, timeout=timeout)
        if link.tls:
            endpoint = endpoints.wrapClientTLS(
                tls.client_tls_options(link, self._config.tls_ca), endpoint
            )
        return endpoint

    def _outbind_slot(self, system_id: str):
        for session in self._sessions.values():
            if (
                isinstance(session, OutbindSlot)
                and session.link.enabled
                and session.link.system_id == system_id
            ):
                return session
        return None

    # -- IService --------------------------------------------------------
    def startService(self) -> None:
        """
        Listen for outbind, then connect every enabled link.

        @raise twisted.internet.error.CannotListenError: an outbind listener
            could not be opened (startup fails rather than running without it).
        """
        self._shutting_down = False
        factory = OutbindFactory(self._context)
        for description, endpoint in self._listeners:
            outcome: list = []
            d = endpoint.listen(factory)
            d.addBoth(outcome.append)
            if outcome and isinstance(outcome[0], Failure):
                for port in self._ports:
                    port.stopListening()
                self._ports = []
                self._log.error(
                    "cannot listen for outbind on {where}: {why}",
                    where=description, why=outcome[0].getErrorMessage(),
                )
                outcome[0].raiseException()
            if outcome:
                self._ports.append(outcome[0])
            else:  # an endpoint that listens asynchronously
                d.addCallback(self._ports.append)
                d.addErrback(
                    lambda f, where=description: self._log.failure(
                        "cannot listen for outbind on {where}", f, where=where
                    )
                )
        super().startService()
        for session in self._sessions.values():
            if session.link.enabled:
                session.start()

    def stopService(self) -> defer.Deferred:
        """
        Unbind every session gracefully (within C{smpp.shutdown_timeout}),
        then stop the outbind listeners.
        """
        self._shutting_down = True
        timeout = self._config.shutdown_timeout
        stops = [self._stop_session(s, timeout) for s in self._sessions.values()]
        d = defer.DeferredList(stops + list(self._pending_stops), consumeErrors=True)

        def stop_listening(_):
            ports, self._ports = self._ports, []
            return defer.DeferredList(
                [defer.maybeDeferred(port.stopListening) for port in ports],
                consumeErrors=True,
            )

        d.addCallback(stop_listening)
        d.addCallback(lambda _: MultiService.stopService(self))
        d.addErrback(lambda f: self._log.failure("stopping smpp service", f))
        return d

    def _stop_session(self, session: LinkSession, timeout: float) -> defer.Deferred:
        d = defer.maybeDeferred(session.stop, timeout)
        d.addErrback(lambda f: self._log.failure("smsc {link}: stop failed", f, link=session.link.name))
        if not d.called:
            self._pending_stops.add(d)

            def forget(result):
                self._pending_stops.discard(d)
                return result

            d.addBoth(forget)
        return d

    # -- public API ------------------------------------------------------
    def reload(self, links) -> dict:
        """
        Apply a new set of link rows without touching unchanged sessions.

        Removed links are unbound gracefully; changed ones (different
        L{SmscLink.connection_key}, or C{enabled} flipped) are unbound and
        started again with the new row; added ones are started.

        @param links: the complete new list of L{SmscLink}.
        @return: C{{"added": [...], "removed": [...], "changed": [...],
            "unchanged": [...]}} (sorted link names).
        @raise ValueError: duplicate names in C{links}.
        """
        self._check_unique(links)
        new = {link.name: link for link in links}
        result: dict[str, list[str]] = {"added": [], "removed": [], "changed": [], "unchanged": []}
        timeout = self._config.shutdown_timeout
        for name in sorted(set(self._sessions) - set(new)):
            session = self._sessions.pop(name)
            result["removed"].append(name)
            if self.running:
                self._stop_session(session, timeout)
        for name in sorted(new):
            link = new[name]
            old = self._sessions.get(name)
            if old is None:
                result["added"].append(name)
                self._install(link, None)
            elif (
                old.link.connection_key() != link.connection_key()
                or old.link.enabled != link.enabled
            ):
                result["changed"].append(name)
                self._install(link, old)
            else:
                result["unchanged"].append(name)
                old.link = link  # same connection; keep the fresh row (id)
        if any(result[k] for k in ("added", "removed", "changed")):
            self._log.info(
                "smsc reload: added {added}, removed {removed}, changed {changed}, {n} unchanged",
                added=result["added"], removed=result["removed"],
                changed=result["changed"], n=len(result["unchanged"]),
            )
        return result

    def _install(self, link: SmscLink, old: LinkSession | None) -> None:
        session = self._make_session(link)
        self._sessions[link.name] = session
        if not self.running:
            return
        stopped = self._stop_session(old, self._config.shutdown_timeout) if old else defer.succeed(None)

        def start(_):
            if (
                self._sessions.get(link.name) is session
                and link.enabled
                and self.running
                and not self._shutting_down
            ):
                session.start()

        stopped.addCallback(start)
        stopped.addErrback(lambda f: self._log.failure("smsc {link}: restart failed", f, link=link.name))

    def submit(self, link_name: str, params: dict, tlvs: dict | None = None) -> defer.Deferred:
        """
        Send a C{submit_sm} on a bound link.

        @param link_name: the link's name.
        @param params: C{submit_sm} parameters (SMPP 3.4 names).
        @param tlvs: optional TLVs by name.
        @return: Deferred firing with the ESME's C{SubmitResult}; fails
            with L{NoSuchLink} or L{LinkDown}.
        """
        session = self._sessions.get(link_name)
        if session is None:
            return defer.fail(NoSuchLink(link_name))
        if not session.link.session_type.can_transmit:
            return defer.fail(LinkDown(f"smsc link {link_name!r} is receive-only"))
        if not session.link.enabled:
            return defer.fail(LinkDown(f"smsc link {link_name!r} is disabled"))
        if not session.is_bound():
            return defer.fail(LinkDown(f"smsc link {link_name!r} is {session.state_name()}"))
        return defer.maybeDeferred(session.proto.submit, params, tlvs)

    def transmitter(self, link_name: str):
        """
        For the hot path (L{gwsms.core.fastmt}): the session that would
        take a C{submit} on C{link_name} right now.

        @return: the bound, enabled, transmit-capable
            L{gwsms.smpp.esme.ESMEProtocol}, or L{None} (then L{submit}
            would fail).
        """
        session = self._sessions.get(link_name)
        if (session is None or not session.link.session_type.can_transmit
                or not session.link.enabled or not session.is_bound()):
            return None
        return session.proto

    def state(self) -> list[dict]:
        """
        The state of every link, for the CLI.

        @return: one dict per link, sorted by name: C{name, session_type,
            enabled, state, host, port, tls, bound_since} (epoch seconds or
            None), C{counters} (dict), C{last_error} (str or None).
        """
        return [self._sessions[name].describe() for name in sorted(self._sessions)]

    def outbind_addresses(self) -> list:
        """@return: the C{IAddress} of every open outbind listener."""
        return [port.getHost() for port in self._ports]

    def link_names(self) -> list[str]:
        """@return: names of all configured links, sorted."""
        return sorted(self._sessions)
