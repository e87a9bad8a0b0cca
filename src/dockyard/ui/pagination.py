"""Pages and sort orders of the tag list (pure: the handlers fetch, this decides what to show)."""

from __future__ import annotations

import math
from dataclasses import dataclass

SORT_KEYS = ("name", "pushed", "size")
# Newest and largest first are what people look for; names read A to Z.
DEFAULT_DESCENDING = {"name": False, "pushed": True, "size": True}


@dataclass(frozen=True)
class Sort:
    key: str
    descending: bool

    @property
    def text(self) -> str:
        """The ``sort`` query value: ``name``, ``-pushed``."""
        return f"-{self.key}" if self.descending else self.key

    def toggled(self, key: str) -> Sort:
        """The order a column header links to: the other direction of this key, or the key's default."""
        if key == self.key:
            return Sort(key, not self.descending)
        return Sort(key, DEFAULT_DESCENDING[key])


def parse_sort(text: str | None) -> Sort:
    """``name`` / ``-pushed`` / ``size``...; anything else sorts by name."""
    value = (text or "").strip()
    descending = value.startswith("-")
    key = value.removeprefix("-")
    if key not in SORT_KEYS:
        return Sort("name", False)
    return Sort(key, descending)


@dataclass(frozen=True)
class Page:
    number: int  # 1-based
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def start(self) -> int:
        return (self.number - 1) * self.per_page

    @property
    def end(self) -> int:
        return min(self.start + self.per_page, self.total)

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages


def page_of(total: int, requested: str | None, per_page: int) -> Page:
    """The requested page (1-based), clamped into range; anything unreadable is page 1."""
    try:
        number = int(requested or 1)
    except ValueError:
        number = 1
    page = Page(1, per_page, total)
    return Page(min(max(number, 1), page.pages), per_page, total)


def parse_count(text: str | None, default: int, maximum: int) -> int:
    """A ``n`` query parameter: within 1..maximum, ``default`` when absent or unreadable."""
    try:
        value = int(text) if text else default
    except ValueError:
        return default
    return min(max(value, 1), maximum)
