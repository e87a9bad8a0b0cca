"""Sizes written for people: by the commands and the web page alike.

Kept apart from :mod:`dockyard.ui` so that a command such as ``dockyard gc`` does not
load the web page (its templates, aiohttp) to print a size.
"""

from __future__ import annotations

import re

_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")
_WRITTEN_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGTP]i?B|B)?")
_UNIT_BYTES = {"B": 1} | {
    f"{prefix}{infix}B": base ** (power + 1)
    for power, prefix in enumerate("KMGTP") for infix, base in (("", 1000), ("i", 1024))
}


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


def parse_size(text: str) -> int:
    """Bytes in a size written for people: ``40MiB``, ``10GiB``, ``1.5GB``, ``512`` (bytes); ``ValueError`` otherwise."""
    found = _WRITTEN_SIZE.fullmatch(text.strip())
    if found is None:
        raise ValueError(text)
    number, unit = found.groups()
    return int(float(number) * _UNIT_BYTES[unit or "B"])
