"""The web page in the application: turned on and off (``dockyard.ui``), its cookie, and sign-in limits."""

from __future__ import annotations

import hashlib
import json
import pathlib
import re

from aiohttp import encode_basic_auth

from dockyard.api.access import AccessController
from dockyard.api.app import create_app
from dockyard.auth.access import Authenticator
from dockyard.auth.htpasswd import Htpasswd, hash_password
from dockyard.auth.limiter import FailureLimiter
from dockyard.auth.sources import HtpasswdSource
from dockyard.config import Settings, load
from dockyard.forwarding import Forwarding
from dockyard.proxy.cache import PullThroughCache
from dockyard.proxy.mirrors import Mirrors
from dockyard.proxy.upstream import UpstreamClient
from dockyard.reference import parse_digest
from dockyard.storage import paths
from dockyard.storage.inmemory import InMemoryDriver
from dockyard.storage.registry import Registry
from dockyard.ui import session_key
from dockyard.ui.browse import Browser
from dockyard.ui.sessions import COOKIE_NAME, SessionSigner


def _settings(tmp_path: pathlib.Path, text: str, environ: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "config.yml"
    path.write_text(text)
    return load(path, environ or {}).settings


def test_config_turns_the_page_off(tmp_path: pathlib.Path) -> None:
    base = "version: 0.1\nstorage: {inmemory: {}}\n"
    assert _settings(tmp_path, base).dockyard.ui is True
    assert _settings(tmp_path, base + "dockyard: {ui: false}\n").dockyard.ui is False
    assert _settings(tmp_path, base, {"REGISTRY_DOCKYARD_UI": "false"}).dockyard.ui is False


async def test_the_page_is_served_only_with_a_session_key(aiohttp_client) -> None:
    without = await aiohttp_client(create_app(Registry(InMemoryDriver())))
    response = await without.get("/")
    assert response.status == 404 and response.content_type != "text/html"

    served = await aiohttp_client(create_app(Registry(InMemoryDriver()), ui_session_key=session_key("")))
    response = await served.get("/")
    assert response.status == 200 and response.content_type == "text/html"
    assert "HttpOnly" in response.headers["Set-Cookie"] and "SameSite=Lax" in response.headers["Set-Cookie"]
    assert "Secure" not in response.headers["Set-Cookie"]  # plain HTTP here
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert (await served.get("/ui/static/style.css")).status == 200
    assert (await served.get("/v2/")).status == 200  # the API is where it was
    assert (await served.get("/ui/r/UPPER/case")).status == 400  # names are checked as the API checks them


async def test_sign_in_failures_go_through_the_api_limiter(aiohttp_client, tmp_path: pathlib.Path) -> None:
    users = tmp_path / "users.htpasswd"
    users.write_text(f"alice:{hash_password('right password')}\n")
    access = AccessController(authenticator=Authenticator([HtpasswdSource(Htpasswd(users))], FailureLimiter(max_failures=2)))
    client = await aiohttp_client(create_app(Registry(InMemoryDriver()), access=access, ui_session_key=session_key("")))
    form = await client.get("/ui/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', await form.text()).group(1)

    async def sign_in(password: str, token: str = csrf) -> int:
        response = await client.post("/ui/login", data={"csrf": token, "user": "alice", "password": password, "next": "/"},
                                     allow_redirects=False)
        return response.status

    assert await sign_in("right password", token="forged") == 303  # back to the form, not signed in
    assert "alice" not in await (await client.get("/ui/login")).text()
    assert [await sign_in("wrong"), await sign_in("wrong")] == [401, 401]
    assert await sign_in("right password") == 429  # the API's limiter: locked out for a while
    # The API sees the same failures: Basic credentials are refused too.
    assert (await client.get("/v2/", headers={"Authorization": encode_basic_auth("alice", "right password")})).status == 429


async def test_the_cookie_is_secure_when_the_client_used_https(aiohttp_client) -> None:
    forwarding = Forwarding.build(["127.0.0.1", "::1"])
    client = await aiohttp_client(create_app(Registry(InMemoryDriver()), forwarding=forwarding, ui_session_key=session_key("")))
    response = await client.get("/", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in response.headers["Set-Cookie"]


async def test_no_delete_button_nor_delete_when_deletes_are_off(aiohttp_client) -> None:
    key = session_key("")
    client = await aiohttp_client(create_app(Registry(InMemoryDriver(), delete_enabled=False), ui_session_key=key))
    config = b'{"architecture":"amd64","os":"linux"}'
    digest = "sha256:" + hashlib.sha256(config).hexdigest()
    assert (await client.post(f"/v2/app/blobs/uploads/?digest={digest}", data=config)).status == 201
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": len(config)}, "layers": [],
    })
    put = await client.put("/v2/app/manifests/v1", data=manifest, headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert put.status == 201

    page = await (await client.get("/ui/r/app")).text()
    assert 'data-tag="v1"' in page and "/-/delete/" not in page
    assert (await client.get("/ui/r/app/-/delete/v1")).status == 405
    # No page offers a form here (open mode, deletes off): make the session's valid token from its cookie.
    signer = SessionSigner(key)
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))[COOKIE_NAME].value
    csrf = signer.csrf_token(signer.decode(cookie))
    refused = await client.post("/ui/r/app/-/delete/v1", data={"csrf": csrf}, allow_redirects=False)
    assert refused.status == 405 and "Deletes are disabled" in await refused.text()
    assert (await client.get("/v2/app/manifests/v1")).status == 200


