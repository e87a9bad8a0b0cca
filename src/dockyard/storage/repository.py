"""One repository's links: its layers, manifest revisions, tags and referrers.

Content itself lives in the shared :class:`~dockyard.storage.blobs.BlobStore`; a
repository only holds link files naming digests, as registry:2 does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass

from dockyard import config
from dockyard import manifest as manifests
from dockyard.errors import BlobUnknown, DigestInvalid, ManifestBlobUnknown, ManifestInvalid, ManifestUnknown, TagImmutable
from dockyard.manifest import Descriptor, Manifest
from dockyard.memo import remembered
from dockyard.reference import Digest, parse_digest
from dockyard.storage import paths
from dockyard.storage.blobs import BlobStore
from dockyard.storage.cache import layer_key, tag_key
from dockyard.storage.driver import PathNotFound, StorageDriver
from dockyard.storage.immutable import ImmutableTags
from dockyard.storage.quotas import Quotas

log = logging.getLogger("dockyard.storage")
# Every manifest GET reads a link or two, most of them among a few: each content is parsed once
# while it is among the last LINKS_KEPT read (a link is 71 bytes, or 135 for sha512).
LINKS_KEPT = 4096
LINK_KEPT_MAX = 160


@dataclass(frozen=True)
class _TagState:
    """A tag before a push moves it."""

    named: Digest | None
    listed: bool
    """whether the tag's history already names the pushed manifest"""


