"""Results: medians and ratios per metric, printed as a table and written as JSON.

The ratio is always oriented so that > 1 means Dockyard wins: Dockyard/registry:2
for rates, registry:2/Dockyard for wall times, latencies and memory.
"""

from __future__ import annotations

import json
import pathlib
import statistics
from dataclasses import asdict, dataclass, field

from bench.machine import Machine

SERVERS = ("dockyard", "registry2")


@dataclass
class Row:
    workload: str
    unit: str
    higher_is_better: bool
    samples: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in SERVERS})
    # rounds that raised instead of measuring, per server: "round N: error"; the medians leave them out
    failures: dict[str, list[str]] = field(default_factory=lambda: {name: [] for name in SERVERS})

    def median(self, server: str) -> float:
        values = self.samples[server]
        return statistics.median(values) if values else float("nan")

    @property
    def ratio(self) -> float:
        dockyard, registry2 = self.median("dockyard"), self.median("registry2")
        mine, theirs = (dockyard, registry2) if self.higher_is_better else (registry2, dockyard)
        return mine / theirs if theirs else float("nan")

    def as_json(self) -> dict[str, object]:
        return {
            **asdict(self),
            "dockyard": self.median("dockyard"),
            "registry2": self.median("registry2"),
            "ratio": self.ratio,
        }


def _number(value: float) -> str:
    if value != value:  # NaN
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.4f}"


def table(rows: list[Row], machine: Machine, limits: dict[str, float], problems: list[str]) -> str:
    """The rows as a Markdown table, then what failed (``problems``: whole row groups that could not
    run; each row's failed rounds) and the machine's limits."""
    header = ("workload", "unit", "Dockyard", "registry:2", "ratio")
    lines = [
        (row.workload, row.unit + (" ↑" if row.higher_is_better else " ↓"),
         _number(row.median("dockyard")), _number(row.median("registry2")), f"{row.ratio:.2f}")
        for row in rows
    ]
    widths = [max(len(str(cells[i])) for cells in [header, *lines]) for i in range(len(header))]

    def render(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(
            cell.ljust(width) if i < 2 else cell.rjust(width) for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ) + " |"

    out = [render(header), "|" + "|".join(("-" * (w + 2)) for w in widths) + "|", *map(render, lines)]
    out.append("")
    failed = [f"{row.workload}, {name}, {failure}" for row in rows for name, failures in row.failures.items() for failure in failures]
    out += [f"FAILED: {problem}" for problem in problems + failed]
    out.append("ratio > 1: Dockyard wins (↑ higher is better: Dockyard/registry:2; ↓ lower is better: registry:2/Dockyard)")
    out.append(
        f"machine: {machine.cores} cores, {machine.memory_mib} MiB, {machine.cpu}; "
        + ", ".join(f"{name} {_number(value)}" for name, value in limits.items())
    )
    return "\n".join(out)


def complete(rows: list[Row], problems: list[str]) -> bool:
    """Whether the run measured everything it set out to: no problem and no failed round."""
    return not problems and not any(any(row.failures.values()) for row in rows)


def write_json(path: pathlib.Path, rows: list[Row], machine: Machine, limits: dict[str, float],
               settings: dict[str, object], date: str, notes: list[str], problems: list[str]) -> None:
    document = {
        "date": date,
        "complete": complete(rows, problems),
        "problems": problems,
        **asdict(machine),
        "settings": settings,
        "machine_limits": limits,
        "rows": [row.as_json() for row in rows],
        "notes": notes,
    }
    partial = path.with_name(path.name + ".partial")  # renamed into place: never a half-written file
    partial.write_text(json.dumps(document, indent=2, default=str) + "\n")
    partial.replace(path)
