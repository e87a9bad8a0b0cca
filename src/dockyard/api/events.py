"""The events of what a request did (see :mod:`dockyard.events`): registry:2's fields, built
from the request, written to the outbox once the change is made and before the answer."""

from __future__ import annotations

from dockyard.api.context import RequestContext
from dockyard.api.forwarding import path_prefix, public_base_url
from dockyard.events import EVENTS_KEY, Target, request_record
from dockyard.events.model import BLOB_MEDIA_TYPE, references
from dockyard.manifest import Manifest
from dockyard.reference import Digest


def _url(context: RequestContext, kind: str, digest: Digest) -> str:
    request = context.request
    return f"{public_base_url(request)}{path_prefix(request)}/v2/{context.name}/{kind}/{digest}"


def _wanted(context: RequestContext, action: str, media_type: str) -> bool:
    """Whether an endpoint takes such an event: if none does, nothing is built."""
    notifier = context.request.app.get(EVENTS_KEY)
    return notifier is not None and notifier.outbox.wants(action, media_type)


async def _emit(context: RequestContext, action: str, target: Target) -> None:
    if _wanted(context, action, target.media_type):
        await context.request.app[EVENTS_KEY].record(action, target, request_record(context.request), context.identity.user or "")


async def manifest_event(
    context: RequestContext, action: str, digest: Digest, media_type: str, size: int, tag: str = "", manifest: Manifest | None = None,
) -> None:
    """A manifest pushed or pulled (by ``tag``, when it was named by one)."""
    if not _wanted(context, action, media_type):
        return  # every pull by default: its URL and target would be built for nobody
    notifier = context.request.app[EVENTS_KEY]
    listed = references(manifest) if manifest is not None and notifier.outbox.include_references else ()
    target = Target(
        context.name, media_type=media_type, digest=str(digest), size=size, url=_url(context, "manifests", digest), tag=tag, references=listed,
    )
    await _emit(context, action, target)


async def blob_event(context: RequestContext, action: str, digest: Digest, size: int | None = None, from_repository: str = "") -> None:
    """A blob pushed, pulled or mounted (from ``from_repository``); its size read from the repository unless given."""
    if not _wanted(context, action, BLOB_MEDIA_TYPE):
        return
    target = Target(
        context.name, media_type=BLOB_MEDIA_TYPE, digest=str(digest), url=_url(context, "blobs", digest),
        size=size if size is not None else await context.repository.layer_size(digest),
        from_repository=from_repository,
    )
    await _emit(context, action, target)


async def blob_delete_event(context: RequestContext, digest: Digest) -> None:
    """A blob deleted (manifests, tags and repositories: :mod:`dockyard.deletes`)."""
    await _emit(context, "delete", Target(context.name, digest=str(digest)))
