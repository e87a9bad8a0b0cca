"""Every route and method against every role, in basic and in token mode; the token endpoint.

The policy (``MATRIX_POLICY``): ``reader`` may pull ``a/*``, ``writer`` may pull, push and
delete ``a/*``, ``root`` is an admin, anyone (signed in or not) may pull ``public/*``.
Three repositories are seeded with one image each: ``a/app``, ``b/app`` and ``public/app``.

What each role may do is written down here independently of the policy code, and
each cell's exact answer follows from it: the handler's own answer when allowed, else
401 with the mode's challenge or 403 DENIED.
"""

from __future__ import annotations

import json
import pathlib
import re
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
import pytest

from dockyard.api import routes
from dockyard.tls import certificates
from tests.support.auth import USERS, basic, make_app, settings
from tests.support.registry_client import OCI_MANIFEST, push_blob, push_image

REPOSITORIES = ("a/app", "b/app", "public/app")
ALL = frozenset({"pull", "push", "delete"})
# Who may do what where, as the policy means it.
ALLOWED: dict[str, dict[str, frozenset[str]]] = {
    "anonymous": {"public/app": frozenset({"pull"})},
    "reader": {"a/app": frozenset({"pull"}), "public/app": frozenset({"pull"})},
    "writer": {"a/app": ALL, "public/app": frozenset({"pull"})},
    "root": {name: ALL for name in REPOSITORIES},
}
CATALOG_OF = {
    "anonymous": ["public/app"],
    "reader": ["a/app", "a/other", "public/app"],
    "writer": ["a/app", "a/other", "public/app"],
    "root": ["a/app", "a/other", "b/app", "public/app"],
}
# What each method needs (registry:2's rule).
NEEDS = {"GET": ("pull",), "HEAD": ("pull",), "PUT": ("pull", "push"), "POST": ("pull", "push"), "PATCH": ("pull", "push"), "DELETE": ("delete",)}
# The handler's answer when the caller is allowed: (status, error code or None).
AUTHORIZED: dict[tuple[str, str], tuple[int, str | None]] = {
    ("base", "GET"): (200, None),
    ("base", "HEAD"): (200, None),
    ("catalog", "GET"): (200, None),
    ("catalog", "HEAD"): (200, None),
    ("tags", "GET"): (200, None),
    ("tags", "HEAD"): (200, None),
    ("manifest", "GET"): (200, None),
    ("manifest", "HEAD"): (200, None),
    ("manifest", "PUT"): (201, None),
    ("manifest", "DELETE"): (404, "MANIFEST_UNKNOWN"),
    ("upload-start", "POST"): (202, None),
    ("upload", "GET"): (404, "BLOB_UPLOAD_UNKNOWN"),
    ("upload", "HEAD"): (404, None),  # HEAD: no body, so no code
    ("upload", "PATCH"): (404, "BLOB_UPLOAD_UNKNOWN"),
    ("upload", "PUT"): (404, "BLOB_UPLOAD_UNKNOWN"),
    ("upload", "DELETE"): (404, "BLOB_UPLOAD_UNKNOWN"),
    ("blob", "GET"): (200, None),
    ("blob", "HEAD"): (200, None),
    ("blob", "DELETE"): (404, "BLOB_UNKNOWN"),
    ("referrers", "GET"): (200, None),
    ("referrers", "HEAD"): (200, None),
}
MISSING = "sha256:" + "0" * 64


def test_the_matrix_covers_every_route_and_method() -> None:
    assert {(route.name, method) for route in routes.ROUTES for method in route.methods} == set(AUTHORIZED)


@dataclass(frozen=True)
class Cell:
    route: str
    method: str
    repository: str  # "" for the base and the catalog
    path: str
    options: dict[str, Any]

    @property
    def scope(self) -> str | None:
        if self.route == "base":
            return None
        if self.route == "catalog":
            return "registry:catalog:*"
        return f"repository:{self.repository}:{','.join(sorted(NEEDS[self.method]))}"

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class Seeded:
    manifests: dict[str, tuple[str, bytes]]  # repository -> (digest, bytes)

    def config_digest(self, name: str) -> str:
        return json.loads(self.manifests[name][1])["config"]["digest"]


