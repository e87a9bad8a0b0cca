"""skopeo, podman and docker against a fresh ``dockyard serve`` over HTTPS (no TLS
option at all), trusted only through ``dockyard trust``: no insecure or
tls-verify=false flag anywhere. What ``trust`` wrote under /etc/docker/certs.d and
/etc/containers/certs.d is removed with ``trust --remove`` at teardown, and checked gone.

Note on docker: dockerd always treats 127.0.0.0/8 as an "insecure registry" (it then
speaks TLS without verifying, and never reads certs.d), so the docker test shows that
push and pull work over Dockyard's HTTPS, not that docker verified the CA. skopeo and
podman do verify, as ``test_untrusted_server_is_refused`` shows.
"""

from __future__ import annotations

import json
import pathlib
import re
from collections.abc import Iterator

import httpx
import pytest

from dockyard.tls.trust import CONTAINERS_CERTS, DOCKER_CERTS
from tests.support.clients import Dockerd, Podman, Skopeo, fetch_manifest, layout_blob
from tests.support.images import single_image_layout
from tests.tls.conftest import TlsServer, run_dockyard

FORBIDDEN = re.compile(r"insecure|tls-verify=false|--tls-verify=0|skip-verify", re.I)


def trust_files(host: str) -> list[pathlib.Path]:
    return [DOCKER_CERTS / host / "ca.crt", CONTAINERS_CERTS / host / "ca.crt"]


def _checked(result) -> str:
    assert result.returncode == 0, (result.args, result.stdout, result.stderr)
    return result.stdout


@pytest.fixture(scope="module", params=["ca-file", "fetch"])
def trusted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    """A fresh server (no TLS option) trusted with ``trust --ca TLS_DIR/ca.crt`` or with
    ``trust --fetch --fingerprint`` (the line serve printed); untrusted again afterwards."""
    server = TlsServer(tmp_path_factory.mktemp("tls-clients") / "root")
    server.start()
    assert server.extra == ["--workers", "1"] and server.url.startswith("https://")
    try:
        if request.param == "ca-file":
            _checked(run_dockyard("trust", server.host, "--ca", server.tls_dir / "ca.crt"))
        else:
            printed = re.search(rf"dockyard trust {re.escape(server.host)} --fetch --fingerprint ([0-9A-F]{{64}})", server.output())
            assert printed, server.output()
            _checked(run_dockyard("trust", server.host, "--fetch", "--fingerprint", printed.group(1)))
        for path in trust_files(server.host):
            assert path.read_bytes() == (server.tls_dir / "ca.crt").read_bytes()
        yield server
    finally:
        removed = run_dockyard("trust", server.host, "--remove")
        leftovers = [path for path in trust_files(server.host) if path.exists()]
        for path in leftovers:  # never leave a trusted CA behind, even when --remove is broken
            path.unlink()
        server.stop()
        assert removed.returncode == 0, removed.stderr
        assert leftovers == [], f"trust --remove left {leftovers}"
        assert not (DOCKER_CERTS / server.host).exists() and not (CONTAINERS_CERTS / server.host).exists()


@pytest.fixture
def api(trusted: TlsServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=trusted.url, timeout=60, verify=trusted.verify) as client:
        yield client


def _no_insecure_flags(*commands) -> None:
    for command in commands:
        assert not FORBIDDEN.search(" ".join(map(str, command.args))), command.args


def test_skopeo_push_and_pull(skopeo: Skopeo, trusted: TlsServer, api: httpx.Client, tmp_path: pathlib.Path) -> None:
    layout = tmp_path / "layout"
    descriptor = single_image_layout(layout, "v1", seed="skopeo-tls")
    remote = f"docker://{trusted.host}/tls/skopeo:v1"
    pushed = skopeo("copy", "--preserve-digests", f"oci:{layout}:v1", remote)
    served = fetch_manifest(api, "tls/skopeo", "v1")
    assert served.headers["Docker-Content-Digest"] == descriptor["digest"]
    assert served.content == layout_blob(layout, descriptor["digest"])

    back = tmp_path / "back"
    pulled = skopeo("copy", "--preserve-digests", remote, f"oci:{back}:v1")
    inspected = skopeo("inspect", "--raw", remote)
    assert inspected.stdout.encode() == served.content
    entry = json.loads((back / "index.json").read_text())["manifests"][0]
    assert entry["digest"] == descriptor["digest"]
    for layer in json.loads(served.content)["layers"]:
        assert layout_blob(back, layer["digest"]) == layout_blob(layout, layer["digest"])
    _no_insecure_flags(pushed, pulled, inspected)


