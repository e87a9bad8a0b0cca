"""The narrow interface every storage backend implements.

Paths are driver-relative, ``/``-separated and absolute (``/docker/registry/v2/...``);
they are built only by :mod:`dockyard.storage.paths` from validated names. The
interface avoids anything object storage cannot do cheaply: there is no directory
rename, appends go through a resumable :class:`FileWriter`, and ``move`` is only ever
applied to single files.
"""

from __future__ import annotations

import abc
import asyncio
import bisect
import builtins
import contextlib
import pathlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from dockyard.concurrency import gather_bounded


class PathNotFound(Exception):
    """The path does not exist in the driver."""

    def __init__(self, path: str) -> None:
        super().__init__(f"path not found: {path}")
        self.path = path


@dataclass(frozen=True)
class FileInfo:
    path: str
    size: int
    mtime: float
    is_dir: bool


@dataclass(frozen=True)
class Move:
    """One file of :meth:`StorageDriver.move_files`."""

    source: str
    destination: str
    unless_modified_since: float | None = None
    """the move is skipped when the source was written at or after this time (stored again meanwhile)"""


class FileWriter(abc.ABC):
    """An append-only writer; nothing is visible at its path in a torn state.

    ``commit`` makes what was written durable; ``cancel`` drops it. A writer opened
    with ``append=True`` continues after what an earlier writer committed, possibly
    in another process.
    """

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """Bytes in the file, counting what this writer has written."""

    @abc.abstractmethod
    async def write(self, data: bytes | bytearray | memoryview) -> None: ...

    async def write_chunks(self, chunks: Sequence[bytes]) -> None:
        """Write ``chunks`` in order: one ``write`` of their concatenation unless a driver does better."""
        await self.write(b"".join(chunks))

    def expect(self, length: int | None) -> None:
        """About ``length`` more bytes are coming (a request's ``Content-Length``; ``None`` or 0: not
        known): a driver may make room for them ahead of the writes, which costs it less than growing
        the file at each one. A hint only: fewer or more may come. Ignored unless a driver makes use of it."""
        del length

    @abc.abstractmethod
    async def commit(self) -> None: ...

    @abc.abstractmethod
    async def cancel(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None:
        """Release resources; what was written stays resumable by a later writer."""


class _HeldLock:
    """A process-local lock and how many tasks hold or wait for it."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class StorageDriver(abc.ABC):
    name: str
    locks_across_machines = False
    """:meth:`lock` holds against every process on every machine sharing the storage."""
    lists_trees_at_once = False
    """:meth:`list_files` reads a tree in one listing whatever its depth (object storage's flat
    listing); elsewhere each folder in it costs a listing of its own, more than a :meth:`stat`."""

    @abc.abstractmethod
    async def get_content(self, path: str) -> bytes:
        """The whole content of a small file (links, manifests)."""

    @abc.abstractmethod
    async def put_content(self, path: str, content: bytes) -> None:
        """Atomically replace the file at ``path``."""

    @abc.abstractmethod
    async def create(self, path: str, content: bytes) -> bool:
        """Write the file at ``path`` only where there is none, atomically against every other
        writer (on every machine sharing the storage); whether this call wrote it."""

    @abc.abstractmethod
    def read(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """Stream ``length`` bytes (all when ``None``) from ``offset``."""

    @abc.abstractmethod
    async def writer(self, path: str, append: bool = False, commit_awaited: bool = True) -> FileWriter:
        """A writer of ``path``. ``commit_awaited=False``: nobody waits for its commit (a cache's
        download, whose clients have their bytes before it), so a driver may leave work that only
        makes the commit quicker (the filesystem's early write-back) for the commit itself."""

    @abc.abstractmethod
    async def stat(self, path: str) -> FileInfo: ...

    @abc.abstractmethod
    async def list(self, path: str) -> builtins.list[str]:
        """Names of the direct children of a directory (unsorted)."""

    async def list_sorted(self, paths: Sequence[str]) -> dict[str, builtins.list[str]]:
        """The sorted children of many directories at once (catalog walks, tag lists).

        Keyed by path; a path that is not a directory is left out. One call can serve
        a whole level of a walk, so a driver may list the directories together (one
        thread hop, concurrent requests) instead of one :meth:`list` each.
        """
        found: dict[str, builtins.list[str]] = {}
        for path in paths:
            try:
                found[path] = sorted(await self.list(path))
            except PathNotFound:
                pass
        return found

    async def list_page(self, path: str, after: str = "", limit: int | None = None) -> builtins.list[str]:
        """The first ``limit`` (all when ``None``) sorted children of a directory that sort
        after ``after``; none when it is missing (a page of a tag list or of a catalog level)."""
        return (await self.list_pages([(path, after, limit)]))[0]

    async def list_pages(self, requests: Sequence[tuple[str, str, int | None]]) -> builtins.list[builtins.list[str]]:
        """:meth:`list_page` of each ``(path, after, limit)``, in order (a level of a catalog walk).

        This default lists the directories whole, in one :meth:`list_sorted` call; a driver
        whose listing costs by the entry (object storage) lists only from ``after`` on.
        """
        listings = await self.list_sorted([path for path, _, _ in requests])
        pages = []
        for path, after, limit in requests:
            children = listings.get(path, [])
            start = bisect.bisect_right(children, after)
            pages.append(children[start:] if limit is None else children[start:start + limit])
        return pages

    async def list_files(self, path: str) -> builtins.list[FileInfo]:
        """Every file below the folder ``path``, at any depth, and every folder there that holds
        nothing (``is_dir``), sorted by path; none when it is missing (an inventory of the blob store).

        This default lists folder by folder and stats each entry; a driver that can list a whole
        tree at once with sizes and times (object storage: one flat listing) does so instead.
        """
        found: builtins.list[FileInfo] = []
        folders = [path]
        while folders:
            listed = await self.list_sorted(folders)
            children = [f"{folder}/{name}" for folder in folders for name in listed.get(folder, [])]
            infos = await asyncio.gather(*(self._stat_or_none(child) for child in children))
            empty = [folder for folder in folders if folder != path and listed.get(folder) == []]
            found += [info for info in await asyncio.gather(*(self._stat_or_none(folder) for folder in empty)) if info is not None]
            found += [info for info in infos if info is not None and not info.is_dir]
            folders = [info.path for info in infos if info is not None and info.is_dir]
        return sorted(found, key=lambda info: info.path)

    async def _stat_or_none(self, path: str) -> FileInfo | None:
        try:
            return await self.stat(path)
        except PathNotFound:  # removed while listed
            return None

    @abc.abstractmethod
    async def move(self, source: str, destination: str) -> None:
        """Move one file, replacing the destination atomically."""

    async def move_files(self, moves: Sequence[Move]) -> builtins.list[Move]:
        """Move many files, each as :meth:`move` does; those moved.

        A source that is gone, or was written since its move's ``unless_modified_since``, is
        skipped. This default moves a few at a time; a driver that can delete many files in
        one request (S3) copies each and then deletes every source together.
        """

        async def one(move: Move) -> bool:
            try:
                if move.unless_modified_since is not None and (await self.stat(move.source)).mtime >= move.unless_modified_since:
                    return False
                await self.move(move.source, move.destination)
            except PathNotFound:
                return False
            return True

        done = await gather_bounded(moves, one)
        return [move for move, moved in zip(moves, done, strict=True) if moved]

    @abc.abstractmethod
    async def delete(self, path: str) -> None:
        """Delete a file or a whole tree."""

    async def delete_files(self, paths: Sequence[str]) -> builtins.list[str]:
        """Delete many files, each written whole (not appendable, not a tree); those deleted.

        A file already gone is skipped. This default deletes one at a time; a driver that can
        delete many in one request (S3's DeleteObjects) does, and, as such a request does not
        say which were there, returns them all.
        """
        deleted: builtins.list[str] = []
        for path in paths:
            try:
                await self.delete(path)
            except PathNotFound:
                continue
            deleted.append(path)
        return deleted

    @contextlib.asynccontextmanager
    async def lock(self, path: str) -> AsyncIterator[None]:
        """Hold the existing file ``path`` exclusively (``PathNotFound`` if it is missing).

        A driver that can lock across processes and machines does so; this default
        holds it within this process only.
        """
        await self.stat(path)
        locks: dict[str, _HeldLock] = self.__dict__.setdefault("_process_locks", {})
        held = locks.setdefault(path, _HeldLock())
        held.users += 1
        try:
            async with held.lock:
                yield
        finally:
            held.users -= 1
            if not held.users:
                del locks[path]

    async def remove_empty_folder(self, path: str) -> bool:
        """Remove the folder ``path`` if it is empty (a write into it meanwhile keeps it); whether it went.
        Only a filesystem has folders that outlive their files: elsewhere there is nothing to remove."""
        return False

    async def redirect_url(self, path: str, method: str) -> str | None:
        """A URL the client may fetch the content from directly, or ``None``."""
        return None

    def local_file(self, path: str) -> pathlib.Path | None:
        """The file's path on the local filesystem, where one exists (for ``sendfile``)."""
        return None

    async def close(self) -> None:  # noqa: B027 (an optional hook: most drivers hold nothing to release)
        """Release connections and other resources."""
