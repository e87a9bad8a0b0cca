"""``/v2/_catalog``: every repository, sorted and paginated."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.context import RequestContext
from dockyard.api.pagination import list_response, next_link, page_size
from dockyard.storage import catalog


async def get(context: RequestContext) -> web.StreamResponse:
    count = page_size(context.query("n"), context.registry.catalog_max_entries)
    # One name past the page tells whether a next page exists; the walk stops there.
    names = await catalog.walk(
        context.registry.driver, context.query("last") or "", count + 1, context.identity.catalog_filter()
    )
    headers: dict[str, str] = {}
    if len(names) > count:
        names = names[:count]
        if names:
            headers = next_link("/v2/_catalog", count, names[-1])
    return list_response("repositories", names, headers)
