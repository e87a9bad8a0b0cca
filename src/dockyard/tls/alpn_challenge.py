"""TLS-ALPN-01 (RFC 8737) on the serving port, as registry:2's ``http.tls.letsencrypt`` does.

The ACME server connects to port 443 with a ClientHello that names the host (SNI) and
offers one ALPN protocol, ``acme-tls/1``; it expects a self-signed certificate for that
name with a critical acmeIdentifier extension holding the SHA-256 of the key
authorization, ``acme-tls/1`` negotiated, and nothing more.

Python's ``ssl`` picks the certificate in ``sni_callback``, before ALPN is known, and its
ALPN selection can only decline a protocol, never fail the handshake. Switching to a
challenge context by name in ``sni_callback`` would therefore hand the challenge
certificate to every ordinary client of that name while a challenge is pending (a
renewal while serving breaks their handshakes). So the choice is made before OpenSSL
sees the connection: :class:`ChallengeListener` accepts, peeks at the ClientHello
(``MSG_PEEK``: the bytes stay for OpenSSL; at most :data:`MAX_PEEK` bytes, within the
header timeout), and only a ClientHello offering exactly ``acme-tls/1`` for a name with
a pending challenge gets the challenge context; anything else, unparsable bytes
included, goes to the serving context as it would without this listener. It is used
only when certificates come from an ACME server without ``dockyard.acme_http_addr``.

Pending challenges are files (key and certificate, PEM) written by whichever process
orders, so that every worker accepting on the shared socket can answer.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import logging
import pathlib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from dockyard.tls import certificates

log = logging.getLogger("dockyard.tls.alpn")

ACME_TLS_1 = b"acme-tls/1"
ACME_IDENTIFIER = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")  # RFC 8737 section 6.1
MAX_PEEK = 32 * 1024  # a longer ClientHello is not an ACME server's: it goes to the serving context unread
_RECORD_HEADER = 5
_HANDSHAKE_RECORD, _CLIENT_HELLO = 22, 1
_SERVER_NAME_EXTENSION, _ALPN_EXTENSION = 0, 16

ChallengeFile = Callable[[str], pathlib.Path | None]  # a host name's pending challenge file, None when it cannot have one
ProtocolFactory = Callable[[], asyncio.BaseProtocol]
T = TypeVar("T")


def challenge_certificate(host: str, key_authorization: str) -> bytes:
    """A fresh key and the self-signed certificate RFC 8737 section 3 asks for, as PEM."""
    key = certificates.generate_key()
    digest = hashlib.sha256(key_authorization.encode()).digest()
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        # The value is the DER encoding of an OCTET STRING holding the digest.
        .add_extension(x509.UnrecognizedExtension(ACME_IDENTIFIER, bytes([0x04, len(digest)]) + digest), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()) + certificate.public_bytes(
        serialization.Encoding.PEM
    )


@dataclass(frozen=True)
class ClientHello:
    server_name: str | None
    protocols: tuple[bytes, ...]  # offered with ALPN, in the client's order

    @property
    def wants_challenge(self) -> bool:
        """An ACME server's validation: ``acme-tls/1`` and nothing else (RFC 8737 section 3)."""
        return self.protocols == (ACME_TLS_1,)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    @property
    def done(self) -> bool:
        return self.position >= len(self.data)

    def take(self, size: int) -> bytes:
        if self.position + size > len(self.data):
            raise ValueError("truncated")
        self.position += size
        return self.data[self.position - size : self.position]

    def vector(self, length_size: int) -> _Reader:
        return _Reader(self.take(int.from_bytes(self.take(length_size))))


def parse_client_hello(data: bytes) -> ClientHello | int | None:
    """The ClientHello that ``data`` begins with; if ``data`` is only its start, how many
    bytes it takes to go on; None when ``data`` does not begin with a ClientHello."""
    handshake = b""
    offset = 0
    while True:
        if len(data) < offset + _RECORD_HEADER:
            return offset + _RECORD_HEADER
        length = int.from_bytes(data[offset + 3 : offset + 5])
        if data[offset] != _HANDSHAKE_RECORD or data[offset + 1] != 3 or not 0 < length <= 2**14:
            return None
        end = offset + _RECORD_HEADER + length
        if len(data) < end:
            return end
        handshake += data[offset + _RECORD_HEADER : end]
        offset = end
        if handshake[0] != _CLIENT_HELLO:
            return None
        if len(handshake) >= 4 and len(handshake) >= 4 + (size := int.from_bytes(handshake[1:4])):
            try:
                return _client_hello(_Reader(handshake[4 : 4 + size]))
            except (ValueError, UnicodeDecodeError):
                return None


