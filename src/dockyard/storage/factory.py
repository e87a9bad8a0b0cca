"""The storage driver that ``serve``'s settings name: the one place that knows every backend."""

from __future__ import annotations

import asyncio
import pathlib
from dataclasses import dataclass

from dockyard.config import S3
from dockyard.storage.driver import StorageDriver


class StorageUnavailable(Exception):
    """The storage cannot be used; the message says why in one line."""


@dataclass(frozen=True)
class StorageSettings:
    kind: str  # filesystem, inmemory or s3
    root: pathlib.Path
    s3: S3 | None = None
    redirect: bool = True
    """Blob GETs answer 307 to the storage's own URL where the driver has one (registry:2's
    ``storage.redirect``, on unless ``disable: true``)."""

    def describe(self) -> str:
        if self.kind == "s3" and self.s3 is not None:
            from dockyard.storage.s3 import location

            return f"{location(self.s3)}, redirects {'on' if self.redirect else 'off'}"
        return f"filesystem at {self.root.absolute()}" if self.kind == "filesystem" else "in memory"


def build_driver(settings: StorageSettings) -> StorageDriver:
    if settings.kind == "s3":
        from dockyard.storage.s3 import S3Driver

        if settings.s3 is None:
            raise StorageUnavailable("storage s3 needs storage.s3 settings (bucket, region, ...)")
        return S3Driver(settings.s3, redirect=settings.redirect)
    if settings.kind == "inmemory":
        from dockyard.storage.inmemory import InMemoryDriver

        return InMemoryDriver()
    from dockyard.storage.filesystem import FilesystemDriver

    return FilesystemDriver(settings.root)


def check_storage(settings: StorageSettings) -> None:
    """Fail now, in one line, rather than on the first request: the root or bucket must answer."""
    if settings.kind == "filesystem":
        try:
            settings.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StorageUnavailable(f"cannot use storage root {settings.root}: {error.strerror}") from None
    elif settings.kind == "s3":
        from dockyard.storage.s3 import S3Driver, S3Error

        async def reach() -> None:
            driver = build_driver(settings)
            assert isinstance(driver, S3Driver)
            try:
                await driver.check()
            finally:
                await driver.close()

        try:
            asyncio.run(reach())
        except S3Error as error:
            raise StorageUnavailable(str(error)) from None
