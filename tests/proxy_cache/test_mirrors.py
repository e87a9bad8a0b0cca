"""``dockyard.mirrors``: two upstreams (Dockyards asking for Bearer tokens) cached under two prefixes
of one Dockyard that is otherwise an ordinary registry; routed by prefix and by containerd's ``ns``."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from dockyard.proxy.cache import PullThroughCache
from dockyard.proxy.mirrors import Mirrors
from dockyard.proxy.upstream import UpstreamClient
from dockyard.reference import parse_digest
from dockyard.storage import paths
from dockyard.storage.inmemory import InMemoryDriver
from dockyard.storage.registry import Registry
from tests.support.auth import USERS, write_htpasswd
from tests.support.clients import Skopeo, layout_entry
from tests.support.images import single_image_layout
from tests.support.registry_client import push_image
from tests.support.server import DockyardProcess

StartServer = Callable[..., DockyardProcess]
USER = "writer"


@dataclass(frozen=True)
class Mirrored:
    mirror: DockyardProcess
    hub_digest: str  # of team/app:v1 on the upstream cached under docker.io
    ghcr_digest: str  # of team/app:v1, another image, on the one cached under ghcr.io


@pytest.fixture
def mirrored(skopeo: Skopeo, start_server: StartServer, tmp_path: pathlib.Path) -> Mirrored:
    htpasswd = str(write_htpasswd(tmp_path / "htpasswd"))
    digests = []
    upstreams = []
    for root in ("hub", "ghcr"):
        upstream = start_server("--token-auth", "--htpasswd", htpasswd, root=root)
        source = tmp_path / f"{root}-source"
        digests.append(single_image_layout(source, "v1", seed=root)["digest"])
        skopeo("copy", "--dest-tls-verify=false", "--dest-creds", f"{USER}:{USERS[USER]}", f"oci:{source}:v1", f"docker://{upstream.host}/team/app:v1")
        upstreams.append(upstream)
    password_file = tmp_path / "ghcr-password"
    password_file.write_text(USERS[USER] + "\n")
    config = tmp_path / "mirror.yml"
    config.write_text(json.dumps({
        "version": "0.1",
        "storage": {"filesystem": {"rootdirectory": str(tmp_path / "mirror")}},
        "dockyard": {"mirrors": [
            {"prefix": "docker.io", "remoteurl": upstreams[0].url, "username": USER, "password": USERS[USER]},
            {"prefix": "ghcr.io/", "remoteurl": upstreams[1].url, "username": USER, "password_file": str(password_file)},
        ]},
    }))
    return Mirrored(start_server("--config", str(config), root="mirror"), *digests)


def stored(root: pathlib.Path, storage_path: str) -> pathlib.Path:
    return root / storage_path.lstrip("/")


@pytest.mark.slow
def test_skopeo_pulls_through_each_prefix_from_its_upstream(mirrored: Mirrored, skopeo: Skopeo, tmp_path: pathlib.Path) -> None:
    mirror = mirrored.mirror
    for prefix, digest in (("docker.io", mirrored.hub_digest), ("ghcr.io", mirrored.ghcr_digest)):
        copied = tmp_path / f"copied-{prefix}"
        skopeo("copy", "--src-tls-verify=false", f"docker://{mirror.host}/{prefix}/team/app:v1", f"oci:{copied}:v1")
        assert layout_entry(copied, "v1")["digest"] == digest
        assert stored(mirror.root, paths.revision_link(f"{prefix}/team/app", parse_digest(digest))).exists()
    assert not stored(mirror.root, paths.repository("team/app")).exists()


@pytest.mark.slow
def test_containerd_ns_routes_to_the_mirror_of_that_host(mirrored: Mirrored) -> None:
    mirror = mirrored.mirror
    with httpx.Client(base_url=mirror.url, timeout=60) as client:
        for ns, digest in (("docker.io", mirrored.hub_digest), ("ghcr.io", mirrored.ghcr_digest)):
            pulled = client.get("/v2/team/app/manifests/v1", params={"ns": ns})
            assert pulled.status_code == 200, pulled.text
            assert pulled.headers["Docker-Content-Digest"] == digest
            layer = json.loads(pulled.content)["layers"][0]["digest"]
            blob = client.get(f"/v2/team/app/blobs/{layer}", params={"ns": ns})
            assert blob.status_code == 200, blob.text
            # One repository, whichever way it is asked for.
            assert stored(mirror.root, paths.revision_link(f"{ns}/team/app", parse_digest(digest))).exists()
            assert client.get(f"/v2/{ns}/team/app/blobs/{layer}").content == blob.content
        # No ns, or one no mirror has: an ordinary local repository, which holds nothing.
        for params in ({}, {"ns": "quay.io"}):
            local = client.get("/v2/team/app/manifests/v1", params=params)
            assert local.status_code == 404, local.text
            assert local.json()["errors"][0]["code"] in ("NAME_UNKNOWN", "MANIFEST_UNKNOWN")


@pytest.mark.slow
def test_pushes_under_a_prefix_are_refused_and_others_accepted(mirrored: Mirrored) -> None:
    mirror = mirrored.mirror
    with httpx.Client(base_url=mirror.url, timeout=60) as client:
        for method, path, params in [
            ("POST", "/v2/docker.io/team/app/blobs/uploads/", {}),
            ("PUT", "/v2/ghcr.io/team/app/manifests/v2", {}),
            ("DELETE", f"/v2/docker.io/team/app/manifests/{mirrored.hub_digest}", {}),
            ("POST", "/v2/team/app/blobs/uploads/", {"ns": "docker.io"}),
            ("PUT", "/v2/team/app/manifests/v2", {"ns": "ghcr.io"}),
        ]:
            refused = client.request(method, path, params=params, content=b"{}")
            assert refused.status_code == 405, (method, path, refused.text)
            assert refused.json()["errors"][0]["code"] == "UNSUPPORTED"
        assert not stored(mirror.root, paths.repository("ghcr.io/team/app")).exists()

        local_digest, _ = push_image(client, "team/app", "v1", seed="local")
        assert client.get("/v2/team/app/manifests/v1").headers["Docker-Content-Digest"] == local_digest
        assert client.get("/v2/team/app/manifests/v1", params={"ns": "docker.io"}).headers["Docker-Content-Digest"] == mirrored.hub_digest
        # A name that only starts like a prefix is local too.
        push_image(client, "docker.iox/app", "v1")


async def test_routes_by_prefix_and_ns() -> None:
    registry = Registry(InMemoryDriver())
    hub = PullThroughCache(registry, UpstreamClient("https://hub.example"), 3600.0, 60.0, "docker.io")
    kept = PullThroughCache(registry, UpstreamClient("https://ghcr.example"), 0.0, 60.0, "ghcr.io")
    mirrors = Mirrors([hub, kept])
    try:
        route = mirrors.cache_for("docker.io/library/alpine")
        assert route is not None and (route.cache, route.repository, route.upstream_name) == (hub, "docker.io/library/alpine", "library/alpine")
        route = mirrors.cache_for("library/alpine", "docker.io")
        assert route is not None and (route.cache, route.repository, route.upstream_name) == (hub, "docker.io/library/alpine", "library/alpine")
        route = mirrors.cache_for("ghcr.io/owner/tool", "docker.io")  # the name's prefix wins over ns
        assert route is not None and (route.cache, route.upstream_name) == (kept, "owner/tool")
        assert mirrors.cache_for("library/alpine") is None
        assert mirrors.cache_for("docker.io") is None
        assert mirrors.cache_for("docker.iox/app", "quay.io") is None
    finally:
        await mirrors.close()
