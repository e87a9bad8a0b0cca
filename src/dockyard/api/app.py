"""The aiohttp application: the ``/v2/`` dispatcher, spec error bodies and common headers."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from dockyard import ui
from dockyard.api import compat, errors, repositories, routes
from dockyard.api.access import TOKEN_PATH, AccessController, needed_scopes
from dockyard.api.context import ACCESS_KEY, RequestContext
from dockyard.api.errors import PULL_THROUGH_MESSAGE, READ_ONLY_MESSAGE, RegistryError
from dockyard.api.forwarding import FORWARDING_KEY, path_prefix, public_base_url
from dockyard.app_keys import MIRRORS_KEY, REGISTRY_KEY, ROUTE_KEY
from dockyard.errors import DockyardError
from dockyard.forwarding import Forwarding
from dockyard.logs import USER_KEY
from dockyard.proxy.mirrors import Mirrors
from dockyard.reference import check_name
from dockyard.storage.registry import Registry
from dockyard.tls.trust import CA_URL_PATH

if TYPE_CHECKING:  # token auth alone builds one, with its jwt and cryptography
    from dockyard.api.token import TokenService

log = logging.getLogger("dockyard.api")

API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")

ResponseHook = Callable[[web.Request, web.StreamResponse], Awaitable[None]]

# What changes the registry; a read-only registry refuses these on every route.
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def error_response(error: RegistryError) -> web.Response:
    return web.Response(
        status=error.status,
        body=error.body(),
        content_type="application/json",
        headers=error.headers,
    )


async def dispatch(request: web.Request) -> web.StreamResponse:
    raw = routes.raw_path(request)
    under_v2 = raw == "/v2" or raw.startswith("/v2/")
    path = routes.decode_path(raw[len("/v2/"):])
    found = routes.match(path) if under_v2 else None
    if found is None:
        raise RegistryError(errors.NOT_FOUND, detail={"path": raw[:300]})
    route, params = found
    request[ROUTE_KEY] = route.name
    handler = route.methods.get(request.method)
    if handler is None:
        raise RegistryError(errors.METHOD_UNKNOWN, headers={"Allow": ", ".join(sorted(route.methods))})
    app = request.app  # a property: looked up once, not four times
    name = params.pop("name", "")
    if name:
        check_name(name)
    mirrors = app.get(MIRRORS_KEY)
    mirrored = mirrors.cache_for(name, request.query.get("ns")) if mirrors is not None and name else None
    # 405 UNSUPPORTED, as registry:2's proxy answers: no credentials would make the push go through.
    if request.method in WRITE_METHODS and mirrored is not None:
        raise RegistryError(errors.UNSUPPORTED, PULL_THROUGH_MESSAGE)
    if request.method in WRITE_METHODS and app[REGISTRY_KEY].read_only:
        raise RegistryError(errors.UNSUPPORTED, READ_ONLY_MESSAGE)
    # Access is to the name the client asked for (its token's scope names it); the repository is where it is stored.
    identity = await app[ACCESS_KEY].identify(request, needed_scopes(route.name, request.method, name))
    if identity.user:
        request[USER_KEY] = identity.user  # for the access log
    repository, cache = (mirrored.repository, mirrored.cache) if mirrored is not None else (name, None)
    return await handler(RequestContext(request, app[REGISTRY_KEY], identity, repository, params, cache))


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except RegistryError as error:
        return error_response(error)
    except DockyardError as failure:
        answer = errors.from_domain(failure)
        if answer.error is errors.UNKNOWN:
            log.exception("unexpected error during %s %s", request.method, request.path)
        return error_response(answer)
    except web.HTTPException:
        raise
    except (ConnectionResetError, OSError) as error:
        if request.transport is None or request.transport.is_closing():
            log.debug("client went away during %s %s: %s", request.method, request.path, error)
            raise
        log.exception("storage error during %s %s", request.method, request.path)
        return error_response(RegistryError(errors.UNKNOWN, "storage error"))
    except Exception:
        log.exception("unexpected error during %s %s", request.method, request.path)
        return error_response(RegistryError(errors.UNKNOWN))


def location_middleware(relative_urls: bool) -> Middleware:
    """The paths handlers send clients to (``/v2/...``) get ``http.prefix``; a ``Location`` also gets
    the client-facing scheme and host unless ``relative_urls`` (registry:2's ``http.relativeurls``).
    A ``Link`` (the next page) stays relative, as registry:2 writes it."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        prefix = path_prefix(request)
        location = response.headers.get("Location", "")
        if location.startswith("/") and not location.startswith("//"):
            response.headers["Location"] = ("" if relative_urls else public_base_url(request)) + prefix + location
        link = response.headers.get("Link", "")
        if link.startswith("</"):
            response.headers["Link"] = f"<{prefix}{link[1:]}"
        return response

    return middleware


async def _common_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault(*API_VERSION_HEADER)


def _configured_headers(headers: Mapping[str, Sequence[str]]) -> ResponseHook:
    """registry:2's ``http.headers``, on every answer, errors included. registry:2 adds them before its
    handler runs, so a header the handler sets replaces them: here a header already set is left alone."""

    async def add(request: web.Request, response: web.StreamResponse) -> None:
        for name, values in headers.items():
            if name not in response.headers:
                for value in values:
                    response.headers.add(name, value)

    return add


async def _close_registry(app: web.Application) -> None:
    if MIRRORS_KEY in app:
        await app[MIRRORS_KEY].close()
    await app[REGISTRY_KEY].close()


def create_app(
    registry: Registry,
    *,
    access: AccessController | None = None,
    token_service: TokenService | None = None,
    ca_certificate: bytes | None = None,
    forwarding: Forwarding | None = None,
    ui_session_key: bytes | None = None,
    headers: Mapping[str, Sequence[str]] | None = None,
    relative_urls: bool = True,
    mirrors: Mirrors | None = None,
) -> web.Application:
    """The registry's application; ``ca_certificate`` (PEM) is published for ``trust --fetch``;
    with ``ui_session_key`` (see :func:`dockyard.ui.session_key`) the web page is served at ``/``;
    ``headers`` are added to every answer; ``relative_urls`` false makes ``Location`` absolute;
    with ``mirrors``, what is not stored of their repositories is fetched from their upstreams."""
    forwarding = forwarding or Forwarding()  # trusted proxies, the public URL, the path prefix
    prefix = forwarding.prefix
    middlewares: list[Middleware] = [errors_middleware]
    if prefix or not relative_urls:
        middlewares.insert(0, location_middleware(relative_urls))
    app = web.Application(middlewares=middlewares, client_max_size=1 << 20)
    app[REGISTRY_KEY] = registry
    if mirrors is not None:
        app[MIRRORS_KEY] = mirrors
    app[ACCESS_KEY] = access or AccessController()
    app[FORWARDING_KEY] = forwarding
    if token_service is not None:
        app.router.add_get(prefix + TOKEN_PATH, token_service.get)
        app.router.add_post(prefix + TOKEN_PATH, token_service.post)
    if ca_certificate is not None:

        async def get_ca_certificate(request: web.Request) -> web.Response:
            return web.Response(body=ca_certificate, content_type="application/x-pem-file")

        app.router.add_get(CA_URL_PATH, get_ca_certificate)  # at the root: trust --fetch knows no prefix
    compat.add_routes(app.router, prefix)
    if ui_session_key is not None:
        ui.setup(app, prefix, ui_session_key)
    app.router.add_route("*", prefix + repositories.PATH + "{tail:.+}", repositories.handle)
    app.router.add_route("*", prefix + "/v2", dispatch)
    app.router.add_route("*", prefix + "/v2/{tail:.*}", dispatch)
    app.on_response_prepare.append(_common_headers)
    if headers:
        app.on_response_prepare.append(_configured_headers(headers))
    app.on_cleanup.append(_close_registry)
    return app
