"""registry:2's ``proxy`` section: a Dockyard mirroring another Dockyard that asks for Bearer tokens
(as Docker Hub does), pulled from by real clients; one upstream fetch per blob however many ask;
what is cached served when the upstream is gone; nothing stored from a corrupt upstream."""

from __future__ import annotations

import concurrent.futures
import json
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from aiohttp import web

from dockyard.reference import parse_digest
from dockyard.storage import paths
from tests.support.auth import USERS, write_htpasswd
from tests.support.clients import Containerd, Podman, Skopeo, StartDockerd, layout_blob, layout_entry
from tests.support.images import OCI_MANIFEST, single_image_layout
from tests.support.registry_client import push_image, sha256
from tests.support.seaweedfs import SeaweedFS
from tests.support.server import DockyardProcess

pytestmark = pytest.mark.slow

StartServer = Callable[..., DockyardProcess]
NO_TLS = "--tls-verify=false"
USER = "writer"


def mirror_config(tmp_path: pathlib.Path, remote_url: str, tag_check_interval: float = 60, ttl: str = "168h") -> pathlib.Path:
    """A registry:2 file with a proxy section (and Dockyard's own tag check interval); its scheduled
    collection runs hourly, so within a test only when the test runs it."""
    path = tmp_path / "mirror.yml"
    path.write_text(json.dumps({
        "version": "0.1",
        "storage": {"filesystem": {"rootdirectory": str(tmp_path / "mirror")}},
        "proxy": {"remoteurl": remote_url, "username": USER, "password": USERS[USER], "ttl": ttl},
        "dockyard": {"proxy": {"tag_check_interval": f"{tag_check_interval}s"}, "gc": {"interval": "1h"}},
    }))
    return path


@pytest.fixture
def upstream(start_server: StartServer, tmp_path: pathlib.Path) -> DockyardProcess:
    """A Dockyard that asks for Bearer tokens from its own token service, as Docker Hub does."""
    return start_server("--token-auth", "--htpasswd", str(write_htpasswd(tmp_path / "htpasswd")), root="upstream")


@pytest.fixture
def pusher(upstream: DockyardProcess) -> Iterator[Callable[[str], httpx.Client]]:
    """An HTTP client of the upstream holding a token to push to, pull from and delete in a repository."""
    clients: list[httpx.Client] = []

    def client(name: str) -> httpx.Client:
        answer = httpx.get(
            f"{upstream.url}/auth/token", params={"service": "dockyard", "scope": f"repository:{name}:pull,push,delete"},
            auth=(USER, USERS[USER]),
        )
        assert answer.status_code == 200, answer.text
        made = httpx.Client(base_url=upstream.url, headers={"Authorization": f"Bearer {answer.json()['token']}"}, timeout=60)
        clients.append(made)
        return made

    yield client
    for made in clients:
        made.close()


def mirror_of(
    start_server: StartServer, tmp_path: pathlib.Path, remote_url: str, tag_check_interval: float = 60, ttl: str = "168h",
) -> DockyardProcess:
    return start_server("--config", str(mirror_config(tmp_path, remote_url, tag_check_interval, ttl)), root="mirror")


def upstream_gets(upstream: DockyardProcess, path: str) -> int:
    """How many GETs of ``path`` the upstream answered with its content (its access log's lines; a 401 sends none)."""
    return sum(1 for line in upstream.log.read_text(errors="replace").splitlines() if f"GET {path} HTTP/1.1\" 200 " in line)


def stored(root: pathlib.Path, storage_path: str) -> pathlib.Path:
    return root / storage_path.lstrip("/")


# A client has a cold blob once its digest checks; the mirror moves it into place, links it and
# writes its pull time just after. A blob still not stored after this long fails the test.
STORE_WAIT_SECONDS = 30


def cached(root: pathlib.Path, storage_path: str) -> pathlib.Path:
    """``storage_path`` under ``root`` once it exists (the store that follows a client's last byte)."""
    path = stored(root, storage_path)
    deadline = time.monotonic() + STORE_WAIT_SECONDS
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return path


