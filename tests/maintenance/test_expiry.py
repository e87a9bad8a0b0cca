"""Expiry of a pull-through cache's images, part of the collection: what was not pulled within
its TTL goes, with its tags; a blob goes only when no other image links it; a pull that lands
during the collection keeps its image."""

from __future__ import annotations

import pathlib
import time

from dockyard.config import load
from dockyard.maintenance.gc import Collector
from dockyard.proxy.expiry import TtlLookup, expiry_interval, ttl_lookup
from dockyard.reference import Digest
from dockyard.storage import paths
from tests.maintenance.conftest import Store

TTL = 100.0
SHARED = b"shared layer" * 100


def ttl_for(repository: str) -> float | None:
    return TTL


async def record_pull(store: Store, repository: str, digest: Digest, when: float) -> None:
    """Record a pull as the cache does."""
    await store.registry.driver.put_content(paths.proxy_manifest_pulled(repository, digest), repr(when).encode())


def pulled(store: Store, repository: str, digest: Digest, when: float) -> None:
    store.run(record_pull(store, repository, digest, when))


def two_images(store: Store) -> tuple[Digest, Digest]:
    """``a:v1`` last pulled long ago and ``b:v1`` just now, sharing a layer; everything stored long ago."""
    a = store.image("a", "v1", SHARED, b"only in a")
    b = store.image("b", "v1", SHARED, b"only in b")
    store.age_everything(10 * TTL)
    pulled(store, "a", a, time.time() - 10 * TTL)
    pulled(store, "b", b, time.time())
    return a, b


def test_an_image_not_pulled_within_its_ttl_goes_and_a_shared_layer_stays(store: Store) -> None:
    a, b = two_images(store)
    only_a, only_b = Digest.of(b"only in a"), Digest.of(b"only in b")

    report = store.collect(ttl_for=ttl_for)

    assert not store.has_manifest("a", a)
    assert not store.has_blob(a) and not store.has_blob(only_a)
    assert ("a", "v1") in report.tags_removed
    assert store.run(store.registry.repository("a").tags()) == []
    assert not store.registry.driver.local_file(paths.proxy_manifest_pulled("a", a)).exists()
    # B, pulled within the TTL, is whole, and so is the layer it shares with A.
    assert store.has_manifest("b", b) and store.has_blob(b)
    assert store.has_blob(Digest.of(SHARED)) and store.has_blob(only_b)
    assert store.run(store.registry.repository("b").resolve_tag("v1")) == b
    assert report.bytes_freed > len(b"only in a")


def test_without_a_ttl_nothing_expires(store: Store) -> None:
    a, _ = two_images(store)

    report = store.collect()

    assert store.has_manifest("a", a) and store.has_blob(Digest.of(b"only in a"))
    assert report.tags_removed == [] and report.blobs_removed == []


def test_a_pull_during_the_collection_keeps_its_image(store: Store, monkeypatch) -> None:
    a, _ = two_images(store)
    set_aside_blobs = Collector._set_aside_blobs

    async def pulled_meanwhile(self: Collector, *args):  # type: ignore[no-untyped-def]
        found = await set_aside_blobs(self, *args)
        await record_pull(store, "a", a, time.time())  # lands after A was set aside, before the second look
        return found

    monkeypatch.setattr(Collector, "_set_aside_blobs", pulled_meanwhile)
    report = store.collect(ttl_for=ttl_for)

    assert report.put_back > 0
    assert store.has_manifest("a", a) and store.has_blob(a) and store.has_blob(Digest.of(b"only in a"))
    assert store.run(store.registry.repository("a").resolve_tag("v1")) == a
    assert report.tags_removed == [] and report.blobs_removed == []


def test_ttls_come_from_the_proxy_section_or_each_mirror(tmp_path: pathlib.Path) -> None:
    base = "version: 0.1\nstorage: {inmemory: {}}\n"

    def lookup(text: str) -> tuple[TtlLookup, float | None]:
        path = tmp_path / "config.yml"
        path.write_text(base + text)
        settings = load(path, {}).settings
        return ttl_lookup(settings), expiry_interval(settings)

    whole, interval = lookup("proxy: {remoteurl: https://hub.example, ttl: 2h}\n")
    assert (whole("library/alpine"), whole("anything"), interval) == (7200.0, 7200.0, 3600.0)
    kept, interval = lookup("proxy: {remoteurl: https://hub.example, ttl: 0}\n")
    assert (kept("library/alpine"), interval) == (None, None)
    by_prefix, interval = lookup(
        "dockyard:\n  mirrors:\n"
        "    - {prefix: docker.io, remoteurl: https://hub.example, ttl: 30m}\n"
        "    - {prefix: ghcr.io/, remoteurl: https://ghcr.example, ttl: 0}\n"
    )
    assert by_prefix("docker.io/library/alpine") == 1800.0
    assert by_prefix("ghcr.io/owner/tool") is None  # ttl 0: kept for ever
    assert by_prefix("team/app") is None  # a local repository
    assert by_prefix("docker.iox/app") is None
    assert interval == 1800.0
    local, interval = lookup("")
    assert (local("team/app"), interval) == (None, None)
