"""The Redis cache shared by replicas: what one replica deletes, no replica claims afterwards.

Two :class:`Registry` objects on one root and one real ``redis-server`` stand for two
replicas. distribution#4569 (the cache says a deleted blob exists) is checked on every
delete path, including the race where a reader fills the cache from a storage read
made before the delete.
"""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio

from dockyard.api.errors import from_domain
from dockyard.config import ConfigError, Redis, RedisPool, load
from dockyard.errors import BlobUnknown, ManifestUnknown, Unavailable
from dockyard.reference import Digest
from dockyard.storage import cache, paths
from dockyard.storage.cache import blob_key, cache_from_config, layer_key, tag_key
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.redis_cache import RedisCache
from dockyard.storage.registry import Registry
from tests.support.redis import RedisProcess
from tests.support.registry2 import free_port

NAME = "team/app"


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.fixture
async def flushed(redis_server: RedisProcess) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis(host="127.0.0.1", port=redis_server.port)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
async def replicas(tmp_path: pathlib.Path, redis_server: RedisProcess, flushed: redis.asyncio.Redis) -> AsyncIterator[tuple[Registry, Registry]]:
    pair = tuple(Registry(FilesystemDriver(tmp_path / "root"), cache=cache_from_config(Redis(addr=redis_server.addr))) for _ in range(2))
    yield pair
    for registry in pair:
        await registry.close()


async def push_blob(registry: Registry, data: bytes) -> Digest:
    digest = Digest.of(data)
    upload = await registry.uploads.start(NAME)
    await registry.uploads.finish(registry.repository(NAME), upload, digest, chunks(data))
    await registry.repository(NAME).link_layer(digest)
    return digest


async def cached(client: redis.asyncio.Redis, key: str) -> bytes | None:
    return await client.get(f"dockyard:v1:{key}")


async def test_layer_lookups_are_cached_and_shared(replicas: tuple[Registry, Registry], flushed: redis.asyncio.Redis) -> None:
    a, b = replicas
    digest = await push_blob(a, b"layer bytes")
    assert await a.repository(NAME).layer_size(digest) == 11
    assert await cached(flushed, blob_key(digest)) == b"11"
    assert await cached(flushed, layer_key(NAME, digest)) == b"1"
    # B answers from the cache alone: the link file is unreadable to it now.
    link = pathlib.Path(b.driver.root) / paths.layer_link(NAME, digest).lstrip("/")
    link.chmod(0)
    try:
        assert await b.repository(NAME).layer_size(digest) == 11
    finally:
        link.chmod(0o644)


async def test_unlinked_layer_is_unknown_on_the_other_replica_at_once(replicas: tuple[Registry, Registry]) -> None:
    a, b = replicas
    digest = await push_blob(a, b"to be unlinked")
    assert await b.repository(NAME).has_layer(digest)  # cached by B
    await a.repository(NAME).unlink_layer(digest)
    assert not await b.repository(NAME).has_layer(digest)


async def test_garbage_collected_blob_is_unknown_everywhere_distribution_4569(replicas: tuple[Registry, Registry]) -> None:
    a, b = replicas
    digest = await push_blob(a, b"collected by gc")
    assert await b.repository(NAME).layer_size(digest) == len(b"collected by gc")
    # gc removes the data through the blob store (the link is left, as a broken repository would have it).
    await a.blobs.delete(digest)
    with pytest.raises(BlobUnknown) as raised:
        await b.repository(NAME).layer_size(digest)
    assert from_domain(raised.value).error.code == "BLOB_UNKNOWN"
    with pytest.raises(BlobUnknown):
        await a.blobs.delete(digest)  # already gone


async def test_a_reader_cannot_fill_in_what_it_read_before_a_delete(replicas: tuple[Registry, Registry], flushed: redis.asyncio.Redis) -> None:
    a, b = replicas
    digest = await push_blob(a, b"raced")
    size = (await b.blobs.stat(digest)).size  # B reads storage...
    await a.blobs.delete(digest)  # ...A deletes...
    await b.blobs.cache.fill(blob_key(digest), str(size))  # ...B fills late: refused by the tombstone
    assert await cached(flushed, blob_key(digest)) == b"-"
    with pytest.raises(BlobUnknown):
        await b.blobs.size(digest)
    # A push of the same content later is seen as usual.
    await push_blob(a, b"raced")
    assert await b.blobs.size(digest) == 5


async def test_tag_moves_and_deletes_are_seen_by_the_other_replica(replicas: tuple[Registry, Registry]) -> None:
    a, b = replicas
    first, second = Digest.of(b"first"), Digest.of(b"second")
    await a.repository(NAME).tag("latest", first)
    assert await b.repository(NAME).resolve_tag("latest") == first  # cached by B
    await a.repository(NAME).tag("latest", second)
    assert await b.repository(NAME).resolve_tag("latest") == second
    await a.repository(NAME).untag("latest")
    with pytest.raises(ManifestUnknown) as raised:
        await b.repository(NAME).resolve_tag("latest")
    assert from_domain(raised.value).error.code == "MANIFEST_UNKNOWN"


