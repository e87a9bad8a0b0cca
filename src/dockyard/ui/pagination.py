"""Pages and sort orders of the lists (pure: the handlers fetch, this decides what to show)."""

from __future__ import annotations

import math
from dataclasses import dataclass

# Each list's orders, its default first: people look for the newest push among tags.
TAG_SORT_KEYS = ("pushed", "name", "size")
REPOSITORY_SORT_KEYS = ("name", "tags")
# Newest and largest first are what people look for; names read A to Z.
DEFAULT_DESCENDING = {"name": False, "pushed": True, "size": True, "tags": True}


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


def parse_sort(text: str | None, keys: tuple[str, ...] = TAG_SORT_KEYS) -> Sort:
    """``name`` / ``-pushed`` / ``size``... among ``keys``; anything else is the first key's default order."""
    value = (text or "").strip()
    descending = value.startswith("-")
    key = value.removeprefix("-")
    if key not in keys:
        return Sort(keys[0], DEFAULT_DESCENDING[keys[0]])
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


def page_numbers(page: Page, around: int = 2) -> list[int | None]:
    """The page links of a pager: the first, the last and ``around`` each side of this one; ``None`` for a gap."""
    shown = sorted({1, page.pages, *range(max(1, page.number - around), min(page.pages, page.number + around) + 1)})
    numbers: list[int | None] = []
    for number in shown:
        if numbers and number - (numbers[-1] or 0) > 1:
            numbers.append(None)
        numbers.append(number)
    return numbers


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
