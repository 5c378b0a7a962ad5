# -*- test-case-name: tests.test_sip_service -*-
"""
The SIP side of gwsms as one service: transport listeners for each C{[sip]
listen} entry, the transaction layer, the MESSAGE UAS (answering through
the gateway core's L{IMessageHandler}), the MESSAGE UAC (C{service.uac}) and
the optional registrar (C{service.registrar}).

Configuration problems (TLS listener without certificate, auth or registrar
without a store, a bad trusted CIDR) raise L{SipServiceError} from the
constructor, so a misconfigured gateway refuses to start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.logger import Logger

from gwsms.sip.digest import DigestAuthenticator, TrustedSources
from gwsms.sip.registrar import Registrar
from gwsms.sip.resolver import SipResolver, system_resolver
from gwsms.sip.transaction import TransactionLayer
from gwsms.sip.transport import TransportLayer, parse_listen_spec
from gwsms.sip.ua import MessageUAC, MessageUAS


def _private_spec(host: str) -> str:
    """@return: the listen spec of an OS-chosen UDP port on C{host}."""
    if not host:
        return "udp:0"
    return f"udp:[{host}]:0" if ":" in host else f"udp:{host}:0"


class SipServiceError(ValueError):
    """
    The C{[sip]} configuration cannot work; the message names the key.
    """


@dataclass(frozen=True)
class SipStores:
    """
    The stores the SIP service uses.

    @ivar users: a L{gwsms.store.sip.SipUserStore} (digest auth), or C{None}.
    @ivar registrations: a L{gwsms.store.sip.RegistrationStore} (registrar),
        or C{None}.
    """

    users: Any = None
    registrations: Any = None


def load_tls_options(cert_path: str, key_path: str):
    """
    Server TLS options from PEM files.

    @param cert_path: certificate (chain) PEM file; the first certificate
        is the server's.
    @param key_path: private key PEM file (may be the same file).
    @return: L{twisted.internet.ssl.CertificateOptions}.
    @raise SipServiceError: naming the missing/unreadable/invalid file.
    """
    from twisted.internet import ssl

    if not cert_path or not key_path:
        raise SipServiceError(
            "[sip] a tls: listener needs tls_cert and tls_key (PEM files)")
    texts = []
    for key, path in (("tls_cert", cert_path), ("tls_key", key_path)):
        try:
            with open(path, "rb") as f:
                texts.append(f.read())
        except OSError as e:
            raise SipServiceError(f"[sip] {key}: cannot read {path}: {e.strerror}") from None
    try:
        cert = ssl.PrivateCertificate.loadPEM(texts[0] + b"\n" + texts[1])
    except Exception as e:
        raise SipServiceError(
            f"[sip] tls_cert/tls_key: {cert_path} / {key_path} are not a matching PEM "
            f"certificate and key ({e.__class__.__name__})") from None
    return cert.options()


class SipService(MultiService):
    """
    Listeners, transactions, UAS, UAC and registrar for C{[sip]}.

    @ivar transactions: the L{TransactionLayer}.
    @ivar transport: the L{TransportLayer}.
    @ivar uas: the L{MessageUAS}.
    @ivar uac: the L{MessageUAC} (send MESSAGEs with C{uac.send_message}).
    @ivar registrar: the L{Registrar}, or C{None} when C{[sip] registrar}
        is off.
    @ivar authenticator: the L{DigestAuthenticator}, or C{None}.
    """

    _log = Logger()

    def __init__(self, reactor, sip_config, handler, stores=None, resolver=None,
                 tls_options=None, tls_client_creator=None,
                 digest_algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
                 reuse_port: bool = False) -> None:
        """
        @param reactor: IReactorTime + IReactorUDP + IReactorTCP.
        @param sip_config: the L{gwsms.config.SipConfig}.
        @param handler: the gateway core's L{IMessageHandler} (e.g.
            L{gwsms.sip.interfaces.RejectingMessageHandler}).
        @param stores: a L{SipStores} (or any object with C{users} and
            C{registrations}); needed for C{auth} and C{registrar}.
        @param resolver: an L{IResolver}; by default /etc/hosts then the
            name servers of /etc/resolv.conf.
        @param tls_options: server TLS options; by default loaded from
            C{tls_cert}/C{tls_key} when a C{tls:} listener is configured.
        @param tls_client_creator: C{callable(hostname)} giving client TLS
            options for outgoing TLS (default: system trust store).
        @param digest_algorithms: algorithms offered in challenges, one
            WWW-Authenticate each, preferred first (RFC 8760). Clients that
            read only the first challenge and know only MD5 (sipp 3.6, old
            phones) need C{("MD5",)} or C{("MD5", "SHA-256")}.
        @param reuse_port: share the listen ports with other worker
            processes (C{SO_REUSEPORT}); each UDP listener then gets a
            private port (same address, OS-chosen) that new requests are
            sent from, so that their answers reach this process.
        @raise SipServiceError: for a configuration that cannot work.
        """
        MultiService.__init__(self)
        self.setName("sip")
        self._reactor = reactor
        self.config = sip_config
        stores = stores or SipStores()
        specs = []
        for spec in sip_config.listen:
            try:
                specs.append((spec, parse_listen_spec(spec)))
            except ValueError as e:
                raise SipServiceError(f"[sip] listen: {e}") from None
        if any(t == "tls" for _s, (t, _h, _p) in specs) and tls_options is None:
            tls_options = load_tls_options(sip_config.tls_cert, sip_config.tls_key)
        self._specs = specs
        self._reuse_port = reuse_port
        self._tls_options = tls_options
        try:
            TrustedSources(sip_config.trusted)
        except ValueError as e:
            raise SipServiceError(str(e)) from None

        self.authenticator = None
        unknown = [a for a in digest_algorithms if a.upper() not in ("MD5", "SHA-256")]
        if unknown or not digest_algorithms:
            raise SipServiceError(f"digest algorithms must be MD5 and/or SHA-256, not {unknown}")
        if sip_config.auth:
            if getattr(stores, "users", None) is None:
                raise SipServiceError("[sip] auth is on but no SIP user store was given")
            self.authenticator = DigestAuthenticator(
                reactor, sip_config.realm or sip_config.domain, stores.users,
                nonce_ttl=sip_config.nonce_ttl, algorithms=tuple(digest_algorithms))
        self.registrar = None
        if sip_config.registrar:
            if getattr(stores, "registrations", None) is None:
                raise SipServiceError("[sip] registrar is on but no registration store was given")
            if not sip_config.min_expires <= sip_config.default_expires <= sip_config.max_expires:
                raise SipServiceError(
                    "[sip] min_expires <= default_expires <= max_expires does not hold")
            self.registrar = Registrar(
                reactor, stores.registrations, sip_config.domain, sip_config.min_expires,
                sip_config.default_expires, sip_config.max_expires)

        self.uas = MessageUAS(sip_config, handler, authenticator=self.authenticator,
                              registrar=self.registrar)
        self.transactions = TransactionLayer(reactor, sip_config.t1, sip_config.t2,
                                             sip_config.t4, tu=self.uas)
        self.uas.respond = self.transactions.respond
        self.transport = TransportLayer(reactor, self.transactions,
                                        max_message_size=sip_config.max_message_size,
                                        tls_client_creator=tls_client_creator,
                                        udp_receive_buffer=getattr(
                                            sip_config, "udp_receive_buffer", 0))
        self.transactions.attach(self.transport)
        self.resolver = SipResolver(reactor, resolver if resolver is not None
                                    else system_resolver(reactor))
        self.uac = MessageUAC(sip_config, self.transactions, self.resolver)
        self._ports: list[tuple[str, Any]] = []

    def __repr__(self) -> str:
        return f"<SipService listen={list(self.config.listen)!r}>"

    def startService(self) -> None:
        """
        Open every listener (a port in use raises, so startup fails) and
        start the registrar's expiry sweep.
        """
        try:
            for spec, (transport, host, _port) in self._specs:
                port = self.transport.listen(
                    spec, self._tls_options if transport == "tls" else None,
                    reuse_port=self._reuse_port)
                self._ports.append((transport, port))
                if self._reuse_port and transport == "udp":
                    private = self.transport.listen(_private_spec(host), prefer=True)
                    self._ports.append(("udp-private", private))
        except Exception:
            for _t, port in self._ports:
                port.stopListening()
            self._ports = []
            raise
        if self.registrar is not None:
            self.registrar.start()
        MultiService.startService(self)

    def stopService(self) -> defer.Deferred:
        """
        Stop the registrar sweep, terminate the transactions and close the
        listeners and connections.

        @return: a L{Deferred} firing when the ports are closed.
        """
        d = defer.maybeDeferred(MultiService.stopService, self)
        if self.registrar is not None:
            self.registrar.stop()
        self.transactions.stop()
        self._ports = []
        d.addCallback(lambda _: self.transport.stop())
        d.addErrback(lambda f: self._log.failure("stopping the SIP service failed", f))
        return d

    def addresses(self) -> list[tuple[str, str, int]]:
        """
        @return: C{(transport, host, port)} of every open listener, with the
            ports the OS actually chose (for C{port 0}).
        """
        result = []
        for transport, port in self._ports:
            address = port.getHost()
            result.append((transport, address.host, address.port))
        return result

    def port(self, transport: str) -> int:
        """
        @param transport: C{"udp"}, C{"tcp"} or C{"tls"}.
        @return: the bound port of the first listener of that transport.
        @raise KeyError: no such listener is open.
        """
        for name, _host, port in self.addresses():
            if name == transport:
                return port
        raise KeyError(f"no SIP {transport} listener is open")
