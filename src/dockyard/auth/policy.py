"""Who may do what to which repository.

A policy file (YAML)::

    admins: [alice]                    # every action everywhere, and the whole catalog
    groups:
      team-a: [bob, carol]
    rules:
      - who: [anonymous]               # anonymous, "*" (any signed-in user), a user, or group:NAME
        repositories: ["public/**"]
        actions: [pull]
      - who: [group:team-a]
        repositories: ["team-a/*"]     # * within one path component, ** across them
        actions: [pull, push, delete]

Rules add up. With no policy, every signed-in user may do everything (registry:2's
behaviour) and anonymous users nothing. With an LDAP directory, a user's groups there
are ``group:NAME`` too, and rules may name groups the file does not list.
"""

from __future__ import annotations

import pathlib
import re
from dataclasses import dataclass, field

import yaml

ACTIONS = frozenset({"pull", "push", "delete"})
ANONYMOUS = "anonymous"
ANY_USER = "*"


class PolicyError(Exception):
    pass


def glob_pattern(glob: str) -> re.Pattern[str]:
    parts = re.split(r"(\*\*|\*)", glob)
    translated = "".join(".*" if part == "**" else "[^/]*" if part == "*" else re.escape(part) for part in parts)
    return re.compile(translated)


@dataclass(frozen=True)
class Rule:
    who: frozenset[str]
    repositories: tuple[re.Pattern[str], ...]
    actions: frozenset[str]

    def applies(self, user: str | None, groups: frozenset[str]) -> bool:
        if ANONYMOUS in self.who:
            return True  # what anonymous users may do, signed-in users may do too
        if user is None:
            return False
        return ANY_USER in self.who or user in self.who or bool(groups & self.who)

    def matches(self, repository: str) -> bool:
        return any(pattern.fullmatch(repository) for pattern in self.repositories)


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...] = ()
    admins: frozenset[str] = frozenset()
    groups: dict[str, frozenset[str]] = field(default_factory=dict)
    defined: bool = True
    """False for the built-in default: signed-in users may do everything."""

    def _groups_of(self, user: str, outside: frozenset[str]) -> frozenset[str]:
        """``user``'s groups (as rules name them): the file's, and ``outside``, those their credential source gives."""
        return frozenset(f"group:{name}" for name, members in self.groups.items() if user in members) | {f"group:{name}" for name in outside}

    def is_admin(self, user: str | None) -> bool:
        return user is not None and (not self.defined or user in self.admins)

    def allowed(self, user: str | None, repository: str, outside_groups: frozenset[str] = frozenset()) -> frozenset[str]:
        """The actions ``user`` (``None``: anonymous) may take on ``repository``."""
        if self.is_admin(user):
            return ACTIONS
        groups = self._groups_of(user, outside_groups) if user else frozenset()
        granted: set[str] = set()
        for rule in self.rules:
            if rule.applies(user, groups) and rule.matches(repository):
                granted |= rule.actions
        return frozenset(granted)

    def may_list_catalog(self, user: str | None, outside_groups: frozenset[str] = frozenset()) -> bool:
        """Whether the catalog is worth asking for: it is filtered to what may be pulled."""
        groups = self._groups_of(user, outside_groups) if user else frozenset()
        return self.is_admin(user) or any("pull" in rule.actions and rule.applies(user, groups) for rule in self.rules)


OPEN_TO_USERS = Policy(defined=False)


def _strings(value: object, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise PolicyError(f"{where} must be a string or a list of strings")
    return value


def from_document(document: object, source: str = "policy", outside_groups: bool = False) -> Policy:
    """``outside_groups``: rules may name groups ``groups`` does not list (a directory's)."""
    if not isinstance(document, dict):
        raise PolicyError(f"{source}: expected a mapping with admins, groups and rules")
    unknown = set(document) - {"admins", "groups", "rules"}
    if unknown:
        raise PolicyError(f"{source}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    groups_document = document.get("groups") or {}
    if not isinstance(groups_document, dict):
        raise PolicyError(f"{source}: groups must map group names to lists of users")
    groups = {str(name): frozenset(_strings(members, f"{source}: groups.{name}")) for name, members in groups_document.items()}
    rules = []
    if not isinstance(document.get("rules") or [], list):
        raise PolicyError(f"{source}: rules must be a list of rules")
    for index, rule in enumerate(document.get("rules") or []):
        where = f"{source}: rules[{index}]"
        if not isinstance(rule, dict):
            raise PolicyError(f"{where} must be a mapping of who, repositories and actions")
        if set(rule) - {"who", "repositories", "actions"}:
            raise PolicyError(f"{where}: unknown key(s) {', '.join(sorted(map(str, set(rule) - {'who', 'repositories', 'actions'})))}")
        actions = frozenset(_strings(rule.get("actions", []), f"{where}.actions"))
        if not actions <= ACTIONS:
            raise PolicyError(f"{where}.actions: unknown {', '.join(sorted(actions - ACTIONS))} (pull, push, delete)")
        who = frozenset(_strings(rule.get("who", []), f"{where}.who"))
        for name in who:
            if name.startswith("group:") and name[6:] not in groups and not outside_groups:
                raise PolicyError(f"{where}.who: no group {name[6:]!r} in groups")
        repositories = tuple(glob_pattern(glob) for glob in _strings(rule.get("repositories", []), f"{where}.repositories"))
        rules.append(Rule(who, repositories, actions))
    admins = frozenset(_strings(document.get("admins") or [], f"{source}: admins"))
    return Policy(tuple(rules), admins, groups)


def load(path: pathlib.Path, outside_groups: bool = False) -> Policy:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise PolicyError(f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise PolicyError(f"{path} is not valid YAML: {error}") from None
    return from_document(document, str(path), outside_groups)
