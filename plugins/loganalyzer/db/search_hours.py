"""Full-text search over today's closed hours: one small partial GIN per hour, built once.

Why: closed days are rebuilt with a stored tsvector and a GIN (sql/014), but until midnight a
search over today had no index and parsed every row it passed (p99 1.2-2.7 s at 10M logs). A
GIN that ingestion keeps up to date cuts COPY throughput by half, so today's partition gets,
for each hour that has closed, an index

    CREATE INDEX CONCURRENTLY logs_pYYYYMMDD_search_hHH ON logs_pYYYYMMDD
        USING gin (service, to_tsvector('simple', message))
        WHERE "timestamp" >= 'HH:00' AND "timestamp" < 'HH+1:00'

Why an expression index and not the stored column: filling message_tsv means an UPDATE of
every row of the hour. Ingested pages are full, so no update can be HOT: each row gets a new
version on another page plus a new entry in every index of the partition, the hour's heap is
written twice (the partition grows by the hour's size until VACUUM), and the space VACUUM frees
is then refilled by new rows, which scatters timestamps over old pages and widens every range
of the BRIN on timestamp. An expression index reads the heap once and writes nothing to it.
Its known trap (a lossy bitmap recomputing to_tsvector per row when ANDed with the BRIN) is
avoided by how the API queries it: one query per whole hour, so the BRIN narrows nothing.

Why one index per hour and not one growing index: each build reads one hour (seconds), not the
whole day so far (up to ~2 min of CPU per rebuild at 10M rows a day); a row inserted with a
timestamp in an indexed hour (late) is added to that hour's index by PostgreSQL itself, and a
row of the open hour pays only the predicate checks. The day's rebuild at close (sql/014)
replaces the partition and with it these indexes. What it costs: PostgreSQL checks every
partial index's predicate for every inserted row; with 22 hour indexes a COPY of open-hour rows
ran at 0.75 of the rate without them (bench/bench_search_hours.py), so this is opt-in
(`loganalyzer db index-hours`) until the hours are merged into fewer indexes.

The open hour: its whole 5-minute steps so far get one "prefix" index [HH:00, HH:MM), built
again a step longer on each run (run it every 5 minutes) and dropped once the hour has its own
index, so that a search parses at most a step plus the time between runs line by line. It is one
more partial index for the predicate checks; each rebuild reads at most the hour so far.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

#: an hour is indexed as soon as it has closed: a row that arrives late for an indexed hour is
#: added to that hour's index by PostgreSQL itself, so waiting for stragglers buys nothing, and
#: each minute of waiting is a minute of lines that a search parses one by one (a no-match
#: search paid for 24 such minutes in one bench_api run with a 5-minute grace)
GRACE = timedelta(0)
HOUR_INDEX = re.compile(r"^(logs_p\d{8})_search_h(\d{2})$")
#: the open hour is indexed up to its last whole step: one "prefix" index per hour, built again
#: one step longer each time (the shorter one is then dropped), so that what a search parses
#: line by line is at most a step plus the time between two runs, not up to an hour
PREFIX_STEP = timedelta(minutes=5)
PREFIX_INDEX = re.compile(r"^(logs_p\d{8})_search_h(\d{2})_m(\d{2})$")
#: both kinds of names, as a PostgreSQL regular expression
INDEX_NAMES = "_search_h[0-9]{2}(_m[0-9]{2})?$"


@dataclass(frozen=True)
class HourIndex:
    partition: str
    hour: datetime

    @property
    def name(self) -> str:
        return f"{self.partition}_search_h{self.hour:%H}"


def partition_day_start(partition: str) -> datetime:
    return datetime.strptime(partition[6:14], "%Y%m%d").replace(tzinfo=UTC)


def hour_of_index(name: str) -> datetime | None:
    """The hour an index named by this module covers (None for any other name)."""
    m = HOUR_INDEX.match(name)
    if m is None:
        return None
    return partition_day_start(m.group(1)) + timedelta(hours=int(m.group(2)))


@dataclass(frozen=True)
class PrefixIndex:
    """The open hour's first minutes, [hour, end): a partial GIN like an hour's."""

    partition: str
    hour: datetime
    end: datetime

    @property
    def name(self) -> str:
        return f"{self.partition}_search_h{self.hour:%H}_m{self.end.minute:02d}"


def prefix_of_index(name: str) -> tuple[datetime, datetime] | None:
    """The span [hour, end) a prefix index named by this module covers (None for any other name)."""
    m = PREFIX_INDEX.match(name)
    if m is None:
        return None
    hour = partition_day_start(m.group(1)) + timedelta(hours=int(m.group(2)))
    return hour, hour + timedelta(minutes=int(m.group(3)))


def prefix_to_index(now: datetime, unrebuilt: Iterable[str], valid: Iterable[str]) -> PrefixIndex | None:
    """The open hour's whole steps so far, unless an index of that name is there already (or the
    hour has no whole step yet, or its day was rebuilt)."""
    now = now.astimezone(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    end = hour + (now - hour) // PREFIX_STEP * PREFIX_STEP
    part = f"logs_p{hour:%Y%m%d}"
    if end == hour or part not in set(unrebuilt):
        return None
    target = PrefixIndex(part, hour, end)
    return None if target.name in set(valid) else target


def superseded_prefixes(names: Iterable[str]) -> list[str]:
    """Prefix indexes no search needs: of an hour that has its own index, or shorter than
    another prefix of the same hour."""
    names = list(names)
    hours = {hour_of_index(n) for n in names} - {None}
    longest: dict[datetime, datetime] = {}
    for n in names:
        if (span := prefix_of_index(n)) is not None:
            longest[span[0]] = max(longest.get(span[0], span[1]), span[1])
    return [
        n
        for n in names
        if (span := prefix_of_index(n)) is not None and (span[0] in hours or span[1] < longest[span[0]])
    ]


def hours_to_index(now: datetime, unrebuilt: Iterable[str], valid: Iterable[str]) -> list[HourIndex]:
    """Hours (newest first) of today's and yesterday's partitions not rebuilt for search yet
    that have closed at least GRACE ago and have no valid hour index. Older days are the daily
    rebuild's (`loganalyzer db maintain`): indexing them hour by hour would cost more than it."""
    done = set(valid)
    todo: list[HourIndex] = []
    yesterday = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    for part in unrebuilt:
        day = partition_day_start(part)
        if day < yesterday:
            continue
        for h in range(24):
            hour = day + timedelta(hours=h)
            target = HourIndex(part, hour)
            if hour + timedelta(hours=1) + GRACE <= now and target.name not in done:
                todo.append(target)
    return sorted(todo, key=lambda t: t.hour, reverse=True)


