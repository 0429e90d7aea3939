"""How long to wait before trying again: one exponential backoff and one reading of the waits
a server asks for, shared by the worker, the GitHub client and the outbox.

Jitter spreads retries out, so a burst of deliveries that failed together (GitHub down for a
minute) does not come back as one burst.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from typing import Any


def backoff_delay(attempt: int, base: float, *, cap: float | None = None) -> float:
    """Seconds before try `attempt + 1`: `base` doubling per attempt, up to `cap`, +0-25 %."""
    delay = base * 2 ** max(0, attempt - 1)
    if cap is not None:
        delay = min(cap, delay)
    return delay * (1 + random.random() / 4)  # noqa: S311 (jitter, not a secret)


def retry_after(headers: Mapping[str, Any] | None) -> float | None:
    """A `Retry-After` header in seconds (case-insensitive key; a list value's first item)."""
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value
            try:
                return max(0.0, float(raw))
            except (TypeError, ValueError):
                return None
    return None


def rate_limit_wait(
    status: int, headers: Mapping[str, str], *, now: float | None = None
) -> float | None:
    """Seconds GitHub asks us to wait, or None when the answer is not a rate limit.

    GitHub says it either with `Retry-After` (secondary limits) or with `x-ratelimit-remaining:
    0` and the reset time (the primary limit).
    """
    if status not in (403, 429):
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    if "retry-after" in lowered:
        return retry_after(lowered)
    if lowered.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in lowered:
        try:
            reset = float(lowered["x-ratelimit-reset"])
        except ValueError:
            return None
        return max(0.0, reset - (time.time() if now is None else now)) + 1.0
    return None
