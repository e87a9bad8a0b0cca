"""``/v2/<name>/tags/list`` and ``/v2/_catalog``: sorted, paginated with ``Link``."""

from __future__ import annotations

import asyncio
import random
import re

import pytest

from dockyard.api.app import create_app
from dockyard.storage import catalog, paths
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.inmemory import InMemoryDriver
from dockyard.storage.registry import Registry
from dockyard.storage.s3 import S3Driver
from tests.support.plugin import storage_params
from tests.support.registry_client import OCI_MANIFEST, push_blob, push_image

from .conftest import S3Storage, error_of, put_manifest

LINK = re.compile(r'<(?P<url>[^>]+)>; rel="next"')


async def walk(client, first_url: str, key: str) -> tuple[list[list[str]], list[str]]:
    """Follow ``Link: rel="next"`` to the end; the pages and the links followed."""
    pages, links, url = [], [], first_url
    while url is not None:
        response = await client.get(url)
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("application/json")
        pages.append((await response.json())[key])
        link = response.headers.get("Link")
        if link is None:
            url = None
        else:
            found = LINK.fullmatch(link)
            assert found, link
            url = found.group("url")
            links.append(url)
        assert len(pages) < 100
    return pages, links


async def tag_all(client, name: str, tags: list[str]) -> None:
    _, content = await push_image(client, name)
    for tag in tags:
        response = await put_manifest(client, name, tag, content, OCI_MANIFEST)
        assert response.status == 201


TAGS = ["v1", "latest", "V2", "1.0", "_hidden", "a-b", "a.b", "z", "A", "v10", "v9"]


async def test_tags_sorted(client):
    await tag_all(client, "library/app", TAGS)
    response = await client.get("/v2/library/app/tags/list")
    assert response.status == 200
    assert await response.json() == {"name": "library/app", "tags": sorted(TAGS)}
    assert sorted(TAGS) == ["1.0", "A", "V2", "_hidden", "a-b", "a.b", "latest", "v1", "v10", "v9", "z"]
    assert "Link" not in response.headers


async def test_tags_paginated_to_the_end(client):
    await tag_all(client, "library/app", TAGS)
    pages, links = await walk(client, "/v2/library/app/tags/list?n=3", "tags")
    expected = sorted(TAGS)
    assert pages == [expected[0:3], expected[3:6], expected[6:9], expected[9:11]]
    assert links == [
        f"/v2/library/app/tags/list?n=3&last={expected[2]}",
        f"/v2/library/app/tags/list?n=3&last={expected[5]}",
        f"/v2/library/app/tags/list?n=3&last={expected[8]}",
    ]


async def test_tags_page_that_ends_exactly_has_no_link(client):
    await tag_all(client, "repo", ["a", "b", "c", "d"])
    pages, links = await walk(client, "/v2/repo/tags/list?n=2", "tags")
    assert pages == [["a", "b"], ["c", "d"]]
    assert links == ["/v2/repo/tags/list?n=2&last=b"]


async def test_tags_last_without_n(client):
    await tag_all(client, "repo", ["a", "b", "c", "d"])
    response = await client.get("/v2/repo/tags/list", params={"last": "b"})
    assert await response.json() == {"name": "repo", "tags": ["c", "d"]}
    response = await client.get("/v2/repo/tags/list", params={"last": "bb"})
    assert (await response.json())["tags"] == ["c", "d"]
    response = await client.get("/v2/repo/tags/list", params={"last": "d"})
    assert (await response.json())["tags"] == []


async def test_tags_n_zero(client):
    await tag_all(client, "repo", ["a", "b"])
    response = await client.get("/v2/repo/tags/list", params={"n": "0"})
    assert response.status == 200
    assert (await response.json())["tags"] == []
    assert "Link" not in response.headers


async def test_tags_bad_n(client):
    await tag_all(client, "repo", ["a"])
    for n in ("-1", "abc", "1.5"):
        response = await client.get("/v2/repo/tags/list", params={"n": n})
        await error_of(response, 400, "PAGINATION_NUMBER_INVALID")


async def listed_on_s3(driver: S3Driver) -> list[int]:
    """The number of entries in each ListObjectsV2 answer ``driver`` receives from now on."""
    listed: list[int] = []
    # Every listing of the driver's, by its lean lister or by botocore, passes ``_list``.
    list_once = driver._list

    async def counting(**params):
        answer = await list_once(**params)
        listed.append(len(answer.get("CommonPrefixes", ())) + len(answer.get("Contents", ())))
        return answer

    driver._list = counting
    return listed


