"""``/v2/<name>/manifests/<reference>``: every manifest kind, Accept negotiation, DELETE."""

from __future__ import annotations

import asyncio
import json
import random
import time

import pytest

from dockyard.api.app import create_app
from dockyard.reference import parse_digest
from dockyard.storage import paths
from dockyard.storage.registry import Registry
from tests.support.registry_client import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    EMPTY_DIGEST,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    descriptor,
    odd_json,
    push_blob,
    push_image,
    push_index,
    sha256,
)

from .conftest import error_of, put_manifest, sha512, snapshot

NAME = "library/app"


async def assert_served(client, reference: str, digest: str, content: bytes, media_type: str, **kwargs) -> None:
    response = await client.get(f"/v2/{NAME}/manifests/{reference}", **kwargs)
    assert response.status == 200, await response.text()
    assert await response.read() == content
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.headers["Content-Type"] == media_type
    assert response.headers["Content-Length"] == str(len(content))
    assert response.headers["ETag"] == f'"{digest}"'
    response = await client.head(f"/v2/{NAME}/manifests/{reference}", **kwargs)
    assert response.status == 200
    assert await response.read() == b""
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.headers["Content-Type"] == media_type
    assert response.headers["Content-Length"] == str(len(content))


async def two_platforms(client, media_type: str = OCI_MANIFEST) -> list[dict]:
    children = []
    for arch in ("arm64", "amd64"):
        digest, content = await push_image(client, NAME, media_type=media_type, seed=arch)
        children.append({
            "mediaType": media_type,
            "digest": digest,
            "size": len(content),
            "platform": {"architecture": arch, "os": "linux"},
        })
    return children


@pytest.mark.parametrize("media_type", [DOCKER_MANIFEST, OCI_MANIFEST])
async def test_image_manifest_by_tag_and_digest(client, media_type):
    digest, content = await push_image(client, NAME, media_type=media_type, tag="v1")
    assert b"\n \t" in content  # non-canonical bytes are what is served
    await assert_served(client, "v1", digest, content, media_type)
    await assert_served(client, digest, digest, content, media_type)


async def test_put_response_headers(client):
    config = await push_blob(client, NAME, b"{}")
    content = odd_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {
        "mediaType": OCI_EMPTY, "digest": config, "size": 2}, "layers": []})
    digest = sha256(content)
    response = await put_manifest(client, NAME, "latest", content, OCI_MANIFEST)
    assert response.status == 201
    assert response.headers["Location"] == f"/v2/{NAME}/manifests/{digest}"
    assert response.headers["Docker-Content-Digest"] == digest
    assert "OCI-Subject" not in response.headers
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


@pytest.mark.parametrize(("index_type", "child_type"), [(DOCKER_MANIFEST_LIST, DOCKER_MANIFEST), (OCI_INDEX, OCI_MANIFEST)])
async def test_index_by_tag_and_digest(client, index_type, child_type):
    children = await two_platforms(client, child_type)
    digest, content = await push_index(client, NAME, children, tag="multi", media_type=index_type)
    await assert_served(client, "multi", digest, content, index_type)
    await assert_served(client, digest, digest, content, index_type)
    await assert_served(client, "multi", digest, content, index_type, headers={"Accept": f"{index_type}, {child_type}"})


async def test_oci_artifact(client):
    empty = await push_blob(client, NAME, b"{}")
    assert empty == EMPTY_DIGEST
    payload = b"an sbom, say"
    await push_blob(client, NAME, payload)
    content = odd_json({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom.v1",
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2},
        "layers": [descriptor("application/vnd.example.sbom.layer", payload)],
        "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"},
    })
    digest = sha256(content)
    response = await put_manifest(client, NAME, "sbom", content, OCI_MANIFEST)
    assert response.status == 201
    await assert_served(client, "sbom", digest, content, OCI_MANIFEST)
    await assert_served(client, digest, digest, content, OCI_MANIFEST)
    response = await client.get(f"/v2/{NAME}/blobs/{EMPTY_DIGEST}")
    assert await response.read() == b"{}"


async def test_oci_manifest_without_media_type_field(client):
    config = await push_blob(client, NAME, b"config")
    content = odd_json({"schemaVersion": 2, "config": {"mediaType": "application/vnd.x", "digest": config, "size": 6}, "layers": []})
    digest = sha256(content)
    response = await put_manifest(client, NAME, "bare", content, OCI_MANIFEST)
    assert response.status == 201, await response.text()
    await assert_served(client, "bare", digest, content, OCI_MANIFEST)


