"""Robot accounts: credentials for CI that are not a person's password.

A robot signs in as ``robot$NAME`` (Harbor's convention) with a secret made for it once.
Its permissions are exactly its repository globs (push implies pull: every push asks
for both), never the access policy's rules. Robots live in storage, one record each
(``dockyard/robots/<name>/record``, see :mod:`dockyard.storage.paths`), so every worker
and replica sharing the storage knows them; each keeps them for :data:`CACHE_SECONDS`
only, so a removal or an expiry takes effect everywhere within seconds.

Only a hash of the secret is stored. SHA-256 rather than bcrypt: a slow hash protects
guessable passwords from offline guessing, and a secret of 32 random bytes cannot be
guessed, whatever the hash's speed. A fast hash keeps Basic mode's check on every
request cheap.

Robots sign in through :class:`RobotSource`, the first credential source the
:class:`~dockyard.auth.access.Authenticator` asks (see :mod:`dockyard.auth.sources`): it
answers other names without any work, and a robot's sign-in costs no bcrypt of the
htpasswd file's.

When a robot was last used is written beside the record, in a file of its own, at most
once a minute: a server never rewrites the record, so a write racing a removal cannot
bring a removed robot back.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

from dockyard.auth.policy import Policy, Rule, glob_pattern
from dockyard.auth.sources import Account, CredentialSource
from dockyard.config.values import parse_duration
from dockyard.storage import paths
from dockyard.storage.driver import PathNotFound, StorageDriver

log = logging.getLogger("dockyard.auth")

USER_PREFIX = "robot$"
CACHE_SECONDS = 2.0
"""How long a worker trusts a record it read: a removal or expiry is seen within this."""
LAST_USED_INTERVAL = 60.0
SECRET_BYTES = 32
MAX_CACHED = 10_000
_NAME = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
_GLOB = re.compile(r"[a-z0-9._/*-]+")
MAX_NAME_LENGTH = 64
_DAYS = re.compile(r"(\d+)d")


class RobotError(Exception):
    """A robot that cannot be made or found as asked (a one-line message)."""


def is_robot_user(user: str | None) -> bool:
    return user is not None and user.startswith(USER_PREFIX)


def robot_name(user: str) -> str | None:
    """The robot's name in a ``robot$NAME`` user name, or ``None`` if it names no valid robot."""
    name = user.removeprefix(USER_PREFIX)
    return name if user.startswith(USER_PREFIX) and valid_name(name) else None


def valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and _NAME.fullmatch(name) is not None


def parse_lifetime(text: str) -> float:
    """Seconds in ``90d`` (days) or a Go duration (``12h``, ``30m``)."""
    days = _DAYS.fullmatch(text)
    try:
        seconds = int(days.group(1)) * 86400.0 if days else parse_duration(text)
    except ValueError:
        raise RobotError(f"expected a lifetime like 90d, 12h or 30m, got {text[:40]!r}") from None
    if seconds <= 0:
        raise RobotError("a robot's lifetime must be positive")
    return seconds


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Robot:
    name: str
    pull: tuple[str, ...]
    push: tuple[str, ...]
    delete: tuple[str, ...]
    created: float
    expires: float | None
    secret_sha256: str

    @property
    def user(self) -> str:
        return USER_PREFIX + self.name

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires

    def accepts(self, secret: str) -> bool:
        return hmac.compare_digest(hash_secret(secret), self.secret_sha256)

    @cached_property
    def policy(self) -> Policy:
        """What the robot may do, as an access policy of its globs alone."""
        rules = tuple(
            Rule(frozenset({self.user}), tuple(map(glob_pattern, globs)), actions)
            for globs, actions in (
                (self.pull, frozenset({"pull"})), (self.push, frozenset({"pull", "push"})), (self.delete, frozenset({"delete"})),
            )
            if globs
        )
        return Policy(rules)

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), indent=1).encode()

    @classmethod
    def from_json(cls, content: bytes) -> Robot:
        try:
            fields = json.loads(content)
            pull, push, delete = (tuple(map(str, fields[key])) for key in ("pull", "push", "delete"))
            expires = None if fields["expires"] is None else float(fields["expires"])
            return cls(str(fields["name"]), pull, push, delete, float(fields["created"]), expires, str(fields["secret_sha256"]))
        except (ValueError, KeyError, TypeError) as error:
            raise RobotError(f"a robot record is not valid: {error}") from None


def new_robot(
    name: str, pull: Sequence[str], push: Sequence[str], delete: Sequence[str], lifetime: float | None, now: float,
) -> tuple[Robot, str]:
    """A robot and its secret (shown once, then known only by its hash)."""
    if not valid_name(name):
        raise RobotError(f"a robot's name is lowercase letters and digits, with single '.', '_' or '-' between (at most {MAX_NAME_LENGTH}): {name[:80]!r}")
    globs = [*pull, *push, *delete]
    if not globs:
        raise RobotError("a robot needs at least one --pull, --push or --delete repository glob")
    for glob in globs:
        if not _GLOB.fullmatch(glob):
            raise RobotError(f"a repository glob is lowercase letters, digits, '.', '_', '-', '/' and '*': {glob[:80]!r}")
    secret = secrets.token_urlsafe(SECRET_BYTES)
    robot = Robot(name, tuple(pull), tuple(push), tuple(delete), now, None if lifetime is None else now + lifetime, hash_secret(secret))
    return robot, secret


