"""The ``dockyard certs`` and ``dockyard trust`` command lines, run as processes."""

from __future__ import annotations

import pathlib
import re
import stat
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from dockyard.tls import certificates, inspect
from dockyard.tls.trust import CONTAINERS_CERTS, DOCKER_CERTS
from tests.support.clients import run
from tests.support.tools import require_tool
from tests.tls.conftest import StartServer, TlsServer, assert_one_line_error, run_dockyard

FINGERPRINT = r"(?:[0-9A-F]{2}:){31}[0-9A-F]{2}"


def mode(path: pathlib.Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def ok(*args) -> str:
    result = run_dockyard(*args)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stdout


def eku(path: pathlib.Path) -> list:
    certificate = certificates.load_certificates(path)[0]
    return list(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


# --- certs ca -----------------------------------------------------------------


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "rsa-2048", "rsa-4096"])
def test_certs_ca(tmp_path: pathlib.Path, key_type: str) -> None:
    directory = tmp_path / "tls"
    output = ok("certs", "ca", "--dir", directory, "--days", "30", "--key-type", key_type)
    ca = certificates.load_certificates(directory / "ca.crt")[0]
    assert f"created {directory / 'ca.crt'} (key {directory / 'ca.key'}, mode 0600)" in output
    assert f"sha256 {certificates.fingerprint(ca)}" in output
    assert re.search(rf"^sha256 {FINGERPRINT}$", output, re.M)
    assert mode(directory / "ca.key") == 0o600
    assert mode(directory / "ca.crt") & 0o444 and not mode(directory / "ca.crt") & 0o022
    assert inspect.is_ca(ca)
    assert (ca.not_valid_after_utc - ca.not_valid_before_utc).days == 30
    key = certificates.load_key(directory / "ca.key")
    assert key.key_size == int(key_type.split("-")[1]) if key_type.startswith("rsa") else key.key_size == 256
    assert sorted(p.name for p in directory.iterdir()) == ["ca.crt", "ca.key"]


def test_certs_ca_keeps_an_existing_ca_unless_forced(tmp_path: pathlib.Path) -> None:
    directory = tmp_path / "tls"
    ok("certs", "ca", "--dir", directory)
    before = (directory / "ca.crt").read_bytes(), (directory / "ca.key").read_bytes()
    assert_one_line_error(run_dockyard("certs", "ca", "--dir", directory), "exists", "--force")
    assert ((directory / "ca.crt").read_bytes(), (directory / "ca.key").read_bytes()) == before
    ok("certs", "ca", "--dir", directory, "--force")
    assert (directory / "ca.crt").read_bytes() != before[0]
    assert (directory / "ca.key").read_bytes() != before[1]
    assert mode(directory / "ca.key") == 0o600


def test_certs_ca_rejects_bad_options(tmp_path: pathlib.Path) -> None:
    for args in (["--key-type", "dsa"], ["--days", "0"], ["--days", "many"]):
        result = run_dockyard("certs", "ca", "--dir", tmp_path / "tls", *args)
        assert_one_line_error(result)
        assert result.returncode == 2
    assert not (tmp_path / "tls").exists()


# --- certs issue --------------------------------------------------------------


def test_certs_issue_server_certificate(tmp_path: pathlib.Path) -> None:
    directory = tmp_path / "tls"
    ok("certs", "ca", "--dir", directory)
    output = ok("certs", "issue", "registry.example.test", "registry", "--ip", "10.0.0.5", "--ip", "::1", "--dir", directory, "--days", "40")
    crt, key = directory / "registry.example.test.crt", directory / "registry.example.test.key"
    assert f"issued {crt} (key {key}, mode 0600) for registry.example.test, registry, 10.0.0.5, ::1" in output
    assert mode(key) == 0o600
    chain = certificates.load_certificates(crt)
    ca = certificates.load_certificates(directory / "ca.crt")[0]
    assert chain[1:] == [ca]
    chain[0].verify_directly_issued_by(ca)
    assert inspect.subject_alternative_names(chain[0]) == ["registry.example.test", "registry", "10.0.0.5", "::1"]
    assert inspect.matches_host(chain[0], "10.0.0.5")
    assert eku(crt) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert (chain[0].not_valid_after_utc - chain[0].not_valid_before_utc).days == 40
    # key and certificate belong together
    assert certificates.load_key(key).public_key().public_numbers() == chain[0].public_key().public_numbers()


