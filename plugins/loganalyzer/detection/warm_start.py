"""Baselines rebuilt from stored per-minute counts, for a partition that has no checkpoint.

Without it a partition whose checkpoint is missing or unreadable (detection turned on over an
existing database, a lost checkpoint) would be blind for the warm-up: no rule fires before
`warmup_minutes` are learned, and no new error pattern before the miner's warm-up.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from loganalyzer.detection.config import DetectionConfig
from loganalyzer.detection.features import Counts
from loganalyzer.detection.learning import is_warm, learn
from loganalyzer.detection.service_state import ServiceState
from loganalyzer.detection.windows import WindowStore

#: (tenant, service, minute since the epoch, what it logged then): what warm_start reads
#: (loganalyzer.db.minute_counts.minute_rows gives them from `logs`)
HistoryRow = tuple[str, str, int, Counts]
#: (tenant, service, pattern id, template, count) of a known template (log_patterns)
KnownPattern = tuple[str, str, str, str, int]


def warm_start(
    cfg: DetectionConfig,
    store: WindowStore[ServiceState],
    history: Iterable[HistoryRow],
    open_from: int | None = None,
    patterns: Iterable[KnownPattern] = (),
) -> int:
    """Learn `history` into the store's services; returns the number of services warmed.

    `history` rows are ordered by tenant, service, minute (`minute_rows`). Minutes before
    `open_from` are learned: minutes missing between a service's first and last row are empty
    minutes, the same learning rule as live applies (outliers and silence are not learned), no
    episode is raised, and they count as closed afterwards. Minutes from `open_from` on (the
    newest, whose events may still be coming) become open buckets, which the events read after
    the stored ones complete. Each service's last window is kept so the first live windows are
    complete (durations and message lengths included: the forest's features of those windows
    must not look like an anomaly).

    `patterns` are the warmed services' known templates, least recently seen first: the miner
    relearns each (`TemplateMiner.learn`), and their counts count as messages seen. Without them a
    warmed service would start the new-pattern warm-up over (500 messages blind to new errors)
    and then call every known-but-rare template "new"."""
    n = cfg.window_buckets
    current: ServiceState | None = None
    last = -1
    newest: int | None = None
    seen: set[tuple[str, str]] = set()
    tail: deque[tuple[int, Counts]] = deque(maxlen=n - 1)

    def finish(state: ServiceState) -> None:
        for k, c in tail:
            if k not in state.buckets:
                state.buckets[k] = c
        tail.clear()

    for tenant, service, m, minute in history:
        key = (tenant, service)
        if current is None or key != (current.tenant, current.service):
            if current is not None:
                finish(current)
            if key in seen:
                raise ValueError(f"warm_start: history is not ordered by service ({tenant}/{service} again)")
            seen.add(key)
            current = store.services.get(key) or store.track(key, m)
            current.first_minute = min(current.first_minute, m)
            last = m - 1
        elif m <= last:
            raise ValueError(f"warm_start: minutes of {tenant}/{service} are not increasing at {m}")
        state = current
        if open_from is not None and m >= open_from:  # still open: counted, not learned
            state.buckets[m] = minute
            state.last_minute = max(state.last_minute, m)
            store.max_minute = m if store.max_minute is None else max(store.max_minute, m)
            last = m
            continue
        for gap in range(last + 1, m):  # empty minutes (as the live engine would see them)
            learn(cfg, state, gap, Counts(), state.baseline.expected(gap, cfg.baseline), is_warm(cfg, state))
            tail.append((gap, Counts()))
        learn(cfg, state, m, minute, state.baseline.expected(m, cfg.baseline), is_warm(cfg, state))
        tail.append((m, minute))
        state.last_minute = max(state.last_minute, m)
        last = m
        newest = m if newest is None else max(newest, m)
    if current is not None:
        finish(current)
    if newest is not None:
        store.closed_upto = max(store.closed_upto or newest + 1, newest + 1)
        store.max_minute = max(store.max_minute or newest, newest)
        # recency order for eviction: least recently active first
        for key, _ in sorted(store.services.items(), key=lambda kv: kv[1].last_minute):
            store.services.move_to_end(key)
        for state in store.services.values():
            state.prune(store.closed_upto - n + 1)
    for tenant, service, pattern_id, template, count in patterns:
        known = store.services.get((tenant, service))
        if known is not None and (tenant, service) in seen:
            known.miner.learn(pattern_id, template, count)
            known.messages += count
    return len(seen)
