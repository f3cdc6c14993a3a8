"""Alerts against real PostgreSQL and a real local HTTP receiver that also fails, rate-limits and
times out: each event arrives once, storms are one message, routes reach their receiver, failures
are retried and recorded, restarts neither lose nor repeat a message."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from loganalyzer.alerts.config import AlertsConfig, build_config
from loganalyzer.alerts.delivery import WebhookSender
from loganalyzer.alerts.service import AlertService, CycleReport
from loganalyzer.alerts.store import ALERTS_LOCK_KEY, AlertStore
from loganalyzer.db.connection import connect
from tests.integration.slack_receiver import SlackReceiver
from tests.support import wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def receiver() -> Iterator[SlackReceiver]:
    r = SlackReceiver().start()
    try:
        yield r
    finally:
        r.stop()


def upsert(
    url: str, i: int, *, status: str = "open", service: str = "checkout", severity: str = "high"
) -> str:
    """What the consumer's sink does (streaming/sink.py): one row per episode, upserted."""
    aid = f"an-{i:05d}"
    start = datetime.now(UTC) - timedelta(minutes=30)
    end = start + timedelta(minutes=12, seconds=30)
    with connect(url) as conn:
        conn.execute(
            "INSERT INTO anomalies (id, tenant, service, anomaly_type, severity, status, window_start, "
            "window_end, resolved_at, expected_value, actual_value, description, pattern_template) "
            "VALUES (%s, 'default', %s, 'error_rate_spike', %s, %s, %s, %s, %s, 0.01, 0.25, %s, 'x <*>') "
            "ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, severity = EXCLUDED.severity, "
            "resolved_at = EXCLUDED.resolved_at, window_end = EXCLUDED.window_end, updated_at = now()",
            (
                aid,
                service,
                severity,
                status,
                start,
                end,
                end if status == "resolved" else None,
                f"error rate 25% vs 1% expected on {service}",
            ),
        )
    return aid


def config(receiver: SlackReceiver, **overrides: Any) -> AlertsConfig:
    doc: dict[str, Any] = {
        "group_wait_seconds": 0,
        "retry_base_seconds": 0.2,
        "retry_max_seconds": 0.4,
        "timeout_seconds": 0.5,
    }
    doc.update(overrides)
    return build_config(doc, slack_webhook_url=receiver.url("a"), api_base_url="http://api.test")


def service(url: str, cfg: AlertsConfig) -> AlertService:
    # one request per call: the retries under test are the ones recorded in the table
    return AlertService(AlertStore(connect(url)), cfg, WebhookSender(timeout=cfg.timeout_seconds, attempts=1))


def deliveries(url: str) -> dict[tuple[str, str], tuple[Any, ...]]:
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT anomaly_id, event, state, attempts, last_error, route, group_size, message_id, "
            "rate_limited FROM alert_deliveries"
        ).fetchall()
    return {(r[0], r[1]): r[2:] for r in rows}


def run_until(svc: AlertService, done: Any, timeout: float = 15.0) -> list[CycleReport]:
    reports = []
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"not done after {timeout}s: {reports[-3:]}"
        reports.append(svc.run_once())
        time.sleep(0.05)
    return reports


def test_opened_and_resolved_arrive_once_each(database_url: str, receiver: SlackReceiver) -> None:
    svc = service(database_url, config(receiver))
    aid = upsert(database_url, 1)
    assert svc.run_once().messages_sent == 1
    assert svc.run_once().messages_sent == 0
    upsert(database_url, 1)  # the episode updates while open: nothing new to say
    assert svc.run_once().messages_sent == 0
    upsert(database_url, 1, status="resolved")
    assert svc.run_once().messages_sent == 1
    assert svc.run_once().messages_sent == 0
    opened, resolved = receiver.delivered("a")
    assert (
        opened["text"].startswith("HIGH: error_rate_spike on checkout")
        and f"/api/v1/anomalies/{aid}" in opened["text"]
    )
    assert "Expected 0.01, actual 0.25" in opened["text"]
    assert (
        resolved["text"].startswith("Resolved: error_rate_spike on checkout")
        and "after 12m 30s" in resolved["text"]
    )
    state = deliveries(database_url)
    assert {k: v[0] for k, v in state.items()} == {(aid, "opened"): "sent", (aid, "resolved"): "sent"}


