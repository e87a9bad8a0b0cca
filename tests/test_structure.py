"""Limits on the shape of the sources: no function takes more than 12 parameters (settings
travel as one tree, not as keyword bags) and no module is over 700 lines."""

from __future__ import annotations

import ast
import pathlib

SOURCES = pathlib.Path(__file__).parents[1] / "src" / "dockyard"
MAX_PARAMETERS = 12
MAX_LINES = 700


def _modules() -> list[pathlib.Path]:
    found = sorted(SOURCES.rglob("*.py"))
    assert found, SOURCES
    return found


def _parameters(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    arguments = function.args
    every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs, arguments.vararg, arguments.kwarg]
    return sum(1 for argument in every if argument is not None and argument.arg not in ("self", "cls"))


def test_no_function_takes_more_than_twelve_parameters() -> None:
    over = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _parameters(node) > MAX_PARAMETERS:
                over.append(f"{path.relative_to(SOURCES)}:{node.lineno} {node.name} ({_parameters(node)})")
    assert over == []


def test_no_module_is_over_seven_hundred_lines() -> None:
    over = [f"{path.relative_to(SOURCES)} ({lines})" for path in _modules() if (lines := len(path.read_text().splitlines())) > MAX_LINES]
    assert over == []
