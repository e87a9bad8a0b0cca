"""Malformed requests: the exact status, the spec error code, and no trace left in storage.

Every test snapshots the files under the storage root before the bad request and
checks that nothing changed after it (besides an upload the test itself started).
A client mistake is never a 500.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.support.registry_client import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, push_blob, push_image, sha256

from .conftest import error_of, put_manifest, raw_request, snapshot

NAME = "repo"
BLOB = b"some blob content" * 10
HEX = hashlib.sha256(BLOB).hexdigest()

BAD_DIGESTS = {
    "upper": "sha256:" + HEX.upper(),
    "short": "sha256:" + HEX[:63],
    "long": "sha256:" + HEX + "0",
    "non-hex": "sha256:" + "g" * 64,
    "empty-hex": "sha256:",
    "md5": "md5:d41d8cd98f00b204e9800998ecf8427e",
    "sha1": "sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "upper-algorithm": "SHA256:" + HEX,
    "dots": "sha256:..",
    "no-algorithm": ":" + HEX,
}


@pytest.fixture
async def seeded(client, storage):
    """A repository with a blob and a tagged manifest, so bad requests have something to hit."""
    await push_blob(client, NAME, BLOB)
    digest, content = await push_image(client, NAME, tag="v1")
    return {"manifest": digest, "content": content}


async def start_upload(client, name: str = NAME) -> str:
    response = await client.post(f"/v2/{name}/blobs/uploads/")
    assert response.status == 202
    return response.headers["Location"]


def upload_files(storage, location: str) -> set[str]:
    upload_id = location.rsplit("/", 1)[1]
    return {path for path in snapshot(storage) if f"/_uploads/{upload_id}/" in path}


# Digests


@pytest.mark.parametrize("bad", BAD_DIGESTS.values(), ids=BAD_DIGESTS.keys())
@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("GET", "/v2/repo/blobs/{}"),
        ("DELETE", "/v2/repo/blobs/{}"),
        ("GET", "/v2/repo/manifests/{}"),
        ("DELETE", "/v2/repo/manifests/{}"),
        ("GET", "/v2/repo/referrers/{}"),
    ],
)
async def test_bad_digest_in_path(client, storage, seeded, bad, method, template):
    before = snapshot(storage)
    response = await client.request(method, template.format(bad))
    await error_of(response, 400, "DIGEST_INVALID")
    assert snapshot(storage) == before


@pytest.mark.parametrize("bad", BAD_DIGESTS.values(), ids=BAD_DIGESTS.keys())
async def test_bad_digest_head_blob(client, storage, seeded, bad):
    response = await client.head(f"/v2/repo/blobs/{bad}")
    assert response.status == 400
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


@pytest.mark.parametrize("bad", BAD_DIGESTS.values(), ids=BAD_DIGESTS.keys())
async def test_bad_digest_monolithic_post(client, storage, seeded, bad):
    before = snapshot(storage)
    response = await client.post("/v2/repo/blobs/uploads/", params={"digest": bad}, data=BLOB)
    await error_of(response, 400, "DIGEST_INVALID")
    assert snapshot(storage) == before


@pytest.mark.parametrize("bad", BAD_DIGESTS.values(), ids=BAD_DIGESTS.keys())
async def test_bad_digest_finishing_upload(client, storage, seeded, bad):
    before = snapshot(storage)
    location = await start_upload(client)
    response = await client.patch(location, data=BLOB)
    assert response.status == 202
    mine = upload_files(storage, location)
    response = await client.put(location, params={"digest": bad})
    await error_of(response, 400, "DIGEST_INVALID")
    assert snapshot(storage) == before | mine
    response = await client.put(location, params={"digest": bad}, data=b"last chunk")
    await error_of(response, 400, "DIGEST_INVALID")
    assert snapshot(storage) == before | mine


@pytest.mark.parametrize("bad", BAD_DIGESTS.values(), ids=BAD_DIGESTS.keys())
async def test_bad_digest_mount(client, storage, seeded, bad):
    before = snapshot(storage)
    response = await client.post("/v2/other/blobs/uploads/", params={"mount": bad, "from": NAME})
    await error_of(response, 400, "DIGEST_INVALID")
    assert snapshot(storage) == before


@pytest.mark.parametrize("bad", [d for k, d in BAD_DIGESTS.items() if k != "no-algorithm"])
async def test_bad_digest_put_manifest(client, storage, seeded, bad):
    before = snapshot(storage)
    response = await put_manifest(client, NAME, bad, seeded["content"], OCI_MANIFEST)
    await error_of(response, 400, "DIGEST_INVALID")
    assert snapshot(storage) == before


async def test_digest_mismatch_monolithic_post(client, storage, seeded):
    before = snapshot(storage)
    wrong = sha256(b"not the content")
    response = await client.post("/v2/repo/blobs/uploads/", params={"digest": wrong}, data=b"the content")
    entry = await error_of(response, 400, "DIGEST_INVALID")
    assert entry["detail"] == {"expected": wrong, "actual": sha256(b"the content")}
    assert snapshot(storage) == before


async def test_digest_mismatch_upload_is_gone(client, storage, seeded):
    before = snapshot(storage)
    location = await start_upload(client)
    await client.patch(location, data=b"chunk one")
    response = await client.put(location, params={"digest": sha256(b"chunk one")}, data=b" and two")
    await error_of(response, 400, "DIGEST_INVALID")
    assert snapshot(storage) == before
    response = await client.get(location)
    await error_of(response, 404, "BLOB_UPLOAD_UNKNOWN")


async def test_digest_mismatch_manifest(client, storage, seeded):
    before = snapshot(storage)
    response = await put_manifest(client, NAME, sha256(b"x"), seeded["content"], OCI_MANIFEST)
    await error_of(response, 400, "DIGEST_INVALID")
    assert snapshot(storage) == before


async def test_size_mismatch_in_chunk(client, storage, seeded):
    before = snapshot(storage)
    location = await start_upload(client)
    mine = upload_files(storage, location)
    response = await client.patch(location, data=b"0123456789", headers={"Content-Range": "0-4"})
    await error_of(response, 400, "SIZE_INVALID")
    assert response.headers["Range"] == "0-0"
    assert snapshot(storage) == before | mine
    response = await client.get(location)
    assert response.headers["Range"] == "0-0"


# Names and tags

BAD_NAMES = {
    "upper": "/v2/Repo",
    "upper-nested": "/v2/library/App",
    "dotdot": "/v2/../repo",
    "dotdot-inside": "/v2/a/../repo",
    "encoded-dotdot": "/v2/a/%2e%2e/repo",
    "encoded-dotdot-upper": "/v2/%2E%2E/repo",
    "encoded-slash-dotdot": "/v2/a%2F..%2Frepo",
    "nul": "/v2/a%00b",
    "nul-component": "/v2/a/%00",
    "too-long": "/v2/" + "a" * 256,
    "too-long-nested": "/v2/" + "a" * 100 + "/" + "b" * 155,
    "empty-component": "/v2/a//b",
    "leading-slash": "/v2//repo",
    "trailing-dot": "/v2/repo.",
    "leading-dash": "/v2/-repo",
    "double-dot": "/v2/a..b",
    "dot-component": "/v2/a/./b",
    "space": "/v2/a%20b",
    "unicode": "/v2/caf%C3%A9",
    "encoded-slash": "/v2/a%2Fb",
}
ROUTES = {
    "upload-start": ("POST", "/blobs/uploads/"),
    "blob": ("GET", f"/blobs/sha256:{HEX}"),
    "blob-delete": ("DELETE", f"/blobs/sha256:{HEX}"),
    "manifest-put": ("PUT", "/manifests/latest"),
    "manifest-get": ("GET", "/manifests/latest"),
    "tags": ("GET", "/tags/list"),
    "referrers": ("GET", f"/referrers/sha256:{HEX}"),
    "upload-status": ("GET", "/blobs/uploads/00000000-0000-4000-8000-000000000000"),
}


@pytest.mark.parametrize("route", ROUTES.values(), ids=ROUTES.keys())
@pytest.mark.parametrize("prefix", BAD_NAMES.values(), ids=BAD_NAMES.keys())
async def test_invalid_name(client, storage, seeded, prefix, route):
    method, suffix = route
    before = snapshot(storage)
    kwargs = {}
    if method == "PUT":
        kwargs = {"data": seeded["content"], "headers": {"Content-Type": OCI_MANIFEST}}
    response = await raw_request(client, method, prefix + suffix, **kwargs)
    await error_of(response, 400, "NAME_INVALID")
    assert snapshot(storage) == before


async def test_longest_valid_name(client, storage):
    name = "a" * 100 + "/" + "b" * 154
    assert len(name) == 255
    digest = await push_blob(client, name, b"x")
    response = await client.get(f"/v2/{name}/blobs/{digest}")
    assert response.status == 200


BAD_TAGS = {
    "leading-dash": "-tag",
    "leading-dot": ".tag",
    "too-long": "t" * 129,
    "space": "ta%20g",
    "star": "ta*g",
    "plus": "v1+build",
    "nul": "ta%00g",
    "unicode": "t%C3%A9g",
    "dotdot": "..",
    # An encoded slash must not split the tag into another repository's path.
    "encoded-slash": "a%2Fb",
    "encoded-slash-lower": "a%2fb",
}


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
@pytest.mark.parametrize("tag", BAD_TAGS.values(), ids=BAD_TAGS.keys())
async def test_invalid_tag(client, storage, seeded, tag, method):
    before = snapshot(storage)
    kwargs = {}
    if method == "PUT":
        kwargs = {"data": seeded["content"], "headers": {"Content-Type": OCI_MANIFEST}}
    response = await raw_request(client, method, f"/v2/repo/manifests/{tag}", **kwargs)
    await error_of(response, 400, "TAG_INVALID")
    assert snapshot(storage) == before


@pytest.mark.parametrize("tag", [".INVALID_MANIFEST_NAME", *BAD_TAGS.values()], ids=["conformance", *BAD_TAGS.keys()])
async def test_fetching_an_invalid_tag_is_an_unknown_manifest(client, seeded, tag):
    """As registry:2 answers (and the conformance suite asks): no manifest has that name."""
    response = await raw_request(client, "GET", f"/v2/repo/manifests/{tag}")
    await error_of(response, 404, "MANIFEST_UNKNOWN")
    response = await raw_request(client, "HEAD", f"/v2/repo/manifests/{tag}")
    assert response.status == 404


async def test_longest_valid_tag(client, seeded):
    tag = "_" + "T" * 127
    response = await put_manifest(client, NAME, tag, seeded["content"], OCI_MANIFEST)
    assert response.status == 201
    response = await client.get(f"/v2/repo/manifests/{tag}")
    assert response.status == 200


# Manifest bodies

MiB = 1024 * 1024


def big_manifest(size: int) -> bytes:
    document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {}, "annotations": {"pad": ""}}
    base = len(json.dumps(document))
    document["annotations"]["pad"] = "x" * (size - base)
    content = json.dumps(document).encode()
    assert len(content) == size
    return content


@pytest.mark.parametrize("size", [5 * MiB, 4 * MiB + 1])
async def test_manifest_too_large(client, storage, seeded, size):
    before = snapshot(storage)
    response = await put_manifest(client, NAME, "big", big_manifest(size), OCI_MANIFEST)
    await error_of(response, 413, "MANIFEST_INVALID")
    assert snapshot(storage) == before


async def test_manifest_too_large_streamed(client, storage, seeded):
    before = snapshot(storage)
    content = big_manifest(5 * MiB)

    async def body():
        for offset in range(0, len(content), 64 * 1024):
            yield content[offset:offset + 64 * 1024]

    response = await client.put("/v2/repo/manifests/big", data=body(), headers={"Content-Type": OCI_MANIFEST})
    await error_of(response, 413, "MANIFEST_INVALID")
    assert snapshot(storage) == before


def _deep(levels: int) -> bytes:
    return b'{"schemaVersion": 2, "x": ' + b"[" * levels + b"]" * levels + b"}"


BAD_MANIFESTS = {
    "invalid-json": (b'{"schemaVersion": 2,', OCI_MANIFEST, "not valid JSON"),
    "empty-body": (b"", OCI_MANIFEST, "not valid JSON"),
    "not-utf8": (b'{"schemaVersion": 2, "x": "\xff\xfe"}', OCI_MANIFEST, "not valid JSON"),
    "json-array": (b"[]", OCI_MANIFEST, "JSON object"),
    "json-array-of-manifest": (b'[{"schemaVersion": 2}]', OCI_MANIFEST, "JSON object"),
    "json-string": (b'"manifest"', OCI_MANIFEST, "JSON object"),
    "json-null": (b"null", OCI_MANIFEST, "JSON object"),
    "deep-nesting": (_deep(100_000), OCI_MANIFEST, "not valid JSON"),
    "huge-integer": (b'{"schemaVersion": 2, "x": ' + b"9" * 5000 + b"}", OCI_MANIFEST, "not valid JSON"),
    "schema1-by-type": (b'{"schemaVersion": 1, "name": "repo", "tag": "v1", "fsLayers": []}',
                        "application/vnd.docker.distribution.manifest.v1+prettyjws", "schema 1"),
    "schema1-unsigned-type": (b'{"schemaVersion": 1}', "application/vnd.docker.distribution.manifest.v1+json", "schema 1"),
    "schema1-by-body": (b'{"schemaVersion": 1, "name": "repo", "tag": "v1", "fsLayers": [], "history": []}',
                        "application/json", "schema 1"),
    "schema-version-3": (b'{"schemaVersion": 3, "config": {}}', OCI_MANIFEST, "schemaVersion"),
    "schema-version-missing": (b'{"config": {}, "layers": []}', OCI_MANIFEST, "schemaVersion"),
    "schema-version-string": (b'{"schemaVersion": "2"}', OCI_MANIFEST, "schemaVersion"),
    "no-config": (b'{"schemaVersion": 2, "mediaType": "' + OCI_MANIFEST.encode() + b'", "layers": []}', OCI_MANIFEST, "config"),
    "config-not-object": (b'{"schemaVersion": 2, "config": "sha256:abc", "layers": []}', OCI_MANIFEST, "config"),
    "layers-not-list": (
        b'{"schemaVersion": 2, "config": {"mediaType": "a", "digest": "sha256:' + HEX.encode() + b'", "size": 1},'
        b' "layers": {}}', OCI_MANIFEST, "layers"),
    "descriptor-bad-digest": (
        b'{"schemaVersion": 2, "config": {"mediaType": "a", "digest": "sha256:XYZ", "size": 1}}', OCI_MANIFEST, "digest"),
    "descriptor-negative-size": (
        b'{"schemaVersion": 2, "config": {"mediaType": "a", "digest": "sha256:' + HEX.encode() + b'", "size": -1}}',
        OCI_MANIFEST, "size"),
    "descriptor-float-size": (
        b'{"schemaVersion": 2, "config": {"mediaType": "a", "digest": "sha256:' + HEX.encode() + b'", "size": 1.5}}',
        OCI_MANIFEST, "size"),
    "descriptor-no-media-type": (
        b'{"schemaVersion": 2, "config": {"digest": "sha256:' + HEX.encode() + b'", "size": 1}}', OCI_MANIFEST, "mediaType"),
    "index-manifests-missing": (b'{"schemaVersion": 2, "mediaType": "' + OCI_INDEX.encode() + b'"}', OCI_INDEX, "manifests"),
    "index-manifests-not-descriptors": (
        b'{"schemaVersion": 2, "mediaType": "' + OCI_INDEX.encode() + b'", "manifests": [1, 2]}', OCI_INDEX, "manifests"),
    "media-type-not-string": (b'{"schemaVersion": 2, "mediaType": 5, "config": {}}', OCI_MANIFEST, "mediaType"),
    "unknown-media-type": (b'{"schemaVersion": 2, "mediaType": "application/vnd.unknown", "config": {}}',
                           "application/vnd.unknown", "media type"),
    "header-body-mismatch": (b'{"schemaVersion": 2, "mediaType": "' + OCI_MANIFEST.encode() + b'", "config": {}}',
                             DOCKER_MANIFEST, "does not match"),
    "subject-not-descriptor": (
        b'{"schemaVersion": 2, "config": {"mediaType": "a", "digest": "sha256:' + HEX.encode() + b'", "size": 1},'
        b' "subject": "sha256:' + HEX.encode() + b'"}', OCI_MANIFEST, "subject"),
    "artifact-type-not-string": (
        b'{"schemaVersion": 2, "artifactType": 7, "config": {"mediaType": "a", "digest": "sha256:' + HEX.encode()
        + b'", "size": 1}}', OCI_MANIFEST, "artifactType"),
}




def _mistyped(change: dict, where: str = "") -> bytes:
    """A well-formed OCI manifest naming the seeded blob, with one field of the wrong type (at ``where``)."""
    descriptor = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + HEX, "size": len(BLOB)}
    document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": dict(descriptor), "layers": [dict(descriptor)]}
    target = document["layers"][0] if where == "layer" else document
    target.update(change)
    return json.dumps(document).encode()


# Each of these was stored (201) once, and registry:2's garbage-collect could not read the root afterwards.
BAD_MANIFESTS.update({
    "annotation-number": (_mistyped({"annotations": {"a": 1}}), OCI_MANIFEST, "annotations"),
    "annotations-list": (_mistyped({"annotations": ["a"]}), OCI_MANIFEST, "annotations"),
    "layer-annotation-number": (_mistyped({"annotations": {"a": 1}}, "layer"), OCI_MANIFEST, "layers[0].annotations"),
    "size-past-int64": (_mistyped({"size": 2**70}, "layer"), OCI_MANIFEST, "layers[0].size"),
    "urls-string": (_mistyped({"urls": "https://example.com/layer"}, "layer"), OCI_MANIFEST, "layers[0].urls"),
    "platform-string": (_mistyped({"platform": "linux/amd64"}, "layer"), OCI_MANIFEST, "layers[0].platform"),
})


@pytest.mark.parametrize(("content", "media_type", "mention"), BAD_MANIFESTS.values(), ids=BAD_MANIFESTS.keys())
async def test_invalid_manifest(client, storage, seeded, content, media_type, mention):
    before = snapshot(storage)
    response = await put_manifest(client, NAME, "bad", content, media_type)
    entry = await error_of(response, 400, "MANIFEST_INVALID")
    assert mention in entry["message"]
    assert snapshot(storage) == before
    response = await client.get("/v2/repo/manifests/bad")
    await error_of(response, 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/vnd.oci.image.config.v1+json"])
async def test_wrong_content_type(client, storage, seeded, content_type):
    before = snapshot(storage)
    response = await put_manifest(client, NAME, "bad", seeded["content"], content_type)
    entry = await error_of(response, 400, "MANIFEST_INVALID")
    assert content_type in entry["message"]
    assert snapshot(storage) == before


# Ranges

BAD_BLOB_RANGES = {
    "negative-start": "bytes=-5-10",
    "negative-end": "bytes=5--1",
    "reversed": "bytes=100-10",
    "start-at-size": f"bytes={len(BLOB)}-",
    "oversize-start": "bytes=99999999999999999999-",
    "oversize-both": "bytes=99999999999999999999-999999999999999999999",
    "zero-suffix": "bytes=-0",
    "malformed": "bytes=a-b",
    "no-unit": "0-1",
    "non-ascii-digits": "bytes=\u0660-\u0661",
}


@pytest.mark.parametrize("header", BAD_BLOB_RANGES.values(), ids=BAD_BLOB_RANGES.keys())
async def test_bad_blob_range(client, storage, seeded, header):
    before = snapshot(storage)
    response = await client.get(f"/v2/repo/blobs/sha256:{HEX}", headers={"Range": header})
    await error_of(response, 416, "RANGE_INVALID")
    assert response.headers["Content-Range"] == f"bytes */{len(BLOB)}"
    assert snapshot(storage) == before


BAD_CHUNK_RANGES = {
    "negative": ("-1-8", 416, "RANGE_INVALID"),
    "reversed": ("9-0", 416, "RANGE_INVALID"),
    "malformed": ("zero-nine", 416, "RANGE_INVALID"),
    "not-at-end": ("5-14", 416, "RANGE_INVALID"),
    "oversize-end": ("0-99999999999999999999", 400, "SIZE_INVALID"),
    "oversize-start": ("99999999999999999990-99999999999999999999", 416, "RANGE_INVALID"),
}


@pytest.mark.parametrize(("header", "status", "code"), BAD_CHUNK_RANGES.values(), ids=BAD_CHUNK_RANGES.keys())
async def test_bad_chunk_range(client, storage, seeded, header, status, code):
    before = snapshot(storage)
    location = await start_upload(client)
    mine = upload_files(storage, location)
    response = await client.patch(location, data=b"0123456789", headers={"Content-Range": header})
    await error_of(response, status, code)
    assert snapshot(storage) == before | mine
    response = await client.get(location)
    assert response.status == 204
    assert response.headers["Range"] == "0-0"


# Uploads

@pytest.mark.parametrize("upload_id", ["not-a-uuid", "00000000-0000-4000-8000-00000000000G",
                                       "ABCDEF00-0000-4000-8000-000000000000", "..", "00000000-0000-4000-8000-000000000000"])
@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
async def test_unknown_upload(client, storage, seeded, upload_id, method):
    before = snapshot(storage)
    response = await raw_request(client, method, f"/v2/repo/blobs/uploads/{upload_id}?digest=sha256:{HEX}", data=b"x")
    await error_of(response, 404, "BLOB_UPLOAD_UNKNOWN")
    assert snapshot(storage) == before


async def test_upload_of_another_repository(client, storage, seeded):
    location = await start_upload(client, "other")
    before = snapshot(storage)
    upload_id = location.rsplit("/", 1)[1]
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        response = await client.request(method, f"/v2/repo/blobs/uploads/{upload_id}", params={"digest": f"sha256:{HEX}"}, data=b"x")
        await error_of(response, 404, "BLOB_UPLOAD_UNKNOWN")
    assert snapshot(storage) == before


# Never a 500

GARBAGE_REQUESTS = [
    ("GET", "/v2/_catalog?n=99999999999999999999999999", 200, None),
    ("GET", "/v2/_catalog?n=%00", 400, "PAGINATION_NUMBER_INVALID"),
    ("GET", "/v2/_catalog?n=-1", 400, "PAGINATION_NUMBER_INVALID"),
    ("GET", "/v2/_catalog?last=%FF%FE", 200, None),
    ("GET", "/v2/repo/tags/list?n=1e3", 400, "PAGINATION_NUMBER_INVALID"),
    ("GET", "/v2/repo/tags/list?last=" + "z" * 5000, 200, None),
    ("GET", "/v2/repo/referrers/sha256:" + HEX + "?artifactType=%00", 200, None),
    ("POST", "/v2/repo/blobs/uploads/?mount=&from=", 400, "DIGEST_INVALID"),
    ("POST", "/v2/repo/blobs/uploads/?digest=", 400, "DIGEST_INVALID"),
    ("POST", "/v2/repo/blobs/uploads/?mount=sha256:" + HEX + "&from=Repo", 400, "NAME_INVALID"),
    ("PUT", "/v2/repo/manifests/", 404, "NOT_FOUND"),
    ("GET", "/v2/repo/manifests/sha256:" + HEX + "%2F..", 400, "DIGEST_INVALID"),
    ("GET", "/v2/repo/blobs/%FF", 400, "DIGEST_INVALID"),
    ("GET", "/v2/%FF/tags/list", 400, "NAME_INVALID"),
    ("GET", "/v2/repo/blobs/uploads/%00", 404, "BLOB_UPLOAD_UNKNOWN"),
    ("PATCH", "/v2/repo/manifests/latest", 405, "UNSUPPORTED"),
    ("GET", "/v2/repo/manifests/sha256:" + HEX + "?x=%FF", 404, "MANIFEST_UNKNOWN"),
]


@pytest.mark.parametrize(("method", "path", "status", "code"), GARBAGE_REQUESTS)
async def test_garbage_is_never_a_500(client, storage, seeded, method, path, status, code):
    before = snapshot(storage)
    response = await raw_request(client, method, path, data=b"{}")
    if code is None:
        body = await response.read()
        assert response.status == status, body[:300]
        assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    else:
        await error_of(response, status, code)
    assert snapshot(storage) == before
