"""Deleting a whole repository: ``DELETE /dockyard/v1/repositories/<name>``, ``dockyard repo delete``,
what goes and what stays (other repositories' names and blobs), the access policy, immutable tags,
and a delete that meets an upload in progress."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import pathlib
import time

import pytest
from click.testing import CliRunner

from dockyard import config
from dockyard.api.app import create_app
from dockyard.cli import main
from dockyard.logs import AUDIT_LOGGER
from dockyard.maintenance.gc import Collector, Options
from dockyard.reference import parse_digest
from dockyard.storage import paths
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.immutable import ImmutableTags
from dockyard.storage.registry import Registry
from tests.api.conftest import error_of, raw_request, snapshot
from tests.maintenance.conftest import Store
from tests.support.audit import audits
from tests.support.auth import USERS, basic, make_app, settings
from tests.support.registry_client import push_image

RULES = ImmutableTags((config.ImmutableTags(repositories="prod/*", tags=["v*"]),))


def delete_path(name: str, force: bool = False) -> str:
    return f"/dockyard/v1/repositories/{name}{'?force=true' if force else ''}"


async def catalog(client) -> list[str]:
    return (await (await client.get("/v2/_catalog")).json())["repositories"]


async def collect(registry: Registry):
    later = time.time() + 5  # what exists is past a grace period of 0
    return await Collector(registry, Options(grace_period=0.0), clock=lambda: later).run()


async def test_a_deleted_repository_is_gone_at_once_and_gc_frees_only_its_own_blobs(client, registry: Registry, storage, caplog) -> None:
    shared_layer = b"a layer both repositories hold" * 10
    gone, _ = await push_image(client, "team/app", "v1", layer=shared_layer, seed="shared")
    await push_image(client, "team/app", "v2", seed="own")
    kept, _ = await push_image(client, "other", "v1", layer=shared_layer, seed="shared")
    await push_image(client, "team/app/child", "v1", seed="child")  # a name below: another repository
    own_blobs = {
        parse_digest(blob["digest"])
        for blob in json.loads(await (await client.get("/v2/team/app/manifests/v2")).read())["layers"]
    }

    with caplog.at_level(logging.INFO, logger=AUDIT_LOGGER):
        answer = await client.delete(delete_path("team/app"))
    assert answer.status == 200, await answer.text()
    assert await answer.json() == {"name": "team/app", "tags": ["v1", "v2"], "manifests": 2, "uploads_cancelled": 0}
    assert any(audit["event"] == "delete_repository" and audit["repository"] == "team/app" for audit in audits(caplog))

    assert await catalog(client) == ["other", "team/app/child"]
    assert (await (await client.get("/v1/search?q=app")).json())["results"][0]["name"] == "team/app/child"
    assert (await (await client.get("/v1/search?q=app")).json())["num_results"] == 1
    for reference in ("v1", gone):
        await error_of(await client.get(f"/v2/team/app/manifests/{reference}"), 404, "MANIFEST_UNKNOWN")
    await error_of(await client.delete(delete_path("team/app")), 404, "NAME_UNKNOWN")
    await error_of(await client.get(delete_path("other")), 405, "UNSUPPORTED")  # DELETE only, answered as the API answers
    assert not [file for file in snapshot(storage) if "repositories/team/app/_" in file]

    report = await collect(registry)
    assert own_blobs and own_blobs <= set(report.blobs_removed)
    assert parse_digest(f"sha256:{hashlib.sha256(shared_layer).hexdigest()}") not in report.blobs_removed
    assert (await client.get(f"/v2/other/manifests/{kept}")).status == 200
    assert (await client.get(f"/v2/other/blobs/sha256:{hashlib.sha256(shared_layer).hexdigest()}")).status == 200
    assert (await client.get("/v2/team/app/child/manifests/v1")).status == 200


@pytest.mark.parametrize("mode", ["basic", "token"])
async def test_the_access_policy_decides_who_may_delete(aiohttp_client, tmp_path: pathlib.Path, mode: str) -> None:
    root = tmp_path / "root"
    seeding = await aiohttp_client(make_app(root))  # no authentication: the content is put in first
    for name in ("a/one", "a/two"):
        await push_image(seeding, name, "v1")
    client = await aiohttp_client(make_app(root, settings(tmp_path, mode)))

    async def credentials(user: str, scope: str) -> dict[str, str]:
        if mode == "basic":
            return {"Authorization": basic(user, USERS[user])}
        answer = await client.get("/auth/token", params={"service": "dockyard", "scope": scope}, headers={"Authorization": basic(user, USERS[user])})
        return {"Authorization": f"Bearer {(await answer.json())['token']}"}

    def deleting(name: str) -> str:
        return f"repository:{name}:delete"

    refused = await client.delete(delete_path("a/one"), headers=await credentials("reader", deleting("a/one")))
    await error_of(refused, 403, "DENIED") if mode == "basic" else await error_of(refused, 401, "UNAUTHORIZED")
    await error_of(await client.delete(delete_path("a/one")), 401, "UNAUTHORIZED")
    assert (await client.delete(delete_path("a/one"), headers=await credentials("writer", deleting("a/one")))).status == 200
    # Forcing (past immutable tags) is an admin's.
    await error_of(await client.delete(delete_path("a/two", force=True), headers=await credentials("writer", deleting("a/two"))), 403, "DENIED")
    assert (await client.delete(delete_path("a/two", force=True), headers=await credentials("root", deleting("a/two")))).status == 200
    listed = await client.get("/v2/_catalog", headers=await credentials("root", "registry:catalog:*"))
    assert (await listed.json())["repositories"] == []


async def test_immutable_tags_hold_a_repository_unless_an_admin_forces(aiohttp_client, storage) -> None:
    client = await aiohttp_client(create_app(Registry(storage.driver(), immutable=RULES)))
    await push_image(client, "prod/app", "v1")
    refused = await error_of(await client.delete(delete_path("prod/app")), 403, "DENIED")
    assert "immutable" in refused["message"] and refused["detail"] == {"name": "prod/app", "tags": ["v1"]}
    assert await catalog(client) == ["prod/app"]
    assert (await client.delete(delete_path("prod/app", force=True))).status == 200  # no authentication: everyone is an admin
    assert await catalog(client) == []


async def test_deletes_off_or_read_only_refuse_it(aiohttp_client, storage) -> None:
    driver = storage.driver()
    await push_image(await aiohttp_client(create_app(Registry(driver))), "app", "v1")
    for registry in (Registry(driver, delete_enabled=False), Registry(driver, read_only=True)):
        client = await aiohttp_client(create_app(registry))
        await error_of(await client.delete(delete_path("app")), 405, "UNSUPPORTED")
        assert await catalog(client) == ["app"]
    client = await aiohttp_client(create_app(Registry(driver)))
    for raw in ("/dockyard/v1/repositories/a/../app", "/dockyard/v1/repositories/a%2Fapp"):  # never folded into another name
        await error_of(await raw_request(client, "DELETE", raw), 400, "NAME_INVALID")
    assert await catalog(client) == ["app"]


UPLOAD_CHUNKS = [bytes([index]) * (64 << 10) for index in range(6)]


async def _upload(client, name: str) -> tuple[int, str]:
    """A chunked upload of ``UPLOAD_CHUNKS``; the status and error code it ends with."""
    started = await client.post(f"/v2/{name}/blobs/uploads/")
    if started.status != 202:
        return started.status, (await started.json())["errors"][0]["code"]
    location, offset = started.headers["Location"], 0
    for chunk in UPLOAD_CHUNKS:
        headers = {"Content-Range": f"{offset}-{offset + len(chunk) - 1}", "Content-Type": "application/octet-stream"}
        answer = await client.patch(location, data=chunk, headers=headers)
        if answer.status != 202:
            return answer.status, (await answer.json())["errors"][0]["code"]
        location, offset = answer.headers["Location"], offset + len(chunk)
    digest = "sha256:" + hashlib.sha256(b"".join(UPLOAD_CHUNKS)).hexdigest()
    finished = await client.put(f"{location}{'&' if '?' in location else '?'}digest={digest}")
    return finished.status, "" if finished.status == 201 else (await finished.json())["errors"][0]["code"]


async def test_a_delete_during_an_upload_leaves_one_whole_outcome(client, storage) -> None:
    digest = "sha256:" + hashlib.sha256(b"".join(UPLOAD_CHUNKS)).hexdigest()
    for attempt in range(10):
        name = f"busy/r{attempt}"
        await push_image(client, name, "v1")
        uploading = asyncio.ensure_future(_upload(client, name))
        await asyncio.sleep(0.003 * attempt)  # the delete lands at a different point of the upload each time
        deleted = await client.delete(delete_path(name))
        outcome = await uploading
        assert deleted.status == 200, await deleted.text()
        # The upload failed cleanly, or finished (before the delete, or into a repository that then exists again).
        assert outcome in {(201, ""), (404, "BLOB_UPLOAD_UNKNOWN")}, outcome
        files = [file for file in snapshot(storage) if f"repositories/{name}/" in file]
        assert not [file for file in files if "/_uploads/" in file], files  # no upload left that no purge could remove
        assert not [file for file in files if "/_manifests/" in file], files
        if name in await catalog(client):
            assert outcome == (201, "")
            assert (await client.head(f"/v2/{name}/blobs/{digest}")).status == 200


def test_the_command_deletes_a_repository(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "root"
    store = Store(Registry(FilesystemDriver(root)))
    store.image("prod/app", "v1", b"kept layer")
    store.image("team/app", "latest", b"own layer")
    configuration = tmp_path / "config.yml"
    configuration.write_text(
        f"version: 0.1\nstorage: {{filesystem: {{rootdirectory: {root}}}}}\n"
        "dockyard: {immutable_tags: [{repositories: 'prod/*', tags: ['v*']}]}\n",
    )

    def delete(*arguments: str):
        return CliRunner().invoke(main, ["repo", "delete", *arguments], catch_exceptions=False)

    unknown = delete("nothing/here", "--root", str(root))
    assert (unknown.exit_code, unknown.output) == (1, "Error: no repository nothing/here\n")
    assert delete("Not-A-Name", "--root", str(root)).exit_code == 2
    refused = delete("prod/app", "--config", str(configuration))
    assert refused.exit_code == 1 and len(refused.output.splitlines()) == 1 and "immutable tags (v1)" in refused.output
    done = delete("team/app", "--root", str(root))
    assert (done.exit_code, done.output) == (0, "deleted team/app: 1 tags, 1 manifests; run dockyard gc to free its blobs\n")
    assert store.run(store.registry.catalog()) == ["prod/app"]
    assert delete("prod/app", "--config", str(configuration), "--force").exit_code == 0
    assert store.run(store.registry.catalog()) == []
    assert not (root / paths.repository("team").lstrip("/")).exists()  # emptied folders go too
