"""Three ``dockyard serve`` processes on one storage, Redis as their shared cache, nginx round robin.

Each storage (a shared filesystem root; one SeaweedFS S3 bucket) gets one cluster for the
module: three replicas started from registry:2 config files (``http.secret``,
``storage.cache.blobdescriptor: redis``, ``redis.addr``) and Debian's nginx alternating
between them. The tests drive the replicas directly (httpx, skopeo) where a request must
reach a given replica, and nginx where round robin must be survived:

- skopeo pushes through one replica and pulls through another, byte for byte;
- a chunked upload whose requests each go to another replica, directly and through nginx;
- two replicas pushing the same blob, and the same tag, at once;
- two PATCHes of one upload at two replicas at once: one wins, the other gets 416;
- a replica killed (SIGKILL) mid-PATCH, the client resuming at another replica;
- a blob, a tag and a manifest deleted through one replica are gone at the others at once;
- a token from one replica is good at another, through ``http.secret`` alone.

Everything listens on 127.0.0.1 with ephemeral ports and lives in temporary folders.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import pathlib
import re
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis
from click.testing import CliRunner

from dockyard.cli import main
from tests.proxy import NGINX, NginxProcess, chunked_upload, nginx_test, write_nginx_conf
from tests.support.clients import Skopeo, layout_blob, layout_entry
from tests.support.images import OCI_MANIFEST, single_image_layout
from tests.support.plugin import storage_params
from tests.support.processes import children, free_port
from tests.support.redis import RedisProcess
from tests.support.registry_client import push_image, sha256
from tests.support.seaweedfs import SeaweedFS
from tests.support.server import DockyardProcess
from tests.support.tools import require_tool

pytestmark = pytest.mark.clients

SECRET = "replicas-share-this-secret-0123456789"
STORAGES = ["filesystem", "s3"]
MiB = 1024 * 1024


@dataclass
class Cluster:
    replicas: list[DockyardProcess]
    nginx: NginxProcess
    redis_db: int
    redis_addr: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.nginx.port}"

    def client(self, index: int) -> httpx.Client:
        return httpx.Client(base_url=self.replicas[index].url, timeout=120)

    def requests_served(self, method: str, path_part: str) -> list[int]:
        """How many ``METHOD ...path_part...`` requests each replica's access log shows."""
        pattern = re.compile(rf'"{method} [^"]*{re.escape(path_part)}')
        return [len(pattern.findall(replica.log.read_text(errors="replace"))) for replica in self.replicas]


def storage_section(storage: str, tmp: pathlib.Path, request: pytest.FixtureRequest) -> dict[str, object]:
    if storage == "filesystem":
        return {"filesystem": {"rootdirectory": str(tmp / "shared-root")}}
    seaweedfs: SeaweedFS = request.getfixturevalue("seaweedfs")
    return {"s3": seaweedfs.storage_config(seaweedfs.create_bucket(), "/replicas")}


def write_config(path: pathlib.Path, storage: dict[str, object], redis_settings: dict[str, object] | None = None, **extra: object) -> pathlib.Path:
    """A registry:2 config.yml with ``http.secret``; with ``redis_settings``, Redis caches blob descriptors."""
    config = {
        "version": 0.1,
        # No redirects to S3: the tests are about what the replicas themselves answer.
        "storage": {**storage, "delete": {"enabled": True}, "redirect": {"disable": True}, "maintenance": {"uploadpurging": {"enabled": False}}},
        # Relative Locations, as behind a load balancer: an upload started at one replica goes on at any other.
        "http": {"addr": "127.0.0.1:0", "secret": SECRET, "relativeurls": True},
        **extra,
    }
    if redis_settings is not None:
        config["storage"]["cache"] = {"blobdescriptor": "redis"}  # type: ignore[index]
        config["redis"] = redis_settings
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return path


