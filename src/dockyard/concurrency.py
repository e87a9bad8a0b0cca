"""Running many storage reads at once without opening unbounded connections or threads."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

DEFAULT_LIMIT = 16


async def gather_bounded(
    items: Iterable[Item], function: Callable[[Item], Awaitable[Result]], limit: int = DEFAULT_LIMIT,
) -> list[Result]:
    """``function`` over ``items``, at most ``limit`` at a time, results in the items' order."""
    # ``limit`` workers take the items in turn, rather than a task per item: where the work
    # rarely waits (a stat or a small read from the page cache) a task costs more than it.
    pending = list(items)
    numbered = enumerate(pending)
    results: dict[int, Result] = {}

    async def worker() -> None:
        for index, item in numbered:
            results[index] = await function(item)

    await asyncio.gather(*(worker() for _ in range(min(limit, len(pending)))))
    return [results[index] for index in range(len(pending))]
