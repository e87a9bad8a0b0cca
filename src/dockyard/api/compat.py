"""Docker's older endpoints, outside ``/v2/``: the v1 ping and ``docker search``.

``docker search HOST/term`` pings ``/v1/_ping`` (HTTPS first, then plain HTTP for an
insecure registry), then asks ``/v1/search?q=term&n=limit``. The answer is the v1
search document: ``query``, ``num_results``, ``num_pages``, ``page``, ``page_size``
and ``results``, each result a ``name`` with Docker Hub's fixed fields (no
descriptions, stars or official images here). Search goes through the same access
check as ``/v2/_catalog`` and shows only the repositories the caller may pull.
"""

from __future__ import annotations

import math

from aiohttp import web

from dockyard.api import errors
from dockyard.api.context import ACCESS_KEY
from dockyard.api.errors import RegistryError
from dockyard.app_keys import REGISTRY_KEY
from dockyard.auth import scopes
from dockyard.storage import catalog

SEARCH_PATH = "/v1/search"
PING_PATHS = ("/_ping", "/v1/_ping")
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100


async def ping(request: web.Request) -> web.Response:
    """Unauthenticated, and saying nothing about the server: just that it is there."""
    return web.json_response({})


def _number(text: str | None, default: int, key: str) -> int:
    """A positive decimal query parameter, ``default`` when absent or empty."""
    if text is None or text == "":
        return default
    invalid = RegistryError(
        errors.PAGINATION_NUMBER_INVALID, f"{key} must be a positive integer", detail={key: text[:50]}
    )
    if not (text.isascii() and text.isdigit()):
        raise invalid
    try:
        value = int(text)
    except ValueError:  # more digits than Python parses
        raise invalid from None
    if value < 1:
        raise invalid
    return value


def _result(name: str) -> dict[str, object]:
    return {
        "name": name,
        "description": "",
        "star_count": 0,
        "is_official": False,
        "is_automated": False,
        "is_trusted": False,
    }


async def search(request: web.Request) -> web.Response:
    query = request.query.get("q", "")
    size = min(_number(request.query.get("n"), DEFAULT_PAGE_SIZE, "n"), MAX_PAGE_SIZE)
    number = _number(request.query.get("page"), 1, "page")
    identity = await request.app[ACCESS_KEY].identify(request, [scopes.CATALOG])
    term = query.casefold()
    allowed = identity.catalog_filter()

    def visible(name: str) -> bool:
        return term in name.casefold() and (allowed is None or allowed(name))

    names = await catalog.walk(request.app[REGISTRY_KEY].driver, "", None, visible)
    start = (number - 1) * size
    return web.json_response({
        "query": query,
        "num_results": len(names),
        "num_pages": math.ceil(len(names) / size),
        "page": number,
        "page_size": size,
        "results": [_result(name) for name in names[start:start + size]],
    })


def add_routes(router: web.UrlDispatcher, prefix: str = "") -> None:
    for path in PING_PATHS:
        router.add_get(prefix + path, ping)
    router.add_get(prefix + SEARCH_PATH, search)
