"""Users of an LDAP directory (``dockyard.ldap``), a credential source beside htpasswd's.

A sign-in is a search as ``bind_dn`` for the one entry ``user_filter`` finds, a search
for the groups ``group_filter`` finds (their ``group_name_attribute`` values become the
policy's ``group:NAME``), then a bind as that entry with the password. Values are
escaped into the filters as RFC 4515 says, so a name such as ``*)(uid=*`` finds nobody;
an empty password is refused before any bind (LDAP takes it as an anonymous bind).

ldap3 (pure Python, blocking) runs in threads of its own, never on the event loop: at most
``pool_size`` at once, each with a connection from a pool of open ones (TLS already
started, bound again as ``bind_dn`` after a user's bind). A pooled connection the
directory has closed is replaced once before the directory counts as down.

Successful sign-ins are kept for ``cache_ttl`` under an HMAC of the name and password with
a random key of this process (never the password), so a pull's many requests do not each
bind; a wrong password never matches one. Lookups of a user (for their tokens and
sessions, see :mod:`dockyard.auth.binding`) are kept as long. A directory that does not
answer raises :class:`~dockyard.errors.DirectoryUnavailable`: 503 for whoever is not
in the cache, never a way in.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import secrets
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

from dockyard.auth.sources import Account
from dockyard.config.schema import Ldap
from dockyard.errors import DirectoryUnavailable

log = logging.getLogger("dockyard.auth")

LDAP = "ldap"
MAX_CACHED_USERS = 10_000
_PAGED_RESULTS = "1.2.840.113556.1.4.319"  # RFC 2696's control
_SUCCESS, _SIZE_LIMIT_EXCEEDED, _NO_SUCH_OBJECT = 0, 4, 32
# A bind refused for the user's sake (a wrong password, a locked account), not the directory's.
_REFUSED = (48, 49, 50, 53)  # inappropriateAuthentication, invalidCredentials, insufficientAccessRights, unwillingToPerform
T = TypeVar("T")


class _VerifiedTls(ldap3.Tls):
    """TLS with the standard library's checks, host name (or IP address) included: ldap3's own
    host name check turns the context's off and cannot match an IP address on Python 3.12."""

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__()
        self.context = context

    def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
        connection.socket = self.context.wrap_socket(
            connection.socket, server_side=False, do_handshake_on_connect=do_handshake, server_hostname=connection.server.host,
        )


@dataclass
class _Held:
    connection: ldap3.Connection
    as_service: bool  # bound as bind_dn (not as the user whose password was checked last)


class _Broken(LDAPException):
    """The directory answered an operation with an error code: it cannot say now."""


