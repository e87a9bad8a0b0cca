"""The stepped pump that uploads and the pull-through cache's fetches stream through: receiving goes
on while a step is written and hashed, a few steps ahead and no more (so a pushing connection holds a few MiB at most); hashing
does not wait for writing, and whichever falls behind catches up with all waiting steps at once; what arrived
before a broken body is kept when asked; a failed write stops receiving too."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Sequence
from typing import cast

import pytest

from dockyard.storage.driver import FileWriter
from dockyard.storage.inmemory import InMemoryDriver
from dockyard.storage.uploads import FLUSH_BYTES, STEPS_AHEAD, pump
from tests.support.writers import HeldWriter

STEP = 4096
CHUNK = STEP // 4
PATH = "pumped"
# A pump waiting for something that will never come fails the test after this long instead of hanging it.
HANG_GUARD_SECONDS = 10
PUSH_CHUNK = 64 * 1024
# The step being hashed and written, the steps received ahead of it, and the one arriving.
HELD_AT_MOST = (STEPS_AHEAD + 2) * FLUSH_BYTES


class _Body:
    """A request body of ``blob`` in chunks of ``CHUNK`` bytes, counting what was taken; ``failure`` after ``fail_after`` bytes."""

    def __init__(self, blob: bytes, failure: Exception | None = None, fail_after: int | None = None) -> None:
        self.blob = blob
        self.taken = 0
        self.failure = failure
        self.fail_after = len(blob) if fail_after is None else fail_after
        self._progress = asyncio.Event()

    async def chunks(self) -> AsyncIterator[bytes]:
        while self.taken < self.fail_after:
            chunk = self.blob[self.taken:min(self.taken + CHUNK, self.fail_after)]
            self.taken += len(chunk)
            self._progress.set()
            yield chunk
        if self.failure is not None:
            raise self.failure

    async def taken_at_least(self, count: int) -> None:
        async with asyncio.timeout(HANG_GUARD_SECONDS):
            while self.taken < count:
                self._progress.clear()
                await self._progress.wait()


async def _settle() -> None:
    """Lets every task run until each waits for something outside the loop's reach."""
    for _ in range(200):
        await asyncio.sleep(0)


async def test_receiving_goes_on_while_a_step_is_written_up_to_steps_ahead() -> None:
    driver = InMemoryDriver()
    blob = bytes(index % 253 for index in range(STEP * (STEPS_AHEAD + 6)))
    body, release = _Body(blob), asyncio.Event()
    writer = HeldWriter(await driver.writer(PATH), release)
    hasher = hashlib.sha256()
    pumping = asyncio.ensure_future(pump(body.chunks(), writer, hasher, STEP))
    # The first step's write is held: the next steps are received meanwhile (before, only one more was).
    await body.taken_at_least(STEP * (STEPS_AHEAD + 1))
    await _settle()
    assert body.taken <= STEP * (STEPS_AHEAD + 1), "receiving ran further ahead of writing than its bound"
    assert writer.writes == 1
    release.set()
    await asyncio.wait_for(pumping, HANG_GUARD_SECONDS)
    await writer.commit()
    await writer.close()
    assert await driver.get_content(PATH) == blob
    assert hasher.hexdigest() == hashlib.sha256(blob).hexdigest()


class _SizedWriter(HeldWriter):
    """A held writer that keeps the size of each write."""

    def __init__(self, inner: FileWriter, release: asyncio.Event) -> None:
        super().__init__(inner, release)
        self.sizes: list[int] = []

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sizes.append(len(data))
        await super().write(data)


class _CountingHasher:
    """A sha256 that tells the event loop once it was given ``enough`` bytes (it is updated in worker threads)."""

    def __init__(self, enough: int) -> None:
        self.inner = hashlib.sha256()
        self.hashed = 0
        self.enough = enough
        self.reached = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def update(self, data: bytes) -> None:
        self.inner.update(data)
        self.hashed += len(data)
        if self.hashed >= self.enough:
            self._loop.call_soon_threadsafe(self.reached.set)


async def test_hashing_goes_on_while_writing_is_held() -> None:
    driver = InMemoryDriver()
    blob = bytes(index % 247 for index in range(STEP * (STEPS_AHEAD + 3)))
    body, release = _Body(blob), asyncio.Event()
    writer, hasher = HeldWriter(await driver.writer(PATH), release), _CountingHasher(STEP * STEPS_AHEAD)
    pumping = asyncio.ensure_future(pump(body.chunks(), writer, cast("hashlib._Hash", hasher), STEP))
    # Every step received is hashed though the first is not written yet (before, the second waited for that write).
    await asyncio.wait_for(hasher.reached.wait(), HANG_GUARD_SECONDS)
    assert writer.writes == 1
    release.set()
    await asyncio.wait_for(pumping, HANG_GUARD_SECONDS)
    assert hasher.inner.hexdigest() == hashlib.sha256(blob).hexdigest()