def cells(seeded: Seeded) -> list[Cell]:
    result: list[Cell] = []
    for route in routes.ROUTES:
        for method in route.methods:
            names = [""] if route.name in ("base", "catalog") else list(REPOSITORIES)
            for name in names:
                result.append(Cell(route.name, method, name, *_request(route.name, method, name, seeded)))
    return result


def _request(route: str, method: str, name: str, seeded: Seeded) -> tuple[str, dict[str, Any]]:
    unknown_upload = str(uuid.uuid4())
    if route == "base":
        return "/v2/", {}
    if route == "catalog":
        return "/v2/_catalog", {}
    if route == "tags":
        return f"/v2/{name}/tags/list", {}
    if route == "manifest":
        if method == "PUT":
            return f"/v2/{name}/manifests/latest", {"data": seeded.manifests[name][1], "headers": {"Content-Type": OCI_MANIFEST}}
        if method == "DELETE":
            return f"/v2/{name}/manifests/{MISSING}", {}
        return f"/v2/{name}/manifests/latest", {"headers": {"Accept": OCI_MANIFEST}}
    if route == "upload-start":
        return f"/v2/{name}/blobs/uploads/", {}
    if route == "upload":
        path = f"/v2/{name}/blobs/uploads/{unknown_upload}"
        if method == "PATCH":
            return path, {"data": b"some bytes"}
        if method == "PUT":
            return path + f"?digest={MISSING}", {"data": b""}
        return path, {}
    if route == "blob":
        if method == "DELETE":
            return f"/v2/{name}/blobs/{MISSING}", {}
        return f"/v2/{name}/blobs/{seeded.config_digest(name)}", {}
    if route == "referrers":
        return f"/v2/{name}/referrers/{seeded.manifests[name][0]}", {}
    raise AssertionError(f"no request written down for route {route}")


def allowed(role: str, cell: Cell) -> bool:
    if cell.route == "base":
        return True
    if cell.route == "catalog":
        return True  # every role here may pull somewhere, so may list (a filtered) catalog
    return set(NEEDS[cell.method]) <= ALLOWED[role].get(cell.repository, frozenset())


async def seed(aiohttp_client, root: pathlib.Path) -> Seeded:
    client = await aiohttp_client(make_app(root))
    manifests = {}
    for name in [*REPOSITORIES, "a/other"]:
        manifests[name] = await push_image(client, name, seed=name, tag="latest")
    await client.close()
    return Seeded(manifests)


async def answer(response) -> tuple[int, str | None, dict[str, Any] | None]:
    body = await response.read()
    document = None
    code = None
    if body and response.headers.get("Content-Type", "").startswith("application/json"):
        document = json.loads(body)
        if isinstance(document, dict) and "errors" in document:
            code = document["errors"][0]["code"]
    return response.status, code, document


def check_authorized(role: str, cell: Cell, status: int, code: str | None, document: Any, headers) -> list[str]:
    expected = AUTHORIZED[(cell.route, cell.method)]
    problems = []
    if (status, code) != expected:
        problems.append(f"{role}: {cell}: got {status} {code}, expected {expected}")
    if "WWW-Authenticate" in headers:
        problems.append(f"{role}: {cell}: a challenge on an allowed request")
    if cell.route == "catalog" and cell.method == "GET" and document != {"repositories": CATALOG_OF[role]}:
        problems.append(f"{role}: {cell}: catalog {document}, expected {CATALOG_OF[role]}")
    return problems


# --- basic mode --------------------------------------------------------------------------------

BASIC_CHALLENGE = 'Basic realm="Dockyard"'
BASIC_ROLES = ["anonymous", "reader", "writer", "root", "wrong-password"]


