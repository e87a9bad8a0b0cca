"""Immutable tags (``dockyard.immutable_tags`` in the config).

A tag that a rule covers (its repository matches the rule's ``repositories`` glob and
the tag one of its ``tags`` globs; ``*`` matches across ``/`` too, as retention's globs
do) never moves to another manifest once it exists, and is never deleted: not through
the API, the web page, retention or garbage collection. Pushing the manifest it names
again succeeds (a CI job's retry). A repository holding one is deleted only when an
admin forces it. Rules never cover a pull-through cache's repositories: their tags are
the upstream's.

Two first pushes of one immutable tag racing with different manifests: each writes the
tag's ``current/link`` only where there is none (:meth:`StorageDriver.create`: a hard link
on a filesystem, a conditional PUT on S3), so exactly one creates it; the other reads what
it names and is refused, unless it is the same manifest.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

from dockyard import config


@dataclass(frozen=True)
class ImmutableTags:
    rules: tuple[config.ImmutableTags, ...] = ()
    cached_prefixes: tuple[str, ...] = ()
    """the repositories of pull-through caches (``""``: every repository), which no rule covers"""

    @classmethod
    def of(cls, settings: config.Settings | None) -> ImmutableTags:
        if settings is None:
            return cls()
        if settings.proxy is not None:
            cached: Sequence[str] = ("",)
        else:
            cached = [mirror.prefix.removesuffix("/") for mirror in settings.dockyard.mirrors]
        return cls(tuple(settings.dockyard.immutable_tags), tuple(cached))

    def _cached(self, name: str) -> bool:
        return any(prefix == "" or name.startswith(f"{prefix}/") for prefix in self.cached_prefixes)

    def covers(self, name: str, tag: str) -> bool:
        """Whether ``name:tag`` is immutable."""
        return not self._cached(name) and any(
            fnmatch.fnmatchcase(name, rule.repositories) and any(fnmatch.fnmatchcase(tag, pattern) for pattern in rule.tags)
            for rule in self.rules
        )

    def may_cover(self, name: str) -> bool:
        """Whether some tag of ``name`` can be immutable."""
        return not self._cached(name) and any(fnmatch.fnmatchcase(name, rule.repositories) and rule.tags for rule in self.rules)
