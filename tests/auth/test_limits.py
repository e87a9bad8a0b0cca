"""Failed-login limits (429 with Retry-After), the cache of successes, and secrets kept out of logs."""

from __future__ import annotations

import base64
import hashlib
import json
import pathlib
import time

import httpx
import jwt
import pytest

from dockyard.auth import htpasswd as htpasswd_module
from dockyard.auth import limiter as limiter_module
from tests.support.auth import USERS, basic, make_app, settings, write_htpasswd, write_policy
from tests.support.server import DockyardProcess


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(limiter_module, "time", fake)
    return fake


async def status_and_code(response) -> tuple[int, str | None]:
    document = await response.json() if response.status != 200 else None
    return response.status, (document["errors"][0]["code"] if document else None)


async def test_fifty_wrong_passwords_then_429_until_the_window_passes(aiohttp_client, tmp_path: pathlib.Path, clock: FakeClock) -> None:
    client = await aiohttp_client(make_app(tmp_path / "root", settings(tmp_path, "basic", max_failures=10, failure_window=60.0)))
    wrong = {"Authorization": basic("reader", "wrong")}
    answers = []
    for _ in range(50):
        response = await client.get("/v2/", headers=wrong)
        answers.append((*(await status_and_code(response)), response.headers.get("Retry-After")))
    assert answers[:10] == [(401, "UNAUTHORIZED", None)] * 10
    assert answers[10:] == [(429, "TOOMANYREQUESTS", "60")] * 40

    # Locked out: the right password too, and another user from the same address.
    for user in ("reader", "writer"):
        response = await client.get("/v2/", headers={"Authorization": basic(user, USERS[user])})
        assert (*(await status_and_code(response)), response.headers.get("Retry-After")) == (429, "TOOMANYREQUESTS", "60")

    clock.now += 30
    response = await client.get("/v2/", headers={"Authorization": basic("reader", USERS["reader"])})
    assert (response.status, response.headers.get("Retry-After")) == (429, "30")

    clock.now += 30.001
    response = await client.get("/v2/", headers={"Authorization": basic("reader", USERS["reader"])})
    assert response.status == 200


async def test_token_service_counts_failures_too(aiohttp_client, tmp_path: pathlib.Path, clock: FakeClock) -> None:
    client = await aiohttp_client(make_app(tmp_path / "root", settings(tmp_path, "token", max_failures=3, failure_window=10.0)))
    statuses = []
    for _ in range(5):
        response = await client.get("/auth/token", headers={"Authorization": basic("writer", "wrong")})
        statuses.append(response.status)
    assert statuses == [401, 401, 401, 429, 429]
    response = await client.post("/auth/token", data={"grant_type": "password", "username": "writer", "password": USERS["writer"]})
    assert (response.status, response.headers["Retry-After"]) == (429, "10")
    clock.now += 10.5
    response = await client.post("/auth/token", data={"grant_type": "password", "username": "writer", "password": USERS["writer"]})
    assert response.status == 200


# ":" in base64: what skopeo, podman and buildah answer a Basic challenge with when they have no credentials.
EMPTY_CREDENTIALS = {"Authorization": "Basic Og=="}


async def test_empty_credentials_are_anonymous_and_never_count_as_failures(aiohttp_client, tmp_path: pathlib.Path) -> None:
    client = await aiohttp_client(make_app(tmp_path / "root", settings(tmp_path, "basic", max_failures=3)))
    for _ in range(20):
        public = await client.get("/v2/public/app/tags/list", headers=EMPTY_CREDENTIALS)
        assert await status_and_code(public) == (404, "NAME_UNKNOWN")  # anonymous may pull public/*; nothing there
        for path in ("/v2/", "/v2/a/app/tags/list"):  # as without a header: asked to sign in
            response = await client.get(path, headers=EMPTY_CREDENTIALS)
            assert (*(await status_and_code(response)), response.headers.get("WWW-Authenticate")) == (401, "UNAUTHORIZED", 'Basic realm="Dockyard"')
    response = await client.get("/v2/a/app/tags/list", headers={"Authorization": basic("reader", USERS["reader"])})
    assert await status_and_code(response) == (404, "NAME_UNKNOWN")


async def test_token_service_takes_empty_credentials_as_anonymous(aiohttp_client, tmp_path: pathlib.Path) -> None:
    client = await aiohttp_client(make_app(tmp_path / "root", settings(tmp_path, "token", max_failures=3)))
    scope = "repository:public/app:pull repository:a/app:pull"
    anonymous_grant = ("", [{"type": "repository", "name": "public/app", "actions": ["pull"]}])
    for _ in range(10):
        got = await client.get("/auth/token", params={"scope": scope, "offline_token": "true"}, headers=EMPTY_CREDENTIALS)
        posted = await client.post("/auth/token", data={"grant_type": "password", "username": "", "password": "", "scope": scope, "access_type": "offline"})
        for response in (got, posted):
            assert response.status == 200, await response.text()
            body = await response.json()
            assert "refresh_token" not in body
            claims = jwt.decode(body["token"], options={"verify_signature": False})
            assert (claims["sub"], claims["access"]) == anonymous_grant
    response = await client.get("/auth/token", params={"scope": scope}, headers={"Authorization": basic("reader", USERS["reader"])})
    assert response.status == 200
    assert jwt.decode((await response.json())["token"], options={"verify_signature": False})["sub"] == "reader"


