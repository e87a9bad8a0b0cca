"""Read-only mode (``serve --read-only``, registry:2's ``storage.maintenance.readonly.enabled``):
every write on a ``/v2/`` route is 405 ``UNSUPPORTED`` and changes nothing; reads still work."""

from __future__ import annotations

import hashlib
import json
import pathlib
import textwrap

import httpx
import pytest

from dockyard.api import routes
from dockyard.api.app import WRITE_METHODS, create_app
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.registry import Registry
from tests.support.registry_client import OCI_MANIFEST, push_blob, push_image, sha256
from tests.support.server import DockyardProcess

from .conftest import error_of

MESSAGE = "the registry is in read-only mode"
NAME = "team/app"
NEW_BLOB = b"a blob pushed while read-only"
LAYER = b"layer bytes for one" * 7


def contents(root: pathlib.Path) -> dict[str, str]:
    """Every file under ``root`` and a hash of its bytes."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in root.rglob("*")
        if path.is_file()
    }


@pytest.fixture
async def seeded(aiohttp_client, root: pathlib.Path) -> dict[str, str]:
    """An image in ``team/app`` (tag ``v1``), a second repository, and an upload in progress."""
    root.mkdir()
    client = await aiohttp_client(create_app(Registry(FilesystemDriver(root))))
    digest, _ = await push_image(client, NAME, tag="v1")
    await push_image(client, "other/app", seed="two", tag="v2")
    response = await client.post(f"/v2/{NAME}/blobs/uploads/")
    assert response.status == 202
    location = response.headers["Location"]
    await client.close()
    return {"manifest": digest, "upload": location.rsplit("/", 1)[-1], "layer": sha256(LAYER)}


@pytest.fixture
async def read_only(aiohttp_client, root: pathlib.Path, seeded: dict[str, str]):
    return await aiohttp_client(create_app(Registry(FilesystemDriver(root), read_only=True)))


def write_requests(seeded: dict[str, str]) -> list[tuple[str, str, str, dict]]:
    """(route, method, path, request options): every write the API has, some of them twice."""
    upload = f"/v2/{NAME}/blobs/uploads/{seeded['upload']}"
    unknown_upload = f"/v2/{NAME}/blobs/uploads/00000000-0000-4000-8000-000000000000"
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(b"{}"), "size": 2},
        "layers": [],
    }).encode()
    return [
        ("upload-start", "POST", f"/v2/{NAME}/blobs/uploads/", {}),
        ("upload-start", "POST", "/v2/new/repo/blobs/uploads/", {"params": {"digest": sha256(NEW_BLOB)}, "data": NEW_BLOB}),
        ("upload-start", "POST", "/v2/new/repo/blobs/uploads/", {"params": {"mount": seeded["layer"], "from": NAME}}),
        ("upload", "PATCH", upload, {"data": NEW_BLOB}),
        ("upload", "PUT", upload, {"params": {"digest": sha256(NEW_BLOB)}, "data": NEW_BLOB}),
        ("upload", "DELETE", upload, {}),
        ("upload", "PATCH", unknown_upload, {"data": NEW_BLOB}),
        ("manifest", "PUT", f"/v2/{NAME}/manifests/v2", {"data": manifest, "headers": {"Content-Type": OCI_MANIFEST}}),
        ("manifest", "DELETE", f"/v2/{NAME}/manifests/{seeded['manifest']}", {}),
        ("manifest", "DELETE", f"/v2/{NAME}/manifests/v1", {}),
        ("blob", "DELETE", f"/v2/{NAME}/blobs/{seeded['layer']}", {}),
    ]


def test_every_write_route_is_covered() -> None:
    """A write method added to a route must be added to the list above too."""
    listed = {(route, method) for route, method, _, _ in write_requests({"upload": "u", "manifest": "m", "layer": "l"})}
    writes = {(route.name, method) for route in routes.ROUTES for method in route.methods if method in WRITE_METHODS}
    assert writes and listed == writes


async def test_every_write_is_refused_and_nothing_is_written(read_only, root: pathlib.Path, seeded) -> None:
    before = contents(root)
    for _, method, path, options in write_requests(seeded):
        response = await read_only.request(method, path, **options)
        entry = await error_of(response, 405, "UNSUPPORTED")
        assert entry["message"] == MESSAGE, (method, path, entry)
    assert contents(root) == before


async def test_reads_still_work(read_only, seeded) -> None:
    manifest_headers = {"Accept": OCI_MANIFEST}
    for method, path, headers, status in [
        ("GET", "/v2/", {}, 200),
        ("GET", "/v2/_catalog", {}, 200),
        ("GET", f"/v2/{NAME}/tags/list", {}, 200),
        ("GET", f"/v2/{NAME}/manifests/v1", manifest_headers, 200),
        ("HEAD", f"/v2/{NAME}/manifests/v1", manifest_headers, 200),
        ("GET", f"/v2/{NAME}/manifests/{seeded['manifest']}", manifest_headers, 200),
        ("GET", f"/v2/{NAME}/blobs/{seeded['layer']}", {}, 200),
        ("HEAD", f"/v2/{NAME}/blobs/{seeded['layer']}", {}, 200),
        ("GET", f"/v2/{NAME}/referrers/{seeded['manifest']}", {}, 200),
        ("GET", f"/v2/{NAME}/blobs/uploads/{seeded['upload']}", {}, 204),
        ("GET", "/v1/search?q=app", {}, 200),
        ("GET", "/v1/_ping", {}, 200),
    ]:
        response = await read_only.request(method, path, headers=headers)
        assert response.status == status, (method, path, await response.text())
    assert (await (await read_only.get("/v2/_catalog")).json())["repositories"] == ["other/app", "team/app"]
    assert (await (await read_only.get(f"/v2/{NAME}/blobs/{seeded['layer']}")).read()) == LAYER


async def test_unknown_routes_and_methods_are_unchanged(read_only) -> None:
    await error_of(await read_only.post("/v2/nothing/here"), 404, "NOT_FOUND")
    response = await read_only.post(f"/v2/{NAME}/tags/list")
    entry = await error_of(response, 405, "UNSUPPORTED")
    assert entry["message"] != MESSAGE


async def test_writable_registry_accepts_the_same_writes(aiohttp_client, root: pathlib.Path, seeded) -> None:
    """The control: without read-only mode the writes above do go through."""
    client = await aiohttp_client(create_app(Registry(FilesystemDriver(root))))
    before = contents(root)
    assert await push_blob(client, "new/repo", NEW_BLOB) == sha256(NEW_BLOB)
    response = await client.delete(f"/v2/{NAME}/manifests/{seeded['manifest']}")
    assert response.status == 202
    assert contents(root) != before


# ---- the flag and the configuration key, through a real process ----


def http_push(url: str, name: str, data: bytes) -> httpx.Response:
    """Start an upload; on 202, finish it. The last response."""
    with httpx.Client(base_url=url, timeout=30) as client:
        response = client.post(f"/v2/{name}/blobs/uploads/")
        if response.status_code != 202:
            return response
        return client.put(response.headers["Location"], params={"digest": sha256(data)}, content=data)


def assert_read_only(server: DockyardProcess, digest: str) -> None:
    before = contents(server.root)
    response = http_push(server.url, "served/repo", b"refused bytes")
    assert response.status_code == 405, response.text
    assert response.json() == {"errors": [{"code": "UNSUPPORTED", "message": MESSAGE}]}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        deleted = client.delete(f"/v2/served/repo/blobs/{digest}")
        assert deleted.status_code == 405 and deleted.json()["errors"][0]["message"] == MESSAGE
        blob = client.get(f"/v2/served/repo/blobs/{digest}")
        assert blob.status_code == 200 and blob.content == b"kept bytes"
        assert client.get("/v2/_catalog").json() == {"repositories": ["served/repo"]}
    assert contents(server.root) == before


@pytest.fixture
def served_root(tmp_path: pathlib.Path) -> tuple[pathlib.Path, str]:
    """A storage root holding one blob in ``served/repo``, pushed by a writable server."""
    root = tmp_path / "root"
    server = DockyardProcess(root, "--storage", "filesystem").start()
    try:
        response = http_push(server.url, "served/repo", b"kept bytes")
        assert response.status_code == 201, response.text
    finally:
        server.stop()
    return root, sha256(b"kept bytes")


def test_read_only_flag(served_root) -> None:
    root, digest = served_root
    server = DockyardProcess(root, "--read-only").start()
    try:
        assert_read_only(server, digest)
    finally:
        server.stop()


def write_config(tmp_path: pathlib.Path, root: pathlib.Path, enabled: bool) -> pathlib.Path:
    path = tmp_path / f"config-{enabled}.yml"
    path.write_text(textwrap.dedent(f"""\
        version: 0.1
        storage:
          filesystem:
            rootdirectory: {root}
          maintenance:
            readonly:
              enabled: {str(enabled).lower()}
        http:
          addr: 127.0.0.1:0
        """))
    return path


def test_read_only_configuration_key(served_root, tmp_path: pathlib.Path) -> None:
    root, digest = served_root
    server = DockyardProcess(root, "--config", str(write_config(tmp_path, root, True))).start()
    try:
        assert_read_only(server, digest)
    finally:
        server.stop()


def test_configuration_key_off_leaves_writes_on(served_root, tmp_path: pathlib.Path) -> None:
    root, _ = served_root
    server = DockyardProcess(root, "--config", str(write_config(tmp_path, root, False))).start()
    try:
        assert http_push(server.url, "served/other", b"more bytes").status_code == 201
    finally:
        server.stop()


@pytest.mark.parametrize(("enabled", "expected"), [(True, True), (False, False)])
def test_settings_carry_the_key(tmp_path: pathlib.Path, enabled: bool, expected: bool) -> None:
    from dockyard.config import load

    loaded = load(write_config(tmp_path, tmp_path / "root", enabled), {})
    assert loaded.settings.storage.maintenance.readonly.enabled is expected
    environment = {"REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED": "true"}
    assert load(write_config(tmp_path, tmp_path / "root", False), environment).settings.storage.maintenance.readonly.enabled is True
    assert load(write_config(tmp_path, tmp_path / "root", False), {}, {"read_only": True}).settings.storage.maintenance.readonly.enabled is True
