"""A blob's fetch as its readers see it: bytes go out as they arrive, before they are written,
all but the last until the fetch is done; a reader behind what memory holds reads the file."""

from __future__ import annotations

import asyncio
import hashlib
import pathlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from dockyard.proxy.cache import STREAM_STEP, Download, PullThroughCache, _stream_into
from dockyard.proxy.upstream import UpstreamClient
from dockyard.reference import Digest
from dockyard.storage import paths
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.inmemory import InMemoryDriver
from dockyard.storage.registry import Registry
from tests.support.writers import HeldWriter

# A reader waiting for bytes that will never come fails the test after this long instead of hanging it.
HANG_GUARD_SECONDS = 10


class _Reader:
    """A client of ``download``: what it got so far."""

    def __init__(self, download: Download, registry: Registry) -> None:
        self.got = bytearray()
        self._progress = asyncio.Event()
        self.task = asyncio.ensure_future(self._read(download, registry))

    async def _read(self, download: Download, registry: Registry) -> None:
        async for chunk in download.chunks(registry):
            self.got.extend(chunk)
            self._progress.set()

    async def has(self, count: int) -> None:
        """Returns once ``count`` bytes came (or the reader stopped); a reader stuck short of them fails the test."""
        async with asyncio.timeout(HANG_GUARD_SECONDS):
            while len(self.got) < count and not self.task.done():
                self._progress.clear()
                await asyncio.wait([asyncio.ensure_future(self._progress.wait()), self.task], return_when=asyncio.FIRST_COMPLETED)


async def test_received_bytes_reach_readers_before_they_are_written() -> None:
    registry = Registry(InMemoryDriver())
    download = Download(paths.proxy_download("unwritten"))
    reader = _Reader(download, registry)
    await download.receive(b"abc")
    await download.receive(b"def")
    await reader.has(5)
    assert bytes(reader.got) == b"abcde"  # none of it in storage yet; the last byte waits for the end
    await registry.driver.put_content(download.path, b"abcdef")
    await download.advance(6)
    assert bytes(reader.got) == b"abcde"
    await download.finish(download.path)
    await asyncio.wait_for(reader.task, HANG_GUARD_SECONDS)
    assert bytes(reader.got) == b"abcdef"


async def test_readers_get_the_last_byte_once_verified_before_the_blob_is_stored() -> None:
    registry = Registry(InMemoryDriver())
    download = Download(paths.proxy_download("verified"))
    reader = _Reader(download, registry)
    await download.receive(b"abcdef")
    await registry.driver.put_content(download.path, b"abcdef")
    await download.advance(6)
    await reader.has(5)
    assert bytes(reader.got) == b"abcde"
    await download.verify()  # the blob is still to be moved into place and linked: readers need not wait
    await asyncio.wait_for(reader.task, HANG_GUARD_SECONDS)
    assert bytes(reader.got) == b"abcdef"
    assert not download.finished


async def test_a_reader_behind_memory_reads_the_file_then_memory() -> None:
    registry = Registry(InMemoryDriver())
    download = Download(paths.proxy_download("growing"))
    chunk_size = STREAM_STEP // 4
    blob = bytes(index % 251 for index in range(chunk_size * 16))
    chunks = [blob[offset:offset + chunk_size] for offset in range(0, len(blob), chunk_size)]
    for chunk in chunks[:12]:
        await download.receive(chunk)
    written = 10 * chunk_size  # memory keeps a step before this: the first bytes are only in the file
    await registry.driver.put_content(download.path, blob[:written])
    await download.advance(written)
    reader = _Reader(download, registry)
    for chunk in chunks[12:]:
        await download.receive(chunk)
    await reader.has(len(blob) - 1)
    assert bytes(reader.got) == blob[:-1]
    await registry.driver.put_content(download.path, blob)
    download.written = len(blob)
    await download.finish(download.path)
    await asyncio.wait_for(reader.task, HANG_GUARD_SECONDS)
    assert bytes(reader.got) == blob


async def test_readers_get_what_arrives_while_a_step_is_being_written() -> None:
    registry = Registry(InMemoryDriver())
    download = Download(paths.proxy_download("held"))
    chunk_size = STREAM_STEP // 4
    blob = bytes(index % 241 for index in range(STREAM_STEP * 4))
    upstream_counted: list[int] = []

    async def upstream() -> AsyncIterator[bytes]:
        for offset in range(0, len(blob), chunk_size):
            yield blob[offset:offset + chunk_size]

    release = asyncio.Event()
    writer = HeldWriter(await registry.driver.writer(download.path), release)
    hasher = hashlib.sha256()
    reader = _Reader(download, registry)
    streaming = asyncio.ensure_future(_stream_into(upstream(), writer, hasher, download, STREAM_STEP, False, upstream_counted.append))
    # The first step's write is held, yet the rest of the blob reaches the reader (before, one step more did).
    await reader.has(len(blob) - 1)
    assert bytes(reader.got) == blob[:-1]
    assert writer.writes == 1
    release.set()
    await asyncio.wait_for(streaming, HANG_GUARD_SECONDS)
    await writer.commit()
    assert sum(upstream_counted) == len(blob)
    assert hasher.hexdigest() == hashlib.sha256(blob).hexdigest()
    download.written = writer.size
    await download.finish(download.path)
    await asyncio.wait_for(reader.task, HANG_GUARD_SECONDS)
    assert bytes(reader.got) == blob


async def test_the_download_file_has_its_room_allocated_and_no_early_writeback(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The blob's size, known from its first byte, lets the filesystem allocate its room ahead (FileWriter.expect);
    its clients do not wait for its fsync, so no CPU goes to starting the write-back while they wait for bytes."""
    expected: list[int] = []
    writebacks: list[int] = []
    monkeypatch.setattr("dockyard.storage.filesystem.FilesystemWriter.expect", lambda self, length: expected.append(length))
    monkeypatch.setattr("dockyard.storage.filesystem.start_writeback", lambda fd, offset, length: writebacks.append(length))
    blob = bytes(index % 239 for index in range(3 * STREAM_STEP + 5))
    digest = Digest.of(blob)

    async def serve_blob(_: web.Request) -> web.Response:
        return web.Response(body=blob)

    app = web.Application()
    app.router.add_get(f"/v2/a/blobs/{digest}", serve_blob)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    registry = Registry(FilesystemDriver(tmp_path))
    cache = PullThroughCache(registry, UpstreamClient(f"http://127.0.0.1:{runner.addresses[0][1]}"), ttl=0, tag_check_interval=60)
    try:
        download = await cache.blob("a", digest)
        async with asyncio.timeout(HANG_GUARD_SECONDS):
            got = b"".join([bytes(chunk) async for chunk in download.chunks(registry)])
            await download.ended()
    finally:
        await cache.close()
        await runner.cleanup()
    assert got == blob
    assert expected == [len(blob)]
    assert writebacks == []
