"""Operator suppressions honoured by the real consumer: a suppressed pattern raises nothing and
alerts nobody; the same pattern of another tenant or service, or after the suppression ended,
is raised as before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from loganalyzer.alerts.config import build_config
from loganalyzer.alerts.delivery import WebhookSender
from loganalyzer.alerts.service import AlertService
from loganalyzer.alerts.store import AlertStore
from loganalyzer.db.connection import connect
from loganalyzer.detection.config import DetectionConfig
from loganalyzer.detection.engine import DetectionEngine
from loganalyzer.events import EventParser, ParseLimits
from streaming.log_row import DURATION, LEVEL, MESSAGE, SERVICE, TENANT, TS
from tests.integration.consumer_harness import consumer_env, consumer_process, stop_gracefully
from tests.integration.slack_receiver import SlackReceiver
from tests.support import count, new_topic, produce, wait_for

pytestmark = pytest.mark.integration

#: (tenant, service) → the suppression written for it before the new error shows up
MUTED = ("acme", "checkout")  # the error's own template, for good
EXPIRED = ("acme", "search")  # the error's own template, ended a minute ago
OTHER_TEMPLATE = ("acme", "payments")  # another template of the same service
OTHER_TENANT = ("globex", "checkout")  # same service name and template, other tenant
SERVICES = (MUTED, EXPIRED, OTHER_TEMPLATE, OTHER_TENANT)
ERROR = "card 4242 refused by gateway eu-{} after {} ms"


def _events(start: datetime) -> list[dict[str, Any]]:
    """40 minutes of ordinary traffic per service (past the 500-message, 30-minute pattern
    warm-up), then at minute 36 the same never-seen ERROR line on every service."""
    docs: list[dict[str, Any]] = []
    for minute in range(40):
        for k in range(20):
            for tenant, service in SERVICES:
                i = minute * 20 + k
                docs.append(
                    {
                        "timestamp": (start + timedelta(minutes=minute, seconds=k * 3)).isoformat(),
                        "level": "INFO",
                        "tenant": tenant,
                        "service": service,
                        "host": f"host-{k % 3}",
                        "message": f"request {i} handled in {i % 97} ms",
                    }
                )
                if minute == 36 and k < 3:
                    docs.append({**docs[-1], "level": "ERROR", "message": ERROR.format(k, 30 + k)})
    return docs


def _templates(docs: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """The template each service's new_error_pattern episode will carry, from the engine itself."""
    parse = EventParser(ParseLimits(), datetime.now(UTC)).fields
    engine = DetectionEngine(DetectionConfig())
    out: dict[tuple[str, str], str] = {}
    for doc in docs:
        row = parse(orjson.dumps(doc))
        assert isinstance(row, tuple)
        engine.observe(row[TS], row[TENANT], row[SERVICE], row[LEVEL], row[MESSAGE], row[DURATION])
        for e in engine.advance(row[TS]):
            if e.episode.type == "new_error_pattern":
                out[(e.episode.tenant, e.episode.service)] = e.episode.extra["template"]
    return out


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with connect(url) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def _suppress(url: str, key: tuple[str, str], template: str, until: str | None) -> None:
    """What POST /api/v1/anomalies/{id}/suppress with scope 'pattern' records (serving/api/routes)."""
    with connect(url) as conn:
        conn.execute(
            "INSERT INTO anomaly_feedback (tenant, action, scope, service, pattern_template, "
            "anomaly_type, until, note) VALUES (%s, 'suppress', 'pattern', %s, %s, "
            "'new_error_pattern', " + ("NULL" if until is None else until) + ", 'test')",
            (key[0], key[1], template),
        )


def test_a_suppressed_pattern_raises_nothing_and_alerts_nobody(
    broker: str, database_url: str, tmp_path: Path
) -> None:
    start = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
    docs = _events(start)
    templates = _templates(docs)
    assert set(templates) == set(SERVICES), templates  # the engine finds the new error on each
    template = templates[MUTED]
    _suppress(database_url, MUTED, template, None)
    _suppress(database_url, EXPIRED, template, "now() - interval '1 minute'")
    _suppress(database_url, OTHER_TEMPLATE, "disk <*> is full", None)

    topic = new_topic(broker)
    env = consumer_env(database_url, broker, topic, MLFLOW_TRACKING_URI="", SUPPRESSION_REFRESH_SECONDS="1")
    values: list[bytes | None] = [orjson.dumps(d) for d in docs]
    keys = [f"{d['tenant']}/{d['service']}".encode() for d in docs]
    log = tmp_path / "consumer.log"
    with consumer_process(env, log) as proc:
        produce(broker, topic, values, keys)
        wait_for(lambda: count(database_url) == len(docs), 120, "every event stored")
        try:
            wait_for(
                lambda: (
                    count(
                        database_url,
                        "SELECT count(*) FROM anomalies WHERE anomaly_type = 'new_error_pattern'",
                    )
                    == len(SERVICES)
                ),
                60,
                "a new_error_pattern row per service",
            )
        except AssertionError as exc:
            found = _rows(database_url, "SELECT tenant, service, anomaly_type, operator_state FROM anomalies")
            dead = _rows(database_url, "SELECT reason, count(*) FROM dead_letters GROUP BY reason")
            raise AssertionError(f"{exc}: anomalies {found}, dead letters {dead}") from None
        stop_gracefully(proc, log)
    with connect(database_url) as conn:
        rows = conn.execute(
            "SELECT tenant, service, pattern_template, "
            "anomaly_effective_status(status, operator_state, operator_state_until), details "
            "FROM anomalies WHERE anomaly_type = 'new_error_pattern'"
        ).fetchall()
        muted_feedback = conn.execute(
            "SELECT id FROM anomaly_feedback WHERE tenant = 'acme' AND service = 'checkout'"
        ).fetchone()
    status = {(r[0], r[1]): r[3] for r in rows}
    assert {r[2] for r in rows} == {template}
    assert status[MUTED] == "suppressed"
    assert {status[k] for k in (EXPIRED, OTHER_TEMPLATE, OTHER_TENANT)} == {"open"}
    details = {(r[0], r[1]): r[4] for r in rows}
    assert muted_feedback is not None
    assert details[MUTED]["suppressed_by"] == {"feedback_id": muted_feedback[0], "until": None}
    assert "suppressed_by" not in details[OTHER_TENANT]

    # the alerts process announces every new_error_pattern episode but the muted one
    receiver = SlackReceiver().start()
    try:
        cfg = build_config({"group_wait_seconds": 0}, slack_webhook_url=receiver.url("a"))
        svc = AlertService(AlertStore(connect(database_url)), cfg, WebhookSender(timeout=2, attempts=1))
        svc.run_once()
        svc.run_once()
        with connect(database_url) as conn:
            alerted = conn.execute(
                "SELECT a.tenant, a.service FROM alert_deliveries d JOIN anomalies a ON a.id = d.anomaly_id "
                "WHERE d.event = 'opened' AND d.state = 'sent' AND a.anomaly_type = 'new_error_pattern'"
            ).fetchall()
            muted_rows = conn.execute(
                "SELECT count(*) FROM alert_deliveries d JOIN anomalies a ON a.id = d.anomaly_id "
                "WHERE a.tenant = 'acme' AND a.service = 'checkout' AND a.anomaly_type = 'new_error_pattern'"
            ).fetchone()
        assert set(alerted) == {EXPIRED, OTHER_TEMPLATE, OTHER_TENANT}
        assert muted_rows == (0,)
        texts = " ".join(m["text"] for m in receiver.delivered("a"))
        assert "on search" in texts and "on payments" in texts
    finally:
        receiver.stop()
