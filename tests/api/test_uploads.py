"""``/v2/<name>/blobs/uploads/``: start, monolithic, chunked, streaming, status, cancel, mount."""

from __future__ import annotations

import re

import pytest

from tests.support.registry_client import push_blob, sha256

from .conftest import error_of, sha512, snapshot

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
DATA = b"0123456789abcdef" * 1000 + b"end"


def upload_files(storage, name: str, upload_id: str) -> set[str]:
    return {path for path in snapshot(storage) if f"/_uploads/{upload_id}/" in path and f"/{name}/" in path}


async def start(client, name: str = "repo") -> tuple[str, str]:
    response = await client.post(f"/v2/{name}/blobs/uploads/")
    assert response.status == 202
    return response.headers["Location"], response.headers["Docker-Upload-UUID"]


async def test_start_upload(client, storage):
    response = await client.post("/v2/library/app/blobs/uploads/")
    assert response.status == 202
    upload_id = response.headers["Docker-Upload-UUID"]
    assert UUID.fullmatch(upload_id)
    assert response.headers["Location"] == f"/v2/library/app/blobs/uploads/{upload_id}"
    assert response.headers["Range"] == "0-0"
    assert response.headers["Content-Length"] == "0"
    assert upload_files(storage, "library/app", upload_id) == {
        f"docker/registry/v2/repositories/library/app/_uploads/{upload_id}/startedat"
    }


async def test_start_upload_without_trailing_slash(client):
    response = await client.post("/v2/repo/blobs/uploads")
    assert response.status == 202
    assert UUID.fullmatch(response.headers["Docker-Upload-UUID"])


async def test_two_uploads_have_distinct_ids(client):
    _, first = await start(client)
    _, second = await start(client)
    assert first != second


async def test_monolithic_post(client, storage):
    digest = sha256(DATA)
    response = await client.post("/v2/repo/blobs/uploads/", params={"digest": digest}, data=DATA)
    assert response.status == 201
    assert response.headers["Location"] == f"/v2/repo/blobs/{digest}"
    assert response.headers["Docker-Content-Digest"] == digest
    response = await client.get(f"/v2/repo/blobs/{digest}")
    assert await response.read() == DATA
    assert not any("/_uploads/" in path for path in snapshot(storage))


async def test_monolithic_put(client, storage):
    location, upload_id = await start(client)
    digest = sha256(DATA)
    response = await client.put(location, params={"digest": digest}, data=DATA)
    assert response.status == 201
    assert response.headers["Location"] == f"/v2/repo/blobs/{digest}"
    assert response.headers["Docker-Content-Digest"] == digest
    response = await client.get(f"/v2/repo/blobs/{digest}")
    assert await response.read() == DATA
    assert upload_files(storage, "repo", upload_id) == set()
    assert f"docker/registry/v2/blobs/sha256/{digest[7:9]}/{digest[7:]}/data" in snapshot(storage)
    assert f"docker/registry/v2/repositories/repo/_layers/sha256/{digest[7:]}/link" in snapshot(storage)


async def test_chunked_upload(client):
    location, upload_id = await start(client)
    chunks = [DATA[:5000], DATA[5000:12000], DATA[12000:]]
    offset = 0
    for chunk in chunks:
        response = await client.patch(
            location,
            data=chunk,
            headers={
                "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                "Content-Type": "application/octet-stream",
            },
        )
        assert response.status == 202, await response.text()
        offset += len(chunk)
        assert response.headers["Range"] == f"0-{offset - 1}"
        assert response.headers["Location"] == f"/v2/repo/blobs/uploads/{upload_id}"
        assert response.headers["Docker-Upload-UUID"] == upload_id
        assert response.headers["Content-Length"] == "0"
    digest = sha256(DATA)
    response = await client.put(location, params={"digest": digest})
    assert response.status == 201
    assert response.headers["Location"] == f"/v2/repo/blobs/{digest}"
    assert response.headers["Docker-Content-Digest"] == digest
    response = await client.get(f"/v2/repo/blobs/{digest}")
    assert await response.read() == DATA


