"""The local filesystem driver: the registry:2 layout under a root directory."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import errno
import fcntl
import logging
import os
import pathlib
import shutil
import threading
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

from dockyard.atomic import write_file
from dockyard.storage.driver import FileInfo, FileWriter, PathNotFound, StorageDriver
from dockyard.storage.linux_files import allocate, start_writeback

READ_CHUNK = 1 << 20
SMALL_READ_CHUNK = 1 << 16  # below malloc's mmap threshold: each read allocates this much
# Waiting for a lock another process holds: polled, so no worker thread sits blocked.
LOCK_POLL_SECONDS = (0.001, 0.05)

# Directories (a repository's tags, a namespace of many repositories) keep their sorted
# listing in the process, checked against the directory's (inode, mtime, ctime) on every
# use: any entry created or removed by any process changes the mtime. A kept listing costs
# a stat on the event loop; any other, a thread hop, which costs more than a small listdir.
CACHED_LISTINGS = 64
# ...but only once the directory has been still for this long: file times come from
# a coarse clock (a jiffy, a second on some filesystems), so a change within the same
# tick as the listing could leave the signature as it was.
SETTLED_NS = 2_000_000_000
# A tree being written into as it is deleted is deleted again, this many times at most.
TREE_DELETE_ATTEMPTS = 5
# Small files read again and again (tag and revision links, manifests) are kept in the process
# the same way: checked on every read against the file's stat, one system call in place of an
# open, reads and a close, so a change by any worker or replica on the root is seen at once.
CACHED_FILE_MAX = 64 << 10
CACHED_FILES_BYTES = 4 << 20
CACHED_FILE_OVERHEAD = 300  # bytes an entry costs besides its content and path: links are 71 bytes


def use_io_threads(count: int) -> None:
    """Run the running loop's blocking calls (``asyncio.to_thread``: every file operation here) on ``count``
    threads, registry:2's ``storage.filesystem.maxthreads``, in place of Python's default of a few per core."""
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=count, thread_name_prefix="dockyard-io"))
    logging.getLogger("dockyard.storage").info("filesystem I/O on up to %d threads (storage.filesystem.maxthreads)", count)


def _signature(result: os.stat_result) -> tuple[int, int, int]:
    return result.st_ino, result.st_mtime_ns, result.st_ctime_ns


def _settled(result: os.stat_result) -> bool:
    """Whether a file or directory last changed long enough ago for its signature to tell every later change."""
    return time.time_ns() - max(result.st_mtime_ns, result.st_ctime_ns) > SETTLED_NS


class _SmallFiles:
    """The contents of settled small files, least recently read first, within a budget of bytes.

    A file's signature (inode, size, times) changes with any change to it: every write here
    replaces the file by a rename (a new inode, a new ctime), and a write in place (by hand) moves
    its times past those of a settled file.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.size = 0
        self._files: dict[str, tuple[tuple[int, int, int, int], bytes]] = {}

    def get(self, full: str) -> bytes | None:
        entry = self._files.get(full)
        if entry is None:
            return None
        try:
            result = os.stat(full)
        except OSError:
            self._forget(full)
            return None
        if (result.st_ino, result.st_size, result.st_mtime_ns, result.st_ctime_ns) != entry[0]:
            self._forget(full)
            return None
        return entry[1]

    def read(self, full: str) -> bytes:
        """The file's content, from the cache when it is still that; kept when small and settled."""
        cached = self.get(full)
        if cached is not None:
            return cached
        descriptor = os.open(full, os.O_RDONLY | os.O_CLOEXEC)
        try:
            before = os.fstat(descriptor)
            content = _read_all(descriptor)
            # Stat'ed before reading, through the descriptor read: the content is that file's, and
            # a write in place while it was read would leave times too recent to be settled.
            if len(content) == before.st_size <= CACHED_FILE_MAX and _settled(before):
                self._keep(full, (before.st_ino, before.st_size, before.st_mtime_ns, before.st_ctime_ns), content)
        finally:
            os.close(descriptor)
        return content

    def _keep(self, full: str, signature: tuple[int, int, int, int], content: bytes) -> None:
        self._forget(full)
        self._files[full] = (signature, content)
        self.size += _cost(full, content)
        while self.size > self.budget:
            self._forget(next(iter(self._files)))

    def _forget(self, full: str) -> None:
        entry = self._files.pop(full, None)
        if entry is not None:
            self.size -= _cost(full, entry[1])


