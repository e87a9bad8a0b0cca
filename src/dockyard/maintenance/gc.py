"""Garbage collection that is safe while the registry serves pushes.

What it removes is what registry:2's ``garbage-collect`` removes, with the same
on-disk result: blob data under ``blobs/`` that no manifest references, and with
``delete_untagged`` (or a retention policy) the revision links (and tag history
entries) of manifests nothing keeps. ``_layers`` links stay, as in registry:2 2.8;
the now empty directories stay too (registry:2 ignores them, and removing a directory
cannot be made atomic against a push writing into it), except blob folders: what an
interrupted write left in one (a temporary file, or the folder holding nothing) is
removed once older than the grace period, the folder only while it is empty (a
filesystem's ``rmdir``; a write that made it meanwhile makes it again). What is kept: see
:mod:`dockyard.maintenance.marks`; unlike registry:2, ``delete_untagged`` keeps the
children of a kept index and the referrers of a kept manifest.

Safety while clients push, with ``T0`` the start and ``G`` the grace period:

1. *Fresh things are never candidates.* A blob whose data, or any ``_layers`` link to
   it, was written after ``T0 - G`` is kept; so is a revision pushed after that time.
   Uploads in progress protect nothing themselves: the blob they make is new. Every
   upload, mount and manifest push (re)writes its link, so a link's time is when the
   thing was last pushed (:meth:`Repository.link_layer`, :meth:`Repository.put_manifest`).
2. *Set aside, then look again.* Candidates are not deleted: revision links and blob
   data are moved to ``dockyard/gc/condemned/`` (each checked once more just before),
   then the whole mark runs a second time over the live links. What it finds linked
   now (a tag moved onto a set-aside manifest, a manifest pushed that names a set-aside
   blob, a fresh ``_layers`` link) is put back; only the rest is deleted.
3. *The pusher checks after it links* (:meth:`Repository.put_manifest`,
   :meth:`Repository.link_layer`): it writes every link first, then checks that what
   they name is still stored. The two sides write before they read, so at least one
   sees the other: either the push's links were written before the second mark read
   that repository (and the mark puts back what they name), or the set-aside happened
   before the push's check, which then fails and the client is told (a blob unknown
   error; it pushes again). A push the registry acknowledged is never broken.
4. *A push names its manifest until its tags do.* Before its first check a manifest
   push writes a push intent, ``dockyard/pushing/<id>`` (the repository and the
   digest), and removes it only after its tags moved; both marks keep what an intent
   names, like a tagged manifest. A manifest's tags move only once every check passed,
   so a refused push leaves them as they were and never has to put them back (to a
   manifest that was untagged meanwhile, which a collection could have taken). The
   second mark reads the intents before it reads any tag: an intent is removed only
   after the tags moved, so a mark that finds it gone then finds the tags naming the
   manifest (or a later push's, which its own intent or tags keep). An intent older
   than :data:`PUSH_INTENT_LIFETIME` (and the grace period) was left by a push that
   crashed, and is removed; until then it only keeps garbage a little longer.

``G`` covers a client's time between uploading a blob and pushing the manifest that
names it (docker uploads every layer, then the manifest); a longer gap, or a garbage
blob reused through ``HEAD``, makes that push fail and be retried, never lose data.
Storage times must agree with this machine's clock to well within ``G``. One
collection runs at a time (the lock ``dockyard/gc/lock``); blobs or links set aside by
a collection that was interrupted are put back by the next one before it starts.
One window is left: an untagged push-by-digest of an old unreachable manifest that
lands, and ends, between the collector's last look at its revision link and the
set-aside (one storage round trip) may lose that untagged manifest; a push with a tag
never can.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from dockyard.concurrency import gather_bounded
from dockyard.config import Retention
from dockyard.errors import ManifestUnknown
from dockyard.maintenance import inventory, retention
from dockyard.maintenance.inventory import BlobInfo, Leftover, PushIntent, RepositoryLinks, mtime
from dockyard.maintenance.marks import ManifestReader, RepositoryMarks, mark_repository
from dockyard.maintenance.progress import Progress
from dockyard.proxy.expiry import TtlLookup, never_expires, read_time
from dockyard.reference import Digest
from dockyard.sizes import human_size
from dockyard.storage import paths
from dockyard.storage.driver import Move, PathNotFound, StorageDriver
from dockyard.storage.registry import Registry

log = logging.getLogger("dockyard.gc")

# Repositories read together (each level of their directories in one listing call).
REPOSITORY_BATCH = 64
BATCHES_AT_ONCE = 4
# A push intent older than this (or than the grace period) was left by a push that crashed:
# a manifest PUT takes far less.
PUSH_INTENT_LIFETIME = 3600.0


@dataclass(frozen=True)
class Options:
    dry_run: bool = False
    delete_untagged: bool = False
    grace_period: float = 3600.0
    retention: Sequence[Retention] = ()
    ttl_for: TtlLookup = field(default=never_expires)
    """each repository's pull-through TTL (:func:`dockyard.proxy.expiry.ttl_lookup`)"""


