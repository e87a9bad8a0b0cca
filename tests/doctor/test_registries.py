"""``dockyard doctor`` against real registries on 127.0.0.1: a healthy Dockyard (TLS, token
authentication) with its CA trusted and not trusted, and registry:2 serving plain HTTP."""

from __future__ import annotations

import base64
import json
import pathlib
from collections.abc import Iterator

import pytest

from tests.doctor.conftest import Diagnosis, client_machine, run_doctor, trust
from tests.support.auth import write_htpasswd
from tests.support.registry2 import Registry2Process, registry2_binary
from tests.support.server import DockyardProcess
from tests.support.tools import unavailable

USER, PASSWORD = "writer", "write-pw"  # tests.support.auth.USERS


@pytest.fixture(scope="module")
def dockyard_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockyardProcess]:
    """Dockyard with its own CA, users, and Bearer tokens from its token service."""
    folder = tmp_path_factory.mktemp("doctor-dockyard")
    server = DockyardProcess(folder / "root", "--htpasswd", str(write_htpasswd(folder / "users")), "--token-auth", tls=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def trusting_machine(tmp_path_factory: pytest.TempPathFactory, dockyard_tls: DockyardProcess) -> pathlib.Path:
    root = client_machine(tmp_path_factory.mktemp("doctor-trusting"))
    trust(root, dockyard_tls.host, dockyard_tls.tls_dir / "ca.crt")
    return root


def assert_healthy(diagnosis: Diagnosis) -> None:
    """Nothing reported: no failure, no warning."""
    assert diagnosis.exit_code == 0, diagnosis.output
    assert diagnosis.named("fail") == set(), diagnosis.output
    assert diagnosis.named("warn") == set(), diagnosis.output


def test_healthy_dockyard_with_its_ca_trusted(dockyard_tls: DockyardProcess, trusting_machine: pathlib.Path) -> None:
    diagnosis = run_doctor(
        dockyard_tls.host, trusting_machine, "--username", USER, "--password-stdin", "--push-test", "doctor/scratch",
        "--long-request", "2", stdin=PASSWORD + "\n",
    )
    assert_healthy(diagnosis)
    for name in (
        "resolve", "tcp", "protocol", "certificate name", "certificate validity", "certificate key", "certificate chain",
        "trust: docker", "trust: podman/skopeo", "api", "clock", "auth", "auth realm", "token", "sign-in",
        "push: streamed chunk", "push: large body", "push: long request", "push: locations",
    ):
        assert diagnosis.outcome(name) == "ok", (name, diagnosis.output)
    assert "Bearer" in diagnosis.checks["auth"]["message"]
    # The test uploads were cancelled: nothing was committed to the scratch repository.
    uploads = dockyard_tls.root / "docker" / "registry" / "v2" / "repositories" / "doctor" / "scratch" / "_uploads"
    assert not uploads.exists() or not any(uploads.iterdir())


def test_saved_docker_login_signs_in_and_a_wrong_one_is_named(
    dockyard_tls: DockyardProcess, trusting_machine: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    def saved(password: str) -> dict[str, str]:
        folder = tmp_path / password
        folder.mkdir()
        auth = base64.b64encode(f"{USER}:{password}".encode()).decode()
        (folder / "config.json").write_text(json.dumps({"auths": {dockyard_tls.host: {"auth": auth}}}))
        # podman's own files would come first: point them at nothing
        return {"DOCKER_CONFIG": str(folder), "REGISTRY_AUTH_FILE": str(tmp_path / "none.json"), "XDG_CONFIG_HOME": str(tmp_path)}

    good = run_doctor(dockyard_tls.host, trusting_machine, env=saved(PASSWORD))
    assert_healthy(good)
    assert good.outcome("sign-in") == "ok" and "config.json" in good.checks["sign-in"]["message"]

    wrong = run_doctor(dockyard_tls.host, trusting_machine, env=saved("not-the-password"))
    assert wrong.exit_code == 1
    assert wrong.named("fail") == {"token"}, wrong.output
    assert "unauthorized: authentication required" in wrong.checks["token"]["message"]


def test_dockyard_whose_ca_is_not_trusted(dockyard_tls: DockyardProcess, tmp_path: pathlib.Path) -> None:
    diagnosis = run_doctor(dockyard_tls.host, client_machine(tmp_path), "--username", USER, "--password-stdin", stdin=PASSWORD)
    assert diagnosis.exit_code == 1
    podman = diagnosis.checks["trust: podman/skopeo"]
    assert podman["outcome"] == "fail"
    assert "x509: certificate signed by unknown authority" in podman["message"]
    assert f"/etc/containers/certs.d/{dockyard_tls.host}/ca.crt" in podman["fix"]
    # docker talks to 127.0.0.0/8 without verifying, by default: named, but it does not stop docker.
    assert diagnosis.outcome("trust: docker") == "warn"
    assert "127.0.0.0/8" in diagnosis.checks["trust: docker"]["message"]
    # Nothing else is wrong, and the password is kept off an untrusted connection.
    assert diagnosis.named("fail") == {"trust: podman/skopeo"}, diagnosis.output
    assert diagnosis.outcome("sign-in") == "warn"
    assert diagnosis.outcome("certificate name") == "ok"


@pytest.fixture(scope="module")
def registry2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry2Process]:
    if registry2_binary() is None:
        unavailable("docker-registry (registry:2) is not installed")
    with Registry2Process(tmp_path_factory.mktemp("doctor-registry2") / "root") as process:
        yield process


def test_registry2_on_plain_http_where_clients_expect_https(registry2: Registry2Process, tmp_path: pathlib.Path) -> None:
    root = client_machine(tmp_path)
    refused = run_doctor(registry2.host, root)
    assert refused.exit_code == 1
    protocol = refused.checks["protocol"]
    assert protocol["outcome"] == "fail"
    assert "http: server gave HTTP response to HTTPS client" in protocol["message"]
    assert "podman/skopeo" in protocol["message"]
    assert "registries.conf" in protocol["fix"] and "insecure-registries" in protocol["fix"]
    assert refused.named("fail") == {"protocol"}, refused.output

    # Declared insecure for podman and skopeo (docker takes 127.0.0.0/8 by default): it works,
    # in clear text; registry:2 itself takes every push measure.
    (root / "etc/containers/registries.conf").write_text(f'[[registry]]\nlocation = "{registry2.host}"\ninsecure = true\n')
    allowed = run_doctor(registry2.host, root, "--push-test", "doctor/scratch")
    assert allowed.exit_code == 0, allowed.output
    assert allowed.named("warn") == {"protocol"}, allowed.output
    assert allowed.named("fail") == set()
    for name in ("api", "auth", "push: streamed chunk", "push: large body", "push: locations"):
        assert allowed.outcome(name) == "ok", (name, allowed.output)


def test_push_test_without_a_sign_in(dockyard_tls: DockyardProcess, trusting_machine: pathlib.Path, tmp_path: pathlib.Path) -> None:
    nowhere = {"DOCKER_CONFIG": str(tmp_path), "REGISTRY_AUTH_FILE": str(tmp_path / "none.json"), "XDG_CONFIG_HOME": str(tmp_path)}
    diagnosis = run_doctor(dockyard_tls.host, trusting_machine, "--push-test", "doctor/scratch", env=nowhere)
    assert diagnosis.exit_code == 1
    assert diagnosis.outcome("sign-in") == "ok"  # nothing to try: not a problem by itself
    assert diagnosis.named("fail") == {"push"}, diagnosis.output
    assert "--username" in diagnosis.checks["push"]["fix"]
