"""The events of a skopeo push and a docker push, from Dockyard and from registry:2 itself sending to the same
receiver: the same envelope, the same fields, the same values where they must match.

Compared, for each push event (the layers, the config, the manifest with its tag): the field
names at every level (event, target, request, actor, source), and ``action``,
``target.mediaType``, ``size``, ``length``, ``digest``, ``repository``, ``tag``, the path of
``target.url``, ``request.method`` and ``request.useragent``; the envelope's media type
(registry:3's ``events.v2+json``: registry:2.8 says ``v1``).
Also: a manifest GET is a pull, a HEAD is none, and a refused push sends nothing.
"""

from __future__ import annotations

import json
import pathlib
import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dockyard.events.model import ENVELOPE_MEDIA_TYPE
from tests.events.conftest import Receiver, events_config, serve
from tests.support.clients import Dockerd, Skopeo
from tests.support.images import single_image_layout
from tests.support.registry2 import Registry2Process, registry2_binary
from tests.support.registry_client import DOCKER_MANIFEST
from tests.support.server import DockyardProcess
from tests.support.tools import unavailable

COMPARED_VALUES = {
    "target": ("mediaType", "size", "length", "digest", "repository", "tag"),
    "request": ("method", "useragent"),
}


def _from(events: list[dict[str, Any]], host: str) -> list[dict[str, Any]]:
    return [event for event in events if event["request"].get("host") == host]


def _pushes(events: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(event["target"]["digest"], event["target"].get("tag", "")): event for event in events if event["action"] == "push"}


def _shape(event: dict[str, Any]) -> dict[str, object]:
    return {key: sorted(value) if isinstance(value, dict) else "value" for key, value in event.items()}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[tuple[DockyardProcess, Registry2Process]]:
    """Dockyard and registry:2, each sending its events to the module's receiver."""
    if registry2_binary() is None:
        unavailable("docker-registry (registry:2) is not installed")
    folder = tmp_path_factory.mktemp("compared")
    root = folder / "root"
    dockyard = serve(root, events_config(folder, root, receiver.url))
    notifications = (
        "notifications:\n  endpoints:\n"
        f"    - name: hooks\n      url: {receiver.url}\n      timeout: 5s\n      threshold: 2\n      backoff: 100ms\n"
    )
    try:
        registry2 = Registry2Process(folder / "registry2", extra_config=notifications).start()
    except BaseException:
        dockyard.stop()
        raise
    try:
        yield dockyard, registry2
    finally:
        dockyard.stop()
        registry2.stop()


def _compared_pushes(receiver: Receiver, dockyard: DockyardProcess, registry2: Registry2Process, tag: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Dockyard's push events, once both servers sent theirs, each held to registry:2's."""

    def pushed(events: list[dict[str, Any]]) -> bool:
        # Each sends in order: the manifest's push (the tagged one) comes last.
        return all(any(key[1] == tag for key in _pushes(_from(events, registry.host))) for registry in (dockyard, registry2))

    events = receiver.wait_for(pushed)
    ours, theirs = _pushes(_from(events, dockyard.host)), _pushes(_from(events, registry2.host))
    assert set(ours) == set(theirs)
    for key, expected in theirs.items():
        event = ours[key]
        assert _shape(event) == _shape(expected), key
        for part, names in COMPARED_VALUES.items():
            assert {name: event[part].get(name) for name in names} == {name: expected[part].get(name) for name in names}, key
        assert urllib.parse.urlsplit(event["target"]["url"]).path == urllib.parse.urlsplit(expected["target"]["url"]).path
    sent_by = {json.loads(body)["events"][0]["request"]["host"]: headers.get("Content-Type") for headers, body in receiver.requests}
    assert sent_by[dockyard.host] == ENVELOPE_MEDIA_TYPE
    # registry:2.8 still names it events.v1+json; registry:3's (and Dockyard's) is v2, the same envelope.
    assert sent_by[registry2.host] in {ENVELOPE_MEDIA_TYPE, ENVELOPE_MEDIA_TYPE.replace("v2+json", "v1+json")}
    # The clients asked whether each blob was there (HEAD): that is no pull, here.
    assert [event for event in _from(events, dockyard.host) if event["action"] == "pull"] == []
    return ours


def test_a_skopeo_push_sends_the_events_registry2_sends(
    fresh_receiver: Receiver, pair: tuple[DockyardProcess, Registry2Process], tmp_path: pathlib.Path, skopeo: Skopeo,
) -> None:
    dockyard, registry2 = pair
    layout = tmp_path / "layout"
    single_image_layout(layout, tag="v1", seed="compare")
    for registry in (dockyard, registry2):
        skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://{registry.host}/compare/app:v1")
    ours = _compared_pushes(fresh_receiver, dockyard, registry2, "v1")
    assert len(ours) == 4  # two layers, the config, the manifest (tagged)

    fresh_receiver.clear()
    with httpx.Client(base_url=dockyard.url, timeout=30) as client:
        accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
        assert client.head("/v2/compare/app/manifests/v1", headers=accept).status_code == 200
        refused = client.put(
            "/v2/compare/app/manifests/v2", content=b"{}", headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert refused.status_code == 400
        assert client.get("/v2/compare/app/manifests/v1", headers=accept).status_code == 200
    (pull,) = fresh_receiver.wait_for(lambda events: len(events) >= 1)
    assert (pull["action"], pull["target"]["tag"], pull["request"]["method"]) == ("pull", "v1", "GET")
    assert pull["target"]["digest"] == ours[next(key for key in ours if key[1] == "v1")]["target"]["digest"]
    assert fresh_receiver.events == [pull]  # nothing for the HEAD, nor for the refused push


def test_a_docker_push_sends_the_events_registry2_sends(
    fresh_receiver: Receiver, pair: tuple[DockyardProcess, Registry2Process], tmp_path: pathlib.Path, skopeo: Skopeo, docker: Dockerd,
) -> None:
    dockyard, registry2 = pair
    layout = tmp_path / "layout"
    single_image_layout(layout, tag="v1", seed="compare-docker")
    archive = tmp_path / "image.tar"
    skopeo("copy", f"oci:{layout}:v1", f"docker-archive:{archive}:events-test/app:v1")
    docker("load", "--input", archive)
    for registry in (dockyard, registry2):
        remote = f"{registry.host}/compare-docker/app:v2"
        docker("tag", "events-test/app:v1", remote)
        docker("push", remote)
    ours = _compared_pushes(fresh_receiver, dockyard, registry2, "v2")
    assert {event["target"]["mediaType"] for event in ours.values() if event["target"].get("tag")} == {DOCKER_MANIFEST}