def start_replica(tmp: pathlib.Path, number: int, config: pathlib.Path, *args: str) -> DockyardProcess:
    # One root argument for all: for the filesystem it is the shared root the config names too.
    replica = DockyardProcess(tmp / "shared-root", "--config", str(config), "--tls-dir", str(tmp / f"tls-{number}"), *args)
    replica.log = tmp / f"replica-{number}.log"
    return replica.start()


def round_robin_nginx(tmp: pathlib.Path, replicas: list[DockyardProcess]) -> NginxProcess:
    """``dockyard proxy-config nginx`` for the first replica, with the others added to its upstream block."""
    port = free_port()
    options = ["--server-name", "127.0.0.1", "--listen", f"127.0.0.1:{port}", "--upstream", replicas[0].host]
    rendered = CliRunner().invoke(main, ["proxy-config", "nginx", *options])
    assert rendered.exit_code == 0, rendered.output
    first = f"    server {replicas[0].host};\n"
    assert rendered.output.count(first) == 1, rendered.output
    site = rendered.output.replace(first, "".join(f"    server {replica.host};\n" for replica in replicas))
    conf = write_nginx_conf(tmp / "nginx", site)
    checked = nginx_test(conf)
    assert checked.returncode == 0, checked.stderr
    return NginxProcess(conf, port).start()


@pytest.fixture(scope="module", params=storage_params(STORAGES))
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, redis_server: RedisProcess) -> Iterator[Cluster]:
    require_tool(NGINX)
    storage: str = request.param
    tmp = tmp_path_factory.mktemp(f"cluster-{storage}")
    redis_db = 1 + STORAGES.index(storage)
    redis.Redis(host="127.0.0.1", port=redis_server.port, db=redis_db).flushdb()
    config = write_config(tmp / "config.yml", storage_section(storage, tmp, request), {"addr": redis_server.addr, "db": redis_db})
    replicas: list[DockyardProcess] = []
    nginx = None
    try:
        for number in range(3):
            replicas.append(start_replica(tmp, number, config))
        nginx = round_robin_nginx(tmp, replicas)
        yield Cluster(replicas, nginx, redis_db, redis_server.addr)
    finally:
        if nginx is not None:
            nginx.stop()
        for replica in replicas:
            replica.stop()


def random_bytes(size: int) -> bytes:
    return os.urandom(size)


def location_of(response: httpx.Response) -> str:
    assert response.status_code in (201, 202, 204), (response.status_code, response.text)
    location = response.headers["Location"]
    assert location.startswith("/v2/"), location  # relative: good at any replica
    return location


def patch(client: httpx.Client, location: str, data: bytes, start: int) -> httpx.Response:
    return client.patch(location, content=data, headers={
        "Content-Type": "application/octet-stream", "Content-Range": f"{start}-{start + len(data) - 1}",
    })


def finish(client: httpx.Client, location: str, digest: str, data: bytes = b"") -> httpx.Response:
    separator = "&" if "?" in location else "?"
    return client.put(f"{location}{separator}digest={digest}", content=data, headers={"Content-Type": "application/octet-stream"})


def test_skopeo_pushes_through_one_replica_and_pulls_through_another(cluster: Cluster, skopeo: Skopeo, tmp_path: pathlib.Path) -> None:
    layout = tmp_path / "image"
    descriptor = single_image_layout(layout, tag="v1", seed="replicas", layer_bytes=3 * MiB)
    pushed_to, pulled_from = cluster.replicas[0].host, cluster.replicas[1].host
    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://{pushed_to}/replicas/skopeo:v1")
    back = tmp_path / "back"
    skopeo("copy", "--src-tls-verify=false", "--preserve-digests", f"docker://{pulled_from}/replicas/skopeo:v1", f"oci:{back}:v1")
    assert layout_entry(back, "v1")["digest"] == descriptor["digest"]
    manifest = json.loads(layout_blob(layout, descriptor["digest"]))
    for blob in [manifest["config"], *manifest["layers"]]:
        assert layout_blob(back, blob["digest"]) == layout_blob(layout, blob["digest"])


