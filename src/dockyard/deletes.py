"""Deleting a tag, a manifest or a whole repository, wherever it is asked for (the API, the web
page, the command line): the same checks, the same change, the same audit record."""

from __future__ import annotations

from aiohttp import web

from dockyard.errors import ManifestUnknown
from dockyard.events import Notifier
from dockyard.logs import audit
from dockyard.reference import Digest, check_tag, is_digest, parse_digest
from dockyard.storage.registry import DeletedRepository, Registry
from dockyard.storage.repository import Repository


async def delete_reference(
    registry: Registry, name: str, reference: str, user: str | None, request: web.BaseRequest | None, notifier: Notifier | None,
) -> None:
    """Untag ``reference`` (a tag), or delete the manifest (a digest) with every tag naming it;
    ``request`` is the client's, for the audit record and the event (to ``notifier``'s outbox)."""
    registry.require_deletes()
    repository = registry.repository(name)
    if is_digest(reference):
        digest = parse_digest(reference)
        await repository.delete_manifest(digest)
        audit("delete_manifest", request, repository=name, digest=digest, user=user)
        if notifier is not None:
            await notifier.deleted(name, request, user or "", digest=str(digest))
        return
    tag = check_tag(reference)
    previous = await _tagged(repository, tag)
    await repository.untag(tag)
    audit("delete_tag", request, repository=name, tag=tag, digest=previous, user=user)
    if notifier is not None:
        await notifier.deleted(name, request, user or "", tag=tag)


async def _tagged(repository: Repository, tag: str) -> Digest | None:
    """What ``tag`` points to now, for the audit record (``None``: nothing)."""
    try:
        return await repository.resolve_tag(tag)
    except ManifestUnknown:
        return None


async def delete_repository(
    registry: Registry, name: str, user: str | None, request: web.BaseRequest | None, notifier: Notifier | None, force: bool = False,
) -> DeletedRepository:
    """Delete the repository ``name`` (see :meth:`Registry.delete_repository`); ``force`` (an admin's
    choice, checked by the caller) deletes it even when it holds immutable tags. Its event goes to
    ``notifier``'s outbox (the server's, or a command's that the server delivers)."""
    registry.require_deletes()
    deleted = await registry.delete_repository(name, force)
    audit(
        "delete_repository", request, repository=name, tags=len(deleted.tags), manifests=deleted.manifests,
        uploads_cancelled=deleted.uploads, forced=force, user=user,
    )
    if notifier is not None:
        await notifier.deleted(name, request, user or "")
    return deleted
