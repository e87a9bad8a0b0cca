"""The API's routes, written down as data: a path pattern under ``/v2/`` and a handler per method.

Patterns are tried in order against the percent-decoded path after ``/v2/``; ``name``
is then checked against the spec grammar, so a bad name is ``NAME_INVALID`` rather
than an unknown route. ``HEAD`` is served by the ``GET`` handler (aiohttp drops the body).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web

from dockyard.api import base, blobs, catalog, manifests, referrers, tags, uploads
from dockyard.api.context import RequestContext
from dockyard.api.forwarding import path_prefix
from dockyard.memo import remembered

Handler = Callable[[RequestContext], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    name: str
    pattern: re.Pattern[str]
    methods: Mapping[str, Handler]


def _route(name: str, pattern: str, **methods: Handler) -> Route:
    if "GET" in methods:
        methods.setdefault("HEAD", methods["GET"])
    return Route(name, re.compile(pattern, re.DOTALL), methods)


ROUTES: tuple[Route, ...] = (
    _route("base", r"", GET=base.get),
    _route("catalog", r"_catalog", GET=catalog.get),
    _route("tags", r"(?P<name>.+)/tags/list", GET=tags.get),
    _route("manifest", r"(?P<name>.+)/manifests/(?P<reference>[^/]+)",
           GET=manifests.get, PUT=manifests.put, DELETE=manifests.delete),
    _route("upload-start", r"(?P<name>.+)/blobs/uploads/?", POST=uploads.start),
    _route("upload", r"(?P<name>.+)/blobs/uploads/(?P<uuid>[^/]+)",
           GET=uploads.status, PATCH=uploads.patch, PUT=uploads.finish, DELETE=uploads.cancel),
    _route("blob", r"(?P<name>.+)/blobs/(?P<digest>[^/]+)", GET=blobs.get, DELETE=blobs.delete),
    _route("referrers", r"(?P<name>.+)/referrers/(?P<digest>[^/]+)", GET=referrers.get),
)


_ENCODED_SLASH = re.compile("%2f", re.IGNORECASE)
# The paths matched last are remembered (clients ask for the same manifests and tags again and
# again): trying the patterns in turn costs more than the rest of a small request's routing.
PATHS_KEPT = 1024
PATH_KEPT_MAX = 512


def raw_path(request: web.Request) -> str:
    """The request's path as sent, without ``http.prefix`` or the query."""
    return request.raw_path.split("?", 1)[0].removeprefix(path_prefix(request))


def decode_path(raw: str) -> str:
    """A raw path (as sent: aiohttp's own path has had ``..`` folded away, which would let
    ``a/../b`` reach another repository silently) decoded once. An encoded slash must not become a
    separator (``manifests/a%2Fb`` would name another repository): it decodes to NUL, which no
    name, tag or digest accepts."""
    if "%" not in raw:
        return raw
    return unquote(_ENCODED_SLASH.sub("%00", raw))


def match(path: str) -> tuple[Route, dict[str, str]] | None:
    """The route for a decoded path below ``/v2/``, and its parameters."""
    found = _matched(path)
    return None if found is None else (found[0], dict(found[1]))


@remembered(PATHS_KEPT, PATH_KEPT_MAX)
def _matched(path: str) -> tuple[Route, tuple[tuple[str, str], ...]] | None:
    for route in ROUTES:
        found = route.pattern.fullmatch(path)
        if found is not None:
            return route, tuple((key, value) for key, value in found.groupdict().items() if value is not None)
    return None
