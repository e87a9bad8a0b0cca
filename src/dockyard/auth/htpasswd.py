"""htpasswd files of every kind Apache's ``htpasswd`` writes, re-read when they change.

bcrypt (``$2y$``/``$2a$``/``$2b$``), apr1 MD5 (``$apr1$``), SHA-1 (``{SHA}``) and
traditional crypt (``htpasswd -d``) are accepted; plain-text entries are refused.
Checks run in a thread (bcrypt is slow on purpose); a short-lived cache of recent
successes, keyed by an HMAC of the password, spares a push of 50 layers 50 bcrypts.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import pathlib
import re
import secrets
import time
from collections.abc import Callable

import bcrypt

from dockyard.atomic import write_file

log = logging.getLogger("dockyard.auth")

BCRYPT_COST = 11
CACHE_SECONDS = 300
_DES_CRYPT = re.compile(r"[./0-9A-Za-z]{13}")
# Checked for unknown users too, so that a wrong name costs as much as a wrong password.
# A literal (of a random password nobody kept), so that importing this module costs no bcrypt.
_DUMMY_HASH = b"$2b$11$uXF4bQbiLCCvGGj2L6b7SOBVPiuNnSxTZWhtwBl8LFhGCdfWOoYs6"


def _check_bcrypt(password: str, hashed: str) -> bool:
    return bcrypt.checkpw(password.encode(), hashed.encode())


# passlib (megabytes in each process) is imported only when a file holds one of its schemes;
# it ships no type information: each verify(secret, hash) returns a bool.
def _check_apr1(password: str, hashed: str) -> bool:
    from passlib.hash import apr_md5_crypt

    return bool(apr_md5_crypt.verify(password, hashed))


def _check_ldap_sha1(password: str, hashed: str) -> bool:
    from passlib.hash import ldap_sha1

    return bool(ldap_sha1.verify(password, hashed))


def _check_des_crypt(password: str, hashed: str) -> bool:
    from passlib.hash import des_crypt

    return bool(des_crypt.verify(password, hashed))


def _matches(password: str, hashed: str | None) -> bool:
    if hashed is None:
        _check_bcrypt(password, _DUMMY_HASH.decode())
        return False
    check = verifier(hashed)
    return bool(check and check(password, hashed))


def verifier(hashed: str) -> Callable[[str, str], bool] | None:
    """The check for a stored hash, or ``None`` for plain text and unknown schemes."""
    if hashed.startswith(("$2y$", "$2a$", "$2b$")):
        return _check_bcrypt
    if hashed.startswith("$apr1$"):
        return _check_apr1
    if hashed.startswith("{SHA}"):
        return _check_ldap_sha1
    if _DES_CRYPT.fullmatch(hashed):
        return _check_des_crypt
    return None


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_COST)).decode()


def parse(text: str, source: str = "htpasswd") -> dict[str, str]:
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user:
            log.warning("%s line %d is not USER:HASH: ignored", source, number)
            continue
        if verifier(hashed) is None:
            log.warning("%s line %d (user %s): plain-text or unknown password scheme refused; use bcrypt (htpasswd -B)", source, number, user)
            continue
        entries[user] = hashed
    return entries


def read_entries(path: pathlib.Path) -> dict[str, str]:
    return parse(path.read_text(encoding="utf-8", errors="replace"), str(path))


def write_entries(path: pathlib.Path, entries: dict[str, str]) -> None:
    write_file(path, "".join(f"{user}:{hashed}\n" for user, hashed in entries.items()).encode(), 0o600)


class Htpasswd:
    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self._entries: dict[str, str] = {}
        self._signature: tuple[int, int, int] | None = None
        self._cache: dict[str, tuple[bytes, float]] = {}
        self._cache_key = secrets.token_bytes(32)
        self.reload_if_changed()

    def reload_if_changed(self) -> None:
        try:
            status = os.stat(self.path)
        except OSError as error:
            if self._signature is None:
                raise
            log.error("cannot read %s (%s): keeping the users read before", self.path, error.strerror)
            return
        signature = (status.st_mtime_ns, status.st_size, status.st_ino)
        if signature != self._signature:
            self._entries = read_entries(self.path)
            self._signature = signature
            self._cache.clear()
            log.info("read %d user(s) from %s", len(self._entries), self.path)

    @property
    def users(self) -> list[str]:
        return sorted(self._entries)

    def entry(self, user: str) -> str | None:
        """``user``'s stored hash as the file says now (``None``: no such user)."""
        self.reload_if_changed()
        return self._entries.get(user)

    async def verify(self, user: str, password: str) -> bool:
        return await self.verified_entry(user, password) is not None

    async def verified_entry(self, user: str, password: str) -> str | None:
        """The stored hash ``password`` was checked against and matched (``None``: no such user or a wrong password)."""
        hashed = self.entry(user)
        # The hash is part of the key: a success cached while the file changed (the check runs in a
        # thread) never lets the old password in against the new entry.
        mac = hmac.new(self._cache_key, f"{user}\0{hashed}\0{password}".encode(), hashlib.sha256).digest()
        cached = self._cache.get(user)
        if cached is not None and cached[1] > time.monotonic() and hmac.compare_digest(cached[0], mac):
            return hashed
        if not await asyncio.to_thread(_matches, password, hashed):
            return None
        self._cache[user] = (mac, time.monotonic() + CACHE_SECONDS)
        return hashed