@pytest.mark.parametrize("role", BASIC_ROLES)
async def test_basic_mode_matrix(aiohttp_client, tmp_path: pathlib.Path, role: str) -> None:
    seeded = await seed(aiohttp_client, tmp_path / "root")
    client = await aiohttp_client(make_app(tmp_path / "root", settings(tmp_path, "basic")))
    if role == "anonymous":
        headers = {}
    elif role == "wrong-password":
        headers = {"Authorization": basic("reader", "not-" + USERS["reader"])}
    else:
        headers = {"Authorization": basic(role, USERS[role])}
    problems: list[str] = []
    all_cells = cells(seeded)
    assert len(all_cells) == 4 + 17 * 3
    for cell in all_cells:
        options = dict(cell.options)
        options["headers"] = {**options.get("headers", {}), **headers}
        response = await client.request(cell.method, cell.path, **options)
        status, code, document = await answer(response)
        challenge = response.headers.get("WWW-Authenticate")
        if role == "wrong-password":
            expected: tuple[Any, ...] = (401, "UNAUTHORIZED", BASIC_CHALLENGE)
        elif role == "anonymous" and cell.route == "base":
            expected = (401, "UNAUTHORIZED", BASIC_CHALLENGE)  # docker login needs a 401 here
        elif allowed(role, cell):
            problems += check_authorized(role, cell, status, code, document, response.headers)
            continue
        elif role == "anonymous":
            expected = (401, "UNAUTHORIZED", BASIC_CHALLENGE)
        else:
            expected = (403, "DENIED", None)
        if cell.method == "HEAD":
            expected = (expected[0], None, expected[2])  # no body on HEAD
        if (status, code, challenge) != expected:
            problems.append(f"{role}: {cell}: got {(status, code, challenge)}, expected {expected}")
        elif status == 403 and cell.method != "HEAD" and document["errors"][0]["detail"] != [
            {"type": "repository", "name": cell.repository, "actions": sorted(NEEDS[cell.method])}
        ]:
            problems.append(f"{role}: {cell}: 403 detail {document['errors'][0].get('detail')}")
    assert problems == []


# --- token mode --------------------------------------------------------------------------------

TOKEN_ROLES = ["anonymous", "reader", "writer", "root", "wrong-password", "expired-token", "other-service-token"]


def bearer_challenge(client, scope: str | None, error: str | None = None) -> str:
    realm = f"http://{client.server.host}:{client.server.port}/auth/token"
    parts = [f'realm="{realm}"', 'service="dockyard"']
    if scope:
        parts.append(f'scope="{scope}"')
    if error:
        parts.append(f'error="{error}"')
    return "Bearer " + ",".join(parts)


def parse_challenge(header: str) -> dict[str, str]:
    assert header.startswith("Bearer "), header
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


def forged(tmp_path: pathlib.Path, **changes: Any) -> str:
    """A token signed with the server's own key, with ``changes`` to the claims."""
    key = certificates.load_key(tmp_path / "token-signing.key")
    from dockyard.auth.tokens import key_id

    now = int(time.time())
    claims = {
        "iss": "dockyard", "sub": "root", "aud": "dockyard", "exp": now + 300, "nbf": now - 1, "iat": now,
        "jti": uuid.uuid4().hex,
        "access": [{"type": "repository", "name": name, "actions": ["delete", "pull", "push"]} for name in REPOSITORIES]
        + [{"type": "registry", "name": "catalog", "actions": ["*"]}],
    }
    claims.update(changes)
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": key_id(key.public_key())})


async def get_token(client, role: str, scope: str | None):
    query = {"service": "dockyard"}
    if scope:
        query["scope"] = scope
    headers = {}
    if role == "wrong-password":
        headers["Authorization"] = basic("reader", "not-" + USERS["reader"])
    elif role != "anonymous":
        headers["Authorization"] = basic(role, USERS[role])
    return await client.get("/auth/token", params=query, headers=headers)


