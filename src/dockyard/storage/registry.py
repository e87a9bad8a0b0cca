"""The registry as the API sees it: repositories, uploads and the catalog over one driver."""

from __future__ import annotations

from dockyard.errors import Unsupported
from dockyard.storage import catalog
from dockyard.storage.blobs import BlobStore
from dockyard.storage.cache import StorageCache
from dockyard.storage.driver import StorageDriver
from dockyard.storage.immutable import ImmutableTags
from dockyard.storage.repository import PushRules, Repository
from dockyard.storage.uploads import UploadStore

# registry:2's default for catalog.maxentries; dockyard's for tags.maxtags.
CATALOG_MAX_ENTRIES = 1000
TAGS_MAX_ENTRIES = 10_000


class Registry:
    def __init__(
        self, driver: StorageDriver, *, delete_enabled: bool = True, read_only: bool = False, cache: StorageCache | None = None,
        rules: PushRules = PushRules(), catalog_max_entries: int = CATALOG_MAX_ENTRIES,
        tags_max_entries: int = TAGS_MAX_ENTRIES, immutable: ImmutableTags = ImmutableTags(),
    ) -> None:
        self.driver = driver
        self.rules = rules
        self.immutable = immutable
        self.catalog_max_entries = catalog_max_entries
        """The largest page of the catalog, and the page a request without ``n`` gets."""
        self.tags_max_entries = tags_max_entries
        """The same for a repository's tags."""
        self.delete_enabled = delete_enabled
        self.read_only = read_only
        """Every write (push, delete, upload) is refused; the API dispatcher enforces it."""
        self.blobs = BlobStore(driver, cache)
        self.uploads = UploadStore(driver, self.blobs)

    def require_deletes(self) -> None:
        if not self.delete_enabled:
            raise Unsupported("deletes are disabled on this registry")

    def repository(self, name: str) -> Repository:
        return Repository(self.driver, self.blobs, name, self.rules, self.immutable)

    async def catalog(self) -> list[str]:
        return await catalog.repositories(self.driver)

    async def close(self) -> None:
        await self.blobs.cache.close()
        await self.driver.close()
