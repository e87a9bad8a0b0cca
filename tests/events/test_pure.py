"""The parts of events that need no server: retry waits, endpoint folders, the endpoints taken from the settings."""

from __future__ import annotations

import pathlib
from collections import deque

import pytest
import yaml

from dockyard.config import load
from dockyard.events.delivery import RECENT, Attempt, remember, retry_delay
from dockyard.events.endpoints import Endpoint, configured_endpoints, endpoint_folder


def _endpoint(backoff: float, threshold: int) -> Endpoint:
    return Endpoint("e", "http://127.0.0.1:1/", {}, 1.0, threshold, backoff, frozenset(), frozenset())


def test_retries_wait_backoff_then_twice_as_long_each_time_up_to_the_longest() -> None:
    endpoint = _endpoint(backoff=2.0, threshold=3)
    for _ in range(200):  # jittered: between half and all of the wait, never more
        assert [1.0 <= retry_delay(endpoint, failures, 300.0) <= 2.0 for failures in (1, 2, 3)] == [True] * 3
        assert 2.0 <= retry_delay(endpoint, 4, 300.0) <= 4.0
        assert 8.0 <= retry_delay(endpoint, 6, 300.0) <= 16.0
        assert 30.0 <= retry_delay(endpoint, 40, 60.0) <= 60.0
    assert len({retry_delay(endpoint, 1, 300.0) for _ in range(20)}) > 1  # not in step with another sender
    assert retry_delay(_endpoint(backoff=0.0, threshold=1), 5, 300.0) > 0  # never a busy loop


def test_retries_failing_alike_are_one_counted_line_of_the_recent_list() -> None:
    recent: deque[Attempt] = deque(maxlen=RECENT)
    remember(recent, Attempt(1.0, "e0", "push", "app", "delivered"))
    for second in range(2, 2 + 3 * RECENT):  # an endpoint down for many retries of one event
        remember(recent, Attempt(float(second), "e1", "push", "app", "failed", "status 503"))
    remember(recent, Attempt(100.0, "e1", "push", "app", "failed", "no answer within 1.0s"))
    remember(recent, Attempt(101.0, "e1", "push", "app", "delivered"))
    assert [(attempt.event_id, attempt.outcome, attempt.detail, attempt.tries) for attempt in recent] == [
        ("e0", "delivered", "", 1), ("e1", "failed", "status 503", 3 * RECENT), ("e1", "failed", "no answer within 1.0s", 1),
        ("e1", "delivered", "", 1),
    ]
    assert recent[1].time == 1.0 + 3 * RECENT  # the last of the retries


@pytest.mark.parametrize("name", ["hooks", "a/b", "..", "", "ü"])
def test_an_endpoint_folder_is_one_safe_name_of_its_own(name: str) -> None:
    folder = endpoint_folder(name)
    assert "/" not in folder and folder not in (".", "..") and folder.isascii()
    assert folder != endpoint_folder(name + " ")


def test_disabled_endpoints_get_nothing_and_options_go_by_name(tmp_path: pathlib.Path) -> None:
    (tmp_path / "secret").write_bytes(b"s3cret\n")
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({
        "version": "0.1", "storage": {"inmemory": None},
        "notifications": {"endpoints": [
            {"name": "off", "url": "https://off.example.com", "disabled": True},
            {"name": "on", "url": "https://on.example.com", "ignoredmediatypes": ["a/b"], "ignore": {"mediatypes": ["c/d"], "actions": ["pull"]}},
        ]},
        "dockyard": {"events": {"endpoints": [{"name": "on", "format": "cloudevents", "secret_file": str(tmp_path / "secret")}]}},
    }))
    (endpoint,) = configured_endpoints(load(config, {}).settings)
    assert (endpoint.name, endpoint.cloudevents, endpoint.secret) == ("on", True, b"s3cret")
    assert endpoint.wants("push", "") and endpoint.wants("delete", "e/f")
    assert not endpoint.wants("pull", "") and not endpoint.wants("push", "a/b") and not endpoint.wants("push", "c/d")
