"""Name resolution, TCP, and what the port speaks: TLS (with the certificates it sends) or plain HTTP."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

from cryptography import x509

from dockyard.doctor.results import Check, fail, ok

TIMEOUT = 10.0


@dataclass(frozen=True)
class Target:
    host: str  # as given, without brackets around an IPv6 address
    port: int

    @property
    def host_port(self) -> str:
        """The name clients file it under (``certs.d/HOST:PORT``, ``auths``), as docker writes it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> Target:
        """``HOST``, ``HOST:PORT``, ``[IPV6]:PORT``; without a port, 443 as docker assumes."""
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            port = rest.removeprefix(":") or "443"
        elif text.count(":") == 1:
            host, _, port = text.partition(":")
        else:
            host, port = text, "443"
        if not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in text:
            raise ValueError(f"{text!r}: expected HOST or HOST:PORT, e.g. registry.example.com:5000")
        return cls(host, int(port))


@dataclass(frozen=True)
class Handshake:
    """What a TLS handshake showed; ``chain`` as the server sent it, the leaf first."""

    chain: list[x509.Certificate]
    version: str


def resolve(target: Target) -> Check:
    try:
        found = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        return fail(
            "resolve", f"{target.host} does not resolve: {error}",
            "check the name, the DNS server, or add it to /etc/hosts on this machine",
        )
    addresses = dict.fromkeys(str(entry[4][0]) for entry in found)
    return ok("resolve", f"{target.host} is {', '.join(addresses)}")


def connect(target: Target) -> Check:
    try:
        with socket.create_connection((target.host, target.port), timeout=TIMEOUT):
            pass
    except TimeoutError:
        return fail(
            "tcp", f"{target.host_port}: no answer within {TIMEOUT:.0f} s",
            "a firewall drops the packets, or the address is not the registry's: open the port to this machine",
        )
    except OSError as error:
        return fail(
            "tcp", f"{target.host_port}: {error.strerror or error}",
            f"nothing listens on port {target.port} there: start the registry, or check its address and port (serve --addr)",
        )
    return ok("tcp", f"{target.host_port} accepts connections")


def unverified_context() -> ssl.SSLContext:
    """For what is judged apart (:mod:`dockyard.doctor.certificates`) or carries no secret."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def tls_handshake(host: str, port: int) -> Handshake | str:
    """The certificates the server sends, unverified (judged later, as Go would); or why TLS failed."""
    context = unverified_context()
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT) as raw:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                # Python 3.13 names it SSLSocket.get_unverified_chain; 3.11 and 3.12 have it on the inner object.
                sent = tls.get_unverified_chain() if hasattr(tls, "get_unverified_chain") else tls._sslobj.get_unverified_chain()  # type: ignore[attr-defined]
                version = tls.version() or "TLS"
    except (OSError, ssl.SSLError) as error:
        return str(error)
    try:
        chain = [x509.load_pem_x509_certificate(cert.public_bytes().encode()) for cert in sent or []]
    except ValueError as error:
        return f"the server's certificate cannot be parsed: {error}"
    if not chain:
        return "the server sent no certificate"
    return Handshake(chain, version)


def speaks_plain_http(host: str, port: int) -> bool:
    """Whether the port answers an HTTP request in clear text."""
    request = f"GET /v2/ HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT) as raw:
            raw.sendall(request)
            return raw.recv(16).startswith(b"HTTP/1.")
    except OSError:
        return False
