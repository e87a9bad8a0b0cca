"""Peak resident memory of process trees, sampled from /proc in a background thread.

A tree's RSS is the sum over the process and all its descendants (Dockyard's
``--workers`` are forked children). Forked workers share pages, so the sum
overstates what they use together: it is the figure ``ps`` would add up.
"""

from __future__ import annotations

import os
import threading


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as file:
                found.extend(int(child) for child in file.read().split())
    except OSError:
        pass
    return found


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as file:
            for line in file:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kib(pid: int) -> int:
    """RSS of ``pid`` and every descendant, in KiB."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        total += _rss_kib(current)
        pending.extend(_children(current))
    return total


class PeakSampler:
    """Samples named process trees every ``interval`` seconds while running; keeps each peak."""

    def __init__(self, pids: dict[str, int], interval: float = 0.05) -> None:
        self.pids = pids
        self.interval = interval
        self.peak_kib = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while True:
            for name, pid in self.pids.items():
                self.peak_kib[name] = max(self.peak_kib[name], tree_rss_kib(pid))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak_mib(self) -> dict[str, float]:
        return {name: kib / 1024 for name, kib in self.peak_kib.items()}