def test_a_storm_is_one_message_with_the_count(database_url: str, receiver: SlackReceiver) -> None:
    svc = service(database_url, config(receiver, group_wait_seconds=1.0, list_limit=5))
    for i in range(37):
        upsert(database_url, i, service=f"svc-{i % 4}")
    first = svc.run_once()
    assert (first.discovered, first.waiting, first.messages_sent) == (37, 37, 0)
    for i in range(37, 40):  # later arrivals inside the window join the same message
        upsert(database_url, i, service=f"svc-{i % 4}")
    time.sleep(1.1)
    run_until(svc, lambda: receiver.delivered())
    assert svc.run_once().messages_sent == 0
    (msg,) = receiver.delivered()
    assert msg["text"].startswith("40 anomalies opened on 4 service(s)") and "+35 more" in msg["text"]
    state = deliveries(database_url)
    assert len(state) == 40 and {v[0] for v in state.values()} == {"sent"}
    assert {v[4] for v in state.values()} == {40} and len({v[5] for v in state.values()}) == 1


def test_routing_sends_to_the_right_receiver(database_url: str, receiver: SlackReceiver) -> None:
    cfg = config(
        receiver,
        routes=[
            {
                "name": "checkout",
                "match": {"service": ["checkout*"]},
                "webhook_url": receiver.url("checkout"),
            },
            {
                "name": "critical",
                "match": {"severity": ["critical"]},
                "webhook_url": receiver.url("critical"),
            },
        ],
        min_severity="medium",
    )
    svc = service(database_url, cfg)
    upsert(database_url, 1, service="checkout-api")
    upsert(database_url, 2, service="search", severity="critical")
    upsert(database_url, 3, service="search", severity="medium")
    upsert(database_url, 4, service="search", severity="low")  # below min_severity: never sent
    run_until(svc, lambda: len(receiver.delivered()) == 3)
    assert "checkout-api" in receiver.delivered("checkout")[0]["text"]
    assert "an-00002" in receiver.delivered("critical")[0]["text"]
    assert "an-00003" in receiver.delivered("a")[0]["text"]
    upsert(database_url, 4, service="search", severity="low", status="resolved")
    svc.run_once()
    state = deliveries(database_url)
    assert state["an-00004", "opened"][0] == state["an-00004", "resolved"][0] == "skipped"
    assert [state[f"an-0000{i}", "opened"][3] for i in (1, 2, 3)] == ["checkout", "critical", "default"]


def test_failures_are_retried_with_backoff_and_recorded(database_url: str, receiver: SlackReceiver) -> None:
    receiver.script("a", "500", "sleep:1.5", "429:1", "503")
    svc = service(database_url, config(receiver))
    aid = upsert(database_url, 1)
    svc.run_once()
    row = deliveries(database_url)[aid, "opened"]
    assert row[:3] == ("pending", 1, "HTTP 500: server_error")
    svc.run_once()  # in backoff: nothing is tried
    assert receiver.outcomes() == ["500"]
    t0 = time.monotonic()
    run_until(svc, lambda: deliveries(database_url)[aid, "opened"][0] == "sent")
    assert time.monotonic() - t0 >= 1.0  # Retry-After: 1 was honoured
    assert receiver.outcomes() == ["500", "timeout", "429", "503", "200"]
    assert deliveries(database_url)[aid, "opened"][:3] == ("sent", 5, None)
    assert len(receiver.delivered()) == 1


