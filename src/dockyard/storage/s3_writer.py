"""The S3 driver's writer of appendable files (see :mod:`dockyard.storage.s3`): it gathers what it
receives into parts of ``chunksize``, one multipart upload per segment with at most one part in
flight, and on ``commit`` finishes its segment and replaces the file's marker."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dockyard.storage.driver import FileWriter, PathNotFound

if TYPE_CHECKING:
    from dockyard.storage.s3 import S3Driver

SEGMENTS_SUFFIX = ".segments"
MARKER = "dockyard-segmented-size"  # user metadata naming an appendable file's size


@dataclass(frozen=True)
class Segment:
    key: str
    size: int


def segments_prefix(key: str) -> str:
    """The hidden sibling prefix under which the file at ``key`` keeps its segments."""
    head, _, name = key.rpartition("/")
    return f"{head}/.{name}{SEGMENTS_SUFFIX}/" if head else f".{name}{SEGMENTS_SUFFIX}/"


class S3Writer(FileWriter):
    """Appends one new segment after ``kept``; ``tail`` (an absorbed small last segment) leads it."""

    def __init__(
        self, driver: S3Driver, path: str, key: str, kept: list[Segment], tail: bytes, superseded: list[str], exists: bool,
    ) -> None:
        self._driver = driver
        self._path = path
        self._key = key
        self._segments = kept
        self._superseded = superseded
        self._buffer = bytearray(tail)
        self._size = sum(segment.size for segment in kept) + len(tail)
        self._changed = not exists  # a new file gets its marker even when nothing is written
        self._new_segment()

    def _new_segment(self) -> None:
        offset = sum(segment.size for segment in self._segments)
        self._segment_key = f"{segments_prefix(self._key)}{offset:020d}-{uuid.uuid4().hex}"
        self._segment_size = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._pending: asyncio.Task[None] | None = None

    @property
    def size(self) -> int:
        return self._size

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self._buffer += data
        self._size += len(data)
        self._changed = self._changed or len(data) > 0
        # A full part is sent only once more follows, so a write of exactly one part
        # becomes a single PUT at close instead of a multipart upload.
        size = self._driver._part_size
        while len(self._buffer) > size:
            await self._part_sent()  # before cutting the next: one part in flight and the buffer, never two parts besides
            with memoryview(self._buffer) as view:
                rest = bytearray(view[size:])  # a copy of the rest only: the buffer itself becomes the part
            part, self._buffer = self._buffer, rest
            del part[size:]
            await self._send_part(part)

    async def _part_sent(self) -> None:
        if self._pending is not None:
            await self._pending
            self._pending = None

    async def _send_part(self, part: bytearray) -> None:
        if self._upload_id is None:
            created = await self._driver._call("create_multipart_upload", Key=self._segment_key, **self._driver._object_params)
            self._upload_id = created["UploadId"]
        await self._part_sent()
        number = len(self._parts) + 1
        self._parts.append({"PartNumber": number, "ETag": ""})
        self._segment_size += len(part)

        async def upload() -> None:
            sent = await self._driver._call(
                "upload_part", Key=self._segment_key, UploadId=self._upload_id, PartNumber=number, Body=part,
            )
            self._parts[number - 1]["ETag"] = sent["ETag"]

        self._pending = asyncio.ensure_future(upload())

    async def _finish_segment(self) -> None:
        if self._upload_id is not None:
            if self._buffer:
                part, self._buffer = self._buffer, bytearray()
                await self._send_part(part)
            await self._part_sent()
            await self._driver._call(
                "complete_multipart_upload", Key=self._segment_key, UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        elif self._buffer:
            self._segment_size = len(self._buffer)
            await self._driver._call("put_object", Key=self._segment_key, Body=self._buffer, **self._driver._object_params)
        if self._segment_size:
            self._segments.append(Segment(self._segment_key, self._segment_size))
        self._buffer = bytearray()

    async def commit(self) -> None:
        if not self._changed:
            return
        try:
            await self._finish_segment()
        except BaseException:
            await self._drop_segment()
            raise
        await self._driver._put_marker(self._key, self._segments)
        self._changed = False
        if self._superseded:
            await self._driver._delete_keys(self._superseded)
            self._superseded = []
        self._new_segment()

    async def _drop_segment(self) -> None:
        if self._pending is not None:
            with contextlib.suppress(Exception):
                await self._pending
        if self._upload_id is not None:
            await self._driver._abort(self._segment_key, self._upload_id)
        self._new_segment()
        self._buffer = bytearray()

    async def cancel(self) -> None:
        await self._drop_segment()
        self._changed = False
        with contextlib.suppress(PathNotFound):
            await self._driver.delete(self._path)

    async def close(self) -> None:
        await self.commit()
