"""Starting the kernel's write-back of a file range early, so that a final fsync waits for little.

A blob is received, written and only then fsynced. Left alone, Linux writes the
dirty pages back when fsync asks (or after 30 s), so a 1 GiB upload is received
first and written to disk after: the two add up. ``sync_file_range`` with
``SYNC_FILE_RANGE_WRITE`` queues the write-back of each range as soon as it is
written, so the disk works while the rest is received. It is not a durability
promise (fsync still is); where the call does not exist it is skipped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable

SYNC_FILE_RANGE_WRITE = 2


def _load() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    function.restype = ctypes.c_int
    return function


_sync_file_range = _load()
AVAILABLE = _sync_file_range is not None


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Queue the write-back of ``length`` bytes of ``fd`` from ``offset``; returns at once (blocking call, in a thread)."""
    if _sync_file_range is not None and length > 0:
        # A failure (EINVAL on a filesystem without it, EIO) is left for fsync to report.
        _sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)