def test_skopeo_copies_an_image_through_the_mirror(
    skopeo: Skopeo, upstream: DockyardProcess, start_server: StartServer, tmp_path: pathlib.Path,
) -> None:
    source = tmp_path / "source"
    descriptor = single_image_layout(source, "v1", seed="mirrored")
    skopeo("copy", "--dest-tls-verify=false", "--dest-creds", f"{USER}:{USERS[USER]}", f"oci:{source}:v1", f"docker://{upstream.host}/team/app:v1")
    mirror = mirror_of(start_server, tmp_path, upstream.url)

    copied = tmp_path / "copied"
    skopeo("copy", "--src-tls-verify=false", f"docker://{mirror.host}/team/app:v1", f"oci:{copied}:v1")

    entry = layout_entry(copied, "v1")
    assert entry["digest"] == descriptor["digest"]
    manifest = layout_blob(copied, entry["digest"])
    assert manifest == layout_blob(source, descriptor["digest"])
    for blob in [json.loads(manifest)["config"], *json.loads(manifest)["layers"]]:
        assert layout_blob(copied, blob["digest"]) == layout_blob(source, blob["digest"])
        # Stored as if pushed, and its pull time written for expiry.
        digest = parse_digest(blob["digest"])
        assert cached(mirror.root, paths.blob_data(digest)).read_bytes() == layout_blob(source, blob["digest"])
        assert cached(mirror.root, paths.proxy_blob_pulled(digest)).exists()
    assert stored(mirror.root, paths.proxy_manifest_pulled("team/app", parse_digest(descriptor["digest"]))).exists()


def test_podman_pulls_through_a_registry_mirror(
    podman: Podman, skopeo: Skopeo, upstream: DockyardProcess, start_server: StartServer, tmp_path: pathlib.Path,
) -> None:
    source = tmp_path / "source"
    descriptor = single_image_layout(source, "v1", seed="podman-mirror")
    skopeo("copy", "--dest-tls-verify=false", "--dest-creds", f"{USER}:{USERS[USER]}", f"oci:{source}:v1", f"docker://{upstream.host}/team/podman:v1")
    mirror = mirror_of(start_server, tmp_path, upstream.url)
    conf = tmp_path / "registries.conf"
    # The upstream is named but never reached by podman: it holds no credentials for it.
    conf.write_text(
        f'[[registry]]\nlocation = "{upstream.host}"\ninsecure = true\n'
        f'[[registry.mirror]]\nlocation = "{mirror.host}"\ninsecure = true\n'
    )

    podman("pull", f"{upstream.host}/team/podman:v1", registries_conf=conf)

    inspected = json.loads(podman("image", "inspect", f"{upstream.host}/team/podman:v1").stdout)
    assert inspected[0]["Digest"] == descriptor["digest"]
    assert stored(mirror.root, paths.revision_link("team/podman", parse_digest(descriptor["digest"]))).exists()


def test_docker_pulls_a_docker_hub_name_through_its_registry_mirrors(
    start_dockerd: StartDockerd, skopeo: Skopeo, upstream: DockyardProcess, start_server: StartServer, tmp_path: pathlib.Path,
) -> None:
    source = tmp_path / "source"
    descriptor = single_image_layout(source, "v1", seed="docker-mirror")
    config = json.loads(layout_blob(source, descriptor["digest"]))["config"]["digest"]
    # docker asks a mirror only for Docker Hub's names: the upstream stands in for Docker Hub's library/.
    skopeo("copy", "--dest-tls-verify=false", "--dest-creds", f"{USER}:{USERS[USER]}", f"oci:{source}:v1", f"docker://{upstream.host}/library/dockyard-mirrored:v1")
    mirror = mirror_of(start_server, tmp_path, upstream.url)
    # dockerd holds no credentials for anything: only the mirror's own ones reach the upstream.
    docker = start_dockerd({"registry-mirrors": [mirror.url]})

    docker("pull", "dockyard-mirrored:v1")

    pulled = json.loads(docker("image", "inspect", "dockyard-mirrored:v1").stdout)[0]
    assert pulled["RepoDigests"] == [f"dockyard-mirrored@{descriptor['digest']}"]
    assert pulled["Id"] == config
    assert stored(mirror.root, paths.revision_link("library/dockyard-mirrored", parse_digest(descriptor["digest"]))).exists()
    assert cached(mirror.root, paths.blob_data(parse_digest(config))).exists()


