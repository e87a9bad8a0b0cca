"""Certificates from an ACME server (RFC 8555: Let's Encrypt, or any other), for
registry:2's ``http.tls.letsencrypt``, with certbot's ``acme`` library.

The cache file (``cachefile``) is one PEM file, mode 0600, replaced atomically: the
certificate's key (``PRIVATE KEY``), the certificate chain, then the ACME account's key
(``EC PRIVATE KEY``). The TLS context loads it as it is, certificate and key alike.
registry:2 keeps a directory of its own format at that path; that is refused, not read.

Challenges are answered over TLS-ALPN-01 on the serving port, as registry:2 does
(:mod:`dockyard.tls.alpn_challenge`), or over HTTP-01 by :class:`Http01Responder` on the
address given with ``dockyard.acme_http_addr`` (port 80 for a real ACME server) when it
is set. What is answered is kept in files beside the cache file, so that whichever
process orders (the one starting, or any worker renewing), the one answering finds it.
The ``acme`` library does everything in blocking calls: the server runs them in a thread.

A certificate is ordered for ``hosts`` only, at start and when due: a handshake for any
other name never starts an order.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import fcntl
import functools
import http.server
import logging
import pathlib
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import josepy.errors
import requests
from acme import challenges, client, crypto_util, messages
from acme import errors as acme_errors
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from josepy import jwa, jwk

from dockyard import __version__
from dockyard.atomic import write_file
from dockyard.tls import alpn_challenge, certificates
from dockyard.tls.acme_settings import TLS_ALPN_01, AcmeSettings
from dockyard.tls.errors import CertificateError
from dockyard.tls.inspect import subject_alternative_names

log = logging.getLogger("dockyard.tls.acme")

RENEW_BEFORE = datetime.timedelta(days=30)
RENEW_CHECK_SECONDS = 12 * 3600.0  # wake up at least this often, so that a changed clock is seen
RETRY_SECONDS = 3600.0  # after a failed renewal, try again this soon (or sooner for a short-lived certificate)
ORDER_TIMEOUT = datetime.timedelta(seconds=90)
CHALLENGE_PATH = "/.well-known/acme-challenge/"
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")  # base64url, as RFC 8555 section 8.3 says: never a path
_HOST = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")  # a DNS name as a file name: never a path (SNI comes from anyone)


@challenges.ChallengeResponse.register
class TLSALPN01Response(challenges.KeyAuthorizationChallengeResponse):
    """The answer posted for tls-alpn-01: an empty object, as for http-01."""

    typ = TLS_ALPN_01


@challenges.Challenge.register
class TLSALPN01(challenges.KeyAuthorizationChallenge):
    """tls-alpn-01 (RFC 8737), which acme 5 no longer knows (it would read it as an
    UnrecognizedChallenge): the key authorization goes into a certificate."""

    response_cls = TLSALPN01Response
    typ = TLS_ALPN_01

    def validation(self, account_key: jwk.JWK, **unused_kwargs: object) -> str:
        """The key authorization, which goes into the challenge certificate."""
        return self.key_authorization(account_key)


class AcmeError(Exception):
    """An order failed; the message says which server and why, in one line."""


@dataclass(frozen=True)
class Cached:
    """What the cache file holds; any part may be missing."""

    account_key: ec.EllipticCurvePrivateKey | None = None
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def leaf(self) -> x509.Certificate | None:
        return self.chain[0] if self.chain else None


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.S)


def read_cache(path: pathlib.Path) -> Cached:
    if path.is_dir():
        raise CertificateError(f"{path} is a directory (registry:2's cache): give http.tls.letsencrypt.cachefile a file name; dockyard orders anew")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Cached()
    except OSError as error:
        raise CertificateError(f"cannot read {path}: {error.strerror}") from None
    account_key = None
    chain = []
    try:
        for block in _PEM_BLOCK.finditer(data):
            if block.group(1) == b"EC PRIVATE KEY":
                key = serialization.load_pem_private_key(block.group(0), password=None)
                if isinstance(key, ec.EllipticCurvePrivateKey):
                    account_key = key
            elif block.group(1) == b"CERTIFICATE":
                chain.append(x509.load_pem_x509_certificate(block.group(0)))
    except ValueError as error:
        raise CertificateError(f"{path}: not a cache file dockyard wrote: {error}") from None
    return Cached(account_key, tuple(chain))


def _write_cache(path: pathlib.Path, account_key: ec.EllipticCurvePrivateKey, certificate_key: certificates.PrivateKey | None, fullchain_pem: bytes) -> None:
    # The certificate's key first: OpenSSL's load_cert_chain takes the file's first private key.
    parts = []
    if certificate_key is not None:
        parts.append(certificate_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    parts.append(fullchain_pem)
    parts.append(account_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    write_file(path, b"".join(parts), 0o600)


def renewal_time(certificate: x509.Certificate) -> datetime.datetime:
    """30 days before expiry, or when a third of the lifetime is left if that is later
    (Let's Encrypt's 90 days: 30 days before; a 6-day certificate: 2 days before)."""
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    return certificate.not_valid_after_utc - min(RENEW_BEFORE, lifetime / 3)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _usable(cached: Cached, settings: AcmeSettings) -> bool:
    """The cached certificate covers every host and is not due for renewal."""
    leaf = cached.leaf
    if leaf is None:
        return False
    return set(settings.hosts) <= set(subject_alternative_names(leaf)) and _now() < renewal_time(leaf)


@contextlib.contextmanager
def _locked(settings: AcmeSettings) -> Iterator[None]:
    """One order at a time among the workers and processes sharing the cache file."""
    settings.cachefile.parent.mkdir(parents=True, exist_ok=True)
    with open(settings.cachefile.with_name(f".{settings.cachefile.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class ChallengeBoard:
    """The challenges being answered, as files any process can read: HTTP-01's key
    authorizations named by token, TLS-ALPN-01's certificates by host name (``HOST.pem``:
    a token has no dot)."""

    def __init__(self, directory: pathlib.Path) -> None:
        self.directory = directory

    def put(self, token: str, key_authorization: str) -> None:
        if not _TOKEN.fullmatch(token):
            raise AcmeError(f"the ACME server sent a token that is not base64url: {token!r}")
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_file(self.directory / token, key_authorization.encode())

    def remove(self, token: str) -> None:
        if _TOKEN.fullmatch(token):
            (self.directory / token).unlink(missing_ok=True)

    def put_certificate(self, host: str, pem: bytes) -> None:
        path = self.certificate_file(host)
        if path is None:
            raise AcmeError(f"cannot answer tls-alpn-01 for {host!r}: not a DNS name")
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_file(path, pem, 0o600)

    def remove_certificate(self, host: str) -> None:
        if (path := self.certificate_file(host)) is not None:
            path.unlink(missing_ok=True)

    def certificate_file(self, host: str) -> pathlib.Path | None:
        """Where ``host``'s TLS-ALPN-01 certificate is while its challenge is pending."""
        return self.directory / f"{host}.pem" if _HOST.fullmatch(host) else None

    def answer(self, token: str) -> bytes | None:
        if not _TOKEN.fullmatch(token):
            return None
        try:
            return (self.directory / token).read_bytes()
        except OSError:
            return None


