"""Writing registry:2's storage layout directly: many repositories and tags without pushing them.

Both registries read this layout, so a root seeded here before a server starts
serves ``_catalog`` and ``tags/list`` as if every repository and tag had been
pushed. Every repository and tag points at one real manifest.
"""

from __future__ import annotations

import hashlib
import json
import pathlib

CATALOG_PREFIX = "catalog"
TAGS_REPOSITORY = "bench/tags"


def _write(path: pathlib.Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _blob(v2: pathlib.Path, data: bytes) -> str:
    hex_digest = hashlib.sha256(data).hexdigest()
    _write(v2 / "blobs" / "sha256" / hex_digest[:2] / hex_digest / "data", data)
    return hex_digest


def _tag(manifests: pathlib.Path, tag: str, hex_digest: str) -> None:
    link = f"sha256:{hex_digest}".encode()
    _write(manifests / "tags" / tag / "current" / "link", link)
    _write(manifests / "tags" / tag / "index" / "sha256" / hex_digest / "link", link)


def seed(root: pathlib.Path, count: int) -> None:
    """``count`` repositories ``catalog/rNNNNN`` tagged ``latest``, and ``count`` tags in ``bench/tags``."""
    v2 = root / "docker" / "registry" / "v2"
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    config_hex = _blob(v2, config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": f"sha256:{config_hex}", "size": len(config)},
        "layers": [],
    }).encode()
    manifest_hex = _blob(v2, manifest)

    def repository(name: str) -> pathlib.Path:
        repo = v2 / "repositories" / name
        _write(repo / "_layers" / "sha256" / config_hex / "link", f"sha256:{config_hex}".encode())
        _write(repo / "_manifests" / "revisions" / "sha256" / manifest_hex / "link", f"sha256:{manifest_hex}".encode())
        return repo / "_manifests"

    for n in range(count):
        _tag(repository(f"{CATALOG_PREFIX}/r{n:05d}"), "latest", manifest_hex)
    tags = repository(TAGS_REPOSITORY)
    for n in range(count):
        _tag(tags, f"t{n:05d}", manifest_hex)


def seed_gc(root: pathlib.Path, repositories: int, tags: int, garbage: int = 2) -> None:
    """For garbage collection: ``repositories`` repositories ``gc/rNNNNN`` with ``tags`` tagged
    images each (a per-repository base layer and a layer of their own) and ``garbage``
    untagged images whose layers nothing else uses."""
    v2 = root / "docker" / "registry" / "v2"
    for number in range(repositories):
        name = f"gc/r{number:05d}"
        repository = v2 / "repositories" / name
        base = _blob(v2, f"base layer of {name}\n".encode())
        for image in range(tags + garbage):
            own = _blob(v2, f"layer {image} of {name}\n".encode())
            config = _blob(v2, json.dumps({"architecture": "amd64", "os": "linux", "image": f"{name}/{image}"}).encode())
            layers = [base, own]
            for hex_digest in (config, *layers):
                _write(repository / "_layers" / "sha256" / hex_digest / "link", f"sha256:{hex_digest}".encode())
            manifest = json.dumps({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": f"sha256:{config}", "size": 1},
                "layers": [
                    {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": f"sha256:{hex_digest}", "size": 1}
                    for hex_digest in layers
                ],
            }).encode()
            hex_digest = _blob(v2, manifest)
            _write(repository / "_manifests" / "revisions" / "sha256" / hex_digest / "link", f"sha256:{hex_digest}".encode())
            if image < tags:
                _tag(repository / "_manifests", f"v{image}", hex_digest)
