"""The reads that warm a partition's detection when it has no checkpoint: per-minute counts of
its recent stored events and its services' known templates."""

from __future__ import annotations

import logging
from datetime import timedelta

import psycopg
from psycopg import errors as pgerrors

from loganalyzer.db.minute_counts import minute_rows
from streaming.derived import WarmHistory

log = logging.getLogger(__name__)
_MINUTE = timedelta(minutes=1)
#: templates relearned per service on a warm start: the most recently seen (the miner's own
#: default bound, pattern_max_templates, is 1,000)
MAX_SEED_PATTERNS = 1_000
#: a warm start's known templates, least recently seen first so that the miner's recency order
#: (what it evicts first) holds
_PATTERN_SEEDS_SQL = """
SELECT tenant, service, pattern_id, template, count FROM (
    SELECT p.tenant, p.service, p.pattern_id, p.template, p.count, p.last_seen,
           row_number() OVER (PARTITION BY p.tenant, p.service ORDER BY p.last_seen DESC) AS recency
    FROM log_patterns p
    JOIN unnest(%s::text[], %s::text[]) AS s(tenant, service)
      ON p.tenant = s.tenant AND p.service = s.service
) recent
WHERE recency <= %s
ORDER BY tenant, service, last_seen
"""


def load_history(
    conn: psycopg.Connection, topic: str, partition: int, window: timedelta, budget: timedelta
) -> WarmHistory | None:
    """The partition's stored events of the `window` before its newest one, as per-minute
    counts, for a warm start. None: nothing stored, or the reads ran over `budget` (the
    caller starts cold rather than hold the partition: assignment blocks polling)."""
    try:
        with conn.transaction():
            # at least 1 ms: PostgreSQL reads a statement_timeout of 0 as "no limit"
            ms = str(max(1, int(budget.total_seconds() * 1000)))
            conn.execute("SELECT set_config('statement_timeout', %s, true)", (ms,))
            # the newest record by offset: one backward probe of each day's coordinates index
            row = conn.execute(
                'SELECT "timestamp" FROM logs WHERE kafka_topic = %s AND kafka_partition = %s '
                "ORDER BY kafka_offset DESC LIMIT 1",
                (topic, partition),
            ).fetchone()
            if row is None:
                return None
            newest = row[0]
            # every stored event up to the newest one's minute (and a few out of order after)
            end = newest.replace(second=0, microsecond=0) + 2 * _MINUTE
            since = (newest - window).replace(second=0, microsecond=0)
            rows = minute_rows(conn, since, end, (topic, partition))
            services = sorted({(tenant, service) for tenant, service, *_ in rows})
            patterns = conn.execute(
                _PATTERN_SEEDS_SQL,
                ([t for t, _ in services], [s for _, s in services], MAX_SEED_PATTERNS),
            ).fetchall()
    except pgerrors.QueryCanceled:
        log.warning("partition %d: history read over %s; detection starts cold", partition, budget)
        return None
    return WarmHistory(rows, newest, [(t, s, i, tpl, int(c)) for t, s, i, tpl, c in patterns])
