"""registry:2's ``http`` keys given to ``dockyard serve --config``: ``headers`` on every answer,
``relativeurls`` and ``net: unix``, each checked on a real server."""

from __future__ import annotations

import hashlib
import pathlib
from collections.abc import Callable

import httpx
import pytest
import yaml

from tests.support.server import DockyardProcess
from tests.tls.conftest import assert_one_line_error, serve_and_fail

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