def test_podman_push_and_pull(
    podman: Podman, trusted: TlsServer, api: httpx.Client, lowercase_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    layout = lowercase_dir / "image"
    descriptor = single_image_layout(layout, "v1", seed="podman-tls")
    config_digest = json.loads(layout_blob(layout, descriptor["digest"]))["config"]["digest"]
    image_id = podman("pull", "--quiet", f"oci:{layout}:v1").stdout.split()[-1]
    remote = f"{trusted.host}/tls/podman:v1"
    podman("tag", image_id, remote)
    digest_file = tmp_path / "digest"
    pushed = podman("push", "--digestfile", digest_file, remote)
    digest = digest_file.read_text().strip()
    served = fetch_manifest(api, "tls/podman", "v1")
    assert served.headers["Docker-Content-Digest"] == digest
    assert json.loads(served.content)["config"]["digest"] == config_digest

    podman("rmi", "--force", image_id)
    pulled = podman("pull", remote)
    image = json.loads(podman("image", "inspect", remote).stdout)[0]
    assert image["Digest"] == digest
    assert f"sha256:{image['Id']}" == config_digest
    assert f"{trusted.host}/tls/podman@{digest}" in image["RepoDigests"]
    _no_insecure_flags(pushed, pulled)


def test_docker_push_and_pull(
    docker: Dockerd, skopeo: Skopeo, trusted: TlsServer, api: httpx.Client, tmp_path: pathlib.Path
) -> None:
    layout = tmp_path / "layout"
    single_image_layout(layout, "v1", seed="docker-tls")
    archive = tmp_path / "image.tar"
    skopeo("copy", f"oci:{layout}:v1", f"docker-archive:{archive}:dockyard-tls/hello:v1")
    docker("load", "--input", archive)
    loaded = json.loads(docker("image", "inspect", "dockyard-tls/hello:v1").stdout)[0]

    remote = f"{trusted.host}/tls/docker:v1"
    docker("tag", "dockyard-tls/hello:v1", remote)
    pushed = docker("push", remote)
    served = fetch_manifest(api, "tls/docker", "v1")
    digest = served.headers["Docker-Content-Digest"]
    assert f"digest: {digest}" in pushed.stdout
    assert json.loads(served.content)["config"]["digest"] == loaded["Id"]

    docker("rmi", remote, "dockyard-tls/hello:v1")
    pulled = docker("pull", remote)
    image = json.loads(docker("image", "inspect", remote).stdout)[0]
    assert image["RepoDigests"] == [f"{trusted.host}/tls/docker@{digest}"]
    assert image["Id"] == loaded["Id"]
    docker("rmi", remote)
    _no_insecure_flags(pushed, pulled)


def test_untrusted_server_is_refused(skopeo: Skopeo, podman: Podman, tmp_path: pathlib.Path) -> None:
    """The control: without ``dockyard trust``, the same clients refuse the same kind of server."""
    server = TlsServer(tmp_path / "root").start()
    try:
        layout = tmp_path / "layout"
        single_image_layout(layout, "v1", seed="untrusted")
        refused = skopeo("copy", f"oci:{layout}:v1", f"docker://{server.host}/tls/untrusted:v1", check=False)
        assert refused.returncode != 0
        assert "certificate signed by unknown authority" in refused.stderr, refused.stderr
        refused = podman("pull", f"{server.host}/tls/untrusted:v1", check=False)
        assert refused.returncode != 0
        assert "certificate signed by unknown authority" in refused.stderr, refused.stderr
    finally:
        server.stop()
