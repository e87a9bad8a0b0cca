"""Upload purging, as registry:2's ``storage.maintenance.uploadpurging`` does it: uploads
(``_uploads/<id>``) started longer ago than ``age`` (their ``startedat``) are deleted."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from dockyard.concurrency import gather_bounded
from dockyard.maintenance import inventory
from dockyard.storage import paths
from dockyard.storage.driver import PathNotFound, StorageDriver

DEFAULT_AGE = 168 * 3600.0  # registry:2's


@dataclass
class PurgeReport:
    dry_run: bool
    purged: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        return f"{'would purge' if self.dry_run else 'purged'} {len(self.purged)} abandoned uploads"


def _started(text: bytes) -> float | None:
    try:
        return datetime.fromisoformat(text.decode().strip().replace("Z", "+00:00")).timestamp()
    except (UnicodeDecodeError, ValueError):
        return None


async def purge_uploads(driver: StorageDriver, age: float | None, dry_run: bool, now: float | None = None) -> PurgeReport:
    before = (time.time() if now is None else now) - (DEFAULT_AGE if age is None else age)
    report = PurgeReport(dry_run)

    async def one(name: str) -> None:
        directory = paths.uploads(name)
        for upload_id in (await driver.list_sorted([directory])).get(directory, []):
            try:
                started = _started(await driver.get_content(paths.upload_started_at(name, upload_id)))
            except PathNotFound:
                started = None
            if started is None or started >= before:
                continue
            if not dry_run:
                try:
                    await driver.delete(paths.upload(name, upload_id))
                except PathNotFound:  # finished or cancelled meanwhile
                    continue
            report.purged.append((name, upload_id))

    await gather_bounded(await inventory.repository_names(driver), one)
    return report
