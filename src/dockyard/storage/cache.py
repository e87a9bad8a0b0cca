"""A cache of storage lookups that every replica shares (blob sizes, layer links, tags), and locks.

Without Redis (:class:`StorageCache`) nothing is cached and every lookup reads
storage: a per-process cache (registry:2's ``blobdescriptor: inmemory``) would go on
claiming a blob deleted through another replica. With Redis (:class:`RedisCache`)
the read paths look here first (:mod:`dockyard.storage.redis_cache`).

What must never happen is distribution#4569: the cache says a deleted blob exists.
So a cached value is only ever a positive answer, filled with ``SET NX`` after a
storage read, and every change (delete, untag, tag move) goes through
:meth:`StorageCache.changing`, which writes a tombstone over the keys *before*
storage changes (if Redis cannot be reached, nothing is changed) and again after.
A tombstone is not a value, and while it lives a reader that read storage before the
change cannot fill its stale answer back in. The storage layer's delete paths
(:meth:`BlobStore.delete`, :meth:`Repository.unlink_layer`, :meth:`Repository.untag`,
:meth:`Repository.delete_manifest`) do this, so whatever deletes through them
(the API, garbage collection) keeps the cache right.

Redis also holds the locks that keep two replicas from appending to one upload at
once (:meth:`StorageCache.lock`), on storage whose driver cannot lock across machines
(S3); a lock whose holder died frees itself after :data:`LOCK_SECONDS`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from dockyard import config
from dockyard.reference import Digest

KEY_PREFIX = "dockyard:v1:"
TOMBSTONE = b"-"
# Longer than any storage read a reader could be in the middle of when a change lands.
TOMBSTONE_SECONDS = 60
# Bounds how long a change made behind Dockyard's back (a file removed by hand) can go unseen.
ENTRY_SECONDS = 3600
# A held lock is renewed every third of this; one whose holder was killed lapses after it.
LOCK_SECONDS = 10.0


def blob_key(digest: Digest) -> str:
    """The size of the blob's data in the global blob store."""
    return f"blob:{digest}"


def layer_key(name: str, digest: Digest) -> str:
    """``1``: ``name`` links the blob (pushed or mounted there)."""
    return f"layer:{name}@{digest}"


def tag_key(name: str, tag: str) -> str:
    """The digest ``name:tag`` points to."""
    return f"tag:{name}:{tag}"


class StorageCache:
    """No cache: every lookup misses, every change goes straight to storage."""

    remembers = False
    """Whether :meth:`get` can ever hit: the hottest read, a manifest GET's tag, skips asking and
    filling a cache that never remembers (two awaits of every GET by tag)."""

    async def get(self, *keys: str) -> list[str | None]:
        """The cached value of each key, ``None`` for a miss."""
        return [None] * len(keys)

    async def fill(self, key: str, value: str) -> None:
        """Remember what storage just said, unless the key changed meanwhile."""

    @contextlib.asynccontextmanager
    async def changing(self, *keys: str) -> AsyncIterator[None]:
        """Wrap a storage change that makes ``keys`` wrong."""
        yield

    @contextlib.asynccontextmanager
    async def lock(self, name: str) -> AsyncIterator[None]:
        """Hold ``name`` against every replica sharing this cache (without one: nothing to hold)."""
        yield

    async def close(self) -> None:
        pass


def cache_from_config(settings: config.Redis | None) -> StorageCache:
    """The cache registry:2's ``redis`` section describes (none without it), in its 2.8 or its 3 layout."""
    if settings is None:
        return StorageCache()
    # redis-py is imported only by the servers that use it: it costs each process megabytes.
    from dockyard.storage.redis_cache import redis_cache

    return redis_cache(settings)