def _client_hello(body: _Reader) -> ClientHello:
    body.take(2 + 32)  # legacy version, random
    body.vector(1)  # session id
    body.vector(2)  # cipher suites
    body.vector(1)  # compression methods
    server_name: str | None = None
    protocols: tuple[bytes, ...] = ()
    extensions = body.vector(2) if not body.done else _Reader(b"")
    while not extensions.done:
        kind = int.from_bytes(extensions.take(2))
        extension = extensions.vector(2)
        if kind == _SERVER_NAME_EXTENSION:
            names = extension.vector(2)
            while not names.done:
                name_type, name = names.take(1), names.vector(2)
                if name_type == b"\x00":  # host_name
                    server_name = name.data.decode("ascii").lower()
        elif kind == _ALPN_EXTENSION:
            offered = extension.vector(2)
            found = []
            while not offered.done:
                found.append(offered.vector(1).data)
            protocols = tuple(found)
    return ClientHello(server_name, protocols)


def _settle(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


async def _readable(loop: asyncio.AbstractEventLoop, connection: socket.socket) -> None:
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_reader(connection.fileno(), _settle, ready)
    try:
        await ready
    finally:
        loop.remove_reader(connection.fileno())


async def peek_client_hello(connection: socket.socket) -> ClientHello | None:
    """The connection's ClientHello, left unread; None when its first bytes are not one
    (or are one longer than :data:`MAX_PEEK`). Raises ``ConnectionError`` when the peer
    closes before sending anything."""
    loop = asyncio.get_running_loop()
    needed, seen = _RECORD_HEADER, 0
    try:
        while True:
            # Readable only once ``needed`` bytes are queued (or at end of file): no spinning on a partial record.
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, needed)
            await _readable(loop, connection)
            data = connection.recv(MAX_PEEK, socket.MSG_PEEK)
            if not data:
                raise ConnectionError("closed before its ClientHello")
            found = parse_client_hello(data)
            if not isinstance(found, int):
                return found
            if found > MAX_PEEK or len(data) <= seen:  # too long, or the peer stopped sending mid-hello
                return None
            needed, seen = found, len(data)
    finally:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)


def _challenge_context(path: pathlib.Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 8737 section 4
    context.set_alpn_protocols([ACME_TLS_1.decode()])
    context.load_cert_chain(path)
    return context


class _Answered(asyncio.Protocol):
    """The handshake was the answer: nothing more is exchanged (RFC 8737 section 3)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class ChallengeListener:
    """Accepts on ``sock``: TLS-ALPN-01 validations get their challenge certificate, every
    other connection ``serving`` (a protocol factory and the serving context), as
    ``loop.create_server`` would give it; with ``serving`` None they are closed.
    A connection that sends no ClientHello within ``hello_timeout`` seconds is closed."""

    def __init__(
        self, sock: socket.socket, challenge_file: ChallengeFile, serving: tuple[ProtocolFactory, ssl.SSLContext] | None, hello_timeout: float,
    ) -> None:
        self.sock = sock
        self.challenge_file = challenge_file
        self.serving = serving
        self.hello_timeout = hello_timeout
        self._accepting: asyncio.Task[None] | None = None
        self._routing: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self.sock.setblocking(False)
        self._accepting = asyncio.ensure_future(self._accept())

    def close(self) -> None:
        """Stop accepting and drop connections still being routed; the ones handed over go on."""
        if self._accepting is not None:
            self._accepting.cancel()
        for task in self._routing:
            task.cancel()

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                connection, _ = await loop.sock_accept(self.sock)
            except OSError as error:  # out of file descriptors and the like: as asyncio's own server, wait and go on
                log.warning("cannot accept a connection: %s", error)
                await asyncio.sleep(1.0)
                continue
            task = asyncio.ensure_future(self._route(connection))
            self._routing.add(task)
            task.add_done_callback(self._routing.discard)

    async def _route(self, connection: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        connection.setblocking(False)
        handed_over = False
        try:
            async with asyncio.timeout(self.hello_timeout):
                hello = await peek_client_hello(connection)
            if hello is not None and hello.wants_challenge:
                context = await self._challenge(hello.server_name)
                if context is not None:
                    handed_over = True
                    await loop.connect_accepted_socket(_Answered, sock=connection, ssl=context)
                    log.info("answered a tls-alpn-01 challenge for %s", hello.server_name)
            elif self.serving is not None:
                handed_over = True
                await loop.connect_accepted_socket(self.serving[0], sock=connection, ssl=self.serving[1])
        except OSError as error:  # the handshake failed, the peer went or said nothing in time: its own business
            log.debug("connection not served: %r", error)
        finally:
            if not handed_over:
                connection.close()

    async def _challenge(self, host: str | None) -> ssl.SSLContext | None:
        path = self.challenge_file(host) if host else None
        if path is None:
            return None
        try:
            return await asyncio.to_thread(_challenge_context, path)
        except FileNotFoundError:  # none pending for this name
            return None


def answer_while(sock: socket.socket, challenge_file: ChallengeFile, hello_timeout: float, work: Callable[[], T]) -> T:
    """Run the blocking ``work`` (the order at start) in a thread while answering TLS-ALPN-01
    on ``sock``; other connections are closed: there is no certificate for them yet."""

    async def answering() -> T:
        listener = ChallengeListener(sock, challenge_file, None, hello_timeout)
        listener.start()
        try:
            return await asyncio.to_thread(work)
        finally:
            listener.close()

    return asyncio.run(answering())