def test_real_server_small_window(tmp_path: pathlib.Path) -> None:
    users = write_htpasswd(tmp_path / "htpasswd")
    server = DockyardProcess(tmp_path / "root", "--htpasswd", str(users), "--login-max-failures", "3", "--login-failure-window", "1")
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            wrong = [client.get("/v2/", auth=("reader", "wrong")) for _ in range(5)]
            assert [response.status_code for response in wrong] == [401, 401, 401, 429, 429]
            assert wrong[-1].headers["Retry-After"] == "1"
            assert wrong[-1].json()["errors"][0]["code"] == "TOOMANYREQUESTS"
            # Wait out the window (not a timing assertion: the next request must then succeed).
            time.sleep(1.2)
            assert client.get("/v2/", auth=("reader", USERS["reader"])).status_code == 200
    finally:
        server.stop()


async def test_cache_spares_bcrypt(aiohttp_client, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = htpasswd_module._check_bcrypt

    def counting(password: str, hashed: str) -> bool:
        calls.append(password)
        return real(password, hashed)

    monkeypatch.setattr(htpasswd_module, "_check_bcrypt", counting)
    client = await aiohttp_client(make_app(tmp_path / "root", settings(tmp_path, "basic")))
    for _ in range(50):
        response = await client.get("/v2/a/app/tags/list", headers={"Authorization": basic("writer", USERS["writer"])})
        assert response.status == 404  # allowed; nothing there
    assert calls == [USERS["writer"]]
    # Wrong passwords are never cached: each one is checked.
    for _ in range(3):
        assert (await client.get("/v2/", headers={"Authorization": basic("writer", "nope")})).status == 401
    assert calls == [USERS["writer"], "nope", "nope", "nope"]


# --- secrets stay out of the log ----------------------------------------------------------------


def _push(client: httpx.Client, name: str, headers: dict[str, str]) -> None:
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    layer = b"layer bytes " * 100
    digests = []
    for data in (config, layer):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        start = client.post(f"/v2/{name}/blobs/uploads/", headers=headers)
        assert start.status_code == 202, start.text
        patched = client.patch(start.headers["Location"], content=data, headers={**headers, "Content-Type": "application/octet-stream"})
        assert patched.status_code == 202, patched.text
        done = client.put(patched.headers["Location"], params={"digest": digest}, headers=headers)
        assert done.status_code == 201, done.text
        digests.append((digest, len(data)))
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digests[0][0], "size": digests[0][1]},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digests[1][0], "size": digests[1][1]}],
    }).encode()
    put = client.put(f"/v2/{name}/manifests/v1", content=manifest, headers={**headers, "Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert put.status_code == 201, put.text
    got = client.get(f"/v2/{name}/manifests/v1", headers={**headers, "Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert got.content == manifest


@pytest.mark.parametrize("mode", ["basic", "token"])
def test_no_secret_in_the_server_log(tmp_path: pathlib.Path, mode: str) -> None:
    users = write_htpasswd(tmp_path / "htpasswd")
    policy = write_policy(tmp_path / "policy.yaml")
    flags = ["--htpasswd", str(users), "--access-policy", str(policy), "--log-level", "debug"]
    if mode == "token":
        flags.append("--token-auth")
    server = DockyardProcess(tmp_path / "root", *flags)
    server.start()
    secrets: list[str] = [USERS["writer"], "wrong-password-xyz"]
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            credentials = basic("writer", USERS["writer"])
            secrets += [credentials, credentials.split()[1]]
            wrong_path = "/v2/" if mode == "basic" else "/auth/token"
            assert client.get(wrong_path, auth=("writer", "wrong-password-xyz")).status_code == 401
            secrets.append(base64.b64encode(b"writer:wrong-password-xyz").decode())
            if mode == "basic":
                headers = {"Authorization": credentials}
            else:
                response = client.get(
                    "/auth/token",
                    params={"service": "dockyard", "scope": "repository:a/app:pull,push", "offline_token": "true"},
                    headers={"Authorization": credentials},
                )
                assert response.status_code == 200, response.text
                body = response.json()
                secrets += [body["token"], body["refresh_token"]]
                refreshed = client.post("/auth/token", data={
                    "grant_type": "refresh_token", "refresh_token": body["refresh_token"], "scope": "repository:a/app:pull,push",
                })
                assert refreshed.status_code == 200
                secrets.append(refreshed.json()["token"])
                # The signature alone is as secret as the token.
                secrets += [token.rsplit(".", 1)[1] for token in (body["token"], body["refresh_token"])]
                headers = {"Authorization": f"Bearer {body['token']}"}
                assert client.get("/v2/a/app/tags/list", headers={"Authorization": "Bearer " + body["token"][:-4] + "AAAA"}).status_code == 401
            _push(client, "a/app", headers)
    finally:
        server.stop()
    log = server.log.read_text()
    assert "GET /v2/" in log or "failed login" in log  # the log is not empty: there is something to search
    assert "failed login for user 'writer'" in log
    for secret in secrets:
        assert secret not in log, f"a secret ({secret[:6]}...) is in the server log"
    assert "Authorization" not in log
    assert "Bearer ey" not in log
    assert "Basic d" not in log  # base64 of "w..." (writer)
