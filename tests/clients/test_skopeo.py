"""skopeo against Dockyard: multi-arch copies, Docker v2s2 images, inspect, list-tags, delete."""

from __future__ import annotations

import json
import pathlib

import httpx

from tests.support.clients import Skopeo, fetch_manifest, layout_blob, layout_entry
from tests.support.images import multi_arch_layout, single_image_layout
from tests.support.registry_client import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, sha256
from tests.support.server import DockyardProcess

NO_TLS = "--tls-verify=false"


def test_copy_all_multi_arch_index_round_trip(
    skopeo: Skopeo, dockyard: DockyardProcess, api: httpx.Client, tmp_path: pathlib.Path
) -> None:
    source = tmp_path / "source"
    index_descriptor = multi_arch_layout(source, "v1")
    index_bytes = layout_blob(source, index_descriptor["digest"])
    children = json.loads(index_bytes)["manifests"]
    assert len(children) == 2
    remote = f"docker://{dockyard.host}/skopeo/multi:v1"

    skopeo("copy", "--all", "--preserve-digests", "--dest-tls-verify=false", f"oci:{source}:v1", remote)

    # The registry holds the index byte for byte, and each child under its own digest.
    served = fetch_manifest(api, "skopeo/multi", "v1")
    assert served.headers["Docker-Content-Digest"] == index_descriptor["digest"]
    assert served.headers["Content-Type"] == OCI_INDEX
    assert served.content == index_bytes
    for child in children:
        manifest = fetch_manifest(api, "skopeo/multi", child["digest"])
        assert manifest.content == layout_blob(source, child["digest"])
        for blob in [json.loads(manifest.content)["config"], *json.loads(manifest.content)["layers"]]:
            fetched = api.get(f"/v2/skopeo/multi/blobs/{blob['digest']}")
            assert fetched.status_code == 200
            assert fetched.content == layout_blob(source, blob["digest"])

    back = tmp_path / "back"
    skopeo("copy", "--all", "--preserve-digests", "--src-tls-verify=false", remote, f"oci:{back}:v1")

    entry = layout_entry(back, "v1")
    assert entry["digest"] == index_descriptor["digest"]
    assert entry["mediaType"] == OCI_INDEX
    copied_index = layout_blob(back, entry["digest"])
    assert sha256(copied_index) == index_descriptor["digest"]
    copied_children = json.loads(copied_index)["manifests"]
    assert [child["digest"] for child in copied_children] == [child["digest"] for child in children]
    assert [child["platform"]["architecture"] for child in copied_children] == ["amd64", "arm64"]
    for child in copied_children:
        manifest = layout_blob(back, child["digest"])
        assert sha256(manifest) == child["digest"]
        for blob in [json.loads(manifest)["config"], *json.loads(manifest)["layers"]]:
            assert layout_blob(back, blob["digest"]) == layout_blob(source, blob["digest"])


