"""The workloads: what each one prepares untimed on a server and what one timed round measures.

A workload's ``measure`` returns one value per metric it declares. The runner
calls ``prepare`` on both servers, then ``measure`` alternately, round by round.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

from bench import images, layout
from bench.client import BLOCK, OCI_MANIFEST, Client, curl_command, curl_download, curl_output
from bench.load import LoadResult, run_load
from bench.servers import PLAIN, Registry2, Server, Upstream, Variant


@dataclass(frozen=True)
class Metric:
    label: str
    unit: str
    higher_is_better: bool


@dataclass(frozen=True)
class Settings:
    scratch: pathlib.Path
    blob: pathlib.Path  # size_mib of random bytes
    digest: str
    size_mib: int
    chunk_mib: int
    duration: float
    concurrency: int
    repos: int
    images: int
    parallel: int
    load_client: str


class Workload:
    key = ""
    variant = PLAIN  # the servers it runs against: plain HTTP or TLS, auth or not
    metrics: tuple[Metric, ...] = ()

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def prepare(self, server: Server) -> None:
        """Untimed set-up on one server."""

    def measure(self, server: Server, round_number: int) -> list[float]:
        raise NotImplementedError


def random_file(path: pathlib.Path, size_mib: int) -> str:
    """Write ``size_mib`` MiB of random bytes to ``path``; their digest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    hasher = hashlib.sha256()
    with open(path, "wb") as file:
        for _ in range(size_mib):
            block = os.urandom(1 << 20)
            hasher.update(block)
            file.write(block)
    return "sha256:" + hasher.hexdigest()


def _forget_blob(server: Server, digest: str, repository: str) -> None:
    """Delete a pushed blob and its repository from the root or bucket, so the next push starts
    from nothing: both servers skip moving an upload into place when the blob is already there."""
    hex_digest = digest.split(":")[1]
    blob = f"docker/registry/v2/blobs/sha256/{hex_digest[:2]}/{hex_digest}"
    repository_path = f"docker/registry/v2/repositories/{repository}"
    if server.bucket is not None:
        server.bucket.delete_prefix(f"{blob}/")
        server.bucket.delete_prefix(f"{repository_path}/")
        return
    shutil.rmtree(server.root / blob, ignore_errors=True)
    shutil.rmtree(server.root / repository_path, ignore_errors=True)
    os.sync()  # no write-back of this round left to slow the next


class PushMonolithic(Workload):
    key = "push"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.metrics = (Metric(f"blob push, POST + one PUT, {settings.size_mib} MiB", "MiB/s", True),)

    def measure(self, server: Server, round_number: int) -> list[float]:
        with server.client() as client:
            start = time.perf_counter()
            client.push_monolithic("bench/push", self.settings.blob, self.settings.digest)
            elapsed = time.perf_counter() - start
        _forget_blob(server, self.settings.digest, "bench/push")
        return [self.settings.size_mib / elapsed]


class PushChunked(Workload):
    key = "chunked"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.metrics = (Metric(f"blob push, PATCH {settings.chunk_mib} MiB chunks, {settings.size_mib} MiB", "MiB/s", True),)

    def measure(self, server: Server, round_number: int) -> list[float]:
        with server.client() as client:
            start = time.perf_counter()
            client.push_chunked("bench/chunked", self.settings.blob, self.settings.digest, self.settings.chunk_mib << 20)
            elapsed = time.perf_counter() - start
        _forget_blob(server, self.settings.digest, "bench/chunked")
        return [self.settings.size_mib / elapsed]


class Pull(Workload):
    key = "pull"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.metrics = (Metric(f"blob pull, {settings.size_mib} MiB", "MiB/s", True),)

    def prepare(self, server: Server) -> None:
        with server.client() as client:
            client.push_monolithic("bench/pull", self.settings.blob, self.settings.digest)
            # once per server, untimed
            client.pull("bench/pull", self.settings.digest, verify=True, redirected=server.variant.redirect)

    def measure(self, server: Server, round_number: int) -> list[float]:
        # with a redirect, curl's time covers both GETs and the second connection
        size, redirects, elapsed = curl_download(
            f"{server.url}/v2/bench/pull/blobs/{self.settings.digest}", server.headers, server.ca_file
        )
        if size != self.settings.size_mib << 20:
            raise RuntimeError(f"{server.name} sent {size} bytes of a {self.settings.size_mib} MiB blob")
        if redirects != int(server.variant.redirect):
            raise RuntimeError(f"{server.name} answered with {redirects} redirects, expected {int(server.variant.redirect)}")
        return [self.settings.size_mib / elapsed]


