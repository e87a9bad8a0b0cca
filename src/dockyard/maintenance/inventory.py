"""What maintenance reads from storage: each repository's links and the blob store's content.

Everything goes through the :class:`StorageDriver` and the layout in
:mod:`dockyard.storage.paths`, so it works on every backend.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

from dockyard.api.errors import RegistryError
from dockyard.concurrency import gather_bounded
from dockyard.reference import Digest, parse_digest
from dockyard.storage import catalog, paths
from dockyard.storage.driver import PathNotFound, StorageDriver

# Repositories (or blobs) handled at once: enough to hide storage latency (S3), few
# enough not to flood a filesystem's thread pool.
CONCURRENCY = 16


def digest_from(algorithm: str, hex_digest: str) -> Digest | None:
    """The digest a layout directory names, ``None`` for a stray name."""
    try:
        return parse_digest(f"{algorithm}:{hex_digest}")
    except RegistryError:
        return None


async def read_link(driver: StorageDriver, path: str) -> Digest | None:
    """The digest a link file holds, ``None`` when it is missing or unreadable."""
    try:
        content = await driver.get_content(path)
        return parse_digest(content.decode("ascii").strip())
    except (PathNotFound, UnicodeDecodeError, RegistryError):
        return None


async def mtime(driver: StorageDriver, path: str) -> float | None:
    try:
        return (await driver.stat(path)).mtime
    except PathNotFound:
        return None


async def digests_under(driver: StorageDriver, directory: str) -> list[Digest]:
    """The digests of ``directory/<alg>/<hex>`` entries."""
    algorithms = (await driver.list_sorted([directory])).get(directory, [])
    listings = await driver.list_sorted([f"{directory}/{algorithm}" for algorithm in algorithms])
    found = []
    for path, names in listings.items():
        algorithm = path.rsplit("/", 1)[1]
        found.extend(digest for name in names if (digest := digest_from(algorithm, name)) is not None)
    return found


@dataclass
class RepositoryLinks:
    """One repository's links as they were read."""

    name: str
    tags: dict[str, Digest] = field(default_factory=dict)
    revisions: set[Digest] = field(default_factory=set)
    layers: set[Digest] = field(default_factory=set)
    referrers: dict[Digest, set[Digest]] = field(default_factory=dict)
    """subject → manifests that name it as their subject"""


async def read_repository(driver: StorageDriver, name: str) -> RepositoryLinks:
    links = RepositoryLinks(name)
    tags_dir = paths.tags(name)
    tag_names = (await driver.list_sorted([tags_dir])).get(tags_dir, [])
    for tag, digest in zip(tag_names, await asyncio.gather(*(read_link(driver, paths.tag_current_link(name, tag)) for tag in tag_names))):
        if digest is not None:
            links.tags[tag] = digest

    listed = await digests_under(driver, f"{paths.manifests(name)}/revisions")
    linked = await asyncio.gather(*(read_link(driver, paths.revision_link(name, digest)) for digest in listed))
    # A revision directory without its link (left by a collection) is no revision.
    links.revisions = {digest for digest, found in zip(listed, linked) if found == digest}
    links.layers = set(await digests_under(driver, paths.layers(name)))
    for subject in await digests_under(driver, f"{paths.manifests(name)}/referrers"):
        links.referrers[subject] = set(await digests_under(driver, paths.referrers(name, subject)))
    return links


async def repository_names(driver: StorageDriver) -> list[str]:
    return await catalog.repositories(driver)


@dataclass(frozen=True)
class BlobInfo:
    digest: Digest
    size: int
    mtime: float


async def blob_digests(driver: StorageDriver) -> list[Digest]:
    """Every ``blobs/<alg>/<xx>/<hex>`` directory, whether or not it still holds data."""
    algorithms = (await driver.list_sorted([paths.BLOBS])).get(paths.BLOBS, [])
    prefixes = await driver.list_sorted([f"{paths.BLOBS}/{algorithm}" for algorithm in algorithms])
    directories = [f"{path}/{prefix}" for path, names in prefixes.items() for prefix in names]
    found = []
    for path, names in (await driver.list_sorted(directories)).items():
        algorithm = path.split("/")[-2]
        found.extend(digest for name in names if (digest := digest_from(algorithm, name)) is not None)
    return found


async def blob_infos(driver: StorageDriver, digests: Iterable[Digest]) -> list[BlobInfo]:
    """Size and time of each blob that holds data."""

    async def info(digest: Digest) -> BlobInfo | None:
        try:
            found = await driver.stat(paths.blob_data(digest))
        except PathNotFound:
            return None
        return BlobInfo(digest, found.size, found.mtime)

    return [found for found in await gather_bounded(digests, info, CONCURRENCY * 4) if found is not None]