def _cost(full: str, content: bytes) -> int:
    return len(full) + len(content) + CACHED_FILE_OVERHEAD


def _ignore_vanished(function: object, path: str, error: tuple[type[BaseException], BaseException, object]) -> None:
    # An entry another process deleted (or garbage collection moved) while the tree was walked.
    if not isinstance(error[1], FileNotFoundError):
        raise error[1]


def _replace(source: str, destination: str) -> None:
    try:
        os.replace(source, destination)
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
        shutil.move(source, destination)


def _delete_tree(target: str) -> bool:
    try:
        # Unlinked first, not looked at: most deletes (garbage collection's) are of one file.
        os.unlink(target)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except (IsADirectoryError, PermissionError):  # Linux's answer for a directory, and macOS's
        if not os.path.isdir(target) or os.path.islink(target):
            raise
        for attempt in range(TREE_DELETE_ATTEMPTS):
            try:
                shutil.rmtree(target, onerror=_ignore_vanished)
            except (FileNotFoundError, NotADirectoryError):
                return attempt > 0
            except OSError as error:
                # A write into the tree meanwhile (a push into a repository being deleted): go again.
                if error.errno != errno.ENOTEMPTY or attempt == TREE_DELETE_ATTEMPTS - 1:
                    raise
                continue
            break
    return True


def _read_all(descriptor: int) -> bytes:
    # os.read rather than open(): a buffered file object costs more system calls (fstat,
    # ioctl, lseek) than reading a link does, and garbage collection reads every link.
    chunks = []
    while chunk := os.read(descriptor, SMALL_READ_CHUNK):
        chunks.append(chunk)
    return b"".join(chunks)


# Room allocated ahead of the writes (see FileWriter.expect) reaches at most this far beyond them: a
# client announcing a huge body and sending little holds little of the disk.
ALLOCATE_AHEAD = 64 << 20


