"""Sizes written for people: by the commands and the web page alike.

Kept apart from :mod:`dockyard.ui` so that a command such as ``dockyard gc`` does not
load the web page (its templates, aiohttp) to print a size.
"""

from __future__ import annotations

_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")


def human_size(size: int | None) -> str:
    """``1536`` → ``1.5 KB`` (decimal units, as docker and podman print sizes)."""
    if size is None:
        return "—"
    value = float(size)
    for unit in _UNITS:
        if value < 1000 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{int(value)} B"
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")
