"""The events of a skopeo push, from Dockyard and from registry:2 itself sending to the same
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
from typing import Any

import httpx

from dockyard.events.model import ENVELOPE_MEDIA_TYPE
from tests.events.conftest import Receiver, events_config, serve
from tests.support.clients import Skopeo
from tests.support.images import single_image_layout
from tests.support.registry2 import Registry2Process, registry2_binary
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


def test_a_skopeo_push_sends_the_events_registry2_sends(
    fresh_receiver: Receiver, tmp_path: pathlib.Path, skopeo: Skopeo,
) -> None:
    if registry2_binary() is None:
        unavailable("docker-registry (registry:2) is not installed")
    layout = tmp_path / "layout"
    single_image_layout(layout, tag="v1", seed="compare")
    root = tmp_path / "root"
    dockyard = serve(root, events_config(tmp_path, root, fresh_receiver.url))
    notifications = (
        "notifications:\n  endpoints:\n"
        f"    - name: hooks\n      url: {fresh_receiver.url}\n      timeout: 5s\n      threshold: 2\n      backoff: 100ms\n"
    )
    registry2 = Registry2Process(tmp_path / "registry2", extra_config=notifications).start()
    try:
        for registry in (dockyard, registry2):
            skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://{registry.host}/compare/app:v1")

        def pushed(events: list[dict[str, Any]]) -> bool:
            # Each sends in order: the manifest's push (the tagged one) comes last.
            return all(any(key[1] == "v1" for key in _pushes(_from(events, registry.host))) for registry in (dockyard, registry2))

        events = fresh_receiver.wait_for(pushed)
        ours, theirs = _pushes(_from(events, dockyard.host)), _pushes(_from(events, registry2.host))
        assert set(ours) == set(theirs)
        assert len(ours) == 4  # two layers, the config, the manifest (tagged)
        for key, expected in theirs.items():
            event = ours[key]
            assert _shape(event) == _shape(expected), key
            for part, names in COMPARED_VALUES.items():
                assert {name: event[part].get(name) for name in names} == {name: expected[part].get(name) for name in names}, key
            assert urllib.parse.urlsplit(event["target"]["url"]).path == urllib.parse.urlsplit(expected["target"]["url"]).path
        sent_by = {
            json.loads(body)["events"][0]["request"]["host"]: headers.get("Content-Type") for headers, body in fresh_receiver.requests
        }
        assert sent_by[dockyard.host] == ENVELOPE_MEDIA_TYPE
        # registry:2.8 still names it events.v1+json; registry:3's (and Dockyard's) is v2, the same envelope.
        assert sent_by[registry2.host] in {ENVELOPE_MEDIA_TYPE, ENVELOPE_MEDIA_TYPE.replace("v2+json", "v1+json")}
        # skopeo asked whether each blob was there (HEAD): that is no pull, here.
        assert [event for event in _from(events, dockyard.host) if event["action"] == "pull"] == []

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
    finally:
        dockyard.stop()
        registry2.stop()
    assert json.loads(fresh_receiver.requests[-1][1])["events"] == [pull]  # nothing came after the pull
