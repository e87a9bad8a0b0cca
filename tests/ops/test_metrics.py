"""Prometheus metrics on the debug server (``--metrics``), after a push and pulls."""

from __future__ import annotations

import json

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.ops.conftest import debug_url
from tests.support.registry_client import OCI_MANIFEST, sha256


def samples(url: str) -> dict[tuple[str, frozenset], float]:
    response = httpx.get(url, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def push(client: httpx.Client, name: str, layer: bytes) -> bytes:
    config = b"{}"
    for blob in (layer, config):
        assert client.post(f"/v2/{name}/blobs/uploads/", params={"digest": sha256(blob)}, content=blob).status_code == 201
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(layer), "size": len(layer)}],
    }).encode()
    response = client.put(f"/v2/{name}/manifests/v1", content=manifest, headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 201, response.text
    return manifest


@pytest.mark.parametrize("workers", ["1", "2"])
def test_counters_after_a_push_and_pulls(start_server, workers: str) -> None:
    server = start_server("--debug-addr", "127.0.0.1:0", "--metrics", "--workers", workers)
    metrics = f"{debug_url(server)}/metrics"
    before = samples(metrics)
    layer = b"layer bytes " * 1000
    with httpx.Client(base_url=server.url, headers={"Connection": "close"}, timeout=30) as client:
        push(client, "team/app", layer)
        for _ in range(3):
            assert client.get("/v2/team/app/manifests/v1", headers={"Accept": OCI_MANIFEST}).status_code == 200
            pulled = client.get(f"/v2/team/app/blobs/{sha256(layer)}")
            assert (pulled.status_code, pulled.content) == (200, layer)
        assert client.get("/v2/team/app/manifests/missing").status_code == 404
    after = samples(metrics)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("dockyard_http_requests_total", route="manifest", method="GET", status="200") == 3
    assert delta("dockyard_http_requests_total", route="manifest", method="GET", status="404") == 1
    assert delta("dockyard_http_requests_total", route="manifest", method="PUT", status="201") == 1
    assert delta("dockyard_http_requests_total", route="blob", method="GET", status="200") == 3
    assert delta("dockyard_http_requests_total", route="upload-start", method="POST", status="201") == 2
    assert delta("dockyard_http_request_duration_seconds_count", route="blob") == 3
    assert delta("dockyard_http_request_bytes_total", route="upload-start") == len(layer) + 2
    assert delta("dockyard_http_response_bytes_total", route="blob") >= 3 * len(layer)
    assert value(after, "dockyard_uploads_in_progress") == 0
    assert delta("dockyard_auth_failures_total", reason="invalid_credentials") == 0


def test_auth_failures_are_counted(start_server, tmp_path) -> None:
    import bcrypt

    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"alice:{bcrypt.hashpw(b'secret', bcrypt.gensalt(rounds=4)).decode()}\n")
    server = start_server("--debug-addr", "127.0.0.1:0", "--metrics", "--htpasswd", str(htpasswd))
    metrics = f"{debug_url(server)}/metrics"
    before = value(samples(metrics), "dockyard_http_requests_total", route="base", method="GET", status="401")
    assert httpx.get(f"{server.url}/v2/", timeout=5).status_code == 401  # the challenge: no failure
    assert httpx.get(f"{server.url}/v2/", auth=("alice", "wrong"), timeout=5).status_code == 401
    assert httpx.get(f"{server.url}/v2/", auth=("alice", "secret"), timeout=5).status_code == 200
    found = samples(metrics)
    assert value(found, "dockyard_auth_failures_total", reason="invalid_credentials") == 1
    assert value(found, "dockyard_http_requests_total", route="base", method="GET", status="401") == before + 2


def test_storage_errors_are_counted(start_server) -> None:
    server = start_server("--debug-addr", "127.0.0.1:0", "--metrics", "--storage-health-interval", "0.1")
    metrics = f"{debug_url(server)}/metrics"
    server.root.rename(server.root.with_name("root-away"))
    server.root.write_bytes(b"")  # a file where the root directory was: every write fails
    response = httpx.post(f"{server.url}/v2/x/blobs/uploads/", params={"digest": sha256(b"a")}, content=b"a", timeout=5)
    assert response.status_code == 500
    for _ in range(100):
        found = samples(metrics)
        if value(found, "dockyard_storage_errors_total", source="health") > 0:
            break
    assert value(found, "dockyard_storage_errors_total", source="request") >= 1
    assert value(found, "dockyard_storage_errors_total", source="health") >= 1


def test_metrics_path_and_need_for_debug_addr(start_server, tmp_path) -> None:
    server = start_server("--debug-addr", "127.0.0.1:0", "--metrics", "--metrics-path", "/prom")
    assert httpx.get(f"{debug_url(server)}/prom", timeout=5).status_code == 200
    assert httpx.get(f"{debug_url(server)}/metrics", timeout=5).status_code == 404
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "dockyard", "serve", "--insecure-http", "--addr", "127.0.0.1:0", "--root", str(tmp_path / "r2"), "--metrics"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "--debug-addr" in result.stderr
