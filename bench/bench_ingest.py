"""Ingestion benchmark: Kafka → consumer → PostgreSQL, against raw binary COPY in the same run.

1. start a Tansu broker and two fresh databases (consumer target, COPY reference);
2. produce N seed-shaped events (~250 bytes) BEFORE timing;
3. start `loganalyzer consume` as its own process; time from the first stored batch to the last
   row, counting only the records stored in between;
   sample its peak RSS (VmHWM);
4. binary-COPY the same rows into an identical `logs` table of the reference database;
5. print logs/s, the reference rate, their ratio and the peak RSS against the targets.

The consumer runs four times over the same topic into fresh databases: detection off and on, as
one process and as two processes of one consumer group (how a bigger machine or user scales:
Kafka spreads the partitions; on 2 cores the second process uses the core PostgreSQL leaves).

Usage: .venv/bin/python bench/bench_ingest.py [--events N]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loganalyzer.db.connection import connect, drop_database, ensure_database  # noqa: E402
from loganalyzer.db.migrate import migrate  # noqa: E402
from loganalyzer.events import EventParser, ParseLimits  # noqa: E402
from loganalyzer.kafka_admin import ensure_topic  # noqa: E402
from streaming.log_row import copy_log_rows, use_c_bytea_dumper  # noqa: E402
from tests.support import (  # noqa: E402
    ADMIN_URL,
    CpuSplit,
    consumer_env,
    cpu_of,
    cpu_seconds,
    machine_busy_seconds,
    pids_named,
    produce,
    start_consumer,
    stored_records,
    tansu_broker,
)

SERVICES = [f"service-{i:02d}" for i in range(12)]
TEMPLATES = [
    "GET /api/v1/orders/{id} 200 {ms}ms user={user}",
    "POST /api/v1/payments 201 {ms}ms amount={amount} currency=EUR",
    "cache miss for key session:{id} after {ms}ms",
    "connection pool exhausted: {n} waiting, timeout {ms}ms",
    "user {user} logged in from 10.0.{n}.{id3}",
    "failed to reach inventory at http://inventory:8080/items/{id}: timeout after {ms}ms",
]
LEVELS = ["INFO"] * 90 + ["DEBUG"] * 5 + ["WARN"] * 3 + ["ERROR"] * 2


def seed_shaped_events(n: int, seed: int = 7) -> list[bytes]:
    """Events shaped like the seed's (~250 bytes): produced before timing starts."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(hours=2)
    out = []
    for i in range(n):
        ts = start + timedelta(microseconds=i * 5000)
        svc = SERVICES[i % len(SERVICES)]
        msg = rng.choice(TEMPLATES).format(
            id=rng.randrange(10**6),
            ms=rng.randrange(1, 900),
            user=f"u{rng.randrange(10**5)}",
            amount=rng.randrange(1, 10**4),
            n=rng.randrange(255),
            id3=rng.randrange(255),
        )
        doc: dict[str, Any] = {
            "timestamp": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": rng.choice(LEVELS),
            "service": svc,
            "host": f"{svc}-{rng.randrange(4)}",
            "message": msg,
            "metadata": {"request_id": f"{rng.getrandbits(64):016x}", "duration_ms": rng.randrange(1, 900)},
        }
        out.append(bytes(memoryview(orjson.dumps(doc))))  # exact size: orjson keeps a ~4 KiB buffer
    return out


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class ConsumerRun(NamedTuple):
    """From the first stored batch to the last row: the records stored in between (the first
    batch is not among them: it was committed before the clock started), and what they cost."""

    records: int
    seconds: float
    rss_mb: float
    cpu: CpuSplit

    @property
    def rate(self) -> float:
        return self.records / self.seconds


