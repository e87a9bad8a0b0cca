"""What the pull-through cache tells of its work: its metrics on the debug server (hits, misses,
the upstream's bytes and failures) and an audit line per upstream fetch, read after real pulls."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable

import httpx
import pytest
from aiohttp import web

from tests.ops.conftest import debug_url
from tests.ops.test_metrics import samples, value
from tests.proxy_cache.test_pull_through import BLOB_DIGEST, corrupt_upstream, mirror_config, pusher, upstream
from tests.support.registry_client import OCI_MANIFEST, push_image, sha256
from tests.support.server import DockyardProcess

pytestmark = pytest.mark.slow

StartServer = Callable[..., DockyardProcess]
__all__ = ["pusher", "upstream"]  # fixtures


def observed_mirror(start_server: StartServer, tmp_path: pathlib.Path, remote_url: str) -> DockyardProcess:
    """A mirror with metrics on its debug server and JSON logs."""
    config = mirror_config(tmp_path, remote_url)
    return start_server("--config", str(config), "--debug-addr", "127.0.0.1:0", "--metrics", "--log-format", "json", root="mirror")


def proxy_audits(server: DockyardProcess) -> list[dict]:
    lines = [line for line in server.log.read_text(errors="replace").splitlines() if line.startswith("{")]
    entries = [json.loads(line) for line in lines]
    return [entry["audit"] for entry in entries if entry["logger"] == "dockyard.audit" and entry["audit"]["event"] == "proxy_fetch"]


def test_hits_misses_bytes_errors_and_audit_after_pulls(
    upstream: DockyardProcess, pusher: Callable[[str], httpx.Client], start_server: StartServer, tmp_path: pathlib.Path,
) -> None:
    layer = b"layer of the mirrored image " * 4096
    digest, manifest = push_image(pusher("team/app"), "team/app", "v1", layer)
    config_digest = json.loads(manifest)["config"]["digest"]
    mirror = observed_mirror(start_server, tmp_path, upstream.url)
    metrics = f"{debug_url(mirror)}/metrics"

    with httpx.Client(base_url=mirror.url, timeout=60, headers={"Accept": OCI_MANIFEST}) as client:
        for _ in range(3):
            assert client.get("/v2/team/app/manifests/v1").status_code == 200
            assert client.get(f"/v2/team/app/manifests/{digest}").status_code == 200
            for blob in (sha256(layer), config_digest):
                assert client.get(f"/v2/team/app/blobs/{blob}").status_code == 200
                assert client.head(f"/v2/team/app/blobs/{blob}").status_code == 200  # a HEAD is not a pull
        found = samples(metrics)
        # The first pull of the tag fetched the manifest; every other manifest pull and the blobs' later pulls are hits.
        assert value(found, "dockyard_proxy_misses_total", kind="manifest") == 1
        assert value(found, "dockyard_proxy_hits_total", kind="manifest") == 5
        assert value(found, "dockyard_proxy_misses_total", kind="blob") == 2
        assert value(found, "dockyard_proxy_hits_total", kind="blob") == 4
        config_size = int(client.head(f"/v2/team/app/blobs/{config_digest}").headers["Content-Length"])
        assert value(found, "dockyard_proxy_upstream_bytes_total", kind="manifest") == len(manifest)
        assert value(found, "dockyard_proxy_upstream_bytes_total", kind="blob") == len(layer) + config_size
        assert not [name for name, _ in found if name == "dockyard_proxy_upstream_errors_total"]

        fetched = proxy_audits(mirror)
        assert sorted((entry["kind"], entry["reference"], entry.get("failed")) for entry in fetched) == sorted([
            ("manifest", "v1", None), ("blob", sha256(layer), None), ("blob", config_digest, None),
        ])
        assert all(entry["upstream"] == upstream.url and entry["repository"] == "team/app" for entry in fetched)
        assert {entry["digest"]: int(entry["size"]) for entry in fetched} == {
            digest: len(manifest), sha256(layer): len(layer), config_digest: config_size,
        }

        upstream.stop()
        assert client.get("/v2/team/app/manifests/v2").status_code == 503
        assert client.get(f"/v2/team/app/blobs/{BLOB_DIGEST}").status_code == 503
        found = samples(metrics)
        assert value(found, "dockyard_proxy_upstream_errors_total", kind="manifest", reason="unreachable") == 1
        assert value(found, "dockyard_proxy_upstream_errors_total", kind="blob", reason="unreachable") == 1
        assert value(found, "dockyard_proxy_misses_total", kind="manifest") == 2
        assert value(found, "dockyard_proxy_misses_total", kind="blob") == 3
        assert [(entry["kind"], entry["failed"]) for entry in proxy_audits(mirror) if "failed" in entry] == [("blob", "unreachable")]


@pytest.mark.parametrize(("kind", "reason"), [("wrong bytes", "digest_mismatch"), ("cut short", "broken")])
async def test_a_corrupt_upstream_blob_is_counted_and_audited(
    kind: str, reason: str, start_server: StartServer, tmp_path: pathlib.Path,
) -> None:
    runner = web.AppRunner(corrupt_upstream(kind))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        mirror = observed_mirror(start_server, tmp_path, f"http://127.0.0.1:{runner.addresses[0][1]}")
        async with httpx.AsyncClient(base_url=mirror.url, timeout=60) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get(f"/v2/team/app/blobs/{BLOB_DIGEST}")
        found = samples(f"{debug_url(mirror)}/metrics")
        assert value(found, "dockyard_proxy_upstream_errors_total", kind="blob", reason=reason) == 1
        assert [(entry["reference"], entry["failed"]) for entry in proxy_audits(mirror)] == [(BLOB_DIGEST, reason)]
    finally:
        await runner.cleanup()
