"""The mark: what a repository's links keep alive.

Roots are the tags, the manifests push intents name (pushes in progress, see
:meth:`Repository.put_manifest`), and, unless untagged manifests are being removed,
every revision; from a kept manifest its config and layers are marked, its child
manifests (an index's) are kept, and so are the manifests whose subject it is
(referrers). A revision that nothing keeps is *unreachable*; it is removed only when
untagged manifests are removed and it was last pushed before ``untagged_before``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from dockyard import manifest as manifests
from dockyard.concurrency import gather_bounded
from dockyard.errors import ManifestInvalid
from dockyard.maintenance.inventory import SMALL_READS_AT_ONCE, RepositoryLinks
from dockyard.reference import Digest
from dockyard.storage import paths
from dockyard.storage.driver import PathNotFound, StorageDriver


@dataclass(frozen=True)
class References:
    blobs: tuple[Digest, ...] = ()
    children: tuple[Digest, ...] = ()
    subject: Digest | None = None
    foreign: tuple[Digest, ...] = ()
    """those of ``blobs`` clients fetch from elsewhere: not stored"""


class ManifestReader:
    """Reads each manifest's references once, from the blob store or from where a
    running collection set its blob aside."""

    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver
        self._known: dict[Digest, References] = {}

    async def references(self, digest: Digest) -> References | None:
        """``None`` when the manifest's content is gone (not remembered: a push may store it again)."""
        found = self._known.get(digest)
        if found is None:
            found = await self._read(digest)
            if found is not None:
                self._known[digest] = found
        return found

    async def references_of(self, digests: Iterable[Digest]) -> dict[Digest, References | None]:
        """:meth:`references` of many manifests; those not known yet are read together."""
        found = {digest: self._known.get(digest) for digest in digests}
        missing = [digest for digest, known in found.items() if known is None]
        if missing:
            found.update(zip(missing, await gather_bounded(missing, self.references, SMALL_READS_AT_ONCE), strict=True))
        return found

    async def _read(self, digest: Digest) -> References | None:
        for path in (paths.blob_data(digest), paths.condemned_blob(digest)):
            try:
                content = await self.driver.get_content(path)
                break
            except PathNotFound:
                continue
        else:
            return None
        try:
            parsed = manifests.parse(content, None)
        except ManifestInvalid:  # not a manifest we can read: it keeps nothing else alive
            return References()
        return References(
            tuple(blob.digest for blob in parsed.blobs),
            tuple(child.digest for child in parsed.children),
            parsed.subject.digest if parsed.subject is not None else None,
            tuple(blob.digest for blob in parsed.blobs if blob.is_foreign),
        )


@dataclass
class RepositoryMarks:
    kept: set[Digest] = field(default_factory=set)
    blobs: set[Digest] = field(default_factory=set)
    """every blob the kept manifests need, the manifests' own content included"""
    unreachable: dict[Digest, Digest | None] = field(default_factory=dict)
    """revisions to remove → their subject"""
    expired: set[Digest] = field(default_factory=set)
    """cached revisions not pulled within their TTL: roots no more"""


async def mark_repository(
    links: RepositoryLinks,
    reader: ManifestReader,
    untagged_before: float | None,
    set_aside: dict[Digest, Digest | None] | None = None,
    pushing: Collection[Digest] = (),
    expired: Collection[Digest] | None = None,
) -> RepositoryMarks:
    """Mark what ``links`` keep. ``set_aside`` (digest → subject) are revisions this
    collection removed since it first looked: they count as present, so that what
    links to them now brings them back. ``pushing`` are the manifests push intents
    name: kept like tagged ones, linked yet or not (a push may have stored its content).
    ``expired`` is given for a pull-through cache's repository: its revisions (set aside
    or not) other than those are roots, tagged or not; those are roots no more, nor are
    their tags."""
    set_aside = set_aside or {}
    present = links.revisions | set(set_aside)
    referrers: dict[Digest, set[Digest]] = {subject: found & present for subject, found in links.referrers.items()}
    for digest, subject in set_aside.items():
        if subject is not None:
            referrers.setdefault(subject, set()).add(digest)
    marks = RepositoryMarks()

    async def keep(roots: set[Digest]) -> None:
        queue = roots - marks.kept
        while queue:
            marks.kept |= queue
            read = await reader.references_of(queue)
            queue = set()
            for digest, found in read.items():
                marks.blobs.add(digest)
                queue |= referrers.get(digest, set())
                if found is not None:
                    marks.blobs.update(found.blobs, found.children)
                    queue.update(child for child in found.children if child in present)
            queue -= marks.kept

    marks.expired = set(expired or ()) & present
    roots = {digest for digest in links.tags.values() if digest in present - marks.expired} | set(pushing)
    if expired is not None:
        roots |= present - marks.expired
    elif untagged_before is None:
        roots |= links.revisions
    await keep(roots)
    if untagged_before is not None:
        # Pushed again since the threshold (a push rewrites the revision link): kept. The time is
        # the listing's: set-aside looks at the link again (Collector._set_aside_manifests).
        await keep({digest for digest in links.revisions - marks.kept if links.revision_times[digest] >= untagged_before})
    unreachable = await reader.references_of(sorted(present - marks.kept, key=str))
    marks.unreachable = {digest: found.subject if found is not None else None for digest, found in unreachable.items()}
    return marks
