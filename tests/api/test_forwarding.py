"""The client-facing URL behind a reverse proxy: X-Forwarded-* only from trusted proxies.

Unit tests drive :func:`public_base_url` with mocked requests (any peer address,
IPv6 included); the integration tests run the real application on 127.0.0.1 in token
mode and read the realm of ``WWW-Authenticate``, the one absolute URL Dockyard writes.
"""

from __future__ import annotations

import pathlib
import re
import ssl
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from click.testing import CliRunner

from dockyard.api.app import create_app
from dockyard.api.auth_setup import AuthSettings
from dockyard.api.forwarding import FORWARDING_KEY, public_base_url
from dockyard.cli import main
from dockyard.forwarding import Forwarding, ForwardingError, parse_public_url, parse_trusted
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.registry import Registry
from tests.support.registry_client import push_blob

FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "registry.example.com", "X-Forwarded-Port": "443"}


def request(headers: dict[str, str], *, peer: str = "127.0.0.1", forwarding: Forwarding | None = None, secure: bool = False):
    app = web.Application()
    if forwarding is not None:
        app[FORWARDING_KEY] = forwarding
    transport = mock.Mock()
    extra = {"peername": (peer, 40000), "sockname": ("127.0.0.1", 5000)}
    transport.get_extra_info.side_effect = lambda name, default=None: extra.get(name, default)
    sslcontext = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH) if secure else None
    return make_mocked_request("GET", "/v2/", headers=headers, app=app, transport=transport, sslcontext=sslcontext)


def trusting(*networks: str, public_url: str | None = None) -> Forwarding:
    return Forwarding.build(networks, public_url)


# ---- trust ----


def test_nothing_is_trusted_by_default_not_even_loopback() -> None:
    for peer in ("127.0.0.1", "::1"):
        got = public_base_url(request({"Host": "127.0.0.1:5000", **FORWARDED}, peer=peer))
        assert got == "http://127.0.0.1:5000"
        got = public_base_url(request({"Host": "127.0.0.1:5000", **FORWARDED}, peer=peer, forwarding=Forwarding()))
        assert got == "http://127.0.0.1:5000"


def test_untrusted_peer_headers_are_ignored() -> None:
    forwarding = trusting("10.0.0.0/8")
    got = public_base_url(request({"Host": "127.0.0.1:5000", **FORWARDED}, peer="192.168.1.9", forwarding=forwarding))
    assert got == "http://127.0.0.1:5000"


def test_trusted_peer_headers_are_used() -> None:
    forwarding = trusting("10.0.0.0/8")
    got = public_base_url(request({"Host": "10.1.2.3:5000", **FORWARDED}, peer="10.9.8.7", forwarding=forwarding))
    assert got == "https://registry.example.com"


def test_single_address_and_ipv6_networks() -> None:
    forwarding = trusting("127.0.0.1", "fd00::/8")
    assert forwarding.trusts("127.0.0.1")
    assert not forwarding.trusts("127.0.0.2")
    assert forwarding.trusts("fd12::1")
    assert not forwarding.trusts("fe80::1")
    assert forwarding.trusts("::ffff:127.0.0.1")  # a dual-stack socket's view of 127.0.0.1
    assert not forwarding.trusts(None) and not forwarding.trusts("") and not forwarding.trusts("not-an-ip")
    got = public_base_url(request({"Host": "[fd00::2]:5000", **FORWARDED}, peer="fd12::1", forwarding=forwarding))
    assert got == "https://registry.example.com"


def test_bad_trusted_networks_are_refused() -> None:
    with pytest.raises(ForwardingError, match="'10.0.0.0/33'"):
        parse_trusted(["10.0.0.0/33"])
    with pytest.raises(ForwardingError):
        parse_trusted(["localhost"])
    assert [str(network) for network in parse_trusted(["10.1.2.3/8", "::1"])] == ["10.0.0.0/8", "::1/128"]


def test_only_the_nearest_proxys_value_counts() -> None:
    """A proxy that appends leaves the client's forgery first; the trusted proxy's value is last."""
    forwarding = trusting("127.0.0.1/32")
    headers = {"Host": "127.0.0.1:5000", "X-Forwarded-Proto": "http, https", "X-Forwarded-Host": "evil.example, registry.example.com"}
    assert public_base_url(request(headers, forwarding=forwarding)) == "https://registry.example.com"


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Forwarded-Proto": "gopher", "X-Forwarded-Host": "a b", "X-Forwarded-Port": "99999"},
        {"X-Forwarded-Proto": "", "X-Forwarded-Host": "evil.example/path", "X-Forwarded-Port": "x"},
        {"X-Forwarded-Host": "[not-ipv6]:5"},
    ],
)
def test_malformed_forwarded_values_are_ignored(headers: dict[str, str]) -> None:
    got = public_base_url(request({"Host": "127.0.0.1:5000", **headers}, forwarding=trusting("127.0.0.1")))
    assert got == "http://127.0.0.1:5000"