# What the small-request rows ask for, after the manifest GET by tag: the same manifest by digest,
# the repository's one tag, and the version check every client makes first. HEAD goes unmeasured:
# wrk waits for the body a HEAD answer's Content-Length announces.
SMALL_REQUESTS = {
    "manifest GET by digest": "/v2/bench/manifest/manifests/{digest}",
    "tags/list, 1 tag": "/v2/bench/manifest/tags/list",
    "/v2/ ping": "/v2/",
}


class ManifestGet(Workload):
    """The small requests: a manifest by tag (rate and p99), then each of :data:`SMALL_REQUESTS` (rate)."""

    key = "manifest"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        load = f"{settings.concurrency} conns, {settings.load_client}"
        what = f"manifest GET by tag, {load}"
        self.metrics = (
            Metric(what, "req/s", True), Metric(f"{what}, p99", "ms", False),
            *(Metric(f"{name}, {load}", "req/s", True) for name in SMALL_REQUESTS),
        )
        self.digests: dict[str, str] = {}

    def prepare(self, server: Server) -> None:
        with server.client() as client:
            self.digests[server.name] = client.push_image("bench/manifest", "latest", os.urandom(1024))

    def measure(self, server: Server, round_number: int) -> list[float]:
        headers = {"Accept": OCI_MANIFEST, **server.headers}
        by_tag = self._load(server, "/v2/bench/manifest/manifests/latest", headers)
        others = [self._load(server, path.format(digest=self.digests[server.name]), headers).requests_per_s for path in SMALL_REQUESTS.values()]
        return [by_tag.requests_per_s, by_tag.p99_ms, *others]

    def _load(self, server: Server, path: str, headers: dict[str, str]) -> LoadResult:
        return run_load(self.settings.load_client, f"{server.url}{path}", headers, self.settings.concurrency, self.settings.duration)


STORM_CLIENTS = 32
STORM_MIB = 256  # the storm's blob, at most this large (the blob of the other rows is 1 GiB by default)


class PullStorm(Workload):
    """:data:`STORM_CLIENTS` curl processes pulling one blob at once: the aggregate rate (every byte
    over the time from starting the first to the end of the last) and the p99 time to first byte."""

    key = "storm"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.size_mib = min(settings.size_mib, STORM_MIB)
        what = f"pull storm, {STORM_CLIENTS} clients x one {self.size_mib} MiB blob"
        self.metrics = (Metric(f"{what}, aggregate", "MiB/s", True), Metric(f"{what}, p99 time to first byte", "ms", False))
        self.blob, self.digest = settings.blob, settings.digest

    def prepare(self, server: Server) -> None:
        if self.size_mib < self.settings.size_mib and self.blob == self.settings.blob:
            self.blob = self.settings.scratch / "storm.bin"
            self.digest = random_file(self.blob, self.size_mib)
        with server.client() as client:
            client.push_monolithic("bench/storm", self.blob, self.digest)

    def measure(self, server: Server, round_number: int) -> list[float]:
        url = f"{server.url}/v2/bench/storm/blobs/{self.digest}"
        command = curl_command(url, "%{size_download} %{time_starttransfer}", server.headers, server.ca_file)
        start = time.perf_counter()
        pulls = [
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
            for _ in range(STORM_CLIENTS)
        ]
        outputs = [pull.communicate() for pull in pulls]
        elapsed = time.perf_counter() - start
        received, first_bytes = 0, []
        for pull, (stdout, stderr) in zip(pulls, outputs, strict=True):
            size, first_byte = curl_output(url, pull.returncode, stdout, stderr)
            if int(size) != self.size_mib << 20:
                raise RuntimeError(f"{server.name} sent {size} bytes of a {self.size_mib} MiB blob")
            received += int(size)
            first_bytes.append(float(first_byte))
        first_bytes.sort()
        p99 = first_bytes[math.ceil(0.99 * len(first_bytes)) - 1]
        return [received / (1 << 20) / elapsed, p99 * 1e3]


