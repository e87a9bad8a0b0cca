"""The debug server: ``/debug/health`` and, when enabled, Prometheus metrics.

It is a second, small aiohttp application on ``http.debug.addr`` (``--debug-addr``),
served by the same event loop as the registry. With several workers the parent binds
its socket once, like the registry's, and every worker serves it: any of them can
answer, since the health check looks at shared storage and metrics are summed across
workers (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from dockyard.app_keys import REGISTRY_KEY
from dockyard.config import Settings
from dockyard.ops.health import DEFAULT_INTERVAL, HEALTH_PATH, StorageHealth

if TYPE_CHECKING:
    from dockyard.ops.metrics import Metrics

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
DEFAULT_DRAIN_TIMEOUT = 30.0
# The worker's Metrics; the class is named for the type checker only, as its module imports prometheus_client.
METRICS_KEY: web.AppKey[Metrics] = web.AppKey("dockyard_metrics")


@dataclass(frozen=True)
class OpsSettings:
    debug_addr: str | None = None
    metrics: bool = False
    metrics_path: str = "/metrics"
    storage_health: bool = True
    storage_health_interval: float = DEFAULT_INTERVAL
    storage_health_threshold: int = 1
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT

    @classmethod
    def of(cls, settings: Settings) -> OpsSettings:
        debug, health = settings.http.debug, settings.health.storagedriver
        return cls(
            debug.addr or None, debug.prometheus.enabled, debug.prometheus.path,
            health.enabled, health.every, health.threshold, settings.http.draintimeout,
        )

    def prepare_workers(self, workers: int) -> Callable[[], None]:
        """In the parent, before forking: a shared metrics directory for several workers.

        Returns what removes it at exit."""
        if not (self.metrics and self.debug_addr and workers > 1):
            return lambda: None
        directory = tempfile.mkdtemp(prefix="dockyard-metrics-")
        os.environ[MULTIPROC_ENV] = directory  # before prometheus_client is first imported
        return lambda: shutil.rmtree(directory, ignore_errors=True)

    def worker_exited(self, pid: int) -> None:
        """In the parent: drop a dead worker's live gauges (its counters stay in the sums)."""
        directory = os.environ.get(MULTIPROC_ENV)
        if self.metrics and directory:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid, directory)

    def instrument(self, app: web.Application) -> None:
        """In each worker: count the registry app's requests when metrics are on."""
        if self.metrics and self.debug_addr:
            from dockyard.ops.metrics import Metrics

            metrics = Metrics(os.environ.get(MULTIPROC_ENV))
            metrics.instrument(app)
            app[METRICS_KEY] = metrics

    def debug_app(self, app: web.Application) -> web.Application:
        """In each worker, before ``app`` starts: the debug server's application."""
        metrics = app.get(METRICS_KEY)
        health = None
        if self.storage_health:
            on_error = (lambda: metrics.storage_errors.labels("health").inc()) if metrics else None
            health = StorageHealth(
                app[REGISTRY_KEY].driver, self.storage_health_interval, self.storage_health_threshold, on_error,
            )
        state = _State(health)

        async def draining(_: web.Application) -> None:
            state.draining = True

        app.on_shutdown.append(draining)
        debug = web.Application()
        debug.router.add_get(HEALTH_PATH, state.handle)
        if metrics is not None:
            debug.router.add_get(self.metrics_path, metrics.handle)
        if health is not None:
            debug.cleanup_ctx.append(for_app_lifetime(health.run()))
        return debug


class _State:
    def __init__(self, health: StorageHealth | None) -> None:
        self.health = health
        self.draining = False

    async def handle(self, request: web.Request) -> web.Response:
        """registry:2's answer: 200 ``{}``, or 503 with each failing check and its error."""
        failing: dict[str, str] = {}
        if self.health is not None and self.health.failing is not None:
            failing[self.health.name] = self.health.failing
        if self.draining:
            failing["draining"] = "the server is shutting down"
        status = 503 if failing else 200
        return web.Response(status=status, text=json.dumps(failing), content_type="application/json")


def for_app_lifetime(work: Coroutine[Any, Any, None]) -> Callable[[web.Application], AsyncIterator[None]]:
    """An application cleanup context that runs ``work`` while the application runs, cancelled at its end."""

    async def running(_: web.Application) -> AsyncIterator[None]:
        task = asyncio.ensure_future(work)
        yield
        task.cancel()

    return running