# ---- ports ----


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [
        ({"X-Forwarded-Proto": "https", "X-Forwarded-Host": "r.example", "X-Forwarded-Port": "443"}, "https://r.example"),
        ({"X-Forwarded-Proto": "https", "X-Forwarded-Host": "r.example", "X-Forwarded-Port": "8443"}, "https://r.example:8443"),
        ({"X-Forwarded-Proto": "https", "X-Forwarded-Host": "r.example:5043", "X-Forwarded-Port": "443"}, "https://r.example:5043"),
        ({"X-Forwarded-Proto": "https", "X-Forwarded-Host": "r.example:443"}, "https://r.example"),
        ({"X-Forwarded-Proto": "http", "X-Forwarded-Host": "r.example:80"}, "http://r.example"),
        ({"X-Forwarded-Proto": "http", "X-Forwarded-Host": "r.example:443"}, "http://r.example:443"),
        ({"X-Forwarded-Proto": "https"}, "https://127.0.0.1:5000"),  # the Host header, with its port
        ({"X-Forwarded-Port": "8080"}, "http://127.0.0.1:5000"),  # the Host's explicit port wins
        ({"X-Forwarded-Host": "[2001:db8::1]", "X-Forwarded-Port": "5443"}, "http://[2001:db8::1]:5443"),
        ({"X-Forwarded-Proto": "https", "X-Forwarded-Host": "[2001:DB8:0::1]:443"}, "https://[2001:db8::1]"),
    ],
)
def test_port_handling(forwarded: dict[str, str], expected: str) -> None:
    got = public_base_url(request({"Host": "127.0.0.1:5000", **forwarded}, forwarding=trusting("127.0.0.0/8")))
    assert got == expected


def test_without_forwarding_the_request_itself() -> None:
    assert public_base_url(request({"Host": "[::1]:5000"}, peer="::1")) == "http://[::1]:5000"
    assert public_base_url(request({"Host": "r.example:443"}, secure=True)) == "https://r.example"
    assert public_base_url(request({"Host": "r.example"})) == "http://r.example"
    # No usable Host header: the address the request came in on, never the header's junk.
    assert public_base_url(request({"Host": "bad host\"x"})) == "http://127.0.0.1:5000"


# ---- the public URL (http.host, --public-url) ----


def test_public_url_wins_over_everything() -> None:
    forwarding = trusting("127.0.0.1", public_url="https://registry.example.com:5043/")
    got = public_base_url(request({"Host": "127.0.0.1:5000", **FORWARDED}, forwarding=forwarding))
    assert got == "https://registry.example.com:5043"
    untrusted = trusting(public_url="http://[2001:db8::7]:80")
    assert public_base_url(request({"Host": "127.0.0.1:5000", **FORWARDED}, forwarding=untrusted)) == "http://[2001:db8::7]"


@pytest.mark.parametrize("text", ["registry.example.com", "ftp://r.example", "https://r.example/prefix", "https://", "https://u:p@r.example", "https://r.example:99999"])
def test_bad_public_urls_are_refused(text: str) -> None:
    with pytest.raises(ForwardingError):
        parse_public_url(text)


def test_serve_refuses_bad_values(tmp_path: pathlib.Path) -> None:
    for option, value in (("--trusted-proxy", "nope"), ("--public-url", "registry.example.com"), ("--prefix", "/a b")):
        result = CliRunner().invoke(main, ["serve", "--insecure-http", "--root", str(tmp_path / "root"), "--addr", "127.0.0.1:0", option, value])
        assert result.exit_code != 0
        assert option in result.output, result.output


# ---- the realm of a real server ----


def token_app(tmp_path: pathlib.Path, forwarding: Forwarding | None) -> web.Application:
    access, tokens = AuthSettings(token_auth=True, signing_key=tmp_path / "token-signing.key").build()
    registry = Registry(FilesystemDriver(tmp_path / "root"))
    return create_app(registry, access=access, token_service=tokens, forwarding=forwarding)


def realm_of(response) -> str:
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer "), challenge
    return dict(re.findall(r'(\w+)="([^"]*)"', challenge))["realm"]


async def test_realm_ignores_forwarded_headers_from_an_untrusted_peer(aiohttp_client, tmp_path: pathlib.Path) -> None:
    client = await aiohttp_client(token_app(tmp_path, trusting("10.0.0.0/8")))
    response = await client.get("/v2/", headers=FORWARDED)
    assert response.status == 401
    assert realm_of(response) == f"http://127.0.0.1:{client.server.port}/auth/token"


async def test_realm_follows_a_trusted_proxy(aiohttp_client, tmp_path: pathlib.Path) -> None:
    client = await aiohttp_client(token_app(tmp_path, trusting("127.0.0.1/32")))
    response = await client.get("/v2/", headers={**FORWARDED, "X-Forwarded-Port": "5043"})
    assert response.status == 401
    assert realm_of(response) == "https://registry.example.com:5043/auth/token"
    response = await client.get("/v2/some/repo/tags/list", headers=FORWARDED)
    assert response.status == 401
    assert realm_of(response) == "https://registry.example.com/auth/token"


async def test_realm_uses_the_public_url(aiohttp_client, tmp_path: pathlib.Path) -> None:
    client = await aiohttp_client(token_app(tmp_path, trusting("127.0.0.1/32", public_url="https://[2001:db8::5]:8443")))
    response = await client.get("/v2/", headers=FORWARDED)
    assert realm_of(response) == "https://[2001:db8::5]:8443/auth/token"


async def test_locations_stay_relative_behind_a_trusted_proxy(aiohttp_client, tmp_path: pathlib.Path) -> None:
    app = create_app(Registry(FilesystemDriver(tmp_path / "root")), forwarding=trusting("127.0.0.1/32", public_url="https://r.example"))
    client = await aiohttp_client(app)
    started = await client.post("/v2/forwarded/blobs/uploads/", headers=FORWARDED)
    assert started.status == 202
    assert started.headers["Location"].startswith("/v2/forwarded/blobs/uploads/")
    digest = await push_blob(client, "forwarded", b"relative\n")
    response = await client.head(f"/v2/forwarded/blobs/{digest}", headers=FORWARDED)
    assert response.status == 200
