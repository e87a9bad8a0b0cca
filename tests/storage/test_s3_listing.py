"""The S3 driver's ``list_page`` against S3's own listing order, which SeaweedFS does not show.

AWS lists keys in byte order, where a folder ``1.0/`` comes after ``1.0-rc/`` and
``1.0.1/``; SeaweedFS lists a folder's children by name. A stand-in for
ListObjectsV2 in byte order checks that pages still come in name order.
"""

from __future__ import annotations

from typing import Any

from dockyard.config import S3
from dockyard.storage.s3 import S3Driver

NAMES = ["1", "1-a", "1.0", "1.0-rc", "1.0-rc.1", "1.0.1", "1.0.1-b", "10", "a", "a-b", "a.b", "a_b", "b"]


def list_objects_v2(keys: list[str], Prefix: str, Delimiter: str, MaxKeys: int, StartAfter: str = "",
                    ContinuationToken: str = "") -> dict[str, Any]:
    """ListObjectsV2 as AWS answers it: byte order, folders rolled up at the delimiter."""
    start = max(StartAfter, ContinuationToken)
    entries: list[tuple[str, bool]] = []  # (key or folder, is a folder)
    for key in sorted(keys, key=str.encode):
        if not key.startswith(Prefix) or key <= start:
            continue
        slash = key.find(Delimiter, len(Prefix))
        entry = (key[:slash + 1], True) if slash >= 0 else (key, False)
        if not entries or entries[-1] != entry:
            entries.append(entry)
    page = entries[:MaxKeys]
    answer: dict[str, Any] = {
        "CommonPrefixes": [{"Prefix": key} for key, folder in page if folder],
        "Contents": [{"Key": key} for key, folder in page if not folder],
        "IsTruncated": len(entries) > MaxKeys,
    }
    if answer["IsTruncated"]:
        # The next page starts after everything under the last folder listed.
        answer["NextContinuationToken"] = page[-1][0] + "\U0010ffff" if page[-1][1] else page[-1][0]
    return answer


async def test_list_page_in_name_order_over_byte_ordered_listings() -> None:
    driver = S3Driver(S3(region="us-east-1", bucket="bucket"))
    keys = [f"tags/{name}/current/link" for name in NAMES]

    async def call(operation: str, path: str | None = None, **params: Any) -> dict[str, Any]:
        assert operation == "list_objects_v2"
        return list_objects_v2(keys, **params)

    driver._call = call  # type: ignore[method-assign]
    expected = sorted(NAMES)
    assert await driver.list_page("/tags") == expected
    for after in ["", "0", "1", "1-a", "1.0", "1.0-rc", "1.0.1", "a", "a-b", "zz"]:
        for limit in [1, 2, 3, 100]:
            start = sum(name <= after for name in expected)
            assert await driver.list_page("/tags", after, limit) == expected[start:start + limit], (after, limit)


async def test_list_page_asks_for_the_whole_page_at_once() -> None:
    # AWS answers at most 1000 keys a request, SeaweedFS all it is asked for: one request
    # for a page of 1000 names, the one after them and ``last`` itself where the server allows.
    names = [f"t{index:05d}" for index in range(1500)]
    keys = [f"tags/{name}/current/link" for name in names]
    for most, requests in [(None, 1), (1000, 2)]:
        driver = S3Driver(S3(region="us-east-1", bucket="bucket"))
        asked: list[int] = []

        async def call(
            operation: str, path: str | None = None, most: int | None = most, asked: list[int] = asked, **params: Any
        ) -> dict[str, Any]:
            asked.append(params["MaxKeys"])
            return list_objects_v2(keys, **{**params, "MaxKeys": min(params["MaxKeys"], most or params["MaxKeys"])})

        driver._call = call  # type: ignore[method-assign]
        assert await driver.list_page("/tags", names[99], 1001) == names[100:1101]
        assert len(asked) == requests, (most, asked)
