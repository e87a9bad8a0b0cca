"""``/v2/<name>/blobs/<digest>``: fetch (with ranges), check and delete blobs."""

from __future__ import annotations

import logging
import pathlib
import secrets
from dataclasses import dataclass

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from dockyard.api.context import RequestContext
from dockyard.api.events import blob_delete_event, blob_event
from dockyard.api.ranges import requested_ranges
from dockyard.api.sendfile import send_file
from dockyard.errors import BlobUnknown
from dockyard.logs import audit
from dockyard.proxy.cache import PullThroughCache
from dockyard.reference import Digest, parse_digest
from dockyard.storage import paths
from dockyard.storage.driver import StorageDriver

log = logging.getLogger("dockyard.api")


def _headers(digest: Digest) -> dict[str, str]:
    return {
        "Docker-Content-Digest": str(digest),
        "ETag": f'"{digest}"',
        "Accept-Ranges": "bytes",
        "Cache-Control": "max-age=31536000",
        "Content-Type": "application/octet-stream",
    }


async def get(context: RequestContext) -> web.StreamResponse:
    request = context.request
    digest = parse_digest(context.params["digest"])
    pull_through = context.pull_through
    try:
        size = await context.repository.layer_size(digest)
    except BlobUnknown:
        if pull_through is None:
            raise
        return await _get_uncached(context, pull_through, digest)
    if pull_through is not None:
        await pull_through.cached_blob(digest, sending=request.method == "GET")
    headers = _headers(digest)
    if request.headers.get("If-None-Match") in (headers["ETag"], str(digest)):
        return web.Response(status=304, headers=headers)
    if request.method == "GET":  # a HEAD is no pull
        await blob_event(context, "pull", digest, size)

    driver = context.registry.driver
    redirect = await driver.redirect_url(paths.blob_data(digest), request.method)
    if redirect is not None:
        return web.Response(status=307, headers={"Location": redirect, "Docker-Content-Digest": str(digest)})

    status, pieces, closing = _body(request.headers.get("Range"), size, headers)
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = sum(len(piece.heading) + piece.count for piece in pieces) + len(closing)
    if request.method == "HEAD" or response.content_length == 0:
        await response.prepare(request)
        return response

    writer = await response.prepare(request)
    path = paths.blob_data(digest)
    local = driver.local_file(path)
    for piece in pieces:
        if piece.heading:
            await response.write(piece.heading)
        await _send_slice(request, response, writer, driver, path, local, piece.start, piece.count)
    if closing:
        await response.write(closing)
    await response.write_eof()
    return response


async def _get_uncached(context: RequestContext, pull_through: PullThroughCache, digest: Digest) -> web.StreamResponse:
    """A blob the cache has not stored in this repository: a HEAD asks the upstream; a GET streams the
    blob, or the ranges asked, as the one fetch of it brings it in. A range waits for its bytes, and
    holds its last one until the blob is verified; with no size from the upstream, a Range is ignored."""
    request = context.request
    headers = _headers(digest)
    if request.method == "HEAD":
        response = web.StreamResponse(headers=headers)
        size = await pull_through.blob_size(context.name, digest)
        if size is not None:
            response.content_length = size
        await response.prepare(request)
        return response
    download = await pull_through.blob(context.name, digest)
    await blob_event(context, "pull", digest, download.size or 0)
    # (heading, start, count): with no size from the upstream, the whole blob however long it is.
    pieces: list[tuple[bytes, int, int | None]] = [(b"", 0, None)]
    status, closing = 200, b""
    if download.size is not None:
        status, sized, closing = _body(request.headers.get("Range"), download.size, headers)
        pieces = [(piece.heading, piece.start, piece.count) for piece in sized]
    response = web.StreamResponse(status=status, headers=headers)
    if download.size is not None:
        response.content_length = sum(len(heading) + (count or 0) for heading, _, count in pieces) + len(closing)
    await response.prepare(request)
    try:
        for heading, start, count in pieces:
            if heading:
                await response.write(heading)
            async for chunk in download.chunks(context.registry, start, count):
                await response.write(chunk)
    except Exception as failure:
        if request.transport is None or request.transport.is_closing():
            raise  # the client went away
        # The status is sent: only a cut connection tells the client that the body is not the blob.
        log.warning("cutting the connection of GET %s of %s: %s", digest, context.name, failure)
        request.transport.abort()
        return response
    if closing:
        await response.write(closing)
    await response.write_eof()
    return response


def _body(range_header: str | None, size: int, headers: dict[str, str]) -> tuple[int, list[_Piece], bytes]:
    """The status, the pieces and the closing bytes of the answer to ``range_header``; sets the headers that go with them."""
    ranges = requested_ranges(range_header, size) if range_header is not None else None
    if ranges is None:
        return 200, [_Piece(b"", 0, size)], b""
    if len(ranges) == 1:
        [(start, end)] = ranges
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return 206, [_Piece(b"", start, end - start + 1)], b""
    boundary = secrets.token_hex(16)
    headers["Content-Type"] = f"multipart/byteranges; boundary={boundary}"
    pieces = [
        _Piece(_part_heading(boundary, index, start, end, size), start, end - start + 1)
        for index, (start, end) in enumerate(ranges)
    ]
    return 206, pieces, f"\r\n--{boundary}--\r\n".encode()


@dataclass(frozen=True)
class _Piece:
    """What the body holds for one range: a multipart heading (or nothing), then ``count`` bytes of the blob from ``start``."""

    heading: bytes
    start: int
    count: int


def _part_heading(boundary: str, index: int, start: int, end: int, size: int) -> bytes:
    # The CRLF before each boundary but the first ends the previous part's bytes.
    lead = "\r\n" if index else ""
    return (
        f"{lead}--{boundary}\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Range: bytes {start}-{end}/{size}\r\n\r\n"
    ).encode()


async def _send_slice(
    request: web.Request,
    response: web.StreamResponse,
    writer: AbstractStreamWriter | None,
    driver: StorageDriver,
    path: str,
    local: pathlib.Path | None,
    start: int,
    count: int,
) -> None:
    """Stream ``count`` bytes of the blob from ``start``: by sendfile where it is a local file, else read from storage."""
    if local is None or writer is None or not await send_file(request, writer, local, start, count):
        async for chunk in driver.read(path, start, count):
            await response.write(chunk)


async def delete(context: RequestContext) -> web.StreamResponse:
    context.registry.require_deletes()
    digest = parse_digest(context.params["digest"])
    await context.repository.unlink_layer(digest)
    audit("delete_blob", context.request, repository=context.name, digest=digest, user=context.identity.user)
    await blob_delete_event(context, digest)
    return web.Response(status=202, headers={"Docker-Content-Digest": str(digest)})
