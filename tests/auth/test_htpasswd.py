"""htpasswd files: every format Apache's ``htpasswd`` writes, plain text refused, re-read on change."""

from __future__ import annotations

import logging
import os
import pathlib
import subprocess
import threading

import pytest

from dockyard.auth import htpasswd as htpasswd_module
from dockyard.auth.htpasswd import Htpasswd, parse
from tests.support.auth import fast_hash
from tests.support.tools import require_tool

# Written by Apache's htpasswd (apache2-utils); the crypt line is the seed of the registry:2 docs.
KNOWN_LINES = {
    "crypt": ("eric:ZsF.CKxpJSWLs", "eric", "han"),
    "bcrypt-2y": ("bob:$2y$05$LBp9dIXDCyWOY5gS5EjlD.EJfm81YTQPc1K6X1a6OX1JlL9Jw8PEW", "bob", "bpw"),
    "apr1": ("mia:$apr1$mO8Mv/dO$91IDY4i5Vkk5pj2S63NcT/", "mia", "mpw"),
    "sha1": ("sam:{SHA}wgemhMRKqHey3OKSxoDLEEMkro0=", "sam", "spw"),
    "crypt-d": ("dan:9mhmAAveufce6", "dan", "dpw"),
}


def load(path: pathlib.Path, text: str) -> Htpasswd:
    path.write_text(text)
    return Htpasswd(path)


@pytest.mark.parametrize("kind", sorted(KNOWN_LINES))
async def test_known_lines_verify(tmp_path: pathlib.Path, kind: str) -> None:
    line, user, password = KNOWN_LINES[kind]
    users = load(tmp_path / "htpasswd", line + "\n")
    assert users.users == [user]
    assert await users.verify(user, password) is True
    assert await users.verify(user, password + "x") is False
    assert await users.verify(user, password.upper()) is False
    assert await users.verify(user, "") is False


async def test_seed_line_eric_han(tmp_path: pathlib.Path) -> None:
    users = load(tmp_path / "htpasswd", "eric:ZsF.CKxpJSWLs\n")
    assert await users.verify("eric", "han") is True
    assert await users.verify("eric", "Han") is False
    assert await users.verify("han", "eric") is False


@pytest.mark.parametrize(
    ("flag", "prefix"),
    [("-B", "$2y$"), ("-m", "$apr1$"), ("-s", "{SHA}"), ("-d", "")],
)
async def test_files_made_by_apache_htpasswd(tmp_path: pathlib.Path, flag: str, prefix: str) -> None:
    tool = require_tool("htpasswd")["htpasswd"]
    path = tmp_path / "htpasswd"
    extra = ["-C", "5"] if flag == "-B" else []
    subprocess.run([tool, "-c", "-b", flag, *extra, str(path), "alice", "s3cret-pw"], check=True, capture_output=True)
    subprocess.run([tool, "-b", flag, *extra, str(path), "bob", "other-pw"], check=True, capture_output=True)
    hashes = dict(line.split(":", 1) for line in path.read_text().splitlines())
    assert sorted(hashes) == ["alice", "bob"]
    assert all(value.startswith(prefix) for value in hashes.values()), hashes
    users = Htpasswd(path)
    assert users.users == ["alice", "bob"]
    # crypt (-d) uses only the first 8 characters: "s3cret-pw" and "s3cret-p" are the same to it.
    assert await users.verify("alice", "s3cret-pw") is True
    assert await users.verify("bob", "other-pw") is True
    assert await users.verify("alice", "other-pw") is False
    assert await users.verify("bob", "s3cret-pw") is False


