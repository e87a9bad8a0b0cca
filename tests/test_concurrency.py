"""gather_bounded: every item once, results in the items' order, never more than the limit at once."""

from __future__ import annotations

import asyncio

import pytest

from dockyard.concurrency import gather_bounded


async def test_results_come_in_the_items_order_with_at_most_limit_running() -> None:
    running = most = 0

    async def square(number: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.001 * (number % 3))  # finishing out of order
        running -= 1
        return number * number

    assert await gather_bounded(range(50), square, 4) == [number * number for number in range(50)]
    assert most == 4


async def test_work_that_never_waits_and_no_work_at_all() -> None:
    async def double(number: int) -> int:
        return 2 * number

    assert await gather_bounded(range(5), double, 16) == [0, 2, 4, 6, 8]
    assert await gather_bounded([], double) == []


async def test_an_error_reaches_the_caller() -> None:
    async def fail_on_three(number: int) -> int:
        if number == 3:
            raise ValueError("three")
        return number

    with pytest.raises(ValueError, match="three"):
        await gather_bounded(range(10), fail_on_three, 2)
