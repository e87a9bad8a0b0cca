"""Two replicas appending to one upload at once (a client's retry reaching another one).

Two :class:`Registry` objects on one root stand for two processes: the filesystem
driver's lock is an ``flock``, which holds between them as between processes. The
second PATCH waits for the first, then its ``Content-Range`` no longer fits: 416, and
the upload holds the first chunk once, not two chunks interleaved.
"""

from __future__ import annotations

import asyncio
import hashlib
import pathlib
from collections.abc import AsyncIterator

import pytest

from dockyard.api.errors import from_domain
from dockyard.errors import UploadOffsetInvalid, UploadUnknown
from dockyard.reference import Digest
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.registry import Registry

NAME = "team/app"


async def body(data: bytes, started: asyncio.Event | None = None, release: asyncio.Event | None = None) -> AsyncIterator[bytes]:
    yield data[: len(data) // 2]
    if started is not None and release is not None:
        started.set()
        await release.wait()  # the first replica is in the middle of its chunk
    yield data[len(data) // 2:]


async def test_patches_of_one_upload_at_two_replicas_take_turns(tmp_path: pathlib.Path) -> None:
    a, b = Registry(FilesystemDriver(tmp_path / "root")), Registry(FilesystemDriver(tmp_path / "root"))
    chunk = b"A" * 100_000
    upload = await a.uploads.start(NAME)
    started, release = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(a.uploads.append(NAME, upload, body(chunk, started, release), start=0))
    await started.wait()
    second = asyncio.create_task(b.uploads.append(NAME, upload, body(b"B" * 100_000), start=0))
    await asyncio.sleep(0.2)
    assert not second.done()  # waiting for the lock, not writing
    release.set()
    assert await first == len(chunk)
    with pytest.raises(UploadOffsetInvalid) as raised:
        await second
    answer = from_domain(raised.value)
    assert answer.error.code == "RANGE_INVALID"
    assert answer.headers["Range"] == f"0-{len(chunk) - 1}"
    # The other replica finishes it, from storage: the content is the first chunk alone.
    digest = Digest("sha256", hashlib.sha256(chunk).hexdigest())
    assert await b.uploads.finish(b.repository(NAME), upload, digest, None) == len(chunk)
    assert await b.blobs.get(digest) == chunk
    with pytest.raises(UploadUnknown) as gone:
        await a.uploads.append(NAME, upload, body(b"late"), start=len(chunk))
    assert from_domain(gone.value).error.code == "BLOB_UPLOAD_UNKNOWN"


async def test_a_cancel_waits_for_a_running_append(tmp_path: pathlib.Path) -> None:
    a, b = Registry(FilesystemDriver(tmp_path / "root")), Registry(FilesystemDriver(tmp_path / "root"))
    upload = await a.uploads.start(NAME)
    started, release = asyncio.Event(), asyncio.Event()
    appending = asyncio.create_task(a.uploads.append(NAME, upload, body(b"x" * 1000, started, release)))
    await started.wait()
    cancelling = asyncio.create_task(b.uploads.cancel(NAME, upload))
    await asyncio.sleep(0.2)
    assert not cancelling.done()
    release.set()
    assert await appending == 1000
    await cancelling
    assert not (tmp_path / "root" / "docker/registry/v2/repositories/team/app/_uploads" / upload).exists()
