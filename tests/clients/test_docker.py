"""docker push and pull against Dockyard, through a dockerd this module starts and stops itself."""

from __future__ import annotations

import json
import pathlib

import httpx

from tests.support.clients import Dockerd, Skopeo, fetch_manifest, layout_blob
from tests.support.images import multi_arch_layout, single_image_layout
from tests.support.registry_client import DOCKER_MANIFEST
from tests.support.server import DockyardProcess


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
