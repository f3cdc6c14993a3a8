"""Alert routing and pacing, as data: parsed from a YAML mapping and the environment, validated once.

Why a parser of plain mappings: the command reads the file and the environment once in main();
tests build configurations from dicts. Every error names the key that is wrong.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("low", "medium", "high", "critical")
EVENTS = ("opened", "resolved", "escalated")


class AlertsConfigError(ValueError):
    """The alerts configuration is invalid; the message names the key."""


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


@dataclass(frozen=True)
class Match:
    """Empty lists match anything; service and tenant entries are shell globs (`checkout*`)."""

    severity: tuple[str, ...] = ()
    service: tuple[str, ...] = ()
    tenant: tuple[str, ...] = ()
    anomaly_type: tuple[str, ...] = ()

    def matches(self, *, severity: str, service: str, tenant: str, anomaly_type: str) -> bool:
        return (
            (not self.severity or severity in self.severity)
            and (not self.service or any(fnmatch.fnmatchcase(service, p) for p in self.service))
            and (not self.tenant or any(fnmatch.fnmatchcase(tenant, p) for p in self.tenant))
            and (not self.anomaly_type or anomaly_type in self.anomaly_type)
        )


@dataclass(frozen=True)
class Route:
    name: str
    webhook_url: str
    match: Match = field(default_factory=Match)


@dataclass(frozen=True)
class AlertsConfig:
    #: first match wins; the default route (when set) takes what no route matched
    routes: tuple[Route, ...] = ()
    default_route: Route | None = None
    #: events of lower severity are recorded as skipped and never sent
    min_severity: str = "medium"
    #: a route holds its first pending event this long so that a storm becomes one message
    group_wait_seconds: float = 10.0
    #: per route: at most this many Slack messages in any 60 s (Slack allows about 1/s per webhook)
    max_messages_per_minute: int = 6
    #: a grouped message lists this many episodes and says "+K more"
    list_limit: int = 5
    #: episodes whose last change is older than this are not alerted on (first start, long outage)
    lookback_hours: float = 24.0
    #: an event still undelivered after this long is marked failed instead of retried
    max_age_hours: float = 24.0
    #: retry backoff: base * 2^(attempt-1), capped, with full jitter
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 300.0
    #: HTTP timeout of one webhook call
    timeout_seconds: float = 5.0
    api_base_url: str = "http://127.0.0.1:8000"
    #: an episode still open this long after its 'opened' message (and not acknowledged,
    #: resolved or suppressed by an operator) gets one 'escalated' message, routed one severity
    #: higher; 0 turns escalation off
    escalate_after_minutes: float = 30.0

    @property
    def has_webhook(self) -> bool:
        return bool(self.routes) or self.default_route is not None

    def route_named(self, name: str) -> Route | None:
        for r in (*self.routes, *([self.default_route] if self.default_route else [])):
            if r.name == name:
                return r
        return None


def _strings(value: Any, path: str, allowed: Sequence[str] | None = None) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise AlertsConfigError(f"{path}: expected a list of non-empty strings, got {value!r}")
    if allowed is not None:
        bad = [v for v in value if v not in allowed]
        if bad:
            raise AlertsConfigError(f"{path}: unknown value(s) {bad}; allowed: {', '.join(allowed)}")
    return tuple(value)


def _check_keys(doc: Mapping[str, Any], path: str, allowed: set[str]) -> None:
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise AlertsConfigError(f"{path}: unknown key(s) {unknown}; allowed: {', '.join(sorted(allowed))}")


def _url(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise AlertsConfigError(f"{path}: expected an http(s) URL")
    return value


def _number(doc: Mapping[str, Any], key: str, default: float, minimum: float) -> float:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AlertsConfigError(f"{key}: expected a number, got {value!r}")
    if value < minimum:
        raise AlertsConfigError(f"{key}: {value} must be >= {minimum}")
    return float(value)


_MATCH_KEYS = {"severity", "service", "tenant", "anomaly_type"}
_ANOMALY_TYPES = (
    "error_rate_spike",
    "log_volume_spike",
    "log_volume_drop",
    "new_error_pattern",
    "isolation_forest",
)


def _match(doc: Any, path: str) -> Match:
    if doc is None:
        return Match()
    if not isinstance(doc, Mapping):
        raise AlertsConfigError(f"{path}: expected a mapping")
    _check_keys(doc, path, _MATCH_KEYS)
    return Match(
        severity=_strings(doc["severity"], f"{path}.severity", SEVERITIES) if "severity" in doc else (),
        service=_strings(doc["service"], f"{path}.service") if "service" in doc else (),
        tenant=_strings(doc["tenant"], f"{path}.tenant") if "tenant" in doc else (),
        anomaly_type=(
            _strings(doc["anomaly_type"], f"{path}.anomaly_type", _ANOMALY_TYPES)
            if "anomaly_type" in doc
            else ()
        ),
    )


def _route(doc: Any, path: str, default_name: str, fallback_url: str | None) -> Route:
    if not isinstance(doc, Mapping):
        raise AlertsConfigError(f"{path}: expected a mapping with webhook_url")
    _check_keys(doc, path, {"name", "match", "webhook_url"})
    name = doc.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise AlertsConfigError(f"{path}.name: expected a non-empty string")
    url = doc.get("webhook_url", fallback_url)
    if url is None:
        raise AlertsConfigError(f"{path}.webhook_url: missing (and SLACK_WEBHOOK_URL is not set)")
    return Route(
        name=name,
        webhook_url=_url(url, f"{path}.webhook_url"),
        match=_match(doc.get("match"), f"{path}.match"),
    )


_TOP_KEYS = {
    "routes",
    "default_route",
    "min_severity",
    "group_wait_seconds",
    "max_messages_per_minute",
    "list_limit",
    "lookback_hours",
    "max_age_hours",
    "retry_base_seconds",
    "retry_max_seconds",
    "timeout_seconds",
    "escalate_after_minutes",
}


def build_config(
    doc: Mapping[str, Any] | None,
    *,
    slack_webhook_url: str | None = None,
    api_base_url: str | None = None,
) -> AlertsConfig:
    """The configuration from a parsed YAML document and the environment's values.

    SLACK_WEBHOOK_URL is the default route's webhook unless the file names one; with neither a
    file route nor that variable there is nothing to send to (`has_webhook` is False).
    """
    doc = doc or {}
    if not isinstance(doc, Mapping):
        raise AlertsConfigError("the alerts configuration must be a mapping at the top level")
    _check_keys(doc, "alerts config", _TOP_KEYS)
    raw_routes = doc.get("routes", [])
    if not isinstance(raw_routes, list):
        raise AlertsConfigError("routes: expected a list")
    routes = tuple(_route(r, f"routes[{i}]", f"route-{i + 1}", None) for i, r in enumerate(raw_routes))
    default: Route | None = None
    if "default_route" in doc and doc["default_route"] is not None:
        default = _route(doc["default_route"], "default_route", "default", slack_webhook_url)
        if default.match != Match():
            raise AlertsConfigError("default_route.match: the default route takes everything; remove match")
    elif slack_webhook_url:
        default = Route(name="default", webhook_url=_url(slack_webhook_url, "SLACK_WEBHOOK_URL"))
    names = [r.name for r in (*routes, *([default] if default else []))]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise AlertsConfigError(f"route names must be unique; repeated: {dupes}")
    min_sev = doc.get("min_severity", "medium")
    if min_sev not in SEVERITIES:
        raise AlertsConfigError(f"min_severity: {min_sev!r} is not one of {', '.join(SEVERITIES)}")
    limit = doc.get("max_messages_per_minute", 6)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise AlertsConfigError(f"max_messages_per_minute: expected an integer >= 1, got {limit!r}")
    list_limit = doc.get("list_limit", 5)
    if isinstance(list_limit, bool) or not isinstance(list_limit, int) or not 1 <= list_limit <= 20:
        raise AlertsConfigError(f"list_limit: expected an integer from 1 to 20, got {list_limit!r}")
    base = _number(doc, "retry_base_seconds", 2.0, 0.01)
    cap = _number(doc, "retry_max_seconds", 300.0, 0.01)
    if cap < base:
        raise AlertsConfigError(f"retry_max_seconds ({cap}) must be >= retry_base_seconds ({base})")
    return AlertsConfig(
        routes=routes,
        default_route=default,
        min_severity=min_sev,
        group_wait_seconds=_number(doc, "group_wait_seconds", 10.0, 0.0),
        max_messages_per_minute=limit,
        list_limit=list_limit,
        lookback_hours=_number(doc, "lookback_hours", 24.0, 0.01),
        max_age_hours=_number(doc, "max_age_hours", 24.0, 0.01),
        retry_base_seconds=base,
        retry_max_seconds=cap,
        timeout_seconds=_number(doc, "timeout_seconds", 5.0, 0.05),
        escalate_after_minutes=_number(doc, "escalate_after_minutes", 30.0, 0.0),
        api_base_url=(api_base_url or "http://127.0.0.1:8000").rstrip("/"),
    )
