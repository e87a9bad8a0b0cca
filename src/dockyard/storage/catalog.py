"""The list of repositories: every directory under ``repositories/`` that holds ``_`` entries.

The walk never descends into a repository's ``_layers``, ``_manifests`` or
``_uploads``: those hold most of the tree and none of the names.
"""

from __future__ import annotations

from dockyard.storage import paths
from dockyard.storage.driver import PathNotFound, StorageDriver


async def repositories(driver: StorageDriver) -> list[str]:
    found: list[str] = []
    pending = [""]
    while pending:
        prefix = pending.pop()
        directory = f"{paths.REPOSITORIES}/{prefix}".rstrip("/")
        try:
            children = await driver.list(directory)
        except PathNotFound:
            continue
        if prefix and any(child.startswith("_") for child in children):
            found.append(prefix.rstrip("/"))
        pending.extend(f"{prefix}{child}/" for child in children if not child.startswith(("_", ".")))
    return sorted(found)
