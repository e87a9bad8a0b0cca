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
# Received steps that may wait for the writing of the one before them.
STEPS_AHEAD = 4
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
    ) -> int:
        """Append a chunk; ``start`` (from ``Content-Range``) must be the current size."""
        async with self._exclusive(name, upload_id):
            size = await self._size_at(name, upload_id, start)
            hasher = await self._hasher(name, upload_id, size)
            writer = await self.driver.writer(paths.upload_data(name, upload_id), append=True)
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
    ) -> int:
        """Take a last chunk (``start`` as in :meth:`append`), verify the digest, and move the blob into
        place and link it in ``repository``, once the quotas admit it (else the upload is dropped)."""
        name = repository.name
        async with self._exclusive(name, upload_id):
            size = await self._size_at(name, upload_id, start)
            hasher = await self._hasher(name, upload_id, size)
            data_path = paths.upload_data(name, upload_id)
            writer = await self.driver.writer(data_path, append=True)
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
    """Stream ``body`` into ``writer`` and ``hasher`` in steps of at least ``step`` bytes: each step is
    hashed and written, then ``after_step`` runs. The last, shorter step is written at the end, and
    with ``keep_partial`` also when receiving failed (what arrived of an upload is kept, to be resumed).

    Receiving runs in a task of its own that waits on writing only when ``steps_ahead`` received
    steps are not written yet, so a slow write or hash of one step does not stop the sender. Received
    chunks are kept by reference, not copied into one buffer, so the event loop only receives;
    hashing and writing run in worker threads (both release the GIL).
    """

    def hash_chunks(chunks: list[bytes]) -> None:
        for chunk in chunks:
            hasher.update(chunk)

    # Received steps in order, then None once the body ended or failed (the receiving task holds the failure).
    steps: asyncio.Queue[list[bytes] | None] = asyncio.Queue()
    room = asyncio.Semaphore(steps_ahead)  # a step received takes one, its writing gives it back

    async def receive() -> None:
        chunks: list[bytes] = []
        gathered = 0
        try:
            async for chunk in body:
                chunks.append(chunk)
                gathered += len(chunk)
                if gathered >= step:
                    await room.acquire()
                    steps.put_nowait(chunks)
                    chunks, gathered = [], 0
        except BaseException:
            if keep_partial and chunks:
                steps.put_nowait(chunks)
            raise
        else:
            if chunks:
                steps.put_nowait(chunks)
        finally:
            steps.put_nowait(None)

    async def flush(chunks: list[bytes]) -> None:
        await asyncio.gather(asyncio.to_thread(hash_chunks, chunks), writer.write_chunks(chunks))
        room.release()
        if after_step is not None:
            await after_step()

    receiving = asyncio.ensure_future(receive())
    flushing: asyncio.Future[None] | None = None
    try:
        while (chunks := await steps.get()) is not None:
            # Shielded: a cancelled pump still lets the threads finish with the writer before it is closed.
            flushing = asyncio.ensure_future(flush(chunks))
            await asyncio.shield(flushing)
    except BaseException:
        receiving.cancel()
        await asyncio.gather(receiving, *([flushing] if flushing is not None else []), return_exceptions=True)
        raise
    await receiving  # raises the body's failure, once what arrived before it is written (with keep_partial)
