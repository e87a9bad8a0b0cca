"""``dockyard config check|show``: one-line results, exit codes, secrets masked."""

from __future__ import annotations

import os
import pathlib

import pytest
import yaml
from click.testing import CliRunner, Result

from dockyard.cli import main
from dockyard.config import MASK
from tests.support.registry2 import DEFAULT_CONFIG


@pytest.fixture(autouse=True)
def no_registry_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("REGISTRY_"):
            monkeypatch.delenv(name)


def dockyard(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, ["config", *args], env=env)


def config_file(tmp_path: pathlib.Path, text: str) -> pathlib.Path:
    path = tmp_path / "config.yml"
    path.write_text(text)
    return path


def assert_one_line_error(result: Result, message: str) -> None:
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"Error: {message}"]


def test_check_ok(tmp_path: pathlib.Path) -> None:
    path = config_file(tmp_path, DEFAULT_CONFIG)
    result = dockyard("check", str(path))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"OK: {path} (storage filesystem, addr :5000, auth none)\n"
    assert result.stderr == ""


def test_check_error_names_the_key(tmp_path: pathlib.Path) -> None:
    path = config_file(tmp_path, DEFAULT_CONFIG.replace("addr: :5000", "addr: 5000"))
    assert_one_line_error(dockyard("check", str(path)), "http.addr: expected HOST:PORT, got 5000")


def test_check_reads_the_variables(tmp_path: pathlib.Path) -> None:
    path = config_file(tmp_path, DEFAULT_CONFIG)
    result = dockyard("check", str(path), env={"REGISTRY_AUTH": "htpasswd", "REGISTRY_AUTH_HTPASSWD_REALM": "r", "REGISTRY_AUTH_HTPASSWD_PATH": "/h"})
    assert result.stdout == f"OK: {path} (storage filesystem, addr :5000, auth htpasswd)\n"
    assert_one_line_error(dockyard("check", str(path), env={"REGISTRY_LOG_LEVEL": "loud"}), "log.level: expected one of error, warn, info, debug, got loud")


def test_check_says_what_serve_cannot_do(tmp_path: pathlib.Path) -> None:
    path = config_file(tmp_path, "version: 0.1\nstorage:\n  inmemory:\nhttp:\n  tls:\n    clientauth: verify-client-cert-if-given\n")
    message = "http.tls.clientauth: verify-client-cert-if-given needs http.tls.clientcas, the CAs that issue client certificates"
    assert_one_line_error(dockyard("check", str(path)), message)


def test_check_missing_file(tmp_path: pathlib.Path) -> None:
    assert_one_line_error(dockyard("check", str(tmp_path / "absent.yml")), f"{tmp_path / 'absent.yml'}: No such file or directory")


def test_check_warns_on_standard_error_and_passes(tmp_path: pathlib.Path) -> None:
    path = config_file(tmp_path, DEFAULT_CONFIG + "http2:\n  disabled: true\n")
    result = dockyard("check", str(path), env={"REGISTRY_AUTH_FILE": "/run/auth.json"})
    assert result.exit_code == 0
    assert result.stdout.startswith("OK: ")
    assert result.stderr.splitlines() == [
        "warning: REGISTRY_AUTH_FILE: matches no configuration key, ignored",
        "warning: http2: unknown key, ignored",
    ]


def test_show_masks_secrets(tmp_path: pathlib.Path) -> None:
    path = config_file(tmp_path, "version: 0.1\nstorage:\n  s3: {region: r, bucket: b, secretkey: s3-secret-value}\nhttp:\n  secret: http-secret-value\n")
    result = dockyard("show", "--config", str(path))
    assert result.exit_code == 0, result.stderr
    shown = yaml.safe_load(result.stdout)
    assert shown["storage"]["s3"]["secretkey"] == MASK
    assert shown["http"]["secret"] == MASK
    assert "secret-value" not in result.stdout


def test_show_without_a_file_is_serves_defaults_with_the_variables() -> None:
    result = dockyard("show", env={"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/data"})
    assert result.exit_code == 0, result.stderr
    shown = yaml.safe_load(result.stdout)
    assert shown["storage"]["filesystem"]["rootdirectory"] == "/data"
    assert shown["storage"]["delete"] == {"enabled": True}
    assert shown["http"]["addr"] == ":5000"


def test_show_error_is_one_line(tmp_path: pathlib.Path) -> None:
    path = config_file(tmp_path, DEFAULT_CONFIG.replace("interval: 10s", "interval: often"))
    assert_one_line_error(dockyard("show", "--config", str(path)), "health.storagedriver.interval: expected a duration like 300s, 10m or 1h30m, got often")


def test_config_is_a_dockyard_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert "config" in result.stdout.split("Commands:")[1].split()
