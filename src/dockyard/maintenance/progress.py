"""Progress of long maintenance runs: a bar on a terminal, nothing elsewhere."""

from __future__ import annotations

import sys
from typing import Any

import click

from dockyard.sizes import human_size


class Stage:
    """One step of a run (repositories marked, blobs swept); counts and bytes."""

    def advance(self, count: int = 1, size: int = 0) -> None:
        pass

    def close(self) -> None:
        pass


class Progress:
    """Shows nothing: the server's scheduled runs, output that is not a terminal."""

    def stage(self, label: str, total: int) -> Stage:
        return Stage()


class _BarStage(Stage):
    def __init__(self, label: str, total: int) -> None:
        self.bytes = 0
        self._bar: Any = click.progressbar(
            length=total, label=label, file=sys.stderr, show_pos=True,
            item_show_func=lambda _: human_size(self.bytes) if self.bytes else None,
        )
        self._bar.__enter__()

    def advance(self, count: int = 1, size: int = 0) -> None:
        self.bytes += size
        self._bar.update(count)

    def close(self) -> None:
        self._bar.__exit__(None, None, None)


class TerminalProgress(Progress):
    def stage(self, label: str, total: int) -> Stage:
        return _BarStage(label, total)


def for_terminal() -> Progress:
    """A bar when both stdout and stderr are terminals, else quiet."""
    return TerminalProgress() if sys.stderr.isatty() and sys.stdout.isatty() else Progress()
