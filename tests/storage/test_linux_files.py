"""Early write-back of written ranges and allocation ahead of writes: available on Linux, harmless everywhere."""

from __future__ import annotations

import os
import pathlib
import sys

import pytest

from dockyard.storage import linux_files
from dockyard.storage.filesystem import ALLOCATE_AHEAD, FilesystemDriver


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range and fallocate are Linux's")
def test_available_on_linux() -> None:
    assert linux_files.AVAILABLE


def test_start_writeback_keeps_the_bytes(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "data"
    with open(path, "wb") as file:
        file.write(b"a" * 5000)
        file.flush()
        linux_files.start_writeback(file.fileno(), 0, 5000)
        linux_files.start_writeback(file.fileno(), 0, 0)
    assert path.read_bytes() == b"a" * 5000


def test_start_writeback_on_a_pipe_is_left_for_fsync_to_judge() -> None:
    read_end, write_end = os.pipe()
    try:
        linux_files.start_writeback(write_end, 0, 10)  # ESPIPE: ignored, not raised
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


async def test_a_writer_whose_commit_nobody_awaits_leaves_the_writeback_to_it(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr("dockyard.storage.filesystem.start_writeback", lambda fd, offset, length: calls.append((offset, length)))
    driver = FilesystemDriver(tmp_path)
    writer = await driver.writer("/download", commit_awaited=False)
    await writer.write(b"x" * 100)
    await writer.commit()
    await writer.close()
    assert calls == []
    assert (tmp_path / "download").read_bytes() == b"x" * 100


def _allocated(path: pathlib.Path) -> int:
    return path.stat().st_blocks * 512


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fallocate is Linux's")
def test_allocate_makes_room_without_changing_the_size(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "data"
    with open(path, "wb") as file:
        file.write(b"a" * 10)
        file.flush()
        linux_files.allocate(file.fileno(), 10, 4 << 20)
        linux_files.allocate(file.fileno(), 0, 0)
    assert path.stat().st_size == 10
    assert _allocated(path) >= 4 << 20
    assert path.read_bytes() == b"a" * 10


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fallocate is Linux's")
async def test_a_writer_told_what_comes_allocates_it_ahead_but_never_far_beyond_its_writes(tmp_path: pathlib.Path) -> None:
    driver = FilesystemDriver(tmp_path)
    path = tmp_path / "upload" / "data"
    writer = await driver.writer("/upload/data")
    writer.expect(8 << 20)
    await writer.write(b"x" * 1000)
    assert path.stat().st_size == 1000
    assert _allocated(path) >= 8 << 20
    await writer.close()

    # A client announcing far more than it sends holds at most ALLOCATE_AHEAD beyond what it sent.
    writer = await driver.writer("/upload/data", append=True)
    writer.expect(1 << 40)
    await writer.write(b"y" * 1000)
    await writer.commit()
    await writer.close()
    assert path.stat().st_size == 2000
    assert (8 << 20) < _allocated(path) <= 2000 + ALLOCATE_AHEAD + (1 << 20)
    assert path.read_bytes() == b"x" * 1000 + b"y" * 1000
