"""The doctor's pieces without a server: addresses, challenges, Location headers, the clients'
configuration files, and certificate chains judged as Go judges them."""

from __future__ import annotations

import base64
import datetime
import email.utils
import json
import pathlib
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from dockyard.cli import main
from dockyard.doctor.certificates import chain_checks
from dockyard.doctor.machine import Machine, TrustStore
from dockyard.doctor.network import Target
from dockyard.doctor.push import location_problem
from dockyard.doctor.registry import Challenge, clock_check
from dockyard.doctor.run import realm_certificate
from dockyard.tls import certificates
from dockyard.tls.certificates import CertificateAuthority
from tests.doctor.conftest import client_machine, trust
from tests.support.processes import loopback_listener
from tests.tls.conftest import issue_files, make_ca, plain_tls_server, server_context

HOST = Target("registry.example.test", 5000)
NOW = datetime.datetime.now(datetime.UTC)


def test_addresses() -> None:
    assert Target.parse("registry.example.test") == Target("registry.example.test", 443)
    assert Target.parse("registry.example.test:5000").host_port == "registry.example.test:5000"
    assert Target.parse("[::1]:5000") == Target("::1", 5000)
    assert Target.parse("[::1]:5000").host_port == "[::1]:5000"
    for wrong in ("registry:port", "registry:0", "https://registry", ":5000"):
        with pytest.raises(ValueError):
            Target.parse(wrong)


def test_challenge_parameters() -> None:
    challenge = Challenge.parse('Bearer realm="https://auth.example.test/token",service="registry",scope="repository:a/b:pull,push"')
    assert challenge.scheme == "bearer"
    assert challenge.parameters == {"realm": "https://auth.example.test/token", "service": "registry", "scope": "repository:a/b:pull,push"}
    assert Challenge.parse('Basic realm="Registry Realm"') == Challenge("basic", {"realm": "Registry Realm"})


def test_locations() -> None:
    assert location_problem(HOST, "https", "/v2/a/blobs/uploads/1?_state=x") is None
    assert location_problem(HOST, "https", "https://registry.example.test:5000/v2/a/blobs/uploads/1") is None
    downgrade = location_problem(HOST, "https", "http://registry.example.test:5000/v2/a/blobs/uploads/1")
    assert downgrade is not None and "plain http://" in downgrade
    internal = location_problem(HOST, "https", "https://registry:5000/v2/a/blobs/uploads/1")
    assert internal is not None and "names registry:5000" in internal
    assert location_problem(Target("registry.example.test", 443), "https", "https://registry.example.test/v2/") is None


def test_plain_http_as_each_client_is_configured(tmp_path: pathlib.Path) -> None:
    root = client_machine(tmp_path)
    (root / "etc/containerd/certs.d/registry.example.test:5000").mkdir(parents=True)
    machine = Machine(root)
    assert machine.plain_http_allowed("registry.example.test:5000") == {"docker": False, "podman/skopeo": False, "containerd": False}
    assert machine.plain_http_allowed("127.0.0.1:5000")["docker"]  # docker's default insecure-registries

    (root / "etc/docker/daemon.json").write_text(json.dumps({"insecure-registries": ["registry.example.test:5000", "10.0.0.0/8"]}))
    (root / "etc/containers/registries.conf").write_text('[registries.insecure]\nregistries = ["registry.example.test:5000"]\n')
    hosts = root / "etc/containerd/certs.d/registry.example.test:5000/hosts.toml"
    hosts.write_text('server = "http://registry.example.test:5000"\n')
    assert set(machine.plain_http_allowed("registry.example.test:5000").values()) == {True}
    assert machine.plain_http_allowed("10.1.2.3:5000")["docker"]

    # A later file of registries.conf.d says otherwise for the same registry: it wins.
    (root / "etc/containers/registries.conf.d").mkdir()
    (root / "etc/containers/registries.conf.d/50-secure.conf").write_text(
        '[[registry]]\nlocation = "registry.example.test:5000"\ninsecure = false\n'
    )
    assert not machine.plain_http_allowed("registry.example.test:5000")["podman/skopeo"]


