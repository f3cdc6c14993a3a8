"""Which due events leave now, and as which messages: grouping windows and per-route rate limits.

A route's pending events of one kind (opened or resolved) leave together as ONE message once the
oldest has waited `group_wait` (a storm of 500 episodes is one message with a count). A route
sends at most `max_per_minute` messages in any minute; events over the limit are not dropped,
they wait and join the route's next message.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from loganalyzer.alerts.model import PendingEvent

#: opened, then escalated, then resolved: a reader should see an episode start before it ends
_EVENT_ORDER = {"opened": 0, "escalated": 1, "resolved": 2}


@dataclass(frozen=True)
class Batch:
    """One Slack message: the events of one route and kind, oldest first."""

    route: str
    event: str
    events: tuple[PendingEvent, ...]


@dataclass(frozen=True)
class Plan:
    batches: tuple[Batch, ...]
    #: ready, but the route has used its messages for this minute
    rate_limited: tuple[PendingEvent, ...]
    #: inside their grouping window
    waiting: tuple[PendingEvent, ...]


def plan(
    due: Sequence[PendingEvent],
    now: datetime,
    *,
    group_wait: timedelta,
    max_per_minute: int,
    sent_last_minute: Mapping[str, int],
) -> Plan:
    """Split due events into messages to send now, events held by the rate limit, and waiting ones.

    A group whose events were tried before (attempts > 0) has had its wait: it leaves at once.
    Every event of `due` ends up in exactly one of the three parts (tested with Hypothesis).
    """
    groups: dict[tuple[str, str], list[PendingEvent]] = defaultdict(list)
    for e in due:
        groups[(e.route, e.event)].append(e)
    ready: dict[str, list[Batch]] = defaultdict(list)
    waiting: list[PendingEvent] = []
    for (route, event), events in groups.items():
        events.sort(key=lambda e: (e.created_at, e.episode.id))
        if any(e.attempts > 0 for e in events) or events[0].created_at + group_wait <= now:
            ready[route].append(Batch(route, event, tuple(events)))
        else:
            waiting.extend(events)
    batches: list[Batch] = []
    limited: list[PendingEvent] = []
    for route in sorted(ready):
        slots = max(0, max_per_minute - sent_last_minute.get(route, 0))
        for batch in sorted(ready[route], key=lambda b: _EVENT_ORDER.get(b.event, 9)):
            if slots > 0:
                batches.append(batch)
                slots -= 1
            else:
                limited.extend(batch.events)
    return Plan(tuple(batches), tuple(limited), tuple(waiting))
