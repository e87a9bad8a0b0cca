"""``/v2/<name>/blobs/<digest>``: GET, HEAD, ranges, conditional requests, DELETE."""

from __future__ import annotations

import pytest

from dockyard.api.ranges import MAX_RANGES
from tests.support.registry_client import push_blob, sha256

from .conftest import byteranges, error_of, snapshot

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
        "0-1",
        "bytes=--1",
        "",
        "bytes=\u0661\u0660-\u0661\u0669",  # Arabic-Indic 10-19: only ASCII digits count
        "bytes=0-\uff19",  # a fullwidth 9
        "bytes=\u0966-",  # a Devanagari 0
        f"bytes={SIZE}-,{SIZE + 5}-{SIZE + 9},-0",  # several ranges, none satisfiable
        "bytes=0-9,abc",  # one malformed range spoils the header
        "bytes= , ,",
    ],
)
async def test_bad_range_is_416(client, blob, header):
    response = await client.get(f"/v2/library/app/blobs/{blob}", headers={"Range": header})
    await error_of(response, 416, "RANGE_INVALID")
    assert response.headers["Content-Range"] == f"bytes */{SIZE}"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9,100-109", [(0, 9), (100, 109)]),
        ("bytes=0-0, 1-1 ,\t2-2", [(0, 0), (1, 1), (2, 2)]),  # adjacent ranges stay parts of their own
        ("bytes=0-1,5000-5009,-4", [(0, 1), (5000, 5009), (SIZE - 4, SIZE - 1)]),
        ("bytes=200-209,,5000-", [(200, 209), (5000, SIZE - 1)]),  # empty list elements are skipped
        (f"bytes=0-9,{SIZE}-,20-29,{SIZE + 100}-{SIZE + 200}", [(0, 9), (20, 29)]),  # unsatisfiable ones left out
        ("bytes=0-9,9000-" + "9" * 5000, [(0, 9), (9000, SIZE - 1)]),  # more digits than int() reads
        ("BYTES=0-1,3-4", [(0, 1), (3, 4)]),  # the unit is case-insensitive
    ],
)
async def test_multiple_ranges_are_multipart_byteranges(client, blob, header, expected):
    response = await client.get(f"/v2/library/app/blobs/{blob}", headers={"Range": header})
    body = await response.read()
    assert response.status == 206, body[:300]
    assert "Content-Range" not in response.headers
    assert response.headers["Content-Length"] == str(len(body))
    assert response.headers["Docker-Content-Digest"] == blob
    parts = byteranges(response.headers["Content-Type"], body)
    assert parts == [(f"bytes {start}-{end}/{SIZE}", DATA[start:end + 1]) for start, end in expected]
    head = await client.head(f"/v2/library/app/blobs/{blob}", headers={"Range": header})
    assert head.status == 206
    assert head.headers["Content-Length"] == str(len(body))
    assert head.headers["Content-Type"].startswith("multipart/byteranges; boundary=")


async def test_multipart_boundary_differs_between_answers(client, blob):
    types = set()
    for _ in range(3):
        response = await client.get(f"/v2/library/app/blobs/{blob}", headers={"Range": "bytes=0-1,5-6"})
        await response.read()
        types.add(response.headers["Content-Type"])
    assert len(types) == 3


async def test_one_satisfiable_range_of_several_is_a_single_part(client, blob):
    response = await client.get(f"/v2/library/app/blobs/{blob}", headers={"Range": f"bytes={SIZE + 1}-,100-109"})
    assert response.status == 206
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Range"] == f"bytes 100-109/{SIZE}"
    assert await response.read() == DATA[100:110]


@pytest.mark.parametrize(
    "header",
    [
        "items=0-5",  # a unit the server does not know: RFC 9110 says ignore the header
        "none=0-5",
        "bytes=0-99,50-149",  # overlapping: answered part by part they would repeat bytes
        "bytes=0-9,0-9",
        "bytes=-100,0-",
        "bytes=100-109,0-9",  # going backwards
        "bytes=" + ",".join(f"{index}-{index}" for index in range(MAX_RANGES + 1)),  # too many
    ],
)
async def test_ignored_range_sends_the_whole_blob(client, blob, header):
    response = await client.get(f"/v2/library/app/blobs/{blob}", headers={"Range": header})
    assert response.status == 200
    assert "Content-Range" not in response.headers
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Length"] == str(SIZE)
    assert await response.read() == DATA


async def test_as_many_ranges_as_allowed_are_parts(client, blob):
    header = "bytes=" + ",".join(f"{index}-{index}" for index in range(MAX_RANGES))
    response = await client.get(f"/v2/library/app/blobs/{blob}", headers={"Range": header})
    assert response.status == 206
    parts = byteranges(response.headers["Content-Type"], await response.read())
    assert parts == [(f"bytes {index}-{index}/{SIZE}", DATA[index:index + 1]) for index in range(MAX_RANGES)]


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