async def test_chunked_upload_with_last_chunk_in_put(client):
    location, _ = await start(client)
    response = await client.patch(location, data=DATA[:100], headers={"Content-Range": "0-99"})
    assert response.status == 202
    assert response.headers["Range"] == "0-99"
    digest = sha256(DATA)
    response = await client.put(location, params={"digest": digest}, data=DATA[100:])
    assert response.status == 201
    assert response.headers["Docker-Content-Digest"] == digest
    response = await client.get(f"/v2/repo/blobs/{digest}")
    assert await response.read() == DATA


async def test_announced_lengths_reach_the_storage_writer(client, monkeypatch):
    """A body's Content-Length lets the filesystem allocate its room ahead (FileWriter.expect)."""
    expected: list[int] = []
    for writer_class in ("dockyard.storage.driver.FileWriter", "dockyard.storage.filesystem.FilesystemWriter"):
        monkeypatch.setattr(f"{writer_class}.expect", lambda self, length: expected.append(length))
    digest = sha256(DATA)
    assert (await client.post("/v2/repo/blobs/uploads/", params={"digest": digest}, data=DATA)).status == 201
    location, _ = await start(client, "other")
    assert (await client.patch(location, data=DATA[:100], headers={"Content-Range": "0-99"})).status == 202
    assert (await client.put(location, params={"digest": digest}, data=DATA[100:])).status == 201
    assert expected == [len(DATA), 100, len(DATA) - 100]


async def test_patch_without_content_range(client):
    location, _ = await start(client)
    response = await client.patch(location, data=DATA[:10])
    assert response.status == 202
    assert response.headers["Range"] == "0-9"
    response = await client.patch(location, data=DATA[10:])
    assert response.status == 202
    assert response.headers["Range"] == f"0-{len(DATA) - 1}"


async def test_content_range_with_bytes_prefix_and_total(client):
    location, _ = await start(client)
    response = await client.patch(location, data=DATA[:10], headers={"Content-Range": "bytes 0-9/*"})
    assert response.status == 202
    assert response.headers["Range"] == "0-9"


async def test_out_of_order_chunk_is_416_with_current_range(client, storage):
    location, upload_id = await start(client)
    response = await client.patch(location, data=DATA[:100], headers={"Content-Range": "0-99"})
    assert response.status == 202
    before = snapshot(storage)
    response = await client.patch(location, data=DATA[200:300], headers={"Content-Range": "200-299"})
    await error_of(response, 416, "RANGE_INVALID")
    assert response.headers["Range"] == "0-99"
    assert response.headers["Location"] == f"/v2/repo/blobs/uploads/{upload_id}"
    assert response.headers["Docker-Upload-UUID"] == upload_id
    # A repeated chunk is out of order too.
    response = await client.patch(location, data=DATA[:100], headers={"Content-Range": "0-99"})
    await error_of(response, 416, "RANGE_INVALID")
    assert response.headers["Range"] == "0-99"
    assert snapshot(storage) == before
    response = await client.get(location)
    assert response.status == 204
    assert response.headers["Range"] == "0-99"
    # The upload goes on from where it stands.
    response = await client.patch(location, data=DATA[100:], headers={"Content-Range": f"100-{len(DATA) - 1}"})
    assert response.status == 202
    response = await client.put(location, params={"digest": sha256(DATA)})
    assert response.status == 201


