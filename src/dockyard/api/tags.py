"""``/v2/<name>/tags/list``: a repository's tags, sorted and paginated."""

from __future__ import annotations

from aiohttp import web

from dockyard.api import errors
from dockyard.api.context import RequestContext
from dockyard.api.errors import RegistryError
from dockyard.api.pagination import list_response, page


async def get(context: RequestContext) -> web.StreamResponse:
    repository = context.repository
    if not await repository.exists():
        raise RegistryError(errors.NAME_UNKNOWN, detail={"name": context.name})
    tags, headers = page(
        await repository.tags(),
        context.query("n"),
        context.query("last"),
        f"/v2/{context.name}/tags/list",
        context.registry.tags_max_entries,
    )
    return list_response("tags", tags, headers, name=context.name)
