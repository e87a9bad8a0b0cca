"""The global blob store: content addressed, shared by every repository."""

from __future__ import annotations

from dockyard.api import errors
from dockyard.api.errors import RegistryError
from dockyard.reference import Digest
from dockyard.storage import paths
from dockyard.storage.driver import FileInfo, PathNotFound, StorageDriver


class BlobStore:
    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver

    async def stat(self, digest: Digest) -> FileInfo:
        try:
            info = await self.driver.stat(paths.blob_data(digest))
        except PathNotFound:
            raise RegistryError(errors.BLOB_UNKNOWN, detail={"digest": str(digest)}) from None
        if info.is_dir:
            raise RegistryError(errors.BLOB_UNKNOWN, detail={"digest": str(digest)})
        return info

    async def exists(self, digest: Digest) -> bool:
        try:
            await self.stat(digest)
        except RegistryError:
            return False
        return True

    async def get(self, digest: Digest) -> bytes:
        try:
            return await self.driver.get_content(paths.blob_data(digest))
        except PathNotFound:
            raise RegistryError(errors.BLOB_UNKNOWN, detail={"digest": str(digest)}) from None

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