def test_timeouts_are_recorded(database_url: str, receiver: SlackReceiver) -> None:
    receiver.script("a", "sleep:1.5")
    svc = service(database_url, config(receiver))
    aid = upsert(database_url, 1)
    report = svc.run_once()
    assert report.retried == 1
    assert deliveries(database_url)[aid, "opened"][:3] == ("pending", 1, "timed out after 0.5s")


def test_permanent_errors_fail_without_retrying(database_url: str, receiver: SlackReceiver) -> None:
    receiver.script("a", "404")
    svc = service(database_url, config(receiver))
    aid = upsert(database_url, 1)
    assert svc.run_once().failed == 1
    time.sleep(0.5)
    svc.run_once()
    assert receiver.outcomes() == ["404"]
    assert deliveries(database_url)[aid, "opened"][:3] == ("failed", 1, "HTTP 404: no_service")


def test_rate_limit_holds_messages_and_sends_them_later_as_one(
    database_url: str, receiver: SlackReceiver
) -> None:
    svc = service(database_url, config(receiver, max_messages_per_minute=1))
    upsert(database_url, 1)
    assert svc.run_once().messages_sent == 1
    for i in range(2, 6):
        upsert(database_url, i)
    report = svc.run_once()
    assert (report.messages_sent, report.rate_limited) == (0, 4)
    # a minute later (the clock moves, the table is real) the four leave as one message
    svc.clock = lambda: datetime.now(UTC) + timedelta(seconds=61)
    assert svc.run_once().messages_sent == 1
    assert receiver.delivered()[1]["text"].startswith("4 anomalies opened")
    state = deliveries(database_url)
    assert sorted(v[6] for v in state.values()) == [False, True, True, True, True]


def test_nothing_is_lost_while_the_receiver_is_down(database_url: str, receiver: SlackReceiver) -> None:
    port = receiver.port
    receiver.stop()  # connection refused from now on
    svc = service(database_url, config(receiver))
    for i in range(3):
        upsert(database_url, i)
    for _ in range(4):
        svc.run_once()
        time.sleep(0.25)
    state = deliveries(database_url)
    assert {v[0] for v in state.values()} == {"pending"} and min(v[1] for v in state.values()) >= 2
    assert all(v[2].startswith("connection failed") for v in state.values())
    back = SlackReceiver(port=port).start()
    try:
        run_until(svc, lambda: back.delivered())
        (msg,) = back.delivered()
        assert msg["text"].startswith("3 anomalies opened")
        assert {v[0] for v in deliveries(database_url).values()} == {"sent"}
    finally:
        back.stop()


def _cli_env(url: str, receiver: SlackReceiver, tmp_path: Path, **extra: str) -> dict[str, str]:
    cfg = tmp_path / "alerts.yaml"
    cfg.write_text(
        yaml.safe_dump({"group_wait_seconds": 0, "retry_base_seconds": 0.2, "retry_max_seconds": 0.4})
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ALERTS_", "API_BASE"))}
    env.update(
        DATABASE_URL=url,
        SLACK_WEBHOOK_URL=receiver.url("a"),
        ALERTS_CONFIG=str(cfg),
        ALERTS_POLL_SECONDS="0.1",
        API_BASE_URL="http://api.test",
        PYTHONPATH=f"{ROOT / 'plugins'}:{ROOT}",
    )
    env.update(extra)
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "loganalyzer", "alerts", *args]


