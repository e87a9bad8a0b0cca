"""Two Linux file calls Python lacks, each skipped where it does not exist.

**Early write-back.** A blob is received, written and only then fsynced. Left alone,
Linux writes the dirty pages back when fsync asks (or after 30 s), so a 1 GiB upload
is received first and written to disk after: the two add up. ``sync_file_range`` with
``SYNC_FILE_RANGE_WRITE`` queues the write-back of each range as soon as it is written,
so the disk works while the rest is received. It is not a durability promise (fsync
still is).

**Allocation ahead.** Growing a file write by write makes the filesystem allocate at
every write (ext4: 0.048 s of CPU per 256 MiB written here, 0.030 s into room allocated
before). ``fallocate`` with ``FALLOC_FL_KEEP_SIZE`` allocates the room without changing
the file's size, so a reader, a resumed upload's offset or a crash sees only what was
written; room left unused goes with the file.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import Any

SYNC_FILE_RANGE_WRITE = 2
FALLOC_FL_KEEP_SIZE = 1


def _load(name: str, *argtypes: Any) -> Any | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = getattr(ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True), name)
    except (OSError, AttributeError):
        return None
    function.argtypes = argtypes
    function.restype = ctypes.c_int
    return function


_sync_file_range = _load("sync_file_range", ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)  # fd, offset, length, flags
_fallocate = _load("fallocate", ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)  # fd, mode, offset, length
AVAILABLE = _sync_file_range is not None and _fallocate is not None


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Queue the write-back of ``length`` bytes of ``fd`` from ``offset``; returns at once (blocking call, in a thread)."""
    if _sync_file_range is not None and length > 0:
        # A failure (EINVAL on a filesystem without it, EIO) is left for fsync to report.
        _sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)


def allocate(fd: int, offset: int, length: int) -> None:
    """Allocate ``length`` bytes of ``fd`` from ``offset``, its size unchanged (blocking call, in a thread)."""
    if _fallocate is not None and length > 0:
        # A failure (EOPNOTSUPP where a filesystem cannot, ENOSPC) is left to the writes, which may still fit.
        _fallocate(fd, FALLOC_FL_KEEP_SIZE, offset, length)