_STATE = """
SELECT c.relname AS part,
       to_regclass(c.relname || '_search_gin') IS NOT NULL AS rebuilt,
       coalesce(array_agg(ic.relname) FILTER (WHERE ix.indisvalid AND ic.relname ~ %(names)s), '{}') AS valid,
       coalesce(array_agg(ic.relname) FILTER (WHERE NOT ix.indisvalid AND ic.relname ~ %(names)s), '{}')
           AS invalid
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
LEFT JOIN pg_index ix ON ix.indrelid = c.oid
LEFT JOIN pg_class ic ON ic.oid = ix.indexrelid
WHERE i.inhparent = 'logs'::regclass AND c.relname ~ '^logs_p[0-9]{8}$'
GROUP BY c.relname
"""


def index_closed_hours(conn: psycopg.Connection, now: datetime) -> list[str]:
    """Build the missing hour indexes (CONCURRENTLY: ingestion is never blocked), newest hour
    first; an index a failed build left invalid is dropped and built again. `conn` must be in
    autocommit mode. Returns the names built."""
    if not conn.autocommit:
        raise ValueError("index_closed_hours needs an autocommit connection (CREATE INDEX CONCURRENTLY)")
    rows = conn.execute(_STATE, {"names": INDEX_NAMES}).fetchall()
    unrebuilt = [r[0] for r in rows if not r[1]]
    valid = [name for r in rows for name in r[2]]
    for r in rows:
        for name in r[3]:
            conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(name)))
    built: list[str] = []
    spans = [
        (t.name, t.partition, t.hour, t.hour + timedelta(hours=1))
        for t in hours_to_index(now, unrebuilt, valid)
    ]
    if (prefix := prefix_to_index(now, unrebuilt, valid)) is not None:
        spans.append((prefix.name, prefix.partition, prefix.hour, prefix.end))
    for name, partition, lo, hi in spans:
        conn.execute(
            sql.SQL(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} "
                "USING gin (service, to_tsvector('simple'::regconfig, message)) "
                'WHERE "timestamp" >= {} AND "timestamp" < {}'
            ).format(
                sql.Identifier(name),
                sql.Identifier(partition),
                sql.Literal(lo.isoformat()),
                sql.Literal(hi.isoformat()),
            )
        )
        built.append(name)
    # a shorter prefix is dropped only once what replaces it is built and valid
    for name in superseded_prefixes([*valid, *built]):
        conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(name)))
    return built
