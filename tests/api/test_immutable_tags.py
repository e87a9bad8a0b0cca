"""Immutable tags (``dockyard.immutable_tags``): never moved, never deleted, retried pushes taken,
retention and gc keep them, and two racing first pushes have exactly one winner."""

from __future__ import annotations

import asyncio
import json
import pathlib
import time

import pytest

from dockyard import config
from dockyard.maintenance.gc import Collector, Options
from dockyard.storage.immutable import ImmutableTags
from dockyard.storage.registry import Registry
from tests.api.conftest import error_of, put_manifest, snapshot
from tests.support.clients import Skopeo
from tests.support.images import single_image_layout
from tests.support.registry_client import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, descriptor, odd_json, push_blob, push_image, sha256
from tests.support.server import DockyardProcess

RULES = ImmutableTags((config.ImmutableTags(repositories="prod/*", tags=["v*", "release-*"]),))


@pytest.fixture
def registry(storage) -> Registry:
    return Registry(storage.driver(), immutable=RULES)


async def image(client, name: str, seed: str) -> bytes:
    """The blobs of an image pushed to ``name``; its manifest (not pushed)."""
    config_bytes = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    layer = f"layer of {seed}".encode() * 5
    for data in (config_bytes, layer):
        await push_blob(client, name, data)
    return odd_json({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config_bytes), "layers": [descriptor(OCI_LAYER, layer)],
    })


async def tagged(client, name: str, tag: str) -> str | None:
    response = await client.head(f"/v2/{name}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
    return response.headers["Docker-Content-Digest"] if response.status == 200 else None


async def test_an_immutable_tag_never_moves_and_its_own_manifest_pushed_again_is_taken(client, storage) -> None:
    first, _ = await push_image(client, "prod/app", "v1", seed="first")
    second = await image(client, "prod/app", "second")
    before = snapshot(storage)

    refused = await put_manifest(client, "prod/app", "v1", second, OCI_MANIFEST)
    entry = await error_of(refused, 403, "DENIED")
    assert "tag v1 is immutable" in entry["message"] and entry["detail"] == {"tag": "v1", "digest": first}
    assert snapshot(storage) == before  # the refused push stored nothing
    assert await tagged(client, "prod/app", "v1") == first

    # A CI job's retry: the same manifest again, under the tag and by digest with the tag.
    again, content = await push_image(client, "prod/app", "v1", seed="first")
    assert again == first
    assert (await client.put(f"/v2/prod/app/manifests/{first}?tag=v1", data=content, headers={"Content-Type": OCI_MANIFEST})).status == 201
    assert await tagged(client, "prod/app", "v1") == first

    # Other tags, and the same tag elsewhere, move as ever.
    for name, tag in (("prod/app", "latest"), ("dev/app", "v1")):
        await push_image(client, name, tag, seed="first")
        assert (await put_manifest(client, name, tag, await image(client, name, "second"), OCI_MANIFEST)).status == 201


async def test_an_immutable_tag_and_the_manifest_it_names_cannot_be_deleted(client) -> None:
    digest, _ = await push_image(client, "prod/app", "release-1", seed="kept")
    await push_image(client, "prod/app", "latest", seed="kept")
    for reference in ("release-1", digest):
        await error_of(await client.delete(f"/v2/prod/app/manifests/{reference}"), 403, "DENIED")
    assert await tagged(client, "prod/app", "release-1") == digest
    assert await tagged(client, "prod/app", "latest") == digest
    # A mutable tag still goes.
    assert (await client.delete("/v2/prod/app/manifests/latest")).status == 202


async def test_racing_first_pushes_of_an_immutable_tag_have_exactly_one_winner(client) -> None:
    manifests = [await image(client, "prod/race", seed) for seed in ("left", "right")]
    for attempt in range(12):
        tag = f"v{attempt}"
        answers = await asyncio.gather(*(put_manifest(client, "prod/race", tag, content, OCI_MANIFEST) for content in manifests))
        statuses = sorted(answer.status for answer in answers)
        assert statuses == [201, 403], statuses
        winner = next(answer for answer in answers if answer.status == 201).headers["Docker-Content-Digest"]
        assert await tagged(client, "prod/race", tag) == winner


async def test_retention_and_gc_keep_immutable_tags(client, registry: Registry) -> None:
    old, _ = await push_image(client, "prod/app", "old", seed="old")
    immutable, _ = await push_image(client, "prod/app", "v1", seed="immutable")
    # keep_last 0: the policy would untag every tag; the immutable one stays, and so does its manifest.
    options = Options(grace_period=0.0, delete_untagged=True, retention=(config.Retention(repositories="prod/*", keep_last=0),))
    later = time.time() + 5
    report = await Collector(registry, options, clock=lambda: later).run()
    assert report.tags_removed == [("prod/app", "old")]
    assert [(name, str(digest)) for name, digest in report.manifests_removed] == [("prod/app", old)]
    assert await tagged(client, "prod/app", "v1") == immutable
    assert (await client.get(f"/v2/prod/app/manifests/{immutable}", headers={"Accept": OCI_MANIFEST})).status == 200


@pytest.mark.slow
def test_skopeo_pushes_an_immutable_tag_again_and_cannot_move_it(skopeo: Skopeo, start_server, tmp_path: pathlib.Path) -> None:
    configuration = tmp_path / "config.yml"
    configuration.write_text("version: 0.1\nstorage: {delete: {enabled: true}}\ndockyard: {immutable_tags: [{repositories: 'prod/*', tags: ['v*']}]}\n")
    server: DockyardProcess = start_server("--config", str(configuration))
    first, second = tmp_path / "first", tmp_path / "second"
    pushed = single_image_layout(first, "v1", seed="first")
    single_image_layout(second, "v1", seed="second")
    target = f"docker://{server.host}/prod/app:v1"
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{first}:v1", target)
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{first}:v1", target)  # a retry: taken
    moved = skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{second}:v1", target, check=False)
    assert moved.returncode != 0 and "tag v1 is immutable" in moved.stderr, moved.stderr
    deleted = skopeo("delete", "--tls-verify=false", target, check=False)
    assert deleted.returncode != 0 and "immutable" in deleted.stderr, deleted.stderr
    assert sha256(skopeo("inspect", "--raw", "--tls-verify=false", target).stdout.encode()) == pushed["digest"]
