"""The storage driver that ``serve``'s settings name: the one place that knows every backend."""

from __future__ import annotations

import asyncio
import pathlib
from dataclasses import dataclass

from dockyard.config import S3, Storage
from dockyard.storage import paths
from dockyard.storage.driver import StorageDriver


class StorageUnavailable(Exception):
    """The storage cannot be used; the message says why in one line."""


class NoRegistryData(StorageUnavailable):
    """A filesystem root without the registry layout, given to a command that maintains one."""


@dataclass(frozen=True)
class StorageSettings:
    kind: str  # filesystem, inmemory or s3
    root: pathlib.Path
    s3: S3 | None = None
    redirect: bool = True
    """Blob GETs answer 307 to the storage's own URL where the driver has one (registry:2's
    ``storage.redirect``, on unless ``disable: true``)."""

    @classmethod
    def of(cls, storage: Storage) -> StorageSettings:
        return cls(storage.kind, storage.root, storage.s3, not storage.redirect.disable)

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


def _layout_root(root: pathlib.Path) -> pathlib.Path:
    from dockyard.storage.filesystem import FilesystemDriver

    found = FilesystemDriver(root).local_file(paths.ROOT)
    assert found is not None  # a filesystem driver always has local files
    return found


def check_storage(settings: StorageSettings) -> None:
    """Fail now, in one line, rather than on the first request: the root or bucket must answer.

    A filesystem root gets its layout's top directory at once, so that even before the
    first push it is recognisably a registry's (see :func:`check_registry_data`)."""
    if settings.kind == "filesystem":
        try:
            _layout_root(settings.root).mkdir(parents=True, exist_ok=True)
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


def check_registry_data(settings: StorageSettings) -> None:
    """:func:`check_storage` for a command that maintains existing data: a filesystem root
    must already hold the layout (``docker/registry/v2``, made by the first push to
    registry:2 and by ``dockyard serve`` at start), never be created (a mistyped path
    would otherwise be "maintained" and reported clean); ``NoRegistryData`` if not."""
    if settings.kind == "filesystem" and not _layout_root(settings.root).is_dir():
        state = "does not exist" if not settings.root.exists() else f"holds no registry data (no {paths.ROOT.lstrip('/')})"
        raise NoRegistryData(f"storage root {settings.root} {state}")
    check_storage(settings)
