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
    where ``path`` exists, so only one of many racing writers creates it.

    The folder may go meanwhile (garbage collection removes empty blob folders, a repository
    delete its whole tree): it is made again and the write done again, once."""
    try:
        return _write_once(path, content, mode, replace)
    except FileNotFoundError:
        return _write_once(path, content, mode, replace)


def _write_once(path: pathlib.Path, content: bytes, mode: int, replace: bool) -> bool:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
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
