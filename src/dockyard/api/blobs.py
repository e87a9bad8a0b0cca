"""``/v2/<name>/blobs/<digest>``: fetch (with ranges), check and delete blobs."""

from __future__ import annotations

import re

from aiohttp import web

from dockyard.api import errors
from dockyard.api.context import RequestContext
from dockyard.api.errors import RegistryError
from dockyard.api.sendfile import send_file
from dockyard.logs import audit
from dockyard.reference import Digest, parse_digest
from dockyard.storage import paths

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def parse_range(header: str, size: int) -> tuple[int, int]:
    """The first and last byte of a single ``bytes=`` range, or ``RANGE_INVALID``."""
    match = _RANGE.fullmatch(header.strip())
    unsatisfiable = RegistryError(
        errors.RANGE_INVALID, "requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"}
    )
    if match is None or match.group(1) == match.group(2) == "":
        raise unsatisfiable
    first, last = match.groups()
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise unsatisfiable
        return max(size - suffix, 0), size - 1
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if start >= size or (last != "" and int(last) < start):
        raise unsatisfiable
    return start, end


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
    size = await context.repository.layer_size(digest)
    headers = _headers(digest)
    if request.headers.get("If-None-Match") in (headers["ETag"], str(digest)):
        return web.Response(status=304, headers=headers)

    driver = context.registry.driver
    redirect = await driver.redirect_url(paths.blob_data(digest), request.method)
    if redirect is not None:
        return web.Response(status=307, headers={"Location": redirect, "Docker-Content-Digest": str(digest)})

    status, start, end = 200, 0, size - 1
    if "Range" in request.headers:
        status = 206
        start, end = parse_range(request.headers["Range"], size)
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    count = end - start + 1
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = count
    if request.method == "HEAD" or count == 0:
        await response.prepare(request)
        return response

    writer = await response.prepare(request)
    path = paths.blob_data(digest)
    local = driver.local_file(path)
    if local is None or writer is None or not await send_file(request, writer, local, start, count):
        async for chunk in driver.read(path, start, count):
            await response.write(chunk)
    await response.write_eof()
    return response


async def delete(context: RequestContext) -> web.StreamResponse:
    context.require_deletes()
    digest = parse_digest(context.params["digest"])
    await context.repository.unlink_layer(digest)
    audit("delete_blob", context.request, repository=context.name, digest=digest, user=context.identity.user)
    return web.Response(status=202, headers={"Docker-Content-Digest": str(digest)})
