"""``/v2/_catalog``: every repository, sorted and paginated."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.context import RequestContext
from dockyard.api.pagination import page

# registry:2's default for catalog.maxentries.
MAX_ENTRIES = 1000


async def get(context: RequestContext) -> web.StreamResponse:
    names = await context.registry.catalog()
    visible = context.identity.catalog_filter()
    if visible is not None:
        names = [name for name in names if visible(name)]
    repositories, headers = page(
        names,
        context.query("n"),
        context.query("last"),
        "/v2/_catalog",
        MAX_ENTRIES,
    )
    return web.json_response({"repositories": repositories}, headers=headers)
