"""``/v2/<name>/blobs/uploads/``: start, mount, append to, finish and cancel blob uploads."""

from __future__ import annotations

from aiohttp import web

from dockyard.api import errors
from dockyard.api.context import RequestContext
from dockyard.api.errors import RegistryError
from dockyard.api.events import blob_event
from dockyard.api.ranges import content_range
from dockyard.errors import BlobUnknown
from dockyard.logs import audit
from dockyard.reference import Digest, check_name, check_upload_id, parse_digest
from dockyard.storage.uploads import range_header


def _created(name: str, digest: Digest) -> web.Response:
    return web.Response(
        status=201,
        headers={"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": str(digest)},
    )


def _in_progress(name: str, upload_id: str, size: int, status: int = 202) -> web.Response:
    return web.Response(status=status, headers=range_header(name, upload_id, size))


async def _mountable_size(context: RequestContext, source: str, digest: Digest) -> int | None:
    """The blob's size if the client may pull it from ``source`` and ``source`` holds it."""
    if not context.identity.may("pull", source):
        return None
    try:
        return await context.registry.repository(source).layer_size(digest)
    except BlobUnknown:
        return None


async def start(context: RequestContext) -> web.StreamResponse:
    registry, name = context.registry, context.name
    mount, source = context.query("mount"), context.query("from")
    digest: Digest | None
    if mount is not None:
        digest = parse_digest(mount)
        if source is not None and source != name:
            check_name(source)
            size = await _mountable_size(context, source, digest)
            if size is not None:
                async with context.repository.admitting({digest: size}):
                    await context.repository.link_layer(digest)
                audit("mount", context.request, repository=name, source=source, digest=digest, user=context.identity.user)
                await blob_event(context, "mount", digest, from_repository=source)
                return _created(name, digest)
        elif await context.repository.has_layer(digest):
            return _created(name, digest)
        # Not readable where the client said: fall back to an ordinary upload.

    digest_text = context.query("digest")
    digest = parse_digest(digest_text) if digest_text is not None else None
    upload_id = await registry.uploads.start(name)
    if digest is None:
        return _in_progress(name, upload_id, 0)
    await registry.uploads.finish(context.repository, upload_id, digest, context.body(), length=context.request.content_length)
    await blob_event(context, "push", digest)
    return _created(name, digest)


async def status(context: RequestContext) -> web.StreamResponse:
    upload_id = check_upload_id(context.params["uuid"])
    size = await context.registry.uploads.size(context.name, upload_id)
    return _in_progress(context.name, upload_id, size, status=204)


async def _chunk_start(context: RequestContext, upload_id: str) -> int | None:
    """Where the request's ``Content-Range`` says its chunk starts (``None`` without one), once it is checked against the body."""
    header = context.request.headers.get("Content-Range")
    if not header:
        return None
    start, end = content_range(header)
    length = context.request.content_length
    if end < start:
        size = await context.registry.uploads.size(context.name, upload_id)
        raise RegistryError(
            errors.RANGE_INVALID,
            "Content-Range ends before it starts",
            headers=range_header(context.name, upload_id, size),
        )
    if length is not None and length != end - start + 1:
        # registry:2 answers SIZE_INVALID here (the spec is silent).
        size = await context.registry.uploads.size(context.name, upload_id)
        raise RegistryError(
            errors.SIZE_INVALID,
            "Content-Range does not match Content-Length",
            headers=range_header(context.name, upload_id, size),
        )
    return start


async def patch(context: RequestContext) -> web.StreamResponse:
    upload_id = check_upload_id(context.params["uuid"])
    start = await _chunk_start(context, upload_id)
    size = await context.registry.uploads.append(context.name, upload_id, context.body(), start, context.request.content_length)
    return _in_progress(context.name, upload_id, size)


async def finish(context: RequestContext) -> web.StreamResponse:
    upload_id = check_upload_id(context.params["uuid"])
    digest_text = context.query("digest")
    if digest_text is None:
        await context.registry.uploads.size(context.name, upload_id)
        raise RegistryError(errors.DIGEST_INVALID, "the digest query parameter is required to finish an upload")
    digest = parse_digest(digest_text)
    start = await _chunk_start(context, upload_id)
    body = context.body() if context.has_body() else None
    await context.registry.uploads.finish(context.repository, upload_id, digest, body, start, context.request.content_length)
    await blob_event(context, "push", digest)
    return _created(context.name, digest)


async def cancel(context: RequestContext) -> web.StreamResponse:
    upload_id = check_upload_id(context.params["uuid"])
    await context.registry.uploads.cancel(context.name, upload_id)
    return web.Response(status=204)
