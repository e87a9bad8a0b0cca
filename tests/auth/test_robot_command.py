"""``dockyard robot add|list|remove``: the secret once, on the last line; one-line errors."""

from __future__ import annotations

import hashlib
import json
import pathlib
import subprocess
import sys

import pytest
from click.testing import CliRunner, Result

from dockyard.cli import main
from dockyard.storage import paths


@pytest.fixture
def root(tmp_path: pathlib.Path) -> pathlib.Path:
    """A storage root as ``dockyard serve`` leaves it."""
    root = tmp_path / "root"
    (root / paths.ROOT.lstrip("/")).mkdir(parents=True)
    return root


def robot(*args: str | pathlib.Path) -> Result:
    return CliRunner().invoke(main, ["robot", *map(str, args)])


def assert_one_line_error(result: Result, message: str) -> None:
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit)  # no traceback
    lines = result.output.strip().splitlines()
    assert lines[-1] == f"Error: {message}", result.output


def record(root: pathlib.Path, name: str) -> dict:
    return json.loads((root / paths.robot_record(name).lstrip("/")).read_text())


def test_add_list_remove(root: pathlib.Path) -> None:
    added = robot("add", "ci-builder", "--pull", "team/*", "--pull", "base/**", "--push", "team/ci", "--expires", "90d", "--root", root)
    assert added.exit_code == 0, added.output
    secret = added.output.splitlines()[-1]
    assert "robot$ci-builder" in added.output and "pull team/* base/**; push team/ci" in added.output
    stored = record(root, "ci-builder")
    assert stored["secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in json.dumps(stored)
    assert stored["pull"] == ["team/*", "base/**"] and stored["push"] == ["team/ci"] and stored["delete"] == []
    assert stored["expires"] - stored["created"] == pytest.approx(90 * 86400)

    assert robot("add", "reader", "--pull", "**", "--root", root).exit_code == 0
    listed = robot("list", "--root", root).output.splitlines()
    assert listed[0].split() == ["NAME", "PERMISSIONS", "EXPIRES", "LAST", "USED"]
    assert [line.split()[0] for line in listed[1:]] == ["robot$ci-builder", "robot$reader"]
    assert listed[2].split()[-2:] == ["never", "never"]  # no expiry, never used

    removed = robot("remove", "ci-builder", "--root", root)
    assert removed.exit_code == 0 and removed.output == "removed robot$ci-builder\n"
    assert robot("remove", "robot$reader", "--root", root).exit_code == 0  # as list names it
    assert robot("list", "--root", root).output.splitlines()[1:] == []
    assert not (root / paths.robot("ci-builder").lstrip("/")).exists()


def test_errors(root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    assert robot("add", "ci", "--pull", "a/*", "--root", root).exit_code == 0
    assert_one_line_error(robot("add", "ci", "--pull", "b/*", "--root", root), "robot ci exists: remove it first to make a new secret")
    assert record(root, "ci")["pull"] == ["a/*"]  # unchanged
    assert_one_line_error(robot("add", "other", "--root", root), "a robot needs at least one --pull, --push or --delete repository glob")
    result = robot("add", "Other", "--pull", "a", "--root", root)
    assert result.exit_code == 1 and "lowercase letters and digits" in result.output.splitlines()[-1]
    result = robot("add", "other", "--pull", "a", "--expires", "soon", "--root", root)
    assert result.exit_code == 2 and "expected a lifetime like 90d" in result.output
    assert_one_line_error(robot("remove", "nobody", "--root", root), "no robot nobody")
    assert_one_line_error(robot("list", "--root", tmp_path / "missing"), f"storage root {tmp_path / 'missing'} does not exist")
    assert robot("list").exit_code == 2  # neither --root nor --config
    assert [path.name for path in (root / paths.ROBOTS.lstrip("/")).iterdir()] == ["ci"]


def test_the_command_prints_only_the_secret_on_its_last_line_and_errors_in_one(root: pathlib.Path) -> None:
    command = [sys.executable, "-m", "dockyard", "robot", "add", "ci", "--push", "a/*", "--root", str(root)]
    added = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert added.returncode == 0 and added.stderr == ""
    secret = added.stdout.splitlines()[-1]
    assert record(root, "ci")["secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest()
    again = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and again.stdout == ""
    assert again.stderr == "Error: robot ci exists: remove it first to make a new secret\n"