def test_certs_issue_client_certificate_to_a_chosen_file(tmp_path: pathlib.Path) -> None:
    directory = tmp_path / "tls"
    ok("certs", "ca", "--dir", directory)
    out = tmp_path / "elsewhere" / "runner.pem"
    output = ok("certs", "issue", "ci-runner", "--client", "--dir", directory, "--out", out, "--key-type", "rsa-2048")
    assert f"issued {out} (key {tmp_path / 'elsewhere' / 'runner.key'}, mode 0600)" in output
    assert mode(tmp_path / "elsewhere" / "runner.key") == 0o600
    assert eku(out) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert certificates.load_key(tmp_path / "elsewhere" / "runner.key").key_size == 2048
    assert not (directory / "ci-runner.crt").exists()


def test_certs_issue_without_a_ca(tmp_path: pathlib.Path) -> None:
    result = run_dockyard("certs", "issue", "registry.example.test", "--dir", tmp_path / "none")
    assert_one_line_error(result, "dockyard certs ca --dir")
    assert not (tmp_path / "none").exists()


def test_certs_issue_needs_a_name(tmp_path: pathlib.Path) -> None:
    ok("certs", "ca", "--dir", tmp_path)
    assert_one_line_error(run_dockyard("certs", "issue", "--dir", tmp_path), "NAMES")


# --- certs show ---------------------------------------------------------------


def test_certs_show_a_good_chain(tmp_path: pathlib.Path) -> None:
    ok("certs", "ca", "--dir", tmp_path)
    ok("certs", "issue", "registry.example.test", "--ip", "127.0.0.1", "--dir", tmp_path)
    leaf, ca = certificates.load_certificates(tmp_path / "registry.example.test.crt")
    output = ok("certs", "show", tmp_path / "registry.example.test.crt")
    assert "kind:        leaf certificate" in output
    assert "names (SAN): registry.example.test, 127.0.0.1" in output
    assert f"sha256:      {certificates.fingerprint(leaf)}" in output
    assert "--- certificate 2 of the chain" in output
    assert "kind:        certificate authority" in output
    assert f"sha256:      {certificates.fingerprint(ca)}" in output
    assert "warning" not in output
    assert output.count("accepted by current clients") == 2


def test_certs_show_bad_file(tmp_path: pathlib.Path) -> None:
    (tmp_path / "junk.crt").write_text("junk\n")
    assert_one_line_error(run_dockyard("certs", "show", tmp_path / "junk.crt"), "junk.crt")
    assert_one_line_error(run_dockyard("certs", "show", tmp_path / "missing.crt"), "missing.crt")


def _openssl(*args) -> None:
    run([require_tool("openssl")["openssl"], *args])


def _warns_about_the_common_name(output: str) -> None:
    assert "names (SAN): (none)" in output
    assert re.search(r"^warning: +no subjectAltName: modern clients .*legacy Common Name", output, re.M), output
    assert "accepted by current clients" not in output


def test_certs_show_warns_on_a_self_signed_cn_only_certificate(tmp_path: pathlib.Path) -> None:
    """``openssl req -new -x509 -subj /CN=...``: OpenSSL 3 marks it CA:TRUE, but it is a server certificate."""
    _openssl(
        "req", "-new", "-x509", "-nodes", "-newkey", "rsa:2048", "-days", "30", "-subj", "/CN=registry.local",
        "-keyout", tmp_path / "self.key", "-out", tmp_path / "self.crt",
    )
    assert not inspect.subject_alternative_names(certificates.load_certificates(tmp_path / "self.crt")[0])
    _warns_about_the_common_name(ok("certs", "show", tmp_path / "self.crt"))


def test_certs_show_warns_on_a_signed_cn_only_certificate(tmp_path: pathlib.Path) -> None:
    """``openssl x509 -req`` on a ``-subj /CN=...`` request, signed by a CA: no SAN at all."""
    _openssl(
        "req", "-new", "-x509", "-nodes", "-newkey", "rsa:2048", "-days", "30", "-subj", "/CN=Seed Root CA",
        "-keyout", tmp_path / "ca.key", "-out", tmp_path / "ca.crt",
    )
    _openssl(
        "req", "-new", "-nodes", "-newkey", "rsa:2048", "-subj", "/CN=registry.local",
        "-keyout", tmp_path / "leaf.key", "-out", tmp_path / "leaf.csr",
    )
    _openssl(
        "x509", "-req", "-in", tmp_path / "leaf.csr", "-CA", tmp_path / "ca.crt", "-CAkey", tmp_path / "ca.key",
        "-CAcreateserial", "-days", "30", "-out", tmp_path / "leaf.crt",
    )
    output = ok("certs", "show", tmp_path / "leaf.crt")
    _warns_about_the_common_name(output)
    assert "common name: registry.local" in output
    # The CA itself (a name with spaces, not a host) draws no such warning.
    assert "warning" not in ok("certs", "show", tmp_path / "ca.crt")


