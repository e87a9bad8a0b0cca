"""How the web page writes numbers, times and digests for people (pure functions)."""

from __future__ import annotations

import datetime
import re
import shlex


def relative_time(moment: datetime.datetime | None, now: datetime.datetime) -> str:
    """``3 minutes ago``, ``2 days ago``, ``in the future`` (clock skew), ``—`` for none."""
    if moment is None:
        return "—"
    seconds = (now - moment).total_seconds()
    if seconds < -60:
        return "in the future"
    if seconds < 60:
        return "just now"
    for limit, length, unit in (
        (3600, 60, "minute"), (86400, 3600, "hour"), (86400 * 30, 86400, "day"),
        (86400 * 365, 86400 * 30, "month"), (float("inf"), 86400 * 365, "year"),
    ):
        if seconds < limit:
            count = int(seconds // length)
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    raise AssertionError("unreachable")


def absolute_time(moment: datetime.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment is not None else ""


def as_datetime(value: datetime.datetime | float | None) -> datetime.datetime | None:
    """A time from storage (a POSIX timestamp) or from a config (already a datetime), in UTC."""
    if value is None or isinstance(value, datetime.datetime):
        return value
    return datetime.datetime.fromtimestamp(value, datetime.UTC)


def parse_time(text: object) -> datetime.datetime | None:
    """An RFC 3339 time from an image config (``created``), or ``None`` if it is not one."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def short_digest(digest: str, length: int = 12) -> str:
    """``sha256:0123456789abcdef…`` → ``sha256:0123456789ab``."""
    algorithm, _, encoded = digest.partition(":")
    return f"{algorithm}:{encoded[:length]}" if encoded else digest[:length]


def platform_name(platform: dict[str, object] | None) -> str:
    """``linux/arm64/v8`` from an index entry's platform; ``unknown`` without one."""
    if not platform:
        return "unknown"
    parts = [str(platform.get(key)) for key in ("os", "architecture", "variant") if platform.get(key)]
    return "/".join(parts) or "unknown"


SHELLS = frozenset({"/bin/sh", "/bin/bash", "sh", "bash", "/bin/ash", "/usr/bin/bash"})


def command_line(argv: list[str]) -> tuple[str, str]:
    """An entrypoint or command as written: ``(shell prefix, text)``.

    The shell form ``["/bin/sh", "-c", "make && ./run"]`` gives ``("/bin/sh -c", "make && ./run")``,
    the script exactly as the Dockerfile had it; the exec form gives ``("", ...)`` with each
    argument quoted as a shell would need (``shlex.join``).
    """
    if len(argv) == 3 and argv[0] in SHELLS and argv[1] == "-c":
        return f"{argv[0]} -c", argv[2]
    return "", shlex.join(argv)


COSIGN_TAG = re.compile(r"^(sha256|sha512)-([0-9a-f]{64}|[0-9a-f]{128})\.(sig|att|sbom)$")


def cosign_tag(digest: str, suffix: str) -> str:
    """The tag cosign gives what it attaches to ``digest``: ``sha256-<hex>.sig`` (``.att``, ``.sbom``)."""
    return f"{digest.replace(':', '-', 1)}.{suffix}"


def cosign_subject(tag: str) -> str | None:
    """The digest a cosign ``sha256-<hex>.sig`` (``.att``, ``.sbom``) tag is attached to, or ``None``."""
    match = COSIGN_TAG.match(tag)
    return f"{match.group(1)}:{match.group(2)}" if match else None