def order(settings: AcmeSettings) -> None:
    """Get a certificate for ``settings.hosts`` into the cache file, unless another
    process has just done so. Blocking: run it in a thread. Raises :class:`AcmeError`."""
    with _locked(settings):
        cached = read_cache(settings.cachefile)
        if _usable(cached, settings):
            return
        account_key = cached.account_key or ec.generate_private_key(ec.SECP256R1())
        if cached.account_key is None:  # kept before anything is asked, so that the account is not lost
            _write_cache(settings.cachefile, account_key, None, b"")
        try:
            _order(settings, account_key)
        except (acme_errors.Error, josepy.errors.Error, requests.RequestException) as error:
            raise AcmeError(f"cannot get a certificate for {', '.join(settings.hosts)} from {settings.directory_url}: {_reason(error)}") from None


def _reason(error: Exception) -> str:
    if isinstance(error, messages.Error):
        return error.detail or error.typ or str(error)
    if isinstance(error, requests.ConnectionError):
        return "cannot connect"
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _order(settings: AcmeSettings, account_key: ec.EllipticCurvePrivateKey) -> None:
    network = client.ClientNetwork(jwk.JWKEC(key=account_key), alg=jwa.ES256, user_agent=f"dockyard/{__version__}")
    acme = client.ClientV2(client.ClientV2.get_directory(settings.directory_url, network), network)
    registration = messages.NewRegistration.from_data(email=settings.email or None, terms_of_service_agreed=True)
    try:
        acme.new_account(registration)
    except acme_errors.ConflictError as existing:  # this key's account exists: use it
        network.account = messages.RegistrationResource(uri=existing.location, body=messages.Registration())
    certificate_key = certificates.generate_key()
    key_pem = certificate_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    pending = acme.new_order(crypto_util.make_csr(key_pem, list(settings.hosts)))
    board = ChallengeBoard(settings.challenges)
    answered: list[Callable[[], None]] = []  # what to take back once the order is over
    kind = TLSALPN01 if settings.challenge == TLS_ALPN_01 else challenges.HTTP01
    try:
        for authorization in pending.authorizations:
            if authorization.body.status == messages.STATUS_VALID:
                continue  # the server reused an authorization it had already validated
            host = authorization.body.identifier.value
            challenge = next((c for c in authorization.body.challenges if isinstance(c.chall, kind)), None)
            if challenge is None:
                raise AcmeError(f"the ACME server offers no {settings.challenge} challenge for {host}")
            response, validation = challenge.chall.response_and_validation(network.key)
            if isinstance(challenge.chall, TLSALPN01):
                board.put_certificate(host, alpn_challenge.challenge_certificate(host, validation))
                answered.append(functools.partial(board.remove_certificate, host))
            else:
                board.put(challenge.chall.encode("token"), validation)
                answered.append(functools.partial(board.remove, challenge.chall.encode("token")))
            acme.answer_challenge(challenge, response)
        finished = acme.poll_and_finalize(pending, datetime.datetime.now() + ORDER_TIMEOUT)
    finally:
        for take_back in answered:
            take_back()
    _write_cache(settings.cachefile, account_key, certificate_key, finished.fullchain_pem.encode())
    leaf = x509.load_pem_x509_certificate(finished.fullchain_pem.encode())
    log.info("certificate for %s from %s, valid until %s", ", ".join(settings.hosts), settings.directory_url, f"{leaf.not_valid_after_utc:%Y-%m-%d %H:%M:%S}")


