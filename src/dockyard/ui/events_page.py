"""The events page: each endpoint's backlog, who delivers it, and its recent deliveries and failures."""

from __future__ import annotations

from aiohttp import web

from dockyard.app_keys import REGISTRY_KEY
from dockyard.concurrency import gather_bounded
from dockyard.events import EVENTS_KEY
from dockyard.events.delivery import endpoint_status
from dockyard.ui.views import Refused, Visitor, page, render


@page
async def events_page(request: web.Request, who: Visitor) -> web.StreamResponse:
    # Who may list every repository (an admin) may see what is told of them.
    if not who.identity.may_list_catalog():
        raise Refused(403, "You may not see this registry's events.")
    notifier = request.app.get(EVENTS_KEY)
    driver = request.app[REGISTRY_KEY].driver
    endpoints = notifier.endpoints if notifier is not None else ()
    statuses = await gather_bounded(list(endpoints), lambda endpoint: endpoint_status(driver, endpoint))
    return render(request, who, "events.html", title="Events", section="events", endpoints=statuses)
