"""``http.tls.letsencrypt``: certificates from an ACME server, against Let's Encrypt's own
test server, ``pebble`` (on 127.0.0.1, trusted through REQUESTS_CA_BUNDLE). Mostly with
PEBBLE_VA_ALWAYS_VALID, so that it does not call back; TLS-ALPN-01 is also validated for
real, pebble's VA pointed at the serving port. The HTTP-01 answering is checked with the
``acme`` library's own verifier, the TLS-ALPN-01 answering with a client offering
``acme-tls/1`` as an ACME server does."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import pathlib
import socket
import ssl
import stat
import subprocess
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from acme import challenges
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from josepy import jwk

from dockyard.address import Address
from dockyard.server import bind
from dockyard.tls import acme, acme_settings, alpn_challenge, certificates, inspect
from dockyard.tls.certificates import CertificateAuthority
from tests.support.processes import free_port, terminate
from tests.support.tools import require_tool
from tests.tls.conftest import (
    StartServer,
    TlsServer,
    assert_one_line_error,
    client_context,
    https_get,
    issue_files,
    make_ca,
    peer_certificate,
    serve_and_fail,
)

HOSTS = ["localhost"]


class Pebble:
    """A running ``pebble`` on 127.0.0.1 whose certificates last ``validity`` seconds. With
    ``tls_alpn_port``, it validates challenges for real, TLS-ALPN-01 on that port; without,
    it takes every answer as valid."""

    def __init__(self, directory: pathlib.Path, validity: int, tls_alpn_port: int | None = None) -> None:
        self.directory = directory
        self.validity = validity
        self.tls_alpn_port = tls_alpn_port
        self.process: subprocess.Popen[bytes] | None = None
        self.port = self.management_port = 0
        self.ca = self.directory / "ca.crt"  # what pebble's own HTTPS is signed by

    @property
    def trust(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def start(self) -> Pebble:
        self.directory.mkdir(parents=True, exist_ok=True)
        certificate, key = issue_files(make_ca(self.directory), self.directory, "pebble", ["127.0.0.1", "localhost"])
        self.port, self.management_port = free_port(), free_port()
        config = self.directory / "pebble.json"
        config.write_text(json.dumps({"pebble": {
            "listenAddress": f"127.0.0.1:{self.port}", "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": str(certificate), "privateKey": str(key), "httpPort": free_port(), "tlsPort": self.tls_alpn_port or free_port(),
            "ocspResponderURL": "", "externalAccountBindingRequired": False, "certificateValidityPeriod": self.validity,
        }}))
        environment = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
        if self.tls_alpn_port is None:
            environment["PEBBLE_VA_ALWAYS_VALID"] = "1"
        with open(self.directory / "pebble.log", "ab") as log:
            self.process = subprocess.Popen(["pebble", "-config", str(config)], stdout=log, stderr=log, env=environment)
        for _ in range(200):
            try:
                httpx.get(self.directory_url, verify=self.trust, timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"pebble did not start:\n{(self.directory / 'pebble.log').read_text()}")

    def root(self) -> pathlib.Path:
        """Pebble's root CA (made anew at each start), which issued the chains it serves."""
        path = self.directory / "root.pem"
        path.write_bytes(httpx.get(f"https://127.0.0.1:{self.management_port}/roots/0", verify=self.trust).content)
        return path

    def stop(self) -> None:
        terminate(self.process)


PebbleFactory = Callable[..., Pebble]


@pytest.fixture
def pebble_factory(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PebbleFactory]:
    require_tool("pebble")
    started: list[Pebble] = []

    def start(validity: int = 90 * 86400, tls_alpn_port: int | None = None) -> Pebble:
        server = Pebble(tmp_path / "pebble", validity, tls_alpn_port).start()
        started.append(server)
        # The servers started after this trust pebble's HTTPS (the acme library uses requests).
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca))
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def pebble(pebble_factory: PebbleFactory) -> Pebble:
    return pebble_factory(90 * 86400)


def write_config(path: pathlib.Path, letsencrypt: dict[str, object], **dockyard: object) -> pathlib.Path:
    """HTTP-01 on an ephemeral port unless ``acme_http_addr=None``: then registry:2's own
    file, TLS-ALPN-01 on the serving port."""
    own = {"acme_http_addr": "127.0.0.1:0", **dockyard}
    config = {
        "version": "0.1",
        "storage": {"filesystem": {"rootdirectory": str(path.parent / "root")}},
        "http": {"addr": "127.0.0.1:0", "tls": {"letsencrypt": letsencrypt}},
        "dockyard": {key: value for key, value in own.items() if value is not None},
    }
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def letsencrypt(tmp_path: pathlib.Path, directory_url: str) -> dict[str, object]:
    return {"cachefile": str(tmp_path / "acme" / "cache.pem"), "email": "admin@example.com", "hosts": HOSTS, "directoryurl": directory_url}


