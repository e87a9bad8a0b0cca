"""A storage writer whose writes wait for the test: what goes on while a step of a stream is being written."""

from __future__ import annotations

import asyncio

from dockyard.storage.driver import FileWriter


class HeldWriter(FileWriter):
    """Writes through ``inner`` once ``release`` is set; ``failure``, when given, is raised by the writes instead."""

    def __init__(self, inner: FileWriter, release: asyncio.Event, failure: Exception | None = None) -> None:
        self.inner = inner
        self.release = release
        self.failure = failure
        self.writes = 0
        """Writes begun, held ones included."""

    @property
    def size(self) -> int:
        return self.inner.size

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes += 1
        await self.release.wait()
        if self.failure is not None:
            raise self.failure
        await self.inner.write(data)

    async def commit(self) -> None:
        await self.inner.commit()

    async def cancel(self) -> None:
        await self.inner.cancel()

    async def close(self) -> None:
        await self.inner.close()
