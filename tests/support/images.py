"""Build test images offline: OCI image layouts with real gzip'd tar layers.

Layers are valid tar archives and configs carry the right ``diff_ids``, so that
``docker pull`` and ``podman pull`` accept them; skopeo converts the layout to
Docker v2 schema 2 on push when asked (``--format v2s2``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import pathlib
import tarfile
from dataclasses import dataclass, field

from tests.support.registry_client import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, sha256


def make_layer(files: dict[str, bytes]) -> tuple[bytes, str]:
    """A gzip'd tar of ``files``, and the digest of the uncompressed tar (its diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 0
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(content))
    tar = raw.getvalue()
    return gzip.compress(tar, mtime=0), sha256(tar)


@dataclass
class Image:
    """One platform's image: its layers' files and its config."""

    layers: list[dict[str, bytes]]
    architecture: str = "amd64"
    os: str = "linux"
    cmd: list[str] = field(default_factory=lambda: ["/hello"])
    labels: dict[str, str] = field(default_factory=dict)


class Layout:
    """An OCI image layout directory being written."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        (path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        self.entries: list[dict] = []

    def blob(self, data: bytes, media_type: str) -> dict:
        digest = sha256(data)
        (self.path / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def image(self, image: Image) -> dict:
        """Write an image's blobs and manifest; return the manifest's descriptor."""
        layers, diff_ids = [], []
        for files in image.layers:
            compressed, diff_id = make_layer(files)
            layers.append(self.blob(compressed, OCI_LAYER))
            diff_ids.append(diff_id)
        config = {
            "architecture": image.architecture,
            "os": image.os,
            "created": "2026-01-01T00:00:00Z",
            "config": {"Cmd": image.cmd, "Labels": image.labels, "Env": ["PATH=/usr/bin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": "2026-01-01T00:00:00Z", "created_by": f"layer {n}"} for n in range(len(layers))],
        }
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self.blob(json.dumps(config).encode(), OCI_CONFIG),
            "layers": layers,
        }
        descriptor = self.blob(json.dumps(manifest).encode(), OCI_MANIFEST)
        descriptor["platform"] = {"architecture": image.architecture, "os": image.os}
        return descriptor

    def index(self, descriptors: list[dict]) -> dict:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
        return self.blob(json.dumps(index).encode(), OCI_INDEX)

    def tag(self, descriptor: dict, tag: str) -> None:
        entry = {k: v for k, v in descriptor.items() if k != "platform"}
        entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
        self.entries.append(entry)
        index = {"schemaVersion": 2, "manifests": self.entries}
        (self.path / "index.json").write_text(json.dumps(index))


def single_image_layout(path: pathlib.Path, tag: str = "latest", seed: str = "one", layer_bytes: int = 1024) -> dict:
    """A one-platform image with two layers; returns its manifest descriptor."""
    layout = Layout(path)
    filler = hashlib.sha256(seed.encode()).digest() * (layer_bytes // 32 + 1)
    descriptor = layout.image(Image(layers=[
        {"hello": f"hello from {seed}\n".encode()},
        {f"data/{seed}.bin": filler[:layer_bytes]},
    ]))
    layout.tag(descriptor, tag)
    return descriptor


def multi_arch_layout(path: pathlib.Path, tag: str = "latest") -> dict:
    """An OCI index of linux/amd64 and linux/arm64 images; returns the index descriptor."""
    layout = Layout(path)
    children = [
        layout.image(Image(layers=[{"hello": f"hello from {arch}\n".encode()}, {"arch": arch.encode()}], architecture=arch))
        for arch in ("amd64", "arm64")
    ]
    descriptor = layout.index(children)
    layout.tag(descriptor, tag)
    return descriptor
