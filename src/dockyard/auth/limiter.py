"""Failed logins, limited per client address and per user name."""

from __future__ import annotations

import math
import time
from collections import deque


class FailureLimiter:
    """After ``max_failures`` failures within ``window`` seconds, a key is refused
    (even with the right password) until its oldest failure leaves the window."""

    def __init__(self, max_failures: int = 10, window: float = 60.0, max_keys: int = 100_000) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float] | None:
        failures = self._failures.get(key)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return None
        return failures

    def retry_after(self, *keys: str) -> int | None:
        """Seconds until these keys may try again, or ``None`` if they may now."""
        now = time.monotonic()
        waits = [
            failures[0] + self.window - now
            for key in keys
            if (failures := self._recent(key, now)) is not None and len(failures) >= self.max_failures
        ]
        return max(1, math.ceil(max(waits))) if waits else None

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        if len(self._failures) >= self.max_keys:
            # Under a spray of distinct keys, forget the stalest rather than grow forever.
            for key in list(self._failures)[: self.max_keys // 10]:
                del self._failures[key]
        for key in keys:
            self._failures.setdefault(key, deque(maxlen=self.max_failures * 2)).append(now)