def test_saved_logins_podman_first(tmp_path: pathlib.Path) -> None:
    def auth_file(path: pathlib.Path, user: str) -> pathlib.Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        auth = base64.b64encode(f"{user}:pw-{user}".encode()).decode()
        path.write_text(json.dumps({"auths": {"registry.example.test:5000": {"auth": auth}}}))
        return path

    docker = auth_file(tmp_path / "docker" / "config.json", "docker-user")
    podman = auth_file(tmp_path / "podman" / "auth.json", "podman-user")
    environ = {"HOME": str(tmp_path), "DOCKER_CONFIG": str(docker.parent)}
    found = Machine(tmp_path, environ).saved_credentials("registry.example.test:5000")
    assert found is not None and (found.username, found.password) == ("docker-user", "pw-docker-user")
    found = Machine(tmp_path, {**environ, "REGISTRY_AUTH_FILE": str(podman)}).saved_credentials("registry.example.test:5000")
    assert found is not None and found.username == "podman-user" and found.source == str(podman)
    assert Machine(tmp_path, environ).saved_credentials("other.example.test:5000") is None


def _authority(common_name: str, issuer: CertificateAuthority | None = None) -> CertificateAuthority:
    """A root (or, with ``issuer``, an intermediate) that may sign further authorities."""
    key = certificates.generate_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.certificate.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=10))
        .not_valid_after(NOW + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(issuer.key if issuer else key, hashes.SHA256())
    )
    return CertificateAuthority(certificate, key)


def _outcomes(chain: list[x509.Certificate], roots: list[x509.Certificate]) -> dict[str, tuple[str, str, str]]:
    stores = [TrustStore("docker", roots, "certs.d"), TrustStore("system store", [], "none")]
    judged = chain_checks(HOST, chain, stores, {})
    return {check.name: (check.outcome.value, check.message, check.fix) for check in judged.checks}


def test_intermediates_must_be_sent() -> None:
    root = _authority("Example Root")
    intermediate = _authority("Example Intermediate", root)
    leaf = intermediate.issue(certificates.generate_key(), [HOST.host])

    alone = _outcomes([leaf], [root.certificate])
    assert alone["certificate chain"][0] == "fail"
    assert "CN=Example Intermediate" in alone["certificate chain"][1] and "fullchain.pem" in alone["certificate chain"][2]
    assert alone["trust: docker"][0] == "fail"

    full = _outcomes([leaf, intermediate.certificate], [root.certificate])
    assert full["certificate chain"][0] == "ok" and full["trust: docker"][0] == "ok"
    # docker trusts it through its own folder: the system store's lack is a note, not a problem.
    assert full["trust: system store"][0] == "ok" and "--system" in full["trust: system store"][1]
    assert alone["trust: system store"][0] == "warn"


def test_expired_leaf_and_client_only_usage_are_named_apart_from_trust() -> None:
    root = _authority("Example Root")
    key = certificates.generate_key()
    expired = root.issue(key, [HOST.host], days=1, not_before=NOW - datetime.timedelta(days=3))
    judged = _outcomes([expired], [root.certificate])
    assert judged["certificate validity"][0] == "fail" and "certificate has expired" in judged["certificate validity"][1]
    assert judged["trust: docker"][0] == "ok"

    client_only = root.issue(key, [HOST.host], client=True)
    judged = _outcomes([client_only], [root.certificate])
    assert judged["certificate key"][0] == "fail" and "incompatible key usage" in judged["certificate key"][1]
    assert judged["certificate name"][0] == "ok"

    elsewhere = root.issue(key, ["other.example.test"])
    judged = _outcomes([elsewhere], [root.certificate])
    assert judged["certificate name"][0] == "fail" and "valid for other.example.test, not registry.example.test" in judged["certificate name"][1]


