"""Remembering what a pure function of a short string (or of a few) answered, for the values a
server sees again and again: a request's path, an Accept header, a repository name.

Bounded twice, as any client may send any value: the last ``size`` distinct keys, and only keys
of at most ``longest`` characters (longer ones are computed every time)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Sized
from typing import Generic, Protocol, TypeVar


class _Key(Hashable, Sized, Protocol):
    pass


K = TypeVar("K", bound=_Key)
V = TypeVar("V")


class Remembered(Generic[K, V]):
    def __init__(self, function: Callable[[K], V], size: int, longest: int) -> None:
        self._function = function
        self._cached = functools.lru_cache(maxsize=size)(function)
        self._longest = longest

    def __call__(self, key: K) -> V:
        return self._cached(key) if _length(key) <= self._longest else self._function(key)

    def cache_info(self) -> functools._CacheInfo:
        return self._cached.cache_info()


def _length(key: _Key) -> int:
    """Characters of a string, or of every string in a tuple of them."""
    if isinstance(key, tuple):
        return sum(map(len, key))
    return len(key)


def remembered(size: int, longest: int) -> Callable[[Callable[[K], V]], Remembered[K, V]]:
    """A decorator: ``function``'s answers remembered (see the module's documentation)."""
    return lambda function: Remembered(function, size, longest)
