"""Fixtures shared across the test packages."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

from dockyard.config import S3
from tests.support.seaweedfs import SeaweedFS
from tests.support.server import DockyardProcess
from tests.support.tools import require_tool

_s3_roots = itertools.count(1)


@pytest.fixture
def start_server(tmp_path) -> Iterator[Callable[..., DockyardProcess]]:
    """Start ``dockyard serve`` over ``tmp_path/root`` with extra flags; all are stopped after the test."""
    started: list[DockyardProcess] = []

    def start(*extra: str) -> DockyardProcess:
        server = DockyardProcess(tmp_path / "root", *extra).start()
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