class SkopeoPush(Workload):
    key = "skopeo"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.metrics = (Metric(f"skopeo copy {settings.images} 3-layer images, {settings.parallel} at a time", "s", False),)
        self.skopeo = images.Skopeo(settings.scratch / "skopeo")
        self.built: dict[int, tuple[pathlib.Path, list[str]]] = {}

    def _images(self, round_number: int) -> tuple[pathlib.Path, list[str]]:
        """This round's images: built once, pushed to both servers."""
        if round_number not in self.built:
            for old in self.built.values():
                shutil.rmtree(old[0], ignore_errors=True)
            path = self.settings.scratch / f"images-{round_number}"
            self.built = {round_number: (path, images.build(path, self.settings.images))}
        return self.built[round_number]

    def measure(self, server: Server, round_number: int) -> list[float]:
        path, tags = self._images(round_number)
        start = time.perf_counter()
        self.skopeo.push_all(path, tags, server.host, f"r{round_number}", self.settings.parallel)
        return [time.perf_counter() - start]


class SkopeoPushEvents(SkopeoPush):
    """The skopeo row with events to an endpoint that answers each after 2 s: a push should not wait for it."""

    key = "skopeo-events"
    variant = Variant(events=True)


class Catalog(Workload):
    """Needs both roots seeded with :func:`bench.layout.seed` before the servers start."""

    key = "catalog"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.metrics = (
            Metric(f"_catalog walk, {settings.repos} repos, n=1000", "s", False),
            Metric(f"tags/list walk, {settings.repos} tags, n=1000", "s", False),
            # What skopeo list-tags and crane ls ask: no n, so the registry picks the page size.
            Metric(f"tags/list walk, {settings.repos} tags, no n", "s", False),
        )

    def measure(self, server: Server, round_number: int) -> list[float]:
        with server.client() as client:
            start = time.perf_counter()
            repositories = client.walk("/v2/_catalog?n=1000", "repositories")
            catalog = time.perf_counter() - start
            start = time.perf_counter()
            tags = client.walk(f"/v2/{layout.TAGS_REPOSITORY}/tags/list?n=1000", "tags")
            tag_list = time.perf_counter() - start
            start = time.perf_counter()
            tags_unbounded = client.walk(f"/v2/{layout.TAGS_REPOSITORY}/tags/list", "tags")
            tag_list_unbounded = time.perf_counter() - start
        if repositories < self.settings.repos or tags != self.settings.repos or tags_unbounded != tags:
            raise RuntimeError(
                f"{server.name} listed {repositories} repositories and {tags} then {tags_unbounded} tags, "
                f"seeded {self.settings.repos}"
            )
        return [catalog, tag_list, tag_list_unbounded]


@contextlib.contextmanager
def seeding(server: Server, rootdirectory: str = "") -> Iterator[layout.Write]:
    """Writes files of the layout (:mod:`bench.layout`) where ``server`` stores, below ``rootdirectory``:
    its bucket (all written when the block ends) or its root."""
    if server.bucket is None:
        yield layout.into_directory(server.root / rootdirectory)
        return
    with server.bucket.writer(f"{rootdirectory}/" if rootdirectory else "") as write:
        yield write


class GarbageCollect(Workload):
    """Each round seeds a fresh root (untimed, about a minute) with :func:`bench.layout.seed_gc`
    and times the server's own collector over it, with untagged manifests removed:
    ``dockyard gc`` and ``docker-registry garbage-collect``."""

    key = "gc"
    REPOSITORIES, TAGS = 1000, 10
    metrics = (Metric(f"garbage collection, {REPOSITORIES} repos x {TAGS} tags (+2 untagged images each)", "s", False),)

    def measure(self, server: Server, round_number: int) -> list[float]:
        root = self.settings.scratch / "gc" / f"{server.name}-{round_number}"
        layout.seed_gc(layout.into_directory(root), self.REPOSITORIES, self.TAGS)
        storage = f"{{filesystem: {{rootdirectory: {json.dumps(str(root))}}}}}"
        elapsed = _collect(server, root.with_suffix(".yml"), storage)
        shutil.rmtree(root)
        return [elapsed]


