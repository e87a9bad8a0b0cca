"""The server's own maintenance: garbage collection and upload purging on their intervals.

Every worker process (and every replica on the same storage) runs the timers; a job
runs in one of them at a time and once per interval: the worker takes the job's lock
in storage (``dockyard/schedule/<job>``), and runs the job only when the time written
in that file is an interval old, writing the new time first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

from dockyard.app_keys import REGISTRY_KEY
from dockyard.config import Gc, Retention, UploadPurging
from dockyard.maintenance.gc import Collector, Options, Report
from dockyard.maintenance.uploads_purge import purge_uploads
from dockyard.proxy.expiry import TtlLookup, never_expires
from dockyard.storage import paths
from dockyard.storage.driver import PathNotFound, StorageDriver
from dockyard.storage.registry import Registry

log = logging.getLogger("dockyard.maintenance")


@dataclass(frozen=True)
class Schedule:
    gc: Gc | None = None
    retention: Sequence[Retention] = ()
    upload_purging: UploadPurging | None = None
    ttl_for: TtlLookup = never_expires
    expiry_interval: float | None = None
    """a pull-through cache's collection interval when ``gc.interval`` is 0 (see :func:`dockyard.proxy.expiry.expiry_interval`)"""
    collected: Callable[[Report], Awaitable[None]] | None = None
    """told what each collection removed (the events of its removals)"""


async def _when_due(driver: StorageDriver, job: str, interval: float, work: Callable[[], Awaitable[None]]) -> None:
    stamp = paths.schedule_stamp(job)
    try:
        await driver.stat(stamp)
    except PathNotFound:
        await driver.put_content(stamp, b"0")
    async with driver.lock(stamp):
        try:
            last = float((await driver.get_content(stamp)).decode())
        except (PathNotFound, ValueError, UnicodeDecodeError):
            last = 0.0
        now = time.time()
        if now - last < interval * 0.9:  # another worker ran it this interval
            return
        await driver.put_content(stamp, repr(now).encode())
        await work()


async def _every(interval: float, job: str, driver: StorageDriver, work: Callable[[], Awaitable[None]]) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await _when_due(driver, job, interval, work)
        except Exception:  # a failed run is logged; the next interval tries again
            log.exception("scheduled %s failed", job)


def _jobs(registry: Registry, schedule: Schedule) -> list[tuple[float, str, Callable[[], Awaitable[None]]]]:
    jobs: list[tuple[float, str, Callable[[], Awaitable[None]]]] = []
    gc = schedule.gc or Gc()
    interval = gc.interval or schedule.expiry_interval or 0.0
    if interval > 0:
        options = Options(
            dry_run=gc.dry_run, delete_untagged=gc.delete_untagged, grace_period=gc.grace_period,
            retention=tuple(schedule.retention), ttl_for=schedule.ttl_for,
        )

        async def collect() -> None:
            report = await Collector(registry, options).run()  # logs its summary
            if schedule.collected is not None and not report.dry_run:
                await schedule.collected(report)

        jobs.append((interval, "gc", collect))
    purging = schedule.upload_purging
    if purging is not None and purging.enabled and purging.interval > 0:

        async def purge() -> None:
            report = await purge_uploads(registry.driver, purging.age, purging.dryrun)
            log.info("upload purging: %s", report.summary())

        jobs.append((purging.interval, "uploadpurging", purge))
    return jobs


def scheduled_maintenance(schedule: Schedule) -> Callable[[web.Application], AsyncIterator[None]]:
    """An ``app.cleanup_ctx`` entry that runs ``schedule`` while the application serves."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        registry = app[REGISTRY_KEY]
        tasks = [asyncio.ensure_future(_every(interval, job, registry.driver, work)) for interval, job, work in _jobs(registry, schedule)]
        yield
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    return context
