"""HTTPS for ``serve``: the local CA and server certificate kept in the TLS directory,
checks of a given certificate, and the server's ``ssl.SSLContext``.

The TLS directory holds ``ca.crt``/``ca.key`` (kept for years) and
``server.crt``/``server.key`` (reissued before they expire, or when the names asked
for are not all in them). Keys are mode 0600. Several processes may start at once:
an exclusive lock on ``.lock`` makes one of them create what is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import fcntl
import hashlib
import logging
import pathlib
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dockyard.tls import policy
from dockyard.tls.acme_settings import AcmeSettings
from dockyard.tls.errors import CertificateError

if TYPE_CHECKING:  # imported where used: a server without TLS never loads cryptography
    from cryptography import x509

log = logging.getLogger("dockyard.tls")

RENEW_BEFORE = datetime.timedelta(days=30)
RENEW_CHECK_SECONDS = 12 * 3600
CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY = "ca.crt", "ca.key", "server.crt", "server.key"

@dataclass(frozen=True)
class TlsSettings:
    directory: pathlib.Path
    hostnames: tuple[str, ...] = ()
    certificate: pathlib.Path | None = None
    key: pathlib.Path | None = None
    passphrase: bytes | None = None
    client_cas: tuple[pathlib.Path, ...] = ()
    client_auth: str = policy.DEFAULT_CLIENT_AUTH  # one of policy.CLIENT_VERIFY_MODES; only with client_cas
    minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    ciphers: str = policy.DEFAULT_CIPHERS  # OpenSSL's list, for TLS 1.2
    letsencrypt: AcmeSettings | None = None  # certificates from an ACME server (http.tls.letsencrypt)

    @property
    def generated(self) -> bool:
        return self.certificate is None and self.letsencrypt is None


@dataclass
class ServingCertificate:
    certificate: pathlib.Path
    key: pathlib.Path
    ca: pathlib.Path | None
    warnings: list[str] = field(default_factory=list)

    def ca_fingerprint(self) -> str | None:
        """The CA certificate's SHA-256 fingerprint as openssl prints it (read without cryptography)."""
        if self.ca is None:
            return None
        der = ssl.PEM_cert_to_DER_cert(self.ca.read_text())  # the first certificate in the file
        return hashlib.sha256(der).digest().hex(":").upper()


def local_names(extra: tuple[str, ...]) -> list[str]:
    names = [*extra, socket.gethostname(), socket.getfqdn(), "localhost", "127.0.0.1", "::1"]
    return list(dict.fromkeys(name for name in names if name))


