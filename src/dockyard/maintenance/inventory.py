"""What maintenance reads from storage: each repository's links and the blob store's content.

Everything goes through the :class:`StorageDriver` and the layout in
:mod:`dockyard.storage.paths`, so it works on every backend.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, KeysView, Sequence
from dataclasses import dataclass, field

from dockyard.concurrency import gather_bounded
from dockyard.errors import DigestInvalid, NameInvalid
from dockyard.reference import DIGEST_ALGORITHMS, Digest, check_name, parse_digest
from dockyard.storage import catalog, paths
from dockyard.storage.driver import PathNotFound, StorageDriver

# Small reads (links, stats, manifests) at once: enough to hide storage latency (S3),
# few enough not to flood a filesystem's thread pool.
SMALL_READS_AT_ONCE = 64


async def read_link(driver: StorageDriver, path: str) -> Digest | None:
    """The digest a link file holds, ``None`` when it is missing or unreadable."""
    try:
        content = await driver.get_content(path)
        return parse_digest(content.decode("ascii").strip())
    except (PathNotFound, UnicodeDecodeError, DigestInvalid):
        return None


async def mtime(driver: StorageDriver, path: str) -> float | None:
    try:
        return (await driver.stat(path)).mtime
    except PathNotFound:
        return None


async def digests_under(driver: StorageDriver, directory: str) -> list[Digest]:
    """The digests of ``directory/<alg>/<hex>`` entries."""
    return (await digests_under_each(driver, [directory]))[directory]


async def digests_under_each(driver: StorageDriver, directories: Sequence[str]) -> dict[str, list[Digest]]:
    """:func:`digests_under` for many directories, each level listed in one call."""
    top = await driver.list_sorted(directories)
    subdirectories = {
        paths.algorithm_folder(directory, algorithm): (directory, algorithm)
        for directory in directories for algorithm in top.get(directory, [])
    }
    listings = await driver.list_sorted(list(subdirectories))
    found: dict[str, list[Digest]] = {directory: [] for directory in directories}
    for path, names in listings.items():
        directory, algorithm = subdirectories[path]
        found[directory].extend(digest for name in names if (digest := paths.parse_digest_folders(algorithm, name)) is not None)
    return found


async def links_under(driver: StorageDriver, folder: str) -> dict[Digest, float]:
    """The digests of the link files in a folder of digests (``<folder>/<alg>/<hex>/link``) and when
    each was written, from one listing of the tree (one request on S3, not a GET or HEAD a link):
    a link's folder names its digest. A folder without its link (left by a collection) is none."""
    return {
        digest: found.mtime
        for found in await driver.list_files(folder)
        if not found.is_dir and (digest := paths.parse_link(folder, found.path)) is not None
    }


@dataclass
class RepositoryLinks:
    """One repository's links as they were read."""

    name: str
    tags: dict[str, Digest] = field(default_factory=dict)
    revision_times: dict[Digest, float] = field(default_factory=dict)
    """each revision → when its link was last written (pushed)"""
    layer_times: dict[Digest, float | None] = field(default_factory=dict)
    """each ``_layers`` link → when it was last written (uploaded, mounted or pushed); ``None``: not
    read (see :func:`read_repositories`), :func:`mtime` tells"""
    referrers: dict[Digest, set[Digest]] = field(default_factory=dict)
    """subject → manifests that name it as their subject"""

    @property
    def revisions(self) -> KeysView[Digest]:
        return self.revision_times.keys()

    @property
    def layers(self) -> KeysView[Digest]:
        return self.layer_times.keys()


async def read_repository(driver: StorageDriver, name: str) -> RepositoryLinks:
    return (await read_repositories(driver, [name]))[0]


async def read_repositories(driver: StorageDriver, names: Sequence[str]) -> list[RepositoryLinks]:
    """The links of many repositories, in ``names``' order.

    Each level of their directories is listed in one call (one thread hop on a
    filesystem, concurrent requests on S3), revisions from one listing of their trees
    each, and every tag's link file is read by a few workers, rather than a call and a
    task per repository and file. Layers too come from their trees' listings where a
    tree is one listing (S3); elsewhere (a filesystem: a listing a link's folder) from
    their folders' names, without times: only the candidates' are needed.
    """
    subjects = {name: paths.subjects(name) for name in names}
    tags = await driver.list_sorted([paths.tags(name) for name in names])
    layers = {name: paths.layers(name) for name in names}
    trees = [paths.revisions(name) for name in names] + (list(layers.values()) if driver.lists_trees_at_once else [])
    linked = dict(zip(trees, await gather_bounded(trees, lambda folder: links_under(driver, folder), SMALL_READS_AT_ONCE), strict=True))
    listed = await digests_under_each(driver, [*subjects.values(), *([] if driver.lists_trees_at_once else layers.values())])
    referrers = await digests_under_each(
        driver, [paths.referrers(name, subject) for name in names for subject in listed[subjects[name]]],
    )
    tag_links = [(name, tag) for name in names for tag in tags.get(paths.tags(name), [])]
    digests = await gather_bounded([paths.tag_current_link(*pair) for pair in tag_links], lambda path: read_link(driver, path), SMALL_READS_AT_ONCE)

    found = {name: RepositoryLinks(name) for name in names}
    for (name, tag), digest in zip(tag_links, digests, strict=True):
        if digest is not None:
            found[name].tags[tag] = digest
    for name, links in found.items():
        links.revision_times = linked[paths.revisions(name)]
        links.layer_times = dict(linked[layers[name]]) if driver.lists_trees_at_once else dict.fromkeys(listed[layers[name]])
        links.referrers = {
            subject: set(referrers[paths.referrers(name, subject)]) for subject in listed[subjects[name]]
        }
    return [found[name] for name in names]