def test_copy_docker_v2s2_round_trip(
    skopeo: Skopeo, dockyard: DockyardProcess, api: httpx.Client, tmp_path: pathlib.Path
) -> None:
    source = tmp_path / "source"
    single_image_layout(source, "v1", seed="v2s2")
    remote = f"docker://{dockyard.host}/skopeo/v2s2:v1"
    pushed_digest_file = tmp_path / "pushed.digest"

    skopeo("copy", "--format", "v2s2", "--dest-tls-verify=false", "--digestfile", pushed_digest_file,
           f"oci:{source}:v1", remote)
    pushed = pushed_digest_file.read_text().strip()

    served = fetch_manifest(api, "skopeo/v2s2", "v1", accept=DOCKER_MANIFEST)
    assert served.headers["Content-Type"] == DOCKER_MANIFEST
    assert served.headers["Docker-Content-Digest"] == pushed
    manifest = json.loads(served.content)
    assert manifest["mediaType"] == DOCKER_MANIFEST
    assert manifest["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"

    # dir: keeps the manifest exactly as the registry served it.
    back = tmp_path / "back"
    skopeo("copy", "--src-tls-verify=false", remote, f"dir:{back}")
    copied = (back / "manifest.json").read_bytes()
    assert sha256(copied) == pushed
    assert copied == served.content
    for blob in [manifest["config"], *manifest["layers"]]:
        assert sha256((back / blob["digest"].split(":", 1)[1]).read_bytes()) == blob["digest"]

    # And pushed again from there, it keeps its digest.
    again_digest_file = tmp_path / "again.digest"
    skopeo("copy", "--dest-tls-verify=false", "--digestfile", again_digest_file,
           f"dir:{back}", f"docker://{dockyard.host}/skopeo/v2s2-again:v1")
    assert again_digest_file.read_text().strip() == pushed
    assert fetch_manifest(api, "skopeo/v2s2-again", "v1").content == served.content


def test_inspect(skopeo: Skopeo, dockyard: DockyardProcess, api: httpx.Client, tmp_path: pathlib.Path) -> None:
    single = tmp_path / "single"
    descriptor = single_image_layout(single, "v1", seed="inspect")
    multi = tmp_path / "multi"
    index_descriptor = multi_arch_layout(multi, "v1")
    children = json.loads(layout_blob(multi, index_descriptor["digest"]))["manifests"]
    skopeo("copy", "--dest-tls-verify=false", f"oci:{single}:v1", f"docker://{dockyard.host}/skopeo/inspect:single")
    skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{multi}:v1", f"docker://{dockyard.host}/skopeo/inspect:multi")

    info = json.loads(skopeo("inspect", NO_TLS, f"docker://{dockyard.host}/skopeo/inspect:single").stdout)
    manifest = json.loads(layout_blob(single, descriptor["digest"]))
    assert info["Digest"] == descriptor["digest"]
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"
    assert info["Layers"] == [layer["digest"] for layer in manifest["layers"]]
    assert sorted(info["RepoTags"]) == ["multi", "single"]

    raw = skopeo("inspect", "--raw", NO_TLS, f"docker://{dockyard.host}/skopeo/inspect:single").stdout
    assert raw.encode() == layout_blob(single, descriptor["digest"])
    config = json.loads(skopeo("inspect", "--config", "--raw", NO_TLS,
                               f"docker://{dockyard.host}/skopeo/inspect:single").stdout)
    assert config["config"]["Cmd"] == ["/hello"]

    raw_index = skopeo("inspect", "--raw", NO_TLS, f"docker://{dockyard.host}/skopeo/inspect:multi").stdout
    assert sha256(raw_index.encode()) == index_descriptor["digest"]
    for child in children:
        arch = child["platform"]["architecture"]
        chosen = json.loads(skopeo("--override-arch", arch, "inspect", NO_TLS,
                                   f"docker://{dockyard.host}/skopeo/inspect:multi").stdout)
        # skopeo reports the digest of what the tag names (the index) and the chosen image's contents.
        assert chosen["Digest"] == index_descriptor["digest"]
        assert chosen["Architecture"] == arch
        child_manifest = json.loads(layout_blob(multi, child["digest"]))
        assert chosen["Layers"] == [layer["digest"] for layer in child_manifest["layers"]]

    by_digest = json.loads(skopeo("inspect", NO_TLS,
                                  f"docker://{dockyard.host}/skopeo/inspect@{descriptor['digest']}").stdout)
    assert by_digest["Digest"] == descriptor["digest"]

    missing = skopeo("inspect", NO_TLS, f"docker://{dockyard.host}/skopeo/inspect:nope", check=False)
    assert missing.returncode != 0
    assert "manifest unknown" in missing.stderr.lower()


def test_list_tags(skopeo: Skopeo, dockyard: DockyardProcess, tmp_path: pathlib.Path) -> None:
    layout = tmp_path / "layout"
    single_image_layout(layout, "v1", seed="tags")
    tags = ["v1", "latest", "2.0", "a-b_c.d"]
    for tag in tags:
        skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://{dockyard.host}/skopeo/tags:{tag}")

    listed = json.loads(skopeo("list-tags", NO_TLS, f"docker://{dockyard.host}/skopeo/tags").stdout)
    assert listed["Repository"] == f"{dockyard.host}/skopeo/tags"
    assert sorted(listed["Tags"]) == sorted(tags)

    unknown = skopeo("list-tags", NO_TLS, f"docker://{dockyard.host}/skopeo/never-pushed", check=False)
    assert unknown.returncode != 0


def test_delete(skopeo: Skopeo, dockyard: DockyardProcess, api: httpx.Client, tmp_path: pathlib.Path) -> None:
    layout = tmp_path / "layout"
    doomed = single_image_layout(layout, "doomed", seed="doomed")
    kept_layout = tmp_path / "kept"
    kept = single_image_layout(kept_layout, "kept", seed="kept")
    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:doomed", f"docker://{dockyard.host}/skopeo/delete:doomed")
    skopeo("copy", "--dest-tls-verify=false", f"oci:{kept_layout}:kept", f"docker://{dockyard.host}/skopeo/delete:kept")
    assert fetch_manifest(api, "skopeo/delete", "doomed").headers["Docker-Content-Digest"] == doomed["digest"]

    skopeo("delete", NO_TLS, f"docker://{dockyard.host}/skopeo/delete:doomed")

    # skopeo deletes by digest: the manifest and the tag pointing at it are gone, the other image stays.
    assert api.get(f"/v2/skopeo/delete/manifests/{doomed['digest']}").status_code == 404
    assert api.get("/v2/skopeo/delete/manifests/doomed").status_code == 404
    assert fetch_manifest(api, "skopeo/delete", "kept").headers["Docker-Content-Digest"] == kept["digest"]
    assert api.get("/v2/skopeo/delete/tags/list").json()["tags"] == ["kept"]
    gone = skopeo("inspect", NO_TLS, f"docker://{dockyard.host}/skopeo/delete:doomed", check=False)
    assert gone.returncode != 0

    again = skopeo("delete", NO_TLS, f"docker://{dockyard.host}/skopeo/delete@{doomed['digest']}", check=False)
    assert again.returncode != 0


def test_oci_manifest_media_type_kept(skopeo: Skopeo, dockyard: DockyardProcess, api: httpx.Client,
                                      tmp_path: pathlib.Path) -> None:
    layout = tmp_path / "layout"
    descriptor = single_image_layout(layout, "v1", seed="oci")
    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://{dockyard.host}/skopeo/oci:v1")
    served = fetch_manifest(api, "skopeo/oci", "v1")
    assert served.headers["Content-Type"] == OCI_MANIFEST
    assert served.headers["Docker-Content-Digest"] == descriptor["digest"]
