"""Dockyard's own API for scripts, beside ``/v2/``: ``DELETE /dockyard/v1/repositories/<name>``.

Deletes a whole repository (:func:`dockyard.deletes.delete_repository`), which the
distribution spec has no request for. It is checked as a manifest delete is: the access
policy's ``delete`` on the name, with Basic or Bearer credentials (a token's scope
``repository:<name>:delete``); errors are the spec's JSON bodies. A repository holding
immutable tags is refused (403 ``DENIED``) unless an admin adds ``?force=true``. The answer
is 200 with what went: ``{"name", "tags", "manifests", "uploads_cancelled"}``.
"""

from __future__ import annotations

from aiohttp import web

from dockyard.api import errors, routes
from dockyard.api.context import ACCESS_KEY
from dockyard.api.errors import PULL_THROUGH_MESSAGE, READ_ONLY_MESSAGE, RegistryError
from dockyard.app_keys import MIRRORS_KEY, REGISTRY_KEY
from dockyard.auth import scopes
from dockyard.deletes import delete_repository
from dockyard.events import EVENTS_KEY
from dockyard.reference import check_name

PATH = "/dockyard/v1/repositories/"
FORCE_VALUES = ("1", "true")


async def handle(request: web.Request) -> web.StreamResponse:
    if request.method != "DELETE":
        raise RegistryError(errors.METHOD_UNKNOWN, headers={"Allow": "DELETE"})
    name = routes.decode_path(routes.raw_path(request).removeprefix(PATH))
    check_name(name)
    registry = request.app[REGISTRY_KEY]
    mirrors = request.app.get(MIRRORS_KEY)
    if mirrors is not None and mirrors.cache_for(name) is not None:
        raise RegistryError(errors.UNSUPPORTED, PULL_THROUGH_MESSAGE)
    if registry.read_only:
        raise RegistryError(errors.UNSUPPORTED, READ_ONLY_MESSAGE)
    identity = await request.app[ACCESS_KEY].identify(request, [scopes.repository(name, "delete")])
    force = request.query.get("force", "").lower() in FORCE_VALUES
    if force and not identity.is_admin():
        raise RegistryError(errors.DENIED, "only an admin may force a repository delete", detail={"name": name})
    deleted = await delete_repository(registry, name, identity.user, request, request.app.get(EVENTS_KEY), force)
    return web.json_response(
        {"name": name, "tags": deleted.tags, "manifests": deleted.manifests, "uploads_cancelled": deleted.uploads},
    )
