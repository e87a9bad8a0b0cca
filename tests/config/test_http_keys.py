"""registry:2's ``http`` keys given to ``dockyard serve --config``: ``headers`` on every answer,
``relativeurls`` and ``net: unix``, each checked on a real server."""

from __future__ import annotations

import hashlib
import os
import pathlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
import yaml

from tests.support.processes import terminate
from tests.support.server import DockyardProcess
from tests.tls.conftest import assert_one_line_error, run_dockyard, serve_and_fail

StartServer = Callable[..., DockyardProcess]
WriteConfig = Callable[..., pathlib.Path]
BLOB = b"a layer's bytes"
DIGEST = f"sha256:{hashlib.sha256(BLOB).hexdigest()}"


@pytest.fixture
def write_config(tmp_path: pathlib.Path) -> WriteConfig:
    """A registry:2 config.yml (filesystem storage in ``tmp_path``, deletes on) with these ``http`` keys."""

    def write(**http: object) -> pathlib.Path:
        settings = {
            "version": 0.1,
            "storage": {"filesystem": {"rootdirectory": str(tmp_path / "root")}, "delete": {"enabled": True}},
            "http": {"addr": "127.0.0.1:0", **http},
        }
        path = tmp_path / "config.yml"
        path.write_text(yaml.safe_dump(settings))
        return path

    return write


def push_blob(client: httpx.Client) -> tuple[str, str]:
    """Start an upload and finish it at the Location given: both Locations."""
    started = client.post("/v2/team/app/blobs/uploads/")
    assert started.status_code == 202, started.text
    finished = client.put(started.headers["Location"], params={"digest": DIGEST}, content=BLOB)
    assert finished.status_code == 201, finished.text
    return started.headers["Location"], finished.headers["Location"]


# --- headers ------------------------------------------------------------------


def test_headers_are_sent_on_every_answer(start_server: StartServer, write_config: WriteConfig) -> None:
    config = write_config(headers={"X-Content-Type-Options": ["nosniff"], "Strict-Transport-Security": ["max-age=63072000"], "X-Team": ["a", "b"]})
    server = start_server("--config", str(config))
    with httpx.Client(base_url=server.url) as client:
        answers = [
            client.get("/v2/"),
            client.get("/v2/team/app/manifests/missing"),  # an error answer, with the spec's JSON body
            client.delete("/v2/"),  # method not allowed
            client.get("/elsewhere"),  # outside the API
        ]
        push_blob(client)
        answers.append(client.get(f"/v2/team/app/blobs/{DIGEST}"))
    assert [answer.status_code for answer in answers] == [200, 404, 405, 404, 200]
    for answer in answers:
        assert answer.headers.get_list("X-Content-Type-Options") == ["nosniff"], answer.request.url
        assert answer.headers.get_list("Strict-Transport-Security") == ["max-age=63072000"]
        assert answer.headers.get_list("X-Team") == ["a", "b"]
    assert answers[1].json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def test_headers_that_cannot_be_sent_are_refused(write_config: WriteConfig, tmp_path: pathlib.Path) -> None:
    config = write_config(headers={"X-Injected": ["a\r\nSet-Cookie: b"]})
    assert_one_line_error(serve_and_fail(tmp_path, "--insecure-http", "--config", str(config)), "http.headers.X-Injected.0")
    config = write_config(headers={"Bad Name": ["a"]})
    assert_one_line_error(serve_and_fail(tmp_path, "--insecure-http", "--config", str(config)), "http.headers.Bad Name")


# --- relativeurls -------------------------------------------------------------


def test_relativeurls_false_gives_absolute_locations(start_server: StartServer, write_config: WriteConfig) -> None:
    # registry:2's default: built from the request's scheme and Host.
    server = start_server("--config", str(write_config()))
    with httpx.Client(base_url=server.url) as client:
        started, finished = push_blob(client)
    assert started.startswith(f"{server.url}/v2/team/app/blobs/uploads/")
    assert finished == f"{server.url}/v2/team/app/blobs/{DIGEST}"


def test_relativeurls_false_with_a_public_url_and_prefix(start_server: StartServer, write_config: WriteConfig) -> None:
    server = start_server("--config", str(write_config(relativeurls=False, host="https://registry.example.com", prefix="/registry")))
    with httpx.Client(base_url=f"{server.url}/registry") as client:
        started = client.post("/v2/team/app/blobs/uploads/")
    assert started.headers["Location"].startswith("https://registry.example.com/registry/v2/team/app/blobs/uploads/")


def test_relativeurls_true_gives_paths(start_server: StartServer, write_config: WriteConfig) -> None:
    server = start_server("--config", str(write_config(relativeurls=True)))
    with httpx.Client(base_url=server.url) as client:
        started, finished = push_blob(client)
    assert started.startswith("/v2/team/app/blobs/uploads/")
    assert finished == f"/v2/team/app/blobs/{DIGEST}"


# --- net: unix ----------------------------------------------------------------

StartUnix = Callable[[pathlib.Path], subprocess.Popen[bytes]]


@pytest.fixture
def start_unix(tmp_path: pathlib.Path) -> Iterator[StartUnix]:
    """Start ``dockyard serve --config`` listening on a unix socket; all are stopped after the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(config: pathlib.Path) -> subprocess.Popen[bytes]:
        log = tmp_path / "serve.log"
        with open(log, "wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "dockyard", "serve", "--config", str(config)], stdout=output, stderr=output, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        started.append(process)
        deadline = time.monotonic() + 30
        while "serving http on unix socket" not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dockyard did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.05)
        return process

    yield start
    for process in started:
        terminate(process)


def unix_client(path: pathlib.Path) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), base_url="http://registry.local")


def test_net_unix_listens_on_the_socket_shared_by_the_workers(start_unix: StartUnix, write_config: WriteConfig, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "registry.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as gone:  # a socket file left by a server that is gone
        gone.bind(str(path))
    config = write_config(net="unix", addr=str(path))
    config.write_text(config.read_text() + "dockyard:\n  workers: 2\n")
    process = start_unix(config)
    with unix_client(path) as client:
        assert [client.get("/v2/").status_code for _ in range(20)] == [200] * 20
        started, finished = push_blob(client)
        assert finished == f"http://registry.local/v2/team/app/blobs/{DIGEST}"  # relativeurls false: from the Host header
        assert client.get(f"/v2/team/app/blobs/{DIGEST}").content == BLOB
    terminate(process)
    assert process.returncode == 0
    assert not path.exists()  # removed on the way out, as registry:2's listener does


def test_net_unix_leaves_a_live_socket_or_another_file_alone(write_config: WriteConfig, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "registry.sock"
    config = write_config(net="unix", addr=str(path))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as live:
        live.bind(str(path))
        live.listen()
        assert_one_line_error(run_dockyard("serve", "--config", config, timeout=30), str(path), "another server listens on it")
        assert path.exists()
    path.unlink()
    path.write_text("not a socket")
    assert_one_line_error(run_dockyard("serve", "--config", config, timeout=30), str(path), "in use")
    assert path.read_text() == "not a socket"
