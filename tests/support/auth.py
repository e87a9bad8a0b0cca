"""Users, policies and apps for the authentication and authorization tests (``tests/auth`` and others).

Users and their (fast, cost-4) bcrypt hashes, the matrix policy, and builders for
apps with :class:`dockyard.api.auth_setup.AuthSettings` in basic or token mode.
"""

from __future__ import annotations

import base64
import pathlib
import textwrap
from typing import Any

import bcrypt

from dockyard.api.app import create_app
from dockyard.api.auth_setup import AuthSettings
from dockyard.api.context import ACCESS_KEY
from dockyard.auth.robots import RobotAccounts, robots_among
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.registry import Registry
from dockyard.ui import session_key

# user -> password; "root" is the policy's admin.
USERS = {"reader": "read-pw", "writer": "write-pw", "root": "root-pw"}

MATRIX_POLICY = textwrap.dedent(
    """\
    admins: [root]
    groups:
      readers: [reader]
      writers: [writer]
    rules:
      - who: [group:readers]
        repositories: ["a/*"]
        actions: [pull]
      - who: [group:writers]
        repositories: ["a/*"]
        actions: [pull, push, delete]
      - who: [anonymous]
        repositories: ["public/*"]
        actions: [pull]
    """
)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def fast_hash(password: str) -> str:
    """bcrypt at cost 4: the format of ``htpasswd -B`` without its slowness."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()


def write_htpasswd(path: pathlib.Path, users: dict[str, str] = USERS) -> pathlib.Path:
    path.write_text("".join(f"{user}:{fast_hash(password)}\n" for user, password in users.items()))
    return path


def write_policy(path: pathlib.Path, text: str = MATRIX_POLICY) -> pathlib.Path:
    path.write_text(text)
    return path


def settings(tmp_path: pathlib.Path, mode: str, **overrides: Any) -> AuthSettings:
    """AuthSettings for ``mode`` ("basic" or "token") with the matrix users and policy."""
    values: dict[str, Any] = {
        "htpasswd": write_htpasswd(tmp_path / "htpasswd"),
        "policy_file": write_policy(tmp_path / "policy.yaml"),
        "token_auth": mode == "token",
        "signing_key": tmp_path / "token-signing.key",
        "max_failures": 100_000,
    }
    values.update(overrides)
    return AuthSettings(**values)


def make_app(root: pathlib.Path, auth: AuthSettings | None = None, robot_cache_seconds: float | None = None, ui: bool = False):
    """An app on ``root``; with ``robot_cache_seconds``, the storage's robot accounts sign in too;
    with ``ui``, the web page is served."""
    root.mkdir(parents=True, exist_ok=True)
    registry = Registry(FilesystemDriver(root))
    key = session_key("") if ui else None
    if auth is None:
        return create_app(registry, ui_session_key=key)
    robots = RobotAccounts(registry.driver, robot_cache_seconds) if robot_cache_seconds is not None else None
    access, token_service = auth.build(robots)
    return create_app(registry, access=access, token_service=token_service, ui_session_key=key)


def robots_of(client: Any) -> RobotAccounts:
    """The robot accounts of a ``make_app`` app's test client (made with ``robot_cache_seconds``)."""
    robots = robots_among(client.app[ACCESS_KEY].authenticator.sources)
    assert robots is not None
    return robots