async def test_without_redis_reads_go_to_storage_and_deletes_are_refused(tmp_path: pathlib.Path) -> None:
    registry = Registry(FilesystemDriver(tmp_path / "root"), cache=cache_from_config(Redis(addr=f"127.0.0.1:{free_port()}", dialtimeout=1.0)))
    try:
        digest = Digest.of(b"kept")
        await registry.driver.put_content(paths.blob_data(digest), b"kept")
        await registry.driver.put_content(paths.layer_link(NAME, digest), str(digest).encode())
        assert await registry.repository(NAME).layer_size(digest) == 4  # redis down: storage answers
        with pytest.raises(Unavailable) as raised:
            await registry.repository(NAME).unlink_layer(digest)
        assert from_domain(raised.value).error.code == "UNAVAILABLE"
        assert await registry.repository(NAME).has_layer(digest)  # nothing was changed
    finally:
        await registry.close()


def test_cache_keys_from_the_configuration(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text("version: 0.1\nstorage: {inmemory: {}, cache: {blobdescriptor: redis}}\n")
    with pytest.raises(ConfigError, match=r"^redis\.addr: missing: storage\.cache\.blobdescriptor is redis$"):
        load(path, {})
    path.write_text("version: 0.1\nstorage: {inmemory: {}, cache: {blobdescriptor: inmemory}}\nredis: {addr: 'localhost:6379'}\n")
    assert load(path, {}).settings.redis_cache is None  # registry:2 uses redis only for blobdescriptor: redis
    environment = {"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR": "redis", "REGISTRY_REDIS_ADDR": "nohost"}
    with pytest.raises(ConfigError, match=r"^redis\.addr: expected HOST:PORT, got nohost$"):
        load(path, environment)
    assert tag_key("a/b", "v1") != tag_key("a", "b:v1")


async def test_redis_locks_hold_across_replicas_and_lapse_when_the_holder_dies(
    redis_server: RedisProcess, flushed: redis.asyncio.Redis, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cache, "LOCK_SECONDS", 0.6)
    a, b = (cache_from_config(Redis(addr=redis_server.addr)) for _ in range(2))
    try:
        order: list[str] = []

        async def hold(replica: cache.StorageCache, label: str, seconds: float) -> None:
            async with replica.lock("upload:one"):
                order.append(f"{label} in")
                await asyncio.sleep(seconds)  # longer than LOCK_SECONDS: renewed meanwhile
                order.append(f"{label} out")

        first = asyncio.create_task(hold(a, "a", 1.0))
        await asyncio.sleep(0.1)
        await hold(b, "b", 0)
        await first
        assert order == ["a in", "a out", "b in", "b out"]

        # A holder killed mid-way (no release, no renewal) stops blocking the others after LOCK_SECONDS.
        dead = a.client.lock("dockyard:v1:lock:upload:two", timeout=cache.LOCK_SECONDS, thread_local=False)
        assert await dead.acquire()
        async with asyncio.timeout(10):
            async with b.lock("upload:two"):
                assert not await dead.owned()
    finally:
        await a.close()
        await b.close()


async def test_pool_keeps_at_most_maxidle_connections_open(redis_server: RedisProcess) -> None:
    registry2_pool = cache_from_config(Redis(addr=redis_server.addr, pool=RedisPool(maxidle=1, maxactive=8)))
    assert isinstance(registry2_pool, RedisCache)
    pool = registry2_pool.client.connection_pool
    held = [await pool.get_connection() for _ in range(4)]
    for connection in held:
        await connection.connect()
        await pool.release(connection)
    assert sum(connection.is_connected for connection in held) == 1
    await registry2_pool.close()


async def client_id(connection: Any) -> int:
    await connection.send_command("CLIENT", "ID")
    return int(await connection.read_response())


async def test_pool_closes_connections_idle_past_connmaxidletime(redis_server: RedisProcess) -> None:
    registry3_pool = cache_from_config(Redis(addrs=[redis_server.addr], connmaxidletime=0.001))
    assert isinstance(registry3_pool, RedisCache)
    pool = registry3_pool.client.connection_pool
    idle = await pool.get_connection()
    first = await client_id(idle)
    await pool.release(idle)
    await asyncio.sleep(0.05)  # past the idle time, however slow the machine
    again = await pool.get_connection()
    assert await client_id(again) != first  # the idle one was closed: a new connection serves
    await pool.release(again)
    await registry3_pool.close()