def leaf_of(path: pathlib.Path) -> x509.Certificate:
    return certificates.load_certificates(path)[0]


def der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


# --- answering challenges, and when to renew ---------------------------------------


def test_http01_responder_answers_what_the_acme_library_verifies(tmp_path: pathlib.Path) -> None:
    settings = acme_settings.AcmeSettings(tmp_path / "cache.pem", tuple(HOSTS))
    account = jwk.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    challenge = challenges.HTTP01(token=os.urandom(16))
    response, validation = challenge.response_and_validation(account)
    acme.ChallengeBoard(settings.challenges).put(challenge.encode("token"), validation)
    responder = acme.Http01Responder(bind(Address.parse("127.0.0.1:0")), settings).start()
    try:
        assert response.simple_verify(challenge, "127.0.0.1", account.public_key(), port=responder.port)
        base = f"http://127.0.0.1:{responder.port}{acme.CHALLENGE_PATH}"
        assert httpx.get(base + "unknown-token").status_code == 404
        assert httpx.get(base + "..%2F..%2Fcache.pem").status_code == 404
        assert httpx.get(f"http://127.0.0.1:{responder.port}/v2/").status_code == 404
    finally:
        responder.stop()
    with pytest.raises(acme.AcmeError):
        acme.ChallengeBoard(settings.challenges).put("../escape", "x")


@pytest.mark.parametrize(("days", "renew_before"), [(90, datetime.timedelta(days=30)), (6, datetime.timedelta(days=2)), (365, datetime.timedelta(days=30))])
def test_renewal_is_due_30_days_or_a_third_of_the_lifetime_before_expiry(ca: CertificateAuthority, days: int, renew_before: datetime.timedelta) -> None:
    leaf = ca.issue(certificates.generate_key(), HOSTS, days=days)
    assert acme.renewal_time(leaf) == leaf.not_valid_after_utc - renew_before


# --- refused at start --------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c["http"]["tls"]["letsencrypt"].pop("hosts"), "http.tls.letsencrypt.hosts: missing"),
        (lambda c: c["http"]["tls"]["letsencrypt"].pop("cachefile"), "http.tls.letsencrypt.cachefile: missing"),
        (lambda c: (c["dockyard"].pop("acme_http_addr"), c["http"].update(net="unix")), "no ACME server reaches on a unix socket"),
        (lambda c: c["dockyard"].update(insecure_http=True), "dockyard.insecure_http: serves no TLS"),
        (lambda c: c["http"]["tls"].update(certificate="/c.pem", key="/k.pem"), "set with http.tls.certificate"),
        (lambda c: c["http"]["tls"]["letsencrypt"].update(directoryurl="http://acme.example/dir"), "directoryurl: expected an https:// URL"),
    ],
)
def test_settings_that_cannot_work_refuse_the_start(tmp_path: pathlib.Path, change: Callable[[dict[str, object]], object], expected: str) -> None:
    path = write_config(tmp_path / "config.yml", letsencrypt(tmp_path, "https://127.0.0.1:9/dir"))
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))
    assert_one_line_error(serve_and_fail(tmp_path, "--config", str(path)), expected)


@pytest.mark.parametrize("acme_http_addr", ["127.0.0.1:0", None])  # HTTP-01, TLS-ALPN-01 (ordered once the serving port listens)
def test_unreachable_acme_server_and_nothing_cached_refuses_the_start(tmp_path: pathlib.Path, acme_http_addr: str | None) -> None:
    config = write_config(tmp_path / "config.yml", letsencrypt(tmp_path, f"https://127.0.0.1:{free_port()}/dir"), acme_http_addr=acme_http_addr)
    result = serve_and_fail(tmp_path, "--config", str(config))
    assert_one_line_error(result, "http.tls.letsencrypt", "cannot get a certificate for localhost", "cannot connect")
    assert "plain HTTP" not in result.stderr


def test_registry2_cache_directory_is_refused(tmp_path: pathlib.Path) -> None:
    settings = letsencrypt(tmp_path, f"https://127.0.0.1:{free_port()}/dir")
    pathlib.Path(str(settings["cachefile"])).mkdir(parents=True)  # registry:2's autocert keeps a directory there
    result = serve_and_fail(tmp_path, "--config", str(write_config(tmp_path / "config.yml", settings)))
    assert_one_line_error(result, "is a directory (registry:2's cache)")


