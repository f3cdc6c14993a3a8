"""REST API benchmark: latency and throughput at 32 concurrent connections, beside a trivial endpoint.

1. a fresh database with N logs (default 10,000,000) over the last D days (default 7; today
   gets its share), generated inside PostgreSQL (INSERT ... SELECT generate_series: no client
   in the way): the closed days first, rebuilt for search as `loganalyzer db maintain` does
   (sql/014), then 10,000 anomalies, the hourly rollups, a few patterns, and last today's rows
   up to the start of the measurement (today's partition keeps only the indexes ingestion pays
   for, no search column, as on a live system), then `loganalyzer db index-hours`' search GIN of each of
   today's closed hours and the open hour's whole 5-minute steps (loganalyzer.db.search_hours;
   --no-hour-indexes drops them), run again before a search endpoint whenever a 5-minute mark
   has passed since its last run, which leaves the indexes a cron `*/5` schedule would have
   left (each search endpoint prints how many minutes of today were still unindexed); a
   database reused with --url first gets today's lines from where its load stopped up to now,
   so that the open hour holds lines as on a live system;
   anomaly by id asks for a fixed random sample of 2,000 of the tenant's episodes over the week;
2. `loganalyzer serve` as its own process (1 uvicorn worker, uvloop, httptools, no access log,
   a pool of 4 connections), as deployed;
3. for each endpoint, SECONDS of requests from 32 keep-alive connections (wrk with one thread
   when installed, `scripts/system-deps.sh --bench`; else a small asyncio HTTP/1.1 client, which
   costs about as much CPU per request as the server's routing: bench/http_load.py), after a
   warm-up; p50/p99 latency, requests/s, the 1-minute load average before and after, and for
   searches the lines per page (a search out of time budget answers a short page with a
   cursor); the trivial endpoint /ping (no database) of the same server in the same run is the
   reference, measured first and last;
4. a second server with the page cache off: the list endpoints again, beside its own /ping.

Targets: p99 <= 50 ms and >= 0.5x the trivial endpoint's req/s for anomalies and hourly
metrics; p99 <= 50 ms for anomaly by id and the cost estimate; log search p99 <= 200 ms.

Usage: .venv/bin/python bench/bench_api.py [--logs N] [--days D] [--seconds S] [--keep | --url URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from http_load import Run, driver_name, run_load  # noqa: E402

from loganalyzer.db.connection import connect, drop_database, ensure_database  # noqa: E402
from loganalyzer.db.migrate import migrate  # noqa: E402
from loganalyzer.db.search_hours import (  # noqa: E402
    INDEX_NAMES,
    hour_of_index,
    index_closed_hours,
    prefix_of_index,
)
from loganalyzer.platform.processes import free_port, port_open  # noqa: E402
from serving.keys import new_key  # noqa: E402
from tests.support import ADMIN_URL  # noqa: E402

CONNECTIONS = 32
SERVICES = 50
TENANTS = ("acme", "globex")
WORDS = [
    *("payment", "order", "cache", "session", "login", "checkout", "inventory", "search", "upload"),
    *("timeout", "refused", "retry", "throttled", "deadlock", "replica", "shard", "quota", "token"),
    *("expired", "invalid"),
]


LOGS_INSERT = f"""
INSERT INTO logs ("timestamp", tenant, service, host, level, message, metadata,
                  kafka_topic, kafka_partition, kafka_offset, duration_ms)
SELECT %(start)s::timestamptz + ((i - %(first)s)::float8 / %(n)s * %(span)s) * interval '1 second',
       (ARRAY['acme','globex'])[1 + i %% 2],
       'service-' || lpad(((i / 2) %% {SERVICES})::text, 2, '0'),
       'host-' || (i %% 7),
       CASE WHEN i %% 50 = 0 THEN 'ERROR' WHEN i %% 33 = 0 THEN 'WARN'
            WHEN i %% 20 = 0 THEN 'DEBUG' ELSE 'INFO' END,
       w[1 + (i * 7) %% 20] || ' ' || w[1 + (i / 3) %% 20] || ' request ' || i
         || ' user u' || (i %% 100000) || ' in ' || (i %% 900) || 'ms',
       '{{}}'::jsonb, 'logs', i %% 4, i, (i %% 900)::float8
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) AS i,
     (SELECT ARRAY[{", ".join(f"'{w}'" for w in WORDS)}] AS w) AS words