def test_containerd_trusts_the_ca_its_hosts_toml_names(tmp_path: pathlib.Path) -> None:
    root = _authority("Example Root")
    leaf = root.issue(certificates.generate_key(), [HOST.host])
    folder = tmp_path / "etc/containerd/certs.d" / HOST.host_port
    folder.mkdir(parents=True)
    certificates.write_certificates(folder / "ca.crt", root.certificate)
    machine = Machine(tmp_path, {})
    stores = {store.client: store for store in machine.trust_stores(HOST.host_port)}
    assert chain_checks(HOST, [leaf], list(stores.values()), {}).checks[-2].outcome.value == "fail"  # no hosts.toml yet

    # The path as containerd's documentation writes it: absolute, read under the machine's root.
    (folder / "hosts.toml").write_text(f'[host."https://{HOST.host_port}"]\n  ca = "/etc/containerd/certs.d/{HOST.host_port}/ca.crt"\n')
    judged = chain_checks(HOST, [leaf], machine.trust_stores(HOST.host_port), {})
    assert {check.name: check.outcome.value for check in judged.checks}["trust: containerd"] == "ok"


@pytest.fixture
def closing_port() -> Iterator[int]:
    """A port that accepts connections and closes them at once: neither TLS nor HTTP."""
    with loopback_listener(lambda connection: connection.close()) as port:
        yield port


def test_text_output_names_the_fix_and_never_a_traceback(closing_port: int, tmp_path: pathlib.Path) -> None:
    result = CliRunner().invoke(main, ["doctor", f"127.0.0.1:{closing_port}", "--root", str(tmp_path)])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("ok    resolve") and lines[1].startswith("ok    tcp")
    assert lines[2].startswith("FAIL  protocol") and "speaks neither TLS" in lines[2]
    assert lines[3].split()[0] == "fix:"
    assert lines[-1].startswith(f"127.0.0.1:{closing_port}: 3 checks, 1 failed")
    assert "Traceback" not in result.output

    wrong = CliRunner().invoke(main, ["doctor", "https://registry.example.test"])
    assert wrong.exit_code == 2 and "expected HOST or HOST:PORT" in wrong.output and "Traceback" not in wrong.output


def test_a_token_realm_elsewhere_is_judged_like_the_registry(tmp_path: pathlib.Path) -> None:
    ca = make_ca(tmp_path)
    cert, key = issue_files(ca, tmp_path, "realm", ["127.0.0.1"])
    machine_root = client_machine(tmp_path / "client")
    registry = Target("127.0.0.1", 5000)  # not contacted: only the realm is
    with plain_tls_server(server_context(cert, key)) as port:
        challenge = Challenge("bearer", {"realm": f"https://127.0.0.1:{port}/token", "service": "registry"})
        untrusted = realm_certificate(Machine(machine_root, {}), registry, challenge)
        assert [(check.name, check.outcome.value) for check in untrusted] == [("auth realm certificate", "fail")]
        assert "signed by unknown authority" in untrusted[0].message and f"certs.d/127.0.0.1:{port}/ca.crt" in untrusted[0].fix

        trust(machine_root, f"127.0.0.1:{port}", tmp_path / "ca.crt")
        trusted = realm_certificate(Machine(machine_root, {}), registry, challenge)
        assert [(check.name, check.outcome.value) for check in trusted] == [("auth realm certificate", "ok")]
    # The registry's own address: judged once, with the registry.
    same = Challenge("bearer", {"realm": "https://127.0.0.1:5000/auth/token"})
    assert realm_certificate(Machine(machine_root, {}), registry, same) == []


def test_clock_skew_against_the_servers_date() -> None:
    def skewed(seconds: float) -> str:
        date = email.utils.format_datetime(datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds), usegmt=True)
        return clock_check(httpx.Response(200, headers={"Date": date})).outcome.value

    assert skewed(0) == "ok"
    assert skewed(-120) == "warn"
    assert skewed(600) == "fail"
    assert clock_check(httpx.Response(200)).outcome.value == "warn"


def test_password_options_are_checked_before_any_network_use(tmp_path: pathlib.Path) -> None:
    alone = CliRunner().invoke(main, ["doctor", "127.0.0.1:1", "--password-stdin"], input="pw\n")
    assert alone.exit_code == 2 and "--password-stdin needs --username" in alone.output
    unsaved = CliRunner().invoke(main, ["doctor", "127.0.0.1:1", "--username", "nobody"], env={"DOCKER_CONFIG": str(tmp_path)})
    assert unsaved.exit_code == 2 and "give the password with --password-stdin" in unsaved.output
    assert "resolve" not in alone.output + unsaved.output
