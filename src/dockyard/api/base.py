"""``/v2/``: the version check every client makes first."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.context import RequestContext

# The answer's body, encoded once: what ``web.json_response({})`` would encode on every check.
_EMPTY_OBJECT = b"{}"


async def get(context: RequestContext) -> web.StreamResponse:
    return web.Response(body=_EMPTY_OBJECT, content_type="application/json", charset="utf-8")