def test_containerd_pulls_through_the_mirror_its_hosts_toml_names(
    containerd: Containerd, skopeo: Skopeo, upstream: DockyardProcess, start_server: StartServer, tmp_path: pathlib.Path,
) -> None:
    source = tmp_path / "source"
    descriptor = single_image_layout(source, "v1", seed="containerd-mirror")
    manifest = json.loads(layout_blob(source, descriptor["digest"]))
    skopeo("copy", "--dest-tls-verify=false", "--dest-creds", f"{USER}:{USERS[USER]}", f"oci:{source}:v1", f"docker://{upstream.host}/team/ctr:v1")
    mirror = mirror_of(start_server, tmp_path, upstream.url)
    hosts = tmp_path / "hosts"
    (hosts / upstream.host).mkdir(parents=True)
    # ctr holds no credentials for the upstream: the mirror pulls with its own.
    (hosts / upstream.host / "hosts.toml").write_text(
        f'server = "{upstream.url}"\n[host."{mirror.url}"]\ncapabilities = ["pull", "resolve"]\n'
    )
    reference = f"{upstream.host}/team/ctr:v1"

    containerd("images", "pull", "--hosts-dir", hosts, "--snapshotter", "native", reference)

    listed = containerd("images", "list").stdout
    assert any(line.split()[:1] == [reference] and descriptor["digest"] in line.split() for line in listed.splitlines()), listed
    for blob in [manifest["config"], *manifest["layers"]]:
        assert cached(mirror.root, paths.blob_data(parse_digest(blob["digest"]))).read_bytes() == layout_blob(source, blob["digest"])
    # Every request named the upstream in containerd's ns parameter.
    requests = [line for line in mirror.log.read_text(errors="replace").splitlines() if '"GET /v2/team/ctr/' in line or '"HEAD /v2/team/ctr/' in line]
    assert requests and all(f"ns={upstream.host}" in line for line in requests), requests


def test_concurrent_first_pulls_fetch_each_blob_once(
    upstream: DockyardProcess, pusher: Callable[[str], httpx.Client], start_server: StartServer, tmp_path: pathlib.Path,
) -> None:
    mirror = mirror_of(start_server, tmp_path, upstream.url)
    client = pusher("team/big")
    for attempt in range(3):
        layer = os.urandom(8 << 20)
        push_image(client, "team/big", f"v{attempt}", layer)
        digest = sha256(layer)

        def pull(_: int, digest: str = digest) -> bytes:
            answer = httpx.get(f"{mirror.url}/v2/team/big/blobs/{digest}", timeout=120)
            assert answer.status_code == 200, answer.text
            return answer.content

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            bodies = list(pool.map(pull, range(8)))

        assert all(body == layer for body in bodies)
        assert upstream_gets(upstream, f"/v2/team/big/blobs/{digest}") == 1
        assert cached(mirror.root, paths.blob_data(parse_digest(digest))).read_bytes() == layer


def test_cached_tag_and_blob_are_served_with_the_upstream_stopped(
    upstream: DockyardProcess, pusher: Callable[[str], httpx.Client], start_server: StartServer, tmp_path: pathlib.Path,
) -> None:
    layer = os.urandom(1 << 20)
    digest, _ = push_image(pusher("team/app"), "team/app", "v1", layer)
    # Every pull asks the upstream again: only its absence makes the mirror serve the cached tag.
    mirror = mirror_of(start_server, tmp_path, upstream.url, tag_check_interval=0)
    first = httpx.get(f"{mirror.url}/v2/team/app/manifests/v1")
    assert first.status_code == 200, first.text
    assert httpx.get(f"{mirror.url}/v2/team/app/blobs/{sha256(layer)}").content == layer

    upstream.stop()

    again = httpx.get(f"{mirror.url}/v2/team/app/manifests/v1")
    assert again.status_code == 200, again.text
    assert again.headers["Docker-Content-Digest"] == digest
    assert again.content == first.content
    assert httpx.get(f"{mirror.url}/v2/team/app/blobs/{sha256(layer)}").content == layer
    # What was never pulled is unavailable, not unknown.
    missing = httpx.get(f"{mirror.url}/v2/team/app/manifests/v2")
    assert missing.status_code == 503, missing.text
    assert missing.json()["errors"][0]["code"] == "UNAVAILABLE"


