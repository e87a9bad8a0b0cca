"""``dockyard user add|passwd|remove|list``: bcrypt, mode 0600, one-line errors."""

from __future__ import annotations

import os
import pathlib
import re
import stat
import subprocess
import sys

import bcrypt
import pytest
from click.testing import CliRunner

from dockyard.cli import main


def dockyard_user(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", "user", *args],
        input=stdin if stdin is not None else "", capture_output=True, text=True, timeout=60,
    )


def entries(path: pathlib.Path) -> dict[str, str]:
    return dict(line.split(":", 1) for line in path.read_text().splitlines())


def assert_one_line_error(result: subprocess.CompletedProcess[str], message: str, code: int = 1) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == message, result.stderr
    if code == 1:
        assert len(lines) == 1, result.stderr


def test_add_passwd_remove_list(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "auth" / "htpasswd"
    result = dockyard_user("add", "alice", "--htpasswd", str(path), "--password-stdin", stdin="alice-pw\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"added alice to {path}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    hashed = entries(path)["alice"]
    found = re.fullmatch(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}", hashed)
    assert found, hashed
    assert int(found.group(1)) >= 10
    assert bcrypt.checkpw(b"alice-pw", hashed.encode())
    assert not bcrypt.checkpw(b"alice-pw\n", hashed.encode())

    assert dockyard_user("add", "bob", "--htpasswd", str(path), "--password-stdin", stdin="bob-pw\r\n").returncode == 0
    assert bcrypt.checkpw(b"bob-pw", entries(path)["bob"].encode())
    result = dockyard_user("list", "--htpasswd", str(path))
    assert (result.returncode, result.stdout) == (0, "alice\nbob\n")

    result = dockyard_user("passwd", "alice", "--htpasswd", str(path), "--password-stdin", stdin="new-pw\n")
    assert (result.returncode, result.stdout) == (0, "changed the password of alice\n")
    assert bcrypt.checkpw(b"new-pw", entries(path)["alice"].encode())
    assert not bcrypt.checkpw(b"alice-pw", entries(path)["alice"].encode())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    result = dockyard_user("remove", "bob", "--htpasswd", str(path))
    assert (result.returncode, result.stdout) == (0, f"removed bob from {path}\n")
    assert sorted(entries(path)) == ["alice"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [name for name in os.listdir(path.parent)] == ["htpasswd"]  # no temporary files left


def test_other_formats_are_kept(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "htpasswd"
    path.write_text("eric:ZsF.CKxpJSWLs\nmia:$apr1$mO8Mv/dO$91IDY4i5Vkk5pj2S63NcT/\n")
    assert dockyard_user("add", "zed", "--htpasswd", str(path), "--password-stdin", stdin="z\n").returncode == 0
    found = entries(path)
    assert found["eric"] == "ZsF.CKxpJSWLs"
    assert found["mia"] == "$apr1$mO8Mv/dO$91IDY4i5Vkk5pj2S63NcT/"
    assert sorted(found) == ["eric", "mia", "zed"]


def test_duplicate_add_is_refused(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "htpasswd"
    assert dockyard_user("add", "alice", "--htpasswd", str(path), "--password-stdin", stdin="one\n").returncode == 0
    before = path.read_text()
    result = dockyard_user("add", "alice", "--htpasswd", str(path), "--password-stdin", stdin="two\n")
    assert_one_line_error(result, f"Error: user alice exists in {path}: use 'dockyard user passwd'")
    assert path.read_text() == before


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("passwd", "nobody"), "pw\n", "Error: no user nobody in {path}"),
        (("remove", "nobody"), None, "Error: no user nobody in {path}"),
        (("add", "carol"), "\n", "Error: the password is empty"),
        (("add", "carol"), "", "Error: the password is empty"),
    ],
)
def test_errors_are_one_line(tmp_path: pathlib.Path, args: tuple[str, ...], stdin: str | None, message: str) -> None:
    path = tmp_path / "htpasswd"
    assert dockyard_user("add", "alice", "--htpasswd", str(path), "--password-stdin", stdin="pw\n").returncode == 0
    before = path.read_text()
    extra = ["--password-stdin"] if args[0] != "remove" else []
    result = dockyard_user(*args, "--htpasswd", str(path), *extra, stdin=stdin)
    assert_one_line_error(result, message.format(path=path))
    assert path.read_text() == before


@pytest.mark.parametrize("command", [("list",), ("remove", "alice"), ("passwd", "alice", "--password-stdin")])
def test_missing_file(tmp_path: pathlib.Path, command: tuple[str, ...]) -> None:
    path = tmp_path / "absent"
    result = dockyard_user(*command, "--htpasswd", str(path), stdin="pw\n")
    assert_one_line_error(result, f"Error: {path} does not exist")
    assert not path.exists()


def test_unwritable_place(tmp_path: pathlib.Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    path = blocker / "htpasswd"
    result = dockyard_user("add", "alice", "--htpasswd", str(path), "--password-stdin", stdin="pw\n")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"Error: cannot write {path}: ")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["a:b", "with space", "tab\there"])
def test_bad_names(tmp_path: pathlib.Path, name: str) -> None:
    path = tmp_path / "htpasswd"
    result = dockyard_user("add", name, "--htpasswd", str(path), "--password-stdin", stdin="pw\n")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "Invalid value for NAME: a user name has no colon and no white space" in result.stderr
    assert not path.exists()


def test_interactive_prompt_asks_twice(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "htpasswd"
    result = CliRunner().invoke(main, ["user", "add", "dora", "--htpasswd", str(path)], input="secret-1\nsecret-1\n")
    assert result.exit_code == 0, result.output
    assert "secret-1" not in result.output  # hidden input
    assert bcrypt.checkpw(b"secret-1", entries(path)["dora"].encode())
    result = CliRunner().invoke(main, ["user", "passwd", "dora", "--htpasswd", str(path)], input="a\nb\nsecret-2\nsecret-2\n")
    assert result.exit_code == 0, result.output
    assert "Error: The two entered values do not match." in result.output
    assert bcrypt.checkpw(b"secret-2", entries(path)["dora"].encode())


def test_added_users_log_in(tmp_path: pathlib.Path) -> None:
    """What ``dockyard user`` writes, the server reads."""
    import asyncio

    from dockyard.auth.htpasswd import Htpasswd

    path = tmp_path / "htpasswd"
    assert dockyard_user("add", "alice", "--htpasswd", str(path), "--password-stdin", stdin="alice-pw\n").returncode == 0
    users = Htpasswd(path)
    assert asyncio.run(users.verify("alice", "alice-pw")) is True
    assert asyncio.run(users.verify("alice", "alice-pw ")) is False
