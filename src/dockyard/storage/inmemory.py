"""A driver that keeps everything in process memory: for tests and throwaway registries."""

from __future__ import annotations

import builtins
import time
from collections.abc import AsyncIterator

from dockyard.storage.driver import FileInfo, FileWriter, PathNotFound, StorageDriver


class _File:
    __slots__ = ("data", "mtime")

    def __init__(self, data: bytes = b"") -> None:
        self.data = bytearray(data)
        self.mtime = time.time()


class InMemoryWriter(FileWriter):
    def __init__(self, driver: InMemoryDriver, path: str, file: _File) -> None:
        self._driver = driver
        self._path = path
        self._file = file

    @property
    def size(self) -> int:
        return len(self._file.data)

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        # Like a file appended to, what is written is visible at once.
        self._file.data += data
        self._file.mtime = time.time()

    async def commit(self) -> None:
        pass

    async def cancel(self) -> None:
        if self._driver._files.get(self._path) is self._file:
            del self._driver._files[self._path]

    async def close(self) -> None:
        pass


class InMemoryDriver(StorageDriver):
    name = "inmemory"

    def __init__(self) -> None:
        self._files: dict[str, _File] = {}

    def _children(self, path: str) -> set[str]:
        prefix = path.rstrip("/") + "/"
        return {key[len(prefix):].split("/", 1)[0] for key in self._files if key.startswith(prefix)}

    async def get_content(self, path: str) -> bytes:
        try:
            return bytes(self._files[path].data)
        except KeyError:
            raise PathNotFound(path) from None

    async def put_content(self, path: str, content: bytes) -> None:
        self._files[path] = _File(content)

    async def create(self, path: str, content: bytes) -> bool:
        if path in self._files:
            return False
        self._files[path] = _File(content)
        return True

    async def read(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        file = self._files.get(path)
        if file is None:
            raise PathNotFound(path)
        end = len(file.data) if length is None else min(offset + length, len(file.data))
        for start in range(offset, end, 1 << 20):
            yield bytes(file.data[start:min(start + (1 << 20), end)])

    async def writer(self, path: str, append: bool = False, commit_awaited: bool = True) -> FileWriter:
        file = self._files.get(path) if append else None
        if file is None:
            file = self._files[path] = _File()
        return InMemoryWriter(self, path, file)

    async def stat(self, path: str) -> FileInfo:
        file = self._files.get(path)
        if file is not None:
            return FileInfo(path, len(file.data), file.mtime, False)
        if self._children(path):
            return FileInfo(path, 0, time.time(), True)
        raise PathNotFound(path)

    async def list(self, path: str) -> builtins.list[str]:
        children = self._children(path)
        if not children:
            raise PathNotFound(path)
        return list(children)

    async def move(self, source: str, destination: str) -> None:
        try:
            self._files[destination] = self._files.pop(source)
        except KeyError:
            raise PathNotFound(source) from None

    async def delete(self, path: str) -> None:
        prefix = path.rstrip("/") + "/"
        doomed = [key for key in self._files if key == path or key.startswith(prefix)]
        if not doomed:
            raise PathNotFound(path)
        for key in doomed:
            del self._files[key]