async def test_closing_put_with_out_of_order_chunk_is_416_and_keeps_the_upload(client, storage):
    location, upload_id = await start(client)
    response = await client.patch(location, data=DATA[:100], headers={"Content-Range": "0-99"})
    assert response.status == 202
    before = snapshot(storage)
    digest = sha256(DATA)
    for wrong_start in (0, 50, 200):  # a repeat, an overlap, a gap
        chunk = DATA[wrong_start:]
        response = await client.put(
            location,
            params={"digest": digest},
            data=chunk,
            headers={"Content-Range": f"{wrong_start}-{wrong_start + len(chunk) - 1}"},
        )
        await error_of(response, 416, "RANGE_INVALID")
        assert response.headers["Range"] == "0-99"
        assert response.headers["Location"] == f"/v2/repo/blobs/uploads/{upload_id}"
        assert response.headers["Docker-Upload-UUID"] == upload_id
        assert snapshot(storage) == before
        response = await client.get(location)
        assert response.status == 204
        assert response.headers["Range"] == "0-99"
    response = await client.get(f"/v2/repo/blobs/{digest}")
    await error_of(response, 404, "BLOB_UNKNOWN")
    # The chunk at the right place finishes it.
    response = await client.put(
        location, params={"digest": digest}, data=DATA[100:], headers={"Content-Range": f"100-{len(DATA) - 1}"}
    )
    assert response.status == 201, await response.text()
    response = await client.get(f"/v2/repo/blobs/{digest}")
    assert await response.read() == DATA


async def test_closing_put_with_content_range_not_matching_length_is_size_invalid(client, storage):
    location, _ = await start(client)
    before = snapshot(storage)
    response = await client.put(location, params={"digest": sha256(DATA)}, data=DATA, headers={"Content-Range": "0-9"})
    await error_of(response, 400, "SIZE_INVALID")
    assert response.headers["Range"] == "0-0"
    assert snapshot(storage) == before


# Each reads as 0-9 (the chunk's real range) with Unicode digits: Arabic-Indic, fullwidth, Devanagari.
@pytest.mark.parametrize("header", ["\u0660-\u0669", "0-\uff19", "bytes \u0966-9/*"])
async def test_content_range_with_non_ascii_digits_is_416(client, storage, header):
    location, _ = await start(client)
    before = snapshot(storage)
    response = await client.patch(location, data=DATA[:10], headers={"Content-Range": header})
    await error_of(response, 416, "RANGE_INVALID")
    assert snapshot(storage) == before
    response = await client.get(location)
    assert response.headers["Range"] == "0-0"


async def test_content_range_with_a_huge_end_is_size_invalid(client):
    location, _ = await start(client)
    end_digits = "9" * 5000  # longer than Python's int() reads
    response = await client.patch(location, data=b"x", headers={"Content-Range": f"0-{end_digits}"})
    await error_of(response, 400, "SIZE_INVALID")
    assert response.headers["Range"] == "0-0"


async def test_content_range_not_matching_length_is_size_invalid(client):
    location, _ = await start(client)
    response = await client.patch(location, data=DATA[:10], headers={"Content-Range": "0-19"})
    await error_of(response, 400, "SIZE_INVALID")
    assert response.headers["Range"] == "0-0"
    response = await client.get(location)
    assert response.headers["Range"] == "0-0"


async def test_streaming_patch(client):
    location, upload_id = await start(client)
    pieces = [DATA[i:i + 777] for i in range(0, len(DATA), 777)]

    async def body():
        for piece in pieces:
            yield piece

    response = await client.patch(location, data=body())
    assert response.status == 202, await response.text()
    assert response.request_info.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in response.request_info.headers
    assert response.headers["Range"] == f"0-{len(DATA) - 1}"
    digest = sha256(DATA)
    response = await client.put(location, params={"digest": digest})
    assert response.status == 201
    response = await client.get(f"/v2/repo/blobs/{digest}")
    assert await response.read() == DATA


async def test_streaming_put_last_chunk(client):
    location, _ = await start(client)

    async def body():
        yield DATA[:10]
        yield DATA[10:]

    digest = sha256(DATA)
    response = await client.put(location, params={"digest": digest}, data=body())
    assert response.status == 201, await response.text()
    response = await client.get(f"/v2/repo/blobs/{digest}")
    assert await response.read() == DATA


async def test_upload_status(client):
    location, upload_id = await start(client)
    response = await client.get(location)
    assert response.status == 204
    assert response.headers["Range"] == "0-0"
    assert response.headers["Docker-Upload-UUID"] == upload_id
    assert response.headers["Location"] == location
    await client.patch(location, data=DATA[:1234])
    response = await client.get(location)
    assert response.status == 204
    assert response.headers["Range"] == "0-1233"
    assert await response.read() == b""