@pytest.mark.s3
async def test_tags_page_on_s3_lists_keys_by_the_page_not_the_folder(aiohttp_client, seaweedfs, s3_settings):
    registry = Registry(S3Storage(seaweedfs, s3_settings).driver())
    client = await aiohttp_client(create_app(registry))
    tags = [f"v{index:02d}" for index in range(50)]
    await tag_all(client, "repo", tags)
    pages, _ = await walk(client, "/v2/repo/tags/list?n=2", "tags")
    assert pages[:3] == [tags[0:2], tags[2:4], tags[4:6]]
    assert [tag for page in pages for tag in page] == tags
    listed = await listed_on_s3(registry.driver)
    for last in ["v10", "v20", "v30"]:
        response = await client.get("/v2/repo/tags/list", params={"n": "2", "last": last})
        assert (await response.json())["tags"] == [f"v{int(last[1:]) + 1}", f"v{int(last[1:]) + 2}"]
    # Each page: the repository's existence, and 2 tags, one more and ``last`` itself from the tag folder.
    assert sum(listed) <= 3 * 6, listed
    assert len(listed) <= 3 * 3, listed


@pytest.mark.s3
async def test_catalog_page_on_s3_lists_keys_by_the_page_not_the_folder(aiohttp_client, seaweedfs, s3_settings):
    registry = Registry(S3Storage(seaweedfs, s3_settings).driver())
    client = await aiohttp_client(create_app(registry))
    names = [f"r{index:02d}" for index in range(50)]
    await asyncio.gather(*(registry.driver.put_content(f"{paths.layers(name)}/x", b"1") for name in names))
    pages, _ = await walk(client, "/v2/_catalog?n=10", "repositories")
    assert [name for page in pages for name in page] == names
    listed = await listed_on_s3(registry.driver)
    for last in ["r10", "r20", "r30"]:
        response = await client.get("/v2/_catalog", params={"n": "2", "last": last})
        assert (await response.json())["repositories"] == [f"r{int(last[1:]) + 1}", f"r{int(last[1:]) + 2}"]
    # Each page: a few names after ``last`` from repositories/ (not all 50), and the folders
    # of those and of ``last`` (which may hold nested names).
    assert sum(listed) <= 3 * 12, listed
    assert len(listed) <= 3 * 8, listed


async def test_tags_of_unknown_repository(client):
    response = await client.get("/v2/nobody/tags/list")
    entry = await error_of(response, 404, "NAME_UNKNOWN")
    assert entry["detail"] == {"name": "nobody"}


async def test_tags_of_repository_with_blobs_only(client):
    await push_blob(client, "blobsonly", b"data")
    response = await client.get("/v2/blobsonly/tags/list")
    assert response.status == 200
    assert await response.json() == {"name": "blobsonly", "tags": []}


async def test_tags_of_nested_names_are_separate(client):
    await tag_all(client, "a", ["one"])
    await tag_all(client, "a/b", ["two"])
    response = await client.get("/v2/a/tags/list")
    assert await response.json() == {"name": "a", "tags": ["one"]}
    response = await client.get("/v2/a/b/tags/list")
    assert await response.json() == {"name": "a/b", "tags": ["two"]}


async def test_catalog_empty(client):
    response = await client.get("/v2/_catalog")
    assert response.status == 200
    assert await response.json() == {"repositories": []}


NAMES = ["a", "a/b", "a-b", "a/b/c", "b", "a.b", "a_b", "z/y"]


async def test_catalog_nested_names(client):
    for name in NAMES:
        await push_blob(client, name, name.encode())
    response = await client.get("/v2/_catalog")
    assert response.status == 200
    assert await response.json() == {"repositories": sorted(NAMES)}
    assert sorted(NAMES) == ["a", "a-b", "a.b", "a/b", "a/b/c", "a_b", "b", "z/y"]
    assert "Link" not in response.headers


async def test_catalog_lists_repositories_with_uploads_or_manifests(client):
    response = await client.post("/v2/uploading/blobs/uploads/")
    assert response.status == 202
    await push_image(client, "images/one", tag="v1")
    response = await client.get("/v2/_catalog")
    assert (await response.json())["repositories"] == ["images/one", "uploading"]


async def test_catalog_paginated_to_the_end(client):
    for name in NAMES:
        await push_blob(client, name, name.encode())
    pages, links = await walk(client, "/v2/_catalog?n=3", "repositories")
    expected = sorted(NAMES)
    assert pages == [expected[0:3], expected[3:6], expected[6:8]]
    assert links == ["/v2/_catalog?n=3&last=a.b", "/v2/_catalog?n=3&last=a_b"]


async def test_catalog_pagination_escapes_names(client):
    for name in ["a/b", "a/c", "a/d"]:
        await push_blob(client, name, name.encode())
    pages, links = await walk(client, "/v2/_catalog?n=1", "repositories")
    assert pages == [["a/b"], ["a/c"], ["a/d"]]
    assert links == ["/v2/_catalog?n=1&last=a%2Fb", "/v2/_catalog?n=1&last=a%2Fc"]


async def test_catalog_bad_n(client):
    response = await client.get("/v2/_catalog", params={"n": "-5"})
    await error_of(response, 400, "PAGINATION_NUMBER_INVALID")


