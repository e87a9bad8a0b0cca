"""Shared pieces of the TLS tests: a CA made with the library, servers started as real
processes, plain Python TLS servers and clients, and ``dockyard`` run as a command.

Everything listens on 127.0.0.1 with an ephemeral port and lives in pytest's
temporary folders. A missing tool (openssl, curl, ...) skips locally and fails in CI,
through the same helper as the client tests.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import pathlib
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from dockyard.tls import certificates
from dockyard.tls.certificates import CertificateAuthority
from tests.support.processes import loopback_listener
from tests.support.server import DockyardProcess

COMMAND_TIMEOUT = 120


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def make_ca(directory: pathlib.Path, key_type: str = "ecdsa-p256") -> CertificateAuthority:
    """A CA written as ``ca.crt``/``ca.key`` in ``directory`` (as ``certs ca`` would)."""
    key = certificates.generate_key(key_type)
    ca = CertificateAuthority(certificates.create_ca(key), key)
    certificates.write_key(directory / "ca.key", key)
    certificates.write_certificates(directory / "ca.crt", ca.certificate)
    return ca


def issue_files(
    ca: CertificateAuthority,
    directory: pathlib.Path,
    stem: str,
    names: list[str],
    **options,
) -> tuple[pathlib.Path, pathlib.Path]:
    """A leaf certificate (followed by its CA) and its key, written as ``STEM.crt``/``STEM.key``."""
    key = certificates.generate_key(options.pop("key_type", "ecdsa-p256"))
    certificate = ca.issue(key, names, **options)
    certificates.write_key(directory / f"{stem}.key", key)
    certificates.write_certificates(directory / f"{stem}.crt", certificate, ca.certificate)
    return directory / f"{stem}.crt", directory / f"{stem}.key"


@pytest.fixture
def ca(tmp_path: pathlib.Path) -> CertificateAuthority:
    """A CA of our own in ``tmp_path/ca`` (not the one a server makes)."""
    directory = tmp_path / "ca"
    directory.mkdir()
    return make_ca(directory)


@pytest.fixture
def ca_dir(tmp_path: pathlib.Path, ca: CertificateAuthority) -> pathlib.Path:
    return tmp_path / "ca"


class TlsServer(DockyardProcess):
    """``dockyard serve`` over TLS, trusting ``trust`` (default: the generated CA) and
    presenting ``client_cert``/``client_key`` when the server asks for one.

    ``trust=False`` checks nothing, to wait for a server whose certificate is bad on purpose.
    """

    def __init__(
        self,
        root: pathlib.Path,
        *extra: str,
        trust: pathlib.Path | bool | None = None,
        client_cert: tuple[pathlib.Path, pathlib.Path] | None = None,
    ) -> None:
        super().__init__(root, *extra, tls=True)
        self.trust = trust
        self.client_cert = client_cert

    @property
    def verify(self) -> ssl.SSLContext:
        if self.trust is False:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            cafile = self.trust if isinstance(self.trust, pathlib.Path) else self.tls_dir / "ca.crt"
            context = ssl.create_default_context(cafile=str(cafile))
        if self.client_cert is not None:
            context.load_cert_chain(*map(str, self.client_cert))
        return context

    def output(self) -> str:
        """What the server printed since its last start."""
        return self._tail()


StartServer = Callable[..., TlsServer]


@pytest.fixture
def start_server(tmp_path: pathlib.Path) -> Iterator[StartServer]:
    """Start TLS servers on ephemeral ports, or ``port`` (``root`` defaults to ``tmp_path/root``); all are stopped after the test."""
    started: list[TlsServer] = []

    def start(*extra: str, root: pathlib.Path | None = None, port: int = 0, **options) -> TlsServer:
        server = TlsServer(root or tmp_path / "root", *extra, **options)
        server.port = port  # 0: an ephemeral one
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            server.stop()


def run_dockyard(*args: str | os.PathLike[str], env: dict[str, str] | None = None, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run the ``dockyard`` command line as a separate process."""
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """A failed command: non-zero exit, one ``Error:`` line naming ``expected``, no traceback."""
    assert result.returncode != 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    for word in expected:
        assert word.lower() in errors[0].lower(), result.stderr
    return errors[0]


def serve_and_fail(tmp_path: pathlib.Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``dockyard serve`` that must refuse to start; it is killed if it starts after all."""
    command = [sys.executable, "-m", "dockyard", "serve", "--addr", "127.0.0.1:0", "--root", str(tmp_path / "failing-root"), *extra]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    try:
        stdout, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        pytest.fail(f"serve started although it should have refused:\n{stderr}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def client_context(
    cafile: pathlib.Path | None = None,
    *,
    cert: tuple[pathlib.Path, pathlib.Path] | None = None,
    version: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    """A verifying client context (hostname checked) trusting ``cafile``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile is not None:
        context.load_verify_locations(cafile=str(cafile))
    if cert is not None:
        context.load_cert_chain(*map(str, cert))
    if version is not None:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer old protocols at all
        context.minimum_version = version
        context.maximum_version = version
    return context


def https_get(port: int, context: ssl.SSLContext, path: str = "/v2/", host: str = "127.0.0.1") -> tuple[int, bytes, str]:
    """One HTTPS GET over a fresh connection: status, body and the protocol version.

    Raises ``ssl.SSLError`` (or ``OSError``) when the handshake or the request fails:
    with TLS 1.3 a missing client certificate is only noticed on the first read.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            version = tls.version() or ""
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    if not data:
        raise ConnectionError("the server closed the connection without answering")
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body, version


def peer_certificate(port: int) -> bytes:
    """The DER certificate the server presents (not verified)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return tls.getpeercert(binary_form=True)


@contextlib.contextmanager
def plain_tls_server(context: ssl.SSLContext) -> Iterator[int]:
    """A minimal HTTPS server in a thread (not Dockyard): for certificates or protocols
    that ``dockyard serve`` refuses to use. Yields its port; answers 200 to anything."""
    def answer(connection: socket.socket) -> None:
        connection.settimeout(5)
        try:
            with context.wrap_socket(connection, server_side=True) as tls:
                tls.recv(65536)
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        except (OSError, ssl.SSLError):
            connection.close()

    with loopback_listener(answer) as port:
        yield port


def server_context(cert: pathlib.Path, key: pathlib.Path, minimum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if minimum is not None:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.minimum_version = minimum
    context.load_cert_chain(str(cert), str(key))
    return context
