"""The delivery-state adapter: reads `anomalies`, keeps `alert_deliveries` (sql/015).

Every write is committed before the next Slack call, so that the table is the truth after a
crash: a row becomes 'sent' only after the webhook answered 2xx (see docs/alerts.md for the
at-least-once window this leaves).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import psycopg

from loganalyzer.alerts.discovery import Candidate, NewDelivery
from loganalyzer.alerts.model import Episode, PendingEvent

#: one `loganalyzer alerts` per database: a second one would send every message twice
ALERTS_LOCK_KEY = 7_345_210_015

_EPISODE_COLUMNS = (
    "a.id, a.tenant, a.service, a.anomaly_type, a.severity, a.status, a.window_start, a.window_end, "
    "a.resolved_at, a.expected_value, a.actual_value, a.description, a.pattern_template"
)


def _episode(row: Sequence[object]) -> Episode:
    return Episode(*row[:13])  # type: ignore[arg-type]


def _keys(keys: Iterable[tuple[str, str]]) -> tuple[list[str], list[str]]:
    ids, events = [], []
    for anomaly_id, event in keys:
        ids.append(anomaly_id)
        events.append(event)
    return ids, events


#: the episode is muted now: an operator's suppression (by anomaly, or the consumer's mark of a
#: pattern suppression) that has not ended; the same rule as anomaly_effective_status (sql/013)
_SUPPRESSED = (
    "(a.operator_state IS NOT DISTINCT FROM 'suppressed' "
    "AND (a.operator_state_until IS NULL OR a.operator_state_until > now()))"
)

_IN_KEYS = "(anomaly_id, event) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"


class AlertStore:
    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def try_lock(self) -> bool:
        row = self.conn.execute("SELECT pg_try_advisory_lock(%s)", (ALERTS_LOCK_KEY,)).fetchone()
        self.conn.commit()
        return bool(row and row[0])

    def db_now(self) -> datetime:
        row = self.conn.execute("SELECT now()").fetchone()
        assert row is not None
        return row[0]  # type: ignore[no-any-return]

    def candidates(self, since: datetime) -> list[Candidate]:
        """Episodes changed since `since` that lack an 'opened' row, or are resolved without a
        'resolved' row (index anomalies_updated_at_idx keeps this cheap)."""
        rows = self.conn.execute(
            f"SELECT {_EPISODE_COLUMNS}, o.route, o.state, r.anomaly_id IS NOT NULL "
            "FROM anomalies a "
            "LEFT JOIN alert_deliveries o ON o.anomaly_id = a.id AND o.event = 'opened' "
            "LEFT JOIN alert_deliveries r ON r.anomaly_id = a.id AND r.event = 'resolved' "
            "WHERE a.updated_at >= %s AND NOT " + _SUPPRESSED + " "
            "AND (o.anomaly_id IS NULL OR (a.status = 'resolved' AND r.anomaly_id IS NULL)) "
            "ORDER BY a.updated_at, a.id",
            (since,),
        ).fetchall()
        return [Candidate(_episode(r), None if r[14] is None else (r[13], r[14]), bool(r[15])) for r in rows]

    def escalation_candidates(self, sent_before: datetime, sent_after: datetime) -> list[Episode]:
        """Open episodes whose 'opened' message went out in [sent_after, sent_before), with no
        operator action on them (acknowledged, resolved or an active suppression) and no
        'escalated' row yet (index alert_deliveries_sent_idx keeps this cheap)."""
        rows = self.conn.execute(
            f"SELECT {_EPISODE_COLUMNS} FROM alert_deliveries o "
            "JOIN anomalies a ON a.id = o.anomaly_id "
            "LEFT JOIN alert_deliveries e ON e.anomaly_id = a.id AND e.event = 'escalated' "
            "WHERE o.event = 'opened' AND o.state = 'sent' AND o.sent_at < %s AND o.sent_at >= %s "
            "AND e.anomaly_id IS NULL AND a.status = 'open' "
            "AND (a.operator_state IS NULL OR (a.operator_state = 'suppressed' AND NOT "
            + _SUPPRESSED
            + ")) ORDER BY o.sent_at, a.id",
            (sent_before, sent_after),
        ).fetchall()
        return [_episode(r) for r in rows]

    def skip_suppressed(self) -> int:
        """Pending events of episodes an operator suppressed meanwhile are not sent: 'skipped'."""
        cur = self.conn.execute(
            "UPDATE alert_deliveries d SET state = 'skipped', "
            "last_error = 'muted: the episode is suppressed by an operator' "
            "FROM anomalies a WHERE a.id = d.anomaly_id AND d.state = 'pending' AND " + _SUPPRESSED
        )
        return cur.rowcount

    def insert(self, rows: Sequence[NewDelivery], now: datetime) -> int:
        if not rows:
            return 0
        with self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO alert_deliveries (anomaly_id, event, route, state, created_at, next_attempt_at) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (anomaly_id, event) DO NOTHING",
                [(r.anomaly_id, r.event, r.route, r.state, now, now) for r in rows],
            )
        return len(rows)

    def expire(self, older_than: datetime, now: datetime) -> int:
        """Pending rows created before `older_than` are given up (failed), not retried forever."""
        cur = self.conn.execute(
            "UPDATE alert_deliveries SET state = 'failed', "
            "last_error = coalesce(last_error || '; ', '') || 'gave up: undelivered since ' || created_at "
            "WHERE state = 'pending' AND created_at < %s",
            (older_than,),
        )
        return cur.rowcount

    def due(self, now: datetime, limit: int = 50_000) -> list[PendingEvent]:
        rows = self.conn.execute(
            f"SELECT {_EPISODE_COLUMNS}, d.event, d.route, d.created_at, d.attempts "
            "FROM alert_deliveries d JOIN anomalies a ON a.id = d.anomaly_id "
            "WHERE d.state = 'pending' AND d.next_attempt_at <= %s "
            "ORDER BY d.created_at, d.anomaly_id LIMIT %s",
            (now, limit),
        ).fetchall()
        return [PendingEvent(_episode(r), r[13], r[14], r[15], r[16]) for r in rows]

    def sent_last_minute(self, now: datetime) -> dict[str, int]:
        rows = self.conn.execute(
            "SELECT route, count(DISTINCT message_id) FROM alert_deliveries "
            "WHERE state = 'sent' AND sent_at > %s GROUP BY route",
            (now - timedelta(minutes=1),),
        ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def mark_rate_limited(self, keys: Iterable[tuple[str, str]]) -> None:
        ids, events = _keys(keys)
        if ids:
            self.conn.execute(
                f"UPDATE alert_deliveries SET rate_limited = true WHERE NOT rate_limited AND {_IN_KEYS}",
                (ids, events),
            )

    def mark_sent(self, keys: Iterable[tuple[str, str]], now: datetime, requests: int) -> uuid.UUID:
        ids, events = _keys(keys)
        message_id = uuid.uuid4()
        self.conn.execute(
            "UPDATE alert_deliveries SET state = 'sent', sent_at = %s, message_id = %s, group_size = %s, "
            f"attempts = attempts + %s, last_error = NULL WHERE state = 'pending' AND {_IN_KEYS}",
            (now, message_id, len(ids), requests, ids, events),
        )
        return message_id

    def reschedule(
        self, keys: Iterable[tuple[str, str]], requests: int, error: str, next_attempt_at: datetime
    ) -> None:
        ids, events = _keys(keys)
        self.conn.execute(
            "UPDATE alert_deliveries SET attempts = attempts + %s, last_error = %s, next_attempt_at = %s "
            f"WHERE state = 'pending' AND {_IN_KEYS}",
            (requests, error, next_attempt_at, ids, events),
        )

    def hold_route(self, route: str, until: datetime) -> None:
        """Slack's Retry-After is per webhook: every pending event of the route waits."""
        self.conn.execute(
            "UPDATE alert_deliveries SET next_attempt_at = greatest(next_attempt_at, %s) "
            "WHERE state = 'pending' AND route = %s",
            (until, route),
        )

    def fail(self, keys: Iterable[tuple[str, str]], requests: int, error: str) -> None:
        ids, events = _keys(keys)
        self.conn.execute(
            "UPDATE alert_deliveries SET state = 'failed', attempts = attempts + %s, last_error = %s "
            f"WHERE state = 'pending' AND {_IN_KEYS}",
            (requests, error, ids, events),
        )
