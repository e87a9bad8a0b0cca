"""``/v2/``, the version header on every response, unknown routes and wrong methods."""

from __future__ import annotations

import pytest

from tests.support.registry_client import sha256

from .conftest import API_VERSION, error_of, raw_request, snapshot


async def test_version_check(client):
    response = await client.get("/v2/")
    assert response.status == 200
    assert response.headers["Docker-Distribution-API-Version"] == API_VERSION
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"  # as json_response wrote it
    assert await response.read() == b"{}"


async def test_version_check_without_slash(client):
    response = await client.get("/v2")
    assert response.status == 200
    assert response.headers["Docker-Distribution-API-Version"] == API_VERSION


async def test_version_check_head(client):
    response = await client.head("/v2/")
    assert response.status == 200
    assert response.headers["Docker-Distribution-API-Version"] == API_VERSION
    assert await response.read() == b""


@pytest.mark.parametrize("path", ["/", "/v1/", "/v2x", "/favicon.ico"])
async def test_path_outside_v2_is_404_with_header(client, path):
    response = await raw_request(client, "GET", path)
    assert response.status == 404
    assert response.headers["Docker-Distribution-API-Version"] == API_VERSION


@pytest.mark.parametrize(
    "path", ["/v2/repo/unknown/thing", "/v2/repo/manifests/", "/v2/repo/blobs/", "/v2/repo", "/v2/repo/tags/list/x"]
)
async def test_unknown_route_under_v2_is_404_not_found(client, path):
    response = await raw_request(client, "GET", path)
    entry = await error_of(response, 404, "NOT_FOUND")
    assert entry["message"] == "no such route"


async def test_error_responses_carry_the_version_header(client):
    response = await client.get(f"/v2/repo/blobs/{sha256(b'nothing')}")
    await error_of(response, 404, "BLOB_UNKNOWN")
    response = await client.get("/v2/repo/manifests/latest")
    await error_of(response, 404, "MANIFEST_UNKNOWN")
    response = await client.get("/v2/Upper/tags/list")
    await error_of(response, 400, "NAME_INVALID")


async def test_success_responses_carry_the_version_header(client):
    response = await client.post("/v2/repo/blobs/uploads/")
    assert response.status == 202
    assert response.headers["Docker-Distribution-API-Version"] == API_VERSION
    response = await client.get("/v2/_catalog")
    assert response.status == 200
    assert response.headers["Docker-Distribution-API-Version"] == API_VERSION


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/v2/", "GET, HEAD"),
        ("DELETE", "/v2/", "GET, HEAD"),
        ("PUT", "/v2/_catalog", "GET, HEAD"),
        ("POST", "/v2/repo/tags/list", "GET, HEAD"),
        ("POST", "/v2/repo/manifests/latest", "DELETE, GET, HEAD, PUT"),
        ("PATCH", "/v2/repo/manifests/latest", "DELETE, GET, HEAD, PUT"),
        ("PUT", f"/v2/repo/blobs/{sha256(b'x')}", "DELETE, GET, HEAD"),
        ("GET", "/v2/repo/blobs/uploads/", "POST"),
        ("POST", f"/v2/repo/referrers/{sha256(b'x')}", "GET, HEAD"),
    ],
)
async def test_wrong_method_is_405_unsupported(client, storage, method, path, allow):
    before = snapshot(storage)
    response = await client.request(method, path)
    await error_of(response, 405, "UNSUPPORTED")
    assert response.headers["Allow"] == allow
    assert snapshot(storage) == before


def test_a_path_is_matched_once_and_each_match_is_the_callers_own():
    from dockyard.api import routes

    path = "library/remembered/manifests/v1"
    before = routes._matched.cache_info()
    first = routes.match(path)
    assert first is not None
    first[1].pop("name")  # the dispatcher takes the name out of its parameters
    second = routes.match(path)
    assert second is not None and second[0] is first[0]
    assert second[1] == {"name": "library/remembered", "reference": "v1"}
    assert routes._matched.cache_info().hits - before.hits == 1
    assert routes.match("library/remembered/nothing/v1") is None
    assert routes.match("library/remembered/nothing/v1") is None


async def test_remembered_routes_answer_as_before(client):
    for _ in range(2):
        response = await raw_request(client, "GET", "/v2/repo/manifests/a%2Fb")  # an encoded slash: not a separator
        await error_of(response, 404, "MANIFEST_UNKNOWN")
        response = await raw_request(client, "GET", "/v2/re%70o/tags/list")
        await error_of(response, 404, "NAME_UNKNOWN")
        response = await raw_request(client, "PATCH", "/v2/repo/manifests/v1")
        await error_of(response, 405, "UNSUPPORTED")
