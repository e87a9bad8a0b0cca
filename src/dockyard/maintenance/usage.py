"""Storage per repository: the blobs each one links (layers, configs, manifests), counted
*exclusive* when no other repository links them and *shared* otherwise."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from dockyard.concurrency import gather_bounded
from dockyard.maintenance import inventory
from dockyard.reference import Digest
from dockyard.storage.driver import StorageDriver


@dataclass(frozen=True)
class RepositoryUsage:
    repository: str
    blobs: int
    exclusive_bytes: int
    shared_bytes: int


@dataclass(frozen=True)
class Usage:
    repositories: list[RepositoryUsage]
    blobs: int
    total_bytes: int
    """everything in the blob store, linked or not"""
    unlinked_bytes: int
    """blobs no repository links (what garbage collection would look at)"""

    def to_json(self) -> dict[str, object]:
        return asdict(self)


async def usage(driver: StorageDriver, only: Sequence[str] = ()) -> Usage:
    names = await inventory.repository_names(driver)
    links = await gather_bounded(names, lambda name: inventory.read_repository(driver, name))
    linked: dict[str, set[Digest]] = {found.name: found.layers | found.revisions for found in links}
    sizes = {blob.digest: blob.size for blob in (await inventory.blob_store(driver)).blobs}
    holders = Counter(digest for digests in linked.values() for digest in digests if digest in sizes)
    rows = []
    for name in only or names:
        stored = [digest for digest in linked.get(name, set()) if digest in sizes]
        rows.append(RepositoryUsage(
            name, len(stored),
            sum(sizes[digest] for digest in stored if holders[digest] == 1),
            sum(sizes[digest] for digest in stored if holders[digest] > 1),
        ))
    return Usage(rows, len(sizes), sum(sizes.values()), sum(size for digest, size in sizes.items() if not holders[digest]))
