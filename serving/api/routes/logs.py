"""Full-text log search: newest first, keyset pages, highlighted.

How a page is found: the time span is cut into segments newest first (`segments`), never across
midnight, each with the way its lines are searched, and one statement, `search_log_page`
(sql/024), walks them inside PostgreSQL in growing windows (1 minute, then 4, 16, ...) until the
page is full or the time budget is spent. A request thus holds its pooled connection for one
round trip: with 32 callers on 4 connections in one event loop, each further statement of a
page cost its wait for the loop again. Closed days that maintenance has rebuilt for search
(sql/014) answer through their GIN on (service, message_tsv). Today's partition (and a closed day
not rebuilt yet) has no stored search column on purpose (ingestion pays nothing for search);
each of its hours that has closed gets its own partial GIN on to_tsvector, and the open hour's
whole 5-minute steps a prefix GIN (loganalyzer.db.search_hours, `loganalyzer db index-hours`,
run every 5 minutes), each asked in one query for the whole hour (or prefix). The rest of the
open hour (and an hour not indexed yet) is read through the BRIN on timestamp, parsing each
message that passes the other filters, after a cheap substring test per required word: a lexeme
of the 'simple' configuration is a lowercased token of the line, so a matching line contains
each required lexeme as a substring of its text lowered by the C collation (ASCII letters only,
several times cheaper than the locale's lower() and ~10x cheaper than to_tsvector); a line with
any non-ASCII character skips the test and is decided by to_tsvector alone, so the lines found
are exactly the same. There a window that found lines sizes the next from the density it saw;
queries with OR/NOT (no substring test) read at most 5 minutes per window. Once the walk has
spent API_SEARCH_BUDGET_MS it answers the rows found so far with a cursor that continues where
it stopped (a page may then hold fewer than `limit` rows and still have a next_cursor), so a
rare word over today's lines takes several pages instead of one long request. ts_headline runs
on the returned rows only.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from psycopg import sql

from loganalyzer.db.search_hours import INDEX_NAMES, hour_of_index, prefix_of_index
from serving.api import cursor as cursors
from serving.api.deps import CurrentPrincipal, DbDep, Row, SettingsDep, tenant_scope
from serving.api.pages import cut
from serving.api.render import page
from serving.api.timeutil import span
from serving.models.logs import LogPage

router = APIRouter(prefix="/api/v1/logs", tags=["logs"])

DEFAULT_SPAN = timedelta(days=7)
#: the earliest instant a cursor can name: "every line before `t`" is the cursor (t, this, ...)
BEFORE_EVERYTHING_AT = (-(2**31), -(2**63), "")
HEADLINE_OPTIONS = "StartSel=<b>, StopSel=</b>, HighlightAll=true"


HEADLINE = sql.SQL("ts_headline('simple', s.message, websearch_to_tsquery('simple', %s), %s)")
READY_CACHE_SECONDS = 30.0
COLUMNS = sql.SQL(
    's."timestamp", s.tenant, s.service, s.host, s.level, s.message, s.kafka_partition, '
    "s.kafka_offset, s.kafka_topic"
)
#: the whole walk of one page, in one statement (sql/024_search_log_page.sql): segments, the
#: words, their substring patterns, tenant, service, level, the cursor, rows wanted, budget
WALK = sql.SQL(
    "search_log_page(%s::timestamptz[], %s::timestamptz[], %s::text[], %s::text, %s::text[], "
    "%s::text, %s::text, %s::text, %s::timestamptz, %s::integer, %s::bigint, %s::text, %s, %s) "
    "WITH ORDINALITY AS s"
)
#: a tsquery's text is quoted lexemes joined by operators: these operators require every lexeme
_QUOTED_LEXEME = re.compile(r"'((?:[^']|'')*)'")
_AND_ONLY = re.compile(r"^(?:\s|&|<->|<\d+>|\(|\))*$")


def required_lexemes(tsquery_text: str) -> tuple[str, ...]:
    """The lexemes every matching line holds, from the text of a tsquery (`'a' & 'b' <-> 'c'`):
    all of them when the query only ANDs words and phrases, none (no shortcut) when it has OR,
    NOT, prefixes or weights."""
    if not _AND_ONLY.match(_QUOTED_LEXEME.sub("", tsquery_text)):
        return ()
    return tuple(m.replace("''", "'") for m in _QUOTED_LEXEME.findall(tsquery_text))


def like_pattern(lexeme: str) -> str:
    escaped = lexeme.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class Searchable:
    """What PostgreSQL made of a search text: whether it has words, and the words every match holds."""

    ok: bool
    lexemes: tuple[str, ...]


@dataclass(frozen=True)
class Partitions:
    """Which days `logs` holds, and which of them are rebuilt for search (checked every 30 s)."""

    first: date | None
    last: date | None
    search_ready: frozenset[date]
    #: hours of days not rebuilt yet that have their own GIN (loganalyzer.db.search_hours)
    hours_ready: frozenset[datetime] = frozenset()
    #: hours (the open one) whose first minutes have a GIN: hour -> end of what it covers
    prefixes: Mapping[datetime, datetime] = field(default_factory=dict)


async def partitions(request: Request, db: DbDep) -> Partitions:
    cached: tuple[float, Partitions] | None = getattr(request.app.state, "log_partitions", None)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    cur = await db.execute(
        "SELECT to_date(substr(c.relname, 7, 8), 'YYYYMMDD') AS day, "
        "to_regclass(c.relname || '_search_gin') IS NOT NULL AS ready "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'logs'::regclass AND c.relname ~ '^logs_p[0-9]{8}$'"
    )
    rows = await cur.fetchall()
    cur = await db.execute(
        "SELECT ic.relname AS name FROM pg_inherits i "
        "JOIN pg_index ix ON ix.indrelid = i.inhrelid JOIN pg_class ic ON ic.oid = ix.indexrelid "
        "WHERE i.inhparent = 'logs'::regclass AND ix.indisvalid AND ic.relname ~ %s",
        (INDEX_NAMES,),
    )
    names = [str(r["name"]) for r in await cur.fetchall()]
    hours = [hour_of_index(n) for n in names]
    prefixes: dict[datetime, datetime] = {}
    for n in names:
        if (span := prefix_of_index(n)) is not None:
            prefixes[span[0]] = max(prefixes.get(span[0], span[1]), span[1])
    days = [r["day"] for r in rows if isinstance(r["day"], date)]
    found = Partitions(
        min(days, default=None),
        max(days, default=None),
        frozenset(r["day"] for r in rows if r["ready"] and isinstance(r["day"], date)),
        frozenset(h for h in hours if h is not None),
        prefixes,
    )
    request.app.state.log_partitions = (time.monotonic() + READY_CACHE_SECONDS, found)
    return found


async def _searchable(request: Request, db: DbDep, text: str) -> Searchable:
    """Whether `text` holds a word to search for (`"!!"` does not), and the lexemes every match
    holds. PostgreSQL parses the websearch syntax; the answer is remembered per text, so a
    repeated search skips the trip."""
    known_texts: dict[str, Searchable] = request.app.state.searchable_texts
    known = known_texts.get(text)
    if known is None:
        cur = await db.execute(
            "SELECT numnode(q) > 0 AS ok, q::text AS query FROM websearch_to_tsquery('simple', %s) AS q",
            (text,),
        )
        row = await cur.fetchone()
        ok = bool(row and row["ok"])
        known = Searchable(ok, required_lexemes(str(row["query"])) if row and ok else ())
        if len(known_texts) > 10_000:
            known_texts.clear()
        known_texts[text] = known
    return known


@dataclass(frozen=True)
class Segment:
    """A part of the searched span, [lower, upper), and how its lines are searched: 's' a closed
    day rebuilt for search (its stored column and GIN), 'h' an hour or an open hour's first
    minutes with their own GIN, 'p' lines without a search index (parsed)."""

    lower: datetime
    upper: datetime
    kind: str


def segments(start: datetime, upper: datetime, parts: Partitions) -> list[Segment]:
    """[start, upper) cut newest first as the search reads it: never across midnight, a rebuilt
    day in one piece, an indexed hour (or prefix) in one piece, and consecutive unindexed hours
    of a day together (the walk sizes its windows there)."""
    out: list[Segment] = []
    start, hi = start.astimezone(UTC), upper.astimezone(UTC)
    while hi > start:
        last_instant = hi - timedelta(microseconds=1)
        day = last_instant.date()
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        hour = last_instant.replace(minute=0, second=0, microsecond=0)
        if day in parts.search_ready:
            lo, kind = max(start, midnight), "s"
        elif hour in parts.hours_ready or last_instant < parts.prefixes.get(hour, hour):
            lo, kind = max(start, hour), "h"
        else:
            lo, kind = max(start, parts.prefixes.get(hour, hour)), "p"
        if (
            kind == "p"
            and out
            and out[-1].kind == "p"
            and out[-1].lower == hi
            and hi != midnight + timedelta(days=1)
        ):
            out[-1] = Segment(lo, out[-1].upper, "p")
        else:
            out.append(Segment(lo, hi, kind))
        hi = lo
    return out


def _minus(t: datetime, d: timedelta) -> datetime:
    try:
        return t - d
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


class Level(StrEnum):
    TRACE = "TRACE"
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"
    FATAL = "FATAL"


@router.get("/search", response_model=LogPage, summary="Search stored log lines (full text), newest first")
async def search(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    q: Annotated[
        str | None,
        Query(
            max_length=500,
            description='Words to find (web-search syntax: `timeout -retry`, `"connection refused"`, '
            "`a or b`); words are matched whole, case-insensitively. "
            "Omit to list lines by the other filters.",
        ),
    ] = None,
    service: Annotated[str | None, Query(max_length=200, description="Only this service")] = None,
    level: Annotated[Level | None, Query(description="Only this level")] = None,
    from_: Annotated[
        datetime | None,
        Query(alias="from", description="Lines at or after this time (default: 7 days before `to`)"),
    ] = None,
    to: Annotated[
        datetime | None,
        Query(
            description="Lines before this time (default: now; pass it for events stamped ahead of the clock)"
        ),
    ] = None,
    tenant: Annotated[
        str | None, Query(max_length=200, description="Admin keys only: only this tenant")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=1000, description="next_cursor of the previous page")
    ] = None,
) -> Any:
    """Lines newest first, in keyset pages; with `q`, only lines containing the words, each with a
    `highlight`. Days closed and rebuilt by `loganalyzer db maintain` answer from a GIN index;
    today's lines are read hour by hour, so narrow `from`/`service` for rare words over today."""
    start, end = span(from_, to)
    # default: now; events stamped ahead of the clock (the contract allows 2 hours) need an explicit `to`
    end = end or datetime.now(UTC) + timedelta(minutes=1)
    start = start or _minus(end, DEFAULT_SPAN)
    if start >= end:
        raise HTTPException(422, "'from' must be before 'to'")
    scope = tenant_scope(principal, tenant)
    query_text = (q or "").strip()
    lexemes: tuple[str, ...] = ()
    if query_text:
        searchable = await _searchable(request, db, query_text)
        if not searchable.ok:
            raise HTTPException(422, f"q={q!r} has no searchable words (only punctuation?)")
        lexemes = searchable.lexemes
    upper = end
    after: tuple[datetime, int, int, str] | None = None
    if cursor is not None:
        c_ts, c_part, c_off, c_topic = cursors.decode(cursor, (datetime, int, int, str))
        assert isinstance(c_ts, datetime) and isinstance(c_part, int) and isinstance(c_off, int)
        after = (c_ts, c_part, c_off, str(c_topic))
        upper = min(end, c_ts + timedelta(microseconds=1)) if c_ts < datetime.max.replace(tzinfo=UTC) else end

    parts = await partitions(request, db)
    if parts.first is None or parts.last is None:
        return page([], limit, None)
    # no partition, no rows: the walk never leaves the days that exist
    start = max(start, datetime(parts.first.year, parts.first.month, parts.first.day, tzinfo=UTC))
    after_last = parts.last + timedelta(days=1)
    upper = min(upper, datetime(after_last.year, after_last.month, after_last.day, tzinfo=UTC))
    cut_span = segments(start, upper, parts)
    if not cut_span:
        return page([], limit, None)
    headline_args = [query_text, HEADLINE_OPTIONS] if query_text else []
    highlight = HEADLINE if query_text else sql.SQL("NULL::text")
    cur = await db.execute(
        sql.SQL("SELECT {}, s.resume_before, {} AS highlight FROM {} ORDER BY s.ordinality").format(
            COLUMNS, highlight, WALK
        ),
        [
            *headline_args,
            [s.lower for s in cut_span],
            [s.upper for s in cut_span],
            [s.kind for s in cut_span],
            query_text or None,
            [like_pattern(w) for w in lexemes],
            scope,
            service,
            level.value if level is not None else None,
            *(after if after is not None else (None, None, None, None)),
            limit + 1,
            settings.search_budget_ms,
        ],
    )
    rows: list[Row] = await cur.fetchall()
    stopped_at: datetime | None = None
    if rows and rows[-1]["message"] is None:
        resume = rows.pop()["resume_before"]
        assert isinstance(resume, datetime)
        stopped_at = resume
    for r in rows:
        del r["resume_before"]

    rows, next_cursor = cut(
        rows, limit, lambda r: (r["timestamp"], r["kafka_partition"], r["kafka_offset"], r["kafka_topic"])
    )
    if stopped_at is not None and next_cursor is None:
        next_cursor = cursors.encode(stopped_at, *BEFORE_EVERYTHING_AT)
    for r in rows:
        del r["kafka_topic"]
    return page(rows, limit, next_cursor)