async def repository_names(driver: StorageDriver) -> list[str]:
    return await catalog.repositories(driver)


@dataclass(frozen=True)
class PushIntent:
    """A manifest push in progress (:meth:`Repository.put_manifest`), or one that crashed."""

    path: str
    mtime: float
    manifest: tuple[str, Digest] | None
    """the repository and digest it names; ``None`` if unreadable (its write was interrupted)"""


async def push_intents(driver: StorageDriver) -> list[PushIntent]:
    """Every push intent in storage; one removed while they are read (its push ended) is left out."""
    try:
        names = await driver.list(paths.PUSH_INTENTS)
    except PathNotFound:
        return []

    async def read(name: str) -> PushIntent | None:
        path = paths.push_intent(name)
        try:
            when = (await driver.stat(path)).mtime
            content = b"" if paths.is_temporary(name) else await driver.get_content(path)
        except PathNotFound:
            return None
        repository, _, digest = content.decode("utf-8", "replace").partition("\n")
        try:
            return PushIntent(path, when, (check_name(repository), parse_digest(digest)))
        except (NameInvalid, DigestInvalid):
            return PushIntent(path, when, None)

    return [intent for intent in await gather_bounded(names, read, SMALL_READS_AT_ONCE) if intent is not None]


@dataclass(frozen=True)
class BlobInfo:
    digest: Digest
    size: int
    mtime: float


@dataclass(frozen=True)
class Leftover:
    """What an interrupted write left in a blob's folder: a temporary file, or the folder
    itself when it holds nothing."""

    digest: Digest
    path: str
    mtime: float

    @property
    def kind(self) -> str:
        return "empty blob folder" if self.path == paths.blob_dir(self.digest) else "temporary file"


@dataclass(frozen=True)
class BlobStore:
    blobs: list[BlobInfo]
    """the blobs that hold data"""
    leftovers: list[Leftover]


async def blob_store(driver: StorageDriver) -> BlobStore:
    """The blob store from one listing of its files (one flat listing on object storage, not
    one per folder and a stat per blob): the blobs, and the temporary files in their folders
    and the folders that hold nothing."""
    blobs: list[BlobInfo] = []
    leftovers: list[Leftover] = []
    for found in await driver.list_files(paths.BLOBS):
        if found.is_dir:
            if (digest := paths.parse_blob_folder(found.path)) is not None:
                leftovers.append(Leftover(digest, found.path, found.mtime))
        elif (digest := paths.parse_blob_data(found.path)) is not None:
            blobs.append(BlobInfo(digest, found.size, found.mtime))
        elif (entry := paths.parse_blob_entry(found.path)) is not None and paths.is_temporary(entry[1]):
            leftovers.append(Leftover(entry[0], found.path, found.mtime))
    return BlobStore(blobs, leftovers)


async def proxy_leftovers(driver: StorageDriver) -> list[tuple[str, float]]:
    """The pull-through cache's downloads and per-blob fetch locks, with their times: a download
    left by a fetch that crashed, and the lock files of fetches long finished, are left over."""
    found: list[str] = []
    with contextlib.suppress(PathNotFound):
        found.extend(paths.proxy_download(name) for name in await driver.list(paths.PROXY_DOWNLOADS))
    folders = {paths.proxy_fetch_locks(algorithm): algorithm for algorithm in DIGEST_ALGORITHMS}
    for folder, names in (await driver.list_sorted(list(folders))).items():
        algorithm = folders[folder]
        found.extend(paths.proxy_fetch_lock(digest) for name in names if (digest := paths.parse_digest_folders(algorithm, name)) is not None)
    times = await gather_bounded(found, lambda path: mtime(driver, path), SMALL_READS_AT_ONCE)
    return [(path, when) for path, when in zip(found, times, strict=True) if when is not None]


async def blob_infos(driver: StorageDriver, digests: Iterable[Digest]) -> list[BlobInfo]:
    """Size and time of each blob that holds data."""

    async def info(digest: Digest) -> BlobInfo | None:
        try:
            found = await driver.stat(paths.blob_data(digest))
        except PathNotFound:
            return None
        return BlobInfo(digest, found.size, found.mtime)

    return [found for found in await gather_bounded(digests, info, SMALL_READS_AT_ONCE) if found is not None]
