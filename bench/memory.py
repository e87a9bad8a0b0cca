"""Peak memory of process trees, sampled from /proc in a background thread.

A tree is a process and all its descendants (Dockyard's ``--workers`` are forked
children). Two sums are kept per tree:

- PSS (proportional set size, ``/proc/PID/smaps_rollup``): each page shared by N
  processes counts 1/N in each, so the sum over the tree counts shared pages once.
  This is the honest figure for forked workers sharing their parent's pages.
- RSS (``VmRSS`` in ``/proc/PID/status``): every process counts every page it maps,
  so shared pages count once per process and the sum overstates a forked tree;
  it is what ``ps`` would add up.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as file:
                found.extend(int(child) for child in file.read().split())
    except OSError:
        pass
    return found


def _field_kib(path: str, name: str) -> int:
    """The ``name:`` line's value in KiB from a /proc file, 0 when the process is gone."""
    try:
        with open(path) as file:
            for line in file:
                if line.startswith(name):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def tree_pids(pid: int) -> list[int]:
    """``pid`` and every descendant."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(_children(current))
    return found


@dataclass(frozen=True)
class Usage:
    """Memory of one process tree at one instant, in KiB."""

    pss_kib: int
    rss_kib: int


def tree_usage(pid: int) -> Usage:
    """PSS and RSS summed over ``pid`` and every descendant."""
    pids = tree_pids(pid)
    return Usage(
        pss_kib=sum(_field_kib(f"/proc/{current}/smaps_rollup", "Pss:") for current in pids),
        rss_kib=sum(_field_kib(f"/proc/{current}/status", "VmRSS:") for current in pids),
    )


class PeakSampler:
    """Samples named process trees every ``interval`` seconds while running; keeps each peak
    (the peaks of PSS and of RSS, each over the samples, possibly at different instants)."""

    def __init__(self, pids: dict[str, int], interval: float = 0.05) -> None:
        self.pids = pids
        self.interval = interval
        self.peak_pss_kib = dict.fromkeys(pids, 0)
        self.peak_rss_kib = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def _run(self) -> None:
        while True:
            for name, pid in self.pids.items():
                usage = tree_usage(pid)
                self.peak_pss_kib[name] = max(self.peak_pss_kib[name], usage.pss_kib)
                self.peak_rss_kib[name] = max(self.peak_rss_kib[name], usage.rss_kib)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak_pss_mib(self) -> dict[str, float]:
        return {name: kib / 1024 for name, kib in self.peak_pss_kib.items()}

    def peak_rss_mib(self) -> dict[str, float]:
        return {name: kib / 1024 for name, kib in self.peak_rss_kib.items()}