TRICKY = ["a", "a-b", "a-c", "a.b", "a/b", "a/b-c", "a/b/c/d/e/f", "a/b.c", "a/b0", "a0", "ab", "a_b", "b-a/a", "b/a", "x/y/z"]


async def test_catalog_every_page_size_in_full_string_order(client):
    # Full-string order interleaves levels: "a-b" < "a.b" < "a/b" < "a0".
    for name in TRICKY:
        await push_blob(client, name, name.encode())
    expected = sorted(TRICKY)
    for n in range(1, len(TRICKY) + 2):
        pages, links = await walk(client, f"/v2/_catalog?n={n}", "repositories")
        assert pages == [expected[start:start + n] for start in range(0, len(expected), n)]
        assert len(links) == len(pages) - 1
    for last in ["", "a", "a/", "a/b", "a/b/", "a/b/c", "a/b/c/d/e/f", "a-", "a-a", "a/b-", "a0", "aa", "b", "b-a", "zz"]:
        response = await client.get("/v2/_catalog", params={"last": last})
        assert (await response.json())["repositories"] == [name for name in expected if name > last]


async def test_catalog_n_zero_and_exact_end(client):
    for name in ["a", "b"]:
        await push_blob(client, name, name.encode())
    response = await client.get("/v2/_catalog", params={"n": "0"})
    assert await response.json() == {"repositories": []}
    assert "Link" not in response.headers
    response = await client.get("/v2/_catalog", params={"n": "2"})
    assert await response.json() == {"repositories": ["a", "b"]}
    assert "Link" not in response.headers
    response = await client.get("/v2/_catalog", params={"n": "1", "last": "a"})
    assert await response.json() == {"repositories": ["b"]}
    assert "Link" not in response.headers


async def test_catalog_sees_created_and_deleted_repositories_at_once(client, registry):
    await push_blob(client, "kept", b"kept")
    response = await client.get("/v2/_catalog", params={"n": "1"})
    assert await response.json() == {"repositories": ["kept"]}
    await push_blob(client, "added", b"added")
    response = await client.get("/v2/_catalog", params={"n": "1"})
    assert await response.json() == {"repositories": ["added"]}
    await registry.driver.delete(paths.repository("added"))
    response = await client.get("/v2/_catalog", params={"n": "1"})
    assert await response.json() == {"repositories": ["kept"]}


@pytest.mark.parametrize("kind", storage_params(["filesystem", "inmemory", "s3"]))
async def test_catalog_walk_matches_a_sorted_full_listing(kind, tmp_path, request):
    drivers = {
        "filesystem": lambda: FilesystemDriver(tmp_path / "root"),
        "inmemory": InMemoryDriver,
        "s3": lambda: S3Storage(request.getfixturevalue("seaweedfs"), request.getfixturevalue("s3_settings")).driver(),
    }
    driver = drivers[kind]()
    rng = random.Random(7)
    # "0" sorts before the reserved "_": a repository's folder may list nested names first.
    parts = ["a", "a-b", "a.b", "b", "a0", "ab", "c_d", "0"]
    names: set[str] = set()
    for _ in range(60):
        name = "/".join(rng.choice(parts) for _ in range(rng.randint(1, 4)))
        names.add(name)
        hidden = rng.choice(["_layers", "_manifests", "_uploads"])
        await driver.put_content(f"{paths.repository(name)}/{hidden}/x", b"1")
    expected = sorted(names)
    assert await catalog.repositories(driver) == expected
    for last in ["", *expected[::3], "a/", "a-", "a/b/", "zz"]:
        for count in [1, 2, 5, 100]:
            after = [name for name in expected if name > last]
            assert await catalog.walk(driver, last, count) == after[:count]
    assert await catalog.walk(driver, "", 5, lambda name: "." in name) == [n for n in expected if "." in n][:5]
    await driver.close()


async def test_a_tag_list_looks_for_the_repository_only_when_nothing_is_listed(client, monkeypatch):
    from dockyard.storage.repository import Repository

    looked_for: list[str] = []
    real = Repository.exists

    async def exists(self: Repository) -> bool:
        looked_for.append(self.name)
        return await real(self)

    monkeypatch.setattr(Repository, "exists", exists)
    await tag_all(client, "repo", ["a", "b"])
    response = await client.get("/v2/repo/tags/list")
    assert (await response.json())["tags"] == ["a", "b"]
    assert looked_for == []
    response = await client.get("/v2/repo/tags/list", params={"last": "b"})  # past the last tag: known, nothing listed
    assert response.status == 200
    assert (await response.json())["tags"] == []
    for n in ("0", "x"):  # nothing to list, and an invalid n: the repository is unknown first
        response = await client.get("/v2/nobody/tags/list", params={"n": n})
        await error_of(response, 404, "NAME_UNKNOWN")
    assert looked_for == ["repo", "nobody", "nobody"]
