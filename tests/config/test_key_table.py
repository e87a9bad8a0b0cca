"""docs/registry2-config.md, the table of registry:2's keys, against what the configuration does:
each row's key, set to its example value, is honoured (loads without a word), refused (a one-line
error naming it) or warned about (one warning naming it); every key of the schema has a row."""

from __future__ import annotations

import collections
import copy
import dataclasses
import pathlib
import re
import typing

import pytest
import yaml

from dockyard.config import ConfigError, Settings, Storage, load
from dockyard.config.values import without_none
from tests.config.test_registry2_keys import Start, config_file, refusal

TABLE = pathlib.Path(__file__).parents[2] / "docs" / "registry2-config.md"
_ROW = re.compile(r"^\| `(?P<key>[^`]+)` \| (?P<versions>[^|]+) \| (?P<outcome>honoured|refused|warned) \| `(?P<example>[^`]+)` \|", re.M)
# What a key needs beside it to be read alone (another key of the same section, a driver's required keys).
CONTEXT: dict[str, dict[str, object]] = {
    "storage.s3": {"storage": {"s3": {"region": "us-east-1", "bucket": "registry"}}},
    "auth.htpasswd": {"auth": {"htpasswd": {"realm": "Registry", "path": "/etc/docker/registry/htpasswd"}}},
    "auth.token": {"auth": {"token": {"realm": "https://auth.example.com/token", "service": "s", "issuer": "i", "jwks": "/certs/jwks.json"}}},
    "http.tls.certificate": {"http": {"tls": {"key": "/certs/domain.key"}}},
    "http.tls.key": {"http": {"tls": {"certificate": "/certs/domain.crt"}}},
    "http.tls.clientauth": {"http": {"tls": {"clientcas": ["/certs/ca.pem"]}}},
    "http.tls.letsencrypt": {
        "http": {"tls": {"letsencrypt": {"cachefile": "/var/lib/acme.pem", "hosts": ["registry.example.com"]}}},
        "dockyard": {"acme_http_addr": ":80"},
    },
    "http.debug.prometheus": {"http": {"debug": {"addr": "127.0.0.1:5001"}}},
    "validation.manifests.indexes.platformlist": {"validation": {"manifests": {"indexes": {"platforms": "list"}}}},
    "proxy": {"proxy": {"remoteurl": "https://registry-1.docker.io"}},
}
_STORAGE_SECTIONS = {spec.name for spec in dataclasses.fields(Storage)} - set(Storage.KINDS)


@dataclasses.dataclass(frozen=True)
class Row:
    key: str
    outcome: str
    example: object

    def names(self, message: str) -> bool:
        """Whether ``message`` is about this key, or the section it belongs to."""
        named = message.partition(":")[0]
        return self.key == named or self.key.startswith(named + ".")


def rows() -> list[Row]:
    return [Row(match["key"], match["outcome"], yaml.safe_load(match["example"])) for match in _ROW.finditer(TABLE.read_text())]


def _merge(into: dict[str, object], extra: dict[str, object]) -> None:
    for name, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(name), dict):
            _merge(typing.cast(dict[str, object], into[name]), value)
        else:
            into[name] = value


def config_with(row: Row) -> dict[str, object]:
    """A minimal file: version, a driver, what the key needs beside it, and the key set to its example."""
    parts = row.key.split(".")
    storage: dict[str, object] = {} if parts[0] == "storage" and parts[1] not in _STORAGE_SECTIONS else {"inmemory": None}
    raw: dict[str, object] = {"version": "0.1", "storage": storage}
    for prefix, needed in CONTEXT.items():
        if row.key == prefix or row.key.startswith(prefix + "."):
            _merge(raw, copy.deepcopy(needed))
    setting = row.example
    for name in reversed(parts):
        setting = {name: setting}
    _merge(raw, typing.cast(dict[str, object], setting))
    return raw


def test_table_rows_are_read_and_counted() -> None:
    table = rows()
    assert len(table) == len({row.key for row in table}) > 100  # each key once
    counts = collections.Counter(row.outcome for row in table)
    summary = f"Summary: {len(table)} keys: {counts['honoured']} honoured, {counts['refused']} refused, {counts['warned']} warned."
    assert summary in TABLE.read_text()


@pytest.mark.parametrize("row", rows(), ids=lambda row: row.key)
def test_each_key_does_what_the_table_says(tmp_path: pathlib.Path, row: Row) -> None:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config_with(row)))
    if row.outcome == "refused":
        with pytest.raises(ConfigError) as refused:
            load(path, {})
        message = str(refused.value)
        assert row.names(message) and "\n" not in message, message
        return
    warnings = load(path, {}).warnings
    if row.outcome == "warned":
        assert len(warnings) == 1 and row.names(warnings[0]), warnings
    else:
        assert warnings == ()


def leaf_keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    for spec in dataclasses.fields(cls):
        inner = without_none(typing.get_type_hints(cls)[spec.name])
        dotted = f"{prefix}{spec.name}"
        nested = dataclasses.is_dataclass(inner) and dataclasses.fields(inner)
        keys.extend(leaf_keys(typing.cast(type, inner), f"{dotted}.") if nested else [dotted])
    return keys


def test_every_registry2_key_of_the_schema_has_a_row() -> None:
    covered = [row.key for row in rows()]
    registry2_keys = [key for key in leaf_keys(Settings) if not key.startswith("dockyard.")]
    missing = [key for key in registry2_keys if not any(key == row or key.startswith(row + ".") for row in covered)]
    assert missing == []


# ---- through `dockyard serve --config`, one key of each way a key is refused or warned about ----


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("log:\n  hooks:\n    - {type: mail, levels: [panic], options: {to: [ops@example.com]}}\n",
         "Error: log.hooks: refused: mail hooks are not built: nobody would be mailed about errors; "
         "feed the log (log.formatter: json) to your alerting"),
        ("storage:\n  gcs: {bucket: b, keyfile: /key.json}\n", "Error: storage.gcs: unknown storage kind; dockyard knows filesystem, inmemory, s3"),
        ("compatibility:\n  schema1: {enabled: true}\n",
         "Error: compatibility.schema1.enabled: refused: schema1 manifests are not served, so pushes registry:2 accepts would be refused"),
        ("storage:\n  s3: {region: r, bucket: b, objectacl: public-read}\n",
         "Error: storage.s3.objectacl: refused: only private is supported; objects would not get the public-read ACL"),
    ],
)
def test_refused_keys_stop_serve_in_one_line(tmp_path: pathlib.Path, text: str, line: str) -> None:
    assert refusal(tmp_path, text) == line


def test_disabled_hooks_and_middleware_are_accepted(start_server: Start, tmp_path: pathlib.Path) -> None:
    server = start_server("--config", str(config_file(tmp_path, """\
        log:
          hooks:
            - {type: mail, disabled: true, levels: [panic]}
        middleware:
          storage:
            - {name: cloudfront, disabled: true, options: {baseurl: https://d.example.com/}}
        """)))
    log = server.log.read_text()  # it started: nothing refused, and nothing warned about either
    assert "log.hooks" not in log and "middleware" not in log


def test_warned_keys_are_named_when_serve_starts(start_server: Start, tmp_path: pathlib.Path) -> None:
    server = start_server("--config", str(config_file(tmp_path, "log:\n  reportcaller: true\nreporting:\n  bugsnag: {apikey: key}\n")))
    log = server.log.read_text()
    assert "log.reportcaller: the caller's file and line in each record are not logged, ignored" in log
    assert "reporting.bugsnag: nothing is reported to Bugsnag, ignored" in log