async def test_plain_text_is_refused_with_a_warning(tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    tool = require_tool("htpasswd")["htpasswd"]
    path = tmp_path / "htpasswd"
    subprocess.run([tool, "-c", "-b", "-p", str(path), "pat", "plain-pw"], check=True, capture_output=True)
    assert path.read_text() == "pat:plain-pw\n"
    with caplog.at_level(logging.WARNING, logger="dockyard.auth"):
        users = Htpasswd(path)
    assert users.users == []
    assert await users.verify("pat", "plain-pw") is False
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "line 1 (user pat): plain-text" in warnings[0]
    assert "plain-pw" not in warnings[0]


def test_parse_skips_plain_text_comments_and_malformed_lines(caplog: pytest.LogCaptureFixture) -> None:
    text = "# comment\n\nplain:password123\nnocolon\n:nouser\n" + KNOWN_LINES["crypt"][0] + "\n"
    with caplog.at_level(logging.WARNING, logger="dockyard.auth"):
        entries = parse(text, "users.txt")
    assert entries == {"eric": "ZsF.CKxpJSWLs"}
    messages = sorted(record.getMessage() for record in caplog.records)
    assert messages == [
        "users.txt line 3 (user plain): plain-text or unknown password scheme refused; use bcrypt (htpasswd -B)",
        "users.txt line 4 is not USER:HASH: ignored",
        "users.txt line 5 is not USER:HASH: ignored",
    ]
    assert all("password123" not in message for message in messages)


async def test_unknown_user_is_false_and_still_costs_a_bcrypt(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    users = load(tmp_path / "htpasswd", KNOWN_LINES["crypt"][0] + "\n")
    calls: list[str] = []
    real = htpasswd_module._check_bcrypt
    monkeypatch.setattr(htpasswd_module, "_check_bcrypt", lambda password, hashed: calls.append(hashed) or real(password, hashed))
    assert await users.verify("nobody", "han") is False
    assert await users.verify("", "") is False
    assert calls == [htpasswd_module._DUMMY_HASH.decode()] * 2


async def test_reread_when_the_file_changes(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "htpasswd"
    users = load(path, KNOWN_LINES["crypt"][0] + "\n")
    assert await users.verify("eric", "han") is True  # now cached
    assert await users.verify("mia", "mpw") is False

    # A user added: the file grows.
    with open(path, "a") as file:
        file.write(KNOWN_LINES["apr1"][0] + "\n")
    assert await users.verify("mia", "mpw") is True
    assert users.users == ["eric", "mia"]

    # eric's password changed in place to one of the same length (only the mtime tells).
    stat = path.stat()
    path.write_text(KNOWN_LINES["apr1"][0] + "\neric:9mhmAAveufce6\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert path.stat().st_size == stat.st_size
    assert await users.verify("eric", "han") is False, "the cached success must be dropped with the old file"
    assert await users.verify("eric", "dpw") is True

    # Replaced by another file (a new inode), as ``dockyard user`` writes it.
    htpasswd_module.write_entries(path, {"sam": "{SHA}wgemhMRKqHey3OKSxoDLEEMkro0="})
    assert await users.verify("eric", "dpw") is False
    assert await users.verify("sam", "spw") is True
    assert users.users == ["sam"]


async def test_a_success_checked_while_the_password_changes_is_not_cached_for_the_new_one(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "htpasswd"
    users = load(path, KNOWN_LINES["bcrypt-2y"][0] + "\n")
    real = htpasswd_module._check_bcrypt

    def password_changed_meanwhile(password: str, hashed: str) -> bool:
        # While bcrypt runs in its thread, bob gets a new password and another request re-reads the file.
        htpasswd_module.write_entries(path, {"bob": fast_hash("new-pw")})
        users.reload_if_changed()
        return real(password, hashed)

    monkeypatch.setattr(htpasswd_module, "_check_bcrypt", password_changed_meanwhile)
    assert await users.verify("bob", "bpw") is True  # right for the entry of when it was asked
    monkeypatch.setattr(htpasswd_module, "_check_bcrypt", real)
    assert await users.verify("bob", "bpw") is False
    assert await users.verify("bob", "new-pw") is True


async def test_removed_file_keeps_the_users_read_before(tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "htpasswd"
    users = load(path, KNOWN_LINES["crypt"][0] + "\n")
    path.unlink()
    with caplog.at_level(logging.ERROR, logger="dockyard.auth"):
        assert await users.verify("eric", "han") is True
    assert any("keeping the users read before" in record.getMessage() for record in caplog.records)


def test_missing_file_at_start_raises(tmp_path: pathlib.Path) -> None:
    with pytest.raises(FileNotFoundError):
        Htpasswd(tmp_path / "absent")


async def test_bcrypt_runs_off_the_event_loop(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    users = load(tmp_path / "htpasswd", KNOWN_LINES["bcrypt-2y"][0] + "\n")
    threads: list[threading.Thread] = []
    real = htpasswd_module._check_bcrypt

    def spy(password: str, hashed: str) -> bool:
        threads.append(threading.current_thread())
        return real(password, hashed)

    monkeypatch.setattr(htpasswd_module, "_check_bcrypt", spy)
    assert await users.verify("bob", "bpw") is True
    assert await users.verify("bob", "wrong") is False
    assert len(threads) == 2
    assert all(thread is not threading.main_thread() for thread in threads)


async def test_cache_keeps_successes_only(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    users = load(tmp_path / "htpasswd", KNOWN_LINES["bcrypt-2y"][0] + "\n")
    calls: list[str] = []
    real = htpasswd_module._check_bcrypt
    monkeypatch.setattr(htpasswd_module, "_check_bcrypt", lambda password, hashed: calls.append(password) or real(password, hashed))
    for _ in range(5):
        assert await users.verify("bob", "bpw") is True
    for _ in range(3):
        assert await users.verify("bob", "nope") is False
    assert calls == ["bpw", "nope", "nope", "nope"]
    # A wrong password after a cached success is still wrong.
    assert await users.verify("bob", "bpw2") is False
    assert calls[-1] == "bpw2"