@pytest.mark.parametrize("role", TOKEN_ROLES)
async def test_token_mode_matrix(aiohttp_client, tmp_path: pathlib.Path, role: str) -> None:
    seeded = await seed(aiohttp_client, tmp_path / "root")
    client = await aiohttp_client(make_app(tmp_path / "root", settings(tmp_path, "token")))
    expired = forged(tmp_path, exp=int(time.time()) - 3600, iat=int(time.time()) - 4000, nbf=int(time.time()) - 4000)
    other_service = forged(tmp_path, aud="another-registry")
    problems: list[str] = []
    for cell in cells(seeded):
        # First without a token: every role is told where to get one, and for what.
        options = dict(cell.options)
        response = await client.request(cell.method, cell.path, **options)
        status, code, _ = await answer(response)
        first = (status, code, response.headers.get("WWW-Authenticate"))
        expected_first = (401, None if cell.method == "HEAD" else "UNAUTHORIZED", bearer_challenge(client, cell.scope))
        if first != expected_first:
            problems.append(f"{role}: {cell} without a token: got {first}, expected {expected_first}")
            continue
        challenge = parse_challenge(first[2])

        if role == "expired-token" or role == "other-service-token":
            token = expired if role == "expired-token" else other_service
            expected_error: str | None = "invalid_token"
        else:
            response = await get_token(client, role, challenge.get("scope"))
            if role == "wrong-password":
                status, code, _ = await answer(response)
                got = (status, code, response.headers.get("WWW-Authenticate"))
                if got != (401, "UNAUTHORIZED", 'Basic realm="Dockyard token service"'):
                    problems.append(f"{role}: {cell}: token request got {got}")
                continue
            assert response.status == 200, await response.text()
            token = (await response.json())["token"]
            expected_error = None if allowed(role, cell) else "insufficient_scope"

        options["headers"] = {**options.get("headers", {}), "Authorization": f"Bearer {token}"}
        response = await client.request(cell.method, cell.path, **options)
        status, code, document = await answer(response)
        if expected_error is None:
            problems += check_authorized(role, cell, status, code, document, response.headers)
            continue
        got = (status, code, response.headers.get("WWW-Authenticate"))
        expected = (401, None if cell.method == "HEAD" else "UNAUTHORIZED", bearer_challenge(client, cell.scope, expected_error))
        if got != expected:
            problems.append(f"{role}: {cell}: got {got}, expected {expected}")
    assert problems == []


# --- mounts ------------------------------------------------------------------------------------


async def _mount_status(client, headers: dict[str, str], source: str, digest: str) -> tuple[int, str | None]:
    response = await client.post("/v2/a/app/blobs/uploads/", params={"mount": digest, "from": source}, headers=headers)
    await response.read()
    return response.status, response.headers.get("Docker-Content-Digest")


@pytest.mark.parametrize("mode", ["basic", "token"])
async def test_mount_from_an_unreadable_repository_falls_back_to_an_upload(aiohttp_client, tmp_path: pathlib.Path, mode: str) -> None:
    seeded = await seed(aiohttp_client, tmp_path / "root")
    opened = await aiohttp_client(make_app(tmp_path / "root"))
    secret = await push_blob(opened, "b/app", b"only in b/app")
    readable = await push_blob(opened, "a/other", b"only in a/other")
    await opened.close()
    del seeded
    client = await aiohttp_client(make_app(tmp_path / "root", settings(tmp_path, mode)))

    async def headers(source: str) -> dict[str, str]:
        if mode == "basic":
            return {"Authorization": basic("writer", USERS["writer"])}
        # As docker asks: push on the target, pull on the source.
        response = await get_token(client, "writer", None)
        await response.read()
        response = await client.get(
            "/auth/token",
            params=[("service", "dockyard"), ("scope", "repository:a/app:pull,push"), ("scope", f"repository:{source}:pull")],
            headers={"Authorization": basic("writer", USERS["writer"])},
        )
        return {"Authorization": f"Bearer {(await response.json())['token']}"}

    assert await _mount_status(client, await headers("b/app"), "b/app", secret) == (202, None)
    assert await _mount_status(client, await headers("a/other"), "a/other", readable) == (201, readable)
    # The fallback did not link the secret blob into a/app.
    credentials = {"Authorization": basic("root", USERS["root"])} if mode == "basic" else await headers("a/app")
    response = await client.head(f"/v2/a/app/blobs/{secret}", headers=credentials)
    assert response.status == 404


# --- the token endpoint ------------------------------------------------------------------------


@pytest.fixture
async def token_client(aiohttp_client, tmp_path: pathlib.Path):
    return await aiohttp_client(make_app(tmp_path / "root", settings(tmp_path, "token")))


def access_of(token: str) -> tuple[str, list[dict[str, Any]]]:
    claims = jwt.decode(token, options={"verify_signature": False})
    return claims["sub"], claims["access"]


