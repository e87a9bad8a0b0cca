"""Fixtures and helpers for the API integration tests.

Most tests run the real aiohttp application on 127.0.0.1 with an ephemeral port
(pytest-aiohttp's ``aiohttp_client``) over the ``storage`` fixture: a filesystem driver
rooted in ``tmp_path``, or the S3 driver on the session's SeaweedFS in a fresh
rootdirectory. ``DOCKYARD_TEST_STORAGES`` (comma-separated: ``filesystem``, ``s3``) says
which; with both, every such test runs on each. Tests that need a real process
(restart, ``--no-delete``, ``--workers``) use :class:`tests.support.server.DockyardProcess`.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import ClientResponse
from yarl import URL

from dockyard.api.app import create_app
from dockyard.config import S3
from dockyard.storage.driver import StorageDriver
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.registry import Registry
from dockyard.storage.s3 import S3Driver, SEGMENTS_SUFFIX
from tests.support.seaweedfs import SeaweedFS

STORAGES = os.environ.get("DOCKYARD_TEST_STORAGES", "filesystem,s3").split(",")

API_VERSION = "registry/2.0"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


@dataclass(frozen=True)
class FilesystemStorage:
    root: pathlib.Path

    def driver(self) -> StorageDriver:
        self.root.mkdir(exist_ok=True)
        return FilesystemDriver(self.root)

    def files(self) -> set[str]:
        if not self.root.exists():
            return set()
        return {str(path.relative_to(self.root)) for path in self.root.rglob("*") if not path.is_dir()}


@dataclass(frozen=True)
class S3Storage:
    server: SeaweedFS
    settings: S3

    def driver(self) -> StorageDriver:
        return S3Driver(self.settings, redirect=False)  # served through the registry, as the tests expect

    def files(self) -> set[str]:
        """The keys under the rootdirectory, as the driver shows them (no appendable file's segments)."""
        prefix = self.settings.rootdirectory.strip("/") + "/"
        pages = self.server.client().get_paginator("list_objects_v2").paginate(Bucket=self.settings.bucket, Prefix=prefix)
        keys = {item["Key"].removeprefix(prefix) for page in pages for item in page.get("Contents", ())}
        return {key for key in keys if not key.endswith("/") and f"{SEGMENTS_SUFFIX}/" not in key}


def snapshot(storage: FilesystemStorage | S3Storage) -> set[str]:
    """Every file (not directory) in the storage, relative to its root."""
    return storage.files()


async def error_of(response: ClientResponse, status: int, code: str) -> dict[str, Any]:
    """Assert a spec error response; return its single error entry."""
    body = await response.read()
    assert response.status == status, (response.status, body[:500])
    assert response.headers["Docker-Distribution-API-Version"] == API_VERSION
    assert response.headers["Content-Type"].startswith("application/json")
    document = json.loads(body)
    assert isinstance(document, dict) and list(document) == ["errors"]
    assert len(document["errors"]) == 1
    entry = document["errors"][0]
    assert entry["code"] == code, entry
    assert isinstance(entry["message"], str) and entry["message"]
    return entry


def byteranges(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    """The Content-Range and bytes of each part of a ``multipart/byteranges`` body, whose framing is checked."""
    media_type, _, parameter = content_type.partition(";")
    name, _, boundary = parameter.strip().partition("=")
    assert media_type == "multipart/byteranges" and name == "boundary" and boundary, content_type
    delimiter = b"\r\n--" + boundary.encode()
    pieces = (b"\r\n" + body).split(delimiter)
    assert pieces[0] == b"" and pieces[-1] == b"--\r\n", (pieces[0][:100], pieces[-1][:100])
    parts = []
    for piece in pieces[1:-1]:
        assert piece.startswith(b"\r\n")
        heading, _, data = piece[2:].partition(b"\r\n\r\n")
        fields = dict(line.decode().split(": ", 1) for line in heading.split(b"\r\n"))
        assert fields.keys() == {"Content-Type", "Content-Range"}, fields
        assert fields["Content-Type"] == "application/octet-stream"
        parts.append((fields["Content-Range"], data))
    return parts


def raw_url(client, raw_path: str) -> URL:
    """A URL on the test server whose path is sent exactly as written (no ``..`` folding)."""
    base = str(client.make_url("/")).rstrip("/")
    return URL(base + raw_path, encoded=True)


async def raw_request(client, method: str, raw_path: str, **kwargs: Any) -> ClientResponse:
    return await client.session.request(method, raw_url(client, raw_path), **kwargs)


async def push_blob(client, name: str, data: bytes, digest: str | None = None) -> str:
    """A monolithic upload (POST then PUT); returns the digest."""
    digest = digest or sha256(data)
    response = await client.post(f"/v2/{name}/blobs/uploads/")
    assert response.status == 202, await response.text()
    location = response.headers["Location"]
    response = await client.put(location, params={"digest": digest}, data=data)
    assert response.status == 201, await response.text()
    return digest


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **extra}


def odd_json(document: Any) -> bytes:
    """Valid but non-canonical JSON: odd spacing, newlines, unsorted keys."""
    text = json.dumps(document, indent=3, separators=(" ,  ", " :\t"))
    return ("\n \t" + text + "\r\n  \n").encode()


async def push_image(
    client,
    name: str,
    *,
    media_type: str = OCI_MANIFEST,
    seed: str = "one",
    tag: str | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[str, bytes]:
    """Push a config and a layer and a manifest naming them; returns (digest, manifest bytes)."""
    docker = media_type == DOCKER_MANIFEST
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    layer = f"layer bytes for {seed}".encode() * 7
    await push_blob(client, name, config)
    await push_blob(client, name, layer)
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": descriptor(DOCKER_CONFIG if docker else OCI_CONFIG, config),
        "layers": [descriptor(DOCKER_LAYER if docker else OCI_LAYER, layer)],
        **(extra or {}),
    }
    content = odd_json(manifest)
    digest = sha256(content)
    response = await client.put(
        f"/v2/{name}/manifests/{tag or digest}", data=content, headers={"Content-Type": media_type}
    )
    assert response.status == 201, await response.text()
    assert response.headers["Docker-Content-Digest"] == digest
    return digest, content


async def put_manifest(client, name: str, reference: str, content: bytes, media_type: str) -> ClientResponse:
    return await client.put(f"/v2/{name}/manifests/{reference}", data=content, headers={"Content-Type": media_type})


@pytest.fixture
def root(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "root"


@pytest.fixture(params=STORAGES)
def storage(request: pytest.FixtureRequest, root: pathlib.Path) -> FilesystemStorage | S3Storage:
    if request.param == "s3":
        return S3Storage(request.getfixturevalue("seaweedfs"), request.getfixturevalue("s3_settings"))
    return FilesystemStorage(root)


@pytest.fixture
def registry(storage: FilesystemStorage | S3Storage) -> Registry:
    return Registry(storage.driver())


@pytest.fixture
async def client(aiohttp_client, registry: Registry):
    return await aiohttp_client(create_app(registry))
