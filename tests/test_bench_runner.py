"""The benchmark runner keeps going when one server fails a round, and reports what failed.

A 500 from registry:2 in one round of one row once ended a whole run with no result written;
these check, with stand-in servers and workloads, that the failed round is recorded and left
out of the medians, the other rounds and rows still count, and the table and JSON say so.
"""

from __future__ import annotations

import json
import os
import pathlib
import types

from bench import runner
from bench.machine import Machine
from bench.report import Row, table, write_json
from bench.servers import Server
from bench.workloads import Metric, Workload


class _FailsOnce(Workload):
    """Measures the round number plus one; registry:2's second round raises."""

    key = "fails-once"
    metrics = (Metric("a row", "s", False), Metric("another row", "x", False))

    def measure(self, server: Server, round_number: int) -> list[float]:
        if server.name == "registry2" and round_number == 1:
            raise RuntimeError("500 Internal Server Error")
        return [round_number + 1.0, 10.0 * (round_number + 1)]


class _CannotPrepare(Workload):
    key = "cannot-prepare"
    metrics = (Metric("never measured", "s", False),)

    def prepare(self, server: Server) -> None:
        raise OSError("no such seed")


def _servers(tmp_path: pathlib.Path) -> list[Server]:
    return [Server(name, tmp_path / name, tmp_path / f"{name}.log") for name in ("dockyard", "registry2")]


def test_a_failed_round_is_recorded_and_the_other_rounds_count(tmp_path: pathlib.Path) -> None:
    rows: list[Row] = []
    runner._run_workload(_FailsOnce(None), _servers(tmp_path), 3, rows)  # type: ignore[arg-type]

    assert [row.workload for row in rows] == ["a row", "another row"]
    first = rows[0]
    assert first.samples == {"dockyard": [1.0, 2.0, 3.0], "registry2": [1.0, 3.0]}
    assert first.failures == {"dockyard": [], "registry2": ["round 2: RuntimeError: 500 Internal Server Error"]}
    assert first.median("registry2") == 2.0
    assert rows[1].failures["registry2"] == first.failures["registry2"]


def test_a_workload_that_cannot_be_prepared_is_a_problem_and_the_next_still_runs(tmp_path: pathlib.Path) -> None:
    rows: list[Row] = []
    problems: list[str] = []
    servers = _servers(tmp_path)
    for server in servers:  # the memory sampler reads /proc of these: this process stands in
        server.process = types.SimpleNamespace(pid=os.getpid())  # type: ignore[assignment]
    runner._measure([_CannotPrepare(None), _FailsOnce(None)], servers, 1, rows, problems)  # type: ignore[arg-type]

    assert problems == ["cannot-prepare: OSError: no such seed"]
    assert [row.workload for row in rows] == ["a row", "another row"]
    assert rows[0].samples == {"dockyard": [1.0], "registry2": [1.0]}


def test_the_table_and_the_json_say_what_failed(tmp_path: pathlib.Path) -> None:
    row = Row("a row", "s", False)
    row.samples = {"dockyard": [1.0], "registry2": [2.0]}
    row.failures["registry2"].append("round 2: RuntimeError: 500")
    machine = Machine(cores=2, memory_mib=1024, cpu="test", python="3", kernel="6")
    problems = ["S3 group (s3-gc): TimeoutError: weed did not start"]

    shown = table([row], machine, {}, problems)
    assert "FAILED: S3 group (s3-gc): TimeoutError: weed did not start" in shown
    assert "FAILED: a row, registry2, round 2: RuntimeError: 500" in shown

    path = tmp_path / "results.json"
    write_json(path, [row], machine, {}, {}, "2026-12-08", [], problems)
    document = json.loads(path.read_text())
    assert document["complete"] is False
    assert document["problems"] == problems
    assert document["rows"][0]["failures"]["registry2"] == ["round 2: RuntimeError: 500"]
    assert document["rows"][0]["ratio"] == 2.0
    assert [item.name for item in tmp_path.iterdir()] == ["results.json"]  # no partial file left


def test_a_run_without_failures_is_complete(tmp_path: pathlib.Path) -> None:
    row = Row("a row", "s", False)
    row.samples = {"dockyard": [1.0], "registry2": [2.0]}
    path = tmp_path / "results.json"
    write_json(path, [row], Machine(cores=2, memory_mib=1024, cpu="test", python="3", kernel="6"), {}, {}, "2026-12-08", [], [])
    assert json.loads(path.read_text())["complete"] is True