def test_a_restarted_alerts_process_does_not_resend(
    database_url: str, receiver: SlackReceiver, tmp_path: Path
) -> None:
    env = _cli_env(database_url, receiver, tmp_path)
    aid = upsert(database_url, 1)
    proc = subprocess.Popen(_cli(), env=env, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: len(receiver.delivered()) == 1, 20, "the opened message")
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
    upsert(database_url, 1, status="resolved")  # resolves while alerts is down
    proc = subprocess.Popen(_cli(), env=env, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: len(receiver.delivered()) == 2, 20, "the resolved message after a restart")
        time.sleep(0.5)  # a few more polls: nothing else may come
    finally:
        proc.terminate()
        proc.wait(10)
    assert [m["text"].split(":")[0] for m in receiver.delivered()] == ["HIGH", "Resolved"]
    done = subprocess.run(_cli("--once"), env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "sent 0 message(s)" in done.stderr, done.stderr
    assert len(receiver.delivered()) == 2 and {v[0] for v in deliveries(database_url).values()} == {"sent"}
    assert aid in receiver.delivered()[1]["text"]


def test_cli_without_webhook_says_so_and_exits_0(
    database_url: str, receiver: SlackReceiver, tmp_path: Path
) -> None:
    env = _cli_env(database_url, receiver, tmp_path, SLACK_WEBHOOK_URL="")
    env.pop("ALERTS_CONFIG")
    done = subprocess.run(_cli(), env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stderr.strip().splitlines() == [
        "alerts: no Slack webhook configured (SLACK_WEBHOOK_URL or ALERTS_CONFIG routes); nothing to do"
    ]


def test_cli_bad_configuration_is_one_clear_line(
    database_url: str, receiver: SlackReceiver, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes:\n  - match: {severity: [urgent]}\n    webhook_url: http://x\n")
    env = _cli_env(database_url, receiver, tmp_path, ALERTS_CONFIG=str(bad))
    done = subprocess.run(_cli("--once"), env=env, capture_output=True, text=True, timeout=60)
    assert (
        done.returncode == 2 and "routes[0].match.severity" in done.stderr and "Traceback" not in done.stderr
    )


def test_a_second_alerts_process_does_not_send(
    database_url: str, receiver: SlackReceiver, tmp_path: Path
) -> None:
    env = _cli_env(database_url, receiver, tmp_path)
    upsert(database_url, 1)
    with connect(database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (ALERTS_LOCK_KEY,))
        done = subprocess.run(_cli("--once"), env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "holds the lock" in done.stderr
    assert receiver.delivered() == []


@pytest.mark.parametrize(
    ("script", "ok", "requests", "retry_after", "outcomes"),
    [
        ((), True, 1, None, ["200"]),
        (("500",), True, 2, None, ["500", "200"]),  # a blip: retried within the call
        (("500", "503"), False, 2, None, ["500", "503"]),  # then the table's backoff takes over
        (("429:0.3",), True, 2, None, ["429", "200"]),  # a short Retry-After is waited for
        (("429:30",), False, 1, 30.0, ["429"]),  # a long one is left to the store's schedule
        (("404",), False, 1, None, ["404"]),  # permanent: not retried
        (("sleep:1",), True, 2, None, ["timeout", "200"]),
    ],
)
def test_webhook_sender_retries_within_a_call(
    receiver: SlackReceiver,
    script: tuple[str, ...],
    ok: bool,
    requests: int,
    retry_after: float | None,
    outcomes: list[str],
) -> None:
    receiver.script("a", *script)
    sender = WebhookSender(timeout=0.4, attempts=2, base_delay=0.05, max_inline_wait=5.0)
    t0 = time.monotonic()
    result = sender(receiver.url("a"), {"text": "hello"})
    assert (result.ok, result.requests, result.retry_after) == (ok, requests, retry_after)
    assert receiver.outcomes() == outcomes
    if script == ("429:0.3",):
        assert time.monotonic() - t0 >= 0.3
    assert result.error is None or receiver.url("a") not in result.error  # the URL is a secret


def _set_operator_state(url: str, aid: str, state: str, until: str = "NULL") -> None:
    """What the API's acknowledge/suppress actions write on the anomaly (serving/api/routes)."""
    with connect(url) as conn:
        conn.execute(
            "UPDATE anomalies SET operator_state = %s, operator_state_at = now(), "
            f"operator_state_until = {until}, updated_at = now() WHERE id = %s",
            (state, aid),
        )


def test_an_episode_still_open_escalates_once_one_severity_higher(
    database_url: str, receiver: SlackReceiver
) -> None:
    doc = {
        "escalate_after_minutes": 0.02,  # 1.2 s
        "routes": [{"name": "oncall", "webhook_url": receiver.url("b"), "match": {"severity": ["critical"]}}],
    }
    svc = service(database_url, config(receiver, **doc))
    stays = upsert(database_url, 1, severity="high")
    acked = upsert(database_url, 2, severity="high")
    ends = upsert(database_url, 3, severity="high")
    assert svc.run_once().events_sent == 3  # one grouped 'opened' message on the default route
    _set_operator_state(database_url, acked, "acknowledged")
    upsert(database_url, 3, status="resolved")
    assert svc.run_once().events_sent == 1  # the resolution; nobody escalated yet
    time.sleep(1.3)
    run_until(svc, lambda: receiver.delivered("b"))
    for _ in range(3):
        assert svc.run_once().messages_sent == 0  # once
    (escalation,) = receiver.delivered("b")
    assert escalation["text"].startswith("Still open after") and "ESCALATED to CRITICAL" in escalation["text"]
    assert stays in escalation["text"]
    state = deliveries(database_url)
    assert state[(stays, "escalated")][0] == "sent" and state[(stays, "escalated")][3] == "oncall"
    assert (acked, "escalated") not in state and (ends, "escalated") not in state


def test_a_suppressed_episode_is_not_alerted_until_its_suppression_ends(
    database_url: str, receiver: SlackReceiver
) -> None:
    svc = service(database_url, config(receiver, group_wait_seconds=0.5))
    muted = upsert(database_url, 1)
    _set_operator_state(database_url, muted, "suppressed")
    waiting = upsert(database_url, 2)
    assert svc.run_once().waiting == 1  # only the unmuted one, in its grouping window
    _set_operator_state(database_url, waiting, "suppressed", "now() + interval '1 hour'")
    time.sleep(0.6)
    report = svc.run_once()
    assert (report.muted, report.messages_sent) == (1, 0)
    assert deliveries(database_url)[(waiting, "opened")][0] == "skipped"
    assert (muted, "opened") not in deliveries(database_url)
    # a suppression that has ended mutes nothing: the episode's next change is announced
    ended = upsert(database_url, 3)
    _set_operator_state(database_url, ended, "suppressed", "now() - interval '1 second'")
    time.sleep(0.6)
    run_until(svc, lambda: receiver.delivered())
    (msg,) = receiver.delivered()
    assert ended in msg["text"] and muted not in msg["text"]


def test_maintenance_deletes_old_settled_deliveries_but_not_those_of_open_episodes(
    database_url: str, receiver: SlackReceiver
) -> None:
    from loganalyzer.batch.maintenance import maintain

    svc = service(database_url, config(receiver))
    still_open = upsert(database_url, 1)
    over = upsert(database_url, 2)
    fresh = upsert(database_url, 3)
    upsert(database_url, 2, status="resolved")
    upsert(database_url, 3, status="resolved")
    run_until(svc, lambda: len(receiver.delivered()) >= 2)
    with connect(database_url) as conn:
        conn.execute(
            "UPDATE alert_deliveries SET created_at = created_at - interval '40 days' WHERE anomaly_id <> %s",
            (fresh,),
        )
        conn.execute(
            "INSERT INTO alert_deliveries (anomaly_id, event, route, created_at, next_attempt_at) "
            "VALUES ('an-99999', 'opened', 'default', now() - interval '40 days', now())"
        )  # still pending: retried or expired by the alerts process, never deleted here
    with connect(database_url, autocommit=True) as conn:
        report = maintain(conn, datetime.now(UTC).date(), vacuum=False)
    left = deliveries(database_url)
    assert report.alert_deliveries_deleted == 2
    assert sorted(left) == sorted(
        [(still_open, "opened"), (fresh, "opened"), (fresh, "resolved"), ("an-99999", "opened")]
    )
    assert over not in {k[0] for k in left}
