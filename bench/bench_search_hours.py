"""What today's hour search indexes cost ingestion: COPY rate of the open hour with and without them.

A fresh database, today's partition holding PRE rows spread over 23 hours. Rounds,
interleaved: COPY N rows stamped in the open hour (the consumer's path: binary COPY) into the
partition (a) without hour indexes, (b) with the 22 hour indexes of loganalyzer.db.search_hours
(a row of the open hour is in none of them: PostgreSQL checks each index's predicate), (c) as
(b) while the 23rd hour index is being built CONCURRENTLY on another connection (the hourly
step running). Rows/s per round, the median per case, and the 1-minute load average.

Usage: .venv/bin/python bench/bench_search_hours.py [--rows N] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loganalyzer.db.connection import connect, drop_database, ensure_database  # noqa: E402
from loganalyzer.db.migrate import migrate  # noqa: E402
from loganalyzer.db.search_hours import index_closed_hours  # noqa: E402
from tests.support import ADMIN_URL  # noqa: E402

DAY = datetime(2026, 3, 4, tzinfo=UTC)
OPEN_HOUR = DAY + timedelta(hours=23)
FILL = """
INSERT INTO logs ("timestamp", tenant, service, host, level, message, kafka_topic, kafka_partition,
                  kafka_offset)
SELECT %s::timestamptz + (i::float8 / %s * 82800) * interval '1 second', 'acme',
       'service-' || (i %% 50), 'h', 'INFO',
       'payment order request ' || i || ' user u' || (i %% 1000) || ' in ' || (i %% 900) || 'ms', 'logs', 1, i
FROM generate_series(0, %s - 1) AS i
"""
COPY = (
    'COPY logs ("timestamp", tenant, service, host, level, message, kafka_topic, kafka_partition, '
    "kafka_offset) FROM STDIN (FORMAT BINARY)"
)


def copy_rows(url: str, first: int, n: int) -> float:
    rows = [
        (
            OPEN_HOUR + timedelta(seconds=i % 3600),
            "acme",
            f"service-{i % 50}",
            "h",
            "INFO",
            f"timeout cache request {i} user u{i % 1000} in {i % 900}ms",
            "logs",
            0,
            i,
        )
        for i in range(first, first + n)
    ]
    with connect(url) as conn:
        t = time.perf_counter()
        with conn.cursor().copy(COPY) as cp:
            cp.set_types(["timestamptz", "text", "text", "text", "text", "text", "text", "int4", "int8"])
            for r in rows:
                cp.write_row(r)
        conn.commit()
        return n / (time.perf_counter() - t)


def build_next_hour(url: str) -> None:
    with connect(url, autocommit=True) as conn:
        index_closed_hours(conn, OPEN_HOUR + timedelta(minutes=4))  # before a 5-minute step: one hour index


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000, help="rows per COPY round (default 100,000)")
    ap.add_argument("--pre", type=int, default=1_000_000, help="rows already in the closed hours")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    url = make_conninfo(ADMIN_URL, dbname=f"la_bench_hours_{uuid.uuid4().hex[:8]}")
    ensure_database(url)
    try:
        with connect(url, autocommit=True) as conn:
            migrate(conn)
            conn.execute("SELECT ensure_log_partition(%s)", (DAY.date(),))
            conn.execute(FILL, (DAY, args.pre, args.pre))
            conn.execute("VACUUM ANALYZE logs")
        rates: dict[str, list[float]] = {"none": [], "22 hour indexes": [], "22 + one being built": []}
        offset = 0
        for r in range(args.rounds):
            with connect(url, autocommit=True) as conn:
                for (name,) in conn.execute(
                    "SELECT indexrelid::regclass::text FROM pg_index x "
                    "JOIN pg_class c ON c.oid = x.indexrelid "
                    "WHERE c.relname LIKE '%%_search_h%%'"
                ).fetchall():
                    conn.execute(f'DROP INDEX "{name}"')
            rates["none"].append(copy_rows(url, offset, args.rows))
            offset += args.rows
            with connect(url, autocommit=True) as conn:
                t = time.perf_counter()
                built = index_closed_hours(conn, OPEN_HOUR - timedelta(hours=1) + timedelta(minutes=4))
                took = time.perf_counter() - t
                print(f"  round {r + 1}: {len(built)} hour indexes built in {took:.1f} s", flush=True)
            rates["22 hour indexes"].append(copy_rows(url, offset, args.rows))
            offset += args.rows
            builder = threading.Thread(target=build_next_hour, args=(url,))
            builder.start()
            rates["22 + one being built"].append(copy_rows(url, offset, args.rows))
            offset += args.rows
            builder.join()
            print(
                f"  round {r + 1}: " + ", ".join(f"{k} {v[-1]:,.0f} rows/s" for k, v in rates.items()),
                flush=True,
            )
        print(
            f"\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.pre:,} rows in today's closed hours, "
            f"COPY of {args.rows:,} open-hour rows, load average {os.getloadavg()[0]:.1f}"
        )
        base = statistics.median(rates["none"])
        for k, v in rates.items():
            m = statistics.median(v)
            each = [round(x) for x in v]
            print(f"  {k:<24} median {m:>9,.0f} rows/s  ({m / base:.2f} of none)  rounds {each}")
    finally:
        drop_database(url)


if __name__ == "__main__":
    main()