"""


HOURLY = """
(tenant, service, hour, log_count, debug_count, info_count, warn_count, error_count, fatal_count,
 host_count, avg_duration_ms, p95_duration_ms)
SELECT tenant, service, date_trunc('hour', "timestamp"), count(*),
       count(*) FILTER (WHERE level = 'DEBUG'), count(*) FILTER (WHERE level = 'INFO'),
       count(*) FILTER (WHERE level = 'WARN'), count(*) FILTER (WHERE level = 'ERROR'),
       count(*) FILTER (WHERE level = 'FATAL'), count(DISTINCT host), avg(duration_ms), NULL
FROM logs"""


def _insert_logs(conn: Any, first: int, last: int, start: datetime, end: datetime) -> None:
    """Rows first..last-1 spread evenly over [start, end), in chunks of a million."""
    t = time.perf_counter()
    for lo in range(first, last, 1_000_000):
        hi = min(last, lo + 1_000_000)
        conn.execute(
            LOGS_INSERT,
            {
                "start": start,
                "first": first,
                "n": last - first,
                "span": (end - start).total_seconds(),
                "lo": lo,
                "hi": hi,
            },
        )
        print(f"  logs: {hi:,} ({time.perf_counter() - t:.0f} s)", flush=True)


def load(url: str, n_logs: int, days: int) -> None:
    """Logs, anomalies, rollups and patterns, generated by PostgreSQL itself (INSERT ... SELECT
    over generate_series: 10M rows in about a minute, where a COPY fed by a Python client on the
    same 2 cores would spend longer making the rows than the server storing them).

    As on a live system: the closed days are loaded and rebuilt for search as `loganalyzer db
    maintain` does (sql/014, index_closed_log_partitions), then today's rows are written from
    midnight up to the moment the measurement starts, so the newest minutes hold lines and
    today's partition has only the indexes ingestion pays for."""
    now = datetime.now(UTC)
    first = (now - timedelta(days=days - 1)).date()
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC)
    closed_rows = round(n_logs * (midnight - start) / (now - start))
    with connect(url, autocommit=True) as conn:
        for d in range(days + 1):
            conn.execute("SELECT ensure_log_partition(%s)", (first + timedelta(days=d),))
        _insert_logs(conn, 0, closed_rows, start, midnight)
        t = time.perf_counter()
        built = [r[0] for r in conn.execute("SELECT index_closed_log_partitions(%s)", (now.date(),))]
        print(f"  closed days rebuilt for search: {len(built) // 3} ({time.perf_counter() - t:.0f} s)")
        conn.execute(
            f'INSERT INTO hourly_metrics {HOURLY} WHERE "timestamp" < %s GROUP BY 1, 2, 3', (midnight,)
        )
        conn.execute(
            f"""
            INSERT INTO anomalies (id, tenant, service, anomaly_type, severity, status, window_start,
                window_end, expected_value, actual_value, description, pattern_template)
            SELECT 'an-' || i, (ARRAY['acme','globex'])[1 + i %% 2],
                   'service-' || lpad(((i / 2) %% {SERVICES})::text, 2, '0'),
                   (ARRAY['error_rate_spike','log_volume_spike','log_volume_drop','new_error_pattern',
                          'isolation_forest'])[1 + i %% 5],
                   (ARRAY['low','medium','high','critical'])[1 + i %% 4],
                   CASE WHEN i %% 3 = 0 THEN 'open' ELSE 'resolved' END,
                   %s::timestamptz + (i::float8 / 10000 * %s) * interval '1 second',
                   %s::timestamptz + (i::float8 / 10000 * %s + 300) * interval '1 second',
                   0.02, 0.2, 'error rate 20%% vs expected 2%%', 'request <*> user <*> in <*>ms'
            FROM generate_series(0, 9999) AS i
            """,
            (start, (now - start).total_seconds()) * 2,
        )
        words = "ARRAY[" + ",".join(f"'{w}'" for w in WORDS) + "]"
        conn.execute(
            f"""
            INSERT INTO log_patterns (tenant, service, pattern_id, template, first_seen, last_seen, count,
                                      error_count, sample_message)
            SELECT t, 'service-' || lpad(s::text, 2, '0'), 'p' || p,
                   ({words})[1 + p] || ' request <*> user <*> in <*>ms',
                   now() - interval '7 days', now(), 1000 * (p + 1), 10 * p,
                   ({words})[1 + p] || ' request 1 user u1 in 5ms'
            FROM unnest(ARRAY['acme','globex']) AS t, generate_series(0, {SERVICES - 1}) AS s,
                 generate_series(0, 4) AS p
            """
        )
        conn.execute(
            "INSERT INTO ingest_offsets (kafka_topic, kafka_partition, next_offset) "
            "SELECT 'logs', p, %s / 4 FROM generate_series(0, 3) AS p",
            (n_logs,),
        )
        conn.execute("VACUUM ANALYZE")
        _insert_logs(conn, closed_rows, n_logs, midnight, datetime.now(UTC))
        print(f"  today: {n_logs - closed_rows:,} rows up to now, no search column (as ingestion leaves it)")
        conn.execute(
            f'INSERT INTO hourly_metrics {HOURLY} WHERE "timestamp" >= %s GROUP BY 1, 2, 3', (midnight,)
        )
        conn.execute(f"VACUUM ANALYZE logs_p{midnight:%Y%m%d}")


