"""The deployment files in deploy/: parseable, and agreeing with the CLI they start.

No Docker build or compose run here (see deploy/README.md); these checks catch a file
that no longer matches Dockyard: an option renamed, a variable no key reads, an nginx
site that ``dockyard proxy-config nginx`` would no longer write.
"""

from __future__ import annotations

import json
import pathlib
import re
import shlex
import shutil
import subprocess

import click
import pytest
import yaml
from click.testing import CliRunner

from dockyard.cli import main
from dockyard.commands.serve import serve
from dockyard.config import load

DEPLOY = pathlib.Path(__file__).parents[1] / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
UNIT = DEPLOY / "dockyard.service"
DOCKERFILE = DEPLOY / "Dockerfile"


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    section = ""
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return settings


def serve_option_names() -> set[str]:
    return {name for param in serve.params for name in getattr(param, "opts", [])}


def test_compose_file() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert set(services) == {"dockyard", "nginx"}
    dockyard = services["dockyard"]
    assert dockyard["ports"] == ["127.0.0.1:5000:5000"]
    assert dockyard["volumes"] == ["./data:/data"]
    environment = {name: str(value) for name, value in dockyard["environment"].items()}
    assert environment["REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY"] == "/data"
    assert dockyard["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (DEPLOY / dockyard["build"]["context"] / dockyard["build"]["dockerfile"]).resolve() == DOCKERFILE.resolve()
    # Every variable is one Dockyard reads, with no warning, to the settings intended.
    loaded = load(None, environment)
    assert loaded.warnings == ()
    settings = loaded.settings
    assert settings.storage.root == pathlib.Path("/data")
    assert settings.plain_http is True
    subnet = compose["networks"]["registry"]["ipam"]["config"][0]["subnet"]
    assert settings.dockyard.trusted_proxies == [subnet]
    nginx = services["nginx"]
    assert nginx["ports"] == ["5043:443"]  # as in the registry:2 guide
    assert nginx["volumes"] == ["./nginx/:/etc/nginx/conf.d:ro"]
    assert set(nginx["networks"]) == set(dockyard["networks"]) == {"registry"}


def test_compose_nginx_site_is_what_proxy_config_writes() -> None:
    """deploy/nginx/dockyard.conf is the output of the command the compose file documents."""
    text = COMPOSE.read_text()
    command = re.search(r"#\s+(dockyard proxy-config nginx .*?) > nginx/dockyard\.conf", text, re.S)
    assert command, "the compose file documents how its nginx site is made"
    args = shlex.split(command.group(1).replace("\\\n#", " "))[1:]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "server dockyard:5000;" in result.output
    assert (DEPLOY / "nginx" / "dockyard.conf").read_text() == result.output


def test_unit_file() -> None:
    settings = unit_settings()
    assert settings["Service.ExecStart"] == ["/opt/dockyard/bin/dockyard serve --config /etc/dockyard/config.yml"]
    assert settings["Service.User"] == ["dockyard"]
    assert settings["Service.NoNewPrivileges"] == ["yes"]
    assert settings["Service.ProtectSystem"] == ["strict"]
    assert settings["Service.Restart"] == ["on-failure"]
    assert settings["Service.KillSignal"] == ["SIGTERM"]
    assert "Service.TimeoutStopSec" in settings
    writable = " ".join(settings["Service.ReadWritePaths"]).split()
    assert writable == ["/var/lib/dockyard", "/var/lib/dockyard-tls"]
    assert settings["Install.WantedBy"] == ["multi-user.target"]
    # The command it runs exists: `dockyard serve --config FILE`.
    argv = shlex.split(settings["Service.ExecStart"][0])
    assert argv[1] == "serve" and "--config" in serve_option_names()


def test_unit_file_passes_systemd_analyze(tmp_path: pathlib.Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # /opt/dockyard/bin/dockyard is not installed here: check the rest with a binary that exists.
    unit = tmp_path / "dockyard.service"
    unit.write_text(UNIT.read_text().replace("/opt/dockyard/bin/dockyard", "/bin/true"))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_dockerfile() -> None:
    instructions = dockerfile_instructions()
    by_name: dict[str, list[str]] = {}
    for name, value in instructions:
        by_name.setdefault(name, []).append(value)
    assert by_name["FROM"] == ["python:3.11-slim"]
    assert by_name["VOLUME"] == ["/data"]
    assert by_name["EXPOSE"] == ["5000"]
    assert by_name["USER"][-1] not in ("root", "0")
    assert any("pip install" in run for run in by_name["RUN"])
    entrypoint = json.loads(by_name["ENTRYPOINT"][-1])
    cmd = json.loads(by_name["CMD"][-1])
    assert entrypoint == ["dockyard", "serve"] and cmd == ["--root", "/data"]
    # The last USER comes after the install (pip runs as root, the server does not).
    names = [name for name, _ in instructions]
    assert max(i for i, name in enumerate(names) if name == "USER") > max(i for i, name in enumerate(names) if name == "RUN")
    # ENTRYPOINT + CMD is a command line the CLI accepts.
    command = main.get_command(click.Context(main), entrypoint[1])
    assert command is serve
    context = serve.make_context("serve", list(cmd))
    assert load(None, {}, {"root": context.params["root"]}).settings.storage.root == pathlib.Path("/data")
    # The copied sources are the project's.
    for source in re.findall(r"^COPY (.+) /src/?\S*$", DOCKERFILE.read_text(), re.M):
        for part in source.split():
            assert (DEPLOY.parent / part).exists(), part


def test_readme_covers_each_file() -> None:
    text = (DEPLOY / "README.md").read_text()
    for name in ("dockyard.service", "Dockerfile", "docker-compose.yml", "proxy-config nginx", "--trusted-proxy"):
        assert name in text, name