# --- trust --------------------------------------------------------------------


@pytest.fixture
def trusted_server(start_server: StartServer) -> Iterator[TlsServer]:
    """A running server whose HOST:PORT is unique now; whatever ``trust`` wrote for it is removed afterwards."""
    server = start_server()
    try:
        yield server
    finally:
        for base in (DOCKER_CERTS, CONTAINERS_CERTS):
            folder = base / server.host
            (folder / "ca.crt").unlink(missing_ok=True)
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


def _written(server: TlsServer) -> list[pathlib.Path]:
    return [path for path in (DOCKER_CERTS / server.host / "ca.crt", CONTAINERS_CERTS / server.host / "ca.crt") if path.exists()]


def test_trust_dry_run_prints_the_paths_and_writes_nothing(trusted_server: TlsServer) -> None:
    host = trusted_server.host
    output = ok("trust", host, "--ca", trusted_server.tls_dir / "ca.crt", "--dry-run")
    assert output.splitlines() == [
        f"would write {DOCKER_CERTS / host / 'ca.crt'}",
        f"would write {CONTAINERS_CERTS / host / 'ca.crt'}",
    ]
    assert ok("trust", host, "--ca", trusted_server.tls_dir / "ca.crt", "--dry-run", "--docker").splitlines() == [
        f"would write {DOCKER_CERTS / host / 'ca.crt'}"
    ]
    output = ok("trust", host, "--ca", trusted_server.tls_dir / "ca.crt", "--dry-run", "--system")
    assert re.fullmatch(r"would write \S+dockyard-127\.0\.0\.1_\d+\.crt and run update-ca-(certificates|trust extract)\n", output), output
    assert ok("trust", host, "--remove", "--dry-run").splitlines() == [
        f"would remove {DOCKER_CERTS / host / 'ca.crt'}",
        f"would remove {CONTAINERS_CERTS / host / 'ca.crt'}",
    ]
    assert _written(trusted_server) == []
    assert not (DOCKER_CERTS / host).exists() and not (CONTAINERS_CERTS / host).exists()


def test_trust_fetch_with_a_wrong_fingerprint_writes_nothing(trusted_server: TlsServer) -> None:
    wrong = "AB" * 32
    result = run_dockyard("trust", trusted_server.host, "--fetch", "--fingerprint", wrong)
    line = assert_one_line_error(result, "fingerprint mismatch", "NOT trusting")
    actual = certificates.fingerprint(certificates.load_certificates(trusted_server.tls_dir / "ca.crt")[0])
    assert actual in line
    assert _written(trusted_server) == []
    assert not (DOCKER_CERTS / trusted_server.host).exists() and not (CONTAINERS_CERTS / trusted_server.host).exists()


def test_trust_fetch_without_a_fingerprint_is_refused_without_a_terminal(trusted_server: TlsServer) -> None:
    result = run_dockyard("trust", trusted_server.host, "--fetch")
    actual = certificates.fingerprint(certificates.load_certificates(trusted_server.tls_dir / "ca.crt")[0])
    assert_one_line_error(result, actual, "--fingerprint")
    assert _written(trusted_server) == []


def test_trust_fetch_with_the_printed_fingerprint_then_remove(trusted_server: TlsServer) -> None:
    printed = re.search(r"--fetch --fingerprint ([0-9A-F]{64})", trusted_server.output()).group(1)
    output = ok("trust", trusted_server.host, "--fetch", "--fingerprint", printed.lower(), "--containers")
    assert output.strip() == f"wrote {CONTAINERS_CERTS / trusted_server.host / 'ca.crt'} (podman, buildah, skopeo)"
    assert (CONTAINERS_CERTS / trusted_server.host / "ca.crt").read_bytes() == (trusted_server.tls_dir / "ca.crt").read_bytes()
    assert not (DOCKER_CERTS / trusted_server.host).exists()
    ok("trust", trusted_server.host, "--remove", "--containers")
    assert _written(trusted_server) == []
    assert not (CONTAINERS_CERTS / trusted_server.host).exists()


