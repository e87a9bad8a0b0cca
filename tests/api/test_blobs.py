"""``/v2/<name>/blobs/<digest>``: GET, HEAD, ranges, conditional requests, DELETE."""

from __future__ import annotations

import pytest

from .conftest import error_of, push_blob, sha256, snapshot

DATA = bytes(range(256)) * 40 + b"tail"  # 10244 bytes
SIZE = len(DATA)


@pytest.fixture
async def blob(client) -> str:
    return await push_blob(client, "library/app", DATA)


async def test_get_blob(client, blob):
    response = await client.get(f"/v2/library/app/blobs/{blob}")
    assert response.status == 200
    assert await response.read() == DATA
    assert response.headers["Content-Length"] == str(SIZE)
    assert response.headers["Docker-Content-Digest"] == blob
    assert response.headers["ETag"] == f'"{blob}"'
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


async def test_head_blob(client, blob):
    response = await client.head(f"/v2/library/app/blobs/{blob}")
    assert response.status == 200
    assert await response.read() == b""
    assert response.headers["Content-Length"] == str(SIZE)
    assert response.headers["Docker-Content-Digest"] == blob
    assert response.headers["ETag"] == f'"{blob}"'
    assert response.headers["Accept-Ranges"] == "bytes"


async def test_empty_blob(client):
    digest = await push_blob(client, "library/app", b"")
    assert digest == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    response = await client.get(f"/v2/library/app/blobs/{digest}")
    assert response.status == 200
    assert response.headers["Content-Length"] == "0"
    assert await response.read() == b""


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=0-99", 0, 99),
        ("bytes=100-199", 100, 199),
        (f"bytes=10000-{SIZE - 1}", 10000, SIZE - 1),
        ("bytes=10000-", 10000, SIZE - 1),
        ("bytes=0-", 0, SIZE - 1),
        ("bytes=-4", SIZE - 4, SIZE - 1),
        ("bytes=-1", SIZE - 1, SIZE - 1),
        (f"bytes=-{SIZE + 500}", 0, SIZE - 1),
        (f"bytes=5000-{SIZE + 1000}", 5000, SIZE - 1),
    ],
)
async def test_range(client, blob, header, start, end):
    response = await client.get(f"/v2/library/app/blobs/{blob}", headers={"Range": header})
    assert response.status == 206
    assert await response.read() == DATA[start:end + 1]
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/{SIZE}"
    assert response.headers["Content-Length"] == str(end - start + 1)
    assert response.headers["Docker-Content-Digest"] == blob


async def test_range_head(client, blob):
    response = await client.head(f"/v2/library/app/blobs/{blob}", headers={"Range": "bytes=-4"})
    assert response.status == 206
    assert response.headers["Content-Range"] == f"bytes {SIZE - 4}-{SIZE - 1}/{SIZE}"
    assert response.headers["Content-Length"] == "4"


@pytest.mark.parametrize(
    "header",
    [
        "bytes=200-100",
        f"bytes={SIZE}-",
        f"bytes={SIZE}-{SIZE + 10}",
        f"bytes={SIZE + 1000}-",
        "bytes=-0",
        "bytes=-",
        "bytes=abc-def",
        "bytes=1-2,5-6",
        "items=0-1",
        "0-1",
        "bytes=--1",
        "",
    ],
)
async def test_bad_range_is_416(client, blob, header):
    response = await client.get(f"/v2/library/app/blobs/{blob}", headers={"Range": header})
    await error_of(response, 416, "RANGE_INVALID")
    assert response.headers["Content-Range"] == f"bytes */{SIZE}"


async def test_if_none_match_etag(client, blob):
    response = await client.get(f"/v2/library/app/blobs/{blob}", headers={"If-None-Match": f'"{blob}"'})
    assert response.status == 304
    assert await response.read() == b""
    assert response.headers["Docker-Content-Digest"] == blob
    assert response.headers["ETag"] == f'"{blob}"'


async def test_if_none_match_bare_digest(client, blob):
    response = await client.get(f"/v2/library/app/blobs/{blob}", headers={"If-None-Match": blob})
    assert response.status == 304


async def test_if_none_match_other_etag_is_200(client, blob):
    other = sha256(b"other")
    response = await client.get(f"/v2/library/app/blobs/{blob}", headers={"If-None-Match": f'"{other}"'})
    assert response.status == 200
    assert await response.read() == DATA


async def test_unknown_blob(client, blob):
    missing = sha256(b"never pushed")
    response = await client.get(f"/v2/library/app/blobs/{missing}")
    entry = await error_of(response, 404, "BLOB_UNKNOWN")
    assert entry["detail"] == {"digest": missing}


async def test_unknown_blob_head_is_404_without_body(client, blob):
    response = await client.head(f"/v2/library/app/blobs/{sha256(b'never pushed')}")
    assert response.status == 404
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


async def test_unknown_blob_in_unknown_repository(client):
    response = await client.get(f"/v2/nobody/here/blobs/{sha256(b'x')}")
    await error_of(response, 404, "BLOB_UNKNOWN")


async def test_blob_is_not_readable_in_another_repository(client, blob):
    await push_blob(client, "other/repo", b"something else")
    response = await client.get(f"/v2/other/repo/blobs/{blob}")
    await error_of(response, 404, "BLOB_UNKNOWN")
    response = await client.head(f"/v2/other/repo/blobs/{blob}")
    assert response.status == 404


async def test_delete_blob(client, blob):
    response = await client.delete(f"/v2/library/app/blobs/{blob}")
    assert response.status == 202
    assert response.headers["Docker-Content-Digest"] == blob
    response = await client.get(f"/v2/library/app/blobs/{blob}")
    await error_of(response, 404, "BLOB_UNKNOWN")
    response = await client.head(f"/v2/library/app/blobs/{blob}")
    assert response.status == 404
    response = await client.delete(f"/v2/library/app/blobs/{blob}")
    await error_of(response, 404, "BLOB_UNKNOWN")


async def test_delete_blob_leaves_other_repository_link(client, blob):
    await push_blob(client, "other/repo", DATA)
    response = await client.delete(f"/v2/library/app/blobs/{blob}")
    assert response.status == 202
    response = await client.get(f"/v2/other/repo/blobs/{blob}")
    assert response.status == 200
    assert await response.read() == DATA


async def test_delete_unknown_blob(client, storage):
    before = snapshot(storage)
    response = await client.delete(f"/v2/library/app/blobs/{sha256(b'nope')}")
    await error_of(response, 404, "BLOB_UNKNOWN")
    assert snapshot(storage) == before


async def test_delete_blob_bad_digest(client, blob):
    response = await client.delete("/v2/library/app/blobs/sha256:abc")
    await error_of(response, 400, "DIGEST_INVALID")


async def test_large_blob_round_trip(client):
    data = bytes(range(251)) * 20000  # ~5 MB, crosses the 4 MiB flush buffer
    digest = await push_blob(client, "big", data)
    response = await client.get(f"/v2/big/blobs/{digest}")
    assert response.status == 200
    assert await response.read() == data
    response = await client.get(f"/v2/big/blobs/{digest}", headers={"Range": "bytes=4194300-4194309"})
    assert response.status == 206
    assert await response.read() == data[4194300:4194310]
