"""What the pages list, read from the storage layer: repository overviews, tag pages, storage use."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from dockyard.concurrency import gather_bounded
from dockyard.errors import ManifestInvalid, ManifestUnknown
from dockyard.reference import DIGEST_ALGORITHMS, Digest
from dockyard.storage import paths
from dockyard.storage.driver import PathNotFound
from dockyard.storage.repository import Repository
from dockyard.ui.pagination import Page, Sort, page_of
from dockyard.ui.summaries import Summaries, Summary


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

        async def row(tag: str) -> TagRow:
            digest = digests[tag] if tag in digests else await _resolve(repository, tag)
            pushed = times[tag] if tag in times else await _mtime(repository, tag)
            summary = await self.summary(repository, digest)
            size = sizes[tag] if tag in sizes else await self.size(repository, summary)
            return TagRow(tag, pushed, str(digest) if digest else None, summary, size)

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