def test_the_upstream_stopped_mid_pull_then_back(
    upstream: DockyardProcess, pusher: Callable[[str], httpx.Client], start_server: StartServer, tmp_path: pathlib.Path,
) -> None:
    """The upstream dies between a client's manifest and its blobs: the blob is unavailable (503, a
    clear error), nothing is stored or left half written; once the upstream is back the pull goes on."""
    layer = os.urandom(4 << 20)
    digest, _ = push_image(pusher("team/app"), "team/app", "v1", layer)
    mirror = mirror_of(start_server, tmp_path, upstream.url)
    assert httpx.get(f"{mirror.url}/v2/team/app/manifests/v1").status_code == 200
    assert upstream.process is not None
    upstream.process.kill()  # no drain: gone at once, as a crashed or unplugged upstream
    upstream.process.wait()
    upstream.process = None

    blob = httpx.get(f"{mirror.url}/v2/team/app/blobs/{sha256(layer)}", timeout=60)
    assert blob.status_code == 503, blob.text
    assert blob.json()["errors"][0]["code"] == "UNAVAILABLE"
    assert not stored(mirror.root, paths.blob_data(parse_digest(sha256(layer)))).exists()
    downloads = stored(mirror.root, paths.PROXY_DOWNLOADS)
    assert not downloads.exists() or not list(downloads.iterdir())

    upstream.start()  # the same port and root
    again = httpx.get(f"{mirror.url}/v2/team/app/blobs/{sha256(layer)}", timeout=60)
    assert again.status_code == 200 and again.content == layer
    assert cached(mirror.root, paths.blob_data(parse_digest(sha256(layer)))).read_bytes() == layer


def test_a_tag_the_upstream_removed_is_unknown(
    upstream: DockyardProcess, pusher: Callable[[str], httpx.Client], start_server: StartServer, tmp_path: pathlib.Path,
) -> None:
    client = pusher("team/app")
    push_image(client, "team/app", "v1")
    mirror = mirror_of(start_server, tmp_path, upstream.url, tag_check_interval=0)
    assert httpx.get(f"{mirror.url}/v2/team/app/manifests/v1").status_code == 200

    assert client.delete("/v2/team/app/manifests/v1").status_code == 202

    gone = httpx.get(f"{mirror.url}/v2/team/app/manifests/v1")
    assert gone.status_code == 404, gone.text
    assert gone.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def test_tags_are_the_upstreams_paginated_and_the_cached_ones_when_it_is_down(
    upstream: DockyardProcess, pusher: Callable[[str], httpx.Client], start_server: StartServer, tmp_path: pathlib.Path,
) -> None:
    client = pusher("team/app")
    for tag in ("v1", "v2", "v3"):
        push_image(client, "team/app", tag, seed=tag)
    mirror = mirror_of(start_server, tmp_path, upstream.url)
    with httpx.Client(base_url=mirror.url, timeout=60) as api:
        assert api.get("/v2/team/app/manifests/v1").status_code == 200
        # containerd adds ?ns= to every request: the list is the same.
        listed = api.get("/v2/team/app/tags/list", params={"ns": upstream.host})
        assert listed.status_code == 200, listed.text
        assert listed.json() == {"name": "team/app", "tags": ["v1", "v2", "v3"]}

        first = api.get("/v2/team/app/tags/list", params={"n": 2})
        assert first.json()["tags"] == ["v1", "v2"]
        # The next page is the mirror's own URL, not the upstream's.
        link = first.headers["Link"]
        assert link.startswith("</v2/team/app/tags/list?") and link.endswith('>; rel="next"'), link
        second = api.get(link[1:link.index(">")])
        assert second.json() == {"name": "team/app", "tags": ["v3"]}
        assert "Link" not in second.headers

        unknown = api.get("/v2/team/nothing/tags/list")
        assert unknown.status_code == 404, unknown.text
        assert unknown.json()["errors"][0]["code"] == "NAME_UNKNOWN"
        invalid = api.get("/v2/team/app/tags/list", params={"n": "two"})
        assert invalid.status_code == 400, invalid.text
        assert invalid.json()["errors"][0]["code"] == "PAGINATION_NUMBER_INVALID"

        upstream.stop()

        cached = api.get("/v2/team/app/tags/list")
        assert cached.status_code == 200, cached.text
        assert cached.json() == {"name": "team/app", "tags": ["v1"]}
        never_pulled = api.get("/v2/team/other/tags/list")
        assert never_pulled.status_code == 503, never_pulled.text
        assert never_pulled.json()["errors"][0]["code"] == "UNAVAILABLE"
        # The catalog is what is cached, as registry:2 lists it.
        assert api.get("/v2/_catalog").json() == {"repositories": ["team/app"]}


