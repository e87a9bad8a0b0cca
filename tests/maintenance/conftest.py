"""Registries built in process through the storage layer, for the maintenance tests."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator

import pytest

from dockyard.maintenance.gc import Collector, Options, Report
from dockyard.manifest import parse
from dockyard.reference import Digest
from dockyard.storage import paths
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.registry import Registry
from tests.support.images import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST


class Store:
    """Pushes through :class:`Repository` the way the API does, synchronously for tests."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.loop = asyncio.new_event_loop()

    def run(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    def blob(self, repository: str, data: bytes) -> dict:
        digest = Digest.of(data)
        self.run(self.registry.driver.put_content(paths.blob_data(digest), data))
        self.run(self.registry.repository(repository).link_layer(digest))
        return {"mediaType": OCI_LAYER, "digest": str(digest), "size": len(data)}

    def manifest(self, repository: str, document: dict, tag: str | None = None) -> Digest:
        content = json.dumps(document).encode()
        digest = Digest.of(content)
        self.run(self.registry.repository(repository).put_manifest(content, parse(content, None), digest, [tag] if tag else []))
        return digest

    def image(self, repository: str, tag: str | None, *layers: bytes, subject: Digest | None = None) -> Digest:
        config = {**self.blob(repository, json.dumps({"layers": [len(layer) for layer in layers]}).encode()), "mediaType": OCI_CONFIG}
        document: dict = {
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
            "layers": [self.blob(repository, layer) for layer in layers],
        }
        if subject is not None:
            document["subject"] = {"mediaType": OCI_MANIFEST, "digest": str(subject), "size": 1}
        return self.manifest(repository, document, tag)

    def index(self, repository: str, tag: str | None, *children: Digest) -> Digest:
        manifests = [{"mediaType": OCI_MANIFEST, "digest": str(child), "size": 1} for child in children]
        return self.manifest(repository, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}, tag)

    def collect(self, later: float = 1.0, **options) -> Report:
        """A collection that runs ``later`` seconds from now (so what exists is past a grace of 0)."""
        options.setdefault("grace_period", 0.0)
        collector = Collector(self.registry, Options(**options), clock=lambda: time.time() + later)
        return self.run(collector.run())

    def age_everything(self, seconds: float) -> None:
        """Make every file in the root ``seconds`` older."""
        root = self.registry.driver.local_file("/")
        for path in root.rglob("*"):
            when = path.stat().st_mtime - seconds
            os.utime(path, (when, when))

    def has_blob(self, digest: Digest) -> bool:
        return self.run(self.registry.blobs.exists(digest))

    def has_manifest(self, repository: str, digest: Digest) -> bool:
        return self.run(self.registry.repository(repository).has_manifest(digest))


@pytest.fixture
def store(tmp_path) -> Iterator[Store]:
    store = Store(Registry(FilesystemDriver(tmp_path / "root")))
    yield store
    store.run(store.registry.close())
    store.loop.close()
