"""One poll of the alerts process: find new episode events, send what is due, record the outcome.

It reads `anomalies` by updated_at and never writes to it, so ingestion never waits for Slack.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from loganalyzer.alerts.config import AlertsConfig
from loganalyzer.alerts.delivery import Sender
from loganalyzer.alerts.discovery import escalations, new_deliveries
from loganalyzer.alerts.grouping import plan
from loganalyzer.alerts.payload import build_message
from loganalyzer.alerts.retry import backoff_seconds
from loganalyzer.alerts.store import AlertStore

log = logging.getLogger(__name__)

#: each poll re-reads episodes changed this long before the previous poll's start: a consumer
#: transaction that began earlier (its updated_at is its start time) but committed later is
#: still seen; rows already handled are filtered by alert_deliveries' primary key
DISCOVERY_OVERLAP = timedelta(minutes=10)


@dataclass
class CycleReport:
    discovered: int = 0
    messages_sent: int = 0
    events_sent: int = 0
    retried: int = 0
    failed: int = 0
    rate_limited: int = 0
    waiting: int = 0
    #: pending events dropped because an operator suppressed their episode meanwhile
    muted: int = 0

    def __str__(self) -> str:
        return (
            f"discovered {self.discovered}, sent {self.messages_sent} message(s) for {self.events_sent} "
            f"event(s), {self.retried} to retry, {self.failed} failed, {self.rate_limited} rate-limited, "
            f"{self.waiting} grouping, {self.muted} muted"
        )


@dataclass
class AlertService:
    store: AlertStore
    config: AlertsConfig
    send: Sender
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    rand: Callable[[], float] = random.random
    _since: datetime | None = None
    _blocked_until: dict[str, datetime] = field(default_factory=dict)

    def discover(self, now: datetime) -> int:
        conn = self.store.conn
        db_now = self.store.db_now()
        since = self._since or db_now - timedelta(hours=self.config.lookback_hours)
        rows = new_deliveries(self.store.candidates(since), self.config)
        if self.config.escalate_after_minutes > 0:
            # on the clock that stamped sent_at: an opened message sent long enough ago
            due_before = now - timedelta(minutes=self.config.escalate_after_minutes)
            horizon = due_before - timedelta(hours=self.config.lookback_hours)
            rows += escalations(self.store.escalation_candidates(due_before, horizon), self.config)
        n = self.store.insert(rows, now)
        conn.commit()
        self._since = db_now - DISCOVERY_OVERLAP
        return n

    def run_once(self) -> CycleReport:
        report = CycleReport()
        conn = self.store.conn
        now = self.clock()
        report.discovered = self.discover(now)
        report.failed += self.store.expire(now - timedelta(hours=self.config.max_age_hours), now)
        report.muted = self.store.skip_suppressed()
        conn.commit()

        due = [e for e in self.store.due(now) if self._blocked_until.get(e.route, now) <= now]
        p = plan(
            due,
            now,
            group_wait=timedelta(seconds=self.config.group_wait_seconds),
            max_per_minute=self.config.max_messages_per_minute,
            sent_last_minute=self.store.sent_last_minute(now),
        )
        self.store.mark_rate_limited(e.key for e in p.rate_limited)
        conn.commit()
        report.rate_limited, report.waiting = len(p.rate_limited), len(p.waiting)

        for batch in p.batches:
            keys = [e.key for e in batch.events]
            route = self.config.route_named(batch.route)
            if route is None:
                self.store.fail(keys, 0, f"route {batch.route!r} is no longer in the alerts configuration")
                conn.commit()
                report.failed += len(keys)
                continue
            payload = build_message(batch, self.config.api_base_url, self.config.list_limit)
            result = self.send(route.webhook_url, payload)
            sent_at = self.clock()
            if result.ok:
                self.store.mark_sent(keys, sent_at, result.requests)
                report.messages_sent += 1
                report.events_sent += len(keys)
            elif result.permanent:
                self.store.fail(keys, result.requests, result.error or "permanent error")
                report.failed += len(keys)
                log.error("route %s: %s; %d event(s) marked failed", batch.route, result.error, len(keys))
            else:
                attempts = max(e.attempts for e in batch.events) + result.requests
                delay = backoff_seconds(
                    attempts, self.config.retry_base_seconds, self.config.retry_max_seconds, self.rand
                )
                if result.retry_after is not None:
                    delay = max(delay, result.retry_after)
                    until = sent_at + timedelta(seconds=result.retry_after)
                    self._blocked_until[batch.route] = until
                    self.store.hold_route(batch.route, until)
                next_at = sent_at + timedelta(seconds=delay)
                self.store.reschedule(keys, result.requests, result.error or "failed", next_at)
                report.retried += len(keys)
                log.warning(
                    "route %s: %s; %d event(s) retried in %.1fs", batch.route, result.error, len(keys), delay
                )
            conn.commit()  # before the next Slack call: the table is the truth after a crash
        return report
