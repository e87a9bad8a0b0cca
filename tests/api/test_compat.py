"""``/_ping``, ``/v1/_ping`` and ``/v1/search``: the endpoints ``docker search`` uses."""

from __future__ import annotations

import json
import pathlib

import pytest

from dockyard.api.app import create_app
from dockyard.api.auth_setup import AuthSettings
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.registry import Registry
from tests.support.auth import USERS, basic, write_htpasswd, write_policy
from tests.support.registry_client import push_image

from .conftest import API_VERSION, error_of

RESULT_KEYS = {"name", "description", "star_count", "is_official", "is_automated", "is_trusted"}
SEARCH_KEYS = {"query", "num_results", "num_pages", "page", "page_size", "results"}


def basic_app(root: pathlib.Path, tmp_path: pathlib.Path, policy: bool = True):
    """An app with the matrix users over Basic, and (by default) the matrix policy."""
    settings = AuthSettings(
        htpasswd=write_htpasswd(tmp_path / "htpasswd"),
        policy_file=write_policy(tmp_path / "policy.yaml") if policy else None,
        max_failures=100_000,
    )
    access, tokens = settings.build()
    root.mkdir(parents=True, exist_ok=True)
    return create_app(Registry(FilesystemDriver(root)), access=access, token_service=tokens)


async def search(client, headers: dict[str, str] | None = None, **params: str) -> dict:
    response = await client.get("/v1/search", params=params, headers=headers or {})
    body = await response.read()
    assert response.status == 200, body[:500]
    assert response.headers["Content-Type"].startswith("application/json")
    document = json.loads(body)
    assert set(document) == SEARCH_KEYS
    for result in document["results"]:
        assert set(result) == RESULT_KEYS
        assert result == {
            "name": result["name"], "description": "", "star_count": 0,
            "is_official": False, "is_automated": False, "is_trusted": False,
        }
    return document


def names(document: dict) -> list[str]:
    return [result["name"] for result in document["results"]]


# ---- ping ----


@pytest.mark.parametrize("path", ["/_ping", "/v1/_ping"])
async def test_ping_open(client, path: str) -> None:
    for method in ("GET", "HEAD"):
        response = await client.request(method, path)
        assert response.status == 200
        assert response.headers["Docker-Distribution-API-Version"] == API_VERSION
        assert response.headers["Content-Type"].startswith("application/json")
        if method == "GET":
            assert await response.json() == {}


@pytest.mark.parametrize("path", ["/_ping", "/v1/_ping"])
async def test_ping_needs_no_credentials_when_auth_is_on(aiohttp_client, root, tmp_path, path: str) -> None:
    client = await aiohttp_client(basic_app(root, tmp_path))
    assert (await client.get("/v2/")).status == 401  # authentication is really on
    response = await client.get(path)
    assert response.status == 200
    assert await response.read() == b"{}"
    assert response.headers["Docker-Distribution-API-Version"] == API_VERSION
    assert "WWW-Authenticate" not in response.headers
    # Wrong credentials do not matter either: the ping checks none.
    response = await client.get(path, headers={"Authorization": basic("reader", "wrong")})
    assert response.status == 200


# ---- search ----


async def test_search_matches_substrings_case_insensitively(client) -> None:
    for name in ("library/busybox", "tools/busy-worker", "apps/nginx", "busy", "other/thing"):
        await push_image(client, name, seed=name)
    document = await search(client, q="BUSY")
    assert document["query"] == "BUSY"
    assert sorted(names(document)) == ["busy", "library/busybox", "tools/busy-worker"]
    assert document["num_results"] == 3
    assert document["num_pages"] == 1
    assert document["page"] == 1
    assert document["page_size"] == 25

    assert names(await search(client, q="nginx")) == ["apps/nginx"]
    assert names(await search(client, q="x/t")) == []  # no name holds "x/t"
    assert names(await search(client, q="r/t")) == ["other/thing"]
    nothing = await search(client, q="missing")
    assert nothing["results"] == [] and nothing["num_results"] == 0
    everything = await search(client)
    assert everything["query"] == "" and everything["num_results"] == 5


async def test_search_pagination(client) -> None:
    repos = [f"team/app{index:02d}" for index in range(7)]
    for name in repos:
        await push_image(client, name, seed=name)
    await push_image(client, "unrelated/x", seed="x")

    seen = []
    for page in (1, 2, 3):
        document = await search(client, q="app", n="3", page=str(page))
        assert document["num_results"] == 7
        assert document["num_pages"] == 3
        assert document["page"] == page
        assert document["page_size"] == 3
        seen.append(names(document))
    assert [len(batch) for batch in seen] == [3, 3, 1]
    assert sorted(sum(seen, [])) == repos

    past = await search(client, q="app", n="3", page="4")
    assert past["results"] == [] and past["num_results"] == 7

    capped = await search(client, q="app", n="1000")
    assert capped["page_size"] == 100 and len(capped["results"]) == 7
    default = await search(client, q="app", n="", page="")
    assert default["page_size"] == 25 and default["page"] == 1


