"""The S3 driver's listings and small reads through its lean client (one signed GET; ElementTree
over a listing) against SeaweedFS: what botocore would give, no botocore request, botocore's
errors on a refusal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from dockyard.config import S3
from dockyard.storage.driver import PathNotFound
from dockyard.storage.s3 import S3Driver, S3Error
from dockyard.storage.s3_lean import LeanClient
from dockyard.storage.s3_writer import MARKER
from tests.storage.driver_suite import write_file
from tests.support.seaweedfs import SeaweedFS

# What XML must escape, what a URL must encode, and beyond ASCII.
NAMES = ["a b", "a+b", "a%b", "a&b", "a<b", "x~y", "\u00fc"]


def test_the_lean_client_applies_only_where_the_settings_fix_endpoint_keys_and_signing() -> None:
    keys = {"region": "us-east-1", "bucket": "b", "accesskey": "k", "secretkey": "s"}
    assert LeanClient.applies("http://127.0.0.1:1", S3(**keys)) is not None  # type: ignore[arg-type]
    assert LeanClient.applies(None, S3(**keys)) is None  # type: ignore[arg-type]
    assert LeanClient.applies("http://127.0.0.1:1", S3(region="us-east-1", bucket="b")) is None
    assert LeanClient.applies("http://127.0.0.1:1", S3(**keys, v4auth=False)) is None  # type: ignore[arg-type]


@pytest.fixture
async def driver(s3_settings: S3) -> AsyncIterator[S3Driver]:
    opened = S3Driver(s3_settings)
    yield opened
    await opened.close()


@pytest.mark.s3
async def test_listings_are_the_lean_clients_requests_alone(driver: S3Driver) -> None:
    await asyncio.gather(*(driver.put_content(f"/tags/{name}/current/link", b"1") for name in NAMES))
    by_botocore: list[str] = []

    def counted(**_: Any) -> None:
        by_botocore.append("ListObjectsV2")

    (await driver._s3()).meta.events.register("after-call.s3.ListObjectsV2", counted)
    expected = sorted(NAMES)
    assert await driver.list_page("/tags") == expected
    assert await driver.list_page("/tags", expected[0], 2) == expected[1:3]
    assert await driver.list_page("/tags/a&b") == ["current"]
    assert sorted(await driver.list("/tags")) == expected
    assert await driver.list_sorted(["/tags/a b", "/tags/missing"]) == {"/tags/a b": ["current"]}
    listed = await driver.list_files("/tags")
    assert [info.path for info in listed] == [f"/tags/{name}/current/link" for name in expected]
    assert by_botocore == []
    for info in listed:  # each as botocore's HEAD gives it
        head = await driver._call("head_object", Key=driver._key(info.path))
        assert (info.size, int(info.mtime)) == (head["ContentLength"], int(head["LastModified"].timestamp()))


@pytest.mark.s3
@pytest.mark.parametrize(
    ("operation", "request_of"),
    [("ListObjectsV2", lambda driver: driver.list_page("/tags")), ("GetObject", lambda driver: driver.get_content("/links/one/link"))],
)
async def test_a_refusal_is_reported_as_botocore_reports_it(
    seaweedfs: SeaweedFS, s3_bucket: str, operation: str, request_of: Callable[[S3Driver], Awaitable[object]],
) -> None:
    driver = S3Driver(seaweedfs.settings(s3_bucket, "/refused", secretkey="not-the-secret"))
    try:
        with pytest.raises(S3Error, match=f"S3 refused {operation}"):
            await request_of(driver)
    finally:
        await driver.close()


@pytest.mark.s3
async def test_small_reads_and_heads_are_the_lean_clients_requests_alone(driver: S3Driver) -> None:
    await asyncio.gather(*(driver.put_content(f"/links/{name}/link", name.encode()) for name in NAMES))
    by_botocore: list[str] = []

    def counted(model: Any, **_: Any) -> None:
        by_botocore.append(model.name)

    (await driver._s3()).meta.events.register("after-call.s3", counted)
    heads = []
    for name in NAMES:
        assert await driver.get_content(f"/links/{name}/link") == name.encode()
        heads.append(await driver._head(driver._key(f"/links/{name}/link")))
    with pytest.raises(PathNotFound):
        await driver.get_content("/links/missing/link")
    with pytest.raises(PathNotFound):
        await driver.stat("/links/missing/link")
    assert by_botocore == []
    for name, head in zip(NAMES, heads, strict=True):  # as botocore's HEAD gives it
        expected = await driver._call("head_object", Key=driver._key(f"/links/{name}/link"))
        assert head is not None
        assert [head[field] for field in ("ContentLength", "LastModified", "ETag", "Metadata")] == [
            expected[field] for field in ("ContentLength", "LastModified", "ETag", "Metadata")
        ]


@pytest.mark.s3
async def test_an_appendable_files_content_is_read_from_its_segments(driver: S3Driver) -> None:
    await write_file(driver, "/uploads/one/data", b"part1")
    await write_file(driver, "/uploads/one/data", b"part2", append=True)
    head = await driver._head(driver._key("/uploads/one/data"))
    assert head is not None and MARKER in head["Metadata"]  # the object at the key lists the segments
    assert await driver.get_content("/uploads/one/data") == b"part1part2"
