"""Daily export benchmark: one day of logs → zstd Parquet, against PostgreSQL's own COPY in the same run.

1. a fresh database gets N seed-shaped rows of one UTC day (2 tenants x 50 services by default),
   generated inside PostgreSQL, then VACUUM ANALYZE (hint bits set before anything is timed);
2. reference: PostgreSQL's binary `COPY (SELECT … ORDER BY tenant, service, timestamp …) TO
   STDOUT` of the same rows, read and discarded by the client, in the export's session setting
   (enable_indexscan = off), so both get the same plan;
3. the export (loganalyzer.export.daily) to a local folder, then to a local S3 endpoint (a moto
   server, boto3 multipart), each in its own process so that its peak RSS (VmHWM) is its own
   (module imports happen before the clock starts);
4. the reference again, so that a drift of the machine during the run shows;
5. rows/s, the ratio to the faster reference, peak RSS against the targets (ratio >= 0.5,
   RSS <= 500 MB), and each manifest's row checksum against PostgreSQL's.

Usage: .venv/bin/python bench/bench_export.py [--rows N] [--no-s3] [--closed-day-index]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loganalyzer.db.connection import connect, drop_database, ensure_database  # noqa: E402
from loganalyzer.db.migrate import migrate  # noqa: E402
from loganalyzer.export.checksum import RowChecksum  # noqa: E402
from loganalyzer.export.schema import day_query  # noqa: E402
from tests.export_support import insert_logs, postgres_checksum  # noqa: E402
from tests.support import ADMIN_URL, moto_server  # noqa: E402

DAY = date(2026, 12, 5)
RATIO_TARGET = 0.5
RSS_TARGET_MB = 500


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reference_copy(url: str) -> tuple[float, int]:
    """Seconds and bytes of the server's binary COPY of the export's query, read and discarded."""
    with connect(url) as conn:
        conn.execute("SET enable_indexscan = off")
        t0 = time.perf_counter()
        size = 0
        with conn.cursor().copy(f"COPY ({day_query(DAY)}) TO STDOUT (FORMAT binary)") as copy:
            for block in copy:
                size += len(block)
        return time.perf_counter() - t0, size


def child(args: argparse.Namespace) -> None:
    """One export in this process; prints its figures as JSON on stdout."""
    # imports are not part of the timed export
    import adbc_driver_postgresql.dbapi  # type: ignore[import-untyped]  # noqa: F401

    from loganalyzer.export.daily import export_day, export_day_to_folder

    t0 = time.perf_counter()
    if args.child == "folder":
        m = export_day_to_folder(args.db, Path(args.out), DAY)
    else:
        from loganalyzer.aws import clients
        from loganalyzer.settings import load_settings

        m = export_day(args.db, clients.s3(load_settings()), args.bucket, DAY)
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rows": m.total_rows,
                "bytes": m.total_bytes,
                "objects": len(m.objects),
                "checksum": m.row_checksum.to_dict(),
                "peak_rss_mb": peak_rss_mb(),
            }
        )
    )


def run_child(kind: str, url: str, extra: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", kind, "--db", url, *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        sys.exit(f"export ({kind}) failed:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--tenants", type=int, default=2)
    ap.add_argument("--services", type=int, default=50)
    ap.add_argument("--no-s3", action="store_true", help="skip the export to the local S3 endpoint")
    ap.add_argument(
        "--closed-day-index",
        action="store_true",
        help="build the (tenant, service, timestamp) index `db maintain` gives a closed day",
    )
    ap.add_argument("--keep-db", action="store_true")
    ap.add_argument("--child", choices=["folder", "s3"], help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--bucket", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    if args.rows < 1:
        sys.exit("--rows must be at least 1")

    url = make_conninfo(ADMIN_URL, dbname=f"la_bench_export_{os.getpid()}")
    ensure_database(url)
    try:
        with connect(url) as conn:
            migrate(conn)
        t0 = time.perf_counter()
        insert_logs(url, DAY, args.rows, tenants=args.tenants, services=args.services)
        with connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE logs")
            if args.closed_day_index:
                conn.execute(
                    "SELECT index_closed_log_partitions(%s)", (date(DAY.year, DAY.month, DAY.day + 1),)
                )
        print(
            f"loaded {args.rows:,} rows of {DAY} ({args.tenants} tenants x {args.services} services) "
            f"in {time.perf_counter() - t0:.0f} s (not timed)",
            flush=True,
        )
        expected = postgres_checksum(url, DAY)

        ref1, ref_bytes = reference_copy(url)
        print(
            f"reference COPY binary: {ref1:.1f} s ({args.rows / ref1:,.0f} rows/s, {ref_bytes / 1e6:.0f} MB)"
        )

        results: dict[str, dict[str, Any]] = {}
        with tempfile.TemporaryDirectory(prefix="la-bench-export-") as out:
            results["local folder"] = run_child("folder", url, ["--out", out])
        print(f"export → folder: {results['local folder']['seconds']:.1f} s", flush=True)

        if not args.no_s3:
            with moto_server(ROOT / ".state" / "bench") as endpoint:
                env = {**os.environ, "AWS_ENDPOINT_URL": endpoint}
                import boto3

                boto3.client(
                    "s3",
                    endpoint_url=endpoint,
                    region_name="us-east-1",
                    aws_access_key_id="testing",
                    aws_secret_access_key="testing",
                ).create_bucket(Bucket="bench-export")
                results["local S3 (moto)"] = run_child("s3", url, ["--bucket", "bench-export"], env)
            print(f"export → S3: {results['local S3 (moto)']['seconds']:.1f} s", flush=True)

        ref2, _ = reference_copy(url)
        print(f"reference COPY binary again: {ref2:.1f} s")
        ref = min(ref1, ref2)

        print()
        print(f"## Daily export, {args.rows:,} rows of one day, measured {time.strftime('%Y-%m-%d')}")
        print()
        print("| target | seconds | rows/s | ratio to COPY | peak RSS | objects | MB | checksum |")
        print("|---|---|---|---|---|---|---|---|")
        print(f"| reference: COPY binary | {ref:.1f} | {args.rows / ref:,.0f} | 1.00 | – | – ", end="")
        print(f"| {ref_bytes / 1e6:.0f} | – |")
        ok = True
        for name, r in results.items():
            ratio = ref / r["seconds"]
            same = RowChecksum.from_dict(r["checksum"]) == expected and r["rows"] == args.rows
            ok = ok and same and ratio >= RATIO_TARGET and r["peak_rss_mb"] <= RSS_TARGET_MB
            print(
                f"| {name} | {r['seconds']:.1f} | {r['rows'] / r['seconds']:,.0f} | {ratio:.2f} | "
                f"{r['peak_rss_mb']:.0f} MB | {r['objects']} | {r['bytes'] / 1e6:.0f} | "
                f"{'= PostgreSQL' if same else 'MISMATCH'} |"
            )
        print()
        print(
            f"targets: ratio >= {RATIO_TARGET}, peak RSS <= {RSS_TARGET_MB} MB: {'met' if ok else 'NOT met'} "
            f"(references {ref1:.1f} s and {ref2:.1f} s; the faster is used)"
        )
    finally:
        if not args.keep_db:
            drop_database(url)


if __name__ == "__main__":
    main()
