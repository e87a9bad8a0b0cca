"""Blob uploads: started, appended to in chunks, verified and moved into the blob store.

State lives in storage only (``_uploads/<id>/``), so an upload survives a restart and
continues in another worker process or replica. The running sha256 of an upload is
kept in memory as a shortcut; when it is missing (restart, another worker) or stale,
the data is hashed again from storage, which is always correct. Appending and
finishing hold the storage driver's lock on the upload's ``startedat`` file (an
``flock`` on a filesystem, a conditionally written lock object on S3; with a driver
whose lock holds within one process only, a Redis lock is taken too), so two
requests for one upload (a client's retry reaching another replica) take turns and the
second sees the first's bytes in its ``Content-Range`` check.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

from dockyard.errors import DigestMismatch, QuotaExceeded, UploadOffsetInvalid, UploadUnknown
from dockyard.reference import Digest
from dockyard.storage import paths
from dockyard.storage.blobs import BlobStore
from dockyard.storage.driver import FileWriter, PathNotFound, StorageDriver
from dockyard.storage.repository import Repository

# Received bytes are gathered into steps this large before they are hashed and
# written, each in a worker thread (both release the GIL): a thousand thread hops per GiB.
# 4 MiB steps pushed no faster here and held more per pushing connection.
FLUSH_BYTES = 1 << 20
# Received steps that may wait for the writing of the one before them: each is about 1.2 MiB more
# heap for a pushing connection, and two pushed as fast as four did.
STEPS_AHEAD = 2
HASHER_CACHE_SIZE = 4096


class UploadStore:
    def __init__(self, driver: StorageDriver, blobs: BlobStore) -> None:
        self.driver = driver
        self.blobs = blobs
        self._hashers: OrderedDict[str, tuple[int, hashlib._Hash]] = OrderedDict()

    async def start(self, name: str) -> str:
        upload_id = str(uuid.uuid4())
        started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        await self.driver.put_content(paths.upload_started_at(name, upload_id), started_at.encode())
        return upload_id

    async def size(self, name: str, upload_id: str) -> int:
        """Bytes received so far; :class:`UploadUnknown` when there is no such upload."""
        try:
            await self.driver.stat(paths.upload_started_at(name, upload_id))
        except PathNotFound:
            raise UploadUnknown(detail={"upload": upload_id}) from None
        try:
            return (await self.driver.stat(paths.upload_data(name, upload_id))).size
        except PathNotFound:
            return 0

    @contextlib.asynccontextmanager
    async def _exclusive(self, name: str, upload_id: str) -> AsyncIterator[None]:
        # Redis's lock (if there is one) where the driver's holds within one process only (S3).
        shared = contextlib.nullcontext() if self.driver.locks_across_machines else self.blobs.cache.lock(f"upload:{upload_id}")
        try:
            async with shared, self.driver.lock(paths.upload_started_at(name, upload_id)):
                yield
        except PathNotFound:  # gone before or while the lock was awaited: finished or cancelled
            raise UploadUnknown(detail={"upload": upload_id}) from None

    async def append(
        self,
        name: str,
        upload_id: str,
        body: AsyncIterator[bytes],
        start: int | None = None,
        length: int | None = None,
    ) -> int:
        """Append a chunk; ``start`` (from ``Content-Range``) must be the current size; ``length`` is its announced size, if any."""
        async with self._exclusive(name, upload_id):
            size = await self._size_at(name, upload_id, start)
            hasher = await self._hasher(name, upload_id, size)
            writer = await self.driver.writer(paths.upload_data(name, upload_id), append=True)
            writer.expect(length)
            try:
                await pump(body, writer, hasher)
            except BaseException:
                # What was received is kept, so that a client whose connection broke
                # can ask for the offset and resume; the hash is redone from storage.
                self._hashers.pop(upload_id, None)
                raise
            finally:
                await writer.close()
            self._remember(upload_id, writer.size, hasher)
            return writer.size

    async def finish(
        self,
        repository: Repository,
        upload_id: str,
        digest: Digest,
        body: AsyncIterator[bytes] | None,
        start: int | None = None,
        length: int | None = None,
    ) -> int:
        """Take a last chunk (``start`` and ``length`` as in :meth:`append`), verify the digest, and move the blob into
        place and link it in ``repository``, once the quotas admit it (else the upload is dropped)."""
        name = repository.name
        async with self._exclusive(name, upload_id):
            size = await self._size_at(name, upload_id, start)
            hasher = await self._hasher(name, upload_id, size)
            data_path = paths.upload_data(name, upload_id)
            writer = await self.driver.writer(data_path, append=True)
            writer.expect(length if body is not None else None)
            try:
                if body is not None:
                    await pump(body, writer, hasher)
                await writer.commit()
            except BaseException:
                self._hashers.pop(upload_id, None)
                raise
            finally:
                await writer.close()
            size = writer.size
            if digest.algorithm == "sha256":
                actual = Digest("sha256", hasher.hexdigest())
            else:
                actual = await self._digest_of(data_path, size, digest.algorithm)
            if actual != digest:
                await self._forget(name, upload_id)
                raise DigestMismatch(
                    "the uploaded content does not match the digest",
                    detail={"expected": str(digest), "actual": str(actual)},
                )
            try:
                async with repository.admitting({digest: size}):
                    await self.blobs.ingest(data_path, digest)
                    await self._forget(name, upload_id)
                    await repository.link_layer(digest)
            except QuotaExceeded:  # as for a wrong digest: finishing it again would fail again
                await self._forget(name, upload_id)
                raise
            return size

    async def _size_at(self, name: str, upload_id: str, start: int | None) -> int:
        """The upload's size, which a chunk's ``start`` (if given) must equal; :class:`UploadOffsetInvalid` otherwise."""
        size = await self.size(name, upload_id)
        if start is not None and start != size:
            raise UploadOffsetInvalid(name, upload_id, size, f"chunk starts at {start} but the upload holds {size} bytes")
        return size

    async def cancel(self, name: str, upload_id: str) -> None:
        async with self._exclusive(name, upload_id):
            await self.size(name, upload_id)
            await self._forget(name, upload_id)

    async def _forget(self, name: str, upload_id: str) -> None:
        self._hashers.pop(upload_id, None)
        try:
            await self.driver.delete(paths.upload(name, upload_id))
        except PathNotFound:
            pass

    def _remember(self, upload_id: str, size: int, hasher: hashlib._Hash) -> None:
        self._hashers[upload_id] = (size, hasher)
        self._hashers.move_to_end(upload_id)
        while len(self._hashers) > HASHER_CACHE_SIZE:
            self._hashers.popitem(last=False)

    async def _hasher(self, name: str, upload_id: str, size: int) -> hashlib._Hash:
        cached = self._hashers.get(upload_id)
        if cached is not None and cached[0] == size:
            return cached[1]
        hasher = hashlib.sha256()
        if size:
            async for chunk in self.driver.read(paths.upload_data(name, upload_id), 0, size):
                await asyncio.to_thread(hasher.update, chunk)
        return hasher

    async def _digest_of(self, path: str, size: int, algorithm: str) -> Digest:
        hasher = hashlib.new(algorithm)
        async for chunk in self.driver.read(path, 0, size):
            await asyncio.to_thread(hasher.update, chunk)
        return Digest(algorithm, hasher.hexdigest())


def range_header(name: str, upload_id: str, size: int) -> dict[str, str]:
    """The headers that tell a client where an upload stands."""
    return {
        "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
        "Range": f"0-{max(size - 1, 0)}",
        "Docker-Upload-UUID": upload_id,
    }


async def pump(
    body: AsyncIterator[bytes], writer: FileWriter, hasher: hashlib._Hash, step: int = FLUSH_BYTES,
    after_step: Callable[[], Awaitable[None]] | None = None, keep_partial: bool = True, steps_ahead: int = STEPS_AHEAD,
) -> None:
    """Stream ``body`` into ``writer`` and ``hasher`` in steps of at least ``step`` bytes; ``after_step``
    runs after each write. The last, shorter step is written at the end, and with ``keep_partial``
    also when receiving failed (what arrived of an upload is kept, to be resumed).

    Receiving, hashing and writing are three tasks: receiving waits only when ``steps_ahead``
    received steps are not yet both hashed and written, and so at most that many are held.
    Hashing and writing each take all the steps waiting for them at once, in one worker thread
    hop (hashlib and file writes release the GIL), so that when they fall behind they catch up in
    fewer, larger hops instead of taking turns with each other and the event loop for every step.
    Received chunks are kept by reference, never copied into one buffer.
    """

    def hash_chunks(chunks: list[bytes]) -> None:
        for chunk in chunks:
            hasher.update(chunk)

    async def hash_in_thread(chunks: list[bytes]) -> None:
        await asyncio.to_thread(hash_chunks, chunks)

    async def write(chunks: list[bytes]) -> None:
        await writer.write_chunks(chunks)
        if after_step is not None:
            await after_step()

    # Received steps in order, then None once the body ended or failed (the receiving task holds the failure).
    to_hash: asyncio.Queue[list[bytes] | None] = asyncio.Queue()
    to_write: asyncio.Queue[list[bytes] | None] = asyncio.Queue()
    # A received step takes one of each; hashing and writing each give theirs back once done with it.
    hash_room, write_room = asyncio.Semaphore(steps_ahead), asyncio.Semaphore(steps_ahead)
    stopping = False  # set on a failure: hashing and writing end after what they are doing, not cut off in a thread

    def hand_on(chunks: list[bytes] | None) -> None:
        to_hash.put_nowait(chunks)
        to_write.put_nowait(chunks)

    async def receive() -> None:
        chunks: list[bytes] = []
        gathered = 0
        try:
            async for chunk in body:
                chunks.append(chunk)
                gathered += len(chunk)
                if gathered >= step:
                    await hash_room.acquire()
                    await write_room.acquire()
                    hand_on(chunks)
                    chunks, gathered = [], 0
        except BaseException:
            if keep_partial and chunks:
                hand_on(chunks)
            raise
        else:
            if chunks:
                hand_on(chunks)
        finally:
            hand_on(None)

    async def take(queue: asyncio.Queue[list[bytes] | None], room: asyncio.Semaphore, work: Callable[[list[bytes]], Awaitable[None]]) -> None:
        while not stopping:
            waiting = [await queue.get()]
            while not queue.empty():
                waiting.append(queue.get_nowait())
            steps = [chunks for chunks in waiting if chunks is not None]
            if steps:
                await work([chunk for chunks in steps for chunk in chunks])
                for _ in steps:
                    room.release()
            if len(steps) < len(waiting):  # the end
                return

    receiving = asyncio.ensure_future(receive())
    hashing = asyncio.ensure_future(take(to_hash, hash_room, hash_in_thread))
    writing = asyncio.ensure_future(take(to_write, write_room, write))
    try:
        # Shielded: a cancelled pump still lets the threads finish with the writer before it is closed.
        await asyncio.shield(asyncio.gather(hashing, writing))
    except BaseException:
        stopping = True
        receiving.cancel()
        hand_on(None)  # wakes a task waiting for a step (the receiving task may never have started)
        await asyncio.gather(receiving, hashing, writing, return_exceptions=True)
        raise
    await receiving  # raises the body's failure, once what arrived before it is written (with keep_partial)