@dataclass
class Report:
    dry_run: bool
    repositories: int = 0
    blobs_marked: int = 0
    tags_removed: list[tuple[str, str]] = field(default_factory=list)
    manifests_removed: list[tuple[str, Digest]] = field(default_factory=list)
    blobs_removed: list[Digest] = field(default_factory=list)
    bytes_freed: int = 0
    put_back: int = 0
    """set aside, then kept because a push linked them meanwhile"""
    leftovers_removed: int = 0
    """temporary files and empty folders interrupted writes left in blob folders, and
    the push intents of pushes that crashed"""

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        freed = "would free" if self.dry_run else "freed"
        parts = [
            f"{self.repositories} repositories, {self.blobs_marked} blobs marked",
            f"{verb} {len(self.tags_removed)} tags, {len(self.manifests_removed)} manifests and {len(self.blobs_removed)} blobs",
            f"{freed} {human_size(self.bytes_freed)} ({self.bytes_freed} bytes)",
        ]
        if self.leftovers_removed:
            parts.append(f"{verb} {self.leftovers_removed} leftovers of interrupted writes")
        if self.put_back:
            parts.append(f"{self.put_back} kept because pushes linked them during the collection")
        return "; ".join(parts)


@dataclass
class _Pass:
    links: dict[str, RepositoryLinks]
    marks: dict[str, RepositoryMarks]
    intents: list[PushIntent]

    def marked(self) -> set[Digest]:
        return set().union(*(marks.blobs for marks in self.marks.values()))


@contextlib.asynccontextmanager
async def exclusive(driver: StorageDriver) -> AsyncIterator[None]:
    """Hold the collectors' lock in storage (one collection at a time)."""
    try:
        await driver.stat(paths.GC_LOCK)
    except PathNotFound:
        await driver.put_content(paths.GC_LOCK, b"")
    async with driver.lock(paths.GC_LOCK):
        yield


