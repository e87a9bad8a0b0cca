"""``/v2/``: the version check every client makes first."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.context import RequestContext


async def get(context: RequestContext) -> web.StreamResponse:
    return web.json_response({})
