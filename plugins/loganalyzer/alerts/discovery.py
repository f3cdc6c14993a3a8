"""Which delivery rows a newly seen episode state needs: pure, so that routing is testable alone."""

from __future__ import annotations

from dataclasses import dataclass, replace

from loganalyzer.alerts.config import SEVERITIES, AlertsConfig
from loganalyzer.alerts.model import Episode
from loganalyzer.alerts.routing import route_for


@dataclass(frozen=True)
class Candidate:
    """An episode read from `anomalies`, with what alert_deliveries already holds for it."""

    episode: Episode
    #: (route, state) of its 'opened' row, None when there is none yet
    opened: tuple[str | None, str] | None
    has_resolved: bool


@dataclass(frozen=True)
class NewDelivery:
    anomaly_id: str
    event: str
    #: None: no route takes it (below min_severity, no default route): recorded as 'skipped'
    route: str | None

    @property
    def state(self) -> str:
        return "pending" if self.route is not None else "skipped"


def new_deliveries(candidates: list[Candidate], config: AlertsConfig) -> list[NewDelivery]:
    """An 'opened' row for each episode not seen before; a 'resolved' row once it resolves.

    The resolved event follows its opened event's route (same channel, also when severity changed
    meanwhile), and is skipped when the opened one was. An episode first seen already resolved
    (shorter than a poll, or resolved while alerts were stopped) gets both: the opened message
    tells what happened, the resolved one that it is over.
    """
    out: list[NewDelivery] = []
    for c in candidates:
        ep = c.episode
        if c.opened is None:
            route = route_for(ep, config)
            opened_route = route.name if route else None
            out.append(NewDelivery(ep.id, "opened", opened_route))
        else:
            opened_route = c.opened[0] if c.opened[1] != "skipped" else None
        if ep.status == "resolved" and not c.has_resolved:
            out.append(NewDelivery(ep.id, "resolved", opened_route))
    return out


def escalated(episode: Episode) -> Episode:
    """The episode as its escalation shows and routes it: one severity higher (critical stays)."""
    i = SEVERITIES.index(episode.severity) if episode.severity in SEVERITIES else 0
    return replace(episode, severity=SEVERITIES[min(i + 1, len(SEVERITIES) - 1)])


def escalations(episodes: list[Episode], config: AlertsConfig) -> list[NewDelivery]:
    """One 'escalated' row per episode that is still open past the escalation delay (the store
    picks them: opened message sent long enough ago, no operator action, no escalation yet).

    Routed like an opening of one severity higher, so that a route for critical (an on-call
    channel) takes what stayed high too long; skipped when no route takes even that."""
    out: list[NewDelivery] = []
    for ep in episodes:
        if ep.status != "open":
            continue
        route = route_for(escalated(ep), config)
        out.append(NewDelivery(ep.id, "escalated", route.name if route else None))
    return out