class Collector:
    def __init__(self, registry: Registry, options: Options, progress: Progress | None = None, clock: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self.driver = registry.driver
        self.options = options
        self.progress = progress or Progress()
        self.clock = clock

    async def run(self) -> Report:
        if self.options.dry_run:  # writes nothing, not even the lock
            report = await self._collect()
        else:
            async with exclusive(self.driver):
                report = await self._collect()
            # What was removed leaves the quotas' counts: they are counted again.
            await self.registry.quotas.reconcile()
        log.info("garbage collection: %s", report.summary())
        return report

    def _untagged_before(self, name: str, started: float) -> float | None:
        """Unreachable revisions of ``name`` last pushed before this go; ``None``: none go."""
        ages = [0.0] if self.options.delete_untagged else []
        policy = retention.policy_for(name, self.options.retention)
        if policy is not None and policy.untagged_older_than is not None:
            ages.append(policy.untagged_older_than)
        return started - max(self.options.grace_period, min(ages)) if ages else None

    async def _collect(self) -> Report:
        started = self.clock()
        fresh_after = started - self.options.grace_period
        report = Report(dry_run=self.options.dry_run)
        if not self.options.dry_run:
            await self._put_back_leftovers()
        names = await inventory.repository_names(self.driver)
        report.repositories = len(names)
        reader = ManifestReader(self.driver)
        first = await self._mark(names, reader, started, report, apply_retention=True)
        marked = first.marked()
        report.blobs_marked = len(marked)
        store = await inventory.blob_store(self.driver)
        blobs = store.blobs
        # A write in progress has a fresh temporary file (and folder): old ones were interrupted.
        leftovers = [leftover for leftover in store.leftovers if leftover.mtime < fresh_after]
        abandoned_after = started - max(PUSH_INTENT_LIFETIME, self.options.grace_period)
        abandoned = [intent for intent in first.intents if intent.mtime < abandoned_after]
        # A download is written to as it arrives, and a fetch lock is made when its fetch starts:
        # past the grace period, the fetch crashed or ended long ago (one still running then may
        # be fetched a second time, never stored twice).
        abandoned_paths = [intent.path for intent in abandoned]
        abandoned_paths += [path for path, when in await inventory.proxy_leftovers(self.driver) if when < fresh_after]
        candidates = [blob for blob in blobs if blob.digest not in marked and blob.mtime < fresh_after]
        candidates = await self._without_fresh_links(candidates, first.links, fresh_after)
        manifests = {
            (name, digest): subject for name, marks in first.marks.items() for digest, subject in marks.unreachable.items()
        }
        if self.options.dry_run:
            report.manifests_removed = sorted(manifests, key=str)
            report.blobs_removed = [blob.digest for blob in candidates]
            report.bytes_freed = sum(blob.size for blob in candidates)
            report.leftovers_removed = len(leftovers) + len(abandoned_paths)
            return report
        report.leftovers_removed = await self._remove_leftovers(leftovers) + await self._delete_files(abandoned_paths)

        expired = {(name, digest) for name, marks in first.marks.items() for digest in marks.expired}
        set_aside_manifests = await self._set_aside_manifests(manifests, expired, started)
        set_aside_blobs = await self._set_aside_blobs(candidates, fresh_after)
        if not set_aside_manifests and not set_aside_blobs:
            return report
        # The second look: what the live links name now comes back. Every link is read
        # again, not only those whose time changed: a link rewritten within the clock tick
        # of its previous write keeps that time.
        by_repository: dict[str, dict[Digest, Digest | None]] = {}
        for (name, digest), subject in set_aside_manifests.items():
            by_repository.setdefault(name, {})[digest] = subject
        second = await self._mark(await inventory.repository_names(self.driver), reader, started, report, set_aside=by_repository)
        await self._settle_manifests(set_aside_manifests, second, report)
        await self._forget_pulls([key for key in report.manifests_removed if key in expired], report)
        marked = second.marked()
        wanted = {blob.digest for blob in set_aside_blobs if blob.digest in marked}
        wanted |= await self._freshly_linked([blob.digest for blob in set_aside_blobs if blob.digest not in wanted], second.links, fresh_after)
        await self._settle_blobs(set_aside_blobs, wanted, report)
        return report

    async def _mark(
        self, names: list[str], reader: ManifestReader, started: float, report: Report,
        apply_retention: bool = False, set_aside: dict[str, dict[Digest, Digest | None]] | None = None,
    ) -> _Pass:
        # Before any tag is read (see the module's docstring, 4.).
        intents = await inventory.push_intents(self.driver)
        pushing: dict[str, set[Digest]] = {}
        for intent in intents:
            if intent.manifest is not None:
                pushing.setdefault(intent.manifest[0], set()).add(intent.manifest[1])
        stage = self.progress.stage("marking repositories", len(names))

        async def batch(start: int) -> list[tuple[RepositoryLinks, RepositoryMarks]]:
            read = await inventory.read_repositories(self.driver, names[start:start + REPOSITORY_BATCH])
            # The mark reads every revision's manifest (kept, or unreachable for its subject): all at once.
            await reader.references_of(digest for links in read for digest in links.revisions)
            marked = []
            for links in read:
                if apply_retention:
                    await self._apply_retention(links, started, report)
                aside = (set_aside or {}).get(links.name, {})
                marks = await mark_repository(
                    links, reader, self._untagged_before(links.name, started), aside,
                    pushing.get(links.name, ()), await self._expired(links, aside, started),
                )
                marked.append((links, marks))
                stage.advance()
            return marked

        # A few batches at once: one lists its directories (in a thread) while another is marked.
        batches = await gather_bounded(range(0, len(names), REPOSITORY_BATCH), batch, BATCHES_AT_ONCE)
        stage.close()
        results = [pair for marked in batches for pair in marked]
        return _Pass({links.name: links for links, _ in results}, {links.name: marks for links, marks in results}, intents)

    def _pulled_before(self, name: str, started: float) -> float | None:
        """Cached revisions of ``name`` last pulled before this expire; ``None``: none do."""
        ttl = self.options.ttl_for(name)
        return started - ttl if ttl is not None and ttl > 0 else None

    async def _expired(self, links: RepositoryLinks, set_aside: dict[Digest, Digest | None], started: float) -> set[Digest] | None:
        """The revisions of a cached repository (``None`` for another) not pulled within its TTL."""
        before = self._pulled_before(links.name, started)
        if before is None:
            return None
        linked, aside = sorted(links.revisions, key=str), sorted(set(set_aside) - links.revisions, key=str)
        times = await gather_bounded(
            [*((digest, True) for digest in linked), *((digest, False) for digest in aside)],
            lambda pair: self._last_pulled(links.name, *pair), inventory.SMALL_READS_AT_ONCE,
        )
        return {digest for digest, when in zip([*linked, *aside], times, strict=True) if when is None or when < before}

    async def _last_pulled(self, name: str, digest: Digest, linked: bool) -> float | None:
        """The pull time the cache wrote, or (one fetched but never stamped) when it was stored; a
        set-aside revision's link has no such time (a move on S3 is a new object)."""
        times = [await read_time(self.driver, paths.proxy_manifest_pulled(name, digest))]
        if linked:
            times.append(await mtime(self.driver, paths.revision_link(name, digest)))
        return max((when for when in times if when is not None), default=None)

    async def _apply_retention(self, links: RepositoryLinks, started: float, report: Report) -> None:
        policy = retention.policy_for(links.name, self.options.retention)
        if policy is None:
            return
        repository = self.registry.repository(links.name)
        for expired in await retention.expired_tags(self.driver, links, policy, started - self.options.grace_period, self.registry.immutable):
            path = paths.tag_current_link(links.name, expired.tag)
            # Moved or pushed again since it was read: the policy no longer applies to it.
            if not self.options.dry_run:
                if await mtime(self.driver, path) != expired.pushed or await inventory.read_link(self.driver, path) != expired.digest:
                    continue
                await repository.untag(expired.tag)
            del links.tags[expired.tag]
            report.tags_removed.append((links.name, expired.tag))

    async def _without_fresh_links(self, candidates: list[BlobInfo], links: dict[str, RepositoryLinks], fresh_after: float) -> list[BlobInfo]:
        fresh = await self._freshly_linked([blob.digest for blob in candidates], links, fresh_after)
        return [blob for blob in candidates if blob.digest not in fresh]

    async def _freshly_linked(self, digests: list[Digest], links: dict[str, RepositoryLinks], fresh_after: float) -> set[Digest]:
        """Those of ``digests`` some repository's ``_layers`` link was written for after ``fresh_after``
        (as ``links`` listed them, or a look now where the listing gave no time: the second look lists
        them after the set-aside)."""
        wanted = set(digests)
        listed = [(name, digest, when) for name, found in links.items() for digest, when in found.layer_times.items() if digest in wanted]

        async def time_of(entry: tuple[str, Digest, float | None]) -> float | None:
            name, digest, when = entry
            return when if when is not None else await mtime(self.driver, paths.layer_link(name, digest))

        times = await gather_bounded(listed, time_of, inventory.SMALL_READS_AT_ONCE)
        return {digest for (_, digest, _), when in zip(listed, times, strict=True) if when is not None and when >= fresh_after}

    async def _settle_manifests(self, set_aside: dict[tuple[str, Digest], Digest | None], second: _Pass, report: Report) -> None:
        """Put back the set-aside revisions the second mark keeps; forget the rest."""
        forgotten: dict[str, list[Digest]] = {}
        for (name, digest), subject in set_aside.items():
            if name in second.marks and digest in second.marks[name].kept:
                await self.registry.repository(name).put_back_manifest(digest, subject)
                report.put_back += 1
            else:
                forgotten.setdefault(name, []).append(digest)
                report.manifests_removed.append((name, digest))

        # Every repository's set-aside links in one call (a DeleteObjects a thousand on S3), then the
        # folders a filesystem keeps.
        links = [(name, digest) for name, digests in forgotten.items() for digest in digests]
        await self.driver.delete_files([paths.condemned_revision_link(*link) for link in links])
        await gather_bounded(links, lambda link: self.driver.remove_empty_folder(paths.condemned_revision_dir(*link)), inventory.SMALL_READS_AT_ONCE)

        async def forget(name: str) -> None:
            await self.registry.repository(name).forget_tag_history(forgotten[name])

        await gather_bounded(forgotten, forget)

    async def _forget_pulls(self, removed: list[tuple[str, Digest]], report: Report) -> None:
        """Remove the tags still naming expired revisions that went, and those revisions' pull times.
        A pull that tags one again meanwhile is served what it resolved (the cache answers the
        digest); the next one asks the upstream again."""

        async def forget(key: tuple[str, Digest]) -> None:
            name, digest = key
            repository = self.registry.repository(name)
            for tag in await repository.tags():
                if await inventory.read_link(self.driver, paths.tag_current_link(name, tag)) == digest:
                    with contextlib.suppress(ManifestUnknown, PathNotFound):
                        await repository.untag(tag)
                        report.tags_removed.append((name, tag))
                    await self._delete_files([paths.proxy_tag_checked(name, tag)])
            await self._delete_files([paths.proxy_manifest_pulled(name, digest)])

        await gather_bounded(removed, forget)

    async def _settle_blobs(self, set_aside: list[BlobInfo], wanted: set[Digest], report: Report) -> None:
        """Put back the set-aside blobs in ``wanted``; delete the rest (in as few requests as the driver can)."""
        stage = self.progress.stage("removing blobs", len(set_aside))

        async def put_back(blob: BlobInfo) -> None:
            await self.registry.blobs.put_back(blob.digest, paths.condemned_blob(blob.digest))
            stage.advance(1, blob.size)

        kept = [blob for blob in set_aside if blob.digest in wanted]
        await gather_bounded(kept, put_back)
        report.put_back += len(kept)
        # The cache forgot each blob when it was set aside (BlobStore.set_aside). One gone meanwhile
        # was put back by a collector on a replica without a shared lock.
        doomed = {paths.condemned_blob(blob.digest): blob for blob in set_aside if blob.digest not in wanted}
        deleted = set(await self.driver.delete_files(list(doomed)))
        for path, blob in doomed.items():
            if path in deleted:
                report.blobs_removed.append(blob.digest)
                report.bytes_freed += blob.size
            stage.advance(1, blob.size)
        stage.close()

    async def _set_aside_manifests(
        self, manifests: dict[tuple[str, Digest], Digest | None], expired: set[tuple[str, Digest]], started: float,
    ) -> dict[tuple[str, Digest], Digest | None]:
        async def move_of(key: tuple[str, Digest]) -> Move | None:
            """The revision link's move, unless pushed or pulled again since the mark."""
            name, digest = key
            link, condemned = paths.revision_link(name, digest), paths.condemned_revision_link(name, digest)
            if key in expired:
                before = self._pulled_before(name, started)
                when = await self._last_pulled(name, digest, linked=True)
                return Move(link, condemned) if before is not None and when is not None and when < before else None
            before = self._untagged_before(name, started)
            return None if before is None else Move(link, condemned, unless_modified_since=before)

        keys = list(manifests)
        moves = {move: key for key, move in zip(keys, await gather_bounded(keys, move_of), strict=True) if move is not None}
        set_aside = {moves[move]: manifests[moves[move]] for move in await self.driver.move_files(list(moves))}
        async def unlink_referrer(key: tuple[str, Digest]) -> None:
            name, digest = key
            subject = set_aside[key]
            if subject is not None:
                await self.registry.repository(name).unlink_referrer(subject, digest)

        await gather_bounded(set_aside, unlink_referrer)
        return set_aside

    async def _set_aside_blobs(self, candidates: list[BlobInfo], fresh_after: float) -> list[BlobInfo]:
        # Those gone, or stored again since they were listed, stay.
        moved = set(await self.registry.blobs.set_aside({blob.digest: paths.condemned_blob(blob.digest) for blob in candidates}, fresh_after))
        return [blob for blob in candidates if blob.digest in moved]

    async def _remove_leftovers(self, leftovers: list[Leftover]) -> int:
        """Remove temporary files, then the folders that are empty; how many went."""
        folders = {paths.blob_dir(leftover.digest) for leftover in leftovers}
        removed = await self._delete_files([leftover.path for leftover in leftovers if leftover.kind == "temporary file"])
        for folder in sorted(folders):
            if await self.driver.remove_empty_folder(folder):  # rmdir: a push that wrote into it meanwhile keeps it
                removed += 1
        return removed

    async def _delete_files(self, files: list[str]) -> int:
        """Delete each of ``files``; how many went (not those gone meanwhile)."""

        async def delete(path: str) -> bool:
            try:
                await self.driver.delete(path)
            except PathNotFound:
                return False
            return True

        return sum(await gather_bounded(files, delete, inventory.SMALL_READS_AT_ONCE))

    async def _put_back_leftovers(self) -> None:
        """Put back what an interrupted collection set aside; this one decides about it afresh."""
        for digest in await inventory.digests_under(self.driver, paths.CONDEMNED_BLOBS):
            await self.registry.blobs.put_back(digest, paths.condemned_blob(digest))
        reader = ManifestReader(self.driver)
        for name in await _condemned_repositories(self.driver):
            for digest in await inventory.digests_under(self.driver, paths.condemned_manifests(name)):
                found = await reader.references(digest)
                await self.registry.repository(name).put_back_manifest(digest, found.subject if found else None)


async def _condemned_repositories(driver: StorageDriver) -> list[str]:
    """Repository names under the condemned manifests (``<name>/<alg>/<hex>/link``)."""
    found: list[str] = []
    pending = [""]
    while pending:
        name = pending.pop()
        directory = paths.condemned_manifests(name) if name else paths.CONDEMNED_MANIFESTS
        for child in (await driver.list_sorted([directory])).get(directory, []):
            below = paths.algorithm_folder(directory, child)  # if ``child`` is an algorithm; else a name's component
            if any(paths.parse_digest_folders(child, entry) for entry in (await driver.list_sorted([below])).get(below, [])):
                found.append(name)
            else:
                pending.append(f"{name}/{child}" if name else child)
    return sorted(set(found))


async def collect(registry: Registry, options: Options, progress: Progress | None = None) -> Report:
    return await Collector(registry, options, progress).run()