def test_chunked_upload_whose_requests_each_go_to_another_replica(cluster: Cluster) -> None:
    name = "replicas/chunked-direct"
    chunks = [random_bytes(6 * MiB), random_bytes(6 * MiB), random_bytes(5 * MiB + 1234)]
    data = b"".join(chunks)
    clients = [cluster.client(index) for index in range(3)]
    try:
        location = location_of(clients[0].post(f"/v2/{name}/blobs/uploads/"))
        offset = 0
        for number, chunk in enumerate(chunks):
            client = clients[(number + 1) % 3]
            patched = patch(client, location, chunk, offset)
            assert patched.status_code == 202, (number, patched.status_code, patched.text)
            offset += len(chunk)
            assert patched.headers["Range"] == f"0-{offset - 1}"
            location = location_of(patched)
            # A replica that did not take the chunk knows where the upload stands...
            status = clients[(number + 2) % 3].get(location)
            assert status.status_code == 204 and status.headers["Range"] == f"0-{offset - 1}"
            # ...and refuses a chunk that does not follow on.
            stale = patch(clients[(number + 2) % 3], location, b"x" * 10, max(offset - 10, 0))
            assert stale.status_code == 416 and stale.headers["Range"] == f"0-{offset - 1}"
        finished = finish(clients[1], location, sha256(data))
        assert finished.status_code == 201, finished.text
        for client in clients:
            fetched = client.get(f"/v2/{name}/blobs/{sha256(data)}")
            assert fetched.status_code == 200 and fetched.content == data
    finally:
        for client in clients:
            client.close()


def test_chunked_upload_through_round_robin_nginx(cluster: Cluster, tmp_path: pathlib.Path) -> None:
    name = "replicas/chunked-nginx"
    path = tmp_path / "blob"
    path.write_bytes(random_bytes(25 * MiB))  # three 10 MiB chunks: each to another replica
    digest = sha256(path.read_bytes())
    with httpx.Client(base_url=cluster.url, timeout=120) as client:
        chunked_upload(client, name, path, digest, location_of)
        assert client.get(f"/v2/{name}/blobs/{digest}").content == path.read_bytes()
    served = cluster.requests_served("PATCH", f"/v2/{name}/blobs/uploads/")
    assert sum(served) == 3 and max(served) < 3, served  # not all on one replica


def test_two_replicas_push_the_same_blob_and_tag_at_once(cluster: Cluster) -> None:
    name = "replicas/same"
    data = random_bytes(8 * MiB)
    digest = sha256(data)
    barrier = threading.Barrier(2)

    def push(index: int) -> tuple[int, int]:
        with cluster.client(index) as client:
            location = location_of(client.post(f"/v2/{name}/blobs/uploads/"))
            barrier.wait()
            patched = patch(client, location, data, 0)
            barrier.wait()
            return patched.status_code, finish(client, location_of(patched), digest).status_code

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        assert list(pool.map(push, [0, 1])) == [(202, 201), (202, 201)]
    with cluster.client(2) as client:
        assert client.get(f"/v2/{name}/blobs/{digest}").content == data

    # The same tag from two replicas at once: both succeed, and every replica then agrees on one of them.
    layers = [random_bytes(1000), random_bytes(1000)]

    def push_tag(index: int) -> str:
        with cluster.client(index) as client:
            barrier.wait()
            return push_image(client, name, "race", layers[index], monolithic=True)[0]

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        pushed = set(pool.map(push_tag, [0, 1]))
    assert len(pushed) == 2
    seen = set()
    for index in range(3):
        with cluster.client(index) as client:
            got = client.head(f"/v2/{name}/manifests/race", headers={"Accept": OCI_MANIFEST})
            assert got.status_code == 200
            seen.add(got.headers["Docker-Content-Digest"])
    assert len(seen) == 1 and seen <= pushed, (seen, pushed)


