"""registry:2's TLS keys in OpenSSL's terms: its protocol version names (``http.tls.minimumtls``),
Go's cipher-suite names (``http.tls.ciphersuites``) and Go's client authentication modes
(``http.tls.clientauth``), each honoured exactly or refused with the reason."""

from __future__ import annotations

import ssl
from collections.abc import Sequence

# registry:2 2.8 takes all four; registry:3 only the last two.
TLS_VERSIONS = {
    "tls1.0": ssl.TLSVersion.TLSv1,
    "tls1.1": ssl.TLSVersion.TLSv1_1,
    "tls1.2": ssl.TLSVersion.TLSv1_2,
    "tls1.3": ssl.TLSVersion.TLSv1_3,
}
FLOOR = "tls1.2"  # dockyard serves nothing older, whatever the file says

# TLS 1.2 with forward-secret AEAD suites only (Go's names, OpenSSL's), as dockyard serves by default.
STRONG_TLS12_SUITES = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
}
DEFAULT_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"  # the same suites, as OpenSSL selects them
# Go does not let these be chosen either (its CipherSuites list is ignored for TLS 1.3): all stay on.
TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
# Go's names of the suites dockyard refuses, and why (registry:2 2.8 and 3.x list these).
_WEAKNESSES = (
    ("RC4", "RC4 is broken"),
    ("3DES", "3DES has 64-bit blocks (Sweet32)"),
    ("TLS_RSA_", "RSA key exchange has no forward secrecy"),
    ("_CBC_", "CBC mode is not an AEAD (Lucky Thirteen)"),
)

CLIENT_AUTH_MODES = ("request-client-cert", "require-any-client-cert", "verify-client-cert-if-given", "require-and-verify-client-cert")
DEFAULT_CLIENT_AUTH = "require-and-verify-client-cert"  # registry:2's, and 2.8's only mode
CLIENT_VERIFY_MODES = {
    "require-and-verify-client-cert": ssl.CERT_REQUIRED,
    "verify-client-cert-if-given": ssl.CERT_OPTIONAL,  # OpenSSL's peer verification without FAIL_IF_NO_PEER_CERT, as Go's
    # Go asks for a certificate and takes any or none, unchecked: it admits every client. Dockyard
    # never reads a client certificate, so not asking for one admits exactly the same clients.
    "request-client-cert": ssl.CERT_NONE,
}
REFUSED_CLIENT_AUTH = {
    "require-any-client-cert": (
        "Python's TLS cannot require a client certificate without verifying it against http.tls.clientcas: "
        "verifying would lock out clients registry:2 admits, not requiring one would admit clients it refuses; "
        "use require-and-verify-client-cert"
    ),
}


def suite_problem(name: str) -> str | None:
    """Why dockyard cannot serve Go's suite ``name``, or None."""
    if name in TLS13_SUITES:
        return None
    if name in STRONG_TLS12_SUITES:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.set_ciphers(STRONG_TLS12_SUITES[name])
        except ssl.SSLError:
            return f"not available in this OpenSSL ({ssl.OPENSSL_VERSION})"
        return None
    weakness = next((reason for marker, reason in _WEAKNESSES if marker in name), None)
    if weakness is not None and name.startswith("TLS_"):
        return f"refused as weak: {weakness}"
    return f"not a cipher suite registry:2 knows; dockyard serves {', '.join(STRONG_TLS12_SUITES)} (and TLS 1.3's)"


def openssl_ciphers(names: Sequence[str]) -> str:
    """OpenSSL's cipher list for TLS 1.2 from Go's suite names (checked with :func:`suite_problem`);
    dockyard's own where they name no TLS 1.2 suite."""
    chosen = [STRONG_TLS12_SUITES[name] for name in names if name in STRONG_TLS12_SUITES]
    return ":".join(chosen) or DEFAULT_CIPHERS


def names_no_tls12_suite(names: Sequence[str]) -> bool:
    """A list of TLS 1.3 suites alone: Go then finds no suite for a TLS 1.2 handshake and refuses it."""
    return bool(names) and not any(name in STRONG_TLS12_SUITES for name in names)


def minimum_version(name: str, suites: Sequence[str] = ()) -> ssl.TLSVersion:
    """The lowest protocol served for ``http.tls.minimumtls`` and ``ciphersuites``: never below :data:`FLOOR`."""
    if names_no_tls12_suite(suites):
        return ssl.TLSVersion.TLSv1_3
    return max(TLS_VERSIONS[name], TLS_VERSIONS[FLOOR])
