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
    gate = asyncio.Semaphore(limit)

    async def one(item: Item) -> Result:
        async with gate:
            return await function(item)

    return list(await asyncio.gather(*map(one, items)))
