"""Writing registry:2's storage layout directly: many repositories and tags without pushing them.

Both registries read this layout, so a root (or bucket) seeded here before a server starts
serves ``_catalog`` and ``tags/list`` as if every repository and tag had been
pushed. Every repository and tag points at one real manifest.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from collections.abc import Callable

CATALOG_PREFIX = "catalog"
TAGS_REPOSITORY = "bench/tags"
V2 = pathlib.PurePosixPath("docker/registry/v2")

Write = Callable[[str, bytes], None]
"""Stores a file of the layout: its path below the storage root (``docker/registry/v2/...``), its bytes."""


def into_directory(root: pathlib.Path) -> Write:
    """Writes files under ``root``."""

    def write(key: str, data: bytes) -> None:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    return write


class _Layout:
    def __init__(self, write: Write) -> None:
        self.write = write

    def file(self, path: pathlib.PurePosixPath, data: bytes) -> None:
        self.write(str(path), data)

    def blob(self, data: bytes) -> str:
        hex_digest = hashlib.sha256(data).hexdigest()
        self.file(V2 / "blobs" / "sha256" / hex_digest[:2] / hex_digest / "data", data)
        return hex_digest

    def tag(self, manifests: pathlib.PurePosixPath, tag: str, hex_digest: str) -> None:
        link = f"sha256:{hex_digest}".encode()
        self.file(manifests / "tags" / tag / "current" / "link", link)
        self.file(manifests / "tags" / tag / "index" / "sha256" / hex_digest / "link", link)


def seed(write: Write, count: int) -> None:
    """``count`` repositories ``catalog/rNNNNN`` tagged ``latest``, and ``count`` tags in ``bench/tags``."""
    layout = _Layout(write)
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    config_hex = layout.blob(config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": f"sha256:{config_hex}", "size": len(config)},
        "layers": [],
    }).encode()
    manifest_hex = layout.blob(manifest)

    def repository(name: str) -> pathlib.PurePosixPath:
        repo = V2 / "repositories" / name
        layout.file(repo / "_layers" / "sha256" / config_hex / "link", f"sha256:{config_hex}".encode())
        layout.file(repo / "_manifests" / "revisions" / "sha256" / manifest_hex / "link", f"sha256:{manifest_hex}".encode())
        return repo / "_manifests"

    for n in range(count):
        layout.tag(repository(f"{CATALOG_PREFIX}/r{n:05d}"), "latest", manifest_hex)
    tags = repository(TAGS_REPOSITORY)
    for n in range(count):
        layout.tag(tags, f"t{n:05d}", manifest_hex)


def seed_gc(write: Write, repositories: int, tags: int, garbage: int = 2, garbage_only: bool = False) -> None:
    """For garbage collection: ``repositories`` repositories ``gc/rNNNNN`` with ``tags`` tagged
    images each (a per-repository base layer and a layer of their own) and ``garbage``
    untagged images whose layers nothing else uses; with ``garbage_only``, only those (again,
    after a collection removed them from a seeded root)."""
    layout = _Layout(write)
    for number in range(repositories):
        name = f"gc/r{number:05d}"
        repository = V2 / "repositories" / name
        base = layout.blob(f"base layer of {name}\n".encode())
        for image in range(tags if garbage_only else 0, tags + garbage):
            own = layout.blob(f"layer {image} of {name}\n".encode())
            config = layout.blob(json.dumps({"architecture": "amd64", "os": "linux", "image": f"{name}/{image}"}).encode())
            layers = [base, own]
            for hex_digest in (config, *layers):
                layout.file(repository / "_layers" / "sha256" / hex_digest / "link", f"sha256:{hex_digest}".encode())
            manifest = json.dumps({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": f"sha256:{config}", "size": 1},
                "layers": [
                    {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": f"sha256:{hex_digest}", "size": 1}
                    for hex_digest in layers
                ],
            }).encode()
            hex_digest = layout.blob(manifest)
            layout.file(repository / "_manifests" / "revisions" / "sha256" / hex_digest / "link", f"sha256:{hex_digest}".encode())
            if image < tags:
                layout.tag(repository / "_manifests", f"v{image}", hex_digest)
