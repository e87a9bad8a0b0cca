"""``/v2/<name>/manifests/<reference>``: fetch, push, untag and delete manifests."""

from __future__ import annotations

from aiohttp import web
from multidict import CIMultiDict

from dockyard import manifest as manifests
from dockyard.api import errors
from dockyard.api.context import RequestContext
from dockyard.api.errors import RegistryError
from dockyard.api.events import manifest_event
from dockyard.deletes import delete_reference
from dockyard.errors import ManifestUnknown, TagInvalid
from dockyard.events import EVENTS_KEY
from dockyard.logs import audit
from dockyard.memo import remembered
from dockyard.reference import Digest, check_tag, is_digest, parse_digest
from dockyard.storage.repository import Repository

# Clients that say they take JSON in general take any manifest.
_ANY = frozenset({"*/*", "application/*", "application/json"})
# What a manifest is served as, by digest: the bytes a digest names never change, and parsing
# them costs more than the rest of a GET. The oldest entry goes first past this many.
MEDIA_TYPES_KEPT = 4096
_media_types: dict[Digest, str] = {}
# Clients send one of a few Accept values again and again: each is split once, the last this many
# distinct values remembered, each of at most ACCEPT_KEPT_MAX characters.
ACCEPT_VALUES_KEPT = 256
ACCEPT_KEPT_MAX = 2048


def _stored_media_type(digest: Digest, content: bytes) -> str:
    media_type = _media_types.get(digest)
    if media_type is None:
        media_type = _media_types[digest] = manifests.stored_media_type(content)
        if len(_media_types) > MEDIA_TYPES_KEPT:
            del _media_types[next(iter(_media_types))]
    return media_type


def _reference(context: RequestContext) -> tuple[Digest | None, str | None]:
    reference = context.params["reference"]
    if is_digest(reference):
        return parse_digest(reference), None
    return None, check_tag(reference)


def _accepted(request: web.Request) -> frozenset[str]:
    return _media_types_in(tuple(request.headers.getall("Accept", ())))


@remembered(ACCEPT_VALUES_KEPT, ACCEPT_KEPT_MAX)
def _media_types_in(headers: tuple[str, ...]) -> frozenset[str]:
    """The media types Accept headers list, parameters (q-values) dropped."""
    accepted: set[str] = set()
    for header in headers:
        for item in header.split(","):
            media_type = item.split(";")[0].strip().lower()
            if media_type:
                accepted.add(media_type)
    return frozenset(accepted)


async def _negotiate(repository: Repository, digest: Digest, content: bytes, accepted: frozenset[str]) -> tuple[Digest, bytes, str]:
    """What to serve a client that said what it accepts, as registry:2 decides it.

    An index goes to clients that take indexes; a client that only takes image
    manifests gets the index's linux/amd64 image; otherwise the manifest is unknown
    to this client rather than served in a form it cannot read.
    """
    media_type = _stored_media_type(digest, content)
    if not accepted or accepted & _ANY or media_type in accepted:
        return digest, content, media_type
    if media_type in manifests.INDEX_TYPES and accepted & manifests.IMAGE_TYPES:
        for child in manifests.parse(content, media_type).children:
            platform = child.platform or {}
            if platform.get("os") == "linux" and platform.get("architecture") == "amd64" and child.media_type in accepted:
                return child.digest, await repository.get_manifest(child.digest), child.media_type
    raise RegistryError(
        errors.MANIFEST_UNKNOWN,
        f"the manifest is a {media_type}, which the client's Accept header does not include",
        detail={"digest": str(digest)},
    )


async def get(context: RequestContext) -> web.StreamResponse:
    repository = context.repository
    try:
        digest, tag = _reference(context)
    except TagInvalid as error:
        # No manifest has that name: registry:2 answers so (only a push says the tag is invalid).
        raise ManifestUnknown(detail=error.detail) from None
    if (pull_through := context.pull_through) is not None:
        # Its answer, not the tag read again: an expiry may remove the tag meanwhile.
        digest = await pull_through.manifest(context.name, context.params["reference"])
    if digest is None:
        assert tag is not None  # _reference gives a digest or a tag
        digest = await repository.resolve_tag(tag)
    content = await repository.get_manifest(digest)
    digest, content, media_type = await _negotiate(repository, digest, content, _accepted(context.request))
    headers = {"Docker-Content-Digest": str(digest), "ETag": f'"{digest}"', "Content-Type": media_type}
    if context.request.headers.get("If-None-Match") in (headers["ETag"], str(digest)):
        return web.Response(status=304, headers=headers)
    if context.request.method == "GET":  # a HEAD is no pull
        await manifest_event(context, "pull", digest, media_type, len(content), tag or "")
    return web.Response(body=content, headers=headers)


async def _read_limited(context: RequestContext) -> bytes:
    limit = manifests.MAX_MANIFEST_BYTES
    too_large = RegistryError(errors.MANIFEST_TOO_LARGE, f"manifest is larger than {limit} bytes")
    length = context.request.content_length
    if length is not None and length > limit:
        raise too_large
    content = bytearray()
    async for chunk in context.body():
        content += chunk
        if len(content) > limit:
            raise too_large
    return bytes(content)


def _pushed_tags(context: RequestContext, tag: str | None) -> list[str]:
    """The tag a push names in its path, or the ``tag`` query parameters of a push by
    digest (as the spec's main branch has them), every one valid or none used."""
    requested = context.request.query.getall("tag", [])
    if tag is None:
        return list(dict.fromkeys(check_tag(requested_tag) for requested_tag in requested))
    if requested:
        raise RegistryError(errors.TAG_INVALID, "tag query parameters go with a push by digest", detail={"tag": tag})
    return [tag]


async def put(context: RequestContext) -> web.StreamResponse:
    digest, tag = _reference(context)
    tags = _pushed_tags(context, tag)
    content = await _read_limited(context)
    manifest = manifests.parse(content, context.request.headers.get("Content-Type"))
    actual = Digest.of(content, digest.algorithm if digest else "sha256")
    if digest is not None and actual != digest:
        raise RegistryError(
            errors.DIGEST_INVALID,
            "the manifest does not match the digest it was pushed to",
            detail={"expected": str(digest), "actual": str(actual)},
        )
    previous = await context.repository.put_manifest(content, manifest, actual, tags)
    user = context.identity.user
    audit("push", context.request, repository=context.name, reference=tag or str(actual), digest=actual, user=user)
    for moved, old in previous.items():
        if old != actual:
            audit("tag", context.request, repository=context.name, tag=moved, old=old, new=actual, user=user)
    for pushed in tags or [""]:  # written, tags included: now the push event
        await manifest_event(context, "push", actual, manifest.media_type, len(content), pushed, manifest)
    headers = CIMultiDict({"Location": f"/v2/{context.name}/manifests/{actual}", "Docker-Content-Digest": str(actual)})
    if manifest.subject is not None:
        headers["OCI-Subject"] = str(manifest.subject.digest)
    for pushed in tags:
        headers.add("OCI-Tag", pushed)
    return web.Response(status=201, headers=headers)


async def delete(context: RequestContext) -> web.StreamResponse:
    reference = context.params["reference"]
    await delete_reference(context.registry, context.name, reference, context.identity.user, context.request, context.request.app.get(EVENTS_KEY))
    return web.Response(status=202)
