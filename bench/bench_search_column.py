"""What a stored tsvector column costs ingestion: binary COPY rows/s into `logs` with and without it.

Two fresh, migrated databases in the same run: one as migrated up to 013 (no search column), one
with sql/014's `message_tsv` column. The same seed-shaped rows are copied into each in
interleaved rounds (so machine noise hits both alike); the median rows/s of each and their
ratio are printed.

Usage: .venv/bin/python bench/bench_search_column.py [--rows N] [--rounds R]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loganalyzer.db.connection import connect, drop_database, ensure_database  # noqa: E402
from loganalyzer.db.migrate import default_sql_dir, discover, migrate  # noqa: E402
from tests.support import ADMIN_URL  # noqa: E402

WORDS = [
    "order",
    "payment",
    "cache",
    "session",
    "user",
    "timeout",
    "retry",
    "connection",
    "refused",
    "upstream",
    "db",
    "query",
]
COLUMNS = (
    '"timestamp", tenant, service, host, level, message, metadata, kafka_topic, kafka_partition, kafka_offset'
)


def rows(n: int, start: int, day: datetime) -> list[tuple[object, ...]]:
    rnd = random.Random(start)
    out = []
    for i in range(start, start + n):
        msg = (
            f"GET /api/v1/{rnd.choice(WORDS)}/{rnd.randrange(10**6)} {rnd.randrange(900)}ms "
            f"{rnd.choice(WORDS)} {rnd.choice(WORDS)} user={rnd.randrange(10**5)}"
        )
        out.append(
            (
                day + timedelta(milliseconds=i),
                "acme",
                f"service-{i % 12:02d}",
                f"host-{i % 5}",
                ("INFO", "WARN", "ERROR", "DEBUG")[i % 4],
                msg,
                "{}",
                "logs",
                i % 4,
                i,
            )
        )
    return out


def copy_rate(url: str, batch: list[tuple[object, ...]]) -> float:
    with connect(url) as conn:
        t = time.perf_counter()
        with conn.cursor().copy(f"COPY logs ({COLUMNS}) FROM STDIN") as cp:
            for r in batch:
                cp.write_row(r)
        conn.commit()
        return len(batch) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=200_000, help="rows per round (default 200,000)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    args = ap.parse_args()

    without_dir = Path(tempfile.mkdtemp())
    for m in discover(default_sql_dir()):
        if int(m.version) < 14:
            (without_dir / m.name).write_text(m.sql)
    urls = {}
    for name, sql_dir in (("without", without_dir), ("with", None)):
        url = make_conninfo(ADMIN_URL, dbname=f"la_bench_{uuid.uuid4().hex[:10]}")
        ensure_database(url)
        with connect(url) as conn:
            migrate(conn, sql_dir)
        urls[name] = url
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        for url in urls.values():
            with connect(url) as conn:
                conn.execute("SELECT ensure_log_partition(%s)", (day.date(),))
                conn.commit()
        rates: dict[str, list[float]] = {"without": [], "with": []}
        for r in range(args.rounds):
            batch = rows(args.rows, r * args.rows, day)
            order = ("without", "with") if r % 2 == 0 else ("with", "without")
            for name in order:
                rates[name].append(copy_rate(urls[name], batch))
        med = {k: statistics.median(v) for k, v in rates.items()}
        print(f"{datetime.now(UTC):%Y-%m-%d}  COPY of {args.rows:,} rows x {args.rounds} interleaved rounds")
        print(f"  logs without message_tsv (reference): {med['without']:>10,.0f} rows/s")
        print(f"  logs with stored message_tsv:         {med['with']:>10,.0f} rows/s")
        print(f"  ratio: {med['with'] / med['without']:.2f}")
    finally:
        for url in urls.values():
            drop_database(url)


if __name__ == "__main__":
    main()
