"""Running ``dockyard doctor`` in the tests: with ``--json``, against a client configuration
(``/etc/docker``, ``/etc/containers``) kept in a temporary folder."""

from __future__ import annotations

import json
import pathlib
import traceback
from dataclasses import dataclass
from typing import Any

from click.testing import CliRunner

from dockyard.cli import main
from tests.proxy.topologies import dockyard_cli


@dataclass
class Diagnosis:
    exit_code: int
    checks: dict[str, dict[str, Any]]
    output: str

    def outcome(self, name: str) -> str:
        assert name in self.checks, self.output
        return self.checks[name]["outcome"]

    def named(self, outcome: str) -> set[str]:
        return {name for name, check in self.checks.items() if check["outcome"] == outcome}


def run_doctor(address: str, root: pathlib.Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Diagnosis:
    """The push test's slow upload (65 s by default) is left out unless a test asks for it with --long-request."""
    if "--push-test" in args and "--long-request" not in args:
        args = (*args, "--long-request", "0")
    result = CliRunner().invoke(main, ["doctor", address, "--root", str(root), "--json", *args], input=stdin, env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), "".join(traceback.format_exception(*result.exc_info))
    assert result.exit_code in (0, 1), result.output
    document = json.loads(result.stdout)
    assert document["passed"] == (result.exit_code == 0)
    checks = {check["name"]: check for check in document["checks"]}
    assert len(checks) == len(document["checks"]), result.output  # one line per check
    return Diagnosis(result.exit_code, checks, result.output)


def client_machine(path: pathlib.Path) -> pathlib.Path:
    """A machine with docker and podman installed and nothing configured for any registry."""
    for folder in ("etc/docker", "etc/containers"):
        (path / folder).mkdir(parents=True)
    return path


def trust(root: pathlib.Path, host_port: str, ca: pathlib.Path) -> None:
    """``dockyard trust`` for docker and podman under ``root``, as an administrator would."""
    dockyard_cli("trust", host_port, "--ca", ca, "--root", root)
