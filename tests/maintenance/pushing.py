"""Pushing images over HTTP the way docker does (HEAD each blob, upload what is missing, PUT the manifest)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from tests.support.registry_client import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, sha256


@dataclass
class Pushed:
    repository: str
    manifest: bytes
    blobs: dict[str, bytes]

    @property
    def digest(self) -> str:
        return sha256(self.manifest)


async def push_image(
    client: httpx.AsyncClient, repository: str, tag: str, unique: bytes, rng: random.Random, shared: Sequence[bytes],
    gap: float = 0.0,
) -> Pushed | None:
    """Two of ``shared`` and ``unique`` as layers; ``None`` when the registry refused a step.
    Up to ``gap`` seconds (at random) pass between the uploads and the manifest, as with
    docker pushing several layers."""
    layers = [*rng.sample(list(shared), 2), unique]
    config = json.dumps({"architecture": "amd64", "os": "linux", "unique": unique.decode()}).encode()
    blobs = {sha256(data): data for data in (config, *layers)}
    for digest, data in blobs.items():
        head = await client.head(f"/v2/{repository}/blobs/{digest}")
        if head.status_code == 200:
            continue  # as docker does: skip what the registry says it has
        done = await client.post(f"/v2/{repository}/blobs/uploads/", params={"digest": digest}, content=data)
        if done.status_code != 201:
            return None
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": sha256(data), "size": len(data)} for data in layers],
    }).encode()
    if gap:
        await asyncio.sleep(rng.random() * gap)
    put = await client.put(f"/v2/{repository}/manifests/{tag}", content=manifest, headers={"Content-Type": OCI_MANIFEST})
    return Pushed(repository, manifest, blobs) if put.status_code == 201 else None