@contextlib.contextmanager
def _locked(directory: pathlib.Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _needs_new_server_certificate(directory: pathlib.Path, ca: x509.Certificate, names: list[str]) -> str | None:
    from dockyard.tls import certificates, inspect

    try:
        current = certificates.load_certificates(directory / SERVER_CERT)[0]
        certificates.load_key(directory / SERVER_KEY)
    except CertificateError:
        return "none yet"
    if current.issuer != ca.subject:
        return "issued by another CA"
    if current.not_valid_after_utc - RENEW_BEFORE < datetime.datetime.now(datetime.UTC):
        return f"expires on {current.not_valid_after_utc:%Y-%m-%d}"
    missing = set(names) - set(inspect.subject_alternative_names(current))
    if missing:
        return f"lacks {', '.join(sorted(missing))}"
    return None


def ensure_local_certificates(settings: TlsSettings) -> ServingCertificate:
    """Create the CA and the server certificate where missing; renew the latter when due."""
    from dockyard.tls import certificates
    from dockyard.tls.certificates import CertificateAuthority

    directory = settings.directory
    names = local_names(settings.hostnames)
    with _locked(directory):
        if not (directory / CA_CERT).exists() or not (directory / CA_KEY).exists():
            key = certificates.generate_key()
            certificates.write_key(directory / CA_KEY, key)
            certificates.write_certificates(directory / CA_CERT, certificates.create_ca(key))
            log.info("created a local certificate authority in %s", directory)
        ca = CertificateAuthority.load(directory / CA_CERT, directory / CA_KEY)
        reason = _needs_new_server_certificate(directory, ca.certificate, names)
        if reason is not None:
            key = certificates.generate_key()
            certificates.write_key(directory / SERVER_KEY, key)
            certificates.write_certificates(directory / SERVER_CERT, ca.issue(key, names), ca.certificate)
            log.info("issued a server certificate for %s (previous: %s)", ", ".join(names), reason)
    return ServingCertificate(directory / SERVER_CERT, directory / SERVER_KEY, directory / CA_CERT)


def check_given_certificate(settings: TlsSettings) -> ServingCertificate:
    """Check a certificate given with ``--tls-cert``: errors stop the start, warnings are said."""
    assert settings.certificate is not None and settings.key is not None
    from cryptography.hazmat.primitives import serialization

    from dockyard.tls import certificates, inspect

    chain = certificates.load_certificates(settings.certificate)
    key = certificates.load_key(settings.key, settings.passphrase)
    leaf = chain[0]
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(serialization.Encoding.DER, public) != key.public_key().public_bytes(serialization.Encoding.DER, public):
        raise CertificateError(f"{settings.certificate} does not match the key {settings.key}")
    found = inspect.problems(leaf)
    fatal = [problem for problem in found if problem.startswith(("expired", "not valid before"))]
    if fatal:
        raise CertificateError(f"{settings.certificate}: {fatal[0]}")
    missing = [name for name in settings.hostnames if not inspect.matches_host(leaf, name)]
    if missing:
        found.append(f"not valid for {', '.join(missing)}")
    return ServingCertificate(settings.certificate, settings.key, None, [f"{settings.certificate}: {p}" for p in found])


def acme_certificate(settings: AcmeSettings, warnings: list[str] | None = None) -> ServingCertificate:
    """The cache file serves as certificate and key alike."""
    return ServingCertificate(settings.cachefile, settings.cachefile, None, warnings or [])


def prepare(settings: TlsSettings) -> ServingCertificate:
    if settings.letsencrypt is not None:
        from dockyard.tls import acme

        return acme_certificate(settings.letsencrypt, acme.prepare(settings.letsencrypt))
    return ensure_local_certificates(settings) if settings.generated else check_given_certificate(settings)


def server_context(serving: ServingCertificate, settings: TlsSettings) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = settings.minimum_version
    context.set_ciphers(settings.ciphers)
    context.options |= ssl.OP_NO_COMPRESSION
    # Every suite allowed is a strong AEAD, so the client picks (as Mozilla's guidelines
    # advise): Go clients (docker, podman, skopeo) choose AES-128-GCM where the CPU has
    # AES instructions and ChaCha20 where it has none, both faster for them than the
    # AES-256-GCM that OpenSSL's own order would impose on every TLS 1.3 connection.
    context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        context.load_cert_chain(serving.certificate, serving.key, password=settings.passphrase)
    except ssl.SSLError as error:
        raise CertificateError(f"cannot use {serving.certificate} with {serving.key}: {error.reason or error}") from None
    for client_ca in settings.client_cas:
        try:
            context.load_verify_locations(cafile=client_ca)
        except (ssl.SSLError, OSError) as error:
            raise CertificateError(f"cannot read client CA {client_ca}: {error}") from None
    if settings.client_cas:
        context.verify_mode = policy.CLIENT_VERIFY_MODES[settings.client_auth]
    return context


async def keep_renewed(context: ssl.SSLContext, settings: TlsSettings) -> None:
    """In a long-running server, renew the generated certificate before it expires."""
    while True:
        await asyncio.sleep(RENEW_CHECK_SECONDS)
        try:
            from dockyard.tls.child import prepare_in_child

            serving = await asyncio.to_thread(prepare_in_child, settings)
            context.load_cert_chain(serving.certificate, serving.key)
        except (CertificateError, OSError, ssl.SSLError):
            log.exception("could not renew the server certificate")
