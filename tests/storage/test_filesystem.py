"""What only the filesystem driver promises: atomic files on disk, real paths, path checks."""

from __future__ import annotations

import asyncio
import os
import pathlib

import pytest

from dockyard.storage import filesystem
from dockyard.storage.driver import PathNotFound
from dockyard.storage.filesystem import FilesystemDriver
from tests.storage.driver_suite import read_all


@pytest.fixture
def root(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "root"


@pytest.fixture
def driver(root: pathlib.Path) -> FilesystemDriver:
    return FilesystemDriver(root)


def files_under(directory: pathlib.Path) -> list[str]:
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*"))


async def test_put_content_leaves_no_temporary_files(driver: FilesystemDriver, root: pathlib.Path) -> None:
    await driver.put_content("/a/link", b"first")
    await driver.put_content("/a/link", b"second")
    await driver.put_content("/a/b/other", b"third")
    assert files_under(root) == ["a", "a/b", "a/b/other", "a/link"]
    assert (root / "a" / "link").read_bytes() == b"second"


async def test_put_content_failing_on_replace_leaves_no_temporary_files(
    driver: FilesystemDriver, root: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await driver.put_content("/a/link", b"original")

    def broken_replace(source: object, destination: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(filesystem.os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left"):
        await driver.put_content("/a/link", b"replacement")
    monkeypatch.undo()
    assert files_under(root) == ["a", "a/link"]
    assert await driver.get_content("/a/link") == b"original"


async def test_put_content_failing_on_write_leaves_no_temporary_files(
    driver: FilesystemDriver, root: pathlib.Path
) -> None:
    await driver.put_content("/a/link", b"original")
    with pytest.raises(TypeError):
        await driver.put_content("/a/link", "not bytes")  # type: ignore[arg-type]
    assert files_under(root) == ["a", "a/link"]
    assert await driver.get_content("/a/link") == b"original"


async def test_put_content_over_a_directory_fails_and_leaves_no_temporary_files(
    driver: FilesystemDriver, root: pathlib.Path
) -> None:
    await driver.put_content("/a/dir/file", b"x")
    with pytest.raises(OSError):
        await driver.put_content("/a/dir", b"y")
    assert files_under(root) == ["a", "a/dir", "a/dir/file"]


async def test_local_file_returns_the_real_path(driver: FilesystemDriver, root: pathlib.Path) -> None:
    await driver.put_content("/docker/registry/v2/blobs/data", b"blob bytes")
    local = driver.local_file("/docker/registry/v2/blobs/data")
    assert local == root / "docker" / "registry" / "v2" / "blobs" / "data"
    assert local is not None and local.is_absolute()
    assert local.read_bytes() == b"blob bytes"


async def test_relative_root_is_made_absolute(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    driver = FilesystemDriver("relative")
    await driver.put_content("/file", b"x")
    assert driver.local_file("/file") == tmp_path / "relative" / "file"
    assert (tmp_path / "relative" / "file").read_bytes() == b"x"


async def test_redirect_url_is_none(driver: FilesystemDriver) -> None:
    await driver.put_content("/file", b"x")
    assert await driver.redirect_url("/file", "GET") is None


BAD_PATHS = ["/..", "/../outside", "/a/../../outside", "/a/..", "/a/../b", "/a\0b", "/a/b\0", "relative/path", ""]


@pytest.mark.parametrize("path", BAD_PATHS)
@pytest.mark.parametrize(
    "operation", ["get_content", "put_content", "read", "writer", "stat", "list", "delete", "move_from", "move_to", "local_file"]
)
async def test_unsafe_paths_are_refused(
    driver: FilesystemDriver, tmp_path: pathlib.Path, root: pathlib.Path, operation: str, path: str
) -> None:
    await driver.put_content("/a/b", b"inside")
    (tmp_path / "outside").write_bytes(b"outside")
    before = files_under(tmp_path)
    with pytest.raises(ValueError, match="invalid storage path"):
        if operation == "put_content":
            await driver.put_content(path, b"evil")
        elif operation == "read":
            await read_all(driver, path)
        elif operation == "move_from":
            await driver.move(path, "/a/target")
        elif operation == "move_to":
            await driver.move("/a/b", path)
        elif operation == "local_file":
            driver.local_file(path)
        else:
            await getattr(driver, operation)(path)
    assert files_under(tmp_path) == before
    assert (tmp_path / "outside").read_bytes() == b"outside"
    assert await driver.get_content("/a/b") == b"inside"


@pytest.mark.parametrize("path", ["/a/..b", "/a/b..", "/a/.b/c", "/..a"])
async def test_dots_inside_a_component_are_allowed(driver: FilesystemDriver, root: pathlib.Path, path: str) -> None:
    await driver.put_content(path, b"ok")
    assert await driver.get_content(path) == b"ok"
    assert driver.local_file(path) == root / path.lstrip("/")


def settle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files count as settled (kept in the process) as soon as their times are in the past."""
    monkeypatch.setattr(filesystem, "SETTLED_NS", 0)


def count_opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    opened: list[str] = []
    real_open = filesystem.os.open

    def counting_open(path: str, *args: int) -> int:
        opened.append(path)
        return real_open(path, *args)

    monkeypatch.setattr(filesystem.os, "open", counting_open)
    return opened


async def test_a_settled_small_file_is_read_again_without_opening_it(driver: FilesystemDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    settle(monkeypatch)
    await driver.put_content("/tags/latest/link", b"sha256:" + b"a" * 64)
    opened = count_opens(monkeypatch)
    assert [await driver.get_content("/tags/latest/link") for _ in range(3)] == [b"sha256:" + b"a" * 64] * 3
    assert len(opened) == 1


async def test_a_recent_or_large_file_is_read_every_time(driver: FilesystemDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    await driver.put_content("/recent", b"just written")
    await driver.put_content("/large", b"x" * (filesystem.CACHED_FILE_MAX + 1))
    opened = count_opens(monkeypatch)
    for _ in range(2):
        assert await driver.get_content("/recent") == b"just written"
        assert len(await driver.get_content("/large")) == filesystem.CACHED_FILE_MAX + 1
    assert len(opened) == 4


async def test_a_kept_file_changed_by_anyone_is_read_again(driver: FilesystemDriver, root: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Another worker or replica on the root changes files behind this process's back, in every way
    # a file can change: replaced by a rename (the same size, even the same times), rewritten in
    # place with its times put back, deleted, and made again. Each change comes a clock tick (a
    # jiffy) after the read, as it would after SETTLED_NS.
    settle(monkeypatch)
    path = root / "tags" / "latest" / "link"
    await driver.put_content("/tags/latest/link", b"sha256:" + b"a" * 64)
    for round_number, content in enumerate([b"sha256:" + b"b" * 64, b"sha256:" + b"c" * 64]):
        assert await driver.get_content("/tags/latest/link") != content
        await asyncio.sleep(0.05)
        times = path.stat()
        if round_number == 0:
            await FilesystemDriver(root).put_content("/tags/latest/link", content)
        else:
            with open(path, "r+b") as file:
                file.write(content)
        os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))
        assert await driver.get_content("/tags/latest/link") == content
    await asyncio.sleep(0.05)
    path.unlink()
    with pytest.raises(PathNotFound):
        await driver.get_content("/tags/latest/link")
    path.write_bytes(b"made again")
    assert await driver.get_content("/tags/latest/link") == b"made again"


async def test_kept_files_stay_within_their_budget(driver: FilesystemDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    settle(monkeypatch)
    monkeypatch.setattr(filesystem, "CACHED_FILES_BYTES", 10_000)
    fresh = FilesystemDriver(driver.root)  # made after the budget is cut
    for index in range(100):
        await fresh.put_content(f"/links/{index}", b"sha256:" + b"a" * 64)
        assert await fresh.get_content(f"/links/{index}") == b"sha256:" + b"a" * 64
    assert 0 < fresh._small_files.size <= 10_000
    opened = count_opens(monkeypatch)
    assert await fresh.get_content("/links/99") == b"sha256:" + b"a" * 64  # the latest read is kept
    assert opened == []


async def test_a_settled_small_directory_is_listed_again_without_reading_it(driver: FilesystemDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    settle(monkeypatch)
    for tag in ("a", "c", "b"):
        await driver.put_content(f"/tags/{tag}/current/link", b"sha256:" + b"a" * 64)
    listed: list[str] = []
    real_listdir = filesystem.os.listdir
    monkeypatch.setattr(filesystem.os, "listdir", lambda path: listed.append(path) or real_listdir(path))
    assert [await driver.list_sorted(["/tags"]) for _ in range(3)] == [{"/tags": ["a", "b", "c"]}] * 3
    assert len(listed) == 1
