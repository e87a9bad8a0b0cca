"""Robot accounts in the application: the store, Basic and token sign-in, the web page.

In-process (aiohttp's test client) with records read fresh (no cache time), so that a
removal shows at once; the running servers, replicas and real clients are in
``test_robots_clients.py``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import pathlib
import re
from collections.abc import AsyncIterator

import pytest

from dockyard.auth import htpasswd as htpasswd_module
from dockyard.auth.robots import LAST_USED_INTERVAL, RobotAccounts, RobotError
from dockyard.storage import paths
from dockyard.storage.driver import StorageDriver
from dockyard.storage.inmemory import InMemoryDriver
from tests.storage.test_drivers import FACTORIES
from tests.support.audit import audits
from tests.support.auth import USERS, basic, make_app, robots_of, settings
from tests.support.plugin import storage_marks

ROBOT = "robot$ci"


@pytest.fixture(params=[pytest.param(factory, id=name, marks=storage_marks(name)) for name, factory in FACTORIES.items()])
async def driver(request: pytest.FixtureRequest) -> AsyncIterator[StorageDriver]:
    """Each storage driver, S3 included: robots live wherever the registry's data does."""
    instance = request.param(request)
    try:
        yield instance
    finally:
        await instance.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_add_verify_remove_and_what_is_stored(driver: StorageDriver) -> None:
    robots = RobotAccounts(driver, cache_seconds=0)
    robot, secret = await robots.add("ci", ["team/*"], ["team/ci/**"], [], None)
    stored = await driver.get_content(paths.robot_record("ci"))
    assert secret.encode() not in stored
    assert json.loads(stored)["secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest()
    assert len(secret) >= 43  # 32 random bytes

    assert await robots.verify(ROBOT, secret) == robot
    assert await robots.verify(ROBOT, secret + "x") is None
    assert await robots.verify("ci", secret) is None  # only as robot$NAME
    assert robot.policy.allowed(ROBOT, "team/app") == {"pull"}
    assert robot.policy.allowed(ROBOT, "team/ci/a/b") == {"pull", "push"}  # push implies pull
    assert robot.policy.allowed(ROBOT, "team/a/b") == frozenset()  # * stays within one component
    assert robot.policy.allowed(ROBOT, "other/app") == frozenset()
    assert not robot.policy.is_admin(ROBOT)

    with pytest.raises(RobotError, match="exists"):
        await robots.add("ci", ["x"], [], [], None)
    listed = await robots.list()
    assert [entry.robot.name for entry in listed] == ["ci"]

    await robots.remove("ci")
    assert await robots.verify(ROBOT, secret) is None
    assert await robots.list() == []
    with pytest.raises(RobotError, match="no robot ci"):
        await robots.remove("ci")


@pytest.mark.parametrize(("name", "globs", "message"), [
    ("Upper", ["a"], "lowercase"), ("a$b", ["a"], "lowercase"), ("x" * 65, ["a"], "at most"),
    ("ok", [], "at least one"), ("ok", ["a b"], "glob"), ("ok", ["A/*"], "glob"),
])
async def test_bad_names_and_globs_are_refused(name: str, globs: list[str], message: str) -> None:
    robots = RobotAccounts(InMemoryDriver())
    with pytest.raises(RobotError, match=message):
        await robots.add(name, globs, [], [], None)
    assert await robots.list() == []


async def test_expiry_and_another_replicas_removal(driver: StorageDriver) -> None:
    clock = Clock()
    here = RobotAccounts(driver, cache_seconds=0, clock=clock)
    there = RobotAccounts(driver, cache_seconds=0, clock=clock)  # a replica on the same storage
    _, secret = await here.add("ci", ["a/*"], [], [], 3600)
    assert await there.verify(ROBOT, secret) is not None
    clock.now += 3600
    assert await here.verify(ROBOT, secret) is None
    assert await there.find(ROBOT) is None

    _, other = await here.add("bot", ["a/*"], [], [], None)
    assert await there.verify("robot$bot", other) is not None
    await here.remove("bot")
    assert await there.verify("robot$bot", other) is None


async def test_a_record_is_trusted_for_its_cache_time_only() -> None:
    driver = InMemoryDriver()
    writer = RobotAccounts(driver, cache_seconds=0)
    cached = RobotAccounts(driver, cache_seconds=3600)
    _, secret = await writer.add("ci", ["a/*"], [], [], None)
    assert await cached.verify(ROBOT, secret) is not None
    await writer.remove("ci")
    assert await cached.verify(ROBOT, secret) is not None  # read an hour ago, as far as it knows
    assert await RobotAccounts(driver, cache_seconds=0).verify(ROBOT, secret) is None


async def _stored_last_used(robots: RobotAccounts, expected: float) -> float | None:
    for _ in range(200):  # the stamp is written after the request, in the background
        if await robots.last_used("ci") == expected:
            break
        await asyncio.sleep(0.01)
    return await robots.last_used("ci")


async def test_last_use_is_written_at_most_once_a_minute() -> None:
    driver = InMemoryDriver()
    clock = Clock()
    robots = RobotAccounts(driver, cache_seconds=0, clock=clock)
    _, secret = await robots.add("ci", ["a/*"], [], [], None)
    assert await robots.last_used("ci") is None
    first = int(clock.now)
    assert await robots.verify(ROBOT, secret) is not None
    assert await _stored_last_used(robots, first) == first
    writes: list[str] = []
    put_content = driver.put_content

    async def counted(path: str, content: bytes) -> None:
        writes.append(path)
        await put_content(path, content)

    driver.put_content = counted  # type: ignore[method-assign]
    for _ in range(5):
        clock.now += 10
        assert await robots.verify(ROBOT, secret) is not None
    await asyncio.sleep(0.05)
    assert writes == [] and await robots.last_used("ci") == first
    clock.now = first + LAST_USED_INTERVAL + 1
    assert await robots.verify(ROBOT, secret) is not None
    assert await _stored_last_used(robots, int(clock.now)) == int(clock.now)
    assert writes == [paths.robot_last_used("ci")]
    # A replica that used it lately spares this one the write.
    replica = RobotAccounts(driver, cache_seconds=0, clock=clock)
    assert await replica.verify(ROBOT, secret) is not None
    await asyncio.sleep(0.05)
    assert writes == [paths.robot_last_used("ci")]


async def test_a_corrupt_record_signs_nobody_in(caplog: pytest.LogCaptureFixture) -> None:
    driver = InMemoryDriver()
    robots = RobotAccounts(driver, cache_seconds=0)
    _, secret = await robots.add("ci", ["a/*"], [], [], None)
    await driver.put_content(paths.robot_record("ci"), b"{not json")
    assert await robots.verify(ROBOT, secret) is None
    assert "robot ci" in caplog.text
    await robots.remove("ci")


# In the application


def claims(token: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==="))


async def test_basic_mode(aiohttp_client, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dockyard.audit")
    client = await aiohttp_client(make_app(tmp_path / "root", settings(tmp_path, "basic"), robot_cache_seconds=0))
    robots = robots_of(client)
    _, secret = await robots.add("ci", ["a/*"], ["team/*"], [], None)
    as_robot = {"Authorization": basic(ROBOT, secret)}

    assert (await client.get("/v2/", headers=as_robot)).status == 200
    assert (await client.get("/v2/a/app/tags/list", headers=as_robot)).status == 404  # allowed: the repository is empty
    upload = await client.post("/v2/team/app/blobs/uploads/", headers=as_robot)
    assert upload.status == 202
    # Outside its globs (pull only in a/*): refused, whatever the policy gives users there.
    refused = await client.post("/v2/a/app/blobs/uploads/", headers=as_robot)
    assert refused.status == 403 and (await refused.json())["errors"][0]["code"] == "DENIED"
    assert (await client.get("/v2/other/app/tags/list", headers=as_robot)).status == 403
    wrong = await client.get("/v2/a/app/tags/list", headers={"Authorization": basic(ROBOT, "guess")})
    assert wrong.status == 401
    # htpasswd users sign in beside robots, under the policy.
    assert (await client.post("/v2/a/app/blobs/uploads/", headers={"Authorization": basic("writer", USERS["writer"])})).status == 202

    logins = [event for event in audits(caplog) if event.get("user") == ROBOT]
    assert {(event["event"], event.get("via")) for event in logins} == {("login", "basic"), ("login_failed", None)}

    await robots.remove("ci")
    assert (await client.get("/v2/a/app/tags/list", headers=as_robot)).status == 401


async def test_a_robot_signs_in_without_a_bcrypt_of_the_htpasswd_file(
    aiohttp_client, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Robots are asked before the file: a robot's name, unknown to the file, would cost each Basic request a bcrypt."""
    client = await aiohttp_client(make_app(tmp_path / "root", settings(tmp_path, "basic"), robot_cache_seconds=0))
    _, secret = await robots_of(client).add("ci", ["a/*"], [], [], None)
    checked: list[str] = []
    real = htpasswd_module._check_bcrypt
    monkeypatch.setattr(htpasswd_module, "_check_bcrypt", lambda password, hashed: checked.append(hashed) or real(password, hashed))
    for _ in range(3):
        assert (await client.get("/v2/a/app/tags/list", headers={"Authorization": basic(ROBOT, secret)})).status == 404  # allowed, empty
    assert checked == []
    # The file's users, and unknown names, are checked as before (a wrong name costs a bcrypt too).
    assert (await client.get("/v2/a/app/tags/list", headers={"Authorization": basic("nobody", "guess")})).status == 401
    assert len(checked) == 1


async def test_token_mode(aiohttp_client, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dockyard.audit")
    client = await aiohttp_client(make_app(tmp_path / "root", settings(tmp_path, "token"), robot_cache_seconds=0))
    robots = robots_of(client)
    _, secret = await robots.add("ci", ["a/*"], [], ["a/old"], None)

    async def token(scope: str, user: str = ROBOT, password: str = secret) -> dict:
        response = await client.get("/auth/token", params={"service": "dockyard", "scope": scope, "offline_token": "true"},
                                    headers={"Authorization": basic(user, password)})
        assert response.status == 200, await response.text()
        return await response.json()

    granted = await token("repository:a/app:pull,push repository:b/app:pull repository:a/old:delete")
    assert granted["access_token"]
    assert sorted((entry["name"], entry["actions"]) for entry in claims(granted["token"])["access"]) == [("a/app", ["pull"]), ("a/old", ["delete"])]
    bearer = {"Authorization": f"Bearer {granted['token']}"}
    assert (await client.get("/v2/a/app/tags/list", headers=bearer)).status == 404  # allowed, empty
    assert (await client.get("/v2/b/app/tags/list", headers=bearer)).status == 401  # not in the token
    # The writer's token, under the policy, still grants push in a/*.
    writer = await token("repository:a/app:pull,push", "writer", USERS["writer"])
    assert claims(writer["token"])["access"][0]["actions"] == ["pull", "push"]

    refresh = await client.post("/auth/token", data={
        "grant_type": "refresh_token", "refresh_token": granted["refresh_token"], "service": "dockyard", "scope": "repository:a/app:pull",
    })
    assert refresh.status == 200
    assert ("login", "token_service") in {(event["event"], event.get("via")) for event in audits(caplog) if event.get("user") == ROBOT}
    assert ("login", "refresh_token") in {(event["event"], event.get("via")) for event in audits(caplog) if event.get("user") == ROBOT}

    # Removed, then made again under the same name: the old tokens stay void (a new secret).
    await robots.remove("ci")
    void = await client.get("/v2/a/app/tags/list", headers=bearer)
    assert void.status == 401 and 'error="invalid_token"' in void.headers["WWW-Authenticate"]
    await robots.add("ci", ["a/*"], [], [], None)
    assert (await client.get("/v2/a/app/tags/list", headers=bearer)).status == 401
    refused = await client.post("/auth/token", data={"grant_type": "refresh_token", "refresh_token": granted["refresh_token"], "service": "dockyard"})
    assert refused.status == 401
    assert (await client.get("/auth/token", params={"service": "dockyard"}, headers={"Authorization": basic(ROBOT, secret)})).status == 401


# The web page


async def _csrf(client, path: str) -> str:
    page = await (await client.get(path)).text()
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


async def _sign_in(client, user: str, password: str) -> int:
    response = await client.post("/ui/login", data={"csrf": await _csrf(client, "/ui/login"), "user": user, "password": password, "next": "/"},
                                 allow_redirects=False)
    return response.status


async def test_admins_create_and_remove_robots_on_the_page(aiohttp_client, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dockyard.audit")
    client = await aiohttp_client(make_app(tmp_path / "root", settings(tmp_path, "basic"), robot_cache_seconds=0, ui=True))
    refused = await client.get("/ui/robots", allow_redirects=False)
    assert refused.status == 303 and refused.headers["Location"].startswith("/ui/login")

    assert await _sign_in(client, "root", USERS["root"]) == 303
    page = await client.get("/ui/robots")
    assert page.status == 200 and 'href="/ui/robots"' in await page.text() and "No robot accounts yet" in await page.text()
    csrf = await _csrf(client, "/ui/robots")
    forged = await client.post("/ui/robots", data={"csrf": "forged", "name": "ci", "pull": "a/*"})
    assert forged.status == 403
    bad = await client.post("/ui/robots", data={"csrf": csrf, "name": "Bad Name", "pull": "a/*"})
    assert bad.status == 400 and "lowercase" in await bad.text()

    created = await client.post("/ui/robots", data={"csrf": csrf, "name": "ci", "pull": "a/*, b/*", "push": "", "delete": "", "expires": "30d"})
    assert created.status == 200
    html = await created.text()
    secret = re.search(r'<code [^>]*id="robot-secret"[^>]*>([^<]+)</code>', html).group(1)
    assert "robot$ci" in html and html.count('<span class="chip">') == 2
    assert (await client.get("/v2/b/app/tags/list", headers={"Authorization": basic(ROBOT, secret)})).status == 404
    listed = await (await client.get("/ui/robots")).text()
    assert "robot$ci" in listed and secret not in listed  # shown once
    assert ("robot_add", "robot$ci", "root") in {(event["event"], event.get("robot"), event.get("user")) for event in audits(caplog)}

    removed = await client.post("/ui/robots/ci/remove", data={"csrf": csrf}, allow_redirects=False)
    assert removed.status == 303 and removed.headers["Location"] == "/ui/robots?removed=ci"
    assert (await client.get("/v2/b/app/tags/list", headers={"Authorization": basic(ROBOT, secret)})).status == 401
    assert "robot$ci" not in await (await client.get("/ui/robots")).text()
    assert (await client.post("/ui/robots/ci/remove", data={"csrf": csrf})).status == 404


async def test_only_admins_manage_robots_and_robots_do_not_use_the_page(aiohttp_client, tmp_path: pathlib.Path) -> None:
    client = await aiohttp_client(make_app(tmp_path / "root", settings(tmp_path, "basic"), robot_cache_seconds=0, ui=True))
    _, secret = await robots_of(client).add("ci", ["a/*"], [], [], None)
    assert await _sign_in(client, ROBOT, secret) == 401
    assert await _sign_in(client, "writer", USERS["writer"]) == 303
    home = await (await client.get("/")).text()
    assert "/ui/robots" not in home
    assert (await client.get("/ui/robots")).status == 403
    csrf = await _csrf(client, "/")
    assert (await client.post("/ui/robots", data={"csrf": csrf, "name": "mine", "pull": "**"})).status == 403
    assert (await client.post("/ui/robots/ci/remove", data={"csrf": csrf})).status == 403
    assert [entry.robot.name for entry in await robots_of(client).list()] == ["ci"]
