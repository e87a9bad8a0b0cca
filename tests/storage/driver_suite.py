"""The behaviour every :class:`~dockyard.storage.driver.StorageDriver` must show.

:class:`DriverSuite` holds the tests; it is not collected by itself. A test module
subclasses it as ``Test...`` and provides a ``driver`` fixture, and a ``reopen`` fixture
that makes another driver over the same storage, as another process would (see
``test_drivers.py``, where adding a driver means adding one factory).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import sys
from collections.abc import Callable

import pytest

from dockyard.storage.driver import FileInfo, FileWriter, Move, PathNotFound, StorageDriver

MiB = 1 << 20


async def read_all(driver: StorageDriver, path: str, offset: int = 0, length: int | None = None) -> bytes:
    chunks = []
    async for chunk in driver.read(path, offset, length):
        assert isinstance(chunk, bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def pseudo_random(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


async def write_file(driver: StorageDriver, path: str, *chunks: bytes, append: bool = False) -> int:
    writer = await driver.writer(path, append=append)
    try:
        for chunk in chunks:
            await writer.write(chunk)
        await writer.commit()
        return writer.size
    finally:
        await writer.close()


class DriverSuite:
    """Tests that use a ``driver`` fixture yielding a fresh, empty driver."""

    # -- get_content / put_content -------------------------------------------------

    async def test_put_get_round_trip(self, driver: StorageDriver) -> None:
        content = bytes(range(256)) * 4
        await driver.put_content("/docker/registry/v2/file", content)
        assert await driver.get_content("/docker/registry/v2/file") == content
        assert await read_all(driver, "/docker/registry/v2/file") == content

    async def test_put_overwrites_longer_with_shorter(self, driver: StorageDriver) -> None:
        await driver.put_content("/a/file", b"a much longer first value")
        await driver.put_content("/a/file", b"short")
        assert await driver.get_content("/a/file") == b"short"
        assert (await driver.stat("/a/file")).size == 5
        assert await read_all(driver, "/a/file") == b"short"

    async def test_empty_content(self, driver: StorageDriver) -> None:
        await driver.put_content("/a/empty", b"")
        assert await driver.get_content("/a/empty") == b""
        assert await read_all(driver, "/a/empty") == b""
        info = await driver.stat("/a/empty")
        assert (info.size, info.is_dir) == (0, False)
        assert await driver.list("/a") == ["empty"]

    async def test_binary_content_is_kept_exactly(self, driver: StorageDriver) -> None:
        content = b"\x00\r\n\xff\x00" * 1000 + b"\n"
        await driver.put_content("/bin", content)
        assert await driver.get_content("/bin") == content

    # -- missing paths ---------------------------------------------------------------

    @pytest.mark.parametrize("missing", ["/nothing", "/data/nothing", "/data/fil", "/data/file/below", "/data/sub/deeper"])
    @pytest.mark.parametrize("operation", ["get_content", "stat", "list", "read", "move", "delete"])
    async def test_missing_path_raises_path_not_found(self, driver: StorageDriver, operation: str, missing: str) -> None:
        await driver.put_content("/data/file", b"present")
        await driver.put_content("/data/sub/other", b"other")
        with pytest.raises(PathNotFound) as caught:
            if operation == "read":
                await read_all(driver, missing)
            elif operation == "move":
                await driver.move(missing, "/elsewhere/target")
            else:
                await getattr(driver, operation)(missing)
        assert caught.value.path == missing
        # Nothing else was touched.
        assert await driver.get_content("/data/file") == b"present"
        assert await driver.get_content("/data/sub/other") == b"other"
        with pytest.raises(PathNotFound):
            await driver.stat("/elsewhere/target")

    async def test_list_of_a_file_raises_path_not_found(self, driver: StorageDriver) -> None:
        await driver.put_content("/dir/file", b"x")
        with pytest.raises(PathNotFound):
            await driver.list("/dir/file")

    async def test_get_content_of_a_directory_raises_path_not_found(self, driver: StorageDriver) -> None:
        await driver.put_content("/dir/file", b"x")
        with pytest.raises(PathNotFound):
            await driver.get_content("/dir")

    async def test_read_of_a_directory_raises_path_not_found(self, driver: StorageDriver) -> None:
        await driver.put_content("/dir/file", b"x")
        with pytest.raises(PathNotFound):
            await read_all(driver, "/dir")

    async def test_move_of_missing_source_keeps_destination(self, driver: StorageDriver) -> None:
        await driver.put_content("/dst", b"kept")
        with pytest.raises(PathNotFound):
            await driver.move("/src", "/dst")
        assert await driver.get_content("/dst") == b"kept"

    # -- read with offset and length -------------------------------------------------

    @pytest.mark.parametrize(
        ("offset", "length", "expected"),
        [
            (0, None, b"0123456789"),
            (0, 10, b"0123456789"),
            (3, None, b"3456789"),
            (3, 4, b"3456"),
            (9, 1, b"9"),
            (0, 0, b""),
            (5, 0, b""),
            (10, None, b""),  # offset at the end
            (10, 5, b""),
            (7, 100, b"789"),  # length past the end
            (0, 11, b"0123456789"),
            (25, None, b""),  # offset past the end
        ],
    )
    async def test_read_offset_and_length(
        self, driver: StorageDriver, offset: int, length: int | None, expected: bytes
    ) -> None:
        await driver.put_content("/digits", b"0123456789")
        assert await read_all(driver, "/digits", offset, length) == expected

    async def test_read_ranges_across_chunk_boundaries(self, driver: StorageDriver) -> None:
        content = pseudo_random(3 * MiB + 17, seed=1)
        await driver.put_content("/big", content)
        for offset, length in [(MiB - 5, 2 * MiB + 10), (0, MiB + 1), (MiB, MiB), (3 * MiB, None), (1, None)]:
            end = len(content) if length is None else offset + length
            assert await read_all(driver, "/big", offset, length) == content[offset:end], (offset, length)

    async def test_a_read_abandoned_mid_stream_releases_the_file(self, driver: StorageDriver) -> None:
        # A client that hangs up mid-download: the reader is closed after its first chunk,
        # possibly with the next one being read ahead; the file stays usable.
        content = pseudo_random(3 * MiB, seed=2)
        await driver.put_content("/big", content)
        for _ in range(20):
            reader = driver.read("/big")
            first = await anext(reader)
            assert content.startswith(first) and first
            await reader.aclose()
        await driver.delete("/big")
        with pytest.raises(PathNotFound):
            await driver.stat("/big")

    async def test_streamed_large_content(self, driver: StorageDriver) -> None:
        chunk_size, chunks = 64 * 1024, 160  # 10 MiB
        expected = hashlib.sha256()
        writer = await driver.writer("/uploads/large/data")
        try:
            for index in range(chunks):
                chunk = pseudo_random(chunk_size, seed=index)
                expected.update(chunk)
                await writer.write(chunk)
                assert writer.size == (index + 1) * chunk_size
            await writer.commit()
        finally:
            await writer.close()
        assert (await driver.stat("/uploads/large/data")).size == 10 * MiB
        actual, total = hashlib.sha256(), 0
        async for piece in driver.read("/uploads/large/data"):
            assert piece  # no empty chunks
            actual.update(piece)
            total += len(piece)
        assert total == 10 * MiB
        assert actual.hexdigest() == expected.hexdigest()
        # A range in the middle is the same bytes as the stream wrote there.
        middle = await read_all(driver, "/uploads/large/data", 5 * chunk_size + 100, chunk_size)
        assert middle == pseudo_random(chunk_size, seed=5)[100:] + pseudo_random(chunk_size, seed=6)[:100]

    # -- writer ----------------------------------------------------------------------

    async def test_writer_many_chunks_size_and_commit(self, driver: StorageDriver) -> None:
        writer = await driver.writer("/w/file")
        assert isinstance(writer, FileWriter)
        assert writer.size == 0
        expected = b""
        for index in range(100):
            data = f"chunk-{index};".encode()
            await writer.write(data)
            expected += data
            assert writer.size == len(expected)
        await writer.commit()
        await writer.close()
        assert await driver.get_content("/w/file") == expected
        assert (await driver.stat("/w/file")).size == len(expected)

    async def test_writer_accepts_bytearray_and_memoryview(self, driver: StorageDriver) -> None:
        size = await write_file(driver, "/w/file", b"ab", bytearray(b"cd"), memoryview(b"xxefxx")[2:4], b"")
        assert size == 6
        assert await driver.get_content("/w/file") == b"abcdef"

    async def test_writer_append_resumes_after_close(self, driver: StorageDriver) -> None:
        assert await write_file(driver, "/up/data", b"hello ", b"there ") == 12

        second = await driver.writer("/up/data", append=True)
        assert second.size == 12
        await second.write(b"general ")
        assert second.size == 20
        await second.commit()
        await second.close()

        third = await driver.writer("/up/data", append=True)
        assert third.size == 20
        await third.write(b"kenobi")
        assert third.size == 26
        await third.commit()
        await third.close()

        assert await driver.get_content("/up/data") == b"hello there general kenobi"
        assert (await driver.stat("/up/data")).size == 26
        assert await read_all(driver, "/up/data", 12, 8) == b"general "

    async def test_writer_append_on_new_path_starts_empty(self, driver: StorageDriver) -> None:
        writer = await driver.writer("/fresh/data", append=True)
        assert writer.size == 0
        await writer.write(b"abc")
        await writer.commit()
        await writer.close()
        assert await driver.get_content("/fresh/data") == b"abc"

    async def test_writer_without_append_truncates(self, driver: StorageDriver) -> None:
        await driver.put_content("/w/file", b"old content that is long")
        writer = await driver.writer("/w/file")
        assert writer.size == 0
        await writer.write(b"new")
        await writer.commit()
        await writer.close()
        assert await driver.get_content("/w/file") == b"new"

    async def test_writer_cancel_removes_content(self, driver: StorageDriver) -> None:
        await driver.put_content("/w/sibling", b"stays")
        writer = await driver.writer("/w/file")
        await writer.write(b"doomed")
        await writer.cancel()
        with pytest.raises(PathNotFound):
            await driver.stat("/w/file")
        with pytest.raises(PathNotFound):
            await driver.get_content("/w/file")
        assert await driver.list("/w") == ["sibling"]
        assert await driver.get_content("/w/sibling") == b"stays"

    async def test_writer_cancel_of_resumed_writer_removes_everything(self, driver: StorageDriver) -> None:
        await write_file(driver, "/up/data", b"first part")
        writer = await driver.writer("/up/data", append=True)
        await writer.write(b" second part")
        await writer.cancel()
        with pytest.raises(PathNotFound):
            await driver.get_content("/up/data")

    async def test_writer_on_new_path_creates_parents(self, driver: StorageDriver) -> None:
        await write_file(driver, "/a/b/c/d/file", b"deep")
        assert await driver.get_content("/a/b/c/d/file") == b"deep"
        assert await driver.list("/a/b/c") == ["d"]
        assert await driver.list("/a") == ["b"]
        assert (await driver.stat("/a/b")).is_dir is True

    async def test_append_across_writers_and_drivers_in_chunks_below_and_above_5_mib(
        self, driver: StorageDriver, reopen: Callable[[], StorageDriver]
    ) -> None:
        # Object stores gather appends into parts of at least 5 MiB (S3's smallest): each
        # writer here continues what the last one left, alternately in another driver
        # (another process), written in pieces of at most 1 MiB as uploads arrive.
        sizes = [1, 100 * 1024, 3 * MiB, 2 * MiB + 5, 6 * MiB, 11 * MiB + 3, 7]
        expected = bytearray()
        other = reopen()
        try:
            for index, size in enumerate(sizes):
                current = other if index % 2 else driver
                writer = await current.writer("/up/id/data", append=True)
                assert writer.size == len(expected)
                chunk = pseudo_random(size, seed=index)
                for start in range(0, size, MiB):
                    await writer.write(chunk[start:start + MiB])
                expected += chunk
                assert writer.size == len(expected)
                await writer.close()
                for reader in (driver, other):
                    assert (await reader.stat("/up/id/data")).size == len(expected)
            assert hashlib.sha256(await read_all(other, "/up/id/data")).digest() == hashlib.sha256(expected).digest()
            assert await read_all(driver, "/up/id/data", 3 * MiB - 10, 2 * MiB + 20) == expected[3 * MiB - 10:5 * MiB + 10]
            await driver.move("/up/id/data", "/blobs/ab/data")
            assert hashlib.sha256(await read_all(other, "/blobs/ab/data")).digest() == hashlib.sha256(expected).digest()
            assert (await other.stat("/blobs/ab/data")).size == len(expected)
            with pytest.raises(PathNotFound):
                await other.stat("/up/id/data")
        finally:
            if other is not driver:
                await other.close()

    async def test_partly_uploaded_file_reads_what_was_closed(self, driver: StorageDriver, reopen: Callable[[], StorageDriver]) -> None:
        # A finished upload's data is re-hashed from storage when the hash state is
        # missing (another process): stat and read must see every closed write.
        first = pseudo_random(6 * MiB + 1, seed=1)
        writer = await driver.writer("/up/id/data", append=True)
        await writer.write(first)
        await writer.close()
        other = reopen()
        try:
            assert (await other.stat("/up/id/data")).size == len(first)
            assert await read_all(other, "/up/id/data") == first
            writer = await other.writer("/up/id/data", append=True)
            await writer.write(b"more")
            await writer.close()
            assert await read_all(driver, "/up/id/data", len(first) - 2) == first[-2:] + b"more"
            assert await driver.list("/up/id") == ["data"]
        finally:
            if other is not driver:
                await other.close()

    async def test_lock_holds_against_another_driver(self, driver: StorageDriver, reopen: Callable[[], StorageDriver]) -> None:
        # Two processes (or replicas) appending to one upload take turns on its lock.
        await driver.put_content("/up/id/startedat", b"now")
        other = reopen()
        order: list[str] = []

        async def second() -> None:
            async with other.lock("/up/id/startedat"):
                order.append("second")

        try:
            async with driver.lock("/up/id/startedat"):
                waiting = asyncio.ensure_future(second())
                await asyncio.sleep(0.3)
                order.append("first")
            await waiting
            assert order == ["first", "second"]
            assert await driver.list("/up/id") == ["startedat"]  # nothing of the lock is left to see
            with pytest.raises(PathNotFound):
                async with driver.lock("/up/id/missing"):
                    pass
        finally:
            if other is not driver:
                await other.close()

    async def test_a_lock_file_made_by_many_at_once_is_one_they_take_turns_on(
        self, driver: StorageDriver, reopen: Callable[[], StorageDriver],
    ) -> None:
        # Each makes the missing file, then counts under its lock: none may replace the file another holds.
        other = reopen()

        async def count(on: StorageDriver) -> None:
            await on.create("/counted/lock", b"")
            async with on.lock("/counted/lock"):
                seen = int(await on.get_content("/counted/value")) if "value" in await on.list("/counted") else 0
                await asyncio.sleep(0.001)
                await on.put_content("/counted/value", str(seen + 1).encode())

        try:
            await asyncio.gather(*(count(driver if number % 2 else other) for number in range(20)))
            assert await driver.get_content("/counted/value") == b"20"
            assert await driver.get_content("/counted/lock") == b""
            await driver.put_content("/counted/lock", b"kept")
            await driver.create("/counted/lock", b"")
            assert await driver.get_content("/counted/lock") == b"kept"
        finally:
            if other is not driver:
                await other.close()

    # -- stat ------------------------------------------------------------------------

    async def test_stat_of_a_file(self, driver: StorageDriver) -> None:
        await driver.put_content("/s/file", b"12345")
        info = await driver.stat("/s/file")
        assert isinstance(info, FileInfo)
        assert info.path == "/s/file"
        assert info.size == 5
        assert info.is_dir is False
        assert isinstance(info.mtime, float) and info.mtime > 0

    async def test_stat_of_a_directory(self, driver: StorageDriver) -> None:
        await driver.put_content("/s/dir/file", b"12345")
        info = await driver.stat("/s/dir")
        assert info.path == "/s/dir"
        assert info.is_dir is True
        assert (await driver.stat("/s")).is_dir is True

    # -- list ------------------------------------------------------------------------

    async def test_list_returns_direct_children_only(self, driver: StorageDriver) -> None:
        for path in ["/r/a", "/r/b", "/r/sub/c", "/r/sub/deeper/d", "/r/sub/deeper/e", "/other/x"]:
            await driver.put_content(path, path.encode())
        assert sorted(await driver.list("/r")) == ["a", "b", "sub"]
        assert sorted(await driver.list("/r/sub")) == ["c", "deeper"]
        assert sorted(await driver.list("/r/sub/deeper")) == ["d", "e"]
        assert sorted(await driver.list("/")) == ["other", "r"]

    async def test_list_does_not_confuse_prefix_siblings(self, driver: StorageDriver) -> None:
        await driver.put_content("/r/a/y", b"1")
        await driver.put_content("/r/ab/x", b"2")
        await driver.put_content("/r/a.txt", b"3")
        assert await driver.list("/r/a") == ["y"]
        assert await driver.list("/r/ab") == ["x"]
        assert sorted(await driver.list("/r")) == ["a", "a.txt", "ab"]

    async def test_list_of_more_than_a_thousand_entries(self, driver: StorageDriver) -> None:
        # S3 lists 1000 keys a page: every page counts.
        names = [f"tag-{index:04d}" for index in range(1100)]
        limit = asyncio.Semaphore(64)

        async def put(name: str) -> None:
            async with limit:
                await driver.put_content(f"/tags/{name}", b"1")

        await asyncio.gather(*(put(name) for name in names))
        assert sorted(await driver.list("/tags")) == names
        assert await driver.list_sorted(["/tags"]) == {"/tags": names}
        assert await driver.list_page("/tags") == names
        assert await driver.list_page("/tags", "tag-0005", 1050) == names[6:1056]

    # -- list_files --------------------------------------------------------------------

    async def test_list_files_lists_every_file_below_with_size_and_time(self, driver: StorageDriver) -> None:
        contents = {"/s/a/data": b"12345", "/s/a-b/x/y": b"", "/s/a/b/c": b"1", "/s/z": b"zz", "/t/other": b"no"}
        for path, content in contents.items():
            await driver.put_content(path, content)
        writer = await driver.writer("/s/upload", append=True)  # a file written in several parts is one file
        await writer.write(b"abc")
        await writer.commit()
        await writer.close()
        async with driver.lock("/s/z"):  # a held lock is no file of the tree
            found = await driver.list_files("/s")
        assert [(info.path, info.size, info.is_dir) for info in found] == [
            ("/s/a-b/x/y", 0, False), ("/s/a/b/c", 1, False), ("/s/a/data", 5, False), ("/s/upload", 3, False), ("/s/z", 2, False),
        ]
        for info in found:
            assert info.mtime == (await driver.stat(info.path)).mtime
        assert await driver.list_files("/s/a") == [info for info in found if info.path.startswith("/s/a/")]
        assert await driver.list_files("/missing") == []
        await driver.delete("/s/a")
        assert [info.path for info in await driver.list_files("/s")] == ["/s/a-b/x/y", "/s/upload", "/s/z"]

    # -- list_page ---------------------------------------------------------------------

    async def test_list_page_walks_every_child_in_name_order(self, driver: StorageDriver) -> None:
        # ``-`` and ``.`` sort before ``/``: object storage meets ``1.0-rc/`` before ``1.0/``.
        names = sorted(["1", "1-a", "1.0", "1.0-rc", "1.0-rc.1", "1.0.1", "1.0.1-b", "10", "1a", "a", "a-b", "a.b", "a_b", "ab", "b"])
        await asyncio.gather(*(driver.put_content(f"/tags/{name}/current/link", b"1") for name in names))
        await driver.put_content("/tags/file.txt", b"a file is a child too")
        expected = sorted([*names, "file.txt"])
        assert await driver.list_page("/tags") == expected
        # An ``after`` inside a child (as a catalog walk passes) counts as the string it is.
        for after in ["", "0", "1", "1-a", "1.0", "1.0-rc", "1.0.1", "1.0/zz", "1a", "a", "a-b", "a-b/c", "a.a", "file.txt", "zz"]:
            for limit in [1, 2, 3, 100]:
                start = sum(name <= after for name in expected)
                assert await driver.list_page("/tags", after, limit) == expected[start:start + limit], (after, limit)
        for limit in [1, 2, 3]:  # a walk by pages, as ``tags/list`` follows its links
            walked: list[str] = []
            while page := await driver.list_page("/tags", walked[-1] if walked else "", limit):
                walked += page
            assert walked == expected
        assert await driver.list_page("/tags", "", 0) == []
        assert await driver.list_page("/missing") == []
        assert await driver.list_page("/tags/1.0") == ["current"]
        assert await driver.list_page("/tags", "tag-1097", 10) == names[1098:]

    # -- list_sorted -------------------------------------------------------------------

    async def test_list_sorted_lists_many_directories_sorted(self, driver: StorageDriver) -> None:
        for path in ["/s/b/x", "/s/a-b/y", "/s/a/z", "/s/a.txt", "/s/_u/w", "/s/a/b/c", "/t/only"]:
            await driver.put_content(path, b"1")
        found = await driver.list_sorted(["/s", "/s/a", "/t", "/missing", "/s/a.txt"])
        assert found == {"/s": ["_u", "a", "a-b", "a.txt", "b"], "/s/a": ["b", "z"], "/t": ["only"]}
        assert await driver.list_sorted([]) == {}

    async def test_list_sorted_sees_every_change_at_once(self, driver: StorageDriver, monkeypatch) -> None:
        # Large enough for a driver to keep the listing; a driver module's SETTLED_NS
        # (how long a directory must be unchanged before its listing is kept) is cut
        # short so the kept listing is exercised, and also left racy.
        module = sys.modules[type(driver).__module__]
        if hasattr(module, "SETTLED_NS"):
            monkeypatch.setattr(module, "SETTLED_NS", 50_000_000)
        names = [f"t{index:04d}" for index in range(300)]
        for name in names:
            await driver.put_content(f"/big/{name}/link", b"1")
        for step in range(3):
            await asyncio.sleep(0.1 if step == 0 else 0)
            assert await driver.list_sorted(["/big"]) == {"/big": names}
            assert await driver.list_sorted(["/big"]) == {"/big": names}
            # The caller owns what it gets back.
            (await driver.list_sorted(["/big"]))["/big"].append("mutated")
            added = f"new{step}"
            await driver.put_content(f"/big/{added}/link", b"1")
            names = sorted([*names, added])
            assert await driver.list_sorted(["/big", "/other"]) == {"/big": names}
            await driver.delete(f"/big/{names[0]}")
            names = names[1:]
            assert await driver.list_sorted(["/big"]) == {"/big": names}
        await driver.delete("/big")
        assert await driver.list_sorted(["/big"]) == {}
        await driver.put_content("/big/again/link", b"1")
        assert await driver.list_sorted(["/big"]) == {"/big": ["again"]}

    # -- move ------------------------------------------------------------------------

    async def test_move_replaces_destination_and_removes_source(self, driver: StorageDriver) -> None:
        await driver.put_content("/m/src", b"new value")
        await driver.put_content("/m/dst", b"old value that is longer")
        await driver.move("/m/src", "/m/dst")
        assert await driver.get_content("/m/dst") == b"new value"
        assert (await driver.stat("/m/dst")).size == 9
        with pytest.raises(PathNotFound):
            await driver.get_content("/m/src")
        assert await driver.list("/m") == ["dst"]

    async def test_move_into_a_new_parent(self, driver: StorageDriver) -> None:
        await driver.put_content("/m/src", b"moving")
        await driver.put_content("/m/stays", b"stays")
        await driver.move("/m/src", "/n/e/w/target")
        assert await driver.get_content("/n/e/w/target") == b"moving"
        assert await driver.list("/n/e/w") == ["target"]
        assert await driver.list("/m") == ["stays"]
        with pytest.raises(PathNotFound):
            await driver.stat("/m/src")

    async def test_move_of_written_file(self, driver: StorageDriver) -> None:
        await write_file(driver, "/uploads/id/data", b"part1", b"part2")
        await driver.move("/uploads/id/data", "/blobs/sha256/ab/abcd/data")
        assert await read_all(driver, "/blobs/sha256/ab/abcd/data") == b"part1part2"

    async def test_move_files_moves_each_and_skips_those_gone(self, driver: StorageDriver) -> None:
        await driver.put_content("/m/a/one/data", b"1")
        await driver.put_content("/m/b/two/data", b"2")
        await driver.put_content("/m/b/kept/data", b"k")
        await write_file(driver, "/m/c/written/data", b"part1", b"part2")
        moves = [
            Move("/m/a/one/data", "/aside/one/data"),
            Move("/m/b/two/data", "/aside/two/data"),
            Move("/m/b/gone/data", "/aside/gone/data"),
            Move("/m/c/written/data", "/aside/written/data"),
        ]
        moved = await driver.move_files(moves)
        assert moved == [moves[0], moves[1], moves[3]]
        assert await driver.get_content("/aside/one/data") == b"1"
        assert await driver.get_content("/aside/two/data") == b"2"
        assert await read_all(driver, "/aside/written/data") == b"part1part2"
        for path in ["/m/a/one/data", "/m/b/two/data", "/m/c/written/data", "/aside/gone/data"]:
            with pytest.raises(PathNotFound):
                await driver.stat(path)
        assert await driver.get_content("/m/b/kept/data") == b"k"
        if driver.name != "filesystem":  # a filesystem keeps folders (gc removes blob folders itself)
            assert await driver.list_sorted(["/m", "/aside"]) == {"/m": ["b"], "/aside": ["one", "two", "written"]}

    async def test_move_files_skips_a_source_written_since_its_time(self, driver: StorageDriver) -> None:
        await driver.put_content("/m/fresh", b"fresh")
        await driver.put_content("/m/old", b"old")
        written = (await driver.stat("/m/fresh")).mtime
        moves = [Move("/m/fresh", "/aside/fresh", unless_modified_since=written), Move("/m/old", "/aside/old", unless_modified_since=written + 3600)]
        assert await driver.move_files(moves) == [moves[1]]
        assert await driver.get_content("/m/fresh") == b"fresh"
        assert await driver.get_content("/aside/old") == b"old"
        with pytest.raises(PathNotFound):
            await driver.stat("/aside/fresh")

    # -- delete ----------------------------------------------------------------------

    async def test_delete_a_file(self, driver: StorageDriver) -> None:
        await driver.put_content("/d/one", b"1")
        await driver.put_content("/d/two", b"2")
        await driver.delete("/d/one")
        with pytest.raises(PathNotFound):
            await driver.stat("/d/one")
        with pytest.raises(PathNotFound):
            await driver.delete("/d/one")
        assert await driver.list("/d") == ["two"]
        assert await driver.get_content("/d/two") == b"2"

    async def test_delete_a_whole_tree(self, driver: StorageDriver) -> None:
        for path in ["/t/a", "/t/b/c", "/t/b/d/e", "/t/b/d/f/g", "/tx/kept", "/t.kept"]:
            await driver.put_content(path, b"x")
        await driver.delete("/t")
        for path in ["/t", "/t/a", "/t/b", "/t/b/d/e", "/t/b/d/f/g"]:
            with pytest.raises(PathNotFound):
                await driver.stat(path)
        with pytest.raises(PathNotFound):
            await driver.list("/t")
        assert sorted(await driver.list("/")) == ["t.kept", "tx"]
        assert await driver.get_content("/tx/kept") == b"x"

    async def test_delete_a_subtree(self, driver: StorageDriver) -> None:
        await driver.put_content("/t/keep/file", b"k")
        await driver.put_content("/t/drop/a/file", b"d")
        await driver.put_content("/t/drop/b", b"d")
        await driver.delete("/t/drop")
        assert await driver.list("/t") == ["keep"]
        assert await driver.get_content("/t/keep/file") == b"k"

    async def test_delete_files_deletes_each_and_leaves_no_emptied_folder(self, driver: StorageDriver) -> None:
        for path in ["/m/a/one/data", "/m/a/two/data", "/m/b/three/data", "/m/b/kept/data"]:
            await driver.put_content(path, b"x")
        deleted = await driver.delete_files(["/m/a/one/data", "/m/a/two/data", "/m/b/three/data", "/m/b/gone/data"])
        assert {"/m/a/one/data", "/m/a/two/data", "/m/b/three/data"} <= set(deleted)
        for path in ["/m/a/one/data", "/m/b/three/data"]:
            with pytest.raises(PathNotFound):
                await driver.stat(path)
        assert await driver.get_content("/m/b/kept/data") == b"x"
        if driver.name != "filesystem":  # a filesystem keeps folders (gc removes blob folders itself)
            assert await driver.list_sorted(["/m", "/m/b"]) == {"/m": ["b"], "/m/b": ["kept"]}

    # -- paths and concurrency -------------------------------------------------------

    async def test_paths_with_many_components(self, driver: StorageDriver) -> None:
        components = [f"c{index}" for index in range(60)]
        path = "/" + "/".join(components) + "/file"
        await driver.put_content(path, b"deep")
        assert await driver.get_content(path) == b"deep"
        parent = "/" + "/".join(components)
        assert await driver.list(parent) == ["file"]
        assert await driver.list("/" + "/".join(components[:30])) == ["c30"]
        assert (await driver.stat(parent)).is_dir is True
        await driver.move(path, parent + "/renamed")
        assert await driver.list(parent) == ["renamed"]
        await driver.delete("/c0")
        with pytest.raises(PathNotFound):
            await driver.get_content(parent + "/renamed")

    async def test_concurrent_put_content_leaves_one_complete_value(self, driver: StorageDriver) -> None:
        size = 2 * MiB
        values = [bytes([index]) * size for index in range(1, 9)]
        for _ in range(3):
            await asyncio.gather(*(driver.put_content("/race/file", value) for value in values))
            content = await driver.get_content("/race/file")
            assert len(content) == size
            assert content in values  # not a mix of two writers
        assert await driver.list("/race") == ["file"]
        assert (await driver.stat("/race/file")).size == size

    async def test_concurrent_put_content_on_distinct_paths(self, driver: StorageDriver) -> None:
        await asyncio.gather(*(driver.put_content(f"/many/{index}/link", str(index).encode()) for index in range(50)))
        assert sorted(await driver.list("/many"), key=int) == [str(index) for index in range(50)]
        for index in range(50):
            assert await driver.get_content(f"/many/{index}/link") == str(index).encode()

    # -- create (only where nothing is) ---------------------------------------------

    async def test_create_writes_only_where_nothing_is(self, driver: StorageDriver) -> None:
        assert await driver.create("/created/link", b"first")
        assert not await driver.create("/created/link", b"second")
        assert await driver.get_content("/created/link") == b"first"
        assert await driver.list("/created") == ["link"]  # no temporary file left beside it

    async def test_concurrent_creates_leave_exactly_one_winner(self, driver: StorageDriver, reopen: Callable[[], StorageDriver]) -> None:
        other = reopen()  # another process (or replica) on the same storage
        try:
            for attempt in range(4):
                path = f"/race/{attempt}/link"
                values = [f"writer {index}".encode() for index in range(6)]
                drivers = [driver if index % 2 else other for index in range(len(values))]
                won = await asyncio.gather(*(each.create(path, value) for each, value in zip(drivers, values, strict=True)))
                assert won.count(True) == 1, won
                assert await driver.get_content(path) == values[won.index(True)]
        finally:
            await other.close()
