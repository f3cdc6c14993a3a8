"""Detection state for 10,000 services: memory, checkpoint size, snapshot and restore time.

Issue 3 asks that detection state be bounded in memory with 10,000 services fitting. This feeds
N services (default 10,000) through one DetectionEngine for 65 minutes of event time (past the
60 minutes after which a service's seasonal baseline is allocated, so every service is in its
steady-state shape), each with 12 message templates drawn from a pool of 40, ~2 % errors, then:

- the process's RSS growth, in total and per service; reference in the same run: the RSS of the
  same process before the first event (interpreter, libraries, the engine's code);
- the checkpoint (`snapshot()`, what the consumer saves every DETECTION_CHECKPOINT_SECONDS, or
  less often when a snapshot is slow): its size, the time to write and to restore it, and the
  interval the consumer then uses;
- the bound: 1.5 × max_services services through an engine whose max_services is N keep N.

Usage: .venv/bin/python bench/bench_detection_state.py [--services 10000] [--minutes 65]
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "plugins"))

from loganalyzer.detection.config import DetectionConfig  # noqa: E402
from loganalyzer.detection.engine import DetectionEngine  # noqa: E402
from streaming.detection_stage import CHECKPOINT_COST_SHARE  # noqa: E402

SUBJECTS = ["payment", "order", "cache entry", "session", "upload", "queue item", "shard", "index"]
VERBS = ["completed", "retried", "expired", "rejected", "flushed"]
#: 40 message templates; each service uses 12 of them
POOL = [f"{s} {v} after {{n}} ms (id {{id}})" for s in SUBJECTS for v in VERBS]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def feed(engine: DetectionEngine, services: int, minutes: int, per_minute: int, seed: int = 1) -> int:
    """Every service logs `per_minute` events in every minute; returns the events fed."""
    rng = random.Random(seed)
    templates = [[POOL[(s * 7 + k) % len(POOL)] for k in range(12)] for s in range(services)]
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=minutes + 5)
    observe = engine.observe
    fed = 0
    for m in range(minutes):
        t0 = start + timedelta(minutes=m)
        for k in range(per_minute):
            ts = t0 + timedelta(seconds=k * 60 / per_minute)
            for s in range(services):
                tpl = templates[s][rng.randrange(12)]
                level = "ERROR" if rng.random() < 0.02 else "INFO"
                msg = tpl.format(n=rng.randrange(1000), id=rng.getrandbits(32))
                observe(ts, f"tenant-{s % 50}", f"service-{s}", level, msg, 20.0)
                fed += 1
        engine.drain_patterns()
        engine.advance()
        if m % 10 == 9:
            print(f"  {m + 1}/{minutes} minutes, {len(engine.services):,} services", flush=True)
    return fed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--services", type=int, default=10_000)
    ap.add_argument("--minutes", type=int, default=65)
    ap.add_argument("--per-minute", type=int, default=4, help="events per service per minute")
    args = ap.parse_args()
    n = args.services

    gc.collect()
    before = rss_mb()
    engine = DetectionEngine(DetectionConfig(max_services=n))
    t0 = time.perf_counter()
    fed = feed(engine, n, args.minutes, args.per_minute)
    feed_s = time.perf_counter() - t0
    gc.collect()
    after = rss_mb()

    t0 = time.perf_counter()
    blob = engine.snapshot()
    snap_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    restored = DetectionEngine.restore(DetectionConfig(max_services=n), blob)
    restore_s = time.perf_counter() - t0
    assert len(restored.services) == len(engine.services) == n
    del restored

    bounded = DetectionEngine(DetectionConfig(max_services=n))
    feed(bounded, n + n // 2, 1, 1, seed=2)
    kept = len(bounded.services)

    growth = after - before
    print()
    print(f"{n:,} services, {fed:,} events over {args.minutes} event-time minutes ({feed_s:.0f}s)")
    print(f"detection state in memory (RSS growth):  {growth:>8.0f} MB  ({growth * 1024 / n:.1f} KB/service)")
    print(f"reference: the process before any event: {before:>8.0f} MB")
    interval = max(10.0, CHECKPOINT_COST_SHARE * snap_s)
    print(
        f"checkpoint: {len(blob) / 1e6:.1f} MB ({len(blob) / n / 1024:.1f} KB per service); "
        f"snapshot {snap_s:.2f}s, restore {restore_s:.2f}s; taken every {interval:.0f}s "
        f"({snap_s / interval:.0%} of the detection thread; every 10 s would be {snap_s / 10:.0%})"
    )
    print(f"bound: {n + n // 2:,} services through max_services={n:,} keep {kept:,}")
    print()
    for name, ok in (
        (f"{n:,} services fit (state ≤ 1 GB)", growth <= 1024),
        ("max_services holds", kept == n),
    ):
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")


if __name__ == "__main__":
    main()
