"""Which route (if any) an episode's alerts go to: by severity, service, tenant and type."""

from __future__ import annotations

from loganalyzer.alerts.config import AlertsConfig, Route, severity_rank
from loganalyzer.alerts.model import Episode


def route_for(episode: Episode, config: AlertsConfig) -> Route | None:
    """The first matching route, else the default route; None below min_severity or unrouted.

    Why first match wins: an operator reads the list top-down, like firewall rules, and a
    specific route (checkout, critical) placed above a broad one stays specific.
    """
    if severity_rank(episode.severity) < severity_rank(config.min_severity):
        return None
    for route in config.routes:
        if route.match.matches(
            severity=episode.severity,
            service=episode.service,
            tenant=episode.tenant,
            anomaly_type=episode.anomaly_type,
        ):
            return route
    return config.default_route