def run_consumer(
    url: str, bootstrap: str, topic: str, n: int, log_dir: Path, detection: bool, consumers: int = 1
) -> ConsumerRun:
    """Time `consumers` processes of one consumer group from the first stored row to the last.

    Counting all n records over that time would credit the run with its first batch for free
    (50,000 records: 5 % of a million), so only the records stored after the clock started count.
    """
    # A fresh group per run: a member of the previous run's group that the broker has not yet
    # expired must not hold up this run's join (offsets live in the fresh database anyway).
    env = consumer_env(
        url,
        bootstrap,
        topic,
        f"bench-{'on' if detection else 'off'}-{consumers}-{time.monotonic_ns()}",
        DETECTION_ENABLED="true" if detection else "false",
        LOG_LEVEL="INFO",  # one line per 10 s and per rebalance: negligible, and it explains a stall
    )
    procs: list[subprocess.Popen[bytes]] = []
    poll = connect(url, autocommit=True)
    try:
        for i in range(consumers):
            procs.append(start_consumer(env, log_dir / f"bench-consumer-{i}.log"))
        first = None
        last_progress, last_done = time.perf_counter(), -1
        while True:
            done = stored_records(poll)
            now = time.perf_counter()
            if first is None and done > 0:
                first, first_done = now, done
                pids = ([p.pid for p in procs], pids_named("postgres"), pids_named("tansu"))
                cpu0 = cpu_of(*pids)
            if done >= n:
                cpu1 = cpu_of(*pids)
                break
            if done != last_done:
                last_progress, last_done = now, done
            elif now - last_progress > 120:
                raise RuntimeError(
                    f"no progress for 120 s at {done:,} rows; see {log_dir}/bench-consumer-*.log"
                )
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"a consumer died; see {log_dir}/bench-consumer-*.log")
            time.sleep(0.02)
        assert first is not None
        rss = max(peak_rss_mb(p.pid) for p in procs)
        elapsed = now - first
    finally:
        poll.close()
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(30)
    return ConsumerRun(n - first_done, elapsed, rss, cpu1.since(cpu0))