async def test_status_of_unknown_upload(client):
    response = await client.get("/v2/repo/blobs/uploads/00000000-0000-4000-8000-000000000000")
    await error_of(response, 404, "BLOB_UPLOAD_UNKNOWN")


async def test_upload_id_is_bound_to_its_repository(client, storage):
    location, upload_id = await start(client, "first")
    response = await client.get(f"/v2/second/blobs/uploads/{upload_id}")
    await error_of(response, 404, "BLOB_UPLOAD_UNKNOWN")
    response = await client.patch(f"/v2/second/blobs/uploads/{upload_id}", data=b"x")
    await error_of(response, 404, "BLOB_UPLOAD_UNKNOWN")
    assert not any(path.startswith("docker/registry/v2/repositories/second") for path in snapshot(storage))


async def test_cancel_upload(client, storage):
    location, upload_id = await start(client)
    await client.patch(location, data=DATA[:50])
    assert upload_files(storage, "repo", upload_id)
    response = await client.delete(location)
    assert response.status == 204
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert upload_files(storage, "repo", upload_id) == set()
    response = await client.get(location)
    await error_of(response, 404, "BLOB_UPLOAD_UNKNOWN")
    response = await client.patch(location, data=b"more")
    await error_of(response, 404, "BLOB_UPLOAD_UNKNOWN")
    response = await client.put(location, params={"digest": sha256(DATA[:50])})
    await error_of(response, 404, "BLOB_UPLOAD_UNKNOWN")
    response = await client.delete(location)
    await error_of(response, 404, "BLOB_UPLOAD_UNKNOWN")
    assert upload_files(storage, "repo", upload_id) == set()


async def test_put_without_digest_is_digest_invalid(client, storage):
    location, upload_id = await start(client)
    await client.patch(location, data=DATA[:10])
    before = snapshot(storage)
    response = await client.put(location)
    await error_of(response, 400, "DIGEST_INVALID")
    assert snapshot(storage) == before
    # The upload is still there and can be finished properly.
    response = await client.get(location)
    assert response.status == 204
    assert response.headers["Range"] == "0-9"
    response = await client.put(location, params={"digest": sha256(DATA[:10])})
    assert response.status == 201


async def test_put_without_digest_on_unknown_upload(client):
    response = await client.put("/v2/repo/blobs/uploads/00000000-0000-4000-8000-000000000000")
    await error_of(response, 404, "BLOB_UPLOAD_UNKNOWN")


async def test_digest_mismatch_removes_the_upload(client, storage):
    before = snapshot(storage)
    location, upload_id = await start(client)
    await client.patch(location, data=DATA)
    wrong = sha256(b"something else")
    response = await client.put(location, params={"digest": wrong})
    entry = await error_of(response, 400, "DIGEST_INVALID")
    assert entry["detail"] == {"expected": wrong, "actual": sha256(DATA)}
    assert upload_files(storage, "repo", upload_id) == set()
    assert not any("/blobs/sha256/" in path for path in snapshot(storage))
    assert {path for path in snapshot(storage) - before if "/_layers/" in path} == set()
    response = await client.get(location)
    await error_of(response, 404, "BLOB_UPLOAD_UNKNOWN")
    response = await client.get(f"/v2/repo/blobs/{wrong}")
    await error_of(response, 404, "BLOB_UNKNOWN")


async def test_sha512_upload(client, storage):
    digest = sha512(DATA)
    location, _ = await start(client)
    response = await client.patch(location, data=DATA[:4000])
    assert response.status == 202
    response = await client.put(location, params={"digest": digest}, data=DATA[4000:])
    assert response.status == 201, await response.text()
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.headers["Location"] == f"/v2/repo/blobs/{digest}"
    response = await client.get(f"/v2/repo/blobs/{digest}")
    assert response.status == 200
    assert await response.read() == DATA
    assert response.headers["Docker-Content-Digest"] == digest
    assert f"docker/registry/v2/blobs/sha512/{digest[7:9]}/{digest[7:]}/data" in snapshot(storage)


