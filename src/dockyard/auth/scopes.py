"""Access scopes of the Docker token specification: ``repository:NAME:pull,push``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scope:
    type: str
    name: str
    actions: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> Scope:
        """The name may hold colons (``host:5000/app``): type is before the first, actions after the last."""
        kind, sep, rest = text.partition(":")
        name, sep2, actions = rest.rpartition(":")
        if not sep or not sep2 or not kind or not name:
            raise ValueError(f"malformed scope {text[:200]!r}")
        return cls(kind, name, frozenset(action for action in actions.split(",") if action))

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"

    def claim(self) -> dict[str, object]:
        return {"type": self.type, "name": self.name, "actions": sorted(self.actions)}


CATALOG = Scope("registry", "catalog", frozenset({"*"}))


def repository(name: str, *actions: str) -> Scope:
    return Scope("repository", name, frozenset(actions))
