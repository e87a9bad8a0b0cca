"""Trimming a worker's free heap after a busy spell (dockyard.heap)."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.heap import IdleTrim


@dataclass
class Requests:
    count: int = 0
    started: int = 0

    def begin(self) -> None:
        self.count += 1
        self.started += 1

    def end(self) -> None:
        self.count -= 1


def _watched() -> tuple[Requests, IdleTrim, list[None]]:
    requests, trims = Requests(), []
    return requests, IdleTrim(requests, lambda: trims.append(None)), trims


def test_trims_once_after_a_whole_period_without_requests() -> None:
    requests, idle_trim, trims = _watched()
    requests.begin()
    requests.end()
    idle_trim.tick()  # requests came during this period: not idle yet
    assert trims == []
    idle_trim.tick()
    assert len(trims) == 1
    idle_trim.tick()  # nothing served since: nothing more to give back
    assert len(trims) == 1


def test_never_trims_a_worker_that_served_nothing() -> None:
    _, idle_trim, trims = _watched()
    for _ in range(3):
        idle_trim.tick()
    assert trims == []


def test_waits_while_a_request_runs() -> None:
    # A long upload starts no new request, but its buffers are in use.
    requests, idle_trim, trims = _watched()
    requests.begin()
    for _ in range(3):
        idle_trim.tick()
    assert trims == []
    requests.end()
    idle_trim.tick()
    assert len(trims) == 1


def test_waits_while_requests_keep_starting() -> None:
    requests, idle_trim, trims = _watched()
    for _ in range(3):
        requests.begin()
        requests.end()
        idle_trim.tick()
    assert trims == []
