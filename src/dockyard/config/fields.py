"""What the settings' dataclasses are built with: the ``Duration`` type and the field helpers
whose metadata the readers check (``choices``, ``minimum``, ``maximum``, ``required``), with
the ``dockyard serve`` option (:class:`Flag`) that may set a key."""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Duration = typing.NewType("Duration", float)
"""Seconds; written in the file as a Go duration."""
ByteSize = typing.NewType("ByteSize", int)
"""Bytes; written in the file as a number of bytes or a size such as ``40MiB`` or ``10GiB``."""


@dataclass(frozen=True)
class Flag:
    """The ``dockyard serve`` option that sets a key: one more layer over the file and the variables."""

    name: str  # --addr, or a switch pair: --storage-health/--no-storage-health
    help: str = ""
    choices: tuple[str, ...] = ()  # what the option takes, where not the key's own choices
    existing_file: bool = False
    multiple: bool = False  # repeatable: each use adds an item
    inverted: bool = False  # a switch that sets the key to false (--no-delete)
    value: Callable[[Any], object] | None = None  # the key's raw value for the option's, where not the same
    metavar: str | None = None


def _flagged(flag: Flag | None) -> dict[str, Flag]:
    return {"flag": flag} if flag is not None else {}


def _plain(default: object, flag: Flag) -> Any:
    return field(default=default, metadata=_flagged(flag))


def _listed(flag: Flag | None = None) -> Any:
    return field(default_factory=list, metadata=_flagged(flag))


def _one_of(default: str, allowed: tuple[str, ...], flag: Flag | None = None) -> Any:
    return field(default=default, metadata={"choices": allowed, **_flagged(flag)})


def _within(default: float, minimum: float, maximum: float | None = None, flag: Flag | None = None) -> Any:
    return field(default=default, metadata={"minimum": minimum, "maximum": maximum, **_flagged(flag)})


def _required(flag: Flag | None = None) -> Any:
    return field(default="", metadata={"required": True, **_flagged(flag)})


def _section(cls: type) -> Any:
    return field(default_factory=cls)
