"""The S3 driver's listings through its lean lister (one signed GET, ElementTree over the answer)
against SeaweedFS: the names botocore would give, no botocore request, botocore's errors on a refusal."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dockyard.config import S3
from dockyard.storage.s3 import S3Driver, S3Error
from dockyard.storage.s3_listing import Lister
from tests.support.seaweedfs import SeaweedFS

# What XML must escape, what a URL must encode, and beyond ASCII.
NAMES = ["a b", "a+b", "a%b", "a&b", "a<b", "x~y", "\u00fc"]


def test_the_lister_applies_only_where_the_settings_fix_endpoint_keys_and_signing() -> None:
    keys = {"region": "us-east-1", "bucket": "b", "accesskey": "k", "secretkey": "s"}
    assert Lister.applies("http://127.0.0.1:1", S3(**keys)) is not None  # type: ignore[arg-type]
    assert Lister.applies(None, S3(**keys)) is None  # type: ignore[arg-type]
    assert Lister.applies("http://127.0.0.1:1", S3(region="us-east-1", bucket="b")) is None
    assert Lister.applies("http://127.0.0.1:1", S3(**keys, v4auth=False)) is None  # type: ignore[arg-type]


@pytest.mark.s3
async def test_listings_are_the_listers_requests_alone(s3_settings: S3) -> None:
    driver = S3Driver(s3_settings)
    try:
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
        assert by_botocore == []
    finally:
        await driver.close()


@pytest.mark.s3
async def test_a_refused_listing_is_reported_as_botocore_reports_it(seaweedfs: SeaweedFS, s3_bucket: str) -> None:
    driver = S3Driver(seaweedfs.settings(s3_bucket, "/refused", secretkey="not-the-secret"))
    try:
        with pytest.raises(S3Error, match="S3 refused ListObjectsV2"):
            await driver.list_page("/tags")
    finally:
        await driver.close()