class FilesystemWriter(FileWriter):
    def __init__(self, path: pathlib.Path, file: BinaryIO, size: int, early_writeback: bool = True) -> None:
        self._path = path
        self._file = file
        self._size = size
        # Off where nobody waits for the commit: its fsync then writes back what the early one
        # would have, and the CPU that early write-back costs goes to those who wait.
        self._early_writeback = early_writeback
        self._expected_end = size  # where FileWriter.expect says the writes end
        self._allocated_end = size

    def expect(self, length: int | None) -> None:
        if length:
            self._expected_end = self._size + length

    def _allocate_for(self, offset: int, end: int) -> None:
        """Before writing from ``offset`` to ``end``: the expected room from there, allocated in steps of up to ALLOCATE_AHEAD."""
        if self._allocated_end >= min(self._expected_end, end + ALLOCATE_AHEAD // 2):
            return
        start = max(self._allocated_end, offset)
        self._allocated_end = min(self._expected_end, end + ALLOCATE_AHEAD)
        allocate(self._file.fileno(), start, self._allocated_end - start)

    @property
    def size(self) -> int:
        return self._size

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        await self.write_chunks((data,))

    async def write_chunks(self, chunks: Sequence[bytes | bytearray | memoryview]) -> None:
        offset, length = self._size, sum(len(chunk) for chunk in chunks)

        def write_and_start_writeback() -> None:
            self._allocate_for(offset, offset + length)
            for chunk in chunks:
                self._file.write(chunk)
            self._file.flush()
            if self._early_writeback:
                start_writeback(self._file.fileno(), offset, length)

        await asyncio.to_thread(write_and_start_writeback)
        self._size += length

    async def commit(self) -> None:
        def flush_and_sync() -> None:
            self._file.flush()
            os.fsync(self._file.fileno())

        await asyncio.to_thread(flush_and_sync)

    async def cancel(self) -> None:
        await self.close()
        await asyncio.to_thread(self._path.unlink, True)

    async def close(self) -> None:
        if not self._file.closed:
            await asyncio.to_thread(self._file.close)


class FilesystemDriver(StorageDriver):
    name = "filesystem"
    locks_across_machines = True

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = pathlib.Path(root).absolute()
        self._root = str(self.root)
        self._listings: dict[str, tuple[tuple[int, int, int], list[str]]] = {}
        self._listings_lock = threading.Lock()
        self._walker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dockyard-walk")
        self._small_files = _SmallFiles(CACHED_FILES_BYTES)

    def _full(self, path: str) -> str:
        # Paths come from the layout module, built from validated names only; this
        # is a last line of defence against a layout bug, not input validation.
        if not path.startswith("/") or "/../" in f"{path}/" or "\0" in path:
            raise ValueError(f"invalid storage path {path!r}")
        # A plain string: pathlib's joins cost more than the small reads they serve.
        return self._root + path

    # Small files (links of 71 bytes, manifests of a few KiB) are read on the event
    # loop: they come from the page cache in microseconds, less than a thread hop.
    async def get_content(self, path: str) -> bytes:
        try:
            return self._small_files.read(self._full(path))
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise PathNotFound(path) from None

    async def put_content(self, path: str, content: bytes) -> None:
        await asyncio.to_thread(write_file, pathlib.Path(self._full(path)), content)

    async def create(self, path: str, content: bytes) -> bool:
        return await asyncio.to_thread(write_file, pathlib.Path(self._full(path)), content, replace=False)

    async def read(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        try:
            file = await asyncio.to_thread(open, self._full(path), "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise PathNotFound(path) from None
        remaining = length

        def read_ahead() -> asyncio.Future[bytes] | None:
            # The next chunk is read in a thread while the caller sends this one (over
            # TLS the event loop encrypts it): disk and network overlap.
            if remaining is not None and remaining <= 0:
                return None
            size = READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
            return asyncio.ensure_future(asyncio.to_thread(file.read, size))

        pending: asyncio.Future[bytes] | None = None
        try:
            await asyncio.to_thread(file.seek, offset)
            pending = read_ahead()
            while pending is not None:
                chunk = await pending
                pending = None
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                pending = read_ahead()
                yield chunk
        finally:
            if pending is not None:
                await asyncio.wait([pending])  # its thread still reads the file: close it after
                if not pending.cancelled():
                    pending.exception()  # nobody wants this chunk now; don't report its error as unretrieved
            file.close()

    async def writer(self, path: str, append: bool = False, commit_awaited: bool = True) -> FileWriter:
        full = pathlib.Path(self._full(path))

        def open_for_writing() -> tuple[BinaryIO, int]:
            full.parent.mkdir(parents=True, exist_ok=True)
            file = open(full, "ab" if append else "wb")
            return file, file.seek(0, os.SEEK_END)

        file, size = await asyncio.to_thread(open_for_writing)
        return FilesystemWriter(full, file, size, early_writeback=commit_awaited)

    async def stat(self, path: str) -> FileInfo:
        try:
            result = os.stat(self._full(path))
        except (FileNotFoundError, NotADirectoryError):
            raise PathNotFound(path) from None
        is_dir = (result.st_mode & 0o170000) == 0o040000
        return FileInfo(path, 0 if is_dir else result.st_size, result.st_mtime, is_dir)

    async def list(self, path: str) -> builtins.list[str]:
        def names() -> list[str]:
            try:
                return os.listdir(self._full(path))
            except (FileNotFoundError, NotADirectoryError):
                raise PathNotFound(path) from None

        return await asyncio.to_thread(names)

    def _cached_listing(self, full: str) -> builtins.list[str] | None:
        entry = self._listings.get(full)
        if entry is None:
            return None
        try:
            current = _signature(os.stat(full))
        except OSError:
            return None
        return list(entry[1]) if current == entry[0] else None

    def _sorted_listing(self, full: str) -> builtins.list[str] | None:
        """``full``'s sorted children, ``None`` if it is not a directory (in a worker thread)."""
        cached = self._cached_listing(full)
        if cached is not None:
            return cached
        try:
            names = sorted(os.listdir(full))
        except (FileNotFoundError, NotADirectoryError):
            return None
        # The signature is taken after the listing: a change made since the listing
        # began would have a time within SETTLED_NS of now, so it is not kept.
        try:
            after = os.stat(full)
        except OSError:
            return names
        if _settled(after):
            with self._listings_lock:
                self._listings.pop(full, None)
                self._listings[full] = (_signature(after), names)
                while len(self._listings) > CACHED_LISTINGS:
                    del self._listings[next(iter(self._listings))]
            return list(names)
        return names

    async def list_sorted(self, paths: Sequence[str]) -> dict[str, builtins.list[str]]:
        fulls = [self._full(path) for path in paths]
        if len(fulls) == 1:
            # A cached listing costs one stat: on the loop, like stat(), not a thread hop.
            cached = self._cached_listing(fulls[0])
            if cached is not None:
                return {paths[0]: cached}

        def listings() -> dict[str, list[str]]:
            found: dict[str, list[str]] = {}
            for path, full in zip(paths, fulls, strict=True):
                names = self._sorted_listing(full)
                if names is not None:
                    found[path] = names
            return found

        # A whole batch of directories in one thread hop: a hop costs more than a small listdir.
        return await asyncio.to_thread(listings)

    async def list_files(self, path: str) -> builtins.list[FileInfo]:
        root = self._full(path)

        def walk() -> list[FileInfo]:
            found: list[FileInfo] = []
            folders = [(root, path)]
            while folders:
                full, below = folders.pop()
                try:
                    with os.scandir(full) as listing:
                        entries = list(listing)
                except (FileNotFoundError, NotADirectoryError):  # removed while walked
                    continue
                if not entries and full != root:
                    with contextlib.suppress(FileNotFoundError):
                        found.append(FileInfo(below, 0, os.stat(full).st_mtime, True))
                for entry in entries:
                    if entry.is_dir():
                        folders.append((entry.path, f"{below}/{entry.name}"))
                        continue
                    with contextlib.suppress(FileNotFoundError):
                        result = entry.stat()
                        found.append(FileInfo(f"{below}/{entry.name}", result.st_size, result.st_mtime, False))
            return sorted(found, key=lambda info: info.path)

        # One walk at a time, on a thread of its own: walks side by side (gc lists every repository's
        # trees, many at once) would pass the GIL back and forth at each system call, and hold the
        # threads the other file operations wait for.
        return await asyncio.get_running_loop().run_in_executor(self._walker, walk)

    async def move(self, source: str, destination: str) -> None:
        src, dst = self._full(source), self._full(destination)

        def rename() -> None:
            try:
                _replace(src, dst)
            except FileNotFoundError:
                # The destination's directory is made on the first move into it, not on every move.
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                try:
                    _replace(src, dst)
                except (FileNotFoundError, NotADirectoryError):
                    raise PathNotFound(source) from None
            except NotADirectoryError:
                raise PathNotFound(source) from None

        await asyncio.to_thread(rename)

    async def delete(self, path: str) -> None:
        if not await asyncio.to_thread(_delete_tree, self._full(path)):
            raise PathNotFound(path)

    async def remove_empty_folder(self, path: str) -> bool:
        try:
            await asyncio.to_thread(os.rmdir, self._full(path))
        except OSError:  # not empty (written into meanwhile), or gone
            return False
        return True

    @contextlib.asynccontextmanager
    async def lock(self, path: str) -> AsyncIterator[None]:
        """``flock`` on the file: held against every other open of it, in this process or
        another one on the same root (NFSv4 and other network filesystems pass it on)."""
        try:
            # Open for writing (nothing is written): NFS emulates flock with a write lock, which needs it.
            descriptor = os.open(self._full(path), os.O_RDWR)
        except (FileNotFoundError, NotADirectoryError):
            raise PathNotFound(path) from None
        try:
            delay = LOCK_POLL_SECONDS[0]
            while True:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, LOCK_POLL_SECONDS[1])
            yield
        finally:
            os.close(descriptor)  # releases the lock

    def local_file(self, path: str) -> pathlib.Path | None:
        return pathlib.Path(self._full(path))

    async def close(self) -> None:
        self._walker.shutdown(wait=False)
