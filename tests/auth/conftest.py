"""Fixtures of the authentication and authorization tests; their helpers are in :mod:`tests.support.auth`."""

from __future__ import annotations

import pathlib

import pytest

from tests.support.auth import write_htpasswd


@pytest.fixture
def users_file(tmp_path: pathlib.Path) -> pathlib.Path:
    return write_htpasswd(tmp_path / "htpasswd")