async def test_token_get_with_basic_grants_the_intersection(token_client) -> None:
    response = await token_client.get(
        "/auth/token",
        params=[("service", "dockyard"), ("scope", "repository:a/app:pull,push,delete repository:b/app:pull"), ("scope", "repository:public/app:*")],
        headers={"Authorization": basic("reader", USERS["reader"])},
    )
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert set(body) == {"token", "access_token", "expires_in", "issued_at"}
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["issued_at"])
    assert access_of(body["token"]) == ("reader", [
        {"type": "repository", "name": "a/app", "actions": ["pull"]},
        {"type": "repository", "name": "public/app", "actions": ["pull"]},
    ])


async def test_token_get_with_star_action(token_client) -> None:
    response = await token_client.get(
        "/auth/token", params={"scope": "repository:a/app:*"}, headers={"Authorization": basic("writer", USERS["writer"])}
    )
    assert access_of((await response.json())["token"])[1] == [{"type": "repository", "name": "a/app", "actions": ["delete", "pull", "push"]}]


async def test_anonymous_token_gets_only_anonymous_grants(token_client) -> None:
    response = await token_client.get(
        "/auth/token",
        params={"service": "dockyard", "scope": "repository:a/app:pull repository:public/app:pull,push registry:catalog:*", "offline_token": "true"},
    )
    assert response.status == 200
    body = await response.json()
    assert "refresh_token" not in body
    assert access_of(body["token"]) == ("", [
        {"type": "repository", "name": "public/app", "actions": ["pull"]},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ])


async def test_offline_token_returns_a_refresh_token(token_client) -> None:
    response = await token_client.get(
        "/auth/token",
        params={"service": "dockyard", "scope": "repository:a/app:pull", "offline_token": "true"},
        headers={"Authorization": basic("writer", USERS["writer"])},
    )
    body = await response.json()
    assert set(body) == {"token", "access_token", "expires_in", "issued_at", "refresh_token"}
    claims = jwt.decode(body["refresh_token"], options={"verify_signature": False})
    assert (claims["sub"], claims["aud"]) == ("writer", "dockyard#refresh")
    without = await token_client.get("/auth/token", params={"scope": "repository:a/app:pull"}, headers={"Authorization": basic("writer", USERS["writer"])})
    assert "refresh_token" not in await without.json()


