"""podman push and pull against Dockyard, with podman's storage in a temporary folder."""

from __future__ import annotations

import json
import pathlib

import httpx

from tests.support.clients import ALL_MANIFESTS, Podman, fetch_manifest, layout_blob
from tests.support.images import multi_arch_layout, single_image_layout
from tests.support.server import DockyardProcess


def test_push_pull_round_trip(
    podman: Podman, dockyard: DockyardProcess, api: httpx.Client, lowercase_dir: pathlib.Path,
    tmp_path: pathlib.Path,
) -> None:
    layout = lowercase_dir / "image"
    descriptor = single_image_layout(layout, "v1", seed="podman")
    source_manifest = json.loads(layout_blob(layout, descriptor["digest"]))
    config_digest = source_manifest["config"]["digest"]
    source_config = json.loads(layout_blob(layout, config_digest))

    image_id = podman("pull", "--quiet", f"oci:{layout}:v1").stdout.split()[-1]
    assert f"sha256:{image_id}" == config_digest

    remote = f"{dockyard.host}/podman/hello:v1"
    podman("tag", image_id, remote)
    digest_file = tmp_path / "digest"
    podman("push", "--tls-verify=false", "--digestfile", digest_file, remote)
    pushed = digest_file.read_text().strip()

    served = fetch_manifest(api, "podman/hello", "v1", accept=ALL_MANIFESTS)
    assert served.headers["Docker-Content-Digest"] == pushed
    manifest = json.loads(served.content)
    assert len(manifest["layers"]) == len(source_manifest["layers"])
    served_config = api.get(f"/v2/podman/hello/blobs/{manifest['config']['digest']}")
    assert served_config.status_code == 200
    assert manifest["config"]["digest"] == config_digest
    assert served_config.content == layout_blob(layout, config_digest)
    for layer in manifest["layers"]:
        head = api.head(f"/v2/podman/hello/blobs/{layer['digest']}")
        assert head.status_code == 200
        assert int(head.headers["Content-Length"]) == layer["size"]

    podman("rmi", "--force", image_id)
    assert podman("image", "exists", remote, check=False).returncode == 1

    podman("pull", "--tls-verify=false", remote)
    pulled = json.loads(podman("image", "inspect", remote).stdout)[0]
    assert f"sha256:{pulled['Id']}" == manifest["config"]["digest"]
    assert pulled["Digest"] == pushed
    assert f"{dockyard.host}/podman/hello@{pushed}" in pulled["RepoDigests"]
    assert pulled["Config"]["Cmd"] == ["/hello"]
    assert pulled["RootFS"]["Layers"] == source_config["rootfs"]["diff_ids"]
    # podman pushes the OCI config untouched, so the image keeps its ID through the registry.
    assert pulled["Id"] == image_id

    # Pulling by digest gives the same image.
    podman("pull", "--tls-verify=false", f"{dockyard.host}/podman/hello@{pushed}")
    by_digest = json.loads(podman("image", "inspect", f"{dockyard.host}/podman/hello@{pushed}").stdout)[0]
    assert by_digest["Id"] == pulled["Id"]


def test_pull_one_platform_of_an_index(
    podman: Podman, skopeo, dockyard: DockyardProcess, tmp_path: pathlib.Path
) -> None:
    layout = tmp_path / "layout"
    index_descriptor = multi_arch_layout(layout, "v1")
    children = json.loads(layout_blob(layout, index_descriptor["digest"]))["manifests"]
    skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://{dockyard.host}/podman/multi:v1")

    remote = f"{dockyard.host}/podman/multi:v1"
    for child in children:
        arch = child["platform"]["architecture"]
        config_digest = json.loads(layout_blob(layout, child["digest"]))["config"]["digest"]
        image_id = podman("pull", "--quiet", "--tls-verify=false", "--arch", arch, remote).stdout.split()[-1]
        assert f"sha256:{image_id}" == config_digest
        image = json.loads(podman("image", "inspect", image_id).stdout)[0]
        assert image["Architecture"] == arch
        assert f"{dockyard.host}/podman/multi@{child['digest']}" in image["RepoDigests"]
