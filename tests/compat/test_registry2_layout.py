"""Dockyard and registry:2 (Debian's ``docker-registry``) serve each other's data directory.

1. skopeo pushes to registry:2; Dockyard serves that root and everything pulls back
   unchanged; catalog, tags, blobs, manifest delete and untag work over it.
2. skopeo pushes to Dockyard; registry:2 serves that root, pulls back unchanged, and
   its garbage collector finds nothing to delete.
3. Byte level: the same pushes leave the same files in both roots, and link files
   hold ``sha256:<hex>`` with no newline.
"""

from __future__ import annotations

import json
import pathlib
import re

import httpx
import pytest

from tests.compat.conftest import EXPECTED_TAGS, PUSHES, PushedRoot, Skopeo, Sources, storage, stored_blob
from tests.support.registry2 import Registry2Process
from tests.support.registry_client import OCI_INDEX, sha256
from tests.support.server import DockyardProcess

DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_ACCEPT = ", ".join([
    OCI_INDEX,
    DOCKER_LIST,
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])
IMAGES = sorted({(push.repository, push.tag) for push in PUSHES})
LINK = re.compile(rb"sha256:[0-9a-f]{64}")
GZIP = b"\x1f\x8b"


def _walk(read, digest: str) -> dict[str, bytes]:
    """Every blob reachable from a manifest or index: digest -> content, the manifest included."""
    found: dict[str, bytes] = {}
    pending = [digest]
    while pending:
        current = pending.pop()
        if current in found:
            continue
        content = read(current)
        found[current] = content
        document = json.loads(content)
        if "manifests" in document:
            pending.extend(child["digest"] for child in document["manifests"])
        else:
            found[document["config"]["digest"]] = read(document["config"]["digest"])
            for layer in document["layers"]:
                found[layer["digest"]] = read(layer["digest"])
    return found