async def test_token_post_password_and_refresh(token_client) -> None:
    response = await token_client.post("/auth/token", data={
        "grant_type": "password", "username": "writer", "password": USERS["writer"], "service": "dockyard",
        "scope": "repository:a/app:pull,push repository:b/app:pull", "client_id": "tests", "access_type": "offline",
    })
    assert response.status == 200, await response.text()
    body = await response.json()
    assert access_of(body["access_token"]) == ("writer", [{"type": "repository", "name": "a/app", "actions": ["pull", "push"]}])
    refresh = body["refresh_token"]

    response = await token_client.post("/auth/token", data={
        "grant_type": "refresh_token", "refresh_token": refresh, "service": "dockyard", "scope": "repository:a/app:pull", "client_id": "tests",
    })
    assert response.status == 200, await response.text()
    body = await response.json()
    assert access_of(body["access_token"]) == ("writer", [{"type": "repository", "name": "a/app", "actions": ["pull"]}])
    assert "refresh_token" not in body
    # The refreshed token works on the registry.
    response = await token_client.get("/v2/a/app/tags/list", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert response.status == 404  # allowed; a/app holds nothing in this registry
    assert (await response.json())["errors"][0]["code"] == "NAME_UNKNOWN"


@pytest.mark.parametrize(
    ("form", "status", "code"),
    [
        ({"grant_type": "password", "username": "writer", "password": "wrong"}, 401, "UNAUTHORIZED"),
        ({"grant_type": "password", "username": "nobody", "password": "wrong"}, 401, "UNAUTHORIZED"),
        ({"grant_type": "refresh_token", "refresh_token": "not-a-token"}, 401, "UNAUTHORIZED"),
        ({"grant_type": "client_credentials"}, 400, "UNSUPPORTED"),
        ({}, 400, "UNSUPPORTED"),
        ({"grant_type": "password", "username": "writer", "password": USERS["writer"], "service": "another"}, 403, "DENIED"),
        ({"grant_type": "password", "username": "writer", "password": USERS["writer"], "scope": "repository:nope"}, 400, "UNSUPPORTED"),
    ],
)
async def test_token_post_refusals(token_client, form: dict[str, str], status: int, code: str) -> None:
    response = await token_client.post("/auth/token", data=form)
    assert response.status == status, await response.text()
    assert (await response.json())["errors"][0]["code"] == code


async def test_token_get_refusals(token_client) -> None:
    wrong = await token_client.get("/auth/token", params={"scope": "repository:a/app:pull"}, headers={"Authorization": basic("writer", "wrong")})
    assert wrong.status == 401
    assert wrong.headers["WWW-Authenticate"] == 'Basic realm="Dockyard token service"'
    assert "token" not in await wrong.json()
    bearer = await token_client.get("/auth/token", headers={"Authorization": "Bearer something"})
    assert bearer.status == 401
    other = await token_client.get("/auth/token", params={"service": "another-registry"}, headers={"Authorization": basic("writer", USERS["writer"])})
    assert other.status == 403
    assert (await other.json())["errors"][0]["code"] == "DENIED"
    malformed = await token_client.get("/auth/token", params={"scope": "repository"}, headers={"Authorization": basic("writer", USERS["writer"])})
    assert malformed.status == 400


async def test_refresh_token_of_another_service_is_refused(aiohttp_client, tmp_path: pathlib.Path) -> None:
    one = await aiohttp_client(make_app(tmp_path / "one", settings(tmp_path, "token")))
    (tmp_path / "two-cfg").mkdir()
    two = await aiohttp_client(make_app(tmp_path / "two", settings(tmp_path / "two-cfg", "token", token_service="other")))
    response = await one.get("/auth/token", params={"offline_token": "true"}, headers={"Authorization": basic("writer", USERS["writer"])})
    refresh = (await response.json())["refresh_token"]
    response = await two.post("/auth/token", data={"grant_type": "refresh_token", "refresh_token": refresh})
    assert response.status == 401
    # Nor does one service's access token open the other registry.
    response = await one.get("/auth/token", params={"scope": "repository:a/app:pull"}, headers={"Authorization": basic("writer", USERS["writer"])})
    token = (await response.json())["token"]
    response = await two.get("/v2/a/app/tags/list", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def test_no_token_endpoint_in_basic_mode(aiohttp_client, tmp_path: pathlib.Path) -> None:
    client = await aiohttp_client(make_app(tmp_path / "root", settings(tmp_path, "basic")))
    response = await client.get("/auth/token", headers={"Authorization": basic("writer", USERS["writer"])})
    assert response.status == 404


def test_challenge_scope_is_parseable() -> None:
    header = 'Bearer realm="http://127.0.0.1:1/auth/token",service="dockyard",scope="repository:a/app:pull,push"'
    assert parse_challenge(header) == {"realm": "http://127.0.0.1:1/auth/token", "service": "dockyard", "scope": "repository:a/app:pull,push"}
    assert urllib.parse.urlsplit(parse_challenge(header)["realm"]).path == "/auth/token"


async def test_referrers_of_a_repository_never_pushed_keep_access_control(aiohttp_client, tmp_path: pathlib.Path) -> None:
    # The empty index a never-pushed repository answers is still behind the policy.
    client = await aiohttp_client(make_app(tmp_path / "root", settings(tmp_path, "basic")))
    never_pushed = f"/v2/{{}}/never-pushed/referrers/{MISSING}"
    refused = await client.get(never_pushed.format("b"), headers={"Authorization": basic("reader", USERS["reader"])})
    status, code, _ = await answer(refused)
    assert (status, code) == (403, "DENIED")
    anonymous = await client.get(never_pushed.format("a"))
    assert (anonymous.status, anonymous.headers["WWW-Authenticate"]) == (401, BASIC_CHALLENGE)
    allowed_reader = await client.get(never_pushed.format("a"), headers={"Authorization": basic("reader", USERS["reader"])})
    assert allowed_reader.status == 200 and (await allowed_reader.json())["manifests"] == []
