"""The image the proxy topology tests push through nginx."""

from __future__ import annotations

import pytest

from tests.proxy.topologies import BigImage, write_big_image


@pytest.fixture(scope="module")
def big_image(tmp_path_factory: pytest.TempPathFactory) -> BigImage:
    """An OCI layout whose one layer is an uncompressed tar holding 300 MiB of random bytes."""
    return write_big_image(tmp_path_factory.mktemp("big-image") / "layout")
