# -*- test-case-name: tests.test_smpp_service -*-
"""
Client TLS settings for one SMSC link.

Certificate verification is on by default: the SMSC's certificate must
chain to the system trust store, or to C{smpp.tls_ca} when that is set, and
name the link's host (DNS name or IP address).  C{link.tls_verify = False}
turns verification off for that link only (encryption without
authentication; for test SMSCs with self-signed certificates).
"""

from __future__ import annotations

import re

from twisted.internet import ssl

_PEM_CERT = re.compile(
    rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL
)


class TLSConfigError(ValueError):
    """The TLS settings cannot be used; the message names the file and problem."""


def load_trust_root(path: str):
    """
    Read the CA certificates of C{path} (PEM, one or more certificates).

    @param path: file name.
    @return: an C{IOpenSSLTrustRoot}.
    @raise TLSConfigError: the file cannot be read or holds no certificate.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise TLSConfigError(f"smpp.tls_ca {path!r}: {e.strerror or e}") from None
    blocks = _PEM_CERT.findall(data)
    if not blocks:
        raise TLSConfigError(f"smpp.tls_ca {path!r}: no PEM certificate found")
    try:
        certs = [ssl.Certificate.loadPEM(block) for block in blocks]
    except Exception as e:
        raise TLSConfigError(f"smpp.tls_ca {path!r}: bad certificate ({e})") from None
    return ssl.trustRootFromCertificates(certs)


def client_tls_options(link, tls_ca: str = ""):
    """
    The TLS connection creator for C{link}.

    @param link: the L{gwsms.smpp.link.SmscLink}; uses C{ip} (host name or
        address, checked against the certificate) and C{tls_verify}.
    @param tls_ca: PEM file of trusted CAs; C{""} uses the system store.
    @return: an C{IOpenSSLClientConnectionCreator} for C{wrapClientTLS}.
    @raise TLSConfigError: C{tls_ca} cannot be used.
    """
    if not link.tls_verify:
        return ssl.CertificateOptions(verify=False)
    trust_root = load_trust_root(tls_ca) if tls_ca else None
    return ssl.optionsForClientTLS(link.ip, trustRoot=trust_root)
