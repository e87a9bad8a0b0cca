"""How much of a push one connection holds in memory: what arrived and is not yet hashed and written."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence

from dockyard.storage.driver import FileWriter
from dockyard.storage.uploads import pump

CHUNK = 64 * 1024
HELD_AT_MOST = 2 << 20  # two steps: one being hashed and written while the next arrives


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


async def test_a_push_is_held_two_small_steps_at_a_time() -> None:
    writer, hasher = CountingWriter(), hashlib.sha256()
    sent, held = 0, []

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for number in range(256):  # 16 MiB
            held.append(sent - writer.written)
            chunk = number.to_bytes(2, "big") * (CHUNK // 2)
            sent += len(chunk)
            yield chunk

    await pump(body(), writer, hasher)
    assert writer.written == sent == 256 * CHUNK
    assert hasher.hexdigest() == hashlib.sha256(b"".join(n.to_bytes(2, "big") * (CHUNK // 2) for n in range(256))).hexdigest()
    assert max(held) <= HELD_AT_MOST, max(held) / (1 << 20)
