"""One repository's links: its layers, manifest revisions, tags and referrers.

Content itself lives in the shared :class:`~dockyard.storage.blobs.BlobStore`; a
repository only holds link files naming digests, as registry:2 does.
"""

from __future__ import annotations

import asyncio

from dockyard import manifest as manifests
from dockyard.api import errors
from dockyard.api.errors import RegistryError
from dockyard.manifest import Descriptor, Manifest
from dockyard.reference import Digest, parse_digest
from dockyard.storage import paths
from dockyard.storage.blobs import BlobStore
from dockyard.storage.driver import PathNotFound, StorageDriver


class Repository:
    def __init__(self, driver: StorageDriver, blobs: BlobStore, name: str) -> None:
        self.driver = driver
        self.blobs = blobs
        self.name = name

    async def exists(self) -> bool:
        try:
            return (await self.driver.stat(paths.repository(self.name))).is_dir
        except PathNotFound:
            return False

    async def _read_link(self, path: str) -> Digest | None:
        try:
            content = await self.driver.get_content(path)
        except PathNotFound:
            return None
        try:
            return parse_digest(content.decode("ascii").strip())
        except (UnicodeDecodeError, RegistryError):
            return None

    async def _has_link(self, path: str, digest: Digest) -> bool:
        return await self._read_link(path) == digest

    # Layers (and configs, and any blob pushed to the repository)

    async def layer_size(self, digest: Digest) -> int:
        """The size of a blob readable in this repository, or ``BLOB_UNKNOWN``."""
        if not await self._has_link(paths.layer_link(self.name, digest), digest):
            raise RegistryError(errors.BLOB_UNKNOWN, detail={"digest": str(digest)})
        return (await self.blobs.stat(digest)).size

    async def has_layer(self, digest: Digest) -> bool:
        try:
            await self.layer_size(digest)
        except RegistryError:
            return False
        return True

    async def link_layer(self, digest: Digest) -> None:
        path = paths.layer_link(self.name, digest)
        if not await self._has_link(path, digest):
            await self.driver.put_content(path, str(digest).encode())

    async def unlink_layer(self, digest: Digest) -> None:
        if not await self._has_link(paths.layer_link(self.name, digest), digest):
            raise RegistryError(errors.BLOB_UNKNOWN, detail={"digest": str(digest)})
        await self.driver.delete(paths.layer_link(self.name, digest).removesuffix("/link"))

    # Manifests

    async def resolve_tag(self, tag: str) -> Digest:
        digest = await self._read_link(paths.tag_current_link(self.name, tag))
        if digest is None:
            raise RegistryError(errors.MANIFEST_UNKNOWN, f"unknown tag {tag!r}", detail={"tag": tag})
        return digest

    async def has_manifest(self, digest: Digest) -> bool:
        return await self._has_link(paths.revision_link(self.name, digest), digest)

    async def get_manifest(self, digest: Digest) -> bytes:
        if not await self.has_manifest(digest):
            raise RegistryError(errors.MANIFEST_UNKNOWN, detail={"digest": str(digest)})
        try:
            return await self.blobs.get(digest)
        except RegistryError:
            raise RegistryError(errors.MANIFEST_UNKNOWN, detail={"digest": str(digest)}) from None

    async def check_references(self, manifest: Manifest) -> None:
        """Every blob and child manifest a pushed manifest names must be here."""

        async def check_blob(descriptor: Descriptor) -> None:
            foreign = descriptor.urls and descriptor.media_type in manifests.FOREIGN_LAYER_TYPES
            if not foreign and not await self.has_layer(descriptor.digest):
                raise RegistryError(errors.MANIFEST_BLOB_UNKNOWN, detail={"digest": str(descriptor.digest)})

        async def check_child(descriptor: Descriptor) -> None:
            if not await self.has_manifest(descriptor.digest):
                raise RegistryError(
                    errors.MANIFEST_UNKNOWN,
                    "the index names a manifest that is not in the repository",
                    detail={"digest": str(descriptor.digest)},
                )

        await asyncio.gather(*map(check_blob, manifest.blobs), *map(check_child, manifest.children))

    async def put_manifest(self, content: bytes, manifest: Manifest, digest: Digest, tag: str | None) -> None:
        await self.check_references(manifest)
        await self.blobs.put(content, digest)
        revision = paths.revision_link(self.name, digest)
        if not await self._has_link(revision, digest):
            await self.driver.put_content(revision, str(digest).encode())
        if manifest.subject is not None:
            await self.driver.put_content(
                paths.referrer_link(self.name, manifest.subject.digest, digest), str(digest).encode()
            )
        if tag is not None:
            await self.tag(tag, digest)

    async def tag(self, tag: str, digest: Digest) -> None:
        await self.driver.put_content(paths.tag_index_link(self.name, tag, digest), str(digest).encode())
        await self.driver.put_content(paths.tag_current_link(self.name, tag), str(digest).encode())

    async def untag(self, tag: str) -> None:
        await self.resolve_tag(tag)
        await self.driver.delete(paths.tag(self.name, tag))

    async def delete_manifest(self, digest: Digest) -> None:
        """Remove a manifest from the repository, with every tag that points to it."""
        content = await self.get_manifest(digest)
        for tag in await self.tags():
            if await self._read_link(paths.tag_current_link(self.name, tag)) == digest:
                await self.driver.delete(paths.tag(self.name, tag))
        try:
            subject = manifests.referrer_subject(content)
        except ValueError:
            subject = None
        if subject is not None:
            try:
                await self.driver.delete(paths.referrer_link(self.name, subject, digest).removesuffix("/link"))
            except PathNotFound:
                pass
        await self.driver.delete(paths.revision_link(self.name, digest).removesuffix("/link"))

    async def tags(self) -> list[str]:
        directory = paths.tags(self.name)
        return (await self.driver.list_sorted([directory])).get(directory, [])

    async def referrers(self, subject: Digest) -> list[Descriptor]:
        directory = paths.referrers(self.name, subject)
        found: list[Descriptor] = []
        try:
            algorithms = await self.driver.list(directory)
        except PathNotFound:
            return found
        for algorithm in algorithms:
            try:
                encoded = await self.driver.list(f"{directory}/{algorithm}")
            except PathNotFound:
                continue
            for hex_digest in encoded:
                digest = await self._read_link(f"{directory}/{algorithm}/{hex_digest}/link")
                if digest is None or not await self.has_manifest(digest):
                    continue
                try:
                    content = await self.blobs.get(digest)
                except RegistryError:
                    continue
                found.append(manifests.referrer_descriptor(content, digest))
        return sorted(found, key=lambda descriptor: str(descriptor.digest))
