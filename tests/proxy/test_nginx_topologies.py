"""Real nginx, configured by ``dockyard proxy-config nginx``, in front of a real Dockyard.

Two topologies, each pushing and pulling an image with a 300 MiB layer through
nginx with skopeo (verifying nginx's certificate, never tls-verify=false):

1. TLS and Basic authentication at nginx; plain HTTP to Dockyard, which has no auth.
2. TLS at nginx and TLS again to Dockyard (nginx verifies Dockyard's CA); the
   password is checked by Dockyard.

Everything listens on 127.0.0.1 with ephemeral ports and lives in temporary folders.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import httpx
import pytest

from tests.proxy import CHUNK, chunked_upload
from tests.proxy.topologies import PASSWORD, USER, BigImage, Topology, push_and_pull, start_topology
from tests.support.clients import Skopeo


@pytest.fixture
def auth_at_nginx(tmp_path: pathlib.Path) -> Iterator[Topology]:
    yield from start_topology(tmp_path, auth_at_proxy=True)


@pytest.fixture
def tls_to_dockyard(tmp_path: pathlib.Path) -> Iterator[Topology]:
    yield from start_topology(tmp_path, auth_at_proxy=False)


def assert_locations_stay_on_nginx(topology: Topology, big_image: BigImage, name: str) -> None:
    """The 300 MiB layer pushed through nginx in 10 MiB chunks: no Location points at Dockyard."""
    upstream = topology.dockyard.host
    nginx_base = topology.url + "/"

    def check(response: httpx.Response) -> str:
        location = response.headers["Location"]
        assert upstream not in location, (location, upstream)
        assert location.startswith("/") and not location.startswith("//") or location.startswith(nginx_base), location
        return location

    layer = topology_layer(big_image)
    with httpx.Client(base_url=topology.url, verify=topology.verify, auth=(USER, PASSWORD), timeout=120) as client:
        chunks = chunked_upload(client, name, layer, big_image.layer_digest, check)
        assert chunks == -(-layer.stat().st_size // CHUNK) and chunks >= 30
        head = client.head(f"/v2/{name}/blobs/{big_image.layer_digest}")
        assert head.status_code == 200 and int(head.headers["Content-Length"]) == layer.stat().st_size


def topology_layer(image: BigImage) -> pathlib.Path:
    return image.layout / "blobs" / "sha256" / image.layer_digest.split(":", 1)[1]


def api_version_headers(response: httpx.Response) -> list[str]:
    return response.headers.get_list("Docker-Distribution-Api-Version")


def test_tls_and_auth_at_nginx_plain_http_to_dockyard(
    auth_at_nginx: Topology, skopeo: Skopeo, big_image: BigImage, tmp_path: pathlib.Path
) -> None:
    topology = auth_at_nginx
    assert topology.dockyard.url.startswith("http://")
    with httpx.Client(base_url=topology.url, verify=topology.verify, timeout=60) as client:
        refused = client.get("/v2/")
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith("Basic ")
        assert api_version_headers(refused) == ["registry/2.0"]
        wrong = client.get("/v2/", auth=(USER, "wrong"))
        assert wrong.status_code == 401
        allowed = client.get("/v2/", auth=(USER, PASSWORD))
        assert allowed.status_code == 200
        assert api_version_headers(allowed) == ["registry/2.0"]  # once: Dockyard's, not doubled by nginx
        for ping in ("/_ping", "/v1/_ping"):
            assert client.get(ping).status_code == 200
    # Dockyard itself asks for nothing: nginx is the only gate.
    assert httpx.get(f"{topology.dockyard.url}/v2/", timeout=10).status_code == 200
    assert_locations_stay_on_nginx(topology, big_image, "proxy/auth-at-nginx")
    push_and_pull(skopeo, topology, big_image, tmp_path, "proxy/auth-at-nginx")


def test_tls_at_nginx_and_to_dockyard_auth_at_dockyard(
    tls_to_dockyard: Topology, skopeo: Skopeo, big_image: BigImage, tmp_path: pathlib.Path
) -> None:
    topology = tls_to_dockyard
    assert topology.dockyard.url.startswith("https://")
    with httpx.Client(base_url=topology.url, verify=topology.verify, timeout=60) as client:
        refused = client.get("/v2/")
        assert refused.status_code == 401  # Dockyard's answer, passed through
        assert refused.headers["WWW-Authenticate"].startswith("Basic ")
        allowed = client.get("/v2/", auth=(USER, PASSWORD))
        assert allowed.status_code == 200, allowed.text
        assert api_version_headers(allowed) == ["registry/2.0"]
    assert_locations_stay_on_nginx(topology, big_image, "proxy/tls-to-dockyard")
    push_and_pull(skopeo, topology, big_image, tmp_path, "proxy/tls-to-dockyard")
