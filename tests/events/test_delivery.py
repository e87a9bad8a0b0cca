"""Events delivered from the outbox: through an endpoint that is down for a while, a ``kill -9``
of the registry with a backlog, two replicas on one storage, an endpoint that does not answer."""

from __future__ import annotations

import collections
import pathlib
import re
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.events.conftest import Receiver, events_config, pending, serve, waiting
from tests.support.plugin import storage_params
from tests.support.registry_client import push_image
from tests.support.seaweedfs import SeaweedFS

EVENTS_PER_IMAGE = 3  # its layer, its config, its manifest
REPLICA_IMAGES = 4  # pushed alternately through two replicas


def _ids(events: list[dict[str, Any]]) -> collections.Counter[str]:
    return collections.Counter(event["id"] for event in events)


def _pending_ids(root: pathlib.Path) -> set[str]:
    return {path.name.partition("-")[2] for path in pending(root)}


def test_an_endpoint_down_during_pushes_gets_every_event_once_back(fresh_receiver: Receiver, tmp_path: pathlib.Path) -> None:
    root = tmp_path / "root"
    server = serve(root, events_config(tmp_path, root, fresh_receiver.url))
    try:
        fresh_receiver.status = 503
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for index in range(4):
                push_image(client, "down/app", f"v{index}", seed=f"down-{index}")
        waiting = _pending_ids(root)
        assert len(waiting) == 4 * EVENTS_PER_IMAGE  # written before each answer, none sent yet
        fresh_receiver.status = 200
        events = fresh_receiver.wait_for(lambda events: set(_ids(events)) >= waiting)
        assert set(_ids(events)) == waiting
        assert set(_ids(events).values()) == {1}
        pushed_tags = [event["target"]["tag"] for event in events if "tag" in event["target"]]
        assert pushed_tags == ["v0", "v1", "v2", "v3"]  # the endpoint's order kept
        fresh_receiver.wait_for(lambda _: not pending(root))  # each removed once taken
    finally:
        server.stop()


def test_kill_9_with_a_backlog_loses_no_event(fresh_receiver: Receiver, tmp_path: pathlib.Path) -> None:
    """Killed while a send is in flight and more wait: after a restart every event arrives, at least once."""
    root = tmp_path / "root"
    config = events_config(tmp_path, root, fresh_receiver.url)
    server = serve(root, config)
    try:
        fresh_receiver.hold()  # the first send never gets its answer
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for index in range(5):
                push_image(client, "killed/app", f"v{index}", seed=f"killed-{index}")
        written = _pending_ids(root)
        assert len(written) == 5 * EVENTS_PER_IMAGE
        assert server.process is not None
        server.process.kill()
        server.process.wait()
        fresh_receiver.open()
        assert _pending_ids(root) == written  # the kill took none away
        server.start()  # takes over the dead process's lease once it expires
        events = fresh_receiver.wait_for(lambda events: set(_ids(events)) >= written)
    finally:
        server.stop()
    assert set(_ids(events)) == written
    print(f"kill -9: {len(written)} events waiting, {len(events)} taken ({len(events) - len(written)} repeats), none lost")


@pytest.mark.parametrize("storage", storage_params(["filesystem", "s3"]))
def test_two_replicas_on_one_storage_deliver_each_event_once(
    fresh_receiver: Receiver, tmp_path: pathlib.Path, storage: str, request: pytest.FixtureRequest,
) -> None:
    root = tmp_path / "root"
    s3 = None
    if storage == "s3":
        seaweedfs: SeaweedFS = request.getfixturevalue("seaweedfs")
        s3 = seaweedfs.storage_config(request.getfixturevalue("s3_bucket"), f"/events-{uuid.uuid4().hex}")
    config = events_config(tmp_path, root, fresh_receiver.url, s3=s3)
    replicas = [serve(root, config), serve(root, config)]
    try:
        clients = [httpx.Client(base_url=replica.url, timeout=30) for replica in replicas]
        for index in range(REPLICA_IMAGES):
            push_image(clients[index % 2], "replicas/app", f"v{index}", seed=f"replicas-{index}")
        for client in clients:
            client.close()
        fresh_receiver.wait_for(lambda events: len(set(_ids(events))) >= REPLICA_IMAGES * EVENTS_PER_IMAGE)
        fresh_receiver.wait_for(lambda _: waiting(replicas[0]) == [0])  # every send done, none to repeat
        events = fresh_receiver.events
    finally:
        for replica in replicas:
            replica.stop()
    assert len(_ids(events)) == REPLICA_IMAGES * EVENTS_PER_IMAGE
    assert set(_ids(events).values()) == {1}
    sources = {event["source"]["instanceID"] for event in events}
    assert len(sources) == 2  # both replicas recorded events; one of them sent them all, once


