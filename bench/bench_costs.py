"""Cost engine benchmark: quote latency, and forecast accuracy against a naive forecast.

1. Latency: parse + price + JSON of the `loganalyzer costs example` document (every section),
   per quote; the reference is an orjson round trip of the same document in the same run.
2. Forecast accuracy on simulated histories of 30 days (each trial a fresh seed): the realised
   next month is drawn from the same process. Reported per scenario: how often the 80 %
   interval covers the realised cost (target 80 %), and the mean absolute percentage error of
   the mean forecast beside the naive forecast (last 7 days' average x days in the month).
   Scenarios: a linear trend with noise (the method's assumption), the same with a strong
   weekly cycle, and a level that jumps by half on day 20 (both outside the assumption).

Usage: .venv/bin/python bench/bench_costs.py [--trials N] [--replicates B]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loganalyzer.costs.cli import EXAMPLE_USAGE  # noqa: E402
from loganalyzer.costs.engine import price, quote_json  # noqa: E402
from loganalyzer.costs.forecast import forecast_month  # noqa: E402
from loganalyzer.costs.usage import Usage, parse_usage  # noqa: E402

START = date(2026, 11, 1)
Process = Callable[[int, random.Random], float]


def latency(n: int) -> None:
    raw = orjson.dumps(EXAMPLE_USAGE)
    t0 = time.perf_counter()
    for _ in range(n):
        quote_json(price(parse_usage(orjson.loads(raw))))
    engine = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for _ in range(n):
        orjson.dumps(orjson.loads(raw))
    reference = (time.perf_counter() - t0) / n
    print(f"quote (parse + price + JSON), example document: {engine * 1e6:8.1f} µs/quote")
    print(f"reference: orjson round trip of the same doc:   {reference * 1e6:8.1f} µs")


def usage(requests: float, as_of: str = "2026-11-01") -> Usage:
    """A day (or month) of a log pipeline: requests drive every other quantity; 400 GB stored."""
    return parse_usage(
        {
            "as_of": as_of,
            "lambda": {"requests": requests, "duration_ms": 120, "memory_mb": 1536},
            "s3": {"storage_gb": 400, "put_requests": requests / 20, "get_requests": requests / 5},
            "dynamodb": {"write_request_units": requests / 2, "read_request_units": requests},
            "data_transfer_out_gb": requests / 20_000,
        }
    )


def trend(t: int, rng: random.Random) -> float:
    return max(0.0, 3_000_000 + 40_000 * t + rng.gauss(0, 500_000))


def weekly(t: int, rng: random.Random) -> float:
    return max(0.0, (3_000_000 + 40_000 * t) * (1.4 if t % 7 < 5 else 0.3) + rng.gauss(0, 300_000))


def jump(t: int, rng: random.Random) -> float:
    return max(0.0, (3_000_000 if t < 20 else 4_500_000) + rng.gauss(0, 300_000))


def scenario(name: str, process: Process, trials: int, replicates: int) -> float:
    covered = 0
    ours: list[float] = []
    naive: list[float] = []
    elapsed = 0.0
    for trial in range(trials):
        rng = random.Random(trial)
        values = [process(t, rng) for t in range(30)]
        history = [(START + timedelta(days=t), usage(v)) for t, v in enumerate(values)]
        t0 = time.perf_counter()
        f = forecast_month(history, replicates=replicates, seed=trial)
        elapsed += time.perf_counter() - t0
        realised = sum(process(t, rng) for t in range(30, 30 + f.days))
        actual = price(usage(realised, "2026-12-01")).total
        naive_cost = price(usage(statistics.fmean(values[-7:]) * f.days, "2026-12-01")).total
        covered += f.low <= actual <= f.high
        ours.append(abs(float(f.mean - actual)) / float(actual))
        naive.append(abs(float(naive_cost - actual)) / float(actual))
    print(
        f"{name:<22} 80 % interval covers {covered / trials:6.1%}   "
        f"MAPE mean forecast {statistics.fmean(ours):6.2%}   "
        f"naive (last 7 days) {statistics.fmean(naive):6.2%}"
    )
    return elapsed / trials


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--replicates", type=int, default=400)
    args = parser.parse_args()
    print(f"date {date.today().isoformat()}; trials {args.trials}; bootstrap replicates {args.replicates}")
    latency(2000)
    per_forecast = [
        scenario("linear trend + noise", trend, args.trials, args.replicates),
        scenario("weekly cycle", weekly, args.trials, args.replicates),
        scenario("level jump on day 20", jump, args.trials, args.replicates),
    ]
    print(f"forecast (30 days of history): {statistics.fmean(per_forecast) * 1000:.0f} ms each")


if __name__ == "__main__":
    main()
