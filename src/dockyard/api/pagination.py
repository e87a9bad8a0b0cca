"""``n``/``last`` pagination with a ``Link: <...>; rel="next"`` header (tags and catalog)."""

from __future__ import annotations

import bisect
from urllib.parse import urlencode

from dockyard.api import errors
from dockyard.api.errors import RegistryError


def page(items: list[str], n: str | None, last: str | None, path: str, limit: int) -> tuple[list[str], dict[str, str]]:
    """The slice of sorted ``items`` after ``last``, at most ``n`` long, and its headers."""
    if n is None or n == "":
        count = limit
    else:
        invalid = RegistryError(errors.PAGINATION_NUMBER_INVALID, detail={"n": n[:50]})
        if not (n.isascii() and n.isdigit()):
            raise invalid
        try:
            count = min(int(n), limit)
        except ValueError:  # more digits than Python parses
            raise invalid from None
    start = bisect.bisect_right(items, last) if last else 0
    selected = items[start:start + count]
    headers: dict[str, str] = {}
    if selected and start + count < len(items):
        headers["Link"] = f'<{path}?{urlencode({"n": count, "last": selected[-1]})}>; rel="next"'
    return selected, headers
