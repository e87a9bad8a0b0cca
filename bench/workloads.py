"""The workloads: what each one prepares untimed on a server and what one timed round measures.

A workload's ``measure`` returns one value per metric it declares. The runner
calls ``prepare`` on both servers, then ``measure`` alternately, round by round.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import time
from dataclasses import dataclass

from bench import images, layout
from bench.client import OCI_MANIFEST, Client
from bench.load import run_load
from bench.servers import Server


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
    metrics: tuple[Metric, ...] = ()

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def prepare(self, server: Server) -> None:
        """Untimed set-up on one server."""

    def measure(self, server: Server, round_number: int) -> list[float]:
        raise NotImplementedError


def _forget_blob(server: Server, digest: str, repository: str) -> None:
    """Delete a pushed blob and its repository from the root, so the next push starts from nothing."""
    v2 = server.root / "docker" / "registry" / "v2"
    hex_digest = digest.split(":")[1]
    shutil.rmtree(v2 / "blobs" / "sha256" / hex_digest[:2] / hex_digest, ignore_errors=True)
    shutil.rmtree(v2 / "repositories" / repository, ignore_errors=True)
    os.sync()  # no write-back of this round left to slow the next


class PushMonolithic(Workload):
    key = "push"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.metrics = (Metric(f"blob push, POST + one PUT, {settings.size_mib} MiB", "MiB/s", True),)

    def measure(self, server: Server, round_number: int) -> list[float]:
        with Client(server.host) as client:
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
        with Client(server.host) as client:
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
        with Client(server.host) as client:
            client.push_monolithic("bench/pull", self.settings.blob, self.settings.digest)
            client.pull("bench/pull", self.settings.digest, verify=True)  # once per server, untimed

    def measure(self, server: Server, round_number: int) -> list[float]:
        with Client(server.host) as client:
            start = time.perf_counter()
            size = client.pull("bench/pull", self.settings.digest)
            elapsed = time.perf_counter() - start
        if size != self.settings.size_mib << 20:
            raise RuntimeError(f"{server.name} sent {size} bytes of a {self.settings.size_mib} MiB blob")
        return [self.settings.size_mib / elapsed]


class ManifestGet(Workload):
    key = "manifest"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        what = f"manifest GET by tag, {settings.concurrency} conns, {settings.load_client}"
        self.metrics = (Metric(what, "req/s", True), Metric(f"{what}, p99", "ms", False))

    def prepare(self, server: Server) -> None:
        with Client(server.host) as client:
            client.push_image("bench/manifest", "latest", os.urandom(1024))

    def measure(self, server: Server, round_number: int) -> list[float]:
        result = run_load(
            self.settings.load_client, f"{server.url}/v2/bench/manifest/manifests/latest",
            {"Accept": OCI_MANIFEST}, self.settings.concurrency, self.settings.duration,
        )
        return [result.requests_per_s, result.p99_ms]


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


class Catalog(Workload):
    """Needs both roots seeded with :func:`bench.layout.seed` before the servers start."""

    key = "catalog"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.metrics = (
            Metric(f"_catalog walk, {settings.repos} repos, n=1000", "s", False),
            Metric(f"tags/list walk, {settings.repos} tags, n=1000", "s", False),
        )

    def measure(self, server: Server, round_number: int) -> list[float]:
        with Client(server.host) as client:
            start = time.perf_counter()
            repositories = client.walk("/v2/_catalog?n=1000", "repositories")
            catalog = time.perf_counter() - start
            start = time.perf_counter()
            tags = client.walk(f"/v2/{layout.TAGS_REPOSITORY}/tags/list?n=1000", "tags")
            tag_list = time.perf_counter() - start
        if repositories < self.settings.repos or tags != self.settings.repos:
            raise RuntimeError(f"{server.name} listed {repositories} repositories and {tags} tags, seeded {self.settings.repos}")
        return [catalog, tag_list]


WORKLOADS: tuple[type[Workload], ...] = (PushMonolithic, PushChunked, Pull, ManifestGet, SkopeoPush, Catalog)
MEMORY_WORKLOADS = frozenset({"push", "chunked", "pull", "manifest", "skopeo"})
