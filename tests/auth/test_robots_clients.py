"""Robot accounts on running servers: skopeo and docker log in and push as robots, a robot
outside its globs, removal and expiry taking effect within 5 seconds, two replicas on one
storage root.

Three servers for the module: one in Basic mode, and two token-mode replicas sharing a
root and ``http.secret``. Robots are made and removed by ``dockyard robot`` on the root,
as an administrator would, while the servers run.
"""

from __future__ import annotations

import json
import os
import pathlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from click.testing import CliRunner

from dockyard.cli import main
from tests.support.auth import basic, write_htpasswd
from tests.support.clients import Dockerd, Skopeo, run
from tests.support.images import single_image_layout
from tests.support.server import DockyardProcess

pytestmark = pytest.mark.clients

SECRET = "robot-replicas-share-this-secret-0123456789"
# What the issue promises for a removal or an expiry on a running server.
TAKES_EFFECT_SECONDS = 5.0


@dataclass
class Servers:
    basic: DockyardProcess
    replicas: list[DockyardProcess]  # token mode, one root


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    base = tmp_path_factory.mktemp("robots")
    users = str(write_htpasswd(base / "htpasswd"))
    started: list[DockyardProcess] = []
    try:
        basic = DockyardProcess(base / "basic-root", "--htpasswd", users)
        started.append(basic.start())
        with pytest.MonkeyPatch.context() as environment:
            environment.setenv("REGISTRY_HTTP_SECRET", SECRET)  # one token signing key for both replicas
            for number in range(2):
                replica = DockyardProcess(base / "shared-root", "--htpasswd", users, "--token-auth", "--tls-dir", str(base / f"tls-{number}"))
                replica.log = base / f"replica-{number}.log"
                started.append(replica.start())
        yield Servers(basic, started[1:])
    finally:
        for process in started:
            process.stop()


def add_robot(root: pathlib.Path, name: str, *options: str) -> str:
    """``dockyard robot add``; returns the secret."""
    result = CliRunner().invoke(main, ["robot", "add", name, *options, "--root", str(root)])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()[-1]


def remove_robot(root: pathlib.Path, name: str) -> None:
    result = CliRunner().invoke(main, ["robot", "remove", name, "--root", str(root)])
    assert result.exit_code == 0, result.output


def token(server: DockyardProcess, user: str, secret: str, scope: str) -> httpx.Response:
    return httpx.get(f"{server.url}/auth/token", params={"service": "dockyard", "scope": scope}, auth=(user, secret), timeout=30)


def tags_status(server: DockyardProcess, name: str, headers: dict[str, str]) -> int:
    return httpx.get(f"{server.url}/v2/{name}/tags/list", headers=headers, timeout=30).status_code


