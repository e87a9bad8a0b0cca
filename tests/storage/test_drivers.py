"""Run the shared driver suite against every driver.

A new driver joins by adding one factory to ``FACTORIES``: it takes pytest's fixture
request and returns a fresh, empty driver (or calls ``pytest.skip``). The S3 driver runs
against the session's SeaweedFS, in a fresh rootdirectory each test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from dockyard.storage.driver import StorageDriver
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.inmemory import InMemoryDriver
from dockyard.storage.s3 import S3Driver
from tests.storage.driver_suite import DriverSuite
from tests.support.plugin import storage_marks

FACTORIES: dict[str, Callable[[pytest.FixtureRequest], StorageDriver]] = {
    "filesystem": lambda request: FilesystemDriver(request.getfixturevalue("tmp_path") / "root"),
    "inmemory": lambda request: InMemoryDriver(),
    "s3": lambda request: S3Driver(request.getfixturevalue("s3_settings")),
}


@pytest.fixture(params=[pytest.param(factory, id=name, marks=storage_marks(name)) for name, factory in FACTORIES.items()])
async def driver(request: pytest.FixtureRequest) -> AsyncIterator[StorageDriver]:
    instance = request.param(request)
    try:
        yield instance
    finally:
        await instance.close()


@pytest.fixture
def reopen(request: pytest.FixtureRequest, driver: StorageDriver) -> Callable[[], StorageDriver]:
    """Another driver over the same storage as ``driver``, as another process has."""
    if isinstance(driver, InMemoryDriver):
        return lambda: driver  # its storage is the instance
    return lambda: FACTORIES[driver.name](request)


class TestDriver(DriverSuite):
    pass
