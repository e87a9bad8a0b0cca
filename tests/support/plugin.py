"""The tests' pytest plugin (registered by the root ``conftest.py``): the fixtures more than one
test package uses, and the tiers.

A test's tier follows from the fixtures it uses: SeaweedFS makes it ``s3``, a browser
``browser``, a real container client ``clients``, and each of those, like the other
fixtures in ``SLOW_FIXTURES``, makes it ``slow``. ``pytest -m "not slow"`` is the fast
local loop; CI runs everything.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dockyard.config import S3
from tests.support.redis import RedisProcess
from tests.support.seaweedfs import SeaweedFS
from tests.support.server import DockyardProcess
from tests.support.tools import require_tool

pytest_plugins = ["tests.support.clients"]

# marker -> the fixtures that bring it
TIER_FIXTURES = {
    "s3": {"seaweedfs", "s3_bucket", "s3_settings"},
    "browser": {"browser"},
    "clients": {"skopeo", "docker", "start_dockerd", "containerd", "podman", "oras_client"},
}
# Long without any of the above: registry:2 pushes, a 300 MiB image, replica clusters, an ACME server.
SLOW_FIXTURES = {"registry2_available", "big_image", "cluster", "pebble", "pebble_factory"}

_s3_roots = itertools.count(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in TIER_FIXTURES.items():
            if used & fixtures:
                item.add_marker(marker)
        # A tier may also be marked by the test itself: its module's pytestmark, a storage parameter.
        if used & SLOW_FIXTURES or any(item.get_closest_marker(marker) for marker in TIER_FIXTURES):
            item.add_marker("slow")


def storage_marks(storage: str) -> list[pytest.MarkDecorator]:
    """The marks of a test's run on ``storage``: tests parametrized by storage reach SeaweedFS through
    ``request.getfixturevalue``, which collection cannot see, so their S3 parameter carries ``s3``."""
    return [pytest.mark.s3] if storage == "s3" else []


def storage_params(storages: list[str]) -> list[Any]:
    """``storages`` as parameters of a fixture or test, each with its :func:`storage_marks`."""
    return [pytest.param(storage, marks=storage_marks(storage)) for storage in storages]


@pytest.fixture
def start_server(tmp_path) -> Iterator[Callable[..., DockyardProcess]]:
    """Start ``dockyard serve`` over ``tmp_path/root`` (or another folder of ``tmp_path``, for a second server)
    with extra flags; all are stopped after the test."""
    started: list[DockyardProcess] = []

    def start(*extra: str, root: str = "root") -> DockyardProcess:
        server = DockyardProcess(tmp_path / root, *extra).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One SeaweedFS S3 server for the session; each test takes its own bucket or rootdirectory."""
    require_tool("weed")
    with SeaweedFS(tmp_path_factory.mktemp("seaweedfs") / "data").start() as server:
        yield server


@pytest.fixture(scope="session")
def s3_bucket(seaweedfs: SeaweedFS) -> str:
    """A bucket the session's tests share, each under its own rootdirectory (see ``s3_settings``)."""
    return seaweedfs.create_bucket("dockyard-tests")


@pytest.fixture
def s3_settings(seaweedfs: SeaweedFS, s3_bucket: str) -> S3:
    """S3 driver settings for a fresh, empty rootdirectory in the session's bucket."""
    return seaweedfs.settings(s3_bucket, f"/test-{next(_s3_roots)}")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """One ``redis-server`` for the session; keys are per test."""
    require_tool("redis-server")
    server = RedisProcess(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()
