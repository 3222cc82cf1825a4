"""Which API failures are transient, and how long to wait before the next attempt.

Pure functions: the client decides with them, the tests check them without a server.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# 5xx the apiserver answers while etcd elects a leader, while it starts, or behind a proxy.
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter, capped; the deadline is enforced by the caller."""

    initial: float = 0.1
    factor: float = 2.0
    cap: float = 3.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            # The server said when to come back (429): honour it, but never sleep for minutes.
            return max(0.0, min(retry_after, 30.0))
        base = min(self.cap, self.initial * (self.factor**attempt))
        return base / 2 + random.uniform(0, base / 2)


def is_transient_status(status: int, *, apply_not_found: bool = False) -> bool:
    """True when the same request may succeed later. A 404 on a server-side apply cannot mean a
    missing object (apply creates it): it means the resource type is not served yet, as happens
    for custom resources right after an apiserver restart, so the caller may retry it briefly."""
    if status in TRANSIENT_STATUS:
        return True
    return apply_not_found and status == 404


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        return None  # HTTP-date form: the apiserver never sends it; fall back to backoff