async def test_writing_catches_up_with_all_waiting_steps_in_one_write() -> None:
    driver = InMemoryDriver()
    blob = bytes(index % 241 for index in range(STEP * (STEPS_AHEAD + 6)))
    body, release = _Body(blob), asyncio.Event()
    writer = _SizedWriter(await driver.writer(PATH), release)
    pumping = asyncio.ensure_future(pump(body.chunks(), writer, hashlib.sha256(), STEP))
    await body.taken_at_least(STEP * (STEPS_AHEAD + 1))
    await _settle()
    release.set()
    await asyncio.wait_for(pumping, HANG_GUARD_SECONDS)
    # Steps that waited for writing went out together (before, one write each), never more than the bound holds.
    assert STEP < max(writer.sizes) <= STEP * STEPS_AHEAD
    assert len(writer.sizes) < len(blob) // STEP
    await writer.commit()
    await writer.close()
    assert await driver.get_content(PATH) == blob


@pytest.mark.parametrize("keep_partial", [True, False])
async def test_what_arrived_before_a_broken_body_is_written_when_kept(keep_partial: bool) -> None:
    driver = InMemoryDriver()
    blob = bytes(index % 251 for index in range(STEP * 3))
    arrived = STEP * 2 + CHUNK
    body = _Body(blob, ConnectionResetError("client went away"), fail_after=arrived)
    writer = await driver.writer(PATH)
    hasher = hashlib.sha256()
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(pump(body.chunks(), writer, hasher, STEP, keep_partial=keep_partial), HANG_GUARD_SECONDS)
    await writer.commit()
    await writer.close()
    kept = blob[:arrived] if keep_partial else blob[:STEP * 2]
    assert await driver.get_content(PATH) == kept
    assert hasher.hexdigest() == hashlib.sha256(kept).hexdigest()


async def test_a_failed_write_stops_receiving_and_is_raised() -> None:
    driver = InMemoryDriver()
    blob = bytes(STEP * (STEPS_AHEAD + 6))
    body, release = _Body(blob), asyncio.Event()
    writer = HeldWriter(await driver.writer(PATH), release, OSError("disk full"))
    pumping = asyncio.ensure_future(pump(body.chunks(), writer, hashlib.sha256(), STEP))
    await body.taken_at_least(STEP * 2)
    release.set()
    with pytest.raises(OSError, match="disk full"):
        await asyncio.wait_for(pumping, HANG_GUARD_SECONDS)
    taken = body.taken
    await _settle()
    assert body.taken == taken < len(blob)


class CountingWriter(FileWriter):
    """Keeps only the number of bytes written."""

    def __init__(self) -> None:
        self.written = 0

    @property
    def size(self) -> int:
        return self.written

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)

    async def write_chunks(self, chunks: Sequence[bytes]) -> None:
        self.written += sum(len(chunk) for chunk in chunks)

    async def commit(self) -> None:
        pass

    async def cancel(self) -> None:
        pass

    async def close(self) -> None:
        pass


async def test_a_push_is_held_a_few_small_steps_at_a_time() -> None:
    writer, hasher = CountingWriter(), hashlib.sha256()
    sent, held = 0, []

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for number in range(256):  # 16 MiB
            held.append(sent - writer.written)
            chunk = number.to_bytes(2, "big") * (PUSH_CHUNK // 2)
            sent += len(chunk)
            yield chunk

    await pump(body(), writer, hasher)
    assert writer.written == sent == 256 * PUSH_CHUNK
    assert hasher.hexdigest() == hashlib.sha256(b"".join(n.to_bytes(2, "big") * (PUSH_CHUNK // 2) for n in range(256))).hexdigest()
    assert max(held) <= HELD_AT_MOST, max(held) / (1 << 20)


async def test_a_held_write_stops_receiving_after_three_mebibytes() -> None:
    # Each step received ahead is memory the pushing connection holds (about 1.2 MiB of heap a step,
    # measured); two ahead kept push rates as four did.
    taken = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal taken
        chunk = bytes(PUSH_CHUNK)
        while True:
            taken += len(chunk)
            yield chunk

    release = asyncio.Event()
    writer = HeldWriter(await InMemoryDriver().writer(PATH), release)
    pumping = asyncio.ensure_future(pump(body(), writer, hashlib.sha256()))
    try:
        await _settle()
        assert writer.writes == 1
        assert taken <= 3 * FLUSH_BYTES + PUSH_CHUNK
    finally:
        pumping.cancel()
        release.set()
        with contextlib.suppress(asyncio.CancelledError):
            await pumping
