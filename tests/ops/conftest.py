from __future__ import annotations

import re
import time

from tests.support.server import DockyardProcess

_DEBUG = re.compile(r"debug server on http://127\.0\.0\.1:(\d+)")


def debug_url(server: DockyardProcess) -> str:
    """The debug server's URL, as the started process announced it (it binds port 0)."""
    for _ in range(100):
        found = _DEBUG.findall(server.log.read_text(errors="replace"))
        if found:
            return f"http://127.0.0.1:{found[-1]}"
        time.sleep(0.05)
    raise AssertionError(f"no debug server announced:\n{server.log.read_text(errors='replace')}")
