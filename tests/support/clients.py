"""Real container clients as fixtures: a running Dockyard, isolated client settings, and
skopeo, podman, a private dockerd and a private containerd.

Every client talks to ``dockyard serve`` on 127.0.0.1 over plain HTTP, and keeps
its state (auth file, policy, temporary files, storage) in pytest's temporary
folders. A missing client binary skips its tests locally and fails them in CI
(when the ``CI`` environment variable is set), so CI cannot go green by accident.
"""

from __future__ import annotations

import json
import os
import pathlib
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence

import httpx
import pytest

from tests.support.processes import terminate
from tests.support.registry_client import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST, sha256
from tests.support.server import DockyardProcess
from tests.support.tools import require_tool, unavailable

ALL_MANIFESTS = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST])

COMMAND_TIMEOUT = 600


def run(
    command: Sequence[str | os.PathLike[str]],
    *,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = COMMAND_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run a client command; on failure, the assertion shows its command line and output."""
    argv = [str(part) for part in command]
    result = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if check:
        assert result.returncode == 0, (
            f"command failed ({result.returncode}): {' '.join(argv)}\n"
            f"--- stdout ---\n{result.stdout[-5000:]}\n--- stderr ---\n{result.stderr[-5000:]}"
        )
    return result


@pytest.fixture(scope="session")
def dockyard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockyardProcess]:
    """One ``dockyard serve`` for the session; each test uses its own repository names."""
    process = DockyardProcess(tmp_path_factory.mktemp("dockyard") / "root")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def api(dockyard: DockyardProcess) -> Iterator[httpx.Client]:
    """Plain HTTP access to the running registry, to check what the clients did."""
    with httpx.Client(base_url=dockyard.url, timeout=60) as client:
        yield client


def fetch_manifest(api: httpx.Client, name: str, reference: str, accept: str = ALL_MANIFESTS) -> httpx.Response:
    """GET a manifest; asserts it is there and that its digest header matches its bytes."""
    response = api.get(f"/v2/{name}/manifests/{reference}", headers={"Accept": accept})
    assert response.status_code == 200, (response.status_code, response.text[:500])
    assert response.headers["Docker-Content-Digest"] == sha256(response.content)
    return response


@pytest.fixture(scope="session")
def client_home(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """Settings shared by the containers/image clients, all in a temporary folder."""
    home = tmp_path_factory.mktemp("clienthome")
    (home / "auth.json").write_text(json.dumps({"auths": {}}))
    (home / "policy.json").write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    (home / "tmp").mkdir()
    (home / "xdg").mkdir(mode=0o700)
    (home / "docker-config").mkdir()
    (home / "docker-config" / "config.json").write_text(json.dumps({"auths": {}}))
    return home


@pytest.fixture(scope="session")
def client_env(client_home: pathlib.Path) -> dict[str, str]:
    """The environment for every client process: auth files and temporary folders in ``client_home``."""
    return {
        **os.environ,
        "REGISTRY_AUTH_FILE": str(client_home / "auth.json"),
        "TMPDIR": str(client_home / "tmp"),
        "XDG_RUNTIME_DIR": str(client_home / "xdg"),
        "DOCKER_CONFIG": str(client_home / "docker-config"),
    }


Skopeo = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def skopeo(client_home: pathlib.Path, client_env: dict[str, str]) -> Skopeo:
    """Run ``skopeo`` with a temporary policy and temporary folder (plain HTTP is per command)."""
    executable = require_tool("skopeo")["skopeo"]

    def skopeo(*args: str | os.PathLike[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [executable, "--policy", client_home / "policy.json", "--tmpdir", client_home / "tmp", *args]
        return run(command, env=client_env, check=check)

    return skopeo


def layout_index(layout: pathlib.Path) -> dict:
    """An OCI image layout's ``index.json``."""
    return json.loads((layout / "index.json").read_text())


def layout_blob(layout: pathlib.Path, digest: str) -> bytes:
    algorithm, encoded = digest.split(":", 1)
    return (layout / "blobs" / algorithm / encoded).read_bytes()


def layout_entry(layout: pathlib.Path, tag: str) -> dict:
    """The descriptor ``tag`` names in an OCI image layout."""
    for entry in layout_index(layout)["manifests"]:
        if (entry.get("annotations") or {}).get("org.opencontainers.image.ref.name") == tag:
            return entry
    raise AssertionError(f"no {tag!r} in {layout}/index.json: {layout_index(layout)}")


DOCKERD_START_SECONDS = 60


def short_temporary_folder(prefix: str) -> pathlib.Path:
    """A new folder from ``tempfile.mkdtemp`` under the system temporary directory rather than
    pytest's (deeper) one, because a unix socket path must fit in 108 bytes."""
    base = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    if len(str(base)) > 60:  # a long TMPDIR: fall back to the usual short one
        shutil.rmtree(base)
        base = pathlib.Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    return base


class Dockerd:
    """A private dockerd: vfs storage, no networking changes, every path under one
    :func:`short_temporary_folder`."""

    def __init__(self, dockerd: str, docker: str, env: dict[str, str], settings: dict[str, object] | None = None) -> None:
        """``settings``: the daemon.json (e.g. ``registry-mirrors``); never the host's."""
        self.dockerd = dockerd
        self.docker_cli = docker
        self.env = env
        self.base = short_temporary_folder("dy-dockerd-")
        self.settings = self.base / "daemon.json"
        self.settings.write_text(json.dumps(settings or {}))
        self.socket = self.base / "d.sock"
        self.host = f"unix://{self.socket}"
        self.log = self.base / "dockerd.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            self.dockerd,
            "--iptables=false", "--ip6tables=false", "--bridge=none",
            "--ip-forward=false", "--ip-masq=false",
            "--storage-driver=vfs",
            "--data-root", str(self.base / "data"),
            "--exec-root", str(self.base / "exec"),
            "--pidfile", str(self.base / "dockerd.pid"),
            "--host", self.host,
            "--config-file", str(self.settings),
        ]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env
            )
        deadline = time.monotonic() + DOCKERD_START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self.socket.exists():
                probe = subprocess.run(
                    [self.docker_cli, "-H", self.host, "version"],
                    capture_output=True, env=self.env, timeout=30, stdin=subprocess.DEVNULL,
                )
                if probe.returncode == 0:
                    return
            time.sleep(0.2)
        tail = self.log.read_text(errors="replace")[-4000:]
        self.stop()
        unavailable(f"dockerd could not be started here:\n{tail}")

    def __call__(self, *args: str | os.PathLike[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([self.docker_cli, "-H", self.host, *args], env=self.env, check=check)

    def stop(self) -> None:
        process, self.process = self.process, None
        terminate(process, timeout=60)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def docker(client_env: dict[str, str]) -> Iterator[Dockerd]:
    tools = require_tool("dockerd", "docker")
    daemon = Dockerd(tools["dockerd"], tools["docker"], client_env)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()


StartDockerd = Callable[[dict[str, object]], Dockerd]


@pytest.fixture
def start_dockerd(client_env: dict[str, str]) -> Iterator[StartDockerd]:
    """Start a private dockerd of one test with the daemon.json ``settings`` given; it is stopped after the test."""
    tools = require_tool("dockerd", "docker")
    started: list[Dockerd] = []

    def start(settings: dict[str, object]) -> Dockerd:
        daemon = Dockerd(tools["dockerd"], tools["docker"], client_env, settings)
        started.append(daemon)
        daemon.start()
        return daemon

    try:
        yield start
    finally:
        for daemon in started:
            daemon.stop()


class Containerd:
    """A private containerd (no CRI), its root, state, socket and settings under one
    :func:`short_temporary_folder`; ``ctr`` talks to it in its own namespace."""

    NAMESPACE = "dockyard-test"

    def __init__(self, containerd: str, ctr: str, env: dict[str, str]) -> None:
        self.containerd = containerd
        self.ctr = ctr
        self.env = env
        self.base = short_temporary_folder("dy-ctrd-")
        self.socket = self.base / "c.sock"
        self.log = self.base / "containerd.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        settings = self.base / "config.toml"
        settings.write_text(
            "version = 2\n"
            f'root = "{self.base / "root"}"\nstate = "{self.base / "state"}"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\naddress = "{self.socket}"\n'
            f'[ttrpc]\naddress = "{self.socket}.ttrpc"\n'
            '[debug]\naddress = ""\n'
            f'[plugins."io.containerd.internal.v1.opt"]\npath = "{self.base / "opt"}"\n'
        )
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [self.containerd, "--config", str(settings)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env,
            )
        deadline = time.monotonic() + DOCKERD_START_SECONDS
        while time.monotonic() < deadline and self.process.poll() is None:
            if self.socket.exists() and self("version", check=False).returncode == 0:
                return
            time.sleep(0.2)
        tail = self.log.read_text(errors="replace")[-4000:]
        self.stop()
        unavailable(f"containerd could not be started here:\n{tail}")

    def __call__(self, *args: str | os.PathLike[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([self.ctr, "--address", self.socket, "--namespace", self.NAMESPACE, *args], env=self.env, check=check)

    def stop(self) -> None:
        process, self.process = self.process, None
        terminate(process, timeout=60)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def containerd(client_env: dict[str, str]) -> Iterator[Containerd]:
    tools = require_tool("containerd", "ctr")
    daemon = Containerd(tools["containerd"], tools["ctr"], client_env)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()


Podman = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def podman(tmp_path_factory: pytest.TempPathFactory, client_env: dict[str, str]) -> Iterator[Podman]:
    """``podman`` with its own root, runroot and temporary folders; never the user's storage."""
    executable = require_tool("podman")["podman"]
    state = tmp_path_factory.mktemp("podman")
    env = {**client_env, "TMPDIR": str(state / "tmp"), "XDG_RUNTIME_DIR": str(state / "xdg")}
    (state / "tmp").mkdir()
    (state / "xdg").mkdir(mode=0o700)
    # Our own containers.conf, so the host's settings (events, storage, registries) stay out of it.
    (state / "containers.conf").write_text('[engine]\nevents_logger = "none"\n')
    env["CONTAINERS_CONF"] = str(state / "containers.conf")
    prefix = [
        executable,
        "--root", state / "root",
        "--runroot", state / "runroot",
        "--storage-driver", "vfs",
        "--tmpdir", state / "libpod",
        "--events-backend", "none",
    ]

    def podman(*args: str | os.PathLike[str], check: bool = True, registries_conf: pathlib.Path | None = None) -> subprocess.CompletedProcess[str]:
        """``registries_conf``: a registries.conf instead of the host's (mirrors, insecure registries)."""
        extra = {"CONTAINERS_REGISTRIES_CONF": str(registries_conf)} if registries_conf is not None else {}
        return run([*prefix, *args], env={**env, **extra}, check=check)

    try:
        yield podman
    finally:
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def lowercase_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pathlib.Path]:
    """A temporary folder whose path is all lowercase.

    podman names an image pulled from ``oci:DIR`` after DIR: lowercase letters and digits, with
    single separators between them.
    """
    candidate = tmp_path_factory.mktemp("podmanlayout")
    if str(candidate) == str(candidate).lower():
        yield candidate
        return
    # Not tempfile's names: they may hold "_" next to "-", which no image name may.
    made = pathlib.Path("/tmp") / f"dy-podman-{secrets.token_hex(8)}"
    made.mkdir()
    try:
        yield made
    finally:
        shutil.rmtree(made, ignore_errors=True)
