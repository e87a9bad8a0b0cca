"""The registry as the API sees it: repositories, uploads and the catalog over one driver."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from dockyard.errors import RepositoryUnknown, TagImmutable, Unsupported, UploadUnknown
from dockyard.reference import Digest
from dockyard.storage import catalog, paths
from dockyard.storage.blobs import BlobStore
from dockyard.storage.cache import StorageCache, layer_key, tag_key
from dockyard.storage.driver import PathNotFound, StorageDriver
from dockyard.storage.immutable import ImmutableTags
from dockyard.storage.quotas import QuotaRule, Quotas
from dockyard.storage.repository import PushRules, Repository
from dockyard.storage.uploads import UploadStore

# registry:2's default for catalog.maxentries; dockyard's for tags.maxtags.
CATALOG_MAX_ENTRIES = 1000
TAGS_MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class DeletedRepository:
    """What a repository delete removed."""

    tags: list[str]
    manifests: int
    uploads: int
    """uploads in progress that were cancelled"""


class Registry:
    def __init__(
        self, driver: StorageDriver, *, delete_enabled: bool = True, read_only: bool = False, cache: StorageCache | None = None,
        rules: PushRules = PushRules(), catalog_max_entries: int = CATALOG_MAX_ENTRIES,
        tags_max_entries: int = TAGS_MAX_ENTRIES, quotas: Sequence[QuotaRule] = (), immutable: ImmutableTags = ImmutableTags(),
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
        self.quotas = Quotas(driver, self.blobs.cache, quotas)

    def require_deletes(self) -> None:
        if not self.delete_enabled:
            raise Unsupported("deletes are disabled on this registry")

    def repository(self, name: str) -> Repository:
        return Repository(self.driver, self.blobs, name, self.rules, self.quotas, self.immutable)

    async def catalog(self) -> list[str]:
        return await catalog.repositories(self.driver)

    async def delete_repository(self, name: str, force: bool = False) -> DeletedRepository:
        """Remove ``name``'s tags, manifests, layer links and uploads; :class:`RepositoryUnknown` if the
        catalog does not list it, :class:`TagImmutable` (nothing removed) if it holds an immutable tag,
        unless ``force``. Its blobs stay for the next garbage collection, which frees those no other
        repository links; the quotas matching it stop counting them at once. The names below it (``name/...``) are other repositories and stay.

        The catalog stops listing it once the last of its ``_`` folders is gone: its tags and manifests go
        first (nothing can be pulled), then its layer links, then its uploads, each cancelled under the
        upload's own lock (:meth:`UploadStore.cancel`), so a chunk being written finishes first and the
        client's next request is told the upload is unknown. A push that lands meanwhile makes the
        repository exist again, holding what that push wrote (an upload started after the listing, a
        blob mounted or a manifest pushed); nothing it leaves is out of a collection's or a purge's reach.
        """
        if not await catalog.is_repository(self.driver, name):
            raise RepositoryUnknown(f"no repository {name}", detail={"name": name})
        repository = self.repository(name)
        if not force and (held := await repository.immutable_tags()):
            raise TagImmutable(
                f"repository {name} holds immutable tags ({', '.join(held[:5])}{', ...' if len(held) > 5 else ''}): "
                "an admin may delete it with force", detail={"name": name, "tags": held[:100]},
            )
        tags = await repository.tags()
        layers = await self._digests_in(paths.layers(name))
        manifests = await self._digests_in(paths.revisions(name))
        keys = [tag_key(name, tag) for tag in tags] + [layer_key(name, digest) for digest in layers]
        async with self.blobs.cache.changing(*keys):
            for folder in (paths.manifests(name), paths.layers(name)):
                with contextlib.suppress(PathNotFound):
                    await self.driver.delete(folder)
        folder = paths.uploads(name)
        uploads = (await self.driver.list_sorted([folder])).get(folder, [])
        cancelled = 0
        for upload_id in uploads:
            try:
                await self.uploads.cancel(name, upload_id)
                cancelled += 1
            except UploadUnknown:  # finished or cancelled meanwhile, or a folder without its start time that no purge removes
                with contextlib.suppress(PathNotFound):
                    await self.driver.delete(paths.upload(name, upload_id))
        # Emptied folders a filesystem keeps: the catalog would list one holding ``_uploads``.
        await self.driver.remove_empty_folder(folder)
        parts = name.split("/")
        for end in range(len(parts), 0, -1):
            if not await self.driver.remove_empty_folder(paths.repository("/".join(parts[:end]))):
                break
        # Its quotas count its blobs no longer (those a push linked again meanwhile stay counted),
        # so the room is there for the next push, not only after the next collection.
        await self.quotas.release(name, {*layers, *manifests}, repository.links)
        return DeletedRepository(tags, len(manifests), cancelled)

    async def _digests_in(self, folder: str) -> list[Digest]:
        """The digests of a folder of ``<alg>/<hex>`` folders."""
        algorithms = (await self.driver.list_sorted([folder])).get(folder, [])
        listed = await self.driver.list_sorted([paths.algorithm_folder(folder, algorithm) for algorithm in algorithms])
        return [
            digest for algorithm in algorithms for hex_digest in listed.get(paths.algorithm_folder(folder, algorithm), [])
            if (digest := paths.parse_digest_folders(algorithm, hex_digest)) is not None
        ]

    async def close(self) -> None:
        await self.blobs.cache.close()
        await self.driver.close()
