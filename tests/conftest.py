"""Fixtures shared across the test packages."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.server import DockyardProcess


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
