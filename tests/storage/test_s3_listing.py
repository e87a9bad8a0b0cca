"""The S3 driver's ``list_page`` against S3's own listing order, which SeaweedFS does not show.

AWS lists keys in byte order, where a folder ``1.0/`` comes after ``1.0-rc/`` and
``1.0.1/``; SeaweedFS lists a folder's children by name. A stand-in for
ListObjectsV2 in byte order checks that pages still come in name order.
"""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.config import S3
from dockyard.storage import catalog, paths, s3
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
        entry = (key[:slash + len(Delimiter)], True) if slash >= 0 else (key, False)
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



REPOSITORIES = ["0a", "a", "a/b", "a/b/c", "a-b", "a.c", "a/d", "my_repo", "r1/sub", "r1-x", "x/y/z", "z9"]


def counting_driver(keys: list[str]) -> tuple[S3Driver, list[str]]:
    """A driver over ``keys`` answering ListObjectsV2 in AWS's byte order; the list of its calls."""
    driver = S3Driver(S3(region="us-east-1", bucket="bucket"))
    calls: list[str] = []

    async def call(operation: str, path: str | None = None, **params: Any) -> dict[str, Any]:
        calls.append(operation)
        assert operation == "list_objects_v2"
        return list_objects_v2(keys, **params)

    driver._call = call  # type: ignore[method-assign]
    return driver, calls


def repository_keys(names: list[str]) -> list[str]:
    root = paths.REPOSITORIES.lstrip("/")
    return [f"{root}/{name}/{folder}/sha256/ab/link" for name in names for folder in ("_layers", "_manifests/revisions")]


@pytest.mark.parametrize("page", [1000, 1, 2, 3])
async def test_repositories_in_name_order_from_a_byte_ordered_roll_up(monkeypatch, page: int) -> None:
    """With the delimiter ``/_`` a listing yields each repository once, however deep its tree,
    in key order (``a-b/_`` before ``a/_``); the names still come in name order."""
    monkeypatch.setattr(s3, "LIST_PAGE_MAX", page)
    driver, _ = counting_driver(repository_keys(REPOSITORIES))
    expected = sorted(REPOSITORIES)
    for after in ["", "0", "a", "a-b", "a/b", "a/a", "a.c/zz", "r1", "x/y", "zz"]:
        assert await driver.list_folders_holding(paths.REPOSITORIES, "_", after) == [name for name in expected if name > after], after
        for count in [3, catalog.ROLL_UP_FROM]:
            assert await catalog.walk(driver, after, count) == [name for name in expected if name > after][:count]


async def test_a_catalog_page_on_s3_is_one_listing_not_one_per_repository_folder() -> None:
    names = [f"team{team}/app{app}" for team in range(10) for app in range(30)] + REPOSITORIES
    driver, calls = counting_driver(repository_keys(names))
    assert await catalog.walk(driver, "", catalog.ROLL_UP_FROM) == sorted(names)[:catalog.ROLL_UP_FROM]
    assert len(calls) == 1
