"""Early write-back of written ranges: available on Linux, harmless everywhere."""

from __future__ import annotations

import os
import pathlib
import sys

import pytest

from dockyard.storage import writeback
from dockyard.storage.filesystem import FilesystemDriver


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
def test_available_on_linux() -> None:
    assert writeback.AVAILABLE


def test_start_writeback_keeps_the_bytes(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "data"
    with open(path, "wb") as file:
        file.write(b"a" * 5000)
        file.flush()
        writeback.start_writeback(file.fileno(), 0, 5000)
        writeback.start_writeback(file.fileno(), 0, 0)
    assert path.read_bytes() == b"a" * 5000


def test_start_writeback_on_a_pipe_is_left_for_fsync_to_judge() -> None:
    read_end, write_end = os.pipe()
    try:
        writeback.start_writeback(write_end, 0, 10)  # ESPIPE: ignored, not raised
    finally:
        os.close(read_end)
        os.close(write_end)


async def test_appending_writer_starts_writeback_at_the_right_offsets(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr("dockyard.storage.filesystem.start_writeback", lambda fd, offset, length: calls.append((offset, length)))
    driver = FilesystemDriver(tmp_path)
    writer = await driver.writer("/upload/data")
    await writer.write(b"x" * 100)
    await writer.close()
    writer = await driver.writer("/upload/data", append=True)
    await writer.write(b"y" * 50)
    await writer.write(b"z" * 25)
    await writer.commit()
    await writer.close()
    assert calls == [(0, 100), (100, 50), (150, 25)]
    assert (tmp_path / "upload" / "data").read_bytes() == b"x" * 100 + b"y" * 50 + b"z" * 25
