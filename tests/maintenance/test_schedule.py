"""The server's scheduled maintenance: garbage collection and upload purging, two workers; a job that catches up."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time

import httpx
import pytest
from aiohttp import web

from dockyard.app_keys import REGISTRY_KEY
from dockyard.maintenance import schedule
from dockyard.storage.inmemory import InMemoryDriver
from dockyard.storage.registry import Registry
from tests.maintenance.pushing import push_image
from tests.support.registry_client import sha256


def _eventually(check, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_server_collects_and_purges_on_its_intervals(start_server, tmp_path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "storage:\n"
        "  filesystem: {rootdirectory: ./unused}\n"
        "  delete: {enabled: true}\n"
        "  maintenance:\n"
        "    uploadpurging: {enabled: true, age: 1s, interval: 300ms}\n"
        "dockyard:\n"
        "  gc: {interval: 300ms, grace_period: 2s, delete_untagged: true}\n"
    )
    server = start_server("--config", str(config), "--workers", "2")

    async def push() -> tuple[str, str]:
        async with httpx.AsyncClient(base_url=server.url) as client:
            kept = await push_image(client, "app", "kept", b"kept layer", random.Random(1), [b"a", b"b"])
            dropped = await push_image(client, "app", "dropped", b"dropped layer", random.Random(2), [b"a", b"b"])
            assert kept is not None and dropped is not None
            assert (await client.delete(f"/v2/app/manifests/{dropped.digest}")).status_code == 202
            started = await client.post("/v2/app/blobs/uploads/")
            return started.headers["Location"], dropped.digest

    upload, dropped = asyncio.run(push())
    assert _eventually(lambda: httpx.head(f"{server.url}/v2/app/blobs/{sha256(b'dropped layer')}").status_code == 404)
    assert _eventually(lambda: httpx.get(httpx.URL(server.url).join(upload)).status_code == 404)  # absolute with a config file
    kept = httpx.get(f"{server.url}/v2/app/blobs/{sha256(b'kept layer')}")
    assert kept.status_code == 200 and kept.content == b"kept layer"
    assert "garbage collection:" in server._tail()


async def test_a_catching_up_job_runs_at_start_once_per_interval_across_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    # The last run's time is in storage: a restart neither forgets it (running again) nor waits a whole interval.
    monkeypatch.setattr(schedule, "CATCH_UP_CHECK_SECONDS", 0.05)
    app = web.Application()
    app[REGISTRY_KEY] = Registry(InMemoryDriver())
    runs: list[str] = []

    async def work(name: str) -> None:
        runs.append(name)

    jobs = (
        schedule.Job("synced", "/stamps/synced", 3600.0, functools.partial(work, "synced"), catch_up=True),
        schedule.Job("collected", "/stamps/collected", 3600.0, functools.partial(work, "collected")),
    )
    for _ in range(3):  # a start and two restarts
        context = schedule.scheduled_maintenance(schedule.Schedule(more=jobs))(app)
        await anext(context)
        await asyncio.sleep(0.5)
        with contextlib.suppress(StopAsyncIteration):
            await anext(context)
    assert runs == ["synced"]
