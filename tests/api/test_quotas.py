"""Storage quotas (``dockyard.quotas``): refused at blob upload finish, mount and manifest PUT with
403 DENIED, each blob counted once per rule, kept in storage across restarts, lowered by deletes
and garbage collection, reconciled by ``dockyard du``, and held by concurrent pushes at the edge."""

from __future__ import annotations

import asyncio
import json
import pathlib
import time
from typing import Any

from click.testing import CliRunner

from dockyard.api.app import create_app
from dockyard.cli import main
from dockyard.maintenance.gc import Collector, Options
from dockyard.reference import Digest
from dockyard.storage import paths
from dockyard.storage.quotas import QuotaRule
from dockyard.storage.registry import Registry
from dockyard.ui.sessions import session_key
from tests.api.conftest import FilesystemStorage, S3Storage, error_of, put_manifest, snapshot
from tests.support.registry_client import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, descriptor, push_blob, sha256

TEAM = QuotaRule("team/*", 1000)
Storage = FilesystemStorage | S3Storage


async def serve(aiohttp_client, registry: Registry) -> Any:
    return await aiohttp_client(create_app(registry, ui_session_key=session_key("")))


def team_registry(storage: Storage, *rules: QuotaRule) -> Registry:
    return Registry(storage.driver(), quotas=rules or (TEAM,))


def blob(size: int, seed: str) -> bytes:
    return (seed.encode() * size)[:size]


async def chunked_push(client, name: str, data: bytes) -> Any:
    """POST, PATCH all but the last byte, then PUT the last byte with the digest (the blob finish)."""
    started = await client.post(f"/v2/{name}/blobs/uploads/")
    assert started.status == 202
    patched = await client.patch(started.headers["Location"], data=data[:-1], headers={"Content-Type": "application/octet-stream"})
    assert patched.status == 202
    return await client.put(f"{patched.headers['Location']}?digest={sha256(data)}", data=data[-1:])


async def used(registry: Registry) -> list[int]:
    return [use.used_bytes for use in await registry.quotas.uses()]


def image_manifest(config: bytes, layer: bytes) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config), "layers": [descriptor(OCI_LAYER, layer)],
    }).encode()


async def test_a_blob_finish_over_the_quota_is_refused_and_changes_nothing(aiohttp_client, storage: Storage) -> None:
    registry = team_registry(storage)
    client = await serve(aiohttp_client, registry)
    first = blob(600, "first")
    assert (await chunked_push(client, "team/app", first)).status == 201
    before = snapshot(storage)
    refused = await chunked_push(client, "team/app", blob(401, "second"))
    entry = await error_of(refused, 403, "DENIED")
    assert "'team/*'" in entry["message"] and "(600 / 1000 bytes)" in entry["message"], entry
    assert entry["detail"] == {"repositories": "team/*", "used": 600, "limit": 1000, "needed": 401}
    # The same in one request (POST with the digest and the bytes).
    await error_of(await client.post(f"/v2/team/app/blobs/uploads/?digest={sha256(blob(401, 'second'))}", data=blob(401, "second")), 403, "DENIED")
    assert snapshot(storage) == before
    assert (await client.head(f"/v2/team/app/blobs/{sha256(blob(401, 'second'))}")).status == 404
    assert (await client.get(f"/v2/team/app/blobs/{sha256(first)}")).status == 200
    # Up to the limit exactly is within it.
    assert (await chunked_push(client, "team/other", blob(400, "third"))).status == 201
    assert await used(registry) == [1000]


async def test_a_mount_over_the_quota_is_refused(aiohttp_client, storage: Storage) -> None:
    registry = team_registry(storage)
    client = await serve(aiohttp_client, registry)
    elsewhere = blob(500, "elsewhere")
    assert await push_blob(client, "solo/app", elsewhere)
    assert await push_blob(client, "team/app", blob(600, "team"))
    before = snapshot(storage)
    mounted = await client.post(f"/v2/team/app/blobs/uploads/?mount={sha256(elsewhere)}&from=solo/app")
    entry = await error_of(mounted, 403, "DENIED")
    assert "(600 / 1000 bytes)" in entry["message"]
    assert snapshot(storage) == before
    assert (await client.head(f"/v2/team/app/blobs/{sha256(elsewhere)}")).status == 404
    assert await used(registry) == [600]


