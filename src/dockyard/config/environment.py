"""``REGISTRY_*`` variables: each overrides one key of the raw tree, in sorted order."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

import yaml

from dockyard.config.schema import Settings
from dockyard.config.values import ConfigError, kinds, without_none

ENV_PREFIX = "REGISTRY_"

# ---- the environment ----


def _resolve(hint: object, segments: list[str]) -> list[str | int] | None:
    """The path of keys that the rest of a variable's name addresses, or None."""
    if not segments:
        return []
    hint = without_none(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _resolve_field(hint, segments)
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin is list and segments[0].isdigit():
        rest = _resolve(arguments[0], segments[1:])
        return None if rest is None else [int(segments[0]), *rest]
    if origin is dict and segments[0]:
        rest = _resolve(arguments[1], segments[1:])
        return None if rest is None else [segments[0].lower(), *rest]
    if hint is object and all(segments):
        return [segment.lower() for segment in segments]
    return None


def _resolve_field(cls: type, segments: list[str]) -> list[str | int] | None:
    hints = typing.get_type_hints(cls)
    names = {spec.name for spec in dataclasses.fields(cls)}
    for taken in range(len(segments), 0, -1):  # dockyard's own keys hold underscores
        name = "_".join(segments[:taken]).lower()
        rest = _resolve(hints[name], segments[taken:]) if name in names else None
        if rest is not None:
            return [name, *rest]
    return None


def existing_key(node: dict[str, object], name: str) -> str:
    return next((key for key in node if str(key).lower() == name), name)


def _child(node: dict[str, object] | list[object], step: str | int, empty: object, variable: str) -> object:
    """The child at ``step``, made ``empty`` (a new dict or list) where missing or of another shape."""
    if isinstance(node, list):
        assert isinstance(step, int)
        _store(node, step, empty, variable, keep=True)
        return node[step]
    assert isinstance(step, str)
    key = existing_key(node, step)
    if not isinstance(node.get(key), type(empty)):
        node[key] = empty
    return node[key]


def _store(node: dict[str, object] | list[object], step: str | int, value: object, variable: str, keep: bool = False) -> None:
    if isinstance(node, dict):
        assert isinstance(step, str)
        node[existing_key(node, step)] = value
        return
    assert isinstance(step, int)
    if step > len(node):
        raise ConfigError(f"{variable}: list items are set from _0 on without gaps; _{len(node)} is missing")
    if step == len(node):
        node.append(value)
    elif not (keep and isinstance(node[step], type(value))):
        node[step] = value


def _place(raw: dict[str, object], path: list[str | int], value: object, variable: str, lists_set: set[tuple[str | int, ...]]) -> None:
    node: Any = raw
    for depth, step in enumerate(path[:-1]):
        following = path[depth + 1]
        node = _child(node, step, [] if isinstance(following, int) else {}, variable)
        if isinstance(following, int) and tuple(path[: depth + 1]) not in lists_set:
            node.clear()  # the variables of a list replace the file's whole list
            lists_set.add(tuple(path[: depth + 1]))
    _store(node, path[-1], value, variable)


def _payload(variable: str, text: str) -> object:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{variable}: not a YAML value: {getattr(error, 'problem', error)}") from None


def _replaced_section_warning(raw: dict[str, object], path: list[str | int], value: object, variable: str) -> str | None:
    if len(path) != 1 or not isinstance(value, str):
        return None
    cls = typing.get_type_hints(Settings).get(str(path[0]))
    before = raw.get(str(path[0]))
    if cls is None or not kinds(cls) or not isinstance(before, dict):
        return None
    dropped = [f"{path[0]}.{key}" for key in before if key not in kinds(cls)]
    if not dropped:
        return None
    return f"{variable}={value} replaces the whole {path[0]} section, as in registry:2: {', '.join(dropped)} no longer apply"


def _variable_order(name: str) -> list[tuple[int, int | str]]:
    return [(0, int(part)) if part.isdigit() else (1, part) for part in name.split("_")]


def apply_environment(raw: dict[str, object], environ: Mapping[str, str], warnings: list[str]) -> None:
    """Override keys of ``raw`` with ``REGISTRY_*`` variables, in sorted order."""
    lists_set: set[tuple[str | int, ...]] = set()
    variables = sorted((name for name in environ if name.startswith(ENV_PREFIX)), key=_variable_order)
    for variable in variables:
        path = _resolve(Settings, variable.removeprefix(ENV_PREFIX).split("_"))
        if path is None:
            warnings.append(f"{variable}: matches no configuration key, ignored")
            continue
        value = _payload(variable, environ[variable])
        replaced = _replaced_section_warning(raw, path, value, variable)
        if replaced:
            warnings.append(replaced)
        _place(raw, path, value, variable, lists_set)

