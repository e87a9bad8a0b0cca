"""The global blob store: content addressed, shared by every repository."""

from __future__ import annotations

from collections.abc import Mapping

from dockyard.errors import BlobUnknown
from dockyard.reference import Digest
from dockyard.storage import paths
from dockyard.storage.cache import StorageCache, blob_key
from dockyard.storage.driver import FileInfo, Move, PathNotFound, StorageDriver


class BlobStore:
    def __init__(self, driver: StorageDriver, cache: StorageCache | None = None) -> None:
        self.driver = driver
        self.cache = cache or StorageCache()

    async def stat(self, digest: Digest) -> FileInfo:
        try:
            info = await self.driver.stat(paths.blob_data(digest))
        except PathNotFound:
            raise BlobUnknown(detail={"digest": str(digest)}) from None
        if info.is_dir:
            raise BlobUnknown(detail={"digest": str(digest)})
        return info

    async def size(self, digest: Digest) -> int:
        """The blob's size, from the shared cache when it is there (the read paths' lookup)."""
        (cached,) = await self.cache.get(blob_key(digest))
        if cached is not None:
            return int(cached)
        size = (await self.stat(digest)).size
        await self.cache.fill(blob_key(digest), str(size))
        return size

    async def delete(self, digest: Digest) -> None:
        """Remove the blob's data (garbage collection), and what the cache says of it."""
        async with self.cache.changing(blob_key(digest)):
            try:
                await self.driver.delete(paths.blob_dir(digest))
            except PathNotFound:
                raise BlobUnknown(detail={"digest": str(digest)}) from None

    async def set_aside(self, destinations: Mapping[Digest, str], unless_modified_since: float | None = None) -> list[Digest]:
        """Move each blob's data out of the store to its destination (garbage collection's
        condemned blobs, scrub's quarantine); the blobs moved. One gone, or stored again at or
        after ``unless_modified_since``, stays."""
        moves = {Move(paths.blob_data(digest), destination, unless_modified_since): digest for digest, destination in destinations.items()}
        async with self.cache.changing(*(blob_key(digest) for digest in destinations)):
            moved = await self.driver.move_files(list(moves))
        return [moves[move] for move in moved]

    async def put_back(self, digest: Digest, source: str) -> None:
        """Return data set aside to the store; if the blob was stored again meanwhile, drop ``source``."""
        async with self.cache.changing(blob_key(digest)):
            if await self.exists(digest):
                await self.driver.delete(source)
            else:
                await self.driver.move(source, paths.blob_data(digest))

    async def exists(self, digest: Digest) -> bool:
        try:
            await self.stat(digest)
        except BlobUnknown:
            return False
        return True

    async def get(self, digest: Digest) -> bytes:
        try:
            return await self.driver.get_content(paths.blob_data(digest))
        except PathNotFound:
            raise BlobUnknown(detail={"digest": str(digest)}) from None

    async def put(self, content: bytes, digest: Digest) -> None:
        """Store small verified content (a manifest) under its digest."""
        if not await self.exists(digest):
            await self.driver.put_content(paths.blob_data(digest), content)

    async def ingest(self, source: str, digest: Digest) -> None:
        """Move a verified upload's data into place, unless the blob is already there."""
        if await self.exists(digest):
            await self.driver.delete(source)
        else:
            await self.driver.move(source, paths.blob_data(digest))
