"""registry:2's ``http.prefix``: the whole API under a path, and every URL it hands out too."""

from __future__ import annotations

import hashlib

import pytest

from dockyard.api.app import create_app
from dockyard.api.auth_setup import AuthSettings
from dockyard.forwarding import Forwarding, ForwardingError, parse_prefix
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.registry import Registry

PREFIX = "/registry"


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    app = create_app(Registry(FilesystemDriver(tmp_path / "root")), forwarding=Forwarding(prefix=PREFIX))
    return await aiohttp_client(app)


async def test_api_answers_under_the_prefix_only(client):
    assert (await client.get(f"{PREFIX}/v2/")).status == 200
    assert (await client.get("/v2/")).status == 404
    assert (await client.get(f"{PREFIX}/_ping")).status == 200


async def test_upload_and_pagination_urls_carry_the_prefix(client):
    data = b"under a prefix"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = await client.post(f"{PREFIX}/v2/app/blobs/uploads/")
    assert started.status == 202
    location = started.headers["Location"]
    assert location.startswith(f"{PREFIX}/v2/app/blobs/uploads/")
    finished = await client.put(f"{location}?digest={digest}", data=data)
    assert finished.status == 201
    assert finished.headers["Location"] == f"{PREFIX}/v2/app/blobs/{digest}"
    assert await (await client.get(finished.headers["Location"])).read() == data
    for name in ("a", "b"):
        await client.post(f"{PREFIX}/v2/{name}/blobs/uploads/?digest={digest}", data=data)
    page = await client.get(f"{PREFIX}/v2/_catalog?n=1")
    assert page.headers["Link"] == f'<{PREFIX}/v2/_catalog?n=1&last=a>; rel="next"'


async def test_token_realm_carries_the_prefix(aiohttp_client, tmp_path):
    access, tokens = AuthSettings(token_auth=True, signing_key=tmp_path / "token.key").build()
    app = create_app(
        Registry(FilesystemDriver(tmp_path / "root")), access=access, token_service=tokens, forwarding=Forwarding(prefix=PREFIX)
    )
    client = await aiohttp_client(app)
    challenge = (await client.get(f"{PREFIX}/v2/")).headers["WWW-Authenticate"]
    assert f'realm="http://127.0.0.1:{client.port}{PREFIX}/auth/token"' in challenge
    assert (await client.get(f"{PREFIX}/auth/token?service=dockyard")).status == 200


@pytest.mark.parametrize(("text", "expected"), [("", ""), ("/", ""), ("registry", "/registry"), ("/a/b/", "/a/b")])
def test_prefixes_are_normalised(text, expected):
    assert parse_prefix(text) == expected


@pytest.mark.parametrize("text", ["/a b", "/a?b", "/a//b", "/%2e"])
def test_bad_prefixes_are_refused(text):
    with pytest.raises(ForwardingError):
        parse_prefix(text)
