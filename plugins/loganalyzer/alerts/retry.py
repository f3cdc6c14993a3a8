"""When to try a failed delivery again: exponential backoff with jitter, and Slack's Retry-After."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

#: Slack's documented permanent webhook errors (invalid_payload, invalid_token, no_service,
#: channel_is_archived, ...): retrying cannot help, the configuration must change.
PERMANENT_STATUSES = frozenset({400, 401, 403, 404, 410})


def backoff_seconds(attempt: int, base: float, cap: float, rand: Callable[[], float]) -> float:
    """Delay before try `attempt + 1`, after `attempt` failed tries (attempt >= 1).

    "Equal jitter": half the exponential step is kept, half is random, so that many alert
    processes (or routes) that failed together do not retry together, yet none retries at once.
    """
    step = min(cap, base * 2.0 ** max(0, attempt - 1))
    return step / 2 + rand() * step / 2


def is_permanent(status: int | None) -> bool:
    """Other 4xx (e.g. 413, 422) are permanent too; 408 and 429 are not."""
    if status is None:
        return False
    return status in PERMANENT_STATUSES or (400 <= status < 500 and status not in (408, 429))


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    return max(0.0, seconds) if seconds == seconds else None  # NaN guard
