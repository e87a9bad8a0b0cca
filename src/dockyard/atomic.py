"""Writing a file so that readers see the old content or the new one, never a torn one."""

from __future__ import annotations

import os
import pathlib
import re
import uuid

# ".<name>.<32 hex>.tmp": what a write killed before its rename leaves beside ``name``.
TEMPORARY_NAME = re.compile(r"\..+\.[0-9a-f]{32}\.tmp")


def write_file(path: pathlib.Path, content: bytes, mode: int = 0o644, replace: bool = True) -> bool:
    """Write to a temporary name beside ``path`` (created with ``mode``), fsync, rename; whether
    ``path`` was written. With ``replace`` false, a hard link stands for the rename: it fails
    where ``path`` exists, so only one of many racing writers creates it."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileNotFoundError:
        # The directory went between the two calls (garbage collection removes empty blob folders).
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        if replace:
            os.replace(temporary, path)
            return True
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        finally:
            temporary.unlink(missing_ok=True)
        return True
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