def test_two_patches_of_one_upload_at_two_replicas_at_once(cluster: Cluster) -> None:
    name = "replicas/one-upload"
    chunks = {0: b"A" * (6 * MiB), 1: b"B" * (6 * MiB)}
    with cluster.client(2) as client:
        location = location_of(client.post(f"/v2/{name}/blobs/uploads/"))
    barrier = threading.Barrier(2)

    def slowly(data: bytes) -> Iterator[bytes]:
        for start in range(0, len(data), MiB):
            yield data[start:start + MiB]
            time.sleep(0.02)  # keeps both requests in flight together

    def send(index: int) -> int:
        with cluster.client(index) as client:
            barrier.wait()
            return client.patch(location, content=slowly(chunks[index]), headers={
                "Content-Type": "application/octet-stream", "Content-Range": f"0-{6 * MiB - 1}",
            }).status_code

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        statuses = list(pool.map(send, [0, 1]))
    assert sorted(statuses) == [202, 416], statuses
    winner = chunks[statuses.index(202)]
    with cluster.client(2) as client:
        status = client.get(location)
        assert status.headers["Range"] == f"0-{len(winner) - 1}"  # one chunk, not two
        assert finish(client, location, sha256(winner)).status_code == 201
        assert client.get(f"/v2/{name}/blobs/{sha256(winner)}").content == winner


def test_a_replica_killed_mid_upload_and_the_client_resumes_at_another(cluster: Cluster) -> None:
    name = "replicas/killed"
    data = random_bytes(24 * MiB)
    victim = cluster.replicas[2]
    with cluster.client(2) as client:
        location = location_of(client.post(f"/v2/{name}/blobs/uploads/"))
    sent, killed = threading.Event(), threading.Event()

    def body() -> Iterator[bytes]:
        for start in range(0, 16 * MiB, MiB):
            yield data[start:start + MiB]
        sent.set()
        killed.wait(60)  # the replica dies while the request is still open
        yield data[16 * MiB:]

    def doomed_patch() -> None:
        with cluster.client(2) as client:
            with pytest.raises(httpx.TransportError):
                client.patch(location, content=body(), headers={"Content-Type": "application/octet-stream"})

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(doomed_patch)
        assert sent.wait(60)
        time.sleep(0.5)  # let the replica write what it has received
        assert victim.process is not None
        # SIGKILL to the replica's workers and then to it: no drain, no cleanup. Killing the parent
        # alone would leave its workers draining the request in flight, and committing what they
        # got while the client resumes elsewhere.
        for pid in [*children(victim.process.pid), victim.process.pid]:
            os.kill(pid, signal.SIGKILL)
        victim.process.wait()
        killed.set()
        future.result(timeout=120)
    try:
        with cluster.client(0) as client:
            status = client.get(location)
            assert status.status_code == 204, status.text
            kept = int(status.headers["Range"].split("-")[1]) + 1 if status.headers["Range"] != "0-0" else 0
            assert 0 <= kept <= 16 * MiB
            resumed = patch(client, location, data[kept:], kept)
            assert resumed.status_code == 202, resumed.text
            assert resumed.headers["Range"] == f"0-{len(data) - 1}"
        with cluster.client(1) as client:
            finished = finish(client, location_of(resumed), sha256(data))
            assert finished.status_code == 201, finished.text
            assert finished.headers["Docker-Content-Digest"] == sha256(data)
            assert client.get(f"/v2/{name}/blobs/{sha256(data)}").content == data
    finally:
        victim.start()  # the same port: nginx's upstream holds it


