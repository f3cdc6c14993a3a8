"""Training data for the forest, from `logs`: the same minute Counts (loganalyzer.db.minute_counts)
and window features the consumer computes (loganalyzer.detection.features), so training and
serving cannot drift."""

from __future__ import annotations

from loganalyzer.detection.features import Counts, window_features
from loganalyzer.events import service_key


def feature_rows_by_service(
    per_service: dict[tuple[str, str], dict[int, Counts]], window: int = 5
) -> dict[str, list[tuple[float, ...]]]:
    """Every complete window of every service (missing minutes are empty minutes), by
    "tenant/service" key (the model's per-service profiles are fitted on them)."""
    out: dict[str, list[tuple[float, ...]]] = {}
    for (tenant, service), minutes in per_service.items():
        if not minutes:
            continue
        first, last = min(minutes), max(minutes)
        out[service_key(tenant, service)] = [
            window_features([minutes.get(k) or Counts() for k in range(m - window + 1, m + 1)])
            for m in range(first + window - 1, last + 1)
        ]
    return out


def feature_rows(
    per_service: dict[tuple[str, str], dict[int, Counts]], window: int = 5
) -> list[tuple[float, ...]]:
    """Every complete window of every service, all services together."""
    return [row for rows in feature_rows_by_service(per_service, window).values() for row in rows]
