"""Slack messages (Block Kit with a plain-text fallback) for one episode's event or a group.

The fallback `text` is what notifications, screen readers and clients without blocks show, so
it carries the whole alert on its own.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from loganalyzer.alerts.discovery import escalated
from loganalyzer.alerts.grouping import Batch
from loganalyzer.alerts.model import Episode

_ICONS = {"critical": ":red_circle:", "high": ":large_orange_circle:", "medium": ":large_yellow_circle:"}
_RESOLVED_ICON = ":white_check_mark:"
#: Slack's limits: header text 150 chars, section text 3000, a field 2000
_HEADER_MAX, _SECTION_MAX, _LINE_MAX = 150, 2900, 200


def escape(text: str) -> str:
    """Slack mrkdwn treats &, < and > as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def anomaly_url(api_base_url: str, anomaly_id: str) -> str:
    return f"{api_base_url.rstrip('/')}/api/v1/anomalies/{anomaly_id}"


def number(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def duration(seconds: float) -> str:
    """`1h 05m`, `12m 30s`, `45s`: how long an episode lasted, for a human."""
    s = max(0, round(seconds))
    d, rem = divmod(s, 86_400)
    h, rem = divmod(rem, 3600)
    m, sec = divmod(rem, 60)
    if d:
        return f"{d}d {h:02d}h"
    if h:
        return f"{h}h {m:02d}m"
    if m:
        return f"{m}m {sec:02d}s"
    return f"{sec}s"


def _utc(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%S UTC")


def episode_duration(e: Episode) -> timedelta:
    return (e.resolved_at or e.window_end) - e.window_start


def _title(event: str, e: Episode) -> str:
    if event == "resolved":
        return f"Resolved: {e.anomaly_type} on {e.service}"
    if event == "escalated":
        return f"ESCALATED to {e.severity.upper()}: {e.anomaly_type} on {e.service} still open"
    return f"{e.severity.upper()}: {e.anomaly_type} on {e.service}"


def _single(event: str, e: Episode, api: str) -> dict[str, Any]:
    url = anomaly_url(api, e.id)
    icon = _RESOLVED_ICON if event == "resolved" else _ICONS.get(e.severity, ":white_circle:")
    window = f"{_utc(e.window_start)} → {_utc(e.resolved_at or e.window_end)}"
    if event == "resolved":
        lasted = duration(episode_duration(e).total_seconds())
        text = escape(
            f"{_title(event, e)} (tenant {e.tenant}, was {e.severity}) after {lasted}; window {window}."
        )
        body = f"{icon} *Resolved after {lasted}*\n{escape(_cut(e.description, _SECTION_MAX))}"
    else:
        text = escape(
            f"{_title(event, e)} (tenant {e.tenant}): {e.description} "
            f"Expected {number(e.expected_value)}, actual {number(e.actual_value)}; window {window}."
        )
        body = f"{icon} {escape(_cut(e.description, _SECTION_MAX))}"
        if event == "escalated":
            lasted = duration(episode_duration(e).total_seconds())
            text = escape(f"Still open after {lasted} of event time. ") + text
            body = f"{icon} *Still open after {lasted}*\n{escape(_cut(e.description, _SECTION_MAX))}"
    fields = [
        ("Severity", e.severity),
        ("Service", e.service),
        ("Type", e.anomaly_type),
        ("Tenant", e.tenant),
        ("Expected", number(e.expected_value)),
        ("Actual", number(e.actual_value)),
        ("Window", window),
    ]
    if e.pattern_template:
        fields.append(("Pattern", f"`{_cut(e.pattern_template, 300)}`"))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(_title(event, e), _HEADER_MAX)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": body}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*{k}*\n{escape(v) if k != 'Pattern' else v}"} for k, v in fields
            ],
        },
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"<{url}|Anomaly {escape(e.id)}> in the API"}],
        },
    ]
    return {"text": f"{text} {url}", "blocks": blocks}


def _line(event: str, e: Episode, api: str) -> tuple[str, str]:
    """One episode in a grouped message: (mrkdwn line, plain-text line)."""
    url = anomaly_url(api, e.id)
    if event == "resolved":
        what = f"{e.anomaly_type} on {e.service} after {duration(episode_duration(e).total_seconds())}"
    else:
        what = (
            f"{e.severity.upper()} {e.anomaly_type} on {e.service}: expected {number(e.expected_value)}, "
            f"actual {number(e.actual_value)}"
        )
    what = _cut(what, _LINE_MAX)
    return f"• <{url}|{escape(what)}>", f"- {escape(what)} {url}"


def _group(batch: Batch, api: str, list_limit: int) -> dict[str, Any]:
    n = len(batch.events)
    shown = batch.events[:list_limit]
    more = n - len(shown)
    verb = {"resolved": "resolved", "escalated": "still open (escalated)"}.get(batch.event, "opened")
    episodes = [ev.episode for ev in batch.events]
    services = sorted({e.service for e in episodes})
    worst = max((e.severity for e in episodes), key=lambda s: ("low", "medium", "high", "critical").index(s))
    title = f"{n} anomalies {verb} on {len(services)} service(s)"
    scope = _cut(", ".join(services), 500)
    lines = [_line(batch.event, ev.episode, api) for ev in shown]
    tail = [f"+{more} more"] if more else []
    icon = _RESOLVED_ICON if batch.event == "resolved" else _ICONS.get(worst, ":white_circle:")
    text = "\n".join(
        [
            escape(f"{title} (highest severity {worst}; route {batch.route}): {scope}"),
            *(p for _, p in lines),
            *tail,
        ]
    )
    body = _cut("\n".join([*(m for m, _ in lines), *(f"_{t}_" for t in tail)]), _SECTION_MAX)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title, _HEADER_MAX)}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"{icon} Highest severity *{worst}*; services: {escape(scope)}",
            },
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": body}},
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"route {escape(batch.route)} · <{api}/api/v1/anomalies|all anomalies>",
                }
            ],
        },
    ]
    return {"text": text, "blocks": blocks}


def build_message(batch: Batch, api_base_url: str, list_limit: int) -> dict[str, Any]:
    """The Slack payload of a batch: one episode's detail, or a storm as one message with a count."""
    api = api_base_url.rstrip("/")
    if batch.event == "escalated":  # shown (and was routed) one severity higher
        batch = replace(
            batch, events=tuple(replace(ev, episode=escalated(ev.episode)) for ev in batch.events)
        )
    if len(batch.events) == 1:
        return _single(batch.event, batch.events[0].episode, api)
    return _group(batch, api, list_limit)
