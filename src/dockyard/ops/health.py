"""registry:2's storage driver health check: a periodic stat of the storage root.

Like registry:2's ``PeriodicThresholdChecker``: the check runs every ``interval``
seconds in the background, ``/debug/health`` reports its last result, and it fails only
after ``threshold`` consecutive failures. Where dockyard is stricter than registry:2: a
missing filesystem root fails the check (registry:2 accepts "path not found" because an
empty S3 bucket has no root; a local root missing means an unmounted volume).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from dockyard.storage.driver import PathNotFound, StorageDriver

log = logging.getLogger("dockyard.health")

DEFAULT_INTERVAL = 10.0
HEALTH_PATH = "/debug/health"  # where the debug server answers


class StorageHealth:
    def __init__(
        self,
        driver: StorageDriver,
        interval: float = DEFAULT_INTERVAL,
        threshold: int = 1,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self.driver = driver
        self.interval = interval if interval > 0 else DEFAULT_INTERVAL  # registry:2: 0 means the default
        self.threshold = max(1, threshold)
        self.on_error = on_error
        self.failures = 0
        self.last_error: str | None = None

    @property
    def name(self) -> str:
        return f"storagedriver_{getattr(self.driver, 'name', 'unknown')}"

    async def probe(self) -> str | None:
        """What is wrong with the storage root, or None."""
        try:
            info = await self.driver.stat("/")
        except PathNotFound:
            if getattr(self.driver, "name", "") == "filesystem":
                return "storage root is missing or not a directory"
            return None  # an empty inmemory (or object) store has no root yet
        except Exception as error:  # noqa: BLE001 (any failure of the driver is the answer)
            return f"{type(error).__name__}: {error}"
        if not info.is_dir:
            return "storage root is not a directory"
        return None

    async def check(self) -> None:
        problem = await self.probe()
        if problem is None:
            if self.failures:
                log.info("storage health check passes again")
            self.failures = 0
            self.last_error = None
            return
        self.failures += 1
        self.last_error = problem
        if self.on_error is not None:
            self.on_error()
        log.warning("storage health check failed (%d in a row): %s", self.failures, problem)

    @property
    def failing(self) -> str | None:
        """The error to report, once ``threshold`` checks in a row have failed."""
        return self.last_error if self.failures >= self.threshold else None

    async def run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.interval)