async def test_search_default_page_size_is_25(client) -> None:
    for index in range(27):
        await push_image(client, f"many/r{index:02d}", seed="shared")
    first = await search(client, q="many/")
    assert first["page_size"] == 25 and len(first["results"]) == 25
    assert first["num_results"] == 27 and first["num_pages"] == 2
    second = await search(client, q="many/", page="2")
    assert len(second["results"]) == 2
    assert set(names(first)).isdisjoint(names(second))


@pytest.mark.parametrize(
    "params",
    [{"n": "abc"}, {"n": "-1"}, {"n": "0"}, {"n": "1.5"}, {"n": "9" * 5000},
     {"page": "0"}, {"page": "x"}, {"page": "-2"}, {"page": " 1"}],
)
async def test_search_bad_parameters(client, params: dict[str, str]) -> None:
    response = await client.get("/v1/search", params={"q": "a", **params})
    entry = await error_of(response, 400, "PAGINATION_NUMBER_INVALID")
    assert set(entry["detail"]) <= {"n", "page"}


async def test_search_filters_by_access_policy(aiohttp_client, root, tmp_path) -> None:
    await seed(aiohttp_client, root, ["a/app", "b/app", "public/app", "a/other"])
    client = await aiohttp_client(basic_app(root, tmp_path))
    root_auth = {"Authorization": basic("root", USERS["root"])}

    admin = await search(client, root_auth, q="app")
    assert sorted(names(admin)) == ["a/app", "b/app", "public/app"]

    reader = await search(client, {"Authorization": basic("reader", USERS["reader"])}, q="app")
    assert sorted(names(reader)) == ["a/app", "public/app"]
    assert reader["num_results"] == 2

    writer = await search(client, {"Authorization": basic("writer", USERS["writer"])}, q="")
    assert sorted(names(writer)) == ["a/app", "a/other", "public/app"]

    # Anonymous: the policy lets anonymous users pull public/*, so the catalog check passes.
    anonymous = await search(client, q="app")
    assert names(anonymous) == ["public/app"]

    wrong = await client.get("/v1/search", params={"q": "app"}, headers={"Authorization": basic("reader", "nope")})
    entry = await error_of(wrong, 401, "UNAUTHORIZED")
    assert entry["message"]
    assert wrong.headers["WWW-Authenticate"].startswith("Basic ")


async def test_search_without_catalog_access_is_refused(aiohttp_client, root, tmp_path) -> None:
    settings = AuthSettings(
        htpasswd=write_htpasswd(tmp_path / "htpasswd"),
        policy_file=write_policy(tmp_path / "policy.yaml", "admins: [root]\nrules:\n  - who: [reader]\n    repositories: ['a/*']\n    actions: [push]\n"),
        max_failures=100_000,
    )
    access, _ = settings.build()
    await seed(aiohttp_client, root, ["a/app"])
    client = await aiohttp_client(create_app(Registry(FilesystemDriver(root)), access=access))
    # reader may push but pull nothing: no catalog, no search (as with /v2/_catalog).
    headers = {"Authorization": basic("reader", USERS["reader"])}
    catalog = await client.get("/v2/_catalog", headers=headers)
    await error_of(catalog, 403, "DENIED")
    response = await client.get("/v1/search", params={"q": "a"}, headers=headers)
    await error_of(response, 403, "DENIED")
    anonymous = await client.get("/v1/search", params={"q": "a"})
    await error_of(anonymous, 401, "UNAUTHORIZED")


async def test_search_basic_auth_without_policy_sees_everything(aiohttp_client, root, tmp_path) -> None:
    await seed(aiohttp_client, root, ["x/one", "y/two"])
    client = await aiohttp_client(basic_app(root, tmp_path, policy=False))
    auth = {"Authorization": basic("reader", USERS["reader"])}
    assert sorted(names(await search(client, auth, q=""))) == ["x/one", "y/two"]
    anonymous = await client.get("/v1/search", params={"q": ""})
    await error_of(anonymous, 401, "UNAUTHORIZED")


async def seed(aiohttp_client, root: pathlib.Path, repositories: list[str]) -> None:
    """Push an image to each repository through an open app over the same storage root."""
    root.mkdir(parents=True, exist_ok=True)
    client = await aiohttp_client(create_app(Registry(FilesystemDriver(root))))
    for name in repositories:
        await push_image(client, name, seed=name)
    await client.close()
