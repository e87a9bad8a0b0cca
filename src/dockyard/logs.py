"""Logging: the setup of ``dockyard serve``, the access log and the audit log.

Formats (registry:2's ``log.formatter``): ``text`` is one human-readable line per
record; ``json`` is one JSON object per line with ``time``, ``level``, ``logger``,
``message`` and the configured fields. registry:2's ``logstash`` formatter also
writes a JSON object per line, so ``logstash`` maps to ``json`` (see ``Log.output_format`` in config/schema.py).
``log.fields`` (``fields``) are added to every record: as keys of the JSON object,
or as ``key=value`` after the text line.

The access log (logger ``dockyard.access``) has a line per request: client address,
authenticated user (``-`` if none), method, path, status, bytes sent, duration and
user agent. Bytes are what was written on the connection, headers included (as
aiohttp counts them). The query string is kept, except the values of keys that could hold
secrets (``password``, ``token``...), which are replaced by ``***``; headers
(``Authorization`` among them) are never logged.

The audit log (logger ``dockyard.audit``, always at INFO whatever ``--log-level``)
records logins, failed logins, pushes, tag changes, deletes and mounts, never a
secret: see :func:`audit`.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

FORMATS = ("text", "json")
ACCESS_LOGGER = "dockyard.access"
AUDIT_LOGGER = "dockyard.audit"

# The authenticated user of a request, set by the dispatcher (and the token service).
USER_KEY = web.RequestKey("dockyard_user", str)
# ``False`` on an app turns its access log off (``--no-access-log``).
ACCESS_LOG_KEY = web.AppKey("dockyard_access_log", bool)

# Query keys whose values are never logged.
SECRET_QUERY_KEYS = frozenset({
    "password", "passwd", "token", "access_token", "refresh_token", "id_token", "secret",
    "client_secret", "signature", "x-amz-signature", "x-amz-credential", "x-amz-security-token", "sig",
})
REDACTED = "***"

_audit = logging.getLogger(AUDIT_LOGGER)
_access = logging.getLogger(ACCESS_LOGGER)
_aiohttp_server = logging.getLogger("aiohttp.server")


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    """What the caller attached: ``extra={"event": {...}}`` of access and audit records."""
    event = getattr(record, "event", None)
    return dict(event) if isinstance(event, Mapping) else {}


class JsonFormatter(logging.Formatter):
    def __init__(self, fields: Mapping[str, object] | None = None) -> None:
        super().__init__()
        self.fields = dict(fields or {})

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in self.fields.items():
            entry.setdefault(str(key), value)
        for key, value in _extra(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self, fields: Mapping[str, object] | None = None) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.suffix = "".join(f" {key}={_text_value(value)}" for key, value in (fields or {}).items())

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if not self.suffix:
            return text
        first, newline, rest = text.partition("\n")
        return f"{first}{self.suffix}{newline}{rest}"


def _text_value(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return json.dumps(text) if (not text or any(c.isspace() or c in '"=' for c in text)) else text


def setup_logging(level: str = "info", log_format: str = "text", fields: Mapping[str, object] | None = None) -> None:
    """One handler on stderr for everything; the audit log is always at INFO."""
    if log_format not in FORMATS:
        raise ValueError(f"unknown log format {log_format!r}: expected one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(fields) if log_format == "json" else TextFormatter(fields))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    _audit.setLevel(logging.INFO)  # records go to the root's handler whatever the root's level
    _access.setLevel(logging.INFO)
    _aiohttp_server.addFilter(_parse_errors)  # adding the same filter again is a no-op


# ---- requests aiohttp could not parse ----


class _ParseErrorFilter(logging.Filter):
    """Turns aiohttp's ERROR and traceback for a request it could not parse (a malformed
    request line or header, answered 400) into one INFO line: the client's fault, not a
    fault of the server, and any scanner could otherwise fill the log with tracebacks."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        # aiohttp logs some of these at DEBUG already (non-HTTP bytes as a first request).
        level = min(record.levelno, logging.INFO)
        if not _aiohttp_server.isEnabledFor(level):
            return False
        record.levelno, record.levelname = level, logging.getLevelName(level)
        record.msg, record.args = "%s: %d %s", (record.getMessage(), error.code, _one_line(error.message))
        record.exc_info = record.exc_text = None
        return True


def _one_line(message: str) -> str:
    """aiohttp's parser message without its line breaks and the line of its ``^`` marker."""
    return " ".join(line.strip() for line in message.splitlines() if line.strip(" ^"))


_parse_errors = _ParseErrorFilter()


# ---- the access log ----


def loggable_path(request: web.BaseRequest) -> str:
    """The raw path and query, with the values of secret-looking query keys replaced."""
    raw = request.raw_path
    path, sep, query = raw.partition("?")
    if not sep:
        return path
    parts = []
    for key, value in parse_qsl(query, keep_blank_values=True):
        shown = REDACTED if key.lower() in SECRET_QUERY_KEYS else quote(value, safe=":/@")
        parts.append(f"{quote(key, safe='')}={shown}")
    return f"{path}?{'&'.join(parts)}"


class AccessLogger(AbstractAccessLogger):
    """One record per request on ``dockyard.access``; never a header but User-Agent."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        user = request.get(USER_KEY) or "-"
        event: dict[str, Any] = {
            "remote": request.remote or "-",
            "user": user,
            "method": request.method,
            "path": loggable_path(request),
            "protocol": f"HTTP/{request.version.major}.{request.version.minor}",
            "status": response.status,
            "bytes": response.body_length,
            "duration": round(time, 6),
            "user_agent": request.headers.get("User-Agent", "-"),
        }
        self.logger.info(
            '%s - %s "%s %s %s" %d %d "%s" %.6fs',
            event["remote"], user, event["method"], event["path"], event["protocol"],
            event["status"], event["bytes"], event["user_agent"].replace('"', '\\"'), time,
            extra={"event": {"access": event}},
        )


def access_log_arguments(app: web.Application) -> dict[str, Any]:
    """What ``web.AppRunner`` takes for ``app``'s access log (or none, with ``--no-access-log``)."""
    if app.get(ACCESS_LOG_KEY) is False:
        return {"access_log": None}
    return {"access_log_class": AccessLogger, "access_log": _access}


# ---- the audit log ----


def audit(event: str, request: web.BaseRequest | None = None, **fields: object) -> None:
    """An audit record: ``event`` (``login``, ``login_failed``, ``push``, ``tag``,
    ``delete_manifest``, ``delete_tag``, ``delete_blob``, ``delete_repository``, ``mount``, and the pull-through
    cache's ``proxy_fetch`` and ``mirror_sync``), the client's address when there is one, and ``fields``
    (repository, reference, digest, user...). Never pass a secret.
    """
    entry: dict[str, object] = {"event": event}
    if request is not None:
        entry["remote"] = request.remote or "-"
    for key, value in fields.items():
        entry[key] = "-" if value is None else str(value)
    text = " ".join(f"{key}={_text_value(value)}" for key, value in entry.items() if key != "event")
    _audit.info("%s %s", event, text, extra={"event": {"audit": entry}})