def test_an_endpoint_that_does_not_answer_holds_up_neither_pushes_nor_another_endpoint(
    fresh_receiver: Receiver, tmp_path: pathlib.Path,
) -> None:
    other = Receiver().start()
    root = tmp_path / "root"
    extra = f"    - name: other\n      url: {other.url}\n      timeout: 1s\n"
    server = serve(root, events_config(tmp_path, root, fresh_receiver.url, endpoints=extra))
    try:
        fresh_receiver.hold()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for index in range(3):
                push_image(client, "slow/app", f"v{index}", seed=f"slow-{index}")
        # Every push answered, and the other endpoint has every event, while the first has taken none.
        taken_by_other = other.wait_for(lambda events: len(events) == 3 * EVENTS_PER_IMAGE)
        assert fresh_receiver.events == []
        fresh_receiver.open()
        events = fresh_receiver.wait_for(lambda events: set(_ids(events)) >= set(_ids(taken_by_other)))
        assert set(_ids(events)) == set(_ids(taken_by_other))
    finally:
        server.stop()
        other.stop()


def test_a_full_backlog_drops_its_oldest_events_counted(fresh_receiver: Receiver, tmp_path: pathlib.Path) -> None:
    root = tmp_path / "root"
    config = events_config(tmp_path, root, fresh_receiver.url, dockyard="    max_backlog: 4\n")
    debug_server = "  debug:\n    addr: 127.0.0.1:0\n    prometheus:\n      enabled: true\n"
    config.write_text(config.read_text().replace("http:\n  addr: 127.0.0.1:0\n", "http:\n  addr: 127.0.0.1:0\n" + debug_server))
    server = serve(root, config)
    try:
        fresh_receiver.status = 503
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for index in range(3):
                push_image(client, "full/app", f"v{index}", seed=f"full-{index}")
        debug = re.search(r"debug server on (http://127\.0\.0\.1:\d+)", server.log.read_text())
        assert debug is not None
        # 9 events written, the oldest 5 dropped (while the pushes went on, or after).
        metrics = _wait_for_metric(debug.group(1) + "/metrics", 'dockyard_events_dropped_total{endpoint="hooks",reason="backlog"} 5.0')
        assert 'dockyard_events_failed_total{endpoint="hooks"}' in metrics
        kept = _pending_ids(root)
        assert len(kept) == 4
        metrics = _wait_for_metric(debug.group(1) + "/metrics", 'dockyard_events_backlog{endpoint="hooks"} 4.0')
        oldest = re.search(r'dockyard_events_oldest_age_seconds\{endpoint="hooks"\} ([\d.e+-]+)', metrics)
        assert oldest is not None and float(oldest.group(1)) > 0
        page = httpx.get(f"{server.url}/ui/events").text  # the failures and the drop, for admins
        assert "status 503" in page and "events past max_backlog" in page
        fresh_receiver.status = 200
        events = fresh_receiver.wait_for(lambda events: set(_ids(events)) >= kept)
        assert set(_ids(events)) == kept
        assert events[-1]["target"]["tag"] == "v2"  # the newest kept: the last push's manifest
        _wait_for_metric(debug.group(1) + "/metrics", 'dockyard_events_sent_total{endpoint="hooks"} 4.0')
    finally:
        server.stop()
    assert server.log.read_text().count("backlog past its bounds") == 1  # logged once


def _wait_for_metric(url: str, line: str) -> str:
    for _ in range(300):
        text = httpx.get(url).text
        if line in text:
            return text
        time.sleep(0.05)
    raise AssertionError(f"{line!r} not in {url}:\n{text}")
