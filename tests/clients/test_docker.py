"""docker push and pull against Dockyard, through a dockerd this module starts and stops itself."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.clients.conftest import (
    DOCKER_MANIFEST,
    Skopeo,
    fetch_manifest,
    layout_blob,
    require_tool,
    run,
    unavailable,
)
from tests.support.images import multi_arch_layout, single_image_layout
from tests.support.processes import terminate
from tests.support.server import DockyardProcess

pytestmark = pytest.mark.clients

START_SECONDS = 60


class Dockerd:
    """A private dockerd: vfs storage, no networking changes, every path under one temporary folder.

    The folder comes from ``tempfile.mkdtemp`` under the system temporary directory
    rather than pytest's (deeper) one, because a unix socket path must fit in 108 bytes.
    """

    def __init__(self, dockerd: str, docker: str, env: dict[str, str]) -> None:
        self.dockerd = dockerd
        self.docker_cli = docker
        self.env = env
        self.base = pathlib.Path(tempfile.mkdtemp(prefix="dy-dockerd-"))
        if len(str(self.base)) > 60:  # a long TMPDIR: fall back to the usual short one
            shutil.rmtree(self.base)
            self.base = pathlib.Path(tempfile.mkdtemp(prefix="dy-dockerd-", dir="/tmp"))
        self.socket = self.base / "d.sock"
        self.host = f"unix://{self.socket}"
        self.log = self.base / "dockerd.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            self.dockerd,
            "--iptables=false", "--ip6tables=false", "--bridge=none",
            "--ip-forward=false", "--ip-masq=false",
            "--storage-driver=vfs",
            "--data-root", str(self.base / "data"),
            "--exec-root", str(self.base / "exec"),
            "--pidfile", str(self.base / "dockerd.pid"),
            "--host", self.host,
        ]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env
            )
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self.socket.exists():
                probe = subprocess.run(
                    [self.docker_cli, "-H", self.host, "version"],
                    capture_output=True, env=self.env, timeout=30, stdin=subprocess.DEVNULL,
                )
                if probe.returncode == 0:
                    return
            time.sleep(0.2)
        tail = self.log.read_text(errors="replace")[-4000:]
        self.stop()
        unavailable(f"dockerd could not be started here:\n{tail}")

    def __call__(self, *args: str | os.PathLike[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([self.docker_cli, "-H", self.host, *args], env=self.env, check=check)

    def stop(self) -> None:
        process, self.process = self.process, None
        terminate(process, timeout=60)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def docker(client_env: dict[str, str]) -> Iterator[Dockerd]:
    tools = require_tool("dockerd", "docker")
    daemon = Dockerd(tools["dockerd"], tools["docker"], client_env)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()


def test_push_pull_round_trip(
    docker: Dockerd, skopeo: Skopeo, dockyard: DockyardProcess, api: httpx.Client, tmp_path: pathlib.Path
) -> None:
    layout = tmp_path / "layout"
    descriptor = single_image_layout(layout, "v1", seed="docker")
    source_manifest = json.loads(layout_blob(layout, descriptor["digest"]))
    source_config = json.loads(layout_blob(layout, source_manifest["config"]["digest"]))
    archive = tmp_path / "image.tar"
    skopeo("copy", f"oci:{layout}:v1", f"docker-archive:{archive}:dockyard-test/hello:v1")

    docker("load", "--input", archive)
    loaded = json.loads(docker("image", "inspect", "dockyard-test/hello:v1").stdout)[0]
    assert loaded["RootFS"]["Layers"] == source_config["rootfs"]["diff_ids"]

    remote = f"{dockyard.host}/docker/hello:v1"
    docker("tag", "dockyard-test/hello:v1", remote)
    pushed_output = docker("push", remote).stdout
    served = fetch_manifest(api, "docker/hello", "v1")
    pushed = served.headers["Docker-Content-Digest"]
    assert f"digest: {pushed}" in pushed_output
    assert served.headers["Content-Type"] == DOCKER_MANIFEST
    manifest = json.loads(served.content)
    assert manifest["mediaType"] == DOCKER_MANIFEST
    assert manifest["config"]["digest"] == loaded["Id"]
    assert len(manifest["layers"]) == len(source_manifest["layers"])
    for blob in [manifest["config"], *manifest["layers"]]:
        head = api.head(f"/v2/docker/hello/blobs/{blob['digest']}")
        assert head.status_code == 200
        assert int(head.headers["Content-Length"]) == blob["size"]

    docker("rmi", remote, "dockyard-test/hello:v1")
    assert docker("image", "inspect", remote, check=False).returncode != 0

    docker("pull", remote)
    pulled = json.loads(docker("image", "inspect", remote).stdout)[0]
    assert pulled["RepoDigests"] == [f"{dockyard.host}/docker/hello@{pushed}"]
    assert pulled["Id"] == loaded["Id"]
    assert pulled["RootFS"]["Layers"] == source_config["rootfs"]["diff_ids"]
    assert pulled["Config"]["Cmd"] == ["/hello"]

    # A second push of the same image finds every blob already there and keeps the digest.
    again_output = docker("push", remote).stdout
    assert f"digest: {pushed}" in again_output
    assert "Layer already exists" in again_output
    docker("rmi", remote)

    docker("pull", f"{dockyard.host}/docker/hello@{pushed}")
    by_digest = json.loads(docker("image", "inspect", f"{dockyard.host}/docker/hello@{pushed}").stdout)[0]
    assert by_digest["Id"] == loaded["Id"]


def test_cross_repository_push_mounts_blobs(
    docker: Dockerd, skopeo: Skopeo, dockyard: DockyardProcess, api: httpx.Client, tmp_path: pathlib.Path
) -> None:
    layout = tmp_path / "layout"
    single_image_layout(layout, "v1", seed="docker-mount")
    archive = tmp_path / "image.tar"
    skopeo("copy", f"oci:{layout}:v1", f"docker-archive:{archive}:dockyard-test/mount:v1")
    docker("load", "--input", archive)
    first = f"{dockyard.host}/docker/mount-a:v1"
    second = f"{dockyard.host}/docker/mount-b:v1"
    docker("tag", "dockyard-test/mount:v1", first)
    docker("push", first)
    docker("tag", "dockyard-test/mount:v1", second)

    output = docker("push", second).stdout
    # docker knows the layers are in mount-a and asks the registry to mount them.
    assert "Mounted from docker/mount-a" in output
    a = fetch_manifest(api, "docker/mount-a", "v1")
    b = fetch_manifest(api, "docker/mount-b", "v1")
    assert b.content == a.content
    for layer in json.loads(b.content)["layers"]:
        assert api.head(f"/v2/docker/mount-b/blobs/{layer['digest']}").status_code == 200

    docker("rmi", first, second, "dockyard-test/mount:v1")
    docker("pull", second)
    pulled = json.loads(docker("image", "inspect", second).stdout)[0]
    assert pulled["RepoDigests"] == [f"{dockyard.host}/docker/mount-b@{b.headers['Docker-Content-Digest']}"]
    docker("rmi", second)


def test_pull_multi_arch_index(
    docker: Dockerd, skopeo: Skopeo, dockyard: DockyardProcess, api: httpx.Client, tmp_path: pathlib.Path
) -> None:
    layout = tmp_path / "layout"
    index_descriptor = multi_arch_layout(layout, "v1")
    children = json.loads(layout_blob(layout, index_descriptor["digest"]))["manifests"]
    amd64 = next(child for child in children if child["platform"]["architecture"] == "amd64")
    amd64_config = json.loads(layout_blob(layout, amd64["digest"]))["config"]["digest"]
    skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://{dockyard.host}/docker/multi:v1")

    remote = f"{dockyard.host}/docker/multi:v1"
    docker("pull", remote)
    pulled = json.loads(docker("image", "inspect", remote).stdout)[0]
    # docker resolves the OCI index to its linux/amd64 image and records the index's digest.
    assert pulled["RepoDigests"] == [f"{dockyard.host}/docker/multi@{index_descriptor['digest']}"]
    assert pulled["Id"] == amd64_config
    assert pulled["Architecture"] == "amd64"
    docker("rmi", remote)