def top_up_today(url: str, *, quiet: bool = False) -> None:
    """A reused database (--url) gets today's lines from where its load stopped up to now, at
    the rate it was loaded with, so that the open hour holds lines as on a live system (a
    search's cost depends on the open hour's unindexed rows). Refuses a database loaded on
    another day: its "today" has been closed without the rebuild that maintenance would do.
    Also run before each search endpoint (`quiet`: lines only, no rollups, no VACUUM): on a live
    system the newest minute always holds lines, and a search starts from it."""
    now = datetime.now(UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC)
    with connect(url, autocommit=True) as conn:
        row = conn.execute(
            'SELECT count(*), max("timestamp"), (SELECT max(kafka_offset) FROM logs) FROM logs '
            'WHERE "timestamp" >= %s',
            (midnight,),
        ).fetchone()
        assert row is not None
        today, last, offset = row
        if not today or last is None or offset is None:
            raise SystemExit(f"{url}: no lines of today ({midnight:%Y-%m-%d}): load a fresh database")
        rows = round(today * (now - last) / (last - midnight))
        if rows <= 0:
            return
        _insert_logs(conn, offset + 1, offset + 1 + rows, last + timedelta(microseconds=1), now)
        if quiet:
            return
        conn.execute("DELETE FROM hourly_metrics WHERE hour >= %s", (midnight,))
        conn.execute(
            f'INSERT INTO hourly_metrics {HOURLY} WHERE "timestamp" >= %s GROUP BY 1, 2, 3', (midnight,)
        )
        conn.execute(f"VACUUM ANALYZE logs_p{midnight:%Y%m%d}")
        print(f"  today topped up with {rows:,} lines up to now ({today + rows:,} today)")


