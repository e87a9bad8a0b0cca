"""What each action sends, and what endpoints may ask beyond registry:2: registry:3's
``includereferences``, ``headers``, registry:2's ignore rules, an HMAC-SHA256 signature and
CloudEvents 1.0; the events of a garbage collection's removals; metrics per endpoint."""

from __future__ import annotations

import hashlib
import hmac
import json
import pathlib
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from dockyard.cli import main
from dockyard.events.model import CLOUDEVENTS_MEDIA_TYPE, ENVELOPE_MEDIA_TYPE
from tests.events.conftest import Receiver, events_config, serve
from tests.support.registry_client import push_image
from tests.support.server import DockyardProcess

SECRET = b"shared-secret"


@pytest.fixture(scope="module")
def signed() -> Iterator[Receiver]:
    """A second endpoint: CloudEvents, signed, without pulls nor blobs."""
    taking = Receiver().start()
    try:
        yield taking
    finally:
        taking.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver, signed: Receiver) -> Iterator[tuple[DockyardProcess, pathlib.Path]]:
    folder = tmp_path_factory.mktemp("events")
    (folder / "secret").write_bytes(SECRET + b"\n")
    root = folder / "root"
    extra = (
        f"    - name: signed\n      url: {signed.url}\n"
        "      ignoredmediatypes: [application/octet-stream]\n      ignore:\n        actions: [pull]\n"
    )
    dockyard = (
        f"    endpoints:\n      - name: signed\n        format: cloudevents\n        secret_file: {json.dumps(str(folder / 'secret'))}\n"
    )
    config = events_config(
        folder, root, receiver.url, endpoints=extra, dockyard=dockyard + "  gc:\n    grace_period: 0s\n",
        hooks="      headers:\n        Authorization: [Bearer hooks-token]\n", notifications="  events:\n    includereferences: true\n",
    )
    server = serve(root, config)
    try:
        yield server, config
    finally:
        server.stop()


def _by_action(events: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(event["action"], event["target"].get("digest", ""), event["target"].get("tag", "")) for event in events]


def test_each_action_sends_its_event(fresh_receiver: Receiver, signed: Receiver, served: tuple[DockyardProcess, pathlib.Path]) -> None:
    server, config = served
    signed.clear()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        digest, content = push_image(client, "acts/app", "v1", seed="acts")
        manifest = json.loads(content)
        layer, config_blob = manifest["layers"][0], manifest["config"]
        mounted = client.post(f"/v2/acts/other/blobs/uploads/?mount={layer['digest']}&from=acts/app")
        assert mounted.status_code == 201
        assert client.head(f"/v2/acts/app/blobs/{layer['digest']}").status_code == 200
        assert client.get(f"/v2/acts/app/blobs/{layer['digest']}").status_code == 200
        assert client.delete("/v2/acts/app/manifests/v1").status_code == 202
        assert client.delete(f"/v2/acts/app/manifests/{digest}").status_code == 202
        assert client.delete(f"/v2/acts/other/blobs/{layer['digest']}").status_code == 202
        assert client.delete("/v2/acts/app/manifests/nosuchtag").status_code == 404  # refused: nothing sent
    expected = [
        ("push", digest, "v1"), ("mount", layer["digest"], ""), ("pull", layer["digest"], ""),
        ("delete", "", "v1"), ("delete", digest, ""), ("delete", layer["digest"], ""),
    ]
    events = fresh_receiver.wait_for(lambda events: len(events) >= 2 + len(expected))
    assert sorted(_by_action(events[:2])) == sorted([("push", layer["digest"], ""), ("push", config_blob["digest"], "")])
    assert _by_action(events[2:]) == expected
    pushed, mount = events[2], events[3]
    assert pushed["target"]["references"] == [
        {"mediaType": config_blob["mediaType"], "digest": config_blob["digest"], "size": config_blob["size"]},
        {"mediaType": layer["mediaType"], "digest": layer["digest"], "size": layer["size"]},
    ]
    assert (mount["target"]["repository"], mount["target"]["fromRepository"]) == ("acts/other", "acts/app")
    assert {headers["Authorization"] for headers, _ in fresh_receiver.requests} == {"Bearer hooks-token"}
    assert {headers["Content-Type"] for headers, _ in fresh_receiver.requests} == {ENVELOPE_MEDIA_TYPE}

    # The other endpoint: no pushes, mounts or pulls of blobs (octet-stream), no pulls; CloudEvents, signed.
    # A delete names no media type (as registry:2's): none is ignored by type.
    wanted = [("push", digest, "v1"), ("delete", "", "v1"), ("delete", digest, ""), ("delete", layer["digest"], "")]
    signed.wait_for(lambda _: len(signed.requests) >= len(wanted))
    cloudevents = []
    for headers, body in signed.requests:
        assert headers["Content-Type"] == CLOUDEVENTS_MEDIA_TYPE
        assert headers["X-Hub-Signature-256"] == "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        cloudevents.extend(json.loads(body))
    assert [(event["data"]["action"], event["data"]["target"].get("digest", ""), event["data"]["target"].get("tag", "")) for event in cloudevents] == wanted
    first = cloudevents[0]
    assert (first["specversion"], first["type"], first["subject"], first["id"]) == ("1.0", "io.github.dockyard.registry.push", "acts/app", first["data"]["id"])

    # The web page lists each endpoint's deliveries (newest first), once its deliverer wrote them down.
    for _ in range(100):
        page = httpx.get(f"{server.url}/ui/events").text
        if cloudevents[-1]["id"] in page and events[-1]["id"] in page:
            break
        time.sleep(0.05)
    assert page.index(cloudevents[-1]["id"]) < page.index(cloudevents[0]["id"])
    assert "hooks" in page and "signed" in page and "delivered" in page


