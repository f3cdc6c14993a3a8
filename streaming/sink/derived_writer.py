"""Upserting what detection derived from a batch: pattern counts and anomaly episodes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

from streaming.derived import AnomalyRow, PatternDelta
from streaming.sink.isolation import isolating_executemany

#: sample messages are cut to this many characters (the table keeps one per pattern)
SAMPLE_CHARS = 2000


def _dumps(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj)
    except TypeError as exc:  # a lone surrogate, a type JSON has no word for: this row's fault
        raise psycopg.DataError(f"details are not JSON: {exc}") from exc


def upsert_patterns(
    conn: psycopg.Connection, deltas: Sequence[PatternDelta]
) -> list[tuple[PatternDelta, BaseException]]:
    """Add the deltas to log_patterns; returns those PostgreSQL refused (left out)."""
    refused = isolating_executemany(
        conn,
        "INSERT INTO log_patterns (tenant, service, pattern_id, template, first_seen, last_seen, "
        "count, error_count, sample_message) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (tenant, service, pattern_id) DO UPDATE SET "
        "template = EXCLUDED.template, "
        "first_seen = least(log_patterns.first_seen, EXCLUDED.first_seen), "
        "last_seen = greatest(log_patterns.last_seen, EXCLUDED.last_seen), "
        "count = log_patterns.count + EXCLUDED.count, "
        "error_count = log_patterns.error_count + EXCLUDED.error_count",
        [
            (
                d.tenant,
                d.service,
                d.pattern_id,
                d.template,
                d.first_seen,
                d.last_seen,
                d.count,
                d.error_count,
                d.sample_message[:SAMPLE_CHARS],
            )
            for d in deltas
        ],
    )
    return [(deltas[i], exc) for i, exc in refused]


def _finite(x: float | None) -> float | None:
    return x if x is None or math.isfinite(x) else None


def _details(a: AnomalyRow) -> dict[str, Any]:
    """The details, with any non-finite score or value kept there as text: the columns get NULL
    (PostgreSQL would store NaN and Infinity, but no JSON reader of the API could return them)."""
    odd = {
        name: str(v)
        for name, v in (
            ("score", a.score),
            ("expected_value", a.expected_value),
            ("actual_value", a.actual_value),
        )
        if v is not None and not math.isfinite(v)
    }
    details = {**a.details, "non_finite": odd} if odd else a.details
    if a.suppressed_by is not None:
        until = None if a.suppressed_until is None else a.suppressed_until.isoformat()
        details = {**details, "suppressed_by": {"feedback_id": a.suppressed_by, "until": until}}
    return details


#: when a pattern suppression's mark replaces the row's operator state on an update: the row
#: has none, or a suppression that ends before this one. An operator's own word on the episode
#: (acknowledged, resolved, a longer suppression) is never overwritten by the consumer.
_TAKE_SUPPRESSION = (
    "(EXCLUDED.operator_state IS NOT NULL AND (anomalies.operator_state IS NULL OR "
    "(anomalies.operator_state = 'suppressed' AND anomalies.operator_state_until IS NOT NULL AND "
    "(EXCLUDED.operator_state_until IS NULL OR "
    "EXCLUDED.operator_state_until > anomalies.operator_state_until))))"
)


def upsert_anomalies(
    conn: psycopg.Connection, rows: Sequence[AnomalyRow], now: datetime | None = None
) -> list[tuple[AnomalyRow, BaseException]]:
    """Upsert the episodes on their id; returns those PostgreSQL refused (left out).

    A row muted by a pattern suppression (`suppressed_by`) is written, not dropped, with
    operator_state 'suppressed' until the suppression's end: the API shows it as suppressed and
    the alerts process sends nothing for it (docs/alerts.md, "Suppressions")."""
    now = now or datetime.now(UTC)
    refused = isolating_executemany(
        conn,
        "INSERT INTO anomalies (id, tenant, service, anomaly_type, severity, status, window_start, "
        "window_end, resolved_at, score, expected_value, actual_value, description, "
        "pattern_template, sample_message, model_version, details, "
        "operator_state, operator_state_at, operator_state_until) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (id) DO UPDATE SET severity = EXCLUDED.severity, status = EXCLUDED.status, "
        "window_end = greatest(anomalies.window_end, EXCLUDED.window_end), "
        "resolved_at = EXCLUDED.resolved_at, score = EXCLUDED.score, "
        "expected_value = EXCLUDED.expected_value, actual_value = EXCLUDED.actual_value, "
        "description = EXCLUDED.description, details = EXCLUDED.details, updated_at = now(), "
        f"operator_state = CASE WHEN {_TAKE_SUPPRESSION} THEN EXCLUDED.operator_state "
        "ELSE anomalies.operator_state END, "
        f"operator_state_at = CASE WHEN {_TAKE_SUPPRESSION} THEN EXCLUDED.operator_state_at "
        "ELSE anomalies.operator_state_at END, "
        f"operator_state_until = CASE WHEN {_TAKE_SUPPRESSION} THEN EXCLUDED.operator_state_until "
        "ELSE anomalies.operator_state_until END",
        [
            (
                a.id,
                a.tenant,
                a.service,
                a.anomaly_type,
                a.severity,
                a.status,
                a.window_start,
                a.window_end,
                a.resolved_at,
                _finite(a.score),
                _finite(a.expected_value),
                _finite(a.actual_value),
                a.description,
                a.pattern_template,
                a.sample_message,
                a.model_version,
                Jsonb(_details(a), dumps=_dumps),
                None if a.suppressed_by is None else "suppressed",
                None if a.suppressed_by is None else now,
                a.suppressed_until,
            )
            for a in rows
        ],
    )
    return [(rows[i], exc) for i, exc in refused]
