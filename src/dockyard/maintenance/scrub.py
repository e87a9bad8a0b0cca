"""Scrub: re-hash every blob and check every link; with ``repair``, fix what can be fixed
without losing data.

- A blob whose content does not hash to its digest is *corrupt*; repair moves its data
  to ``dockyard/quarantine/<alg>/<hex>`` (outside ``blobs/``, which garbage collection
  and registry:2 never look at), so nothing is deleted and clients get ``BLOB_UNKNOWN``
  instead of wrong bytes; the next push of that blob stores it again.
- A link naming something that is not there is *dangling*: a tag whose manifest
  revision is gone, a revision whose manifest content is gone, a referrer link whose
  manifest is gone. Repair deletes the link. Scrub holds the collectors' lock, so it
  never meets a collection half done.
- A blob (or index child) that a kept manifest needs, but that is not stored, is
  *missing*: the image cannot be pulled. Kept means what garbage collection keeps
  without untagged manifests: the tagged ones, their index children and referrers.
  It is reported by name and never repaired (only a push can bring the blob back).
- Any other layer link whose blob is gone is *stale*, not a failure: registry:2's
  collector and Dockyard's leave them (as registry:2 2.8 does), and they only make the
  registry answer ``BLOB_UNKNOWN``, which sends a client to upload the blob again. They
  are reported and repaired (written back if a push stores the blob meanwhile), but do
  not make scrub fail.
- A manifest with a ``subject`` but no referrer link is a *missing referrer link*: the
  referrers API would not list it. registry:2 writes no such links, so every referrer
  pushed through it (before a switch to Dockyard, or by a registry:2 sharing the root)
  is one. Repair writes the link: ``scrub --repair`` is how a root registry:2 wrote gets
  the referrers index a push to Dockyard would have built.
- A temporary file in a blob's folder, or a blob folder that holds nothing, is a
  *leftover* of a write that was interrupted (``kill -9``, a full disk). Reported, not a
  failure; garbage collection removes them once older than its grace period.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from dockyard.concurrency import gather_bounded
from dockyard.errors import BlobUnknown, ManifestUnknown
from dockyard.maintenance import inventory
from dockyard.maintenance.gc import exclusive
from dockyard.maintenance.inventory import BlobInfo, RepositoryLinks
from dockyard.maintenance.marks import ManifestReader, mark_repository
from dockyard.maintenance.progress import Progress
from dockyard.reference import Digest
from dockyard.storage import paths
from dockyard.storage.driver import PathNotFound
from dockyard.storage.registry import Registry

HASHING_CONCURRENCY = 4
STALE_LAYER_LINK = "stale layer link"
LEFTOVER_KINDS = ("temporary file", "empty blob folder")  # inventory.Leftover.kind


@dataclass(frozen=True)
class Problem:
    kind: str  # corrupt blob, dangling tag, dangling revision, missing blob, stale layer link,
    # dangling referrer link, missing referrer link, temporary file, empty blob folder
    where: str
    repaired: bool = False

    @property
    def harmless(self) -> bool:
        return self.kind == STALE_LAYER_LINK or self.kind in LEFTOVER_KINDS

    def __str__(self) -> str:
        return f"{self.kind}: {self.where}{' (repaired)' if self.repaired else ''}"


@dataclass
class ScrubReport:
    blobs: int = 0
    bytes: int = 0
    links: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def failures(self) -> list[Problem]:
        return [problem for problem in self.problems if not problem.harmless]

    def summary(self) -> str:
        stale = sum(problem.kind == STALE_LAYER_LINK for problem in self.problems)
        leftovers = sum(problem.kind in LEFTOVER_KINDS for problem in self.problems)
        return (
            f"{self.blobs} blobs ({self.bytes} bytes) re-hashed, {self.links} links checked, "
            f"{len(self.failures)} problems, {stale} stale layer links, {leftovers} leftovers of interrupted writes"
        )


class Scrubber:
    def __init__(self, registry: Registry, repair: bool, progress: Progress | None = None) -> None:
        self.registry = registry
        self.driver = registry.driver
        self.repair = repair
        self.progress = progress or Progress()
        self.reader = ManifestReader(self.driver)

    async def run(self) -> ScrubReport:
        async with exclusive(self.driver):
            report = ScrubReport()
            store = await inventory.blob_store(self.driver)
            for leftover in store.leftovers:
                report.problems.append(Problem(leftover.kind, leftover.path))
            quarantined = await self._hash_all(store.blobs, report)
            stored = {blob.digest for blob in store.blobs} - quarantined
            names = await inventory.repository_names(self.driver)
            for links in await gather_bounded(names, lambda name: inventory.read_repository(self.driver, name)):
                await self._check_links(links, stored, report)
            return report

    async def _hash_all(self, blobs: list[BlobInfo], report: ScrubReport) -> set[Digest]:
        """Re-hash every blob; the corrupt ones that were quarantined."""
        stage = self.progress.stage("re-hashing blobs", len(blobs))
        quarantined: set[Digest] = set()

        async def one(blob: BlobInfo) -> None:
            hasher = hashlib.new(blob.digest.algorithm)
            try:
                async for chunk in self.driver.read(paths.blob_data(blob.digest)):
                    await asyncio.to_thread(hasher.update, chunk)  # off the event loop: big blobs
            except PathNotFound:  # collected or quarantined meanwhile
                return
            report.blobs += 1
            report.bytes += blob.size
            stage.advance(1, blob.size)
            if hasher.hexdigest() != blob.digest.hex:
                if self.repair:
                    quarantined.update(await self.registry.blobs.set_aside({blob.digest: paths.quarantined_blob(blob.digest)}))
                report.problems.append(Problem("corrupt blob", str(blob.digest), self.repair))

        await gather_bounded(blobs, one, HASHING_CONCURRENCY)
        stage.close()
        return quarantined

    async def _check_links(self, links: RepositoryLinks, stored: set[Digest], report: ScrubReport) -> None:
        name = links.name
        repository = self.registry.repository(name)
        report.links += len(links.tags) + len(links.revisions) + len(links.layers) + sum(map(len, links.referrers.values()))

        async def dangling(kind: str, where: str, fix: Callable[[], Awaitable[object]]) -> None:
            if self.repair:
                try:
                    await fix()
                except (PathNotFound, BlobUnknown, ManifestUnknown):  # fixed meanwhile
                    pass
            report.problems.append(Problem(kind, where, self.repair))

        for tag, digest in sorted(links.tags.items()):
            if digest not in links.revisions:
                await dangling("dangling tag", f"{name}:{tag} -> {digest}", functools.partial(repository.untag, tag))
        for digest in sorted(links.revisions, key=str):
            if digest not in stored:
                await dangling("dangling revision", f"{name}@{digest}", functools.partial(self.driver.delete, paths.revision_dir(name, digest)))
        missing = await self._check_kept(links, stored, report)
        for digest in sorted(links.layers - missing, key=str):
            if digest not in stored:
                await dangling(STALE_LAYER_LINK, f"{name} -> {digest}", functools.partial(self._unlink_layer, name, digest))
        for subject, found in sorted(links.referrers.items(), key=lambda item: str(item[0])):
            for digest in sorted(found - links.revisions, key=str):
                path = paths.referrer_dir(name, subject, digest)
                await dangling("dangling referrer link", f"{name}: {digest} refers to {subject}", functools.partial(self.driver.delete, path))
        references = await self.reader.references_of(sorted(links.revisions & stored, key=str))
        for digest, read in references.items():
            named = read.subject if read is not None else None
            if named is not None and digest not in links.referrers.get(named, set()):
                await dangling(
                    "missing referrer link", f"{name}: {digest} refers to {named}",
                    functools.partial(self._link_referrer, name, named, digest),
                )

    async def _check_kept(self, links: RepositoryLinks, stored: set[Digest], report: ScrubReport) -> set[Digest]:
        """Report what the kept manifests need and is not stored; the digests missing."""
        # Untagged revisions pushed before the end of time are not roots: only tags are.
        kept = (await mark_repository(links, self.reader, untagged_before=math.inf)).kept
        tags: dict[Digest, list[str]] = {}
        for tag, digest in sorted(links.tags.items()):
            tags.setdefault(digest, []).append(tag)
        missing: set[Digest] = set()
        for manifest, found in sorted((await self.reader.references_of(kept)).items(), key=lambda item: str(item[0])):
            if found is None:  # its own content is gone: a dangling revision
                continue
            named = f"{links.name}:{','.join(tags[manifest])}@{manifest}" if manifest in tags else f"{links.name}@{manifest}"
            needed = (set(found.blobs) - set(found.foreign)) | set(found.children)
            for digest in sorted(needed - stored, key=str):
                missing.add(digest)
                report.problems.append(Problem("missing blob", f"{named} needs {digest}"))
        return missing

    async def _link_referrer(self, name: str, subject: Digest, digest: Digest) -> None:
        repository = self.registry.repository(name)
        await repository.link_referrer(subject, digest)
        # Deleted meanwhile: no link left naming it.
        if not await repository.has_manifest(digest):
            await self.driver.delete(paths.referrer_dir(name, subject, digest))

    async def _unlink_layer(self, name: str, digest: Digest) -> None:
        repository = self.registry.repository(name)
        await repository.unlink_layer(digest)
        # A push that stored the blob meanwhile linked it first: it keeps its link.
        if await self.registry.blobs.exists(digest):
            await repository.link_layer(digest)
