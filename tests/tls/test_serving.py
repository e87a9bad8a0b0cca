"""``dockyard serve`` over TLS as a real process: the generated CA and server certificate,
given certificates (good, for another host, expired, encrypted, mismatched), protocol
versions, mutual TLS and the published CA. Clients are Python's ssl, httpx and curl."""

from __future__ import annotations

import datetime
import pathlib
import re
import socket
import ssl
import stat
import subprocess

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from dockyard.tls import certificates, inspect
from dockyard.tls.certificates import CertificateAuthority
from tests.support.clients import run
from tests.support.tools import require_tool
from tests.tls.conftest import (
    StartServer,
    assert_one_line_error,
    client_context,
    https_get,
    issue_files,
    now,
    peer_certificate,
    plain_tls_server,
    run_dockyard,
    serve_and_fail,
    server_context,
)

PASSPHRASE = "correct horse battery staple"
PASSPHRASE_ENV = "DOCKYARD_TLS_KEY_PASSPHRASE"


def mode(path: pathlib.Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def der(path: pathlib.Path) -> bytes:
    return certificates.load_certificates(path)[0].public_bytes(serialization.Encoding.DER)


# --- the generated CA and server certificate --------------------------------------


def test_first_start_creates_the_ca_and_reuses_it(start_server: StartServer) -> None:
    server = start_server()
    tls = server.tls_dir
    assert tls == server.root.parent / "root-tls"  # beside the root, not in it
    assert not any(server.root.rglob("*.key"))
    assert mode(tls) == 0o700
    assert mode(tls / "ca.key") == 0o600 and mode(tls / "server.key") == 0o600
    assert mode(tls / "ca.crt") == 0o644 and mode(tls / "server.crt") == 0o644

    ca = certificates.load_certificates(tls / "ca.crt")[0]
    chain = certificates.load_certificates(tls / "server.crt")
    leaf = chain[0]
    assert inspect.is_ca(ca) and not inspect.is_ca(leaf)
    assert chain[1:] == [ca]  # the chain is served with the leaf
    leaf.verify_directly_issued_by(ca)
    names = inspect.subject_alternative_names(leaf)
    for name in ("localhost", "127.0.0.1", "::1", socket.gethostname()):
        assert name in names, names
    assert inspect.problems(leaf) == []
    assert peer_certificate(server.port) == leaf.public_bytes(serialization.Encoding.DER)

    # serve says where the CA is, its fingerprint and how to trust it.
    printed = certificates.fingerprint(ca)
    output = server.output()
    assert f"CA certificate: {tls / 'ca.crt'} (sha256 {printed})" in output
    assert f"dockyard trust 127.0.0.1:{server.port} --fetch --fingerprint {printed.replace(':', '')}" in output

    before = {name: (tls / name).read_bytes() for name in ("ca.crt", "ca.key", "server.crt", "server.key")}
    server.restart()
    after = {name: (tls / name).read_bytes() for name in before}
    assert after == before
    assert f"(sha256 {printed})" in server.output()
    assert peer_certificate(server.port) == leaf.public_bytes(serialization.Encoding.DER)
    assert httpx.get(f"{server.url}/v2/", verify=server.verify).status_code == 200


def test_server_certificate_close_to_expiry_is_reissued_at_start(start_server: StartServer) -> None:
    server = start_server()
    tls = server.tls_dir
    ca_before = (tls / "ca.crt").read_bytes(), (tls / "ca.key").read_bytes()
    server.stop()

    ca = CertificateAuthority.load(tls / "ca.crt", tls / "ca.key")
    soon = now() + datetime.timedelta(days=10)
    issue_files(ca, tls, "server", ["localhost", "127.0.0.1", "::1", socket.gethostname(), socket.getfqdn()], days=10)
    old = certificates.load_certificates(tls / "server.crt")[0]
    assert abs(old.not_valid_after_utc - soon) < datetime.timedelta(hours=1)

    server.start()
    new = certificates.load_certificates(tls / "server.crt")[0]
    assert new != old
    assert new.not_valid_after_utc > now() + datetime.timedelta(days=300)
    new.verify_directly_issued_by(ca.certificate)
    assert ((tls / "ca.crt").read_bytes(), (tls / "ca.key").read_bytes()) == ca_before
    assert mode(tls / "server.key") == 0o600
    assert peer_certificate(server.port) == new.public_bytes(serialization.Encoding.DER)
    assert httpx.get(f"{server.url}/v2/", verify=server.verify).status_code == 200


def test_server_certificate_is_reissued_for_a_new_hostname(start_server: StartServer) -> None:
    server = start_server()
    tls = server.tls_dir
    ca_before = (tls / "ca.crt").read_bytes(), (tls / "ca.key").read_bytes()
    first = certificates.load_certificates(tls / "server.crt")[0]
    assert "registry.example.test" not in inspect.subject_alternative_names(first)

    server.extra += ["--hostname", "registry.example.test", "--hostname", "10.20.30.40"]
    server.restart()
    second = certificates.load_certificates(tls / "server.crt")[0]
    assert second != first
    names = inspect.subject_alternative_names(second)
    assert {"registry.example.test", "10.20.30.40", "localhost", "127.0.0.1", "::1"} <= set(names), names
    assert inspect.matches_host(second, "10.20.30.40")
    assert ((tls / "ca.crt").read_bytes(), (tls / "ca.key").read_bytes()) == ca_before
    # The new name is usable at once (the certificate served is the new one).
    status, _, _ = https_get(server.port, client_context(tls / "ca.crt"), host="registry.example.test")
    assert status == 200

    # Same names again: nothing is reissued.
    server.restart()
    assert certificates.load_certificates(tls / "server.crt")[0] == second


def test_curl_needs_the_ca(start_server: StartServer) -> None:
    curl = require_tool("curl")["curl"]
    server = start_server()
    url = f"https://127.0.0.1:{server.port}/v2/"
    trusted = run([curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", server.tls_dir / "ca.crt", url])
    assert trusted.stdout == "200"
    by_name = run([
        curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", server.tls_dir / "ca.crt",
        "--resolve", f"localhost:{server.port}:127.0.0.1", f"https://localhost:{server.port}/v2/",
    ])
    assert by_name.stdout == "200"
    untrusted = run([curl, "-sS", "-o", "/dev/null", url], check=False)
    assert untrusted.returncode == 60, untrusted  # CURLE_PEER_FAILED_VERIFICATION
    assert "certificate" in untrusted.stderr


def test_published_ca_is_the_ca_file(start_server: StartServer) -> None:
    server = start_server()
    response = httpx.get(f"{server.url}/_dockyard/ca.crt", verify=server.verify)
    assert response.status_code == 200
    assert response.content == (server.tls_dir / "ca.crt").read_bytes()
    assert response.headers["Content-Type"].startswith("application/x-pem-file")
    assert b"PRIVATE" not in response.content
    assert inspect.is_ca(x509.load_pem_x509_certificate(response.content))


def test_insecure_http_serves_plain_http_and_makes_no_keys(start_server: StartServer) -> None:
    server = start_server("--insecure-http", trust=False)
    assert server.url.startswith("http://")
    assert "WARNING: plain HTTP, no TLS" in server.output()
    assert httpx.get(f"{server.url}/v2/").status_code == 200
    assert httpx.get(f"{server.url}/_dockyard/ca.crt").status_code == 404
    assert not server.tls_dir.exists()


def test_unknown_ca_is_refused(start_server: StartServer, ca: CertificateAuthority, ca_dir: pathlib.Path) -> None:
    server = start_server()
    with pytest.raises(ssl.SSLCertVerificationError) as refused:
        https_get(server.port, client_context(ca_dir / "ca.crt"))
    # the chain served ends with the (untrusted) CA itself
    assert refused.value.verify_message in ("self-signed certificate in certificate chain", "unable to get local issuer certificate")
    with pytest.raises(ssl.SSLCertVerificationError):
        https_get(server.port, ssl.create_default_context())  # the system's CAs do not know it either
    assert https_get(server.port, client_context(server.tls_dir / "ca.crt"))[0] == 200


# --- a given certificate ------------------------------------------------------


def test_given_certificate_is_served(start_server: StartServer, ca: CertificateAuthority, ca_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    cert, key = issue_files(ca, tmp_path, "given", ["registry.example.test", "127.0.0.1"], key_type="rsa-2048")
    server = start_server("--tls-cert", cert, "--tls-key", key, trust=ca_dir / "ca.crt")
    assert peer_certificate(server.port) == der(cert)
    assert https_get(server.port, client_context(ca_dir / "ca.crt"))[0] == 200
    assert "WARNING" not in server.output()
    assert not (server.tls_dir / "ca.key").exists()  # nothing generated


def test_certificate_for_another_host_is_refused_by_clients(
    start_server: StartServer, ca: CertificateAuthority, ca_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    cert, key = issue_files(ca, tmp_path, "other", ["other.example.test"])
    server = start_server("--tls-cert", cert, "--tls-key", key, "--hostname", "127.0.0.1", trust=False)
    # serve warns that the certificate does not cover the name it was asked for.
    assert re.search(r"WARNING .*other\.crt: not valid for 127\.0\.0\.1", server.output()), server.output()

    with pytest.raises(ssl.SSLCertVerificationError) as refused:
        https_get(server.port, client_context(ca_dir / "ca.crt"), host="127.0.0.1")
    assert "mismatch" in refused.value.verify_message
    with pytest.raises(ssl.SSLCertVerificationError):
        https_get(server.port, client_context(ca_dir / "ca.crt"), host="registry.example.test")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/v2/", verify=client_context(ca_dir / "ca.crt"))
    # The same CA and certificate are fine for the name the certificate is for.
    assert https_get(server.port, client_context(ca_dir / "ca.crt"), host="other.example.test")[0] == 200


def test_certificate_without_san_starts_with_a_warning(
    start_server: StartServer, ca: CertificateAuthority, ca_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    key = certificates.generate_key()
    start = now() - datetime.timedelta(minutes=5)
    legacy = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=30))
        .sign(ca.key, hashes.SHA256())
    )
    certificates.write_key(tmp_path / "legacy.key", key)
    certificates.write_certificates(tmp_path / "legacy.crt", legacy)
    server = start_server("--tls-cert", tmp_path / "legacy.crt", "--tls-key", tmp_path / "legacy.key", trust=False)
    assert re.search(r"WARNING .*legacy\.crt: no subjectAltName", server.output()), server.output()
    # Python, like Go, ignores the common name: the warning is right.
    with pytest.raises(ssl.SSLCertVerificationError):
        https_get(server.port, client_context(ca_dir / "ca.crt"), host="127.0.0.1")


@pytest.mark.parametrize(
    ("start_days_ago", "days", "word"),
    [(40, 30, "expired"), (-2, 30, "not valid before")],
    ids=["expired", "not-yet-valid"],
)
def test_serve_refuses_a_certificate_out_of_its_validity(
    ca: CertificateAuthority, ca_dir: pathlib.Path, tmp_path: pathlib.Path, start_days_ago: int, days: int, word: str
) -> None:
    cert, key = issue_files(
        ca, tmp_path, "dated", ["127.0.0.1", "localhost"], not_before=now() - datetime.timedelta(days=start_days_ago), days=days
    )
    result = serve_and_fail(tmp_path, "--tls-cert", cert, "--tls-key", key)
    line = assert_one_line_error(result, word, "dated.crt")
    assert "serving" not in result.stderr, line

    # Served some other way, a client refuses it.
    with plain_tls_server(server_context(cert, key)) as port:
        with pytest.raises(ssl.SSLCertVerificationError) as refused:
            https_get(port, client_context(ca_dir / "ca.crt"))
    assert ("expired" if word == "expired" else "not yet valid") in refused.value.verify_message


def test_plain_tls_server_control(ca: CertificateAuthority, ca_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """The helper server used above works with a good certificate (so its refusals are the certificate's)."""
    cert, key = issue_files(ca, tmp_path, "good", ["127.0.0.1"])
    with plain_tls_server(server_context(cert, key)) as port:
        assert https_get(port, client_context(ca_dir / "ca.crt")) == (200, b"ok", "TLSv1.3")


def _encrypted_key(kind: str, tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / f"{kind}.key"
    if kind == "cryptography":
        key = certificates.generate_key("rsa-2048")
        path.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSPHRASE.encode()),
        ))
    else:
        openssl = require_tool("openssl")["openssl"]
        extra = ["-traditional"] if kind == "openssl-traditional" else []
        run([openssl, "genrsa", *extra, "-aes256", "-passout", f"pass:{PASSPHRASE}", "-out", path, "2048"])
    assert b"ENCRYPTED" in path.read_bytes()
    return path


@pytest.mark.parametrize("kind", ["openssl-pkcs8", "openssl-traditional", "cryptography"])
def test_passphrase_protected_key(
    start_server: StartServer, ca: CertificateAuthority, ca_dir: pathlib.Path, tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch, kind: str,
) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    key_path = _encrypted_key(kind, tmp_path)
    key = certificates.load_key(key_path, PASSPHRASE.encode())
    cert = tmp_path / "locked.crt"
    certificates.write_certificates(cert, ca.issue(key, ["127.0.0.1"]), ca.certificate)
    given = ["--tls-cert", str(cert), "--tls-key", str(key_path)]

    # Without the passphrase: a clear one-line error.
    assert_one_line_error(serve_and_fail(tmp_path, *given), "passphrase", PASSPHRASE_ENV, key_path.name)
    # A wrong one: said so.
    assert_one_line_error(serve_and_fail(tmp_path, *given, env={PASSPHRASE_ENV: "wrong"}), "wrong passphrase")

    # From a file (its final newline is not part of the passphrase).
    (tmp_path / "passphrase").write_text(PASSPHRASE + "\n")
    server = start_server(*given, "--tls-key-passphrase-file", str(tmp_path / "passphrase"), root=tmp_path / "by-file", trust=ca_dir / "ca.crt")
    assert https_get(server.port, client_context(ca_dir / "ca.crt"))[0] == 200
    assert peer_certificate(server.port) == der(cert)
    server.stop()

    # From the environment.
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    server = start_server(*given, root=tmp_path / "by-env", trust=ca_dir / "ca.crt")
    assert https_get(server.port, client_context(ca_dir / "ca.crt"))[0] == 200


def test_certificate_not_matching_its_key_is_refused(ca: CertificateAuthority, tmp_path: pathlib.Path) -> None:
    cert, _ = issue_files(ca, tmp_path, "one", ["127.0.0.1"])
    _, other_key = issue_files(ca, tmp_path, "two", ["127.0.0.1"])
    result = serve_and_fail(tmp_path, "--tls-cert", cert, "--tls-key", other_key)
    assert_one_line_error(result, "does not match", "one.crt", "two.key")


def test_given_files_that_are_not_pem_are_refused(ca: CertificateAuthority, tmp_path: pathlib.Path) -> None:
    cert, key = issue_files(ca, tmp_path, "good", ["127.0.0.1"])
    (tmp_path / "junk.pem").write_text("junk\n")
    assert_one_line_error(serve_and_fail(tmp_path, "--tls-cert", tmp_path / "junk.pem", "--tls-key", key), "junk.pem")
    assert_one_line_error(serve_and_fail(tmp_path, "--tls-cert", cert, "--tls-key", tmp_path / "junk.pem"), "junk.pem")


def test_tls_option_combinations_are_checked(ca: CertificateAuthority, tmp_path: pathlib.Path) -> None:
    cert, key = issue_files(ca, tmp_path, "good", ["127.0.0.1"])
    assert_one_line_error(serve_and_fail(tmp_path, "--tls-cert", cert), "--tls-key")
    assert_one_line_error(serve_and_fail(tmp_path, "--tls-key", key), "--tls-cert")
    assert_one_line_error(serve_and_fail(tmp_path, "--insecure-http", "--tls-cert", cert, "--tls-key", key), "--insecure-http")


# --- protocol versions --------------------------------------------------------


@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_old_tls_versions_are_refused(start_server: StartServer, version: str) -> None:
    server = start_server()
    with pytest.warns(DeprecationWarning):
        old = getattr(ssl.TLSVersion, version)
        context = client_context(server.tls_dir / "ca.crt", version=old)
    # Control: this client can speak the old version to a server that allows it ...
    permissive = server_context(server.tls_dir / "server.crt", server.tls_dir / "server.key", minimum=ssl.TLSVersion.MINIMUM_SUPPORTED)
    with plain_tls_server(permissive) as port:
        try:
            status, _, spoken = https_get(port, context)
        except ssl.SSLError as error:
            pytest.skip(f"this OpenSSL cannot speak {version} at all ({error}): nothing to show")
    assert (status, spoken) == (200, version.replace("_", "."))
    # ... but Dockyard will not.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https_get(server.port, context)


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_current_tls_versions_are_accepted(start_server: StartServer, version: str) -> None:
    server = start_server()
    context = client_context(server.tls_dir / "ca.crt")
    context.minimum_version = context.maximum_version = getattr(ssl.TLSVersion, version)
    status, _, spoken = https_get(server.port, context)
    assert (status, spoken) == (200, version.replace("_", "."))


def test_tls12_offers_only_forward_secret_aead_suites(start_server: StartServer) -> None:
    server = start_server()
    context = client_context(server.tls_dir / "ca.crt")
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384")  # CBC suites only
    with pytest.raises(ssl.SSLError):
        https_get(server.port, context)
    context.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    assert https_get(server.port, context)[0] == 200


def _negotiated(port: int, context: ssl.SSLContext) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return tls.cipher()[0]


@pytest.mark.parametrize("preferred", ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"])
def test_the_client_picks_among_the_allowed_suites(start_server: StartServer, preferred: str) -> None:
    # Go clients put AES-128-GCM first on CPUs with AES instructions: they get it.
    server = start_server()
    context = client_context(server.tls_dir / "ca.crt")
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    others = [suite for suite in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384") if suite != preferred]
    context.set_ciphers(":".join([preferred, *others]))
    assert _negotiated(server.port, context) == preferred


def test_tls13_client_preference_with_openssl(start_server: StartServer) -> None:
    openssl = require_tool("openssl")["openssl"]
    server = start_server()
    for suites, expected in [
        ("TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256"),
        ("TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"),
    ]:
        result = subprocess.run(
            [openssl, "s_client", "-connect", f"127.0.0.1:{server.port}", "-tls1_3", "-ciphersuites", suites,
             "-CAfile", str(server.tls_dir / "ca.crt"), "-brief"],
            input=b"", capture_output=True, timeout=30,
        )
        assert f"Ciphersuite: {expected}".encode() in result.stdout + result.stderr, result.stderr[-2000:]


# --- mutual TLS ---------------------------------------------------------------


@pytest.fixture
def client_ca(tmp_path: pathlib.Path) -> pathlib.Path:
    """A client CA and certificates made with the ``certs`` commands."""
    directory = tmp_path / "clients"
    assert run_dockyard("certs", "ca", "--dir", directory).returncode == 0
    issued = run_dockyard("certs", "issue", "ci-runner", "--client", "--dir", directory)
    assert issued.returncode == 0, issued.stderr
    issued = run_dockyard("certs", "issue", "127.0.0.1", "--dir", directory, "--out", directory / "server-eku.crt")
    assert issued.returncode == 0, issued.stderr
    return directory


def test_mutual_tls(start_server: StartServer, client_ca: pathlib.Path, ca: CertificateAuthority, tmp_path: pathlib.Path) -> None:
    client = (client_ca / "ci-runner.crt", client_ca / "ci-runner.key")
    server = start_server("--tls-client-ca", client_ca / "ca.crt", client_cert=client)
    trusted = server.tls_dir / "ca.crt"

    # With a client certificate from `certs issue --client`: accepted, over TLS 1.2 and 1.3.
    assert https_get(server.port, client_context(trusted, cert=client))[0] == 200
    tls12 = client_context(trusted, cert=client)
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    assert https_get(server.port, tls12)[0] == 200
    assert httpx.get(f"{server.url}/v2/", verify=server.verify).status_code == 200

    # Without one: refused.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https_get(server.port, client_context(trusted))
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/v2/", verify=client_context(trusted))

    # A server certificate (EKU serverAuth only) from the same CA is no client certificate.
    server_eku = (client_ca / "server-eku.crt", client_ca / "server-eku.key")
    assert list(certificates.load_certificates(server_eku[0])[0].extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
    ]
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https_get(server.port, client_context(trusted, cert=server_eku))

    # A client certificate from another CA: refused.
    other = issue_files(ca, tmp_path, "stranger", ["stranger"], client=True)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https_get(server.port, client_context(trusted, cert=other))


def test_client_ca_that_is_not_a_certificate_is_refused(tmp_path: pathlib.Path) -> None:
    (tmp_path / "junk.pem").write_text("junk\n")
    assert_one_line_error(serve_and_fail(tmp_path, "--tls-client-ca", tmp_path / "junk.pem"), "client CA", "junk.pem")