async def test_sha512_monolithic_mismatch(client, storage):
    wrong = sha512(b"not this")
    response = await client.post("/v2/repo/blobs/uploads/", params={"digest": wrong}, data=DATA)
    await error_of(response, 400, "DIGEST_INVALID")
    assert not any("/_uploads/" in path or "/blobs/sha" in path for path in snapshot(storage))


async def test_cross_repository_mount(client, storage):
    digest = await push_blob(client, "source/repo", DATA)
    response = await client.post("/v2/target/repo/blobs/uploads/", params={"mount": digest, "from": "source/repo"})
    assert response.status == 201
    assert response.headers["Location"] == f"/v2/target/repo/blobs/{digest}"
    assert response.headers["Docker-Content-Digest"] == digest
    response = await client.get(f"/v2/target/repo/blobs/{digest}")
    assert response.status == 200
    assert await response.read() == DATA
    assert not any("/_uploads/" in path for path in snapshot(storage))
    # One copy of the content, two links.
    assert len([path for path in snapshot(storage) if path.endswith(f"{digest[7:]}/data")]) == 1


async def test_mount_of_blob_not_in_source_falls_back_to_upload(client, storage):
    digest = await push_blob(client, "elsewhere", DATA)
    await push_blob(client, "source/repo", b"unrelated")
    response = await client.post("/v2/target/blobs/uploads/", params={"mount": digest, "from": "source/repo"})
    assert response.status == 202
    upload_id = response.headers["Docker-Upload-UUID"]
    assert response.headers["Location"] == f"/v2/target/blobs/uploads/{upload_id}"
    assert response.headers["Range"] == "0-0"
    response = await client.get(f"/v2/target/blobs/{digest}")
    await error_of(response, 404, "BLOB_UNKNOWN")
    # The fallback upload works.
    response = await client.put(f"/v2/target/blobs/uploads/{upload_id}", params={"digest": digest}, data=DATA)
    assert response.status == 201


async def test_mount_from_unknown_repository_falls_back(client):
    response = await client.post(
        "/v2/target/blobs/uploads/", params={"mount": sha256(b"x"), "from": "does/not/exist"}
    )
    assert response.status == 202
    assert UUID.fullmatch(response.headers["Docker-Upload-UUID"])


async def test_mount_without_from_when_already_present(client):
    digest = await push_blob(client, "target", DATA)
    response = await client.post("/v2/target/blobs/uploads/", params={"mount": digest})
    assert response.status == 201
    assert response.headers["Docker-Content-Digest"] == digest


async def test_mount_without_from_when_absent_falls_back(client):
    digest = await push_blob(client, "other", DATA)
    response = await client.post("/v2/target/blobs/uploads/", params={"mount": digest})
    assert response.status == 202


async def test_mount_with_invalid_from_is_name_invalid(client, storage):
    digest = await push_blob(client, "source", DATA)
    before = snapshot(storage)
    response = await client.post("/v2/target/blobs/uploads/", params={"mount": digest, "from": "../source"})
    await error_of(response, 400, "NAME_INVALID")
    assert snapshot(storage) == before


async def test_mount_with_invalid_digest(client, storage):
    before = snapshot(storage)
    response = await client.post("/v2/target/blobs/uploads/", params={"mount": "sha256:xyz", "from": "source"})
    await error_of(response, 400, "DIGEST_INVALID")
    assert snapshot(storage) == before


async def test_pushing_the_same_blob_twice(client, storage):
    first = await push_blob(client, "repo", DATA)
    second = await push_blob(client, "repo", DATA)
    assert first == second
    assert not any("/_uploads/" in path for path in snapshot(storage))
    response = await client.get(f"/v2/repo/blobs/{first}")
    assert await response.read() == DATA