async def test_index_requested_with_image_types_only_gets_amd64_child(client):
    children = await two_platforms(client)
    await push_index(client, NAME, children, tag="multi")
    amd64 = children[1]
    assert amd64["platform"]["architecture"] == "amd64"
    response = await client.get(f"/v2/{NAME}/manifests/{amd64['digest']}")
    amd64_content = await response.read()
    for accept in (OCI_MANIFEST, f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"):
        await assert_served(client, "multi", amd64["digest"], amd64_content, OCI_MANIFEST, headers={"Accept": accept})


async def test_index_requested_with_image_types_without_amd64_child(client):
    digest, content = await push_image(client, NAME, seed="arm")
    child = {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(content),
             "platform": {"architecture": "arm64", "os": "linux"}}
    index_digest, _ = await push_index(client, NAME, [child], tag="armonly")
    response = await client.get(f"/v2/{NAME}/manifests/armonly", headers={"Accept": OCI_MANIFEST})
    entry = await error_of(response, 404, "MANIFEST_UNKNOWN")
    assert entry["detail"] == {"digest": index_digest}


async def test_manifest_not_in_accept_is_unknown(client):
    digest, _ = await push_image(client, NAME, tag="v1")
    response = await client.get(f"/v2/{NAME}/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
    entry = await error_of(response, 404, "MANIFEST_UNKNOWN")
    assert entry["detail"] == {"digest": digest}
    response = await client.head(f"/v2/{NAME}/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
    assert response.status == 404


async def test_no_accept_header_is_served(client):
    digest, content = await push_image(client, NAME, tag="v1")
    response = await client.get(f"/v2/{NAME}/manifests/v1", skip_auto_headers=["Accept"])
    assert "Accept" not in response.request_info.headers
    assert response.status == 200
    assert await response.read() == content
    assert response.headers["Content-Type"] == OCI_MANIFEST


@pytest.mark.parametrize("accept", ["*/*", "application/json", f"{DOCKER_MANIFEST};q=0.9, {OCI_MANIFEST};q=0.5"])
async def test_accepting_any_or_the_type_is_served(client, accept):
    digest, content = await push_image(client, NAME, tag="v1")
    await assert_served(client, "v1", digest, content, OCI_MANIFEST, headers={"Accept": accept})


async def test_accept_as_several_headers(client):
    digest, content = await push_image(client, NAME, tag="v1")
    response = await client.get(
        f"/v2/{NAME}/manifests/v1", headers=[("Accept", DOCKER_MANIFEST), ("Accept", OCI_MANIFEST)]
    )
    assert response.status == 200
    assert await response.read() == content


async def test_if_none_match(client):
    digest, _ = await push_image(client, NAME, tag="v1")
    response = await client.get(f"/v2/{NAME}/manifests/v1", headers={"If-None-Match": f'"{digest}"'})
    assert response.status == 304
    assert response.headers["Docker-Content-Digest"] == digest


async def test_put_with_missing_blob(client, storage):
    config = await push_blob(client, NAME, b"config")
    missing = sha256(b"a layer never pushed")
    content = odd_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 6},
                        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": missing, "size": 9}]})
    before = snapshot(storage)
    response = await put_manifest(client, NAME, "broken", content, OCI_MANIFEST)
    entry = await error_of(response, 404, "MANIFEST_BLOB_UNKNOWN")
    assert entry["detail"] == {"digest": missing}
    assert snapshot(storage) == before
    response = await client.get(f"/v2/{NAME}/manifests/broken")
    await error_of(response, 404, "MANIFEST_UNKNOWN")


async def test_put_with_blob_only_in_another_repository(client):
    config = await push_blob(client, "other", b"config")
    content = odd_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                        "config": {"mediaType": "application/vnd.x", "digest": config, "size": 6}, "layers": []})
    response = await put_manifest(client, NAME, "x", content, OCI_MANIFEST)
    await error_of(response, 404, "MANIFEST_BLOB_UNKNOWN")


async def test_foreign_layer_need_not_be_present(aiohttp_client, storage):
    client = await aiohttp_client(create_app(Registry(storage.driver())))
    config = await push_blob(client, NAME, b"config")
    foreign = {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
               "digest": sha256(b"windows base"), "size": 12, "urls": ["https://example.com/layer"]}
    content = odd_json({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config, "size": 6},
                        "layers": [foreign]})
    response = await put_manifest(client, NAME, "win", content, DOCKER_MANIFEST)
    assert response.status == 201, await response.text()


