"""Template miner benchmark: Grouping Accuracy on Loghub-2k, Drain3's defaults in the same run.

GA (see ../shared/GUIDE.md §2): a message is correct only when the set of messages in its
predicted group equals exactly its ground-truth group; GA = correct / all, per system, averaged.
Our miner runs with its ONE default configuration on every system. Throughput is measured on
all systems' messages concatenated and repeated to 200,000 (the cache's effect shows there).

Usage: .venv/bin/python bench/bench_template_miner.py [--data DIR] [--also DIR ...]
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loganalyzer.detection.config import DetectionConfig  # noqa: E402
from loganalyzer.patterns import TemplateMiner  # noqa: E402

#: the miner each service of the consumer runs, with the consumer's default limits
CONSUMER_MINER = DetectionConfig().miner_config()

SYSTEMS = ("HDFS", "Spark", "BGL", "HPC", "Linux", "Android", "Proxifier", "Mac")


def load(data: Path, system: str) -> tuple[list[str], list[str]]:
    path = data / system / f"{system}_2k.log_structured.csv"
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        rows = list(csv.DictReader(f))
    return [r["Content"] for r in rows], [r["EventId"] for r in rows]


def grouping_accuracy(predicted: Sequence[Hashable], truth: Sequence[str]) -> float:
    pred_groups: dict[Hashable, set[int]] = defaultdict(set)
    true_groups: dict[str, set[int]] = defaultdict(set)
    for i, (p, t) in enumerate(zip(predicted, truth, strict=True)):
        pred_groups[p].add(i)
        true_groups[t].add(i)
    correct = sum(
        1 for i, (p, t) in enumerate(zip(predicted, truth, strict=True)) if pred_groups[p] == true_groups[t]
    )
    return correct / len(truth)


def ours(messages: Sequence[str]) -> list[Hashable]:
    """Each line's final group: what `loganalyzer patterns mine` writes (by default)."""
    miner = TemplateMiner(CONSUMER_MINER)
    ids = [miner.add(m).pattern_id for m in messages]
    return [miner.resolve(i) for i in ids]


def ours_streamed(messages: Sequence[str]) -> list[Hashable]:
    """Each line's group as it was when the line was read (`patterns mine --stream`): groups that
    merge later stay apart here."""
    miner = TemplateMiner(CONSUMER_MINER)
    return [miner.add(m).pattern_id for m in messages]


def drain3_defaults(messages: Sequence[str]) -> list[Hashable]:
    from drain3 import TemplateMiner as Drain3

    logging.getLogger("drain3").setLevel(logging.ERROR)
    miner = Drain3()
    ids = [miner.add_log_message(m)["cluster_id"] for m in messages]
    return list(ids)


def timed(
    fn: Callable[[Sequence[str]], list[Hashable]], messages: Sequence[str]
) -> tuple[list[Hashable], float]:
    t0 = time.perf_counter()
    out = fn(messages)
    return out, len(messages) / (time.perf_counter() - t0)


def systems_in(data: Path) -> list[str]:
    """The Loghub systems in a folder: the eight of ../shared first (in their order), then any other."""
    found = sorted(p.name for p in data.iterdir() if (p / f"{p.name}_2k.log_structured.csv").is_file())
    return [s for s in SYSTEMS if s in found] + [s for s in found if s not in SYSTEMS]


def table(data: Path) -> tuple[list[float], list[str]]:
    """Print GA per system of one folder, ours vs Drain3; returns our GA per system and all messages."""
    print(
        f"{'system':<10} {'ours GA':>8} {'streamed':>9} {'Drain3 GA':>10} {'ours msg/s':>11} "
        f"{'Drain3 msg/s':>13}"
    )
    ga_ours: list[float] = []
    ga_streamed: list[float] = []
    ga_drain: list[float] = []
    everything: list[str] = []
    for system in systems_in(data):
        messages, truth = load(data, system)
        everything += messages
        pred, rate = timed(ours, messages)
        dpred, drate = timed(drain3_defaults, messages)
        a, b = grouping_accuracy(pred, truth), grouping_accuracy(dpred, truth)
        st = grouping_accuracy(ours_streamed(messages), truth)
        ga_ours.append(a)
        ga_streamed.append(st)
        ga_drain.append(b)
        print(f"{system:<10} {a:>8.3f} {st:>9.3f} {b:>10.3f} {rate:>11,.0f} {drate:>13,.0f}")
    avg, davg = sum(ga_ours) / len(ga_ours), sum(ga_drain) / len(ga_drain)
    print(f"{'average':<10} {avg:>8.3f} {sum(ga_streamed) / len(ga_streamed):>9.3f} {davg:>10.3f}")
    return ga_ours, everything


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "benchmarks" / "loghub-2k")
    ap.add_argument(
        "--also",
        type=Path,
        action="append",
        default=[],
        help="another folder of Loghub-2k systems, reported separately (systems the defaults never saw)",
    )
    args = ap.parse_args()
    if not args.data.is_dir():
        sys.exit(f"no benchmark data at {args.data}: pass --data DIR")

    ga, everything = table(args.data)
    avg = sum(ga) / len(ga)
    unseen: list[float] = []
    for extra in args.also:
        print(f"\nsystems in {extra} (reported apart: the defaults were never looked at with them):")
        unseen += table(extra)[0]

    stream = (everything * (200_000 // len(everything) + 1))[:200_000]
    _, rate = timed(ours, stream)
    _, drate = timed(drain3_defaults, stream)
    print(
        f"\nthroughput on {len(stream):,} messages (the systems above, repeated): ours {rate:,.0f} msg/s, "
        f"Drain3 {drate:,.0f} msg/s"
    )
    print()
    print(f"  {'PASS' if avg >= 0.95 else 'FAIL'}  average GA ≥ 0.95 with one configuration (ours {avg:.3f})")
    print(f"  {'PASS' if min(ga) >= 0.80 else 'FAIL'}  no system below GA 0.80 (lowest {min(ga):.3f})")
    if unseen:
        print(f"        systems the defaults never saw: average GA {sum(unseen) / len(unseen):.3f}")
    print(f"  {'PASS' if rate >= 50_000 else 'FAIL'}  ≥ 50,000 messages/s mined (ours {rate:,.0f})")


if __name__ == "__main__":
    main()
