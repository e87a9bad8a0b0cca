"""``/v2/<name>/tags/list``: a repository's tags, sorted and paginated."""

from __future__ import annotations

import logging

from aiohttp import web

from dockyard.api import errors
from dockyard.api.context import RequestContext
from dockyard.api.errors import RegistryError
from dockyard.api.pagination import link_to, list_response, page, page_size
from dockyard.errors import UpstreamRateLimited, UpstreamUnavailable

log = logging.getLogger("dockyard.api")


async def get(context: RequestContext) -> web.StreamResponse:
    path = f"/v2/{context.name}/tags/list"
    n, last = context.query("n"), context.query("last")
    if (pull_through := context.pull_through) is not None:
        # As registry:2 does: the upstream's tags, and the cached ones only when it cannot say.
        page_size(n, context.registry.tags_max_entries)  # an invalid n is refused here, not sent on
        query = {key: value for key, value in (("n", n), ("last", last)) if value is not None}
        try:
            upstream_page = await pull_through.tags(context.name, query)
        except (UpstreamUnavailable, UpstreamRateLimited) as failure:
            if not await context.repository.exists():
                raise  # nothing cached: unavailable, not unknown
            log.warning("listing the cached tags of %s: %s", context.name, failure)
        else:
            if upstream_page is None:
                raise RegistryError(errors.NAME_UNKNOWN, detail={"name": context.name})
            headers = link_to(path, upstream_page.next_query) if upstream_page.next_query else {}
            return list_response("tags", upstream_page.tags, headers, name=context.name)
    repository = context.repository
    try:
        size = page_size(n, context.registry.tags_max_entries)
    except RegistryError:
        await _known(context)  # an unknown repository is that first, as registry:2 answers
        raise
    # One tag past the page tells whether a next page exists; the listing stops there. The
    # repository is looked for only when nothing is listed: one storage call for most lists.
    after = await repository.tags(last or "", size + 1)
    if not after:
        await _known(context)
    tags, headers = page(after, n, last, path, context.registry.tags_max_entries)
    return list_response("tags", tags, headers, name=context.name)


async def _known(context: RequestContext) -> None:
    """Raises NAME_UNKNOWN when the repository is not stored."""
    if not await context.repository.exists():
        raise RegistryError(errors.NAME_UNKNOWN, detail={"name": context.name})
