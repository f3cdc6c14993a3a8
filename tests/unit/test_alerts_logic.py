"""Alerts' pure logic: configuration, routing, discovery, grouping, rate limit, retry, payload."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loganalyzer.alerts.config import AlertsConfigError, build_config
from loganalyzer.alerts.discovery import Candidate, escalated, escalations, new_deliveries
from loganalyzer.alerts.grouping import Batch, plan
from loganalyzer.alerts.model import Episode, PendingEvent
from loganalyzer.alerts.payload import build_message, duration
from loganalyzer.alerts.retry import backoff_seconds, is_permanent, parse_retry_after
from loganalyzer.alerts.routing import route_for

NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)
HOOK = "https://hooks.slack.example/services/T/B/x"

CONFIG = build_config(
    {
        "min_severity": "medium",
        "routes": [
            {
                "name": "checkout-oncall",
                "match": {"severity": ["high", "critical"], "service": ["checkout*"]},
                "webhook_url": HOOK + "1",
            },
            {"name": "payments", "match": {"service": "payments"}, "webhook_url": HOOK + "2"},
            {"name": "tenant-b", "match": {"tenant": ["b-*"]}, "webhook_url": HOOK + "3"},
        ],
    },
    slack_webhook_url=HOOK + "0",
    api_base_url="http://api.test:8000/",
)


def episode(
    i: int = 1,
    *,
    service: str = "checkout",
    severity: str = "high",
    tenant: str = "default",
    status: str = "open",
    anomaly_type: str = "error_rate_spike",
    minutes: float = 12.5,
) -> Episode:
    start = NOW - timedelta(hours=1)
    return Episode(
        id=f"an-{i}",
        tenant=tenant,
        service=service,
        anomaly_type=anomaly_type,
        severity=severity,
        status=status,
        window_start=start,
        window_end=start + timedelta(minutes=minutes),
        resolved_at=start + timedelta(minutes=minutes) if status == "resolved" else None,
        expected_value=0.012,
        actual_value=0.31,
        description="error rate 31% vs 1.2% expected (z=9.1) over 5 min",
        pattern_template="payment <*> failed: <*>",
    )


@pytest.mark.parametrize(
    ("service", "severity", "tenant", "route"),
    [
        ("checkout", "high", "default", "checkout-oncall"),
        ("checkout-api", "critical", "default", "checkout-oncall"),
        ("checkout", "medium", "default", "default"),  # severity does not match the first route
        ("payments", "medium", "default", "payments"),
        ("payments", "critical", "default", "payments"),
        ("search", "high", "b-1", "tenant-b"),
        ("search", "high", "default", "default"),
        ("checkout", "low", "default", None),  # below min_severity
        ("mycheckout", "high", "default", "default"),  # globs anchor at both ends
    ],
)
def test_routing_first_match_then_default_then_min_severity(
    service: str, severity: str, tenant: str, route: str | None
) -> None:
    got = route_for(episode(service=service, severity=severity, tenant=tenant), CONFIG)
    assert (got.name if got else None) == route


def test_without_default_route_unmatched_episodes_are_not_routed() -> None:
    cfg = build_config({"routes": [{"name": "c", "match": {"service": "checkout"}, "webhook_url": HOOK}]})
    assert route_for(episode(service="search"), cfg) is None
    assert route_for(episode(service="checkout"), cfg) is not None
    assert not build_config(None).has_webhook
    assert build_config(None, slack_webhook_url=HOOK).has_webhook


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"routs": []}, "unknown key(s) ['routs']"),
        ({"routes": [{"match": {"severity": ["urgent"]}, "webhook_url": HOOK}]}, "routes[0].match.severity"),
        ({"routes": [{"match": {"colour": "red"}, "webhook_url": HOOK}]}, "routes[0].match: unknown key"),
        ({"routes": [{"name": "x"}]}, "routes[0].webhook_url: missing"),
        ({"routes": [{"webhook_url": "ftp://x"}]}, "routes[0].webhook_url: expected an http(s) URL"),
        ({"routes": [{"name": "a", "webhook_url": HOOK}, {"name": "a", "webhook_url": HOOK}]}, "unique"),
        ({"min_severity": "urgent"}, "min_severity"),
        ({"max_messages_per_minute": 0}, "max_messages_per_minute"),
        ({"group_wait_seconds": "soon"}, "group_wait_seconds: expected a number"),
        ({"retry_base_seconds": 10, "retry_max_seconds": 1}, "retry_max_seconds"),
        ({"default_route": {"match": {"service": "x"}, "webhook_url": HOOK}}, "default_route.match"),
        ({"default_route": {"name": "d"}}, "default_route.webhook_url: missing"),
        ([1, 2], "mapping at the top level"),
    ],
)
def test_bad_configuration_names_the_key(doc: Any, message: str) -> None:
    with pytest.raises(AlertsConfigError) as err:
        build_config(doc)
    assert message in str(err.value)


def test_default_route_in_file_takes_slack_webhook_url_from_env() -> None:
    cfg = build_config({"default_route": {"name": "ops"}}, slack_webhook_url=HOOK)
    assert cfg.default_route is not None and cfg.default_route.webhook_url == HOOK
    assert cfg.default_route.name == "ops"


@pytest.mark.parametrize(
    ("status", "opened", "has_resolved", "expected"),
    [
        ("open", None, False, [("opened", "checkout-oncall")]),
        ("resolved", None, False, [("opened", "checkout-oncall"), ("resolved", "checkout-oncall")]),
        ("resolved", ("payments", "sent"), False, [("resolved", "payments")]),  # follows the opened route
        ("resolved", (None, "skipped"), False, [("resolved", None)]),
        ("resolved", ("payments", "sent"), True, []),
        ("open", ("payments", "pending"), False, []),
    ],
)
def test_discovery_rows(
    status: str,
    opened: tuple[str | None, str] | None,
    has_resolved: bool,
    expected: list[tuple[str, str | None]],
) -> None:
    rows = new_deliveries([Candidate(episode(status=status), opened, has_resolved)], CONFIG)
    assert [(r.event, r.route) for r in rows] == expected
    assert all(r.state == ("skipped" if r.route is None else "pending") for r in rows)


def pending(
    i: int, route: str = "r", event: str = "opened", age: float = 60.0, attempts: int = 0
) -> PendingEvent:
    return PendingEvent(episode(i), event, route, NOW - timedelta(seconds=age), attempts)


@pytest.mark.parametrize(
    ("events", "sent_last_minute", "batches", "limited", "waiting"),
    [
        # one old event: sent alone
        ([pending(1)], {}, [("r", "opened", 1)], 0, 0),
        # a storm on one route: one message with all of them
        ([pending(i, age=60 - i) for i in range(40)], {}, [("r", "opened", 40)], 0, 0),
        # the group's oldest event has not waited group_wait (10 s) yet: everyone waits
        ([pending(1, age=3), pending(2, age=1)], {}, [], 0, 2),
        # a retried group leaves at once, with the new events of its route
        ([pending(1, age=1, attempts=2), pending(2, age=0)], {}, [("r", "opened", 2)], 0, 0),
        # opened and resolved are separate messages; opened first
        ([pending(1, event="resolved"), pending(2)], {}, [("r", "opened", 1), ("r", "resolved", 1)], 0, 0),
        # the route used 5 of its 6 messages: opened leaves, resolved waits for the next minute
        ([pending(1, event="resolved"), pending(2)], {"r": 5}, [("r", "opened", 1)], 1, 0),
        # limits are per route
        ([pending(1, route="a"), pending(2, route="b")], {"a": 6}, [("b", "opened", 1)], 1, 0),
    ],
)
def test_grouping_and_rate_limit(
    events: list[PendingEvent],
    sent_last_minute: dict[str, int],
    batches: list[tuple[str, str, int]],
    limited: int,
    waiting: int,
) -> None:
    p = plan(
        events, NOW, group_wait=timedelta(seconds=10), max_per_minute=6, sent_last_minute=sent_last_minute
    )
    assert [(b.route, b.event, len(b.events)) for b in p.batches] == batches
    assert (len(p.rate_limited), len(p.waiting)) == (limited, waiting)


@settings(max_examples=300, deadline=None)
@given(
    specs=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.sampled_from(["opened", "resolved"]),
            st.floats(min_value=0, max_value=120),
            st.integers(min_value=0, max_value=3),
        ),
        max_size=60,
    ),
    polls=st.lists(st.floats(min_value=0.0, max_value=90.0), min_size=1, max_size=8),
    limit=st.integers(min_value=1, max_value=4),
    group_wait=st.floats(min_value=0, max_value=30),
)
def test_grouping_never_loses_or_duplicates_an_episode(
    specs: list[tuple[str, str, float, int]], polls: list[float], limit: int, group_wait: float
) -> None:
    """Poll after poll (time moving on, sent messages counting against the limit), every event is
    in exactly one part of each plan, sent at most once overall, and all are sent in the end."""
    events = [
        PendingEvent(episode(i), event, route, NOW - timedelta(seconds=age), attempts)
        for i, (route, event, age, attempts) in enumerate(specs)
    ]
    left = {e.key: e for e in events}
    sent: list[tuple[str, str]] = []
    history: list[tuple[datetime, str]] = []
    now = NOW
    for step in [*polls, 61.0, 61.0, 61.0, 61.0, 61.0, 61.0]:  # then enough minutes to drain
        now += timedelta(seconds=step)
        counts: dict[str, int] = {}
        for at, route in history:
            if at > now - timedelta(minutes=1):
                counts[route] = counts.get(route, 0) + 1
        p = plan(
            list(left.values()),
            now,
            group_wait=timedelta(seconds=group_wait),
            max_per_minute=limit,
            sent_last_minute=counts,
        )
        parts = [e.key for b in p.batches for e in b.events] + [e.key for e in (*p.rate_limited, *p.waiting)]
        assert sorted(parts) == sorted(left)  # nothing lost or duplicated within a plan
        for b in p.batches:
            assert {e.route for e in b.events} == {b.route} and {e.event for e in b.events} == {b.event}
            history.append((now, b.route))
            for e in b.events:
                sent.append(e.key)
                del left[e.key]
        assert all(n <= limit for n in counts.values())
    assert sorted(sent) == sorted(e.key for e in events)


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [(1, 0.0, 1.0), (1, 1.0, 2.0), (2, 0.0, 2.0), (3, 0.5, 6.0), (10, 0.0, 150.0), (10, 1.0, 300.0)],
)
def test_backoff_doubles_with_equal_jitter_and_a_cap(attempt: int, rand: float, expected: float) -> None:
    assert backoff_seconds(attempt, 2.0, 300.0, lambda: rand) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("status", "permanent"),
    [
        (None, False),
        (400, True),
        (403, True),
        (404, True),
        (410, True),
        (413, True),
        (408, False),
        (429, False),
        (500, False),
        (503, False),
    ],
)
def test_permanent_statuses(status: int | None, permanent: bool) -> None:
    assert is_permanent(status) is permanent


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("30", 30.0),
        ("1.5", 1.5),
        ("-4", 0.0),
        (None, None),
        ("soon", None),
        ("Sun, 06 Dec 2026 12:00:20 GMT", 20.0),
    ],
)
def test_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (45.4, "45s"), (750, "12m 30s"), (3900, "1h 05m"), (90_000, "1d 01h")]
)
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_opened_message_has_severity_explanation_values_window_and_link() -> None:
    ev = PendingEvent(episode(7, service="checkout<1>"), "opened", "r", NOW)
    msg = build_message(Batch("r", "opened", (ev,)), CONFIG.api_base_url, 5)
    text = msg["text"]
    for part in (
        "HIGH",
        "error_rate_spike",
        "checkout&lt;1&gt;",
        "error rate 31%",
        "0.012",
        "0.31",
        "http://api.test:8000/api/v1/anomalies/an-7",
    ):
        assert part in text
    assert "checkout<1>" not in text  # the fallback is mrkdwn too
    blob = json.dumps(msg["blocks"][1:])
    assert "checkout&lt;1&gt;" in blob and "checkout<1>" not in blob  # mrkdwn escaped
    assert msg["blocks"][0]["text"]["text"] == "HIGH: error_rate_spike on checkout<1>"  # plain_text: as is
    assert msg["blocks"][0]["type"] == "header" and len(msg["blocks"][0]["text"]["text"]) <= 150
    assert "<http://api.test:8000/api/v1/anomalies/an-7|" in blob


def test_resolved_message_says_how_long_it_lasted() -> None:
    ev = PendingEvent(episode(3, status="resolved", minutes=12.5), "resolved", "r", NOW)
    msg = build_message(Batch("r", "resolved", (ev,)), CONFIG.api_base_url, 5)
    assert msg["text"].startswith("Resolved: error_rate_spike on checkout") and "after 12m 30s" in msg["text"]
    assert "Resolved after 12m 30s" in json.dumps(msg["blocks"])


@pytest.mark.parametrize(("n", "shown", "more"), [(2, 2, 0), (5, 5, 0), (6, 5, 1), (250, 5, 245)])
def test_group_message_lists_the_first_few_and_counts_the_rest(n: int, shown: int, more: int) -> None:
    events = tuple(
        PendingEvent(
            episode(i, service=f"svc-{i % 3}", severity=("medium", "critical")[i == 1]), "opened", "r", NOW
        )
        for i in range(n)
    )
    msg = build_message(Batch("r", "opened", events), "http://api", 5)
    assert msg["text"].startswith(
        f"{n} anomalies opened on {min(n, 3)} service(s) (highest severity critical"
    )
    assert msg["text"].count("http://api/api/v1/anomalies/an-") == shown
    assert (f"+{more} more" in msg["text"]) is bool(more)
    assert len(json.dumps(msg)) < 6000  # a storm stays one small message


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ALERTS_POLL_SECONDS": "often"}, "ALERTS_POLL_SECONDS='often' is not a number"),
        ({"ALERTS_POLL_SECONDS": "0"}, "ALERTS_POLL_SECONDS=0.0 must be between"),
        (
            {"ALERTS_CONFIG": "/nonexistent/alerts.yaml"},
            "ALERTS_CONFIG=/nonexistent/alerts.yaml: cannot read",
        ),
        ({"SLACK_WEBHOOK_URL": "hooks.slack.com/x"}, "SLACK_WEBHOOK_URL: expected an http(s) URL"),
    ],
)
def test_environment_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    from loganalyzer.alerts.cli import load_alerts_env

    with pytest.raises(AlertsConfigError) as err:
        load_alerts_env(env)
    assert message in str(err.value)


def test_environment_defaults_and_yaml(tmp_path: Any) -> None:
    from loganalyzer.alerts.cli import load_alerts_env

    path = tmp_path / "alerts.yaml"
    path.write_text(
        "min_severity: high\nroutes:\n  - {name: c, match: {service: [checkout]}, webhook_url: http://h/c}\n"
    )
    cfg = load_alerts_env({"ALERTS_CONFIG": str(path), "API_BASE_URL": "https://api.example/"})
    assert cfg.poll_seconds == 2.0 and cfg.config.min_severity == "high"
    assert cfg.config.api_base_url == "https://api.example" and cfg.config.default_route is None
    assert [r.name for r in cfg.config.routes] == ["c"]
    empty = load_alerts_env({})
    assert not empty.config.has_webhook and empty.config.api_base_url == "http://127.0.0.1:8000"


@pytest.mark.parametrize(
    ("service", "severity", "status", "route", "shown"),
    [
        ("checkout", "medium", "open", "checkout-oncall", "high"),  # medium → high: now the on-call route
        ("checkout", "high", "open", "checkout-oncall", "critical"),
        ("checkout", "critical", "open", "checkout-oncall", "critical"),  # the top stays the top
        ("search", "low", "open", "default", "medium"),  # low was skipped; raised, it is routed
        ("checkout", "high", "resolved", None, None),  # over: nothing to escalate
    ],
)
def test_escalation_routes_one_severity_higher(
    service: str, severity: str, status: str, route: str | None, shown: str | None
) -> None:
    ep = episode(service=service, severity=severity, status=status)
    rows = escalations([ep], CONFIG)
    if shown is None:
        assert rows == []
        return
    assert [(r.anomaly_id, r.event, r.route) for r in rows] == [(ep.id, "escalated", route)]
    assert escalated(ep).severity == shown
    batch = Batch(route or "default", "escalated", (PendingEvent(ep, "escalated", route or "default", NOW),))
    msg = build_message(batch, CONFIG.api_base_url, 5)
    assert msg["text"].startswith("Still open after 12m 30s")
    assert f"ESCALATED to {shown.upper()}: error_rate_spike on {service} still open" in msg["text"]


def test_escalation_delay_is_configurable_and_zero_turns_it_off() -> None:
    assert build_config({}).escalate_after_minutes == 30.0
    assert build_config({"escalate_after_minutes": 0}).escalate_after_minutes == 0.0
    with pytest.raises(AlertsConfigError, match="escalate_after_minutes"):
        build_config({"escalate_after_minutes": -1})