def test_a_repository_delete_sends_a_delete_naming_the_repository_alone(
    fresh_receiver: Receiver, served: tuple[DockyardProcess, pathlib.Path],
) -> None:
    """From each way in: the HTTP endpoint, the web page, ``dockyard repo delete`` (through the outbox
    the server delivers); and the web page's tag delete sends its event as the API's does."""
    server, config = served
    names = ("gone/api", "gone/page", "gone/command")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for name in names:
            push_image(client, name, "v1", seed=name)
        fresh_receiver.wait_for(lambda events: {event["target"]["repository"] for event in events if event["target"].get("tag")} >= set(names))
        fresh_receiver.clear()
        assert client.delete("/dockyard/v1/repositories/gone/api", headers={"User-Agent": "script/1"}).status_code == 200
        for path in ("/ui/r/gone/page/-/delete/v1", "/ui/r/gone/page/-/delete"):
            csrf = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
            assert csrf is not None
            assert client.post(path, data={"csrf": csrf.group(1)}).is_redirect
    result = CliRunner().invoke(main, ["repo", "delete", "--config", str(config), "gone/command"])
    assert result.exit_code == 0, result.output

    def deletes(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [event for event in events if event["action"] == "delete" and event["target"].get("repository", "").startswith("gone/")]

    events = deletes(fresh_receiver.wait_for(lambda events: len(deletes(events)) >= 4))
    assert [event["target"] for event in events] == [
        {"repository": "gone/api"}, {"repository": "gone/page", "tag": "v1"}, {"repository": "gone/page"}, {"repository": "gone/command"},
    ]
    methods = [(event["request"]["method"], event["request"]["useragent"]) for event in events[:3]]
    assert methods == [("DELETE", "script/1"), ("POST", client.headers["User-Agent"]), ("POST", client.headers["User-Agent"])]
    assert events[3]["request"]["method"] == "" and events[3]["request"]["id"]
    assert len({event["id"] for event in events}) == len(events)


def test_a_collection_sends_the_events_of_what_it_removed(fresh_receiver: Receiver, served: tuple[DockyardProcess, pathlib.Path]) -> None:
    server, config = served
    with httpx.Client(base_url=server.url, timeout=30) as client:
        digest, content = push_image(client, "collected/app", "v1", seed="collected")
        push_image(client, "collected/app", "v1", seed="collected-again")  # the first manifest is untagged now
    layer = json.loads(content)["layers"][0]["digest"]
    fresh_receiver.wait_for(lambda events: len(events) >= 6)
    fresh_receiver.clear()
    result = CliRunner().invoke(main, ["gc", "--config", str(config), "--delete-untagged", "--grace-period", "0s"])
    assert result.exit_code == 0, result.output
    events = fresh_receiver.wait_for(lambda events: any(event["target"].get("digest") == layer for event in events))
    assert {"actor": {"name": "gc"}, "action": "delete"}.items() <= events[0].items()
    removed = {(event["target"].get("repository", ""), event["target"].get("digest", "")) for event in events}
    assert ("collected/app", digest) in removed
    assert ("", layer) in removed  # a blob belongs to no repository
