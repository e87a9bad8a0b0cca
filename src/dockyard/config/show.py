"""The effective settings as YAML, secrets masked; it reads back as the same."""

from __future__ import annotations

import dataclasses
import typing

import yaml

from dockyard.config.schema import Duration, Settings
from dockyard.config.values import format_duration, without_none

MASK = "********"
SECRET_KEYS = frozenset({"password", "bind_password", "secret", "secretkey", "apikey", "licensekey", "authorization"})

# ---- showing it ----


def _masked(value: object) -> object:
    return [MASK for _ in value] if isinstance(value, list) else MASK


def _plain(value: object, hint: object, name: str) -> object:
    """``value`` as YAML writes it: durations as Go writes them, secrets masked."""
    if name.lower() in SECRET_KEYS and value:
        return _masked(value)
    if dataclasses.is_dataclass(value):
        hints = typing.get_type_hints(type(value))
        present = (spec.name for spec in dataclasses.fields(value) if getattr(value, spec.name) is not None)
        return {key: _plain(getattr(value, key), hints[key], key) for key in present}
    hint = without_none(hint)
    arguments = typing.get_args(hint)
    if hint is Duration:
        return format_duration(typing.cast(Duration, value))
    if isinstance(value, list):
        return [_plain(element, arguments[0] if arguments else object, "") for element in value]
    if isinstance(value, dict):
        return {key: _plain(element, arguments[1] if arguments else object, str(key)) for key, element in value.items()}
    return value


def to_yaml(config: Settings) -> str:
    """The whole effective configuration, secrets masked; it reads back as the same."""
    return yaml.safe_dump(_plain(config, Settings, ""), sort_keys=False, default_flow_style=False, allow_unicode=True)

