"""Open access (no authentication configured): who a request is, without work per request."""

from __future__ import annotations

from aiohttp.test_utils import make_mocked_request

from dockyard.api.access import AccessController
from dockyard.auth import scopes


async def test_every_request_is_the_same_anonymous_identity():
    access = AccessController()
    push = [scopes.repository("library/app", "pull", "push")]
    first = await access.identify(make_mocked_request("GET", "/v2/"), [])
    second = await access.identify(make_mocked_request("PUT", "/v2/library/app/manifests/v1", headers={"Authorization": "Basic Og=="}), push)
    assert first is second
    assert first.user is None
    assert first.may("push", "library/app") and first.may_list_catalog()
