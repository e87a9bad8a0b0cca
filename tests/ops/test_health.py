"""``/debug/health`` on ``--debug-addr``: registry:2's answer, with a storage root check."""

from __future__ import annotations

import time

import httpx

from tests.ops.conftest import debug_url


def wait_for(url: str, status: int) -> httpx.Response:
    """The first answer with ``status`` (checks run in the background, every 0.1s here)."""
    response = httpx.get(url, timeout=5)
    for _ in range(200):
        if response.status_code == status:
            return response
        time.sleep(0.05)
        response = httpx.get(url, timeout=5)
    return response


def test_health_follows_the_storage_root(start_server) -> None:
    server = start_server("--debug-addr", "127.0.0.1:0", "--storage-health-interval", "0.1")
    health = f"{debug_url(server)}/debug/health"
    ok = httpx.get(health, timeout=5)
    assert ok.status_code == 200
    assert ok.json() == {}

    moved = server.root.with_name("root-away")
    server.root.rename(moved)
    failing = wait_for(health, 503)
    assert failing.status_code == 503
    assert failing.headers["Content-Type"].startswith("application/json")
    assert "storagedriver_filesystem" in failing.json()

    server.root.write_bytes(b"not a directory")  # a file where the root was fails too
    assert wait_for(health, 503).json().keys() == {"storagedriver_filesystem"}

    server.root.unlink()
    moved.rename(server.root)
    back = wait_for(health, 200)
    assert (back.status_code, back.json()) == (200, {})


def test_threshold_counts_failures_in_a_row(start_server) -> None:
    server = start_server(
        "--debug-addr", "127.0.0.1:0", "--storage-health-interval", "0.1", "--storage-health-threshold", "3",
    )
    health = f"{debug_url(server)}/debug/health"
    server.root.rename(server.root.with_name("root-away"))
    assert wait_for(health, 503).status_code == 503
    log = server.log.read_text()
    assert "failed (3 in a row)" in log  # the first two failures did not make it 503


def test_no_storage_check_when_disabled(start_server) -> None:
    server = start_server("--debug-addr", "127.0.0.1:0", "--storage-health-interval", "0.1", "--no-storage-health")
    health = f"{debug_url(server)}/debug/health"
    server.root.rename(server.root.with_name("root-away"))
    time.sleep(0.5)
    assert httpx.get(health, timeout=5).status_code == 200
    assert "storage health check" not in server.log.read_text()


def test_debug_server_is_not_on_the_main_address(start_server) -> None:
    server = start_server("--debug-addr", "127.0.0.1:0")
    assert httpx.get(f"{server.url}/debug/health", timeout=5).status_code == 404
    assert httpx.get(f"{debug_url(server)}/metrics", timeout=5).status_code == 404  # no --metrics


def test_health_with_several_workers(start_server) -> None:
    server = start_server("--debug-addr", "127.0.0.1:0", "--workers", "2", "--storage-health-interval", "0.1")
    health = f"{debug_url(server)}/debug/health"
    assert all(httpx.get(health, headers={"Connection": "close"}, timeout=5).status_code == 200 for _ in range(6))
    server.root.rename(server.root.with_name("root-away"))
    time.sleep(0.5)
    assert all(wait_for(health, 503).status_code == 503 for _ in range(6))
