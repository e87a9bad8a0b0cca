"""The web page and governance: a repository deleted with a confirmation by users allowed to
delete there, and immutable tags (and repositories holding them) that it never deletes."""

from __future__ import annotations

import re

from dockyard import config
from dockyard.api.access import AccessController
from dockyard.api.app import create_app
from dockyard.auth.access import Authenticator
from dockyard.auth.htpasswd import Htpasswd
from dockyard.auth.limiter import FailureLimiter
from dockyard.auth.policy import from_document
from dockyard.auth.sources import HtpasswdSource
from dockyard.storage.immutable import ImmutableTags
from dockyard.storage.inmemory import InMemoryDriver
from dockyard.storage.registry import Registry
from dockyard.ui import session_key
from tests.support.auth import USERS, basic, write_htpasswd
from tests.support.registry_client import push_image

RULES = ImmutableTags((config.ImmutableTags(repositories="prod/*", tags=["v*"]),))
# writer may delete under team/ and prod/; reader only pulls.
POLICY = {
    "rules": [
        {"who": ["writer"], "repositories": ["**"], "actions": ["pull", "push", "delete"]},
        {"who": ["reader"], "repositories": ["**"], "actions": ["pull"]},
    ],
}


async def _client(aiohttp_client, tmp_path):
    access = AccessController(
        policy=from_document(POLICY), authenticator=Authenticator([HtpasswdSource(Htpasswd(write_htpasswd(tmp_path / "users")))], FailureLimiter()),
    )
    client = await aiohttp_client(create_app(Registry(InMemoryDriver(), immutable=RULES), access=access, ui_session_key=session_key("")))
    writer = {"Authorization": basic("writer", USERS["writer"])}

    class AsWriter:  # pushes with the writer's credentials
        async def request(self, method, path, data=None, headers=None):
            return await client.request(method, path, data=data, headers={**(headers or {}), **writer})

    for name, tag in (("team/app", "latest"), ("team/other", "latest"), ("prod/app", "v1")):
        await push_image(AsWriter(), name, tag)
    return client


async def _sign_in(client, user: str) -> None:
    form = await client.get("/ui/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', await form.text()).group(1)
    answer = await client.post("/ui/login", data={"csrf": csrf, "user": user, "password": USERS[user], "next": "/"}, allow_redirects=False)
    assert answer.status == 303


def _csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


async def _listed(client) -> list[str]:
    return (await (await client.get("/v2/_catalog", headers={"Authorization": basic("writer", USERS["writer"])})).json())["repositories"]


async def test_a_user_allowed_to_delete_deletes_a_repository_after_confirming(aiohttp_client, tmp_path) -> None:
    client = await _client(aiohttp_client, tmp_path)
    await _sign_in(client, "writer")
    page = await (await client.get("/ui/r/team/app")).text()
    assert 'href="/ui/r/team/app/-/delete"' in page
    confirm = await client.get("/ui/r/team/app/-/delete")
    text = await confirm.text()
    assert confirm.status == 200 and "Delete the repository team/app?" in re.sub(r"<[^>]+>", "", text) and 'action="/ui/r/team/app/-/delete"' in text
    done = await client.post("/ui/r/team/app/-/delete", data={"csrf": _csrf(text)}, allow_redirects=False)
    assert done.status == 303 and done.headers["Location"] == "/"
    assert await _listed(client) == ["prod/app", "team/other"]
    front = await (await client.get("/")).text()
    assert '/ui/r/team/other"' in front and '/ui/r/team/app"' not in front
    assert (await client.get("/ui/r/team/app")).status == 404


async def test_a_user_who_may_not_delete_sees_no_button_and_is_refused(aiohttp_client, tmp_path) -> None:
    client = await _client(aiohttp_client, tmp_path)
    await _sign_in(client, "reader")
    page = await (await client.get("/ui/r/team/app")).text()
    assert "/-/delete" not in page
    assert (await client.get("/ui/r/team/app/-/delete")).status == 403
    refused = await client.post("/ui/r/team/app/-/delete", data={"csrf": _csrf(page)}, allow_redirects=False)
    assert refused.status == 403
    assert "team/app" in await _listed(client)


async def test_the_page_never_deletes_an_immutable_tag_nor_its_repository(aiohttp_client, tmp_path) -> None:
    client = await _client(aiohttp_client, tmp_path)
    await _sign_in(client, "writer")
    page = await (await client.get("/ui/r/prod/app")).text()
    csrf = _csrf(page)
    for path in ("/ui/r/prod/app/-/delete/v1", "/ui/r/prod/app/-/delete"):
        refused = await client.post(path, data={"csrf": csrf}, allow_redirects=False)
        assert refused.status == 403 and "immutable" in await refused.text()
    confirm = await client.get("/ui/r/prod/app/-/delete")
    assert confirm.status == 403 and "immutable tags (v1)" in await confirm.text()
    assert "prod/app" in await _listed(client)
    assert (await client.get("/v2/prod/app/manifests/v1", headers={"Authorization": basic("reader", USERS["reader"])})).status == 200


async def test_an_immutable_tag_shows_a_lock_instead_of_delete_buttons(aiohttp_client, tmp_path) -> None:
    client = await _client(aiohttp_client, tmp_path)
    await _sign_in(client, "writer")
    repository = await (await client.get("/ui/r/prod/app")).text()
    assert "/-/delete/v1" not in repository and 'class="badge lock"' in repository
    assert 'href="/ui/r/team/app/-/delete/latest"' in await (await client.get("/ui/r/team/app")).text()  # a mutable tag keeps it
    manifest = await (await client.get("/ui/r/prod/app/-/manifest/v1")).text()
    assert "/-/delete/" not in manifest and 'class="badge lock"' in manifest
    digest = re.search(r'data-copy="(sha256:[0-9a-f]{64})"', manifest).group(1)
    for path in ("/ui/r/prod/app/-/delete/v1", f"/ui/r/prod/app/-/delete/{digest}"):  # no confirmation of what would be refused
        confirm = await client.get(path)
        assert confirm.status == 403 and "immutable" in await confirm.text()