async def test_index_with_missing_child(client, storage):
    children = await two_platforms(client)
    missing = sha256(b"no such manifest")
    children.append({"mediaType": OCI_MANIFEST, "digest": missing, "size": 100,
                     "platform": {"architecture": "s390x", "os": "linux"}})
    content = odd_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children})
    before = snapshot(storage)
    response = await put_manifest(client, NAME, "multi", content, OCI_INDEX)
    entry = await error_of(response, 404, "MANIFEST_BLOB_UNKNOWN")  # as the spec requires
    assert entry["detail"] == {"digest": missing}
    assert snapshot(storage) == before


RACE_TRIES = 80


async def test_put_racing_a_layer_delete_changes_nothing_when_refused(client, storage):
    """Issue 14: a manifest PUT racing a DELETE of one of its layers is either acknowledged
    (the tag names it) or refused, and then the tag names what it named before and the
    refused manifest got no link (only its content stays in the blob store, for the
    collector); tries many times, with the DELETE sent a little later or earlier each time."""
    subject, subject_content = await push_image(client, NAME, seed="subject")
    tagged, _ = await push_image(client, NAME, seed="first", tag="race")
    layer = b"the layer deleted meanwhile"
    layer_link = paths.layer_link(NAME, parse_digest(sha256(layer))).lstrip("/")
    rng = random.Random(14)
    # The DELETE is sent at a random moment within about twice a manifest PUT's time, which is
    # milliseconds on a filesystem and far more on S3: a PUT of the subject again, timed here.
    started = time.monotonic()
    assert (await put_manifest(client, NAME, "again", subject_content, OCI_MANIFEST)).status == 201
    window = 2 * (time.monotonic() - started)
    refused = 0
    for attempt in range(RACE_TRIES):
        config = json.dumps({"attempt": attempt}).encode()
        await push_blob(client, NAME, config)
        await push_blob(client, NAME, layer)
        content = odd_json({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, config),
            "layers": [descriptor(OCI_LAYER, layer)], "subject": descriptor(OCI_MANIFEST, subject_content),
        })
        before = snapshot(storage)

        async def delete_layer():
            await asyncio.sleep(rng.random() * window)
            return await client.delete(f"/v2/{NAME}/blobs/{sha256(layer)}")

        put, deleted = await asyncio.gather(put_manifest(client, NAME, "race", content, OCI_MANIFEST), delete_layer())
        assert deleted.status == 202, await deleted.text()
        named = (await client.head(f"/v2/{NAME}/manifests/race")).headers["Docker-Content-Digest"]
        if put.status == 201:
            assert named == sha256(content)
            tagged = named
            continue
        refused += 1
        await error_of(put, 404, "MANIFEST_BLOB_UNKNOWN")
        assert named == tagged, f"try {attempt}: the refused PUT moved the tag"
        manifest_data = paths.blob_data(parse_digest(sha256(content))).lstrip("/")
        assert snapshot(storage) ^ before <= {layer_link, manifest_data}, f"try {attempt}"
        response = await client.get(f"/v2/{NAME}/manifests/{sha256(content)}")
        await error_of(response, 404, "MANIFEST_UNKNOWN")
    print(f"{refused} of {RACE_TRIES} PUTs refused")
    assert 0 < refused < RACE_TRIES  # both outcomes were checked


async def test_put_by_digest_that_does_not_match(client, storage):
    digest, content = await push_image(client, NAME)
    other = content + b" "
    before = snapshot(storage)
    response = await put_manifest(client, NAME, digest, other, OCI_MANIFEST)
    entry = await error_of(response, 400, "DIGEST_INVALID")
    assert entry["detail"] == {"expected": digest, "actual": sha256(other)}
    assert snapshot(storage) == before


async def test_put_by_sha512_digest(client):
    import hashlib

    _, content = await push_image(client, NAME)
    content = content + b"\n"
    digest = "sha512:" + hashlib.sha512(content).hexdigest()
    response = await put_manifest(client, NAME, digest, content, OCI_MANIFEST)
    assert response.status == 201, await response.text()
    assert response.headers["Docker-Content-Digest"] == digest
    await assert_served(client, digest, digest, content, OCI_MANIFEST)