def _joined(patterns: Sequence[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(f"(?:{pattern})" for pattern in patterns)) if patterns else None


@dataclass(frozen=True)
class PushRules:
    """What a pushed manifest's references must meet besides being here: registry:2's ``validation`` section.

    A layer's URLs must be http or https without a fragment, match ``allow_urls`` (when set) and not
    ``deny_urls``. With neither set, registry:2 allows no URL, but the OCI distribution spec's
    conformance suite pushes non-distributable layers that name URLs and expects them taken: that
    default is kept (docs/registry2-config.md says so). An index's manifests must be
    here, those of ``index_platforms`` only (OS and architecture) when it is set, none without ``check_index``.
    """

    allow_urls: re.Pattern[str] | None = None
    deny_urls: re.Pattern[str] | None = None
    check_index: bool = True
    index_platforms: frozenset[tuple[str, str]] = frozenset()

    @classmethod
    def of(cls, validation: config.Validation) -> PushRules:
        urls, indexes = validation.manifests.urls, validation.manifests.indexes
        return cls(
            allow_urls=_joined(urls.allow), deny_urls=_joined(urls.deny), check_index=indexes.platforms != "none",
            index_platforms=frozenset((platform.os, platform.architecture) for platform in indexes.platformlist)
            if indexes.platforms == "list" else frozenset(),
        )

    def url_allowed(self, url: str) -> bool:
        parsed = urllib.parse.urlsplit(url)
        return (
            parsed.scheme in ("http", "https") and not parsed.fragment
            and (self.allow_urls is None or self.allow_urls.search(url) is not None)
            and (self.deny_urls is None or self.deny_urls.search(url) is None)
        )

    def child_checked(self, descriptor: Descriptor) -> bool:
        if not self.check_index:
            return False
        if not self.index_platforms:
            return True
        platform = descriptor.platform or {}
        return (platform.get("os"), platform.get("architecture")) in self.index_platforms


def _immutable(tag: str, named: Digest | None) -> TagImmutable:
    """The refusal to move or delete ``tag`` (``named``: what it names, ``None`` if its link is unreadable)."""
    return TagImmutable(f"tag {tag} is immutable: it names {named or 'another manifest'}", detail={"tag": tag, "digest": str(named)})


class Repository:
    def __init__(
        self, driver: StorageDriver, blobs: BlobStore, name: str, rules: PushRules = PushRules(), quotas: Quotas | None = None,
        immutable: ImmutableTags = ImmutableTags(),
    ) -> None:
        self.driver = driver
        self.blobs = blobs
        self.name = name
        self.cache = blobs.cache
        self.rules = rules
        self.quotas = quotas or Quotas(driver, blobs.cache)
        self.immutable = immutable

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
        return _link_target(content)

    async def _has_link(self, path: str, digest: Digest) -> bool:
        return await self._read_link(path) == digest

    # Layers (and configs, and any blob pushed to the repository)

    async def layer_size(self, digest: Digest) -> int:
        """The size of a blob readable in this repository, or :class:`BlobUnknown`."""
        key = layer_key(self.name, digest)
        (linked,) = await self.cache.get(key)
        if linked is None:
            if not await self._has_link(paths.layer_link(self.name, digest), digest):
                raise BlobUnknown(detail={"digest": str(digest)})
            await self.cache.fill(key, "1")
        return await self.blobs.size(digest)

    async def has_layer(self, digest: Digest) -> bool:
        try:
            await self.layer_size(digest)
        except BlobUnknown:
            return False
        return True

    async def links(self, digest: Digest) -> bool:
        """Whether the repository links the blob, as a layer or as a manifest (what a quota counts)."""
        return await self._has_link(paths.layer_link(self.name, digest), digest) or await self.has_manifest(digest)

    def admitting(self, blobs: Mapping[Digest, int], enforce: bool = True) -> contextlib.AbstractAsyncContextManager[None]:
        """Reserve ``blobs`` (digest → size) under the quotas while the block links them (see :meth:`Quotas.admitting`)."""
        return self.quotas.admitting(self.name, blobs, self.links, enforce)

    async def link_layer(self, digest: Digest) -> None:
        """Link a stored blob; :class:`BlobUnknown` if a garbage collection took it meanwhile.

        The link is written even when it is there, so its time says when the blob was
        last linked (the collector's grace period), and the blob is looked at after it
        (see :mod:`dockyard.maintenance.gc`).
        """
        await self.driver.put_content(paths.layer_link(self.name, digest), str(digest).encode())
        if not await self.blobs.exists(digest):
            raise BlobUnknown("the blob was garbage collected meanwhile: push it again", detail={"digest": str(digest)})

    async def unlink_layer(self, digest: Digest) -> None:
        if not await self._has_link(paths.layer_link(self.name, digest), digest):
            raise BlobUnknown(detail={"digest": str(digest)})
        async with self.cache.changing(layer_key(self.name, digest)):
            await self.driver.delete(paths.layer_dir(self.name, digest))
        await self.quotas.release(self.name, [digest], self.links)

    # Manifests

    async def resolve_tag(self, tag: str) -> Digest:
        key = tag_key(self.name, tag)
        if self.cache.remembers:
            (cached,) = await self.cache.get(key)
            if cached is not None:
                return parse_digest(cached)
        digest = await self._read_link(paths.tag_current_link(self.name, tag))
        if digest is None:
            raise ManifestUnknown(f"unknown tag {tag!r}", detail={"tag": tag})
        if self.cache.remembers:
            await self.cache.fill(key, str(digest))
        return digest

    async def has_manifest(self, digest: Digest) -> bool:
        return await self._has_link(paths.revision_link(self.name, digest), digest)

    async def get_manifest(self, digest: Digest) -> bytes:
        if not await self.has_manifest(digest):
            raise ManifestUnknown(detail={"digest": str(digest)})
        try:
            return await self.blobs.get(digest)
        except BlobUnknown:
            raise ManifestUnknown(detail={"digest": str(digest)}) from None

    async def check_references(self, manifest: Manifest) -> None:
        """Every blob and child manifest a pushed manifest names must be here (as :class:`PushRules` say),
        and every URL it names allowed."""
        for descriptor in manifest.blobs:
            refused = next((url for url in descriptor.urls if not self.rules.url_allowed(url)), None)
            if refused is not None:
                raise ManifestInvalid(
                    "a layer names a URL this registry does not allow (validation.manifests.urls)",
                    detail={"digest": str(descriptor.digest), "url": refused[:200]},
                )

        async def check_blob(descriptor: Descriptor) -> None:
            if not descriptor.is_foreign and not await self.has_layer(descriptor.digest):
                raise ManifestBlobUnknown(detail={"digest": str(descriptor.digest)})

        async def check_child(descriptor: Descriptor) -> None:
            if not await self.has_manifest(descriptor.digest):
                raise ManifestBlobUnknown(
                    "the index names a manifest that is not in the repository",
                    detail={"digest": str(descriptor.digest)},
                )

        checked_children = [child for child in manifest.children if self.rules.child_checked(child)]
        await asyncio.gather(*map(check_blob, manifest.blobs), *map(check_child, checked_children))

    async def put_manifest(
        self, content: bytes, manifest: Manifest, digest: Digest, tags: Sequence[str] = (),
    ) -> dict[str, Digest | None]:
        """Store and link a manifest, then point ``tags`` at it; answers what each tag named before.

        This is the pusher's side of the collector's handshake (see
        :mod:`dockyard.maintenance.gc`). A push intent names the manifest from before the
        first check until the tags name it, so a collection keeps it meanwhile. The links
        are written, then what they name is checked again, so a collection running
        meanwhile either sees the links and keeps what they name, or set something aside
        before the check, which then fails. Tags move only once nothing else can fail, so
        a refused push leaves them as they were. A push that fails removes the links it
        created (and puts back the tags it moved, if a tag write failed). The manifest is
        reserved under the quotas before it is stored (:meth:`admitting`).
        """
        async with self.pushing(digest):
            await self.check_references(manifest)
            absent = await self._absent_links(manifest, digest)
            before = dict(zip(tags, await asyncio.gather(*(self._tag_state(tag, digest) for tag in tags)), strict=True))
            for tag, state in before.items():  # refused before anything is stored (tag() checks again as it moves it)
                if state.named not in (None, digest) and self.immutable.covers(self.name, tag):
                    raise _immutable(tag, state.named)
            # Its reservation is given back after the links are removed (it stays for what stays linked).
            async with self.admitting({digest: len(content)}):
                try:
                    await self.blobs.put(content, digest)
                    await self._link_manifest(manifest, digest)
                    await self._check_linked(content, manifest, digest)
                    for tag in tags:
                        await self.tag(tag, digest)
                except BaseException:  # refused, failed or cancelled: the push did not happen
                    for tag, state in before.items():
                        await self._restore_tag(tag, digest, state)
                    for folder in absent:
                        with contextlib.suppress(PathNotFound):
                            await self.driver.delete(folder)
                    raise
        return {tag: state.named for tag, state in before.items()}

    async def store_manifest(self, content: bytes, manifest: Manifest, digest: Digest) -> None:
        """Store and link a verified manifest whose blobs and children need not be here: a pull-through
        cache's, which fetches each of those when a client asks for it. Counted by the quotas, never refused."""
        async with self.admitting({digest: len(content)}, enforce=False):
            await self.blobs.put(content, digest)
            await self._link_manifest(manifest, digest)

    @contextlib.asynccontextmanager
    async def pushing(self, digest: Digest) -> AsyncIterator[None]:
        """Name ``digest`` in a push intent of its own (two pushes of one manifest never
        remove each other's) while the block runs; the collector keeps what it names."""
        path = paths.push_intent(uuid.uuid4().hex)
        await self.driver.put_content(path, f"{self.name}\n{digest}".encode())
        try:
            yield
        finally:
            try:
                await self.driver.delete(path)
            except Exception:  # the push's outcome stands: a leftover intent only delays a collection
                log.warning("could not remove the push intent %s", path, exc_info=True)

    def _manifest_links(self, manifest: Manifest, digest: Digest) -> dict[str, str]:
        """The revision link, and the referrer link of a manifest with a subject; each with its folder."""
        links = {paths.revision_link(self.name, digest): paths.revision_dir(self.name, digest)}
        if manifest.subject is not None:
            subject = manifest.subject.digest
            links[paths.referrer_link(self.name, subject, digest)] = paths.referrer_dir(self.name, subject, digest)
        return links

    async def _absent_links(self, manifest: Manifest, digest: Digest) -> list[str]:
        """The folders of the links a push of ``digest`` creates (to remove if it fails)."""
        links = self._manifest_links(manifest, digest)
        present = await asyncio.gather(*(self._has_link(link, digest) for link in links))
        return [folder for folder, there in zip(links.values(), present, strict=True) if not there]

    async def _link_manifest(self, manifest: Manifest, digest: Digest) -> None:
        # Written even when it is there: its time says when the manifest was last pushed.
        for link in self._manifest_links(manifest, digest):
            await self.driver.put_content(link, str(digest).encode())

    async def _check_linked(self, content: bytes, manifest: Manifest, digest: Digest) -> None:
        """After linking: link again and store again what a collection set aside since,
        then check the references (:class:`ManifestBlobUnknown` if one was collected)."""
        if not await self.has_manifest(digest):
            await self._link_manifest(manifest, digest)
        await self.blobs.put(content, digest)
        await self.check_references(manifest)

    async def _tag_state(self, tag: str, digest: Digest) -> _TagState:
        named = await self._read_link(paths.tag_current_link(self.name, tag))
        listed = named is not None and await self._has_link(paths.tag_index_link(self.name, tag, digest), digest)
        return _TagState(named, listed)

    async def _restore_tag(self, tag: str, digest: Digest, state: _TagState) -> None:
        """Point ``tag`` back to what it named before a failed push moved it to ``digest``."""
        current = paths.tag_current_link(self.name, tag)
        # Named it before (never moved), or not moved yet, or moved again by another push.
        if state.named == digest or await self._read_link(current) != digest:
            return
        async with self.cache.changing(tag_key(self.name, tag)):
            if state.named is None:
                await self.driver.delete(paths.tag(self.name, tag))
                return
            await self.driver.put_content(current, str(state.named).encode())
            if not state.listed:
                with contextlib.suppress(PathNotFound):
                    await self.driver.delete(paths.tag_index_dir(self.name, tag, digest))

    async def tag(self, tag: str, digest: Digest) -> None:
        """Point ``tag`` at ``digest``; :class:`TagImmutable` if it is immutable and names another manifest."""
        index, current = paths.tag_index_link(self.name, tag, digest), paths.tag_current_link(self.name, tag)
        if not self.immutable.covers(self.name, tag):
            await self.driver.put_content(index, str(digest).encode())
            async with self.cache.changing(tag_key(self.name, tag)):
                await self.driver.put_content(current, str(digest).encode())
            return
        # Created only where there is none: of two first pushes racing, one creates it and the other reads it.
        async with self.cache.changing(tag_key(self.name, tag)):
            created = await self.driver.create(current, str(digest).encode())
        named = digest if created else await self._read_link(current)
        if named != digest:
            raise _immutable(tag, named)
        await self.driver.put_content(index, str(digest).encode())

    async def immutable_tags(self, digest: Digest | None = None) -> list[str]:
        """This repository's immutable tags (those naming ``digest`` only, when given)."""
        if not self.immutable.may_cover(self.name):
            return []
        covered = [tag for tag in await self.tags() if self.immutable.covers(self.name, tag)]
        if digest is None:
            return covered
        named = await asyncio.gather(*(self._read_link(paths.tag_current_link(self.name, tag)) for tag in covered))
        return [tag for tag, points in zip(covered, named, strict=True) if points == digest]

    async def untag(self, tag: str) -> None:
        named = await self._read_link(paths.tag_current_link(self.name, tag))
        if named is None:
            raise ManifestUnknown(f"unknown tag {tag!r}", detail={"tag": tag})
        if self.immutable.covers(self.name, tag):
            raise _immutable(tag, named)
        async with self.cache.changing(tag_key(self.name, tag)):
            await self.driver.delete(paths.tag(self.name, tag))

    async def delete_manifest(self, digest: Digest) -> None:
        """Remove a manifest from the repository, with every tag that points to it; :class:`TagImmutable`
        (and nothing removed) if an immutable tag points to it."""
        content = await self.get_manifest(digest)
        if held := await self.immutable_tags(digest):
            raise _immutable(held[0], digest)
        for tag in await self.tags():
            if await self._read_link(paths.tag_current_link(self.name, tag)) == digest:
                async with self.cache.changing(tag_key(self.name, tag)):
                    await self.driver.delete(paths.tag(self.name, tag))
        try:
            subject = manifests.referrer_subject(content)
        except ValueError:
            subject = None
        if subject is not None:
            await self.unlink_referrer(subject, digest)
        await self.driver.delete(paths.revision_dir(self.name, digest))
        await self.quotas.release(self.name, [digest], self.links)

    async def unlink_referrer(self, subject: Digest, digest: Digest) -> None:
        """Drop ``digest`` from ``subject``'s referrers (already gone: nothing to do)."""
        with contextlib.suppress(PathNotFound):
            await self.driver.delete(paths.referrer_dir(self.name, subject, digest))

    # Garbage collection sets a manifest's revision link aside before it decides (and unlinks
    # it as a referrer), so a push that links it meanwhile is seen (see :mod:`dockyard.maintenance.gc`).

    async def put_back_manifest(self, digest: Digest, subject: Digest | None) -> None:
        if not await self.has_manifest(digest):  # else pushed again meanwhile
            await self.driver.move(paths.condemned_revision_link(self.name, digest), paths.revision_link(self.name, digest))
        await self.driver.delete(paths.condemned_revision_dir(self.name, digest))
        if subject is not None:
            await self.link_referrer(subject, digest)

    async def forget_tag_history(self, digests: Collection[Digest]) -> None:
        """Delete the tag history entries naming manifests a collection removed (as registry:2's collector does)."""
        # Every tag's history from one listing of the tags' tree (one request on S3, not one a tag):
        # most tags never named these digests, and a listing is cheaper than looking for each entry.
        forgotten = set(digests)
        named: dict[str, set[Digest]] = {}
        for found in await self.driver.list_files(paths.tags(self.name)):
            entry = paths.parse_tag_index_entry(self.name, found.path)
            if entry is not None and entry[1] in forgotten:
                named.setdefault(entry[0], set()).add(entry[1])
        for tag, entries in sorted(named.items()):
            # The entry of what the tag names now stays (moved onto it since the mark).
            current = await self._read_link(paths.tag_current_link(self.name, tag))
            for digest in sorted(entries - {current}, key=str):
                with contextlib.suppress(PathNotFound):
                    await self.driver.delete(paths.tag_index_dir(self.name, tag, digest))

    async def tags(self, after: str = "", limit: int | None = None) -> list[str]:
        """The first ``limit`` (all when ``None``) sorted tags after ``after``."""
        return await self.driver.list_page(paths.tags(self.name), after, limit)

    async def link_referrer(self, subject: Digest, digest: Digest) -> None:
        await self.driver.put_content(paths.referrer_link(self.name, subject, digest), str(digest).encode())

    async def referrers(self, subject: Digest) -> list[Descriptor]:
        directory = paths.referrers(self.name, subject)
        found: list[Descriptor] = []
        try:
            algorithms = await self.driver.list(directory)
        except PathNotFound:
            return found
        for algorithm in algorithms:
            try:
                encoded = await self.driver.list(paths.algorithm_folder(directory, algorithm))
            except PathNotFound:
                continue
            for hex_digest in encoded:
                # A listed name, not a request's: the path stays inside the folder listed.
                digest = await self._read_link(paths.referrer_link(self.name, subject, Digest(algorithm, hex_digest)))
                if digest is None or not await self.has_manifest(digest):
                    continue
                try:
                    content = await self.blobs.get(digest)
                except BlobUnknown:
                    continue
                found.append(manifests.referrer_descriptor(content, digest))
        return sorted(found, key=lambda descriptor: str(descriptor.digest))


@remembered(LINKS_KEPT, LINK_KEPT_MAX)
def _link_target(content: bytes) -> Digest | None:
    """The digest a link file names; ``None`` for anything else (a damaged link names nothing)."""
    try:
        return parse_digest(content.decode("ascii").strip())
    except (UnicodeDecodeError, DigestInvalid):
        return None
