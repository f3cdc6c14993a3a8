"""Template occurrences counted per service between two drains: what `log_patterns` adds up.

Every mined line is counted here, late ones included (a line whose minute has closed is not in
any window, but it is still an occurrence of its template). The consumer drains the tallies with
each batch and writes them in the batch's transaction, so the counts add up to the stored rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from loganalyzer.detection.service_state import PatternTally, ServiceState
from loganalyzer.patterns import Match

#: (tenant, service, pattern id, template, first seen, last seen, count, errors, sample message)
PatternCount = tuple[str, str, str, str, datetime, datetime, int, int, str]


def tally(state: ServiceState, match: Match, ts: datetime, error: bool, message: str) -> None:
    """Count one occurrence of the line's template."""
    t = state.pattern_tallies.get(match.pattern_id)
    if t is None:
        state.pattern_tallies[match.pattern_id] = PatternTally(match.template, ts, ts, 1, int(error), message)
        return
    if ts > t.last:
        t.last = ts
    elif ts < t.first:
        t.first = ts
    t.count += 1
    t.errors += error


def drain(services: Iterable[ServiceState]) -> list[PatternCount]:
    """The tallies since the last drain, emptied. Ids and templates are the current ones: groups
    merge and generalise while they are counted, and old ids stay valid as aliases."""
    out: list[PatternCount] = []
    for state in services:
        if not state.pattern_tallies:
            continue
        miner = state.miner
        for pid, t in state.pattern_tallies.items():
            current = miner.resolve(pid)
            out.append(
                (
                    state.tenant,
                    state.service,
                    current,
                    miner.template(current) or t.template,
                    t.first,
                    t.last,
                    t.count,
                    t.errors,
                    t.sample,
                )
            )
        state.pattern_tallies = {}
    return out