def test_a_range_of_an_uncached_blob_is_served_from_the_one_fetch(
    upstream: DockyardProcess, pusher: Callable[[str], httpx.Client], start_server: StartServer, tmp_path: pathlib.Path,
) -> None:
    mirror = mirror_of(start_server, tmp_path, upstream.url)
    layer = os.urandom(4 << 20)
    push_image(pusher("team/app"), "team/app", "v1", layer)
    digest = sha256(layer)
    size = len(layer)

    def fetch(ranges: str) -> httpx.Response:
        return httpx.get(f"{mirror.url}/v2/team/app/blobs/{digest}", headers={"Range": ranges}, timeout=120)

    # Several ranges asked at once of a blob not yet cached: one fetch serves them all.
    single = {
        "bytes=100-199": (100, 199),
        "bytes=-10": (size - 10, size - 1),
        "bytes=0-0": (0, 0),
        f"bytes={size - 5}-": (size - 5, size - 1),
    }
    multiple = "bytes=1000-1999,3000-3099"
    asked = [*single, multiple] * 2
    with concurrent.futures.ThreadPoolExecutor(len(asked)) as pool:
        answers = list(pool.map(fetch, asked))

    for header, answer in zip(asked, answers, strict=True):
        assert answer.status_code == 206, (header, answer.status_code)
        assert int(answer.headers["Content-Length"]) == len(answer.content)
        if header == multiple:
            assert answer.headers["Content-Type"].startswith("multipart/byteranges; boundary=")
            assert layer[1000:2000] in answer.content and layer[3000:3100] in answer.content
            continue
        first, last = single[header]
        assert answer.headers["Content-Range"] == f"bytes {first}-{last}/{size}"
        assert answer.content == layer[first:last + 1]
    assert upstream_gets(upstream, f"/v2/team/app/blobs/{digest}") == 1
    assert cached(mirror.root, paths.blob_data(parse_digest(digest))).read_bytes() == layer


BLOB = os.urandom(300 << 10)
BLOB_DIGEST = sha256(BLOB)


