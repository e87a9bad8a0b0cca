"""``/v2/<name>/referrers/<digest>``: the manifests whose ``subject`` is a digest."""

from __future__ import annotations

import json

from aiohttp import web

from dockyard import manifest as manifests
from dockyard.api.context import RequestContext
from dockyard.reference import parse_digest


async def get(context: RequestContext) -> web.StreamResponse:
    subject = parse_digest(context.params["digest"])
    # No 404 for a repository never pushed to: a registry that supports the API must
    # answer it with an empty index (clients fall back to the tag schema on a 404).
    found = await context.repository.referrers(subject)
    headers = {}
    artifact_type = context.query("artifactType")
    if artifact_type is not None:
        found = [descriptor for descriptor in found if descriptor.artifact_type == artifact_type]
        headers["OCI-Filters-Applied"] = "artifactType"
    index = {
        "schemaVersion": 2,
        "mediaType": manifests.OCI_INDEX,
        "manifests": [descriptor.to_json() for descriptor in found],
    }
    # The spec's exact media type, without the "; charset=utf-8" json_response would add.
    headers["Content-Type"] = manifests.OCI_INDEX
    return web.Response(body=json.dumps(index).encode(), headers=headers)