def prepare(settings: AcmeSettings) -> list[str]:
    """At start: order a certificate unless a usable one is cached. Returns warnings.
    Raises :class:`CertificateError` when there is no certificate to serve at all."""
    cached = read_cache(settings.cachefile)
    if _usable(cached, settings):
        return []
    try:
        order(settings)
    except AcmeError as error:
        leaf = read_cache(settings.cachefile).leaf
        if leaf is None or leaf.not_valid_after_utc <= _now():
            raise CertificateError(f"http.tls.letsencrypt: {error}") from None
        until = f"{leaf.not_valid_after_utc:%Y-%m-%d}"
        return [f"http.tls.letsencrypt: {error}; serving the cached certificate (valid until {until}) and trying again in the background"]
    return []


def _seconds_until(when: datetime.datetime) -> float:
    return max((when - _now()).total_seconds(), 0.0)


async def keep_renewed(context: ssl.SSLContext, settings: AcmeSettings) -> None:
    """In a long-running server: renew when due and load the new certificate into ``context``
    (new connections get it; no restart). Several workers may run this: the lock makes
    one order, the others load what it wrote."""
    while True:
        leaf = (await asyncio.to_thread(read_cache, settings.cachefile)).leaf
        if leaf is not None:
            await asyncio.sleep(min(_seconds_until(renewal_time(leaf)), RENEW_CHECK_SECONDS))
        try:
            await asyncio.to_thread(order, settings)
            context.load_cert_chain(settings.cachefile)
        except (AcmeError, CertificateError, OSError, ssl.SSLError) as error:
            leaf = (await asyncio.to_thread(read_cache, settings.cachefile)).leaf
            left = _seconds_until(leaf.not_valid_after_utc) if leaf is not None else 0.0
            retry = min(RETRY_SECONDS, max(left / 10, 1.0))
            log.error("could not renew the certificate: %s; trying again in %.0fs", error, retry)
            await asyncio.sleep(retry)


class _ChallengeHandler(http.server.BaseHTTPRequestHandler):
    server: _ChallengeServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        answer = self.server.board.answer(path.removeprefix(CHALLENGE_PATH)) if path.startswith(CHALLENGE_PATH) else None
        self.send_response(200 if answer is not None else 404)
        body = answer if answer is not None else b"not found\n"
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("http-01: %s", format % args)


class _ChallengeServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sock: socket.socket, board: ChallengeBoard) -> None:
        super().__init__(sock.getsockname()[:2], _ChallengeHandler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.board = board


class Http01Responder:
    """Answers ``GET /.well-known/acme-challenge/TOKEN`` on a bound socket, in a thread of
    the process that starts the server (in a blocking call, apart from the event loop)."""

    def __init__(self, sock: socket.socket, settings: AcmeSettings) -> None:
        self._server = _ChallengeServer(sock, ChallengeBoard(settings.challenges))
        self._thread = threading.Thread(target=self._server.serve_forever, name="acme-http-01", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.socket.getsockname()[1])

    def start(self) -> Http01Responder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