def corrupt_upstream(kind: str) -> web.Application:
    """An upstream that serves a blob wrong: other bytes of the same length, or half of them."""

    async def blob(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Docker-Content-Digest": BLOB_DIGEST})
        response.content_length = len(BLOB)
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        if kind == "wrong bytes":
            await response.write(bytes(reversed(BLOB)))
            await response.write_eof()
        else:
            await response.write(BLOB[: len(BLOB) // 2])
            assert request.transport is not None
            request.transport.close()
        return response

    app = web.Application()
    app.router.add_route("*", "/v2/team/app/blobs/{digest}", blob)
    return app


@pytest.mark.parametrize("kind", ["wrong bytes", "cut short"])
async def test_a_corrupt_upstream_blob_is_never_stored(kind: str, start_server: StartServer, tmp_path: pathlib.Path) -> None:
    runner = web.AppRunner(corrupt_upstream(kind))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        mirror = mirror_of(start_server, tmp_path, f"http://127.0.0.1:{port}")
        async with httpx.AsyncClient(base_url=mirror.url, timeout=60) as client:
            for _ in range(3):
                with pytest.raises(httpx.RemoteProtocolError):
                    await client.get(f"/v2/team/app/blobs/{BLOB_DIGEST}")
            # A range's last byte waits for the digest check too: a wrong range is never whole.
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get(f"/v2/team/app/blobs/{BLOB_DIGEST}", headers={"Range": "bytes=0-99"})
        digest = parse_digest(BLOB_DIGEST)
        assert not stored(mirror.root, paths.blob_dir(digest)).exists()
        assert not stored(mirror.root, paths.layer_dir("team/app", digest)).exists()
        assert not list(stored(mirror.root, paths.proxy_download("x")).parent.glob("*"))
    finally:
        await runner.cleanup()


def test_writes_are_refused_and_containerd_ns_is_ignored(
    upstream: DockyardProcess, pusher: Callable[[str], httpx.Client], start_server: StartServer, tmp_path: pathlib.Path,
) -> None:
    digest, _ = push_image(pusher("team/app"), "team/app", "v1")
    mirror = mirror_of(start_server, tmp_path, upstream.url)
    ns = {"ns": upstream.host}
    with httpx.Client(base_url=mirror.url, timeout=60) as client:
        assert client.get("/v2/", params=ns).status_code == 200
        pulled = client.get("/v2/team/app/manifests/v1", params=ns)
        assert pulled.status_code == 200, pulled.text
        assert pulled.headers["Docker-Content-Digest"] == digest
        for method, path in [
            ("POST", "/v2/team/app/blobs/uploads/"),
            ("PUT", "/v2/team/app/manifests/v2"),
            ("DELETE", f"/v2/team/app/manifests/{digest}"),
            ("DELETE", "/v2/team/app/manifests/v1"),
        ]:
            refused = client.request(method, path, params=ns, content=b"{}")
            assert refused.status_code == 405, (method, path, refused.text)
            assert refused.json()["errors"][0]["code"] == "UNSUPPORTED"
        assert client.get("/v2/team/app/manifests/v1").headers["Docker-Content-Digest"] == digest
    assert not stored(mirror.root, paths.tags("team/app") + "/v2").exists()


async def test_the_upstreams_429_and_retry_after_reach_the_client(start_server: StartServer, tmp_path: pathlib.Path) -> None:
    asked: list[str] = []

    async def slow_down(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.Response(status=429, headers={"Retry-After": "17"})

    app = web.Application()
    app.router.add_route("*", "/v2/{tail:.*}", slow_down)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        mirror = mirror_of(start_server, tmp_path, f"http://127.0.0.1:{runner.addresses[0][1]}")
        async with httpx.AsyncClient(base_url=mirror.url, timeout=60) as client:
            for path in ("/v2/team/app/manifests/v1", f"/v2/team/app/blobs/{BLOB_DIGEST}"):
                answer = await client.get(path)
                assert answer.status_code == 429, answer.text
                assert answer.headers["Retry-After"] == "17"
                assert answer.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
        assert asked == ["/v2/team/app/manifests/v1", f"/v2/team/app/blobs/{BLOB_DIGEST}"]  # asked once each, never again at once
    finally:
        await runner.cleanup()


def pull_image(mirror: DockyardProcess, name: str, tag: str) -> dict[str, bytes]:
    """The manifest and every blob of ``name:tag`` through the mirror, by digest."""
    with httpx.Client(base_url=mirror.url, timeout=60) as client:
        manifest = client.get(f"/v2/{name}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
        assert manifest.status_code == 200, manifest.text
        pulled = {manifest.headers["Docker-Content-Digest"]: manifest.content}
        document = manifest.json()
        for blob in [document["config"], *document["layers"]]:
            answer = client.get(f"/v2/{name}/blobs/{blob['digest']}")
            assert answer.status_code == 200, answer.text
            assert sha256(answer.content) == blob["digest"]
            pulled[blob["digest"]] = answer.content
    return pulled


def blob_bytes(root: pathlib.Path) -> int:
    return sum(path.stat().st_size for path in stored(root, paths.BLOBS).rglob("*") if path.is_file())


TTL_SECONDS = 6


def test_gc_expires_an_image_not_pulled_within_the_ttl_and_keeps_a_shared_layer(
    upstream: DockyardProcess, pusher: Callable[[str], httpx.Client], start_server: StartServer, tmp_path: pathlib.Path,
) -> None:
    shared = os.urandom(1 << 20)
    push_image(pusher("team/a"), "team/a", "v1", shared, seed="only in a")
    push_image(pusher("team/b"), "team/b", "v1", shared, seed="only in b")
    mirror = mirror_of(start_server, tmp_path, upstream.url, ttl=f"{TTL_SECONDS}s")
    image_a = pull_image(mirror, "team/a", "v1")
    time.sleep(TTL_SECONDS + 1)
    image_b = pull_image(mirror, "team/b", "v1")  # within the TTL when the collection starts
    only_a = set(image_a) - set(image_b)
    assert len(only_a) == 2 and sha256(shared) in image_b  # A's manifest and config; the layer is shared
    before = blob_bytes(mirror.root)

    collected = subprocess.run(
        [sys.executable, "-m", "dockyard", "gc", "--config", str(tmp_path / "mirror.yml"), "--grace-period", "0s"],
        capture_output=True, text=True, timeout=120, check=False,
    )

    assert collected.returncode == 0, collected.stderr
    assert "untagged team/a:v1" in collected.stdout
    for digest in only_a:
        assert not stored(mirror.root, paths.blob_data(parse_digest(digest))).exists()
    assert blob_bytes(mirror.root) == before - sum(len(image_a[digest]) for digest in only_a)
    assert not stored(mirror.root, paths.tag("team/a", "v1")).exists()
    # B and the layer it shares with A stay whole, served from the cache.
    for digest, content in image_b.items():
        assert cached(mirror.root, paths.blob_data(parse_digest(digest))).read_bytes() == content
    assert pull_image(mirror, "team/b", "v1") == image_b
    # An expired image is fetched again on its next pull, as registry:2 does; the shared layer is not.
    assert pull_image(mirror, "team/a", "v1") == image_a
    assert upstream_gets(upstream, "/v2/team/a/manifests/v1") == 2
    assert upstream_gets(upstream, f"/v2/team/a/blobs/{sha256(shared)}") == 1


@pytest.mark.parametrize("storage", ["filesystem", pytest.param("s3", marks=pytest.mark.s3)])
def test_gc_expires_a_cached_image_and_keeps_the_local_one_sharing_its_layer(
    upstream: DockyardProcess, pusher: Callable[[str], httpx.Client], start_server: StartServer, tmp_path: pathlib.Path,
    storage: str, request: pytest.FixtureRequest,
) -> None:
    """Several upstreams (dockyard.mirrors): beside the cache under ``hub/``, the registry takes pushes;
    a local image pushed with a layer the expired cached image has keeps it. On the filesystem and on
    S3: pull times are kept in storage, nowhere else."""
    shared = os.urandom(1 << 20)
    push_image(pusher("team/a"), "team/a", "v1", shared, seed="only in a")
    if storage == "s3":
        seaweedfs: SeaweedFS = request.getfixturevalue("seaweedfs")
        bucket = seaweedfs.create_bucket()
        section: dict[str, object] = {"s3": seaweedfs.storage_config(bucket, "/mirror"), "redirect": {"disable": True}}

        def has_blob(digest: str) -> bool:
            listed = seaweedfs.client().list_objects_v2(Bucket=bucket, Prefix="mirror" + paths.blob_data(parse_digest(digest)))
            return bool(listed.get("Contents"))
    else:
        section = {"filesystem": {"rootdirectory": str(tmp_path / "mirror")}}

        def has_blob(digest: str) -> bool:
            return stored(tmp_path / "mirror", paths.blob_data(parse_digest(digest))).exists()
    config = tmp_path / "mirrors.yml"
    config.write_text(json.dumps({
        "version": "0.1",
        "storage": section,
        # The server's own collection hourly, as in mirror_config: else it runs every TTL and may expire
        # the image between the sleep below and the collection this test runs.
        "dockyard": {
            "mirrors": [{"prefix": "hub", "remoteurl": upstream.url, "username": USER, "password": USERS[USER], "ttl": f"{TTL_SECONDS}s"}],
            "gc": {"interval": "1h"},
        },
    }))
    mirror = start_server("--config", str(config), root="mirror")
    cached = pull_image(mirror, "hub/team/a", "v1")
    with httpx.Client(base_url=mirror.url, timeout=60) as client:
        push_image(client, "local/app", "v1", shared, seed="only local")
    local = pull_image(mirror, "local/app", "v1")
    time.sleep(TTL_SECONDS + 1)  # the cached image ages past its TTL; the local one has none
    only_cached = set(cached) - set(local)
    assert len(only_cached) == 2 and sha256(shared) in local
    assert all(has_blob(digest) for digest in cached)

    collected = subprocess.run(
        [sys.executable, "-m", "dockyard", "gc", "--config", str(config), "--grace-period", "0s"],
        capture_output=True, text=True, timeout=120, check=False,
    )

    assert collected.returncode == 0, collected.stderr
    assert "untagged hub/team/a:v1" in collected.stdout
    assert not any(has_blob(digest) for digest in only_cached)
    assert all(has_blob(digest) for digest in local)
    assert pull_image(mirror, "local/app", "v1") == local
