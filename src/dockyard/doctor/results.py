"""One check's result, and the verdict over all of them."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class Outcome(enum.Enum):
    OK = "ok"
    WARN = "warn"  # works, but worth fixing (or works for some clients only in ways that do not stop them)
    FAIL = "fail"  # docker, podman or skopeo will refuse or break


@dataclass(frozen=True)
class Check:
    name: str
    outcome: Outcome
    message: str
    fix: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "outcome": self.outcome.value, "message": self.message, "fix": self.fix}


def ok(name: str, message: str) -> Check:
    return Check(name, Outcome.OK, message)


def warn(name: str, message: str, fix: str) -> Check:
    return Check(name, Outcome.WARN, message, fix)


def fail(name: str, message: str, fix: str) -> Check:
    return Check(name, Outcome.FAIL, message, fix)


def passed(checks: Sequence[Check]) -> bool:
    """Nothing that would stop docker, podman or skopeo."""
    return all(check.outcome is not Outcome.FAIL for check in checks)


def summary(target: str, checks: Sequence[Check]) -> str:
    failed = sum(check.outcome is Outcome.FAIL for check in checks)
    warned = sum(check.outcome is Outcome.WARN for check in checks)
    counts = f"{len(checks)} checks, {failed} failed, {warned} with warnings"
    if failed:
        return f"{target}: {counts}: docker, podman or skopeo will fail until the failures are fixed"
    return f"{target}: {counts}: nothing stops docker, podman or skopeo"
