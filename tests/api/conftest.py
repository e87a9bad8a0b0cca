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
from dockyard.storage.s3 import SEGMENTS_SUFFIX, S3Driver
from tests.support.plugin import storage_params
from tests.support.seaweedfs import SeaweedFS

STORAGES = os.environ.get("DOCKYARD_TEST_STORAGES", "filesystem,s3").split(",")

API_VERSION = "registry/2.0"


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


async def put_manifest(client, name: str, reference: str, content: bytes, media_type: str) -> ClientResponse:
    return await client.put(f"/v2/{name}/manifests/{reference}", data=content, headers={"Content-Type": media_type})


@pytest.fixture
def root(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "root"


@pytest.fixture(params=storage_params(STORAGES))
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
