"""Real clients log in, push and pull, with Basic and with token authentication.

skopeo, podman (isolated storage) and docker (a dockerd these tests start) each keep
their credentials in a temporary file of their own. A missing tool skips locally and
fails in CI, as in tests/clients.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.support.auth import USERS, write_htpasswd, write_policy
from tests.support.clients import Dockerd, Podman, layout_blob, run
from tests.support.images import single_image_layout
from tests.support.server import DockyardProcess
from tests.support.tools import require_tool

pytestmark = pytest.mark.clients

MODES = {"basic": [], "token": ["--token-auth"]}


@pytest.fixture(params=sorted(MODES))
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockyardProcess]:
    base = tmp_path_factory.mktemp("authserver")
    users = write_htpasswd(base / "htpasswd")
    process = DockyardProcess(base / "root", "--htpasswd", str(users), *MODES[request.param])
    process.mode = request.param  # type: ignore[attr-defined]
    process.start()
    try:
        yield process
    finally:
        process.stop()


def assert_served(server: DockyardProcess, name: str, tag: str) -> str:
    """The manifest is there (checked with the writer's credentials); returns its digest."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        headers = {"Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"}
        if server.mode == "basic":  # type: ignore[attr-defined]
            response = client.get(f"/v2/{name}/manifests/{tag}", headers=headers, auth=("writer", USERS["writer"]))
        else:
            token = client.get("/auth/token", params={"scope": f"repository:{name}:pull"}, auth=("writer", USERS["writer"])).json()["token"]
            response = client.get(f"/v2/{name}/manifests/{tag}", headers={**headers, "Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        anonymous = client.get(f"/v2/{name}/manifests/{tag}", headers=headers)
        assert anonymous.status_code == 401
        return response.headers["Docker-Content-Digest"]


class Skopeo:
    """skopeo with its own auth file (``REGISTRY_AUTH_FILE``) and policy."""

    def __init__(self, home: pathlib.Path) -> None:
        self.executable = require_tool("skopeo")["skopeo"]
        self.home = home
        (home / "tmp").mkdir(parents=True, exist_ok=True)
        (home / "policy.json").write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        self.env = {**os.environ, "REGISTRY_AUTH_FILE": str(home / "auth.json"), "TMPDIR": str(home / "tmp")}

    def __call__(self, *args: str | os.PathLike[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([self.executable, "--policy", self.home / "policy.json", "--tmpdir", self.home / "tmp", *args], env=self.env, check=check)

    def login(self, host: str, user: str, password: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.executable, "login", "--tls-verify=false", "--username", user, "--password-stdin", host],
            input=password + "\n", capture_output=True, text=True, env=self.env, timeout=120,
        )
        if check:
            assert result.returncode == 0, result.stderr
        return result


@pytest.fixture
def own_skopeo(tmp_path: pathlib.Path) -> Skopeo:
    return Skopeo(tmp_path / "skopeo-home")


def test_skopeo_login_push_pull(own_skopeo: Skopeo, server: DockyardProcess, tmp_path: pathlib.Path) -> None:
    layout = tmp_path / "layout"
    descriptor = single_image_layout(layout, "v1", seed="skopeo-auth")
    remote = f"docker://{server.host}/auth/skopeo:v1"

    # Before logging in, a push is refused.
    refused = own_skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:v1", remote, check=False)
    assert refused.returncode != 0
    assert "401" in refused.stderr or "unauthorized" in refused.stderr.lower() or "authentication required" in refused.stderr.lower(), refused.stderr

    wrong = own_skopeo.login(server.host, "writer", "not-the-password", check=False)
    assert wrong.returncode != 0
    assert not (own_skopeo.home / "auth.json").exists() or server.host not in (own_skopeo.home / "auth.json").read_text()

    assert "Login Succeeded" in own_skopeo.login(server.host, "writer", USERS["writer"]).stdout
    assert server.host in json.loads((own_skopeo.home / "auth.json").read_text())["auths"]
    own_skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{layout}:v1", remote)
    assert assert_served(server, "auth/skopeo", "v1") == descriptor["digest"]

    back = tmp_path / "back"
    own_skopeo("copy", "--src-tls-verify=false", remote, f"oci:{back}:v1")
    assert layout_blob(back, descriptor["digest"]) == layout_blob(layout, descriptor["digest"])

    own_skopeo("logout", server.host)
    after = own_skopeo("inspect", "--tls-verify=false", remote, check=False)
    assert after.returncode != 0


@pytest.mark.parametrize("mode", sorted(MODES))
def test_skopeo_pulls_anonymously_what_the_policy_opens(own_skopeo: Skopeo, tmp_path: pathlib.Path, mode: str) -> None:
    """Without a login skopeo answers the Basic challenge with empty credentials: anonymous, never a failed login."""
    users = write_htpasswd(tmp_path / "htpasswd")
    policy = write_policy(tmp_path / "policy.yaml")  # anonymous may pull public/*; root is an admin
    server = DockyardProcess(
        tmp_path / "root", "--htpasswd", str(users), "--access-policy", str(policy), "--login-max-failures", "3", *MODES[mode]
    )
    server.start()
    try:
        layout = tmp_path / "layout"
        descriptor = single_image_layout(layout, "v1", seed=f"anonymous-{mode}")
        remote = f"docker://{server.host}/public/app:v1"
        own_skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", "--dest-creds", f"root:{USERS['root']}", f"oci:{layout}:v1", remote)

        # More anonymous pulls than the three failed logins an address may have.
        for _ in range(4):
            assert json.loads(own_skopeo("inspect", "--tls-verify=false", remote).stdout)["Digest"] == descriptor["digest"]
        back = tmp_path / "back"
        own_skopeo("copy", "--src-tls-verify=false", remote, f"oci:{back}:v1")
        assert layout_blob(back, descriptor["digest"]) == layout_blob(layout, descriptor["digest"])

        closed = own_skopeo("inspect", "--tls-verify=false", f"docker://{server.host}/a/app:v1", check=False)
        assert closed.returncode != 0
        assert "unauthorized" in closed.stderr.lower() or "authentication required" in closed.stderr.lower(), closed.stderr
        assert "Login Succeeded" in own_skopeo.login(server.host, "writer", USERS["writer"]).stdout
    finally:
        server.stop()


def test_podman_login_push_pull(podman: Podman, server: DockyardProcess, lowercase_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:  # noqa: F811
    authfile = tmp_path / "podman-auth.json"
    layout = lowercase_dir / "image"
    single_image_layout(layout, "v1", seed="podman-auth")
    image_id = podman("pull", "--quiet", f"oci:{layout}:v1").stdout.split()[-1]
    remote = f"{server.host}/auth/podman:v1"
    podman("tag", image_id, remote)

    refused = podman("push", "--authfile", authfile, "--tls-verify=false", remote, check=False)
    assert refused.returncode != 0

    wrong = podman("login", "--authfile", authfile, "--tls-verify=false", "-u", "writer", "-p", "wrong-password", server.host, check=False)
    assert wrong.returncode != 0
    podman("login", "--authfile", authfile, "--tls-verify=false", "-u", "writer", "-p", USERS["writer"], server.host)
    assert server.host in json.loads(authfile.read_text())["auths"]

    digest_file = tmp_path / "digest"
    podman("push", "--authfile", authfile, "--tls-verify=false", "--digestfile", digest_file, remote)
    pushed = digest_file.read_text().strip()
    assert assert_served(server, "auth/podman", "v1") == pushed

    podman("rmi", "--force", image_id)
    podman("pull", "--authfile", authfile, "--tls-verify=false", remote)
    pulled = json.loads(podman("image", "inspect", remote).stdout)[0]
    assert pulled["Digest"] == pushed
    assert pulled["Id"] == image_id


def test_docker_login_push_pull(
    docker: Dockerd, server: DockyardProcess, own_skopeo: Skopeo, tmp_path: pathlib.Path  # noqa: F811
) -> None:
    config = tmp_path / "docker-config"
    config.mkdir()
    (config / "config.json").write_text(json.dumps({"auths": {}}))
    env = {**docker.env, "DOCKER_CONFIG": str(config)}

    def cli(*args: str | os.PathLike[str], check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        if stdin is None:
            return run([docker.docker_cli, "-H", docker.host, *args], env=env, check=check)
        result = subprocess.run([docker.docker_cli, "-H", docker.host, *map(str, args)], input=stdin, capture_output=True, text=True, env=env, timeout=300)
        if check:
            assert result.returncode == 0, result.stderr
        return result

    layout = tmp_path / "layout"
    single_image_layout(layout, "v1", seed=f"docker-auth-{server.mode}")  # type: ignore[attr-defined]
    archive = tmp_path / "image.tar"
    tag = f"dockyard-auth-test/hello-{server.mode}:v1"  # type: ignore[attr-defined]
    own_skopeo("copy", f"oci:{layout}:v1", f"docker-archive:{archive}:{tag}")
    cli("load", "--input", archive)
    remote = f"{server.host}/auth/docker:v1"
    cli("tag", tag, remote)

    refused = cli("push", remote, check=False)
    assert refused.returncode != 0

    wrong = cli("login", server.host, "-u", "writer", "--password-stdin", stdin="wrong-password\n", check=False)
    assert wrong.returncode != 0
    assert server.host not in json.loads((config / "config.json").read_text()).get("auths", {})
    login = cli("login", server.host, "-u", "writer", "--password-stdin", stdin=USERS["writer"] + "\n")
    assert "Login Succeeded" in login.stdout
    assert server.host in json.loads((config / "config.json").read_text())["auths"]

    output = cli("push", remote).stdout
    pushed = assert_served(server, "auth/docker", "v1")
    assert f"digest: {pushed}" in output

    cli("rmi", remote, tag)
    cli("pull", remote)
    pulled = json.loads(cli("image", "inspect", remote).stdout)[0]
    assert pulled["RepoDigests"] == [f"{server.host}/auth/docker@{pushed}"]
    cli("rmi", remote)
    cli("logout", server.host)


@pytest.mark.parametrize("kind", ["seed-crypt", "htpasswd-B", "htpasswd-m"])
def test_skopeo_logs_in_with_each_htpasswd_format(own_skopeo: Skopeo, tmp_path: pathlib.Path, kind: str) -> None:
    users = tmp_path / "htpasswd"
    if kind == "seed-crypt":
        users.write_text("eric:ZsF.CKxpJSWLs\n")
        user, password = "eric", "han"
    else:
        tool = require_tool("htpasswd")["htpasswd"]
        flag = ["-B", "-C", "5"] if kind == "htpasswd-B" else ["-m"]
        subprocess.run([tool, "-c", "-b", *flag, str(users), "ann", "ann-pw"], check=True, capture_output=True)
        user, password = "ann", "ann-pw"
    process = DockyardProcess(tmp_path / "root", "--htpasswd", str(users))
    process.start()
    try:
        assert own_skopeo.login(process.host, user, password + "x", check=False).returncode != 0
        assert "Login Succeeded" in own_skopeo.login(process.host, user, password).stdout
        layout = tmp_path / "layout"
        descriptor = single_image_layout(layout, "v1", seed=kind)
        own_skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://{process.host}/fmt/app:v1")
        listed = json.loads(own_skopeo("list-tags", "--tls-verify=false", f"docker://{process.host}/fmt/app").stdout)
        assert listed["Tags"] == ["v1"]
        with httpx.Client(base_url=process.url, timeout=30) as client:
            response = client.head("/v2/fmt/app/manifests/v1", auth=(user, password), headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
            assert response.headers["Docker-Content-Digest"] == descriptor["digest"]
    finally:
        process.stop()