async def test_a_new_password_or_a_removed_user_ends_the_session(aiohttp_client, tmp_path: pathlib.Path) -> None:
    users = tmp_path / "users.htpasswd"
    users.write_text(f"alice:{hash_password('first')}\nbob:{hash_password('bobs')}\n")
    access = AccessController(authenticator=Authenticator([HtpasswdSource(Htpasswd(users))], FailureLimiter()))
    client = await aiohttp_client(create_app(Registry(InMemoryDriver()), access=access, ui_session_key=session_key("")))

    async def sign_in(user: str, password: str) -> None:
        form = await client.get("/ui/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', await form.text()).group(1)
        response = await client.post("/ui/login", data={"csrf": csrf, "user": user, "password": password, "next": "/"},
                                     allow_redirects=False)
        assert response.status == 303

    async def signed_in_as(user: str) -> bool:
        return f'<span class="who" title="Signed in">{user}</span>' in await (await client.get("/")).text()

    def rewrite(text: str) -> None:
        # As ``dockyard user`` and editors do: a new file renamed over the old one.
        replacement = tmp_path / "users.new"
        replacement.write_text(text)
        replacement.replace(users)

    await sign_in("alice", "first")
    assert await signed_in_as("alice")
    rewrite(f"alice:{hash_password('second')}\nbob:{hash_password('bobs')}\n")
    assert not await signed_in_as("alice")
    await sign_in("alice", "second")
    assert await signed_in_as("alice")
    rewrite(f"bob:{hash_password('bobs')}\n")
    assert not await signed_in_as("alice")


async def test_a_pull_through_cache_says_what_it_caches_and_from_where(aiohttp_client) -> None:
    driver = InMemoryDriver()
    writable = await aiohttp_client(create_app(Registry(driver)))
    config = b'{"architecture":"amd64","os":"linux"}'
    digest = "sha256:" + hashlib.sha256(config).hexdigest()
    assert (await writable.post(f"/v2/team/app/blobs/uploads/?digest={digest}", data=config)).status == 201
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": len(config)}, "layers": [],
    })
    put = await writable.put("/v2/team/app/manifests/v1", data=manifest, headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert put.status == 201
    # The same storage served as a cache of an upstream that is never asked (nothing listens on port 9).
    remote = "http://127.0.0.1:9"
    registry = Registry(driver, read_only=True)
    cache = PullThroughCache(registry, UpstreamClient(remote), ttl=0, tag_check_interval=60)
    client = await aiohttp_client(create_app(registry, ui_session_key=session_key(""), mirrors=Mirrors([cache])))

    listing = await (await client.get("/")).text()
    assert "read-only mode" not in listing
    assert f"pull-through cache of <code>{remote}</code>" in listing
    assert f'<td class="source" data-label="From"><code class="truncate" title="{remote}/team/app">{remote}/team/app</code></td>' in listing
    page = await (await client.get("/ui/r/team/app")).text()
    assert "read-only mode" not in page
    assert f"Cached from <code>{remote}/team/app</code>" in page and 'data-tag="v1"' in page

    # Caches under prefixes (dockyard.mirrors): team/app is a local repository, not cached from anywhere.
    hub = PullThroughCache(Registry(driver), UpstreamClient(remote), ttl=0, tag_check_interval=60, prefix="docker.io")
    mixed = await aiohttp_client(create_app(Registry(driver), ui_session_key=session_key(""), mirrors=Mirrors([hub])))
    listing = await (await mixed.get("/")).text()
    assert "pull-through cache of" not in listing and "<th>From</th>" in listing
    assert '<td class="source" data-label="From"></td>' in listing
    assert "Cached from" not in await (await mixed.get("/ui/r/team/app")).text()


async def test_the_front_page_counts_sorts_and_numbers_pages_reading_only_its_own_rows(aiohttp_client, monkeypatch) -> None:
    driver = InMemoryDriver()
    digest = parse_digest("sha256:" + "a" * 64)
    for number in range(120):
        for tag in range(number % 3 + 1):  # 1, 2 or 3 tags: 240 in all
            await driver.put_content(paths.tag_current_link(f"team/app-{number:03d}", f"v{tag}"), str(digest).encode())
    await driver.put_content(paths.revision_link("team/by-digest", digest), str(digest).encode())  # no tags, a manifest
    await driver.put_content(paths.revision_link("team/emptied", digest), str(digest).encode())
    await driver.delete(paths.revision_dir("team/emptied", digest))  # its last manifest deleted: nothing left in it
    overviews: list[str] = []
    overview = Browser.overview

    async def counted(self: Browser, repository):
        overviews.append(repository.name)
        return await overview(self, repository)

    monkeypatch.setattr(Browser, "overview", counted)
    client = await aiohttp_client(create_app(Registry(driver), ui_session_key=session_key("")))

    def names(html: str) -> list[str]:
        return re.findall(r'<a class="name truncate" href="/ui/r/([^"]+)"', html)

    first = await (await client.get("/")).text()
    assert "121 repositories · 240 tags" in first
    assert names(first) == [f"team/app-{number:03d}" for number in range(50)]
    assert overviews == names(first)  # only the rows shown are read beyond their names and tag counts
    assert "Page 1 of 3" in first and '<a class="button" href="/?sort=name&amp;page=3" aria-label="Page 3">3</a>' in first
    assert "team/emptied" not in first

    last = await (await client.get("/?page=3")).text()
    assert names(last) == [f"team/app-{number:03d}" for number in range(100, 120)] + ["team/by-digest"]
    most_tags = await (await client.get("/?sort=-tags&n=10")).text()
    assert names(most_tags) == [f"team/app-{number:03d}" for number in range(119, 89, -3)]  # 3 tags each, Z to A
    assert 'aria-sort="descending"' in most_tags and "Page 1 of 13" in most_tags
    assert names(await (await client.get("/?q=app-11&sort=-name")).text()) == [f"team/app-{number}" for number in range(119, 109, -1)]
    assert "There is no such page." in await (await client.get("/ui/nowhere")).text()
