"""The S3 driver's writer against a stand-in for S3's multipart calls: what it holds while parts are in flight."""

from __future__ import annotations

import asyncio
import hashlib
import tracemalloc
from typing import Any

from dockyard.config import S3
from dockyard.storage.s3 import S3Driver
from dockyard.storage.s3_writer import S3Writer

PART = 5 << 20
CHUNK = 256 << 10


class MultipartStandIn:
    """Answers the writer's calls; each part stays in flight over a few turns of the event loop."""

    def __init__(self) -> None:
        self.parts: dict[int, bytes] = {}
        self.completed: list[int] = []

    async def call(self, operation: str, path: str | None = None, **params: Any) -> dict[str, Any]:
        if operation == "create_multipart_upload":
            return {"UploadId": "upload"}
        if operation == "upload_part":
            for _ in range(3):
                await asyncio.sleep(0)
            self.parts[params["PartNumber"]] = hashlib.sha256(params["Body"]).digest()
            return {"ETag": str(params["PartNumber"])}
        if operation == "complete_multipart_upload":
            self.completed = [part["PartNumber"] for part in params["MultipartUpload"]["Parts"]]
        assert operation in {"complete_multipart_upload", "put_object"}, operation  # put_object: the marker
        return {}


async def test_a_part_is_cut_only_once_the_part_in_flight_is_sent() -> None:
    # Cut while the part before was in flight, a part waited beside it and the buffer: three parts held, not two.
    driver = S3Driver(S3(region="us-east-1", bucket="bucket", chunksize=PART))
    s3 = MultipartStandIn()
    driver._call = s3.call  # type: ignore[method-assign]
    data = bytes(range(256)) * (PART * 3 // 256 + 1000)
    writer = S3Writer(driver, "/blob", "blob", kept=[], tail=b"", superseded=[], exists=False)
    tracemalloc.start()
    try:
        for start in range(0, len(data), CHUNK):
            await writer.write(data[start:start + CHUNK])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    await writer.commit()
    # Two parts, and the reserve a growing bytearray allocates ahead (an eighth), untouched pages in RSS.
    assert peak < 2.5 * PART, f"{peak / PART:.2f} parts held at the peak"
    assert s3.completed == [1, 2, 3, 4]
    expected = [hashlib.sha256(data[start:start + PART]).digest() for start in range(0, len(data), PART)]
    assert [s3.parts[number] for number in s3.completed] == expected