def test_deletes_through_one_replica_are_seen_by_the_others_at_once(cluster: Cluster) -> None:
    name = "replicas/deleted"
    cache = redis.Redis(host="127.0.0.1", port=int(cluster.redis_addr.rsplit(":", 1)[1]), db=cluster.redis_db)
    clients = [cluster.client(index) for index in range(3)]
    try:
        layer = random_bytes(4096)
        manifest_digest, _ = push_image(clients[0], name, "v1", layer, monolithic=True)
        layer_digest = sha256(layer)
        for client in clients[1:]:  # every replica looks: the answers are now cached
            assert client.head(f"/v2/{name}/blobs/{layer_digest}").status_code == 200
            assert client.get(f"/v2/{name}/manifests/v1", headers={"Accept": OCI_MANIFEST}).status_code == 200
        # Looked up in Redis from now on (a tag just pushed is read from storage while its tombstone lives).
        assert cache.get(f"dockyard:v1:blob:{layer_digest}") == b"4096"
        assert cache.get(f"dockyard:v1:layer:{name}@{layer_digest}") == b"1"

        assert clients[0].delete(f"/v2/{name}/blobs/{layer_digest}").status_code == 202
        assert clients[0].delete(f"/v2/{name}/manifests/v1").status_code == 202  # the tag
        for client in clients[1:]:
            assert client.head(f"/v2/{name}/blobs/{layer_digest}").status_code == 404
            assert client.get(f"/v2/{name}/blobs/{layer_digest}").status_code == 404
            assert client.get(f"/v2/{name}/manifests/v1", headers={"Accept": OCI_MANIFEST}).status_code == 404

        # Pushed again under another tag, then the manifest deleted by digest: its tag goes with it everywhere.
        manifest_digest, _ = push_image(clients[0], name, "v2", layer, monolithic=True)
        assert clients[2].head(f"/v2/{name}/manifests/v2", headers={"Accept": OCI_MANIFEST}).status_code == 200
        assert clients[1].delete(f"/v2/{name}/manifests/{manifest_digest}").status_code == 202
        assert clients[2].head(f"/v2/{name}/manifests/v2", headers={"Accept": OCI_MANIFEST}).status_code == 404
    finally:
        for client in clients:
            client.close()
        cache.close()


@pytest.mark.parametrize("storage", storage_params(STORAGES))
def test_a_token_from_one_replica_is_good_at_another(
    storage: str, request: pytest.FixtureRequest, tmp_path: pathlib.Path,
) -> None:
    """The replicas share no file, not even a TLS directory: only ``http.secret``."""
    users = tmp_path / "users.htpasswd"
    added = CliRunner().invoke(main, ["user", "add", "alice", "--htpasswd", str(users), "--password-stdin"], input="alice-password\n")
    assert added.exit_code == 0, added.output
    section = storage_section(storage, tmp_path, request)
    auth = {"auth": {"htpasswd": {"realm": "Dockyard", "path": str(users)}}, "dockyard": {"token_auth": True}}
    config = write_config(tmp_path / "config.yml", section, **auth)
    replicas = [start_replica(tmp_path, number, config) for number in range(2)]
    try:
        token = httpx.get(f"{replicas[0].url}/auth/token", params={"service": "dockyard", "scope": "repository:team/app:pull,push"},
                          auth=("alice", "alice-password"), timeout=30)
        assert token.status_code == 200, token.text
        bearer = {"Authorization": f"Bearer {token.json()['token']}"}
        for replica in replicas:
            assert httpx.get(f"{replica.url}/v2/team/app/tags/list", headers=bearer, timeout=30).status_code == 404  # in, no repository
            assert httpx.get(f"{replica.url}/v2/team/app/tags/list", timeout=30).status_code == 401

        # Without the secret: on S3 a replica refuses to start; on a local root it signs with
        # its own key file, and the others' tokens are refused.
        unsecret = json.loads(config.read_text())
        del unsecret["http"]["secret"]
        (tmp_path / "unsecret.yml").write_text(json.dumps(unsecret))
        lone = DockyardProcess(tmp_path / "shared-root", "--config", str(tmp_path / "unsecret.yml"), "--tls-dir", str(tmp_path / "tls-lone"))
        lone.log = tmp_path / "lone.log"
        if storage == "s3":
            with pytest.raises(RuntimeError, match="http.secret is not set, but the storage"):
                lone.start()
        else:
            replicas.append(lone.start())
            assert httpx.get(f"{lone.url}/v2/team/app/tags/list", headers=bearer, timeout=30).status_code == 401
    finally:
        for replica in replicas:
            replica.stop()
