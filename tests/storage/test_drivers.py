"""Run the shared driver suite against every driver.

A new driver (S3, ...) joins by adding one factory to ``FACTORIES``: it takes pytest's
``tmp_path`` and returns a fresh, empty driver (or calls ``pytest.skip``).
"""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Callable

import pytest

from dockyard.storage.driver import StorageDriver
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.inmemory import InMemoryDriver
from tests.storage.driver_suite import DriverSuite

FACTORIES: dict[str, Callable[[pathlib.Path], StorageDriver]] = {
    "filesystem": lambda tmp_path: FilesystemDriver(tmp_path / "root"),
    "inmemory": lambda tmp_path: InMemoryDriver(),
}


@pytest.fixture(params=list(FACTORIES.values()), ids=list(FACTORIES))
async def driver(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> AsyncIterator[StorageDriver]:
    instance = request.param(tmp_path)
    try:
        yield instance
    finally:
        await instance.close()


class TestDriver(DriverSuite):
    pass
