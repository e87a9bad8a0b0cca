"""The Redis side of :mod:`dockyard.storage.cache`: the shared cache and locks, through redis-py."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pathlib
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import LockError, RedisError

from dockyard import config
from dockyard.address import Address
from dockyard.errors import Unavailable
from dockyard.storage.cache import ENTRY_SECONDS, KEY_PREFIX, LOCK_SECONDS, TOMBSTONE, TOMBSTONE_SECONDS, StorageCache

log = logging.getLogger("dockyard.cache")


class RedisCache(StorageCache):
    remembers = True

    def __init__(self, client: redis.asyncio.Redis, address: str) -> None:
        self.client = client
        self.address = address

    async def get(self, *keys: str) -> list[str | None]:
        try:
            # Without decode_responses the client answers bytes, never str.
            values = cast(list[bytes | None], await self.client.mget([KEY_PREFIX + key for key in keys]))
        except RedisError as error:
            log.warning("redis at %s: %s; reading storage instead", self.address, error)
            return [None] * len(keys)
        return [None if value is None or value == TOMBSTONE else value.decode() for value in values]

    async def fill(self, key: str, value: str) -> None:
        try:
            await self.client.set(KEY_PREFIX + key, value.encode(), nx=True, ex=ENTRY_SECONDS)
        except RedisError as error:
            log.warning("redis at %s: %s; not cached", self.address, error)

    async def _tombstone(self, keys: tuple[str, ...]) -> None:
        async with self.client.pipeline(transaction=False) as pipeline:
            for key in keys:
                pipeline.set(KEY_PREFIX + key, TOMBSTONE, ex=TOMBSTONE_SECONDS)
            await pipeline.execute()

    @contextlib.asynccontextmanager
    async def changing(self, *keys: str) -> AsyncIterator[None]:
        try:
            await self._tombstone(keys)
        except RedisError as error:
            raise Unavailable(
                f"the cache (redis at {self.address}) cannot be reached, so nothing was changed: {error}"
            ) from None
        yield
        try:  # the first tombstone still guards the keys; this one only restarts its clock
            await self._tombstone(keys)
        except RedisError as error:
            log.warning("redis at %s: %s; the change is guarded for %ds only", self.address, error, TOMBSTONE_SECONDS)

    @contextlib.asynccontextmanager
    async def lock(self, name: str) -> AsyncIterator[None]:
        lock = self.client.lock(f"{KEY_PREFIX}lock:{name}", timeout=LOCK_SECONDS, sleep=0.05, thread_local=False)
        try:
            await lock.acquire()
        except RedisError as error:
            raise Unavailable(f"the lock service (redis at {self.address}) cannot be reached: {error}") from None
        renewing = asyncio.ensure_future(self._renew(lock))
        try:
            yield
        finally:
            renewing.cancel()
            try:
                await lock.release()
            except (LockError, RedisError) as error:
                log.warning("redis at %s: releasing lock %s: %s", self.address, name, error)

    async def _renew(self, lock: redis.asyncio.lock.Lock) -> None:
        while True:
            await asyncio.sleep(LOCK_SECONDS / 3)
            try:
                await lock.reacquire()
            except (LockError, RedisError) as error:
                log.warning("redis at %s: lock %s lost: %s", self.address, lock.name, error)
                return

    async def close(self) -> None:
        await self.client.aclose()


class _Pool(redis.asyncio.ConnectionPool):
    """redis-py's pool, plus what registry:2's pool settings ask and redis-py lacks: at most ``max_idle``
    idle connections stay open, and none idle for longer than ``idle_timeout`` (0: no bound). A connection
    over either is disconnected and stays in the pool, to connect again when next used."""

    def __init__(self, *, max_idle: int, idle_timeout: float, **options: Any) -> None:
        super().__init__(**options)
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self._idle_since: dict[int, float] = {}

    def _idle(self) -> list[Any]:
        return [connection for connection in self._available_connections if connection.is_connected]

    async def get_connection(self, *args: Any, **options: Any) -> Any:
        if self.idle_timeout:
            now = time.monotonic()
            for connection in self._idle():
                if now - self._idle_since.get(id(connection), now) > self.idle_timeout:
                    await connection.disconnect()
        return await super().get_connection(*args, **options)  # type: ignore[no-untyped-call]  # untyped in redis-py

    async def release(self, connection: Any) -> None:
        self._idle_since[id(connection)] = time.monotonic()
        await super().release(connection)
        idle = self._idle()
        if self.max_idle and len(idle) > self.max_idle:
            for surplus in sorted(idle, key=lambda each: self._idle_since.get(id(each), 0.0))[: len(idle) - self.max_idle]:
                await surplus.disconnect()


def _tls_options(settings: config.RedisTls) -> dict[str, Any]:
    if not settings.on:
        return {}
    options: dict[str, Any] = {"connection_class": redis.asyncio.SSLConnection, "ssl_cert_reqs": "required"}
    if settings.certificate:
        options |= {"ssl_certfile": settings.certificate, "ssl_keyfile": settings.key}
    if settings.cas:
        options["ssl_ca_data"] = "".join(pathlib.Path(path).read_text() for path in settings.cas)
    return options


def redis_cache(settings: config.Redis) -> RedisCache:
    """The cache registry:2's ``redis`` section describes, in its 2.8 or its 3 layout;
    a timeout or size of 0 keeps redis-py's (5s timeouts, no bound on connections)."""
    address = Address.parse(settings.address)
    given: dict[str, Any] = {
        "socket_connect_timeout": settings.dialtimeout,
        "socket_timeout": max(settings.readtimeout, settings.writetimeout),
        "max_connections": settings.max_connections,
        "username": settings.username,
        "password": settings.password,
        "client_name": settings.clientname,
    }
    pool = _Pool(
        max_idle=settings.max_idle, idle_timeout=settings.idle_timeout,
        host=address.host or "127.0.0.1", port=address.port, db=settings.db,
        **{name: value for name, value in given.items() if value}, **_tls_options(settings.tls),
        # One immediate retry (a pooled connection the server closed), never seconds of backoff per request.
        retry=Retry(NoBackoff(), 1),
    )
    return RedisCache(redis.asyncio.Redis(connection_pool=pool), settings.address)
