"""Scopes of the Docker token specification, ``repository:NAME:ACTIONS``."""

from __future__ import annotations

import pytest

from dockyard.api.access import needed_scopes
from dockyard.auth import scopes
from dockyard.auth.scopes import Scope


@pytest.mark.parametrize(
    ("text", "kind", "name", "actions"),
    [
        ("repository:app:pull", "repository", "app", {"pull"}),
        ("repository:a/b/c:pull,push", "repository", "a/b/c", {"pull", "push"}),
        ("repository:localhost:5000/app:pull,push", "repository", "localhost:5000/app", {"pull", "push"}),
        ("repository:127.0.0.1:5000/team/app:delete", "repository", "127.0.0.1:5000/team/app", {"delete"}),
        ("repository:[::1]:5000/app:pull", "repository", "[::1]:5000/app", {"pull"}),
        ("registry:catalog:*", "registry", "catalog", {"*"}),
        ("repository:app:", "repository", "app", set()),
        ("repository:app:pull,,push,", "repository", "app", {"pull", "push"}),
    ],
)
def test_parse(text: str, kind: str, name: str, actions: set[str]) -> None:
    scope = Scope.parse(text)
    assert scope == Scope(kind, name, frozenset(actions))


@pytest.mark.parametrize(
    "text",
    ["", "repository", "repository:", "repository:app", ":app:pull", "repository::pull", "::", ":"],
)
def test_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="malformed scope"):
        Scope.parse(text)


def test_malformed_message_is_bounded() -> None:
    with pytest.raises(ValueError) as caught:
        Scope.parse("x" * 10_000)
    assert len(str(caught.value)) < 250


def test_str_sorts_actions_and_round_trips() -> None:
    scope = scopes.repository("localhost:5000/app", "push", "pull")
    assert str(scope) == "repository:localhost:5000/app:pull,push"
    assert Scope.parse(str(scope)) == scope
    assert str(scopes.CATALOG) == "registry:catalog:*"


def test_claim() -> None:
    assert scopes.repository("a/b", "push", "pull").claim() == {"type": "repository", "name": "a/b", "actions": ["pull", "push"]}


@pytest.mark.parametrize(
    ("route", "method", "expected"),
    [
        ("base", "GET", []),
        ("catalog", "GET", ["registry:catalog:*"]),
        ("tags", "GET", ["repository:a/app:pull"]),
        ("manifest", "HEAD", ["repository:a/app:pull"]),
        ("manifest", "PUT", ["repository:a/app:pull,push"]),
        ("manifest", "DELETE", ["repository:a/app:delete"]),
        ("upload-start", "POST", ["repository:a/app:pull,push"]),
        ("upload", "PATCH", ["repository:a/app:pull,push"]),
        ("upload", "GET", ["repository:a/app:pull"]),
        ("blob", "DELETE", ["repository:a/app:delete"]),
    ],
)
def test_needed_scopes(route: str, method: str, expected: list[str]) -> None:
    name = "" if route in ("base", "catalog") else "a/app"
    assert [str(scope) for scope in needed_scopes(route, method, name)] == expected


def test_needed_scopes_are_built_once_per_route_method_and_name() -> None:
    first = needed_scopes("manifest", "GET", "library/app")
    assert needed_scopes("manifest", "GET", "library/app") is first
    assert needed_scopes("manifest", "PUT", "library/app") != first
    long_name = "/".join(["a" * 60] * 5)  # longer than a name may be: built each time, still right
    assert [str(scope) for scope in needed_scopes("manifest", "GET", long_name)] == [f"repository:{long_name}:pull"]