def within(seconds: float, condition: Callable[[], bool]) -> bool:
    """Whether ``condition`` holds within ``seconds`` (polled)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture
def skopeo_auth(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "skopeo-auth.json"


@pytest.mark.parametrize("mode", ["basic", "token"])
def test_skopeo_logs_in_and_pushes_as_a_robot_within_its_globs(
    servers: Servers, skopeo: Skopeo, skopeo_auth: pathlib.Path, tmp_path: pathlib.Path, mode: str,
) -> None:
    server = servers.basic if mode == "basic" else servers.replicas[0]
    name = f"skopeo-{mode}"
    secret = add_robot(server.root, name, "--pull", "ci/**", "--push", f"ci/{mode}/*")
    user = f"robot${name}"
    assert skopeo("login", "--authfile", skopeo_auth, "--tls-verify=false", "-u", user, "-p", "wrong", server.host, check=False).returncode != 0
    assert "Login Succeeded" in skopeo("login", "--authfile", skopeo_auth, "--tls-verify=false", "-u", user, "-p", secret, server.host).stdout

    layout = tmp_path / "layout"
    descriptor = single_image_layout(layout, "v1", seed=f"robot-{mode}")
    push = ["copy", "--preserve-digests", "--dest-tls-verify=false", "--dest-authfile", skopeo_auth, f"oci:{layout}:v1"]
    skopeo(*push, f"docker://{server.host}/ci/{mode}/app:v1")
    inspected = skopeo("inspect", "--tls-verify=false", "--authfile", skopeo_auth, f"docker://{server.host}/ci/{mode}/app:v1")
    assert json.loads(inspected.stdout)["Digest"] == descriptor["digest"]
    # Pull only in ci/**, push in ci/<mode>/* alone; nothing elsewhere, whatever the (absent) policy gives users.
    for outside in ("ci/app:v1", "other/app:v1"):
        refused = skopeo(*push, f"docker://{server.host}/{outside}", check=False)
        assert refused.returncode != 0
        assert any(word in refused.stderr.lower() for word in ("denied", "forbidden", "unauthorized", "authentication required")), refused.stderr
    via = "basic" if mode == "basic" else "token_service"
    assert f"login remote=127.0.0.1 user={user} via={via}" in server.log.read_text()  # the audit log


def test_docker_logs_in_and_pushes_as_a_robot(servers: Servers, docker: Dockerd, skopeo: Skopeo, tmp_path: pathlib.Path) -> None:
    server = servers.replicas[1]
    secret = add_robot(server.root, "docker", "--push", "ci/docker")
    config = tmp_path / "docker-config"
    config.mkdir()
    (config / "config.json").write_text(json.dumps({"auths": {}}))
    env = {**docker.env, "DOCKER_CONFIG": str(config)}

    def cli(*args: str | os.PathLike[str], check: bool = True):
        return run([docker.docker_cli, "-H", docker.host, *args], env=env, check=check)

    layout = tmp_path / "layout"
    single_image_layout(layout, "v1", seed="robot-docker")
    archive = tmp_path / "image.tar"
    skopeo("copy", f"oci:{layout}:v1", f"docker-archive:{archive}:dockyard-robot-test/app:v1")
    cli("load", "--input", archive)
    remote = f"{server.host}/ci/docker:v1"
    cli("tag", "dockyard-robot-test/app:v1", remote)
    assert cli("login", server.host, "-u", "robot$docker", "-p", "wrong", check=False).returncode != 0
    assert "Login Succeeded" in cli("login", server.host, "-u", "robot$docker", "-p", secret).stdout
    pushed = cli("push", remote).stdout
    listed = token(servers.replicas[0], "robot$docker", secret, "repository:ci/docker:pull").json()["token"]
    assert httpx.get(f"{servers.replicas[0].url}/v2/ci/docker/tags/list", headers={"Authorization": f"Bearer {listed}"}).json()["tags"] == ["v1"]
    assert "digest: sha256:" in pushed
    cli("tag", "dockyard-robot-test/app:v1", f"{server.host}/other/docker:v1")
    assert cli("push", f"{server.host}/other/docker:v1", check=False).returncode != 0
    cli("rmi", remote, f"{server.host}/other/docker:v1", "dockyard-robot-test/app:v1")
    cli("logout", server.host)


def test_a_removal_takes_effect_on_running_replicas_and_basic_servers(servers: Servers) -> None:
    first, second = servers.replicas
    secret = add_robot(first.root, "removed", "--pull", "ci/*")
    issued = token(first, "robot$removed", secret, "repository:ci/app:pull")
    assert issued.status_code == 200
    bearer = {"Authorization": f"Bearer {issued.json()['token']}"}
    assert tags_status(second, "ci/app", bearer) == 404  # good at the other replica (the repository is empty)
    basic_secret = add_robot(servers.basic.root, "removed", "--pull", "ci/*")
    as_robot = {"Authorization": basic("robot$removed", basic_secret)}
    assert tags_status(servers.basic, "ci/app", as_robot) == 404

    remove_robot(first.root, "removed")
    remove_robot(servers.basic.root, "removed")
    assert within(TAKES_EFFECT_SECONDS, lambda: all(tags_status(server, "ci/app", bearer) == 401 for server in (first, second)))
    assert within(TAKES_EFFECT_SECONDS, lambda: all(token(server, "robot$removed", secret, "").status_code == 401 for server in (first, second)))
    assert within(TAKES_EFFECT_SECONDS, lambda: tags_status(servers.basic, "ci/app", as_robot) == 401)


def test_an_expiry_takes_effect_on_running_replicas(servers: Servers) -> None:
    first, second = servers.replicas
    lifetime = 5
    secret = add_robot(first.root, "expiring", "--pull", "ci/*", "--expires", f"{lifetime}s")
    issued = token(second, "robot$expiring", secret, "repository:ci/app:pull")
    assert issued.status_code == 200
    bearer = {"Authorization": f"Bearer {issued.json()['token']}"}
    assert tags_status(first, "ci/app", bearer) == 404
    assert within(lifetime + TAKES_EFFECT_SECONDS, lambda: all(tags_status(server, "ci/app", bearer) == 401 for server in (first, second)))
    assert all(token(server, "robot$expiring", secret, "").status_code == 401 for server in (first, second))
    listed = CliRunner().invoke(main, ["robot", "list", "--root", str(first.root)]).output
    assert "robot$expiring" in listed  # expired, not removed: an administrator sees it