# --- against pebble ----------------------------------------------------------------


def start_acme_server(
    tmp_path: pathlib.Path, start_server: StartServer, settings: dict[str, object], *extra: str, port: int = 0, **dockyard: object,
) -> TlsServer:
    config = write_config(tmp_path / "config.yml", settings, **dockyard)
    return start_server("--config", str(config), *extra, trust=False, port=port)


def test_serves_a_certificate_from_the_acme_server(tmp_path: pathlib.Path, pebble: Pebble, start_server: StartServer) -> None:
    settings = letsencrypt(tmp_path, pebble.directory_url)
    server = start_acme_server(tmp_path, start_server, settings)
    cachefile = pathlib.Path(str(settings["cachefile"]))
    assert stat.S_IMODE(cachefile.stat().st_mode) == 0o600
    leaf = leaf_of(cachefile)
    assert inspect.subject_alternative_names(leaf) == HOSTS
    assert peer_certificate(server.port) == der(leaf)
    # A client that trusts pebble's root only, checking the name, gets an answer.
    status, _, _ = https_get(server.port, client_context(pebble.root()), host="localhost")
    assert status in (200, 401)
    assert f"certificate for localhost from {pebble.directory_url}" in server.output()

    # A restart takes the cached certificate: no new order.
    server.restart()
    assert peer_certificate(server.port) == der(leaf) == der(leaf_of(cachefile))


def test_cached_certificate_is_served_while_the_acme_server_is_unreachable(tmp_path: pathlib.Path, pebble: Pebble, start_server: StartServer) -> None:
    settings = letsencrypt(tmp_path, pebble.directory_url)
    server = start_acme_server(tmp_path, start_server, settings)
    leaf = leaf_of(pathlib.Path(str(settings["cachefile"])))
    server.stop()
    # Another name is asked for: the cached certificate lacks it, so an order is due and fails.
    pebble.stop()
    settings["hosts"] = [*HOSTS, "registry.localhost"]
    write_config(tmp_path / "config.yml", settings)
    server.start()
    assert peer_certificate(server.port) == der(leaf)
    assert "serving the cached certificate" in server.output()


@pytest.mark.parametrize("challenge", [acme_settings.HTTP_01, acme_settings.TLS_ALPN_01])
def test_renews_before_expiry_and_serves_the_new_certificate_without_a_restart(
    tmp_path: pathlib.Path, pebble_factory: PebbleFactory, start_server: StartServer, challenge: str,
) -> None:
    # tls-alpn-01 is validated for real: a worker, not the process starting, answers the renewal's challenge.
    port = free_port() if challenge == acme_settings.TLS_ALPN_01 else 0
    pebble = pebble_factory(30, tls_alpn_port=port or None)  # renewed when a third is left: 20 seconds after issue
    settings = letsencrypt(tmp_path, pebble.directory_url)
    if port:
        server = start_acme_server(tmp_path, start_server, settings, port=port, workers=2, acme_http_addr=None)
    else:
        server = start_acme_server(tmp_path, start_server, settings, workers=2)
    assert server.process is not None
    pid = server.process.pid
    first = leaf_of(pathlib.Path(str(settings["cachefile"])))
    served = {peer_certificate(server.port)}
    assert served == {der(first)}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and der(first) in served:
        time.sleep(1)
        served = {peer_certificate(server.port) for _ in range(4)}  # both workers
    renewed = leaf_of(pathlib.Path(str(settings["cachefile"])))
    assert renewed.serial_number != first.serial_number
    assert der(renewed) in served and der(first) not in served, server.output()
    assert server.process.pid == pid and server.process.poll() is None
    status, _, _ = https_get(server.port, client_context(pebble.root()), host="localhost")
    assert status in (200, 401)


# --- TLS-ALPN-01 on the serving port (registry:2's way) -----------------------------


def handshake(port: int, host: str, protocols: list[str] | None) -> tuple[x509.Certificate, str | None]:
    """The certificate served to a client naming ``host`` and offering ``protocols`` with ALPN,
    and the protocol negotiated. Raises ``OSError`` when the server closes instead."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if protocols is not None:
        context.set_alpn_protocols(protocols)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)), tls.selected_alpn_protocol()


def split_handshake(port: int, host: str, protocols: list[str], split: int) -> tuple[x509.Certificate, str | None]:
    """:func:`handshake`, its ClientHello sent in two parts, the second a moment later."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(protocols)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=host)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with contextlib.suppress(ssl.SSLWantReadError):
            tls.do_handshake()
        hello = outgoing.read()
        raw.sendall(hello[:split])
        time.sleep(0.2)
        raw.sendall(hello[split:])
        while True:
            if not (received := raw.recv(65536)):
                raise ConnectionError("closed during the handshake")
            incoming.write(received)
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                raw.sendall(outgoing.read())
        raw.sendall(outgoing.read())
    return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)), tls.selected_alpn_protocol()