@dataclass(frozen=True)
class Listed:
    robot: Robot
    last_used: float | None


class RobotAccounts:
    """The robots of one storage: read (briefly cached) to sign them in, and managed."""

    def __init__(self, driver: StorageDriver, cache_seconds: float = CACHE_SECONDS, clock: Callable[[], float] = time.time) -> None:
        self.driver = driver
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._cache: dict[str, tuple[float, Robot | None]] = {}  # name -> (when read, monotonic; the record)
        self._last_used: dict[str, float] = {}  # name -> when this process last saw or wrote its stamp
        self._writes: set[asyncio.Task[None]] = set()

    async def read(self, name: str) -> Robot | None:
        """The stored record, uncached (``None``: no such robot)."""
        try:
            return Robot.from_json(await self.driver.get_content(paths.robot_record(name)))
        except PathNotFound:
            return None
        except RobotError as error:
            log.error("robot %s: %s; it cannot sign in", name, error)
            return None

    async def find(self, user: str) -> Robot | None:
        """The robot ``user`` (``robot$NAME``) names, if it exists and has not expired."""
        name = robot_name(user)
        if name is None:
            return None
        now = time.monotonic()
        cached = self._cache.get(name)
        if cached is None or cached[0] + self.cache_seconds <= now:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()  # unknown names tried in bulk: forget them rather than grow
            cached = (now, await self.read(name))
            self._cache[name] = cached
        robot = cached[1]
        return None if robot is None or robot.expired(self.clock()) else robot

    async def verify(self, user: str, secret: str) -> Robot | None:
        """The robot, if ``secret`` is its secret (and it is current); notes its use."""
        robot = await self.find(user)
        if robot is None or not robot.accepts(secret):
            return None
        self._note_use(robot.name)
        return robot

    def _note_use(self, name: str) -> None:
        now = self.clock()
        if now - self._last_used.get(name, 0.0) < LAST_USED_INTERVAL:
            return
        self._last_used[name] = now
        task = asyncio.create_task(self._write_last_used(name, now))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write_last_used(self, name: str, now: float) -> None:
        try:
            stored = await self.last_used(name)
            if stored is not None and now - stored < LAST_USED_INTERVAL:
                self._last_used[name] = stored  # another worker or replica wrote it lately
                return
            await self.driver.put_content(paths.robot_last_used(name), str(int(now)).encode())
        except Exception as error:  # noqa: BLE001 (a lost stamp must not fail the request that used the robot)
            log.warning("cannot note when robot %s was last used: %s", name, error)

    async def last_used(self, name: str) -> float | None:
        try:
            return float((await self.driver.get_content(paths.robot_last_used(name))).decode())
        except (PathNotFound, ValueError):
            return None

    async def add(
        self, name: str, pull: Sequence[str], push: Sequence[str], delete: Sequence[str], lifetime: float | None,
    ) -> tuple[Robot, str]:
        """Make and store a new robot; returns it and its secret."""
        robot, secret = new_robot(name, pull, push, delete, lifetime, self.clock())
        if await self.read(name) is not None:
            raise RobotError(f"robot {name} exists: remove it first to make a new secret")
        await self._clear(name)
        await self.driver.put_content(paths.robot_record(name), robot.to_json())
        return robot, secret

    async def remove(self, name: str) -> None:
        missing = RobotError(f"no robot {name[:80]}")
        if not valid_name(name):
            raise missing
        try:
            await self.driver.delete(paths.robot_record(name))  # the robot is gone with its record
        except PathNotFound:
            raise missing from None
        self._cache.pop(name, None)
        await self._clear(name)

    async def _clear(self, name: str) -> None:
        """Delete what is left of a robot's folder. A last-used write racing this (the robot was in
        use) may keep a file there, or make the delete fail: :meth:`add` clears it again."""
        with contextlib.suppress(PathNotFound, OSError):
            await self.driver.delete(paths.robot(name))

    async def list(self) -> list[Listed]:
        try:
            names = sorted(await self.driver.list(paths.ROBOTS))
        except PathNotFound:
            return []
        found = []
        for name in names:
            robot = await self.read(name) if valid_name(name) else None
            if robot is not None:
                found.append(Listed(robot, await self.last_used(name)))
        return found


ROBOT = "robot"
"""The robot source's name (the prefix of robots' token stamps)."""


class RobotSource:
    """Robots as a credential source: a robot's account is stamped with its secret's hash (a
    removal, an expiry or a new secret ends its tokens) and judged by its own globs alone."""

    name = ROBOT

    def __init__(self, accounts: RobotAccounts) -> None:
        self.accounts = accounts

    @staticmethod
    def _account(robot: Robot | None) -> Account | None:
        return Account(robot.user, ROBOT, robot.secret_sha256, policy=robot.policy) if robot is not None else None

    async def verify(self, user: str, password: str) -> Account | None:
        # A name other than robot$NAME is answered None without a look in storage (see find).
        return self._account(await self.accounts.verify(user, password))

    async def lookup(self, user: str, *, fresh: bool = False) -> Account | None:
        # Never older than CACHE_SECONDS, fresh enough for a refresh token too.
        return self._account(await self.accounts.find(user))


def robots_among(sources: Iterable[CredentialSource]) -> RobotAccounts | None:
    """The robot accounts among ``sources`` (``None``: robots cannot sign in)."""
    return next((source.accounts for source in sources if isinstance(source, RobotSource)), None)
