"""The web page: browse repositories, tags and manifests, see storage use, delete with confirmation.

Served by the registry's own application at ``/`` (under ``http.prefix``), rendered on
the server from ``templates/`` with the files in ``static/``; the same users, access
policy and storage layer as the API.
"""

from __future__ import annotations

import datetime
import pathlib

import jinja2
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from dockyard.sizes import human_size
from dockyard.ui import format as formats
from dockyard.ui import robots, views
from dockyard.ui.browse import Browser
from dockyard.ui.events_page import events_page
from dockyard.ui.pagination import page_numbers
from dockyard.ui.sessions import SessionSigner, session_key
from dockyard.ui.summaries import Summaries

__all__ = ["session_key", "setup"]

_HERE = pathlib.Path(__file__).parent


def _templates() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("dockyard.ui", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters.update({
        "size": human_size,
        "count": "{:,}".format,
        "short": formats.short_digest,
        "kind": lambda media_type: views.MEDIA_TYPE_LABELS.get(media_type, media_type),
        "command_line": formats.command_line,
    })
    environment.globals.update({
        "ago": lambda value: formats.relative_time(formats.as_datetime(value), datetime.datetime.now(datetime.UTC)),
        "moment": lambda value: formats.absolute_time(formats.as_datetime(value)),
        "page_numbers": page_numbers,
        "cosign_subject": formats.cosign_subject,
    })
    return environment


async def _to_front_page(request: web.Request) -> web.Response:
    return web.Response(status=302, headers={"Location": "/"})  # the prefix middleware adds the prefix


def _friendly_not_found(pages: str) -> Middleware:
    """A page for an address under ``pages`` that no route serves, instead of aiohttp's plain text
    (a middleware, not a catch-all route: routes added later for new pages stay reachable)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPNotFound:
            if request.method != "GET" or not request.path.startswith(pages):
                raise
            return await views.not_found(request)

    return middleware


def setup(app: web.Application, prefix: str, key: bytes) -> None:
    """Serve the web page on ``app`` under ``prefix``; ``key`` signs session cookies (see :func:`session_key`)."""
    app[views.UI_KEY] = views.Ui(SessionSigner(key), Browser(Summaries()), _templates())
    router = app.router
    if prefix:
        router.add_get(prefix, _to_front_page)
    router.add_get(prefix + "/", views.repositories)
    router.add_get(prefix + "/ui/storage", views.storage)
    router.add_get(prefix + "/ui/events", events_page)
    router.add_get(prefix + "/ui/login", views.login_form)
    router.add_post(prefix + "/ui/login", views.login)
    router.add_post(prefix + "/ui/logout", views.logout)
    router.add_get(prefix + "/ui/robots", robots.robots_page)
    router.add_post(prefix + "/ui/robots", robots.add_robot)
    router.add_post(prefix + "/ui/robots/{name}/remove", robots.remove_robot)
    router.add_get(prefix + "/ui/r/{tail:.+}", views.repository_pages)
    router.add_post(prefix + "/ui/r/{tail:.+}", views.delete)
    router.add_static(prefix + "/ui/static", _HERE / "static", append_version=False)
    app.middlewares.append(_friendly_not_found(prefix + "/ui/"))