def copy_reference(url: str, values: list[bytes]) -> tuple[float, CpuSplit]:
    """Binary COPY of the consumer's own rows (same parser, same wire encoding), timed alone.

    Returns (seconds, CPU split: `consumers` is this client's own CPU)."""
    parse = EventParser(ParseLimits(), datetime.now(UTC)).fields
    rows = []
    days = set()
    for off, raw in enumerate(values):
        fields = parse(raw)
        assert isinstance(fields, tuple), fields
        rows.append((*fields, "ref", 0, off))
        days.add(fields[0].date())
    with connect(url) as conn:
        use_c_bytea_dumper(conn)
        for d in sorted(days):
            conn.execute("SELECT ensure_log_partition(%s)", (d,))
        conn.commit()
        backend = conn.info.backend_pid
        cpu0 = CpuSplit(time.process_time(), cpu_seconds(backend), 0.0, machine_busy_seconds())
        t0 = time.perf_counter()
        with conn.cursor() as cur:
            copy_log_rows(cur, "logs", rows)
        conn.commit()
        elapsed = time.perf_counter() - t0
        cpu1 = CpuSplit(time.process_time(), cpu_seconds(backend), 0.0, machine_busy_seconds())
        return elapsed, cpu1.since(cpu0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=4)
    args = ap.parse_args()
    n = args.events
    log_dir = ROOT / ".state" / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)

    print(f"generating {n:,} seed-shaped events…", flush=True)
    values = seed_shaped_events(n)
    avg = sum(map(len, values)) / n
    print(f"  average size {avg:.0f} bytes")

    target = make_conninfo(ADMIN_URL, dbname=f"la_bench_{os.getpid()}")
    reference = make_conninfo(ADMIN_URL, dbname=f"la_bench_ref_{os.getpid()}")
    with tansu_broker(log_dir) as bootstrap:
        try:
            for url in (target, reference):
                ensure_database(url)
                with connect(url) as conn:
                    migrate(conn)
            topic = f"bench-{os.getpid()}"
            ensure_topic({"bootstrap.servers": bootstrap}, topic, args.partitions)
            t0 = time.perf_counter()
            produce(bootstrap, topic, values, keys=[f"t/{i % 12}".encode() for i in range(n)])
            print(f"produced {n:,} events in {time.perf_counter() - t0:.1f}s (before timing)", flush=True)

            runs: dict[tuple[bool, int], ConsumerRun] = {}
            for detection, consumers in ((False, 1), (True, 1), (False, 2), (True, 2)):
                runs[detection, consumers] = run_consumer(
                    target, bootstrap, topic, n, log_dir, detection, consumers
                )
                run = runs[detection, consumers]
                cpu, k = run.cpu, run.records
                print(
                    f"  {consumers} consumer(s), detection {'on' if detection else 'off'}: "
                    f"{run.rate:,.0f} logs/s; CPU µs per event: consumer {cpu.consumers / k * 1e6:.1f}, "
                    f"PostgreSQL {cpu.postgres / k * 1e6:.1f}, broker {cpu.broker / k * 1e6:.1f}; "
                    f"machine {cpu.machine / ((os.cpu_count() or 1) * run.seconds):.0%} busy",
                    flush=True,
                )
                with connect(target) as conn:
                    row = conn.execute(
                        "SELECT count(*), (SELECT coalesce(sum(count), 0) FROM log_patterns) FROM logs"
                    ).fetchone()
                assert row is not None and row[0] == n, f"expected {n} rows, found {row}"
                assert not detection or row[1] == n, f"pattern counts do not add up to rows: {row}"
                drop_database(target)
                ensure_database(target)
                with connect(target) as conn:
                    migrate(conn)
            ref_s, ref_cpu = copy_reference(reference, values)
            ref_rate = n / ref_s
            print(
                f"  raw COPY: {ref_rate:,.0f} logs/s; CPU µs per event: "
                f"client {ref_cpu.consumers / n * 1e6:.1f}, PostgreSQL {ref_cpu.postgres / n * 1e6:.1f}; "
                f"machine {ref_cpu.machine / ((os.cpu_count() or 1) * ref_s):.0%} busy",
                flush=True,
            )
        finally:
            drop_database(target)
            drop_database(reference)

    off, on = runs[False, 1], runs[True, 1]
    rate, d_rate, rss, d_rss = off.rate, on.rate, off.rss_mb, on.rss_mb
    rate2, d_rate2 = runs[False, 2].rate, runs[True, 2].rate
    ratio = rate / ref_rate
    d_ratio = d_rate / ref_rate
    print()
    print(
        f"consumer, detection off (first → last row):  {rate:>10,.0f} logs/s  "
        f"({off.seconds:.2f}s for the {off.records:,} after the first batch)"
    )
    print(f"consumer, detection on:                      {d_rate:>10,.0f} logs/s  ({on.seconds:.2f}s)")
    print(f"raw binary COPY of the same rows, same run:  {ref_rate:>10,.0f} logs/s  ({ref_s:.2f}s)")
    print(f"ratio consumer / raw COPY:                   {ratio:>10.2f} off, {d_ratio:.2f} on")
    print(f"consumer peak RSS:                           {rss:>10.0f} MB off, {d_rss:.0f} MB on")
    print(
        f"2 consumers in one group (Kafka scale-out):  {rate2:>10,.0f} logs/s off, {d_rate2:,.0f} on "
        f"(ratio {rate2 / ref_rate:.2f} / {d_rate2 / ref_rate:.2f})"
    )
    print()
    for name, ok in (
        ("≥ 100,000 logs/s end to end (detection off)", rate >= 100_000),
        ("ratio ≥ 0.5 (detection off)", ratio >= 0.5),
        ("peak RSS ≤ 300 MB (detection off)", rss <= 300),
        ("≥ 100,000 logs/s end to end with detection on (one consumer)", d_rate >= 100_000),
        ("≥ 100,000 logs/s end to end with detection on (2 consumers, one group)", d_rate2 >= 100_000),
    ):
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")


if __name__ == "__main__":
    main()
