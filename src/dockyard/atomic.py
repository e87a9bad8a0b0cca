"""Writing a file so that readers see the old content or the new one, never a torn one."""

from __future__ import annotations

import os
import pathlib
import uuid


def write_file(path: pathlib.Path, content: bytes, mode: int = 0o644) -> None:
    """Write to a temporary name beside ``path`` (created with ``mode``), fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
