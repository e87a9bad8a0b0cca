"""The server's own maintenance: garbage collection, upload purging and the pull-through cache's
syncs on their intervals.

Every worker process (and every replica on the same storage) runs the timers; a job
runs in one of them at a time and once per interval: the worker takes the job's lock
in storage (its stamp: ``dockyard/schedule/<job>``, or the job's own), and runs the job only
when the time written in that file is an interval old, writing the new time first. A job
that catches up is checked more often than it runs, from the start: a restart, however
often, never puts it off past its interval.
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


# A job that catches up looks at its stamp this often (at most its interval).
CATCH_UP_CHECK_SECONDS = 60.0


@dataclass(frozen=True)
class Job:
    name: str
    """for the log"""
    stamp: str
    """the storage file holding when it last ran, locked by the one run"""
    interval: float
    work: Callable[[], Awaitable[object]]
    catch_up: bool = False
    """run at the first check once its last run is an interval old (else: first an interval after the start)"""


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
    more: Sequence[Job] = ()
    """jobs of other parts (the pull-through cache's syncs)"""


async def run_when_due(driver: StorageDriver, stamp: str, interval: float, work: Callable[[], Awaitable[object]]) -> bool:
    """Run ``work`` unless the time in ``stamp`` is less than ``interval`` old, under the stamp's lock (held
    by the one run), writing the new time first; whether it ran. An interval of 0 runs it once the lock is free."""
    if time.time() - await _last_run(driver, stamp) < interval * 0.9:
        return False  # read without the lock first: a catching-up job is checked far more often than it runs
    try:
        await driver.stat(stamp)
    except PathNotFound:
        await driver.put_content(stamp, b"0")
    async with driver.lock(stamp):
        now = time.time()
        if now - await _last_run(driver, stamp) < interval * 0.9:  # another worker ran it this interval
            return False
        await driver.put_content(stamp, repr(now).encode())
        await work()
    return True


async def _last_run(driver: StorageDriver, stamp: str) -> float:
    try:
        return float((await driver.get_content(stamp)).decode())
    except (PathNotFound, ValueError, UnicodeDecodeError):
        return 0.0


async def _every(job: Job, driver: StorageDriver) -> None:
    check = min(job.interval, CATCH_UP_CHECK_SECONDS) if job.catch_up else job.interval
    while True:
        await asyncio.sleep(check)
        try:
            await run_when_due(driver, job.stamp, job.interval, job.work)
        except Exception:  # a failed run is logged; the next interval tries again
            log.exception("scheduled %s failed", job.name)


def _jobs(registry: Registry, schedule: Schedule) -> list[Job]:
    jobs = list(schedule.more)
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

        jobs.append(Job("gc", paths.schedule_stamp("gc"), interval, collect))
    purging = schedule.upload_purging
    if purging is not None and purging.enabled and purging.interval > 0:

        async def purge() -> None:
            report = await purge_uploads(registry.driver, purging.age, purging.dryrun)
            log.info("upload purging: %s", report.summary())

        jobs.append(Job("uploadpurging", paths.schedule_stamp("uploadpurging"), purging.interval, purge))
    return jobs


def scheduled_maintenance(schedule: Schedule) -> Callable[[web.Application], AsyncIterator[None]]:
    """An ``app.cleanup_ctx`` entry that runs ``schedule`` while the application serves."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        registry = app[REGISTRY_KEY]
        tasks = [asyncio.ensure_future(_every(job, registry.driver)) for job in _jobs(registry, schedule)]
        yield
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    return context
