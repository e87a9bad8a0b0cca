"""The audit records a test caused, as ``caplog`` captured them."""

from __future__ import annotations

import pytest

from dockyard.logs import AUDIT_LOGGER


def audits(caplog: pytest.LogCaptureFixture) -> list[dict]:
    """Each audit record's fields; other loggers' records (a server's, a thread's still running) are not audits."""
    return [record.event["audit"] for record in caplog.records if record.name == AUDIT_LOGGER]  # type: ignore[attr-defined]