def search_index_names(conn: Any, pattern: str, *, valid_only: bool = False) -> list[str]:
    """The indexes of `logs`' partitions whose names match `pattern` (a PostgreSQL regex)."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_index x ON x.indrelid = i.inhrelid "
            "JOIN pg_class c ON c.oid = x.indexrelid "
            "WHERE i.inhparent = 'logs'::regclass AND c.relname ~ %s AND (x.indisvalid OR NOT %s)",
            (pattern, valid_only),
        )
    ]


def index_hours(conn: Any, now: datetime) -> list[str]:
    """`loganalyzer db index-hours` at `now`, then fresh statistics if it built anything (the
    planner must know the new partial indexes' rows)."""
    built = index_closed_hours(conn, now)
    if built:
        conn.execute("ANALYZE logs")
    return built


def hour_search_indexes(conn: Any, build: bool) -> int:
    """Today's closed hours with their search GIN, as `db index-hours` leaves them (build), or
    none (to measure the search without them on the same data). Returns how many there are."""
    names = search_index_names(conn, INDEX_NAMES)
    if not build:
        for name in names:
            conn.execute(f'DROP INDEX "{name}"')
        print(f"  hour search indexes: none ({len(names)} dropped)")
        return 0
    t = time.perf_counter()
    built = index_hours(conn, datetime.now(UTC))
    took = time.perf_counter() - t
    print(f"  hour search indexes: {len(built)} built in {took:.1f} s, {len(names)} there before")
    return len(names) + len(built)


class IndexHoursSchedule:
    """`loganalyzer db index-hours` as a cron `*/5` schedule would run it, caught up before each
    search endpoint: once a 5-minute mark has passed since the last run, it runs now. Its
    indexes are then those of the mark's run (the open hour's prefix ends at the mark either
    way), so a search meets what it would meet on a live system with that schedule."""

    def __init__(self, url: str, enabled: bool) -> None:
        self.url, self.enabled, self.last = url, enabled, datetime.now(UTC)

    def catch_up(self) -> None:
        if not self.enabled:
            return
        now = datetime.now(UTC)
        mark = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)
        with connect(self.url, autocommit=True) as conn:
            if self.last < mark:
                built = index_hours(conn, now)
                self.last = now
                print(f"  index-hours (the {mark:%H:%M} run of */5): built {', '.join(built) or 'nothing'}")
            names = search_index_names(conn, f"^logs_p{now:%Y%m%d}{INDEX_NAMES}", valid_only=True)
        ends = [h + timedelta(hours=1) for n in names if (h := hour_of_index(n)) is not None]
        ends += [span[1] for n in names if (span := prefix_of_index(n)) is not None]
        since = max(ends, default=now.replace(hour=0, minute=0, second=0, microsecond=0))
        unindexed = (now - since).total_seconds() / 60
        print(f"  today's lines without a search index: the last {unindexed:.1f} min", flush=True)


def create_key(url: str, tenant: str, admin: bool) -> str:
    key = new_key()
    with connect(url) as conn:
        conn.execute(
            "INSERT INTO api_keys (id, tenant, is_admin, key_sha256, label) VALUES (%s, %s, %s, %s, 'bench')",
            (key.key_id, tenant, admin, key.digest),
        )
    return key.secret_key