async def test_a_manifest_put_over_the_quota_is_refused_and_the_tag_stays(aiohttp_client, storage: Storage) -> None:
    registry = team_registry(storage)
    client = await serve(aiohttp_client, registry)
    config, layer = b"{}", blob(300, "layer")
    for data in (config, layer):
        assert await push_blob(client, "team/app", data)
    kept = image_manifest(config, layer)
    assert (await put_manifest(client, "team/app", "v1", kept, OCI_MANIFEST)).status == 201
    big = blob(1000 - 302 - len(kept) - 10, "big")
    assert await push_blob(client, "team/app", big)
    assert await used(registry) == [990]
    before = snapshot(storage)
    refused = await put_manifest(client, "team/app", "v1", image_manifest(config, big), OCI_MANIFEST)
    entry = await error_of(refused, 403, "DENIED")
    assert "(990 / 1000 bytes)" in entry["message"]
    assert snapshot(storage) == before
    current = await client.get("/v2/team/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert (current.status, await current.read()) == (200, kept)
    assert (await client.get(f"/v2/team/app/manifests/{sha256(image_manifest(config, big))}")).status == 404
    # Pushing what is already counted takes nothing more.
    assert (await put_manifest(client, "team/app", "again", kept, OCI_MANIFEST)).status == 201
    assert await used(registry) == [990]


async def test_a_blob_two_matched_repositories_link_counts_once_and_others_are_unlimited(aiohttp_client, storage: Storage) -> None:
    registry = team_registry(storage)
    client = await serve(aiohttp_client, registry)
    shared = blob(700, "shared")
    assert await push_blob(client, "team/a", shared)
    assert await push_blob(client, "team/b", shared)  # 700 + 700 would be over 1000: counted once
    assert (await client.post(f"/v2/team/c/blobs/uploads/?mount={sha256(shared)}&from=team/a")).status == 201
    assert await used(registry) == [700]
    for size in (2000, 3000):  # no rule matches solo/*
        assert await push_blob(client, "solo/app", blob(size, f"solo{size}"))
    assert await used(registry) == [700]
    # Deleting it from one repository keeps it counted for the others; from all, it is released.
    for name, left in (("team/a", 700), ("team/b", 700), ("team/c", 0)):
        assert (await client.delete(f"/v2/{name}/blobs/{sha256(shared)}")).status == 202
        assert await used(registry) == [left]


async def test_usage_survives_a_restart(aiohttp_client, tmp_path: pathlib.Path) -> None:
    storage = FilesystemStorage(tmp_path / "root")
    client = await serve(aiohttp_client, team_registry(storage))
    assert (await chunked_push(client, "team/app", blob(800, "kept"))).status == 201
    await client.close()
    kept = Digest.of(blob(800, "kept"))
    stored = {path: json.loads((storage.root / path.lstrip("/")).read_text()) for path in (paths.quota_total(TEAM.id), paths.quota_blob(TEAM.id, kept))}
    assert stored == {
        paths.quota_total(TEAM.id): {"used": 800, "blobs": 1, "reconciles": {}},
        paths.quota_blob(TEAM.id, kept): {"size": 800, "repositories": ["team/app"]},
    }

    restarted = team_registry(storage)
    client = await serve(aiohttp_client, restarted)
    entry = await error_of(await chunked_push(client, "team/app", blob(201, "over")), 403, "DENIED")
    assert "(800 / 1000 bytes)" in entry["message"]
    assert await used(restarted) == [800]


async def test_deletes_and_garbage_collection_lower_the_usage(aiohttp_client, storage: Storage) -> None:
    registry = team_registry(storage)
    client = await serve(aiohttp_client, registry)
    config, layer = b'{"a":1}', blob(500, "collected")
    for data in (config, layer):
        assert await push_blob(client, "team/app", data)
    manifest = image_manifest(config, layer)
    assert (await put_manifest(client, "team/app", "v1", manifest, OCI_MANIFEST)).status == 201
    assert await used(registry) == [len(config) + len(layer) + len(manifest)]
    assert (await client.delete(f"/v2/team/app/manifests/{sha256(manifest)}")).status == 202
    assert await used(registry) == [len(config) + len(layer)]
    # The layers stay linked (as registry:2 keeps them) until a collection removes their data.
    await Collector(registry, Options(grace_period=0.0), clock=lambda: time.time() + 5).run()
    assert await used(registry) == [0]
    assert (await client.post(f"/v2/team/app/blobs/uploads/?digest={sha256(blob(1000, 'fits'))}", data=blob(1000, "fits"))).status == 201


async def test_a_repository_delete_frees_its_quota_at_once(aiohttp_client, storage: Storage) -> None:
    registry = team_registry(storage)
    client = await serve(aiohttp_client, registry)
    shared, own = blob(300, "shared"), blob(600, "own")
    for name, data in (("team/app", shared), ("team/app", own), ("team/other", shared)):
        assert await push_blob(client, name, data)
    assert await used(registry) == [len(shared) + len(own)]
    assert (await client.delete("/dockyard/v1/repositories/team/app")).status == 200
    # The blob another matched repository links stays counted, once; the rest is free before any collection.
    assert await used(registry) == [len(shared)]
    filling = blob(1000 - len(shared), "fills")
    assert (await client.post(f"/v2/team/new/blobs/uploads/?digest={sha256(filling)}", data=filling)).status == 201


async def test_du_reconciles_a_wrong_count(aiohttp_client, tmp_path: pathlib.Path) -> None:
    storage = FilesystemStorage(tmp_path / "root")
    registry = team_registry(storage)
    client = await serve(aiohttp_client, registry)
    assert await push_blob(client, "team/app", blob(900, "real"))
    # A count that lost the push (and counts a blob nobody links).
    real = Digest.of(blob(900, "real"))
    await registry.driver.delete(paths.quota_blob(TEAM.id, real))
    await registry.driver.put_content(paths.quota_blob(TEAM.id, Digest.of(b"ghost")), b'{"size":5,"repositories":["team/gone"]}')
    await registry.driver.put_content(paths.quota_total(TEAM.id), b'{"used":5,"blobs":1,"reconciles":{}}')
    assert await used(registry) == [5]
    config = tmp_path / "config.yml"
    config.write_text(json.dumps({
        "version": 0.1, "storage": {"filesystem": {"rootdirectory": str(storage.root)}},
        "dockyard": {"quotas": [{"repositories": "team/*", "max_bytes": "1000B"}]},
    }))
    result = await asyncio.to_thread(CliRunner().invoke, main, ["du", "--config", str(config)])  # asyncio.run of its own
    assert result.exit_code == 0, result.output
    assert "quota team/*: 900 B / 1.0 KB used (900 / 1000 bytes, 1 blobs)" in result.output
    assert await used(registry) == [900]
    assert await registry.driver.list(paths.algorithm_folder(paths.quota_blobs(TEAM.id), "sha256")) == [real.hex]
    await error_of(await chunked_push(client, "team/app", blob(101, "over")), 403, "DENIED")


async def test_the_storage_page_shows_each_quota(aiohttp_client, storage: Storage) -> None:
    registry = team_registry(storage, TEAM, QuotaRule("solo/*", 10 << 20))
    client = await serve(aiohttp_client, registry)
    assert await push_blob(client, "team/app", blob(600, "shown"))
    page = await (await client.get("/ui/storage")).text()
    assert 'id="quotas"' in page
    rows = page.split('id="quotas"')[1].split("</table>")[0]
    assert 'title="team/*">team/*</code>' in rows and "600 B" in rows and "1.0 KB" in rows
    assert 'title="solo/*">solo/*</code>' in rows and "10.5 MB" in rows


EDGE_ROUNDS = 6
EDGE_PUSHES = 10
EDGE_BLOB = 100
EDGE_FITS = 4


async def test_concurrent_pushes_at_the_edge_never_go_over(aiohttp_client, tmp_path: pathlib.Path) -> None:
    """Each round, ten pushes of distinct blobs race for room for four and a half: exactly four win.
    (On S3, tests/replicas/test_quotas.py races two replicas.)"""
    rules = [QuotaRule(f"edge{round_}/*", EDGE_FITS * EDGE_BLOB + EDGE_BLOB // 2) for round_ in range(EDGE_ROUNDS)]
    registry = Registry(FilesystemStorage(tmp_path / "root").driver(), quotas=rules)
    client = await serve(aiohttp_client, registry)

    async def push(round_: int, number: int) -> int:
        data = blob(EDGE_BLOB, f"{round_}-{number}-")
        if number % 2:
            return (await chunked_push(client, f"edge{round_}/r{number}", data)).status
        return (await client.post(f"/v2/edge{round_}/r{number}/blobs/uploads/?digest={sha256(data)}", data=data)).status

    for round_ in range(EDGE_ROUNDS):
        statuses = await asyncio.gather(*(push(round_, number) for number in range(EDGE_PUSHES)))
        assert sorted(statuses) == [201] * EDGE_FITS + [403] * (EDGE_PUSHES - EDGE_FITS), (round_, statuses)
    assert await used(registry) == [EDGE_FITS * EDGE_BLOB] * EDGE_ROUNDS
    # What the layout says agrees with what was counted.
    assert [use.used_bytes for use in await registry.quotas.reconcile()] == [EDGE_FITS * EDGE_BLOB] * EDGE_ROUNDS
