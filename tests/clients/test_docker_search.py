"""``docker search 127.0.0.1:PORT/term`` through a dockerd this module's fixture starts.

dockerd pings ``/v1/_ping`` (HTTPS first; 127.0.0.0/8 is an insecure registry, so then
plain HTTP) and asks ``/v1/search``: the names it prints are Dockyard's answer.
"""

from __future__ import annotations

import json

import httpx

from tests.support.clients import Dockerd
from tests.support.registry_client import OCI_CONFIG, OCI_MANIFEST, descriptor, push_blob, push_manifest
from tests.support.server import DockyardProcess


def push_repository(api: httpx.Client, name: str) -> None:
    """A small image (one config blob, no layers) tagged ``v1`` in ``name``."""
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    push_blob(api, name, config)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, config), "layers": []}
    push_manifest(api, name, "v1", json.dumps(manifest).encode(), OCI_MANIFEST)


def search(docker: Dockerd, dockyard: DockyardProcess, term: str, *options: str) -> list[str]:
    result = docker("search", "--no-trunc", "--format", "{{.Name}}", *options, f"{dockyard.host}/{term}")
    return sorted(line for line in result.stdout.splitlines() if line.strip())


def test_docker_search_lists_matching_repositories(docker: Dockerd, dockyard: DockyardProcess, api: httpx.Client) -> None:
    for name in ("dysearch/alpha", "tools/dysearch-beta", "dysearchgamma", "unrelated/delta"):
        push_repository(api, name)

    assert search(docker, dockyard, "dysearch") == ["dysearch/alpha", "dysearchgamma", "tools/dysearch-beta"]
    assert search(docker, dockyard, "DYSEARCH-b") == ["tools/dysearch-beta"]
    assert search(docker, dockyard, "dysearch", "--limit", "2") == ["dysearch/alpha", "dysearchgamma"]
    assert search(docker, dockyard, "no-such-dysearch-term") == []

    table = docker("search", "--no-trunc", f"{dockyard.host}/dysearch/alpha").stdout
    assert "dysearch/alpha" in table and "unrelated/delta" not in table