def start_server(url: str, page_cache_seconds: float) -> tuple[subprocess.Popen[bytes], int]:
    """`loganalyzer serve` as its own process, as deployed (1 worker)."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "LOG_LEVEL": "WARNING",
        "API_PAGE_CACHE_SECONDS": str(page_cache_seconds),
        # the per-key rate limit is off: this measures what the server can answer, from one key
        "API_RATE_LIMIT_PER_SECOND": "0",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "loganalyzer", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while not port_open("127.0.0.1", port):
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the API server did not start")
        time.sleep(0.1)
    return server, port


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    server.wait(10)


def acme_words(j: int) -> tuple[str, str]:
    """Two words that occur together in acme's lines of service j, in one line of 3 of them.

    acme's lines of service j are rows i = 2j + 100k (LOGS_INSERT): the first word is always
    WORDS[14j mod 20], the second WORDS[(i // 3) mod 20], one of three words by k mod 3."""
    first = WORDS[14 * j % 20]
    second = next(w for k in range(3) if (w := WORDS[(2 * j + 100 * k) // 3 % 20]) != first)
    return first, second


def endpoints(ids: list[str]) -> list[tuple[str, list[str]]]:
    services = [f"service-{i:02d}" for i in range(SERVICES)]
    pairs = [(*acme_words(j), services[j]) for j in range(20)]
    return [
        ("trivial /ping (reference)", ["/ping"]),
        (
            "anomalies (list)",
            ["/api/v1/anomalies?limit=50"]
            + [f"/api/v1/anomalies?limit=50&service={s}" for s in services[:10]]
            + ["/api/v1/anomalies?limit=50&severity=high", "/api/v1/anomalies?limit=50&status=open"],
        ),
        ("anomaly by id", [f"/api/v1/anomalies/{i}" for i in ids]),
        (
            "hourly metrics",
            [f"/api/v1/metrics/hourly?limit=100&service={s}" for s in services]
            + ["/api/v1/metrics/hourly?limit=100"],
        ),
        ("log search, one word", [f"/api/v1/logs/search?q={w}&limit=50" for w in WORDS]),
        (
            "log search, 2 words+service (1/300)",
            [f"/api/v1/logs/search?q={a}+{b}&limit=50&service={s}" for a, b, s in pairs],
        ),
        (
            "log search, no match",
            [f"/api/v1/logs/search?q={w}+nosuchword&limit=50" for w in WORDS[:5]],
        ),
        ("cost estimate", ["/api/v1/costs/estimate"]),
        ("trivial /ping (again)", ["/ping"]),
    ]


TARGETS = {
    "anomalies (list)": (50, 0.5),
    "hourly metrics": (50, 0.5),
    "log search, one word": (200, None),
    "log search, 2 words+service (1/300)": (200, None),
    "log search, no match": (200, None),
    "anomaly by id": (50, None),
    "cost estimate": (50, None),
}


def measure(
    port: int,
    key: str,
    named: list[tuple[str, list[str]]],
    seconds: float,
    warmup: float,
    before_search: Callable[[], None] = lambda: None,
) -> list[tuple[str, Run]]:
    results = []
    for name, paths in named:
        if "search" in name:
            before_search()
        run = run_load(port, paths, key, seconds, warmup, CONNECTIONS)
        extra = f"  rows/page {run.rows / run.requests:5.1f}" if "search" in name and run.requests else ""
        print(
            f"  {name:<36} {run.requests / seconds:>8,.0f} req/s  p50 {run.p50_ms:6.1f} ms  "
            f"p99 {run.p99_ms:7.1f} ms  non-200: {run.errors}  load {run.load_before:.1f}"
            f"->{run.load_after:.1f}{extra}",
            flush=True,
        )
        results.append((name, run))
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--logs", type=int, default=10_000_000, help="log rows to load (default 10,000,000)")
    ap.add_argument("--days", type=int, default=7, help="days the logs span, ending now (default 7)")
    ap.add_argument("--seconds", type=float, default=10.0, help="measured seconds per endpoint (default 10)")
    ap.add_argument(
        "--warmup",
        type=float,
        default=5.0,
        help="unmeasured seconds first (default 5: by id asks 2,000 episodes at random; at ~1,200 req/s "
        "2 s touched about two thirds of them once, and p99 of the next seconds was still falling)",
    )
    ap.add_argument("--url", help="reuse a database a previous --keep run loaded")
    ap.add_argument("--keep", action="store_true", help="keep the database (prints its URL)")
    ap.add_argument(
        "--hour-indexes",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="today's closed hours with their search GIN, as `db index-hours` leaves them (default); "
        "--no-hour-indexes drops them to measure without",
    )
    ap.add_argument(
        "--only",
        help="measure only the endpoints whose name contains this text (e.g. 'search'), beside /ping",
    )
    args = ap.parse_args()

    url = args.url or make_conninfo(ADMIN_URL, dbname=f"la_bench_api_{uuid.uuid4().hex[:8]}")
    server: subprocess.Popen[bytes] | None = None
    try:
        if not args.url:
            ensure_database(url)
            with connect(url) as conn:
                migrate(conn)
            print(f"loading {args.logs:,} logs over {args.days} days, 10,000 anomalies ...", flush=True)
            t = time.perf_counter()
            load(url, args.logs, args.days)
            print(f"  loaded in {time.perf_counter() - t:.0f} s")
        else:
            top_up_today(url)
        with connect(url, autocommit=True) as conn:
            hour_indexes = hour_search_indexes(conn, build=args.hour_indexes)
        tenant_key = create_key(url, "acme", admin=False)
        with connect(url) as conn:
            # a fixed random sample over the whole week (today's episodes included: their sample
            # lines come from today's partition, which has no service/time index)
            conn.execute("SELECT setseed(0.22)")
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM anomalies WHERE tenant = 'acme' ORDER BY random() LIMIT 2000"
                )
            ]
            today = conn.execute(
                "SELECT count(*) FROM logs "
                "WHERE \"timestamp\" >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
            ).fetchone()
        named = endpoints(ids)
        if args.only:
            named = [named[0], *(e for e in named[1:-1] if args.only in e[0]), named[-1]]

        server, port = start_server(url, page_cache_seconds=2.0)
        schedule = IndexHoursSchedule(url, enabled=args.hour_indexes)

        def before_search() -> None:
            top_up_today(url, quiet=True)
            schedule.catch_up()

        results = measure(port, tenant_key, named, args.seconds, args.warmup, before_search)
        stop_server(server)
        server = None
        if args.only:
            return
        # the same list endpoints without the page cache, against their own trivial reference
        server, port = start_server(url, page_cache_seconds=0.0)
        uncached = [named[0], named[1], named[3], named[0]]
        print("  page cache off:")
        uncached_results = measure(port, tenant_key, uncached, args.seconds, args.warmup)
        stop_server(server)
        server = None

        print()
        print(
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {args.logs:,} logs over {args.days} days "
            f"({today[0] if today else 0:,} of them today, {hour_indexes} closed hours with a search index), "
            f"10,000 anomalies, "
            f"{CONNECTIONS} connections from {driver_name()}, "
            f"1 uvicorn worker (uvloop, httptools), pool of 4; "
            f"load average (1 min) {results[0][1].load_before:.1f} at start, "
            f"{uncached_results[-1][1].load_after:.1f} at end"
        )
        for title, rs in (("page cache 2 s (default)", results), ("page cache off", uncached_results)):
            ref = statistics.mean([rs[0][1].requests, rs[-1][1].requests]) / args.seconds
            print(f"\n{title}")
            print(
                f"{'endpoint':<36} {'req/s':>8} {'x trivial':>9} {'p50 ms':>7} {'p99 ms':>8} {'load':>9}  "
                "target"
            )
            for name, run in rs:
                rps = run.requests / args.seconds
                p50, p99 = run.p50_ms, run.p99_ms
                target = TARGETS.get(name)
                verdict = ""
                if target:
                    ok = p99 <= target[0] and (target[1] is None or rps / ref >= target[1])
                    want = f"p99 <= {target[0]} ms" + (f", >= {target[1]}x" if target[1] else "")
                    verdict = f"{want}: {'met' if ok else 'NOT met'}"
                    if "search" in name and run.requests:
                        verdict += f" ({run.rows / run.requests:.1f} rows/page)"
                sl = f"{run.load_before:.1f}-{run.load_after:.1f}"
                print(f"{name:<36} {rps:>8,.0f} {rps / ref:>9.2f} {p50:>7.1f} {p99:>8.1f} {sl:>9}  {verdict}")
    finally:
        if server is not None:
            stop_server(server)
        if args.keep:
            print(f"database kept: {url}")
        elif not args.url:
            drop_database(url)


if __name__ == "__main__":
    main()