async def test_put_by_sha512_digest_with_tag_parameters(client):
    """The spec's main branch: ``?tag=`` (repeatable) on a push by digest tags it, one ``OCI-Tag`` each."""
    _, content = await push_image(client, NAME)
    content = content + b"\n"
    digest = sha512(content)
    response = await client.put(f"/v2/{NAME}/manifests/{digest}", params=[("tag", "1.2.3"), ("tag", "latest"), ("tag", "1.2.3")],
                                data=content, headers={"Content-Type": OCI_MANIFEST})
    assert response.status == 201, await response.text()
    assert response.headers.getall("OCI-Tag") == ["1.2.3", "latest"]
    for tag in ("1.2.3", "latest"):
        await assert_served(client, tag, digest, content, OCI_MANIFEST)


@pytest.mark.parametrize("params", [
    [("tag", "good"), ("tag", "bad+tag")],  # all or nothing: one invalid tag refuses the push
    [("tag", "")],
], ids=["one-invalid", "empty"])
async def test_put_by_digest_with_an_invalid_tag_parameter_changes_nothing(client, storage, params):
    _, content = await push_image(client, NAME)
    content = content + b"\n"
    before = snapshot(storage)
    response = await client.put(f"/v2/{NAME}/manifests/{sha256(content)}", params=params, data=content,
                                headers={"Content-Type": OCI_MANIFEST})
    await error_of(response, 400, "TAG_INVALID")
    assert snapshot(storage) == before


async def test_tag_parameters_need_a_push_by_digest(client, storage):
    _, content = await push_image(client, NAME)
    before = snapshot(storage)
    response = await client.put(f"/v2/{NAME}/manifests/v1", params={"tag": "v2"}, data=content,
                                headers={"Content-Type": OCI_MANIFEST})
    await error_of(response, 400, "TAG_INVALID")
    assert snapshot(storage) == before


async def test_retag_moves_the_tag(client):
    first, first_content = await push_image(client, NAME, seed="a", tag="latest")
    second, second_content = await push_image(client, NAME, seed="b", tag="latest")
    await assert_served(client, "latest", second, second_content, OCI_MANIFEST)
    await assert_served(client, first, first, first_content, OCI_MANIFEST)


async def test_unknown_manifest(client):
    response = await client.get(f"/v2/{NAME}/manifests/nope")
    await error_of(response, 404, "MANIFEST_UNKNOWN")
    missing = sha256(b"nope")
    response = await client.get(f"/v2/{NAME}/manifests/{missing}")
    entry = await error_of(response, 404, "MANIFEST_UNKNOWN")
    assert entry["detail"] == {"digest": missing}


async def test_manifest_is_not_readable_in_another_repository(client):
    digest, _ = await push_image(client, NAME, tag="v1")
    await push_image(client, "other", tag="v1", seed="other")
    response = await client.get(f"/v2/other/manifests/{digest}")
    await error_of(response, 404, "MANIFEST_UNKNOWN")


async def test_delete_by_digest_removes_manifest_and_its_tags(client):
    digest, _ = await push_image(client, NAME, tag="v1")
    response = await client.put(f"/v2/{NAME}/manifests/v1.0", data=(await (await client.get(f"/v2/{NAME}/manifests/v1")).read()),
                                headers={"Content-Type": OCI_MANIFEST})
    assert response.status == 201
    other, other_content = await push_image(client, NAME, seed="other", tag="keep")
    response = await client.get(f"/v2/{NAME}/tags/list")
    assert (await response.json())["tags"] == ["keep", "v1", "v1.0"]

    response = await client.delete(f"/v2/{NAME}/manifests/{digest}")
    assert response.status == 202
    for reference in (digest, "v1", "v1.0"):
        response = await client.get(f"/v2/{NAME}/manifests/{reference}")
        await error_of(response, 404, "MANIFEST_UNKNOWN")
    response = await client.get(f"/v2/{NAME}/tags/list")
    assert (await response.json())["tags"] == ["keep"]
    await assert_served(client, "keep", other, other_content, OCI_MANIFEST)
    response = await client.delete(f"/v2/{NAME}/manifests/{digest}")
    await error_of(response, 404, "MANIFEST_UNKNOWN")