def _pull_and_compare(skopeo: Skopeo, host: str, pushed: PushedRoot, repository: str, tag: str, out: pathlib.Path) -> dict[str, bytes]:
    """Pull an image with skopeo; its digest and every blob must match what the root holds."""
    skopeo.pull(f"{host}/{repository}:{tag}", out, tag)
    index = json.loads((out / "index.json").read_text())
    pulled = [entry["digest"] for entry in index["manifests"]
              if entry.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
    assert pulled == [pushed.digests[repository, tag]]

    def read_pulled(digest: str) -> bytes:
        return (out / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()

    blobs = _walk(read_pulled, pulled[0])
    for digest, content in blobs.items():
        assert sha256(content) == digest
        assert content == stored_blob(pushed.root, digest), f"{digest} differs from the copy in the root"
    return blobs


def _source_of(repository: str, tag: str) -> str:
    return [push for push in PUSHES if (push.repository, push.tag) == (repository, tag)][-1].source


def _check_against_sources(sources: Sources, repository: str, tag: str, blobs: dict[str, bytes]) -> None:
    """Layers (and, unconverted, every blob) are the bytes of the layout that was pushed."""
    source = _source_of(repository, tag)
    expected = _walk(lambda digest: sources.blob(source, digest), sources.descriptors[source]["digest"])
    converted = [push for push in PUSHES if (push.repository, push.tag) == (repository, tag) and "--format" in push.flags]
    if converted:
        layers = {digest for digest, content in expected.items() if content[:2] == GZIP}
        assert layers and layers <= set(blobs)
        for digest in layers:
            assert blobs[digest] == expected[digest]
    else:
        assert blobs == expected


def _files(root: pathlib.Path, under: str) -> set[str]:
    base = storage(root) / under
    return {path.relative_to(base).as_posix() for path in base.rglob("*") if path.is_file()}


def _comparable(paths: set[str]) -> set[str]:
    """Drop what legitimately differs: uploads in progress, Dockyard's referrers index, upload state."""
    kept = set()
    for path in paths:
        parts = path.split("/")
        if "_uploads" in parts or parts[-1] == "startedat" or "hashstates" in parts:
            continue
        if "_manifests/referrers/" in path + "/":
            continue
        kept.add(path)
    return kept


# 1. registry:2 wrote it, Dockyard serves it

@pytest.mark.parametrize(("repository", "tag"), IMAGES)
def test_dockyard_pulls_what_registry2_pushed(
    dockyard_over_registry2: DockyardProcess, registry2_pushed: PushedRoot, skopeo: Skopeo, sources: Sources,
    repository: str, tag: str, tmp_path: pathlib.Path,
) -> None:
    blobs = _pull_and_compare(skopeo, dockyard_over_registry2.host, registry2_pushed, repository, tag, tmp_path / "pulled")
    _check_against_sources(sources, repository, tag, blobs)
    response = httpx.get(
        f"{dockyard_over_registry2.url}/v2/{repository}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT},
    )
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == registry2_pushed.digests[repository, tag]
    assert sha256(response.content) == registry2_pushed.digests[repository, tag]


def test_dockyard_catalog_and_tags_over_registry2_data(dockyard_over_registry2: DockyardProcess) -> None:
    url = dockyard_over_registry2.url
    catalog = httpx.get(f"{url}/v2/_catalog")
    assert catalog.status_code == 200
    assert catalog.json() == {"repositories": sorted(EXPECTED_TAGS)}
    paged = httpx.get(f"{url}/v2/_catalog", params={"n": 1})
    assert paged.json() == {"repositories": ["compat/app"]}
    for repository, tags in EXPECTED_TAGS.items():
        listed = httpx.get(f"{url}/v2/{repository}/tags/list")
        assert listed.status_code == 200
        assert listed.json() == {"name": repository, "tags": tags}


def test_dockyard_blobs_over_registry2_data(dockyard_over_registry2: DockyardProcess, registry2_pushed: PushedRoot) -> None:
    url = dockyard_over_registry2.url
    app_blobs = _walk(lambda digest: stored_blob(registry2_pushed.root, digest), registry2_pushed.digests["compat/app", "multi"])
    layers = {digest: content for digest, content in app_blobs.items() if content[:2] == GZIP}
    assert len(layers) == 4   # two platforms, two layers each
    for digest, content in layers.items():
        head = httpx.head(f"{url}/v2/compat/app/blobs/{digest}")
        assert head.status_code == 200
        assert int(head.headers["Content-Length"]) == len(content)
        assert head.headers["Docker-Content-Digest"] == digest
        got = httpx.get(f"{url}/v2/compat/app/blobs/{digest}")
        assert got.status_code == 200
        assert got.content == content
        assert sha256(got.content) == digest
        # Linked only in compat/app: compat/other must not serve it.
        assert httpx.head(f"{url}/v2/compat/other/blobs/{digest}").status_code == 404
    # compat/other's layers, shared with compat/app, are served by both.
    shared = _walk(lambda digest: stored_blob(registry2_pushed.root, digest), registry2_pushed.digests["compat/other", "shared"])
    for digest, content in shared.items():
        if digest == registry2_pushed.digests["compat/other", "shared"]:
            continue
        for repository in ("compat/other", "compat/app"):
            got = httpx.get(f"{url}/v2/{repository}/blobs/{digest}")
            assert got.status_code == 200, (repository, digest)
            assert got.content == content
    ranged = httpx.get(f"{url}/v2/compat/app/blobs/{next(iter(layers))}", headers={"Range": "bytes=0-9"})
    assert ranged.status_code == 206
    assert ranged.content == next(iter(layers.values()))[:10]


def test_dockyard_deletes_over_registry2_data(
    registry2_pushed: PushedRoot, skopeo: Skopeo, tmp_path: pathlib.Path,
) -> None:
    """Untag and manifest delete by Dockyard on registry:2's data; registry:2 then agrees."""
    pushed = registry2_pushed
    root = pushed.copy_to(tmp_path / "root")
    v2s2 = pushed.digests["compat/app", "v2s2"]
    oci = pushed.digests["compat/app", "oci"]
    dockyard = DockyardProcess(root).start()
    try:
        url = dockyard.url
        assert httpx.delete(f"{url}/v2/compat/app/manifests/oci-alias").status_code == 202
        assert httpx.delete(f"{url}/v2/compat/app/manifests/{v2s2}").status_code == 202
        tags = httpx.get(f"{url}/v2/compat/app/tags/list").json()["tags"]
        assert tags == ["moving", "multi", "oci"]
        assert httpx.get(f"{url}/v2/compat/app/manifests/{v2s2}", headers={"Accept": MANIFEST_ACCEPT}).status_code == 404
        assert httpx.get(f"{url}/v2/compat/app/manifests/v2s2", headers={"Accept": MANIFEST_ACCEPT}).status_code == 404
        assert httpx.get(f"{url}/v2/compat/app/manifests/oci-alias", headers={"Accept": MANIFEST_ACCEPT}).status_code == 404
        kept = httpx.get(f"{url}/v2/compat/app/manifests/oci", headers={"Accept": MANIFEST_ACCEPT})
        assert kept.status_code == 200 and kept.headers["Docker-Content-Digest"] == oci
    finally:
        dockyard.stop()

    app = storage(root) / "repositories" / "compat" / "app" / "_manifests"
    assert not (app / "tags" / "oci-alias").exists()
    assert not (app / "tags" / "v2s2").exists()
    assert not (app / "revisions" / "sha256" / v2s2.split(":")[1] / "link").exists()
    assert (app / "revisions" / "sha256" / oci.split(":")[1] / "link").read_bytes() == oci.encode()
    assert (app / "tags" / "oci" / "current" / "link").read_bytes() == oci.encode()
    # Deleting a manifest drops links only; content is left to the garbage collector.
    assert sha256(stored_blob(root, v2s2)) == v2s2

    registry2 = Registry2Process(root).start()
    try:
        url = registry2.url
        listed = httpx.get(f"{url}/v2/compat/app/tags/list").json()
        assert listed["name"] == "compat/app"
        assert sorted(listed["tags"]) == ["moving", "multi", "oci"]   # registry:2 2.8 lists in directory order
        assert httpx.get(f"{url}/v2/compat/app/manifests/{v2s2}", headers={"Accept": MANIFEST_ACCEPT}).status_code == 404
        kept = httpx.get(f"{url}/v2/compat/app/manifests/oci", headers={"Accept": MANIFEST_ACCEPT})
        assert kept.status_code == 200 and kept.headers["Docker-Content-Digest"] == oci
        _pull_and_compare(skopeo, registry2.host, PushedRoot(root, dict(pushed.digests)), "compat/app", "oci", tmp_path / "pulled")
    finally:
        registry2.stop()


# 2. Dockyard wrote it, registry:2 serves it

@pytest.mark.parametrize(("repository", "tag"), IMAGES)
def test_registry2_pulls_what_dockyard_pushed(
    registry2_over_dockyard: Registry2Process, dockyard_pushed: PushedRoot, skopeo: Skopeo, sources: Sources,
    repository: str, tag: str, tmp_path: pathlib.Path,
) -> None:
    blobs = _pull_and_compare(skopeo, registry2_over_dockyard.host, dockyard_pushed, repository, tag, tmp_path / "pulled")
    _check_against_sources(sources, repository, tag, blobs)
    response = httpx.get(
        f"{registry2_over_dockyard.url}/v2/{repository}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT},
    )
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == dockyard_pushed.digests[repository, tag]


def test_registry2_catalog_and_tags_over_dockyard_data(registry2_over_dockyard: Registry2Process) -> None:
    url = registry2_over_dockyard.url
    catalog = httpx.get(f"{url}/v2/_catalog")
    assert catalog.status_code == 200
    assert catalog.json() == {"repositories": sorted(EXPECTED_TAGS)}
    for repository, tags in EXPECTED_TAGS.items():
        listed = httpx.get(f"{url}/v2/{repository}/tags/list")
        assert listed.status_code == 200
        assert listed.json()["name"] == repository
        assert sorted(listed.json()["tags"]) == tags   # registry:2 2.8 lists in directory order


def test_registry2_garbage_collect_finds_nothing_in_dockyard_data(dockyard_pushed: PushedRoot, tmp_path: pathlib.Path) -> None:
    root = dockyard_pushed.copy_to(tmp_path / "root")
    before = _files(root, "")
    result = Registry2Process(root).garbage_collect("--dry-run")
    assert result.returncode == 0, result.stderr
    summary = re.search(r"(\d+) blobs marked, (\d+) blobs and (\d+) manifests eligible for deletion", result.stdout)
    assert summary, result.stdout + result.stderr
    blobs = _files(root, "blobs")
    assert (int(summary.group(1)), int(summary.group(2)), int(summary.group(3))) == (len(blobs), 0, 0), result.stdout
    assert "eligible for deletion:" not in result.stdout
    # Every manifest in every repository was read and marked.
    for repository, _tag, digest in dockyard_pushed.history:
        assert f"{repository}: marking manifest {digest}" in result.stdout, (repository, digest)
    assert _files(root, "") == before


# 3. Byte level: the same files, the same link contents

def test_dockyard_link_files_are_bare_digests(dockyard_pushed: PushedRoot) -> None:
    repositories = storage(dockyard_pushed.root) / "repositories"
    links = [path for path in repositories.rglob("link") if "_uploads" not in path.parts]
    assert len(links) > 20
    for path in links:
        content = path.read_bytes()
        assert LINK.fullmatch(content), f"{path}: {content!r}"
        parts = path.relative_to(repositories).parts
        if parts[-2] != "current":
            # .../<alg>/<hex>/link names the digest it holds
            assert content.decode() == f"{parts[-3]}:{parts[-2]}", path
    assert not [path for path in repositories.rglob("*") if path.name.endswith(".tmp")]


def test_repository_files_match_registry2(registry2_pushed: PushedRoot, dockyard_pushed: PushedRoot) -> None:
    """The same pushes give the same files under ``repositories/``, with the same bytes."""
    assert registry2_pushed.history == dockyard_pushed.history
    theirs = _comparable(_files(registry2_pushed.root, "repositories"))
    ours = _comparable(_files(dockyard_pushed.root, "repositories"))
    assert theirs, "registry:2 wrote nothing"
    assert sorted(ours - theirs) == [], "files Dockyard writes that registry:2 does not"
    assert sorted(theirs - ours) == [], "files registry:2 writes that Dockyard does not"
    for relative in theirs:
        ours_bytes = (storage(dockyard_pushed.root) / "repositories" / relative).read_bytes()
        theirs_bytes = (storage(registry2_pushed.root) / "repositories" / relative).read_bytes()
        assert ours_bytes == theirs_bytes, relative


def test_blob_store_matches_registry2(registry2_pushed: PushedRoot, dockyard_pushed: PushedRoot) -> None:
    theirs = _files(registry2_pushed.root, "blobs")
    ours = _files(dockyard_pushed.root, "blobs")
    assert theirs and ours == theirs
    for relative in theirs:
        content = (storage(dockyard_pushed.root) / "blobs" / relative).read_bytes()
        assert content == (storage(registry2_pushed.root) / "blobs" / relative).read_bytes()
        assert sha256(content) == "sha256:" + relative.split("/")[-2]