def test_registry2_config_without_acme_http_addr_gets_a_certificate(tmp_path: pathlib.Path, pebble: Pebble, start_server: StartServer) -> None:
    settings = letsencrypt(tmp_path, pebble.directory_url)
    server = start_acme_server(tmp_path, start_server, settings, acme_http_addr=None)
    leaf = leaf_of(pathlib.Path(str(settings["cachefile"])))
    assert inspect.subject_alternative_names(leaf) == HOSTS
    assert peer_certificate(server.port) == der(leaf)
    status, _, _ = https_get(server.port, client_context(pebble.root()), host="localhost")
    assert status in (200, 401)
    assert "TLS-ALPN-01 challenges answered on this port" in server.output()


def test_tls_alpn01_validated_by_the_acme_server_on_the_serving_port(tmp_path: pathlib.Path, pebble_factory: PebbleFactory, start_server: StartServer) -> None:
    port = free_port()
    pebble = pebble_factory(tls_alpn_port=port)  # no PEBBLE_VA_ALWAYS_VALID: its VA connects to the serving port
    settings = letsencrypt(tmp_path, pebble.directory_url)
    server = start_acme_server(tmp_path, start_server, settings, port=port, acme_http_addr=None)
    leaf = leaf_of(pathlib.Path(str(settings["cachefile"])))
    assert peer_certificate(server.port) == der(leaf)
    status, _, _ = https_get(server.port, client_context(pebble.root()), host="localhost")
    assert status in (200, 401)
    assert "answered a tls-alpn-01 challenge for localhost" in server.output()


def test_pending_tls_alpn01_challenge_is_answered_to_acme_tls_1_only(tmp_path: pathlib.Path, pebble: Pebble, start_server: StartServer) -> None:
    settings = letsencrypt(tmp_path, pebble.directory_url)
    server = start_acme_server(tmp_path, start_server, settings, workers=2, acme_http_addr=None)
    served = leaf_of(pathlib.Path(str(settings["cachefile"])))
    account = jwk.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    key_authorization = acme.TLSALPN01(token=os.urandom(16)).key_authorization(account)
    board = acme.ChallengeBoard(acme_settings.AcmeSettings(pathlib.Path(str(settings["cachefile"])), tuple(HOSTS)).challenges)
    board.put_certificate("localhost", alpn_challenge.challenge_certificate("localhost", key_authorization))
    for _ in range(6):  # both workers answer
        certificate, protocol = handshake(server.port, "localhost", ["acme-tls/1"])
        assert protocol == "acme-tls/1"
        assert inspect.subject_alternative_names(certificate) == ["localhost"]
        extension = certificate.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31"))
        assert extension.critical
        assert isinstance(extension.value, x509.UnrecognizedExtension)
        assert extension.value.value == b"\x04\x20" + hashlib.sha256(key_authorization.encode()).digest()
        # Meanwhile every other client, of the same name too, gets the real certificate.
        for protocols in (["http/1.1"], None, ["acme-tls/1", "http/1.1"]):
            certificate, protocol = handshake(server.port, "localhost", protocols)
            assert der(certificate) == der(served) and protocol != "acme-tls/1"
        status, _, _ = https_get(server.port, client_context(pebble.root()), host="localhost")
        assert status in (200, 401)
        # No challenge is pending for another name: acme-tls/1 gets nothing.
        with pytest.raises(OSError):
            handshake(server.port, "registry.localhost", ["acme-tls/1"])
    # A ClientHello arriving in parts is waited for: cut in its record header, then in its body.
    for split in (3, 10):
        certificate, protocol = split_handshake(server.port, "localhost", ["acme-tls/1"], split)
        assert protocol == "acme-tls/1" and der(certificate) != der(served)
        assert der(split_handshake(server.port, "localhost", ["http/1.1"], split)[0]) == der(served)
    # What is not TLS goes to OpenSSL as before, which refuses it.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(b"GET /v2/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert not raw.recv(65536).startswith(b"HTTP/")
    board.remove_certificate("localhost")
    with pytest.raises(OSError):
        handshake(server.port, "localhost", ["acme-tls/1"])
    assert der(handshake(server.port, "localhost", None)[0]) == der(served)
