"""How long a quota reservation takes when its rule already counts many blobs.

``python -m bench.quota_reservation [--blobs N] [--reservations N] [--driver inmemory|filesystem]``
lays out N blobs linked by repositories one rule matches (written straight into the layout,
then counted once), then times reservations of one new blob each and prints their median.
Run it against two source trees in turn (``PYTHONPATH``) to compare them.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import statistics
import tempfile
import time

from dockyard.reference import Digest
from dockyard.storage import paths
from dockyard.storage.driver import StorageDriver
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.inmemory import InMemoryDriver
from dockyard.storage.quotas import QuotaRule
from dockyard.storage.registry import Registry

RULE = QuotaRule("team/*", 1 << 50)
REPOSITORIES = 20


async def lay_out(driver: StorageDriver, blobs: int) -> None:
    """``blobs`` blobs of a few bytes, each linked as a layer by one of the rule's repositories."""
    for number in range(blobs):
        data = f"blob {number}".encode()
        digest = Digest.of(data)
        await driver.put_content(paths.blob_data(digest), data)
        await driver.put_content(paths.layer_link(f"team/r{number % REPOSITORIES}", digest), str(digest).encode())


async def median_reservation(driver: StorageDriver, blobs: int, reservations: int) -> float:
    await lay_out(driver, blobs)
    registry = Registry(driver, quotas=[RULE])
    await registry.quotas.prepare()  # the count from the layout, once, as a server does at start
    repository = registry.repository("team/app")
    took = []
    for number in range(reservations):
        digest = Digest.of(f"new {number}".encode())
        started = time.perf_counter()
        async with repository.admitting({digest: 10}):
            took.append(time.perf_counter() - started)
    return statistics.median(took)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blobs", type=int, default=20_000)
    parser.add_argument("--reservations", type=int, default=25)
    parser.add_argument("--driver", choices=["inmemory", "filesystem"], default="inmemory")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        driver = InMemoryDriver() if arguments.driver == "inmemory" else FilesystemDriver(pathlib.Path(root))
        median = asyncio.run(median_reservation(driver, arguments.blobs, arguments.reservations))
    print(f"{arguments.driver}, {arguments.blobs} blobs: median reservation {median * 1000:.2f} ms")


if __name__ == "__main__":
    main()
