"""What the pages list, read from the storage layer: repository overviews, tag pages, storage use."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass

from dockyard.concurrency import gather_bounded
from dockyard.errors import ManifestInvalid, ManifestUnknown
from dockyard.reference import DIGEST_ALGORITHMS, Digest
from dockyard.storage import catalog, paths
from dockyard.storage.driver import PathNotFound, StorageDriver
from dockyard.storage.repository import Repository
from dockyard.ui.format import cosign_tag
from dockyard.ui.pagination import Page, Sort, page_of
from dockyard.ui.summaries import ATTESTATION, SBOM, SIGNATURE, Summaries, Summary, describe_artifact

# cosign's tag-based attachments: the tag suffix and the role of what it holds.
COSIGN_SUFFIXES = {"sig": SIGNATURE, "att": ATTESTATION, "sbom": SBOM}


@dataclass(frozen=True)
class ListedRepository:
    name: str
    tags: int


async def listed_repositories(driver: StorageDriver, visible: Callable[[str], bool] | None) -> list[ListedRepository]:
    """Every visible repository that holds something, by name, with its tag count.

    Names, one listing of each repository's tag folder, and of the manifest folders of those
    without tags, each in one batch: what a front page of 10,000 repositories needs for its
    totals, order and page numbers. A repository with neither tags nor manifests (all deleted)
    is left out; one with manifests but no tags (pulled or pushed by digest only) is listed.
    """
    names = await catalog.walk(driver, visible=visible)
    tag_listings = await driver.list_sorted([paths.tags(name) for name in names])
    counts = {name: len(tag_listings.get(paths.tags(name), [])) for name in names}
    manifest_folders = {
        paths.algorithm_folder(paths.revisions(name), algorithm): name
        for name, count in counts.items() if not count for algorithm in DIGEST_ALGORITHMS
    }
    holding = {manifest_folders[folder] for folder, found in (await driver.list_sorted(list(manifest_folders))).items() if found}
    return [ListedRepository(name, count) for name, count in counts.items() if count or name in holding]


@dataclass(frozen=True)
class Attachment:
    """A signature, SBOM, attestation or other artifact about a manifest."""

    digest: str
    role: str | None
    label: str
    artifact_type: str | None
    size: int
    count: int  # signatures (layers) in a cosign signature manifest; 1 otherwise
    tag: str | None  # the cosign tag it is attached by; None for an OCI referrer


@dataclass(frozen=True)
class Attachments:
    items: tuple[Attachment, ...]

    def _count(self, role: str) -> int:
        return sum(item.count for item in self.items if item.role == role)

    @property
    def signatures(self) -> int:
        return self._count(SIGNATURE)

    @property
    def sboms(self) -> int:
        return self._count(SBOM)

    @property
    def attestations(self) -> int:
        return self._count(ATTESTATION)


NO_ATTACHMENTS = Attachments(())


@dataclass(frozen=True)
class RepositoryOverview:
    name: str
    tags: int
    blobs: dict[str, int]  # every manifest, config and layer the repository holds: digest → size
    pushed: float | None  # the newest tag link's time

    @property
    def size(self) -> int:
        return sum(self.blobs.values())


@dataclass(frozen=True)
class TagRow:
    name: str
    pushed: float | None
    digest: str | None
    summary: Summary | None
    size: int | None
    attachments: Attachments


async def _mtime(repository: Repository, tag: str) -> float | None:
    try:
        return (await repository.driver.stat(paths.tag_current_link(repository.name, tag))).mtime
    except PathNotFound:
        return None


async def _resolve(repository: Repository, tag: str) -> Digest | None:
    try:
        return await repository.resolve_tag(tag)
    except ManifestUnknown:
        return None  # untagged since it was listed


async def revisions(repository: Repository) -> list[Digest]:
    """Every manifest in the repository (tagged or not, index children and referrers too)."""
    directories = {paths.algorithm_folder(paths.revisions(repository.name), algorithm): algorithm for algorithm in DIGEST_ALGORITHMS}
    listings = await repository.driver.list_sorted(list(directories))
    found: list[Digest] = []
    for directory, names in listings.items():
        found.extend(digest for name in names if (digest := paths.parse_digest_folders(directories[directory], name)) is not None)
    return found


class Browser:
    """Reads for the pages, through one shared cache of manifest summaries."""

    def __init__(self, summaries: Summaries) -> None:
        self.summaries = summaries

    async def summary(self, repository: Repository, digest: Digest | None) -> Summary | None:
        if digest is None:
            return None
        try:
            return await self.summaries.manifest(repository, digest)
        except (ManifestUnknown, ManifestInvalid):
            return None  # deleted meanwhile, or unreadable: shown as unknown

    async def size(self, repository: Repository, summary: Summary | None) -> int | None:
        return await self.summaries.total_size(repository, summary) if summary is not None else None

    async def overview(self, repository: Repository) -> RepositoryOverview:
        tags = await repository.tags()
        times = [time for time in await gather_bounded(tags, lambda tag: _mtime(repository, tag)) if time is not None]
        blobs: dict[str, int] = {}
        for summary in await gather_bounded(await revisions(repository), lambda digest: self.summary(repository, digest)):
            if summary is not None:
                blobs[summary.digest] = summary.size
                blobs.update(summary.blobs)
        return RepositoryOverview(repository.name, len(tags), blobs, max(times, default=None))

    async def attachments(self, repository: Repository, digest: Digest, tags: Collection[str]) -> Attachments:
        """What refers to ``digest``: its OCI referrers, and cosign's ``sha256-<hex>.sig`` (``.att``,
        ``.sbom``) tags among ``tags``."""
        found = []
        for descriptor in await repository.referrers(digest):
            summary = await self.summary(repository, descriptor.digest)
            role, label = (summary.role, summary.label) if summary else describe_artifact(descriptor.artifact_type)
            found.append(Attachment(
                str(descriptor.digest), role, label, descriptor.artifact_type, descriptor.size, 1, None,
            ))
        for suffix, role in COSIGN_SUFFIXES.items():
            tag = cosign_tag(str(digest), suffix)
            if tag not in tags:
                continue
            summary = await self.summary(repository, await _resolve(repository, tag))
            if summary is not None:
                count = len(summary.layers) if role != SBOM else 1
                found.append(Attachment(summary.digest, role, summary.label, summary.artifact_type, summary.size, count, tag))
        return Attachments(tuple(found))

    async def tags_of(self, repository: Repository, digest: Digest, tags: list[str]) -> list[str]:
        """Which of ``tags`` point to ``digest`` (every tag link read: a repository's tag list is not indexed by digest)."""
        targets = await gather_bounded(tags, lambda tag: _resolve(repository, tag))
        return [tag for tag, target in zip(tags, targets, strict=True) if target == digest]

    async def tag_page(self, repository: Repository, sort: Sort, page_number: str | None, per_page: int) -> tuple[Page, list[TagRow]]:
        """One page of the repository's tags in ``sort`` order.

        Only the order's key is read for every tag (a stat for push times, links and
        cached summaries for sizes); the rest only for the tags on the page.
        """
        tags = await repository.tags()
        times: dict[str, float | None] = {}
        digests: dict[str, Digest | None] = {}
        sizes: dict[str, int | None] = {}
        if sort.key == "pushed":
            times = dict(zip(tags, await gather_bounded(tags, lambda tag: _mtime(repository, tag)), strict=True))
            tags.sort(key=lambda tag: (times[tag] or 0.0, tag))
        elif sort.key == "size":
            digests = dict(zip(tags, await gather_bounded(tags, lambda tag: _resolve(repository, tag)), strict=True))
            unique = list({digest for digest in digests.values() if digest is not None})
            summaries = await gather_bounded(unique, lambda digest: self.summary(repository, digest))
            by_digest = dict(zip(unique, await gather_bounded(summaries, lambda summary: self.size(repository, summary)), strict=True))
            sizes = {tag: by_digest.get(digest) if digest else None for tag, digest in digests.items()}
            tags.sort(key=lambda tag: (sizes[tag] or 0, tag))
        if sort.descending:
            tags.reverse()
        page = page_of(len(tags), page_number, per_page)
        shown = tags[page.start:page.end]
        listed = frozenset(tags)

        async def row(tag: str) -> TagRow:
            digest = digests[tag] if tag in digests else await _resolve(repository, tag)
            pushed = times[tag] if tag in times else await _mtime(repository, tag)
            summary = await self.summary(repository, digest)
            size = sizes[tag] if tag in sizes else await self.size(repository, summary)
            attachments = await self.attachments(repository, digest, listed) if digest else NO_ATTACHMENTS
            return TagRow(tag, pushed, str(digest) if digest else None, summary, size, attachments)

        return page, await gather_bounded(shown, row)


@dataclass(frozen=True)
class StorageUse:
    total: int  # every blob once, however many repositories hold it
    shared: int  # blobs held by more than one repository, each counted once
    repositories: list[RepositoryOverview]  # largest first


def storage_use(overviews: list[RepositoryOverview], largest: int) -> StorageUse:
    holders: Counter[str] = Counter()
    sizes: dict[str, int] = {}
    for overview in overviews:
        holders.update(overview.blobs.keys())
        sizes.update(overview.blobs)
    shared = sum(sizes[digest] for digest, count in holders.items() if count > 1)
    ranked = sorted(overviews, key=lambda overview: (-overview.size, overview.name))
    return StorageUse(sum(sizes.values()), shared, ranked[:largest])