class LdapDirectory:
    name = LDAP

    def __init__(self, config: Ldap, bind_password: str) -> None:
        self.config = config
        self._bind_password = bind_password
        parsed = urllib.parse.urlsplit(config.url)
        secure = parsed.scheme == "ldaps"
        tls = _VerifiedTls(ssl.create_default_context(cafile=config.ca_file or None)) if secure or config.start_tls else None
        # A new ldap3 Server for each connection: one remembers an address that failed, and refuses
        # it for seconds after, where the directory back at once must be used at once.
        self._server = functools.partial(
            ldap3.Server, parsed.hostname or "", port=parsed.port or (636 if secure else 389), use_ssl=secure, tls=tls,
            get_info=ldap3.NONE, connect_timeout=config.timeout,
        )
        self._executor = ThreadPoolExecutor(max_workers=config.pool_size, thread_name_prefix="dockyard-ldap")
        self._idle: list[_Held] = []
        self._idle_lock = threading.Lock()
        self._cache_key = secrets.token_bytes(32)
        # Touched on the event loop only.
        self._sign_ins: dict[str, tuple[bytes, Account, float]] = {}
        self._lookups: dict[str, tuple[Account | None, float]] = {}

    # ---- on the event loop ----

    async def verify(self, user: str, password: str) -> Account | None:
        if not user or not password:
            return None  # an empty password would be an anonymous bind, which succeeds
        mac = hmac.new(self._cache_key, f"{user}\0{password}".encode(), hashlib.sha256).digest()
        cached = self._sign_ins.get(user)
        if cached is not None and cached[2] > time.monotonic() and hmac.compare_digest(cached[0], mac):
            return cached[1]
        account = await self._run(self._verify, user, password)
        if account is not None:
            _remember(self._sign_ins, user, (mac, account, time.monotonic() + self.config.cache_ttl))
            _remember(self._lookups, user, (account, time.monotonic() + self.config.cache_ttl))
        return account

    async def lookup(self, user: str, *, fresh: bool = False) -> Account | None:
        cached = self._lookups.get(user)
        if not fresh and cached is not None and cached[1] > time.monotonic():
            return cached[0]
        account = await self._run(self._lookup, user)
        _remember(self._lookups, user, (account, time.monotonic() + self.config.cache_ttl))
        if account is None or (user in self._sign_ins and self._sign_ins[user][1] != account):
            self._sign_ins.pop(user, None)  # gone, or moved or regrouped: sign in again
        return account

    async def _run(self, work: Callable[[str, str], Account | None], user: str, password: str = "") -> Account | None:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work, user, password)
        except LDAPException as error:
            log.error("LDAP directory %s: %s", self.config.url, error)
            raise DirectoryUnavailable(f"the user directory cannot be reached ({type(error).__name__}): sign-ins are refused until it answers") from None

    # ---- in the directory's threads ----

    def _verify(self, user: str, password: str) -> Account | None:
        def attempt(held: _Held) -> Account | None:
            account = self._account(held, user)
            if account is None:
                return None
            held.as_service = False
            if held.connection.rebind(account.stamp_material, password):
                return account
            _check(held.connection, "bind", *_REFUSED)
            return None

        return self._with_connection(attempt)

    def _lookup(self, user: str, _: str) -> Account | None:
        return self._with_connection(lambda held: self._account(held, user))

    def _with_connection(self, work: Callable[[_Held], T]) -> T:
        with self._idle_lock:
            pooled = self._idle.pop() if self._idle else None
        if pooled is not None:
            try:
                return self._back_to_pool(pooled, work(pooled))
            except LDAPException:
                _close(pooled)  # closed by the directory meanwhile (a restart, an idle timeout): once more on a new one
        opened = _Held(self._open(), as_service=True)
        try:
            return self._back_to_pool(opened, work(opened))
        except LDAPException:
            _close(opened)
            raise

    def _back_to_pool(self, held: _Held, result: T) -> T:
        with self._idle_lock:
            self._idle.append(held)
        return result

    def _open(self) -> ldap3.Connection:
        auto_bind = ldap3.AUTO_BIND_TLS_BEFORE_BIND if self.config.start_tls else ldap3.AUTO_BIND_NO_TLS
        return ldap3.Connection(
            self._server(), user=self.config.bind_dn or None, password=self._bind_password or None, auto_bind=auto_bind,
            receive_timeout=max(1, round(self.config.timeout)), read_only=True, raise_exceptions=False,
        )

    def _account(self, held: _Held, user: str) -> Account | None:
        """``user``'s entry (its DN) and groups, searched as ``bind_dn``."""
        connection = held.connection
        if not held.as_service:
            if not connection.rebind(self.config.bind_dn or None, self._bind_password or None):
                raise _Broken(f"bind as {self.config.bind_dn or 'anonymous'} refused: {connection.result.get('description')}")
            held.as_service = True
        name = escape_filter_chars(user)
        connection.search(
            self.config.user_base, self.config.user_filter.replace("{username}", name),
            ldap3.SUBTREE, attributes=ldap3.NO_ATTRIBUTES, size_limit=2,
        )
        _check(connection, "user search", _SUCCESS, _SIZE_LIMIT_EXCEEDED, _NO_SUCH_OBJECT)
        entries = [entry["dn"] for entry in connection.response or [] if entry.get("type") == "searchResEntry"]
        if len(entries) != 1:
            if entries:
                log.warning("LDAP: %d entries under %s match %r: refused, a name must find one", len(entries), self.config.user_base, user)
            return None
        dn = str(entries[0])
        group_filter = self.config.group_filter.replace("{dn}", escape_filter_chars(dn)).replace("{username}", name)
        return Account(user, LDAP, dn, self._groups(connection, group_filter) if self.config.group_base else frozenset())

    def _groups(self, connection: ldap3.Connection, group_filter: str) -> frozenset[str]:
        attribute = self.config.group_name_attribute
        names: set[str] = set()
        cookie: bytes | None = None
        while True:
            connection.search(
                self.config.group_base, group_filter, ldap3.SUBTREE, attributes=[attribute],
                paged_size=self.config.page_size, paged_cookie=cookie,
            )
            _check(connection, "group search", _SUCCESS, _NO_SUCH_OBJECT)
            for entry in connection.response or []:
                if entry.get("type") == "searchResEntry":
                    values = entry["attributes"].get(attribute) or []
                    names.update(str(value) for value in (values if isinstance(values, list) else [values]))
            control = (connection.result.get("controls") or {}).get(_PAGED_RESULTS) or {}
            cookie = (control.get("value") or {}).get("cookie")
            if not cookie:
                return frozenset(names)


def _check(connection: ldap3.Connection, what: str, *accepted: int) -> None:
    result = connection.result or {}
    if result.get("result") not in accepted:
        raise _Broken(f"{what}: {result.get('description')} {result.get('message') or ''}".strip())


def _close(held: _Held) -> None:
    try:
        held.connection.unbind()
    except LDAPException:
        pass  # already gone


def _remember(cache: dict[str, Any], key: str, value: Any) -> None:
    """Keep ``value``, forgetting the oldest entries when the cache is full (a spray of names)."""
    cache.pop(key, None)
    if len(cache) >= MAX_CACHED_USERS:
        for stale in list(cache)[: MAX_CACHED_USERS // 10]:
            del cache[stale]
    cache[key] = value