def test_trust_ca_then_remove(trusted_server: TlsServer) -> None:
    host = trusted_server.host
    ca_file = trusted_server.tls_dir / "ca.crt"
    output = ok("trust", host, "--ca", ca_file)
    docker_file, containers_file = DOCKER_CERTS / host / "ca.crt", CONTAINERS_CERTS / host / "ca.crt"
    assert output.splitlines() == [f"wrote {docker_file} (docker)", f"wrote {containers_file} (podman, buildah, skopeo)"]
    for path in (docker_file, containers_file):
        assert path.read_bytes() == ca_file.read_bytes()
        assert mode(path) & 0o444 == 0o444  # clients run as other users must read it
    # A client certificate beside it survives the removal, and so does its folder.
    (DOCKER_CERTS / host / "client.cert").write_text("kept\n")
    try:
        output = ok("trust", host, "--remove")
        assert output.splitlines() == [f"removed {docker_file} (docker)", f"removed {containers_file} (podman, buildah, skopeo)"]
        assert not docker_file.exists() and not containers_file.exists()
        assert not (CONTAINERS_CERTS / host).exists()
        assert (DOCKER_CERTS / host / "client.cert").read_text() == "kept\n"
    finally:
        (DOCKER_CERTS / host / "client.cert").unlink(missing_ok=True)
    assert ok("trust", host, "--remove").strip() == f"nothing to remove for {host}"


def test_trust_ca_with_a_wrong_fingerprint_writes_nothing(trusted_server: TlsServer) -> None:
    result = run_dockyard("trust", trusted_server.host, "--ca", trusted_server.tls_dir / "ca.crt", "--fingerprint", "00" * 32)
    assert_one_line_error(result, "fingerprint mismatch")
    assert _written(trusted_server) == []


def test_trust_usage_errors(tmp_path: pathlib.Path, trusted_server: TlsServer) -> None:
    ca_file = trusted_server.tls_dir / "ca.crt"
    assert_one_line_error(run_dockyard("trust", "no-port", "--ca", ca_file), "HOST:PORT")
    assert_one_line_error(run_dockyard("trust", "127.0.0.1:http", "--ca", ca_file), "HOST:PORT")
    assert_one_line_error(run_dockyard("trust", trusted_server.host), "--ca", "--fetch")
    assert_one_line_error(run_dockyard("trust", trusted_server.host, "--ca", ca_file, "--fetch"), "--ca", "--fetch")
    (tmp_path / "junk.crt").write_text("junk\n")
    assert_one_line_error(run_dockyard("trust", trusted_server.host, "--ca", tmp_path / "junk.crt"), "junk.crt", "not a PEM certificate")
    assert _written(trusted_server) == []


def test_trust_fetch_from_nothing_listening(tmp_path: pathlib.Path) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as reserved:
        port = reserved.getsockname()[1]
    result = run_dockyard("trust", f"127.0.0.1:{port}", "--fetch", "--fingerprint", "00" * 32)
    assert_one_line_error(result, "cannot fetch the CA", f"127.0.0.1:{port}")
    assert not (DOCKER_CERTS / f"127.0.0.1:{port}").exists()


def test_trust_system_then_remove_leaves_no_link_in_the_store(tmp_path: pathlib.Path) -> None:
    """Under a root of Debian's layout (never the real /etc), with a CA the store already trusts."""
    require_tool("update-ca-certificates", "openssl")
    root = tmp_path / "root"
    for folder in ("etc/ssl/certs", "etc/ca-certificates/update.d", "usr/local/share/ca-certificates", "usr/share/ca-certificates/other"):
        (root / folder).mkdir(parents=True)
    ok("certs", "ca", "--dir", tmp_path / "other", "--days", "30")
    other = root / "usr/share/ca-certificates/other/other.crt"
    other.write_bytes((tmp_path / "other" / "ca.crt").read_bytes())
    (root / "etc/ca-certificates.conf").write_text("other/other.crt\n")
    ok("certs", "ca", "--dir", tmp_path / "ours", "--days", "30")
    ours = (tmp_path / "ours" / "ca.crt").read_bytes()
    store, bundle = root / "etc/ssl/certs", root / "etc/ssl/certs/ca-certificates.crt"
    anchor = root / "usr/local/share/ca-certificates/dockyard-registry.example.com_5000.crt"

    def linked() -> list[pathlib.Path]:
        links = [path for path in store.iterdir() if path.is_symlink()]
        assert all(path.exists() for path in links), [path for path in links if not path.exists()]  # none dangling
        return sorted(path.resolve() for path in links)

    output = ok("trust", "registry.example.com:5000", "--ca", tmp_path / "ours" / "ca.crt", "--system", "--root", root)
    assert output == f"wrote {anchor} (system store (Debian))\n"
    assert linked() == sorted([other, other, anchor, anchor])  # NAME.pem and the hash link, each
    assert ours in bundle.read_bytes()

    output = ok("trust", "registry.example.com:5000", "--remove", "--system", "--root", root)
    assert output == f"removed {anchor} (system store (Debian))\n"
    assert not anchor.exists()
    assert linked() == [other, other]
    assert ours not in bundle.read_bytes() and other.read_bytes() in bundle.read_bytes()
