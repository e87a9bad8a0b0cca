"""Limits on the shape of the sources: no function takes more than 12 parameters (settings
travel as one tree, not as keyword bags), no module is over 700 lines, and a server imports
no heavy library its configuration does not use (each costs every process megabytes)."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

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


# Builds the application as `dockyard serve` does, on a filesystem root without redis or
# letsencrypt, for plain HTTP or (with a second argument) for TLS with a generated CA; prints
# the top-level packages then imported, and on a second line the modules that building the
# app imported (in each worker, after forking).
_SERVE_IMPORTS = """
import sys
from dockyard.commands import serve
from dockyard.config import load

flags = {"root": sys.argv[1], "tls_dir": sys.argv[2]} if len(sys.argv) > 2 else {"root": sys.argv[1], "insecure_http": True}
settings = load(None, {}, flags).settings
prepared = serve._prepare(settings)
before = set(sys.modules)
serve.build_app(settings, prepared)
print(" ".join(sorted({name.split(".")[0] for name in sys.modules})))
print(" ".join(sorted(set(sys.modules) - before)))
"""


def _serve_imports(folder: pathlib.Path, tls: bool) -> list[list[str]]:
    """The two lines :data:`_SERVE_IMPORTS` prints, each split in names."""
    arguments = [str(folder / "root"), *([str(folder / "tls")] if tls else [])]
    run = subprocess.run([sys.executable, "-c", _SERVE_IMPORTS, *arguments], capture_output=True, text=True, timeout=60, check=True)
    return [line.split() for line in run.stdout.split("\n")[:2]]


@pytest.fixture(scope="module")
def serve_imports(tmp_path_factory: pytest.TempPathFactory) -> list[list[str]]:
    return _serve_imports(tmp_path_factory.mktemp("serve-imports"), tls=False)


def test_serving_imports_no_library_its_configuration_does_not_use(serve_imports: list[list[str]]) -> None:
    imported = set(serve_imports[0])
    assert {"aiohttp", "dockyard"} <= imported, imported
    # redis-py: only with a redis section; acme, josepy, requests: only with http.tls.letsencrypt;
    # botocore: only with S3 storage; passlib: only for an htpasswd file's older hash schemes;
    # ldap3 (~5 MiB a process): only with a dockyard.ldap section; cryptography (~9 MiB: its Rust
    # library's pages and its objects) and jwt: only with token auth or the web UI's sessions.
    assert imported & {"redis", "acme", "josepy", "requests", "botocore", "aiobotocore", "passlib", "ldap3", "cryptography", "jwt"} == set()


def test_a_tls_server_leaves_its_certificates_to_a_child_interpreter(tmp_path: pathlib.Path) -> None:
    # Making the CA and the server certificate needs cryptography; the serving processes never load it.
    imported, _ = _serve_imports(tmp_path, tls=True)
    assert "ssl" in imported and "cryptography" not in imported
    assert {"ca.crt", "server.crt", "server.key"} <= {path.name for path in (tmp_path / "tls").iterdir()}


def test_workers_import_nothing_the_parent_has_not(serve_imports: list[list[str]]) -> None:
    # What a worker imports after forking is its own copy; what the parent imported, workers share.
    assert serve_imports[1] == []