class GarbageCollectS3(GarbageCollect):
    """The same layout in the server's bucket (below ``gc/``), seeded once (untimed, PUTs
    :data:`bench.s3.WRITERS` at a time); before each round its untagged images are written again."""

    key = "s3-gc"
    variant = Variant(s3=True)
    ROOT = "gc"

    def prepare(self, server: Server) -> None:
        with seeding(server, self.ROOT) as write:
            layout.seed_gc(write, self.REPOSITORIES, self.TAGS)

    def measure(self, server: Server, round_number: int) -> list[float]:
        assert server.bucket is not None, f"{server.name} stores in no bucket"
        if round_number:
            with seeding(server, self.ROOT) as write:
                layout.seed_gc(write, self.REPOSITORIES, self.TAGS, garbage_only=True)
        storage = json.dumps({"s3": server.bucket.storage_config() | {"rootdirectory": f"/{self.ROOT}"}})
        return [_collect(server, self.settings.scratch / f"{server.name}-s3-gc.yml", storage)]


def _collect(server: Server, config: pathlib.Path, storage: str) -> float:
    """Seconds the server's own collector takes over ``storage`` (a YAML ``storage`` section), untagged manifests removed."""
    config.write_text(f"version: 0.1\nlog: {{level: error}}\nstorage: {storage}\n")
    if isinstance(server, Registry2):
        command = [shutil.which(Registry2.BINARY) or Registry2.BINARY, "garbage-collect", "--delete-untagged", str(config)]
    else:
        command = [sys.executable, "-m", "dockyard", "gc", "--config", str(config), "--delete-untagged", "--grace-period", "0s"]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start


# The image of the proxy rows, at most this large (the blob of the other rows is 1 GiB by default).
PROXY_IMAGE_MIB = 256
HERD = 8  # concurrent first pulls of one image
# Between the cold pull and the warm one (untimed): registry:2 stores a blob with a second fetch
# that outlasts the client's, and until it ends serves the blob from the upstream again.
SETTLE_SECONDS = 5.0


@dataclass(frozen=True)
class _Image:
    repository: str
    layer: str  # its digest
    layer_size: int
    size: int  # manifest, config and layer


class ProxyPull(Workload):
    """Both servers as pull-through caches of one upstream (:class:`bench.servers.Upstream`): a cold pull
    of an image only the upstream holds, the same pull again (warm), and ``HERD`` clients pulling
    another new image at once, with the bytes the upstream sent for each image (headers included). Each round pushes its images,
    new random bytes, to the upstream first (untimed) and forgets them everywhere after."""

    key = "proxy"
    variant = Variant(proxy=True)

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.size_mib = min(settings.size_mib, PROXY_IMAGE_MIB)
        image = f"{self.size_mib} MiB image"
        self.metrics = (
            Metric(f"cold pull through the cache, {image}, time to first layer byte", "s", False),
            Metric(f"cold pull through the cache, {image}", "s", False),
            Metric("cold pull, upstream bytes sent / image bytes", "x", False),
            Metric(f"warm pull through the cache, {image}", "s", False),
            Metric(f"{HERD} concurrent cold pulls through the cache, {image}", "s", False),
            Metric(f"{HERD} concurrent cold pulls, upstream bytes sent / image bytes", "x", False),
        )

    def measure(self, server: Server, round_number: int) -> list[float]:
        upstream = server.upstream
        assert upstream is not None, f"{server.name} mirrors no upstream"
        cold = self._push(upstream, f"bench/proxy-cold/{server.name}-{round_number}")
        first_byte, cold_seconds = _pull_image(server, cold)
        time.sleep(SETTLE_SECONDS)
        cold_sent = upstream.bytes_sent(cold.repository)
        _, warm_seconds = _pull_image(server, cold)
        herd = self._push(upstream, f"bench/proxy-herd/{server.name}-{round_number}")
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(HERD) as pool:
            list(pool.map(lambda _: _pull_image(server, herd), range(HERD)))
        herd_seconds = time.perf_counter() - start
        sent = upstream.bytes_sent(herd.repository)
        for image in (cold, herd):
            for holder in (upstream, server):
                _forget_blob(holder, image.layer, image.repository)
        return [first_byte, cold_seconds, cold_sent / cold.size, warm_seconds, herd_seconds, sent / herd.size]

    def _push(self, upstream: Upstream, repository: str) -> _Image:
        """A one-layer image of new random bytes, tagged ``latest`` in ``repository`` of the upstream."""
        layer = self.settings.scratch / "proxy-layer.bin"
        digest = random_file(layer, self.size_mib)
        config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        with Client(upstream.host, headers=upstream.bearer_headers(repository)) as client:
            client.push_monolithic(repository, layer, digest)
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": client.push_bytes(repository, config), "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": layer.stat().st_size}],
            }).encode()
            client.call("PUT", f"/v2/{repository}/manifests/latest", manifest, {"Content-Type": OCI_MANIFEST}, expect=201)
        size = layer.stat().st_size
        layer.unlink()
        return _Image(repository, digest, size, size + len(config) + len(manifest))