async def test_delete_by_tag_only_untags(client):
    digest, content = await push_image(client, NAME, tag="v1")
    response = await client.delete(f"/v2/{NAME}/manifests/v1")
    assert response.status == 202
    response = await client.get(f"/v2/{NAME}/manifests/v1")
    await error_of(response, 404, "MANIFEST_UNKNOWN")
    await assert_served(client, digest, digest, content, OCI_MANIFEST)
    response = await client.get(f"/v2/{NAME}/tags/list")
    assert (await response.json())["tags"] == []
    response = await client.delete(f"/v2/{NAME}/manifests/v1")
    await error_of(response, 404, "MANIFEST_UNKNOWN")


async def test_delete_manifest_keeps_its_blobs(client):
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": "one"}).encode()
    digest, _ = await push_image(client, NAME, tag="v1")
    response = await client.delete(f"/v2/{NAME}/manifests/{digest}")
    assert response.status == 202
    response = await client.get(f"/v2/{NAME}/blobs/{sha256(config)}")
    assert response.status == 200
    assert await response.read() == config


async def test_delete_unknown_manifest(client, storage):
    before = snapshot(storage)
    response = await client.delete(f"/v2/{NAME}/manifests/{sha256(b'x')}")
    await error_of(response, 404, "MANIFEST_UNKNOWN")
    response = await client.delete(f"/v2/{NAME}/manifests/nosuchtag")
    await error_of(response, 404, "MANIFEST_UNKNOWN")
    assert snapshot(storage) == before


async def test_repush_after_delete(client):
    digest, content = await push_image(client, NAME, tag="v1")
    response = await client.delete(f"/v2/{NAME}/manifests/{digest}")
    assert response.status == 202
    response = await put_manifest(client, NAME, "v1", content, OCI_MANIFEST)
    assert response.status == 201
    await assert_served(client, "v1", digest, content, OCI_MANIFEST)


async def test_a_manifest_is_parsed_once_for_many_gets(client, monkeypatch):
    from dockyard import manifest

    parsed: list[bytes] = []
    real = manifest.stored_media_type
    monkeypatch.setattr(manifest, "stored_media_type", lambda content: parsed.append(content) or real(content))
    seed = f"parsed once {random.random()}"  # a manifest this process has never served
    digest, content = await push_image(client, NAME, "latest", media_type=DOCKER_MANIFEST, seed=seed)
    for reference in ("latest", digest, "latest"):
        await assert_served(client, reference, digest, content, DOCKER_MANIFEST, headers={"Accept": DOCKER_MANIFEST})
    assert parsed == [content]


async def test_a_pull_builds_no_event_without_an_endpoint(client, monkeypatch):
    from dockyard.api import events

    def no_target(*args, **kwargs):
        raise AssertionError("an event target was built for no endpoint")

    monkeypatch.setattr(events, "Target", no_target)
    digest, content = await push_image(client, NAME, "latest")
    await assert_served(client, "latest", digest, content, OCI_MANIFEST)


async def test_accept_values_with_q_values_many_and_long(client):
    from dockyard.api import manifests

    digest, content = await push_image(client, NAME, "latest")
    served = [f"{DOCKER_MANIFEST};q=0.9, {OCI_MANIFEST.upper()} ; q=0.{n % 10}, application/x-{n}" for n in range(manifests.ACCEPT_VALUES_KEPT + 20)]
    refused = [f"{DOCKER_MANIFEST};q=1, application/x-{n}" for n in range(manifests.ACCEPT_VALUES_KEPT + 20)]
    long = ", ".join([*(f"application/x-{n}" for n in range(manifests.ACCEPT_KEPT_MAX // 10)), OCI_MANIFEST])
    for accept in [*served, served[0], long]:  # the first value again, when more distinct ones came after it
        response = await client.get(f"/v2/{NAME}/manifests/latest", headers={"Accept": accept})
        assert response.status == 200, accept
        assert await response.read() == content
    for accept in [*refused, refused[0]]:
        response = await client.get(f"/v2/{NAME}/manifests/{digest}", headers={"Accept": accept})
        await error_of(response, 404, "MANIFEST_UNKNOWN")


async def test_an_accept_value_is_split_once(client):
    from dockyard.api import manifests

    digest, content = await push_image(client, NAME, "latest")
    accept = f"{OCI_MANIFEST}, application/x-split-once-{random.random()}"
    before = manifests._media_types_in.cache_info()
    for _ in range(3):
        await assert_served(client, "latest", digest, content, OCI_MANIFEST, headers={"Accept": accept})
    after = manifests._media_types_in.cache_info()
    assert after.misses - before.misses == 1  # a GET and a HEAD three times, one split
