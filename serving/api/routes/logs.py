"""Full-text log search: newest first, keyset pages, highlighted.

How a page is found: the time span is walked backwards from `to` in growing windows (1 minute,
then 4, 16, ...; never across midnight, so each query reads one daily partition) until the page
is full. A common term fills the page from the newest minutes alone; a rare one widens the
window quickly. Closed days that maintenance has rebuilt for search (sql/014) answer through
their GIN on (service, message_tsv); today's partition (and a closed day not rebuilt yet) has no
stored search column on purpose (ingestion pays nothing for search); each of its hours that has
closed gets its own partial GIN on to_tsvector, and the open hour's whole 10-minute steps a
prefix GIN (loganalyzer.db.search_hours, `loganalyzer db index-hours`, run every 10 minutes),
answered by one query per whole hour, several hours in one statement (a branch each) as the
window grows. The rest of the open hour (and an hour not indexed yet) is read through the BRIN
on timestamp, parsing each message that passes the other filters, after a cheap substring test
per required word (CONTAINS_WORD: exact, see there); there the window grows to the hour (to
UNINDEXED_WINDOW for queries with OR/NOT, which get no substring test) and is sized from the
density seen. Once the walk has spent API_SEARCH_BUDGET_MS it stops and answers
the rows found so far with a cursor that continues where it stopped (a page may then hold fewer
than `limit` rows and still have a next_cursor). A request's cost stays bounded and 32 callers
keep their share of the pool; a rare word over today's lines takes several pages instead of one
long request. ts_headline runs on the returned rows only (PostgreSQL evaluates it after the
LIMIT: it re-parses each message).
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
FIRST_WINDOW = timedelta(minutes=1)
#: the widest window read from a partition without a search index (today's)
UNINDEXED_WINDOW = timedelta(minutes=5)
#: the earliest instant a cursor can name: "every line before `t`" is the cursor (t, this, ...)
BEFORE_EVERYTHING_AT = (-(2**31), -(2**63), "")
HEADLINE_OPTIONS = "StartSel=<b>, StopSel=</b>, HighlightAll=true"


HEADLINE = sql.SQL("ts_headline('simple', message, websearch_to_tsquery('simple', %s), %s)")
MATCH_STORED = sql.SQL("message_tsv @@ websearch_to_tsquery('simple', %s)")
MATCH_PARSED = sql.SQL("to_tsvector('simple', message) @@ websearch_to_tsquery('simple', %s)")
READY_CACHE_SECONDS = 30.0
COLUMNS = sql.SQL(
    '"timestamp", tenant, service, host, level, message, kafka_partition, kafka_offset, kafka_topic'
)
IN_SPAN = sql.SQL('"timestamp" >= %s AND "timestamp" < %s')
NEWEST_FIRST = sql.SQL('"timestamp" DESC, kafka_partition DESC, kafka_offset DESC, kafka_topic DESC')
#: one cheap necessary condition per word, tried before to_tsvector on rows without a search
#: index: a lexeme of the 'simple' configuration is a lowercased token of the line, so a line
#: that matches contains each required lexeme as a substring of its lowercased text.
#: lower() under the C collation lowers ASCII letters only (several times cheaper than the
#: locale's lower() and ~10x cheaper than to_tsvector); a line with any non-ASCII character
#: skips the shortcut and is decided by to_tsvector alone, so the result is exactly the same.
CONTAINS_WORD = sql.SQL('lower(message COLLATE "C") LIKE %s')
NON_ASCII = sql.SQL("octet_length(message) <> char_length(message)")
#: a tsquery's text is quoted lexemes joined by operators: these operators require every lexeme
_QUOTED_LEXEME = re.compile(r"'((?:[^']|'')*)'")
_AND_ONLY = re.compile(r"^(?:\s|&|<->|<\d+>|\(|\))*$")
#: the narrowest window the adaptive walk reads from an unindexed hour
MIN_UNINDEXED_WINDOW = timedelta(seconds=10)


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
    where: list[sql.Composable] = []
    args: list[Any] = []
    scope = tenant_scope(principal, tenant)
    if scope is not None:
        where.append(sql.SQL("tenant = %s"))
        args.append(scope)
    if service is not None:
        where.append(sql.SQL("service = %s"))
        args.append(service)
    if level is not None:
        where.append(sql.SQL("level = %s"))
        args.append(level.value)
    query_text = (q or "").strip()
    lexemes: tuple[str, ...] = ()
    if query_text:
        searchable = await _searchable(request, db, query_text)
        if not searchable.ok:
            raise HTTPException(422, f"q={q!r} has no searchable words (only punctuation?)")
        lexemes = searchable.lexemes
    prefilter: sql.Composable | None = None
    if lexemes:
        prefilter = (
            sql.SQL("(")
            + NON_ASCII
            + sql.SQL(" OR (")
            + sql.SQL(" AND ").join([CONTAINS_WORD] * len(lexemes))
            + sql.SQL("))")
        )
    upper = end
    if cursor is not None:
        c_ts, c_part, c_off, c_topic = cursors.decode(cursor, (datetime, int, int, str))
        assert isinstance(c_ts, datetime)
        where.append(sql.SQL('("timestamp", kafka_partition, kafka_offset, kafka_topic) < (%s, %s, %s, %s)'))
        args += [c_ts, c_part, c_off, c_topic]
        upper = min(end, c_ts + timedelta(microseconds=1)) if c_ts < datetime.max.replace(tzinfo=UTC) else end

    parts = await partitions(request, db)
    if parts.first is None or parts.last is None:
        return page([], limit, None)
    # no partition, no rows: the walk never leaves the days that exist
    start = max(start, datetime(parts.first.year, parts.first.month, parts.first.day, tzinfo=UTC))
    after_last = parts.last + timedelta(days=1)
    upper = min(upper, datetime(after_last.year, after_last.month, after_last.day, tzinfo=UTC))
    rows: list[Row] = []
    window = FIRST_WINDOW
    deadline = time.monotonic() + settings.search_budget_ms / 1000
    stopped_at: datetime | None = None
    while upper > start and len(rows) <= limit:
        if time.monotonic() > deadline:
            stopped_at = upper
            break
        rows_wanted = limit + 1 - len(rows)
        last_instant = (
            upper - timedelta(microseconds=1) if upper > datetime.min.replace(tzinfo=UTC) else upper
        )
        day = last_instant.astimezone(UTC).date()
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        indexed = day in parts.search_ready
        hour = last_instant.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        # an hour with its own GIN, or the part of the open hour its prefix GIN covers
        hour_indexed = not indexed and (
            hour in parts.hours_ready or last_instant < parts.prefixes.get(hour, hour)
        )
        parsed = not indexed and not hour_indexed
        hours = [hour]
        if not parsed and not indexed:
            # each hour's own GIN answers for the whole (rest of the) hour, so that the BRIN on
            # timestamp has nothing to narrow and the planner does not AND them; as the window
            # grows, several indexed hours go in one statement (a branch per hour), so that a
            # rare word crosses a day of hour indexes in a few round trips instead of 23
            while (
                len(hours) < window // timedelta(hours=1)
                and hours[-1] - timedelta(hours=1) in parts.hours_ready
                and hours[-1] > max(start, midnight)
            ):
                hours.append(hours[-1] - timedelta(hours=1))
            lower = max(start, hours[-1])
        else:
            # lines read through the BRIN and parsed: with the words' substring shortcut a
            # line costs little, so the window may grow to the hour; without it (OR, NOT), a
            # window parses at most UNINDEXED_WINDOW of lines
            width = window if indexed or prefilter is not None else min(window, UNINDEXED_WINDOW)
            lower = max(start, _minus(upper, width), midnight)
            if parsed and hour - timedelta(hours=1) in parts.hours_ready:
                # the open hour never shares a query with the indexed hour before it
                lower = max(lower, hour)
            if parsed and hour in parts.prefixes:
                # nor with its own indexed first minutes
                lower = max(lower, parts.prefixes[hour])
        conditions = list(where)
        window_args: list[Any] = []
        if query_text:
            if parsed and prefilter is not None:
                conditions.append(prefilter)
                window_args += [like_pattern(w) for w in lexemes]
            conditions.append(MATCH_STORED if indexed else MATCH_PARSED)
            window_args.append(query_text)
        filters = sql.SQL("").join(sql.SQL(" AND ") + w for w in conditions)
        headline_args = [query_text, HEADLINE_OPTIONS] if query_text else []
        highlight = HEADLINE if query_text else sql.SQL("NULL::text")
        if len(hours) == 1:
            query = sql.SQL("SELECT {}, {} AS highlight FROM logs WHERE {} {} ORDER BY {} LIMIT %s").format(
                COLUMNS, highlight, IN_SPAN, filters, NEWEST_FIRST
            )
            query_args = [*headline_args, lower, upper, *args, *window_args, rows_wanted]
        else:
            branch = sql.SQL("(SELECT {} FROM logs WHERE {} {} ORDER BY {} LIMIT %s)").format(
                COLUMNS, IN_SPAN, filters, NEWEST_FIRST
            )
            query = sql.SQL("SELECT {}, {} AS highlight FROM ({}) AS u ORDER BY {} LIMIT %s").format(
                COLUMNS, highlight, sql.SQL(" UNION ALL ").join([branch] * len(hours)), NEWEST_FIRST
            )
            query_args = [*headline_args]
            for h in hours:
                query_args += [max(lower, h), min(upper, h + timedelta(hours=1)), *args, *window_args]
                query_args.append(rows_wanted)
            query_args.append(rows_wanted)
        cur = await db.execute(query, query_args)
        found = await cur.fetchall()
        rows += found
        if parsed and prefilter is not None and found:
            # size the next window from the density just seen (twice what should fill the
            # page), so that a common word does not parse a whole hour for its last few lines
            wanted = limit + 1 - len(rows)
            window = min(max((upper - lower) * (2 * wanted / len(found)), MIN_UNINDEXED_WINDOW), window * 4)
        else:
            window = min(window * 4, timedelta(days=1))
        upper = lower

    rows, next_cursor = cut(
        rows, limit, lambda r: (r["timestamp"], r["kafka_partition"], r["kafka_offset"], r["kafka_topic"])
    )
    if stopped_at is not None and next_cursor is None:
        next_cursor = cursors.encode(stopped_at, *BEFORE_EVERYTHING_AT)
    for r in rows:
        del r["kafka_topic"]
    return page(rows, limit, next_cursor)