def _pull_image(server: Server, image: _Image) -> tuple[float, float]:
    """Pull ``image`` (manifest by tag, config, layer; read and dropped) from ``server``: seconds to
    the layer's first byte, and in all."""
    start = time.perf_counter()
    with server.client() as client:
        _, body = client.call("GET", f"/v2/{image.repository}/manifests/latest", headers={"Accept": OCI_MANIFEST})
        manifest = json.loads(body)
        client.download(f"/v2/{image.repository}/blobs/{manifest['config']['digest']}")
        response = client.request("GET", f"/v2/{image.repository}/blobs/{image.layer}")
        received = len(response.read1(BLOCK))  # what the first read brings, however little
        first_byte = time.perf_counter() - start
        buffer = bytearray(BLOCK)
        while count := response.readinto(buffer):
            received += count
    if received != image.layer_size:
        raise RuntimeError(f"{server.name} sent {received} bytes of the {image.layer_size} of {image.repository}'s layer")
    return first_byte, time.perf_counter() - start


class PushMonolithicTmpfs(PushMonolithic):
    """As ``push``, with both roots on a tmpfs: against ``push``, what the disk takes."""

    key = "push-tmpfs"
    variant = Variant(tmpfs=True)


class PushChunkedTmpfs(PushChunked):
    key = "chunked-tmpfs"
    variant = Variant(tmpfs=True)


class PushMonolithicTls(PushMonolithic):
    key = "push-tls"
    variant = Variant(tls=True)


class PullTls(Pull):
    key = "pull-tls"
    variant = Variant(tls=True)


class ManifestGetAuth(ManifestGet):
    key = "manifest-auth"
    variant = Variant(auth=True)


class ManifestGetLdap(ManifestGet):
    """As ``manifest-auth``, with Dockyard's user in an LDAP directory (registry:2 keeps the htpasswd file):
    its column against ``manifest-auth``'s is LDAP against htpasswd."""

    key = "manifest-ldap"
    variant = Variant(auth=True, ldap=True)


class PullStormTls(PullStorm):
    key = "storm-tls"
    variant = Variant(tls=True)


class CatalogS3(Catalog):
    key = "s3-catalog"
    variant = Variant(s3=True)


class PushMonolithicS3(PushMonolithic):
    key = "s3-push"
    variant = Variant(s3=True)


class PullS3(Pull):
    """The server reads the blob from S3 and streams it (``storage.redirect.disable: true``)."""

    key = "s3-pull"
    variant = Variant(s3=True)


class PullS3Redirect(Pull):
    """The server answers 307 to a presigned SeaweedFS URL, which the client follows."""

    key = "s3-pull-redirect"
    variant = Variant(s3=True, redirect=True)


WORKLOADS: tuple[type[Workload], ...] = (
    PushMonolithic, PushChunked, PushMonolithicTmpfs, PushChunkedTmpfs, Pull, ManifestGet, PullStorm, SkopeoPush, Catalog, PushMonolithicTls,
    PullTls, PullStormTls, ManifestGetAuth, ManifestGetLdap, GarbageCollect, PushMonolithicS3, PullS3, PullS3Redirect, CatalogS3,
    GarbageCollectS3, ProxyPull, SkopeoPushEvents,
)
MEMORY_WORKLOADS = frozenset({
    "push", "chunked", "pull", "manifest", "skopeo", "push-tls", "pull-tls", "manifest-auth", "manifest-ldap",
    "s3-push", "s3-pull", "s3-pull-redirect",
})
