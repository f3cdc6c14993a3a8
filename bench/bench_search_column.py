"""What full-text search costs ingestion: COPY rows/s into `logs` with and without a search column.

Three fresh, migrated databases in the same run:
  * reference: migrated up to 013 (no search column);
  * shipped: sql/014 as is (message_tsv stays NULL until the day is closed and rebuilt);
  * generated: 014 with message_tsv as a GENERATED ... STORED column (the design 014 rejects).
The same seed-shaped rows (COPY text made before timing, so only the server's work counts) are
copied into each in interleaved rounds (machine noise hits all alike); the median rows/s of
each and its ratio to the reference are printed.

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
    out: list[tuple[object, ...]] = []
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


def payload(batch: list[tuple[object, ...]]) -> bytes:
    """The COPY text of a batch, made before timing so that only the server's work is measured."""
    lines = []
    for r in batch:
        ts = r[0]
        assert isinstance(ts, datetime)
        lines.append("\t".join([ts.isoformat(), *(str(v) for v in r[1:])]))
    return ("\n".join(lines) + "\n").encode()


def copy_rate(url: str, data: bytes, n: int) -> float:
    with connect(url) as conn:
        t = time.perf_counter()
        with conn.cursor().copy(f"COPY logs ({COLUMNS}) FROM STDIN") as cp:
            for i in range(0, len(data), 1 << 20):
                cp.write(data[i : i + (1 << 20)])
        conn.commit()
        return n / (time.perf_counter() - t)


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
    for name, sql_dir in (("reference", without_dir), ("shipped", None), ("generated", None)):
        url = make_conninfo(ADMIN_URL, dbname=f"la_bench_{uuid.uuid4().hex[:10]}")
        ensure_database(url)
        with connect(url) as conn:
            migrate(conn, sql_dir)
            if name == "generated":
                conn.execute("ALTER TABLE logs DROP COLUMN message_tsv")
                conn.execute(
                    "ALTER TABLE logs ADD COLUMN message_tsv tsvector "
                    "GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, message)) STORED"
                )
                conn.commit()
        urls[name] = url
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        for url in urls.values():
            with connect(url) as conn:
                conn.execute("SELECT ensure_log_partition(%s)", (day.date(),))
                conn.commit()
        rates: dict[str, list[float]] = {name: [] for name in urls}
        names = list(urls)
        for r in range(args.rounds):
            data = payload(rows(args.rows, r * args.rows, day))
            for name in names[r % 3 :] + names[: r % 3]:
                rates[name].append(copy_rate(urls[name], data, args.rows))
        med = {k: statistics.median(v) for k, v in rates.items()}
        ref = med["reference"]
        print(f"{datetime.now(UTC):%Y-%m-%d}  COPY of {args.rows:,} rows x {args.rounds} interleaved rounds")
        print(f"  no search column (reference, 013):      {ref:>10,.0f} rows/s")
        for name, label in (
            ("shipped", "014 as shipped (filled on close):"),
            ("generated", "generated stored column (rejected):"),
        ):
            print(f"  {label:<40}{med[name]:>10,.0f} rows/s  ratio {med[name] / ref:.2f}")
    finally:
        for url in urls.values():
            drop_database(url)


if __name__ == "__main__":
    main()
