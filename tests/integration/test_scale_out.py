"""Scale-out under failure: three consumers of one group, one killed -9 and one added mid-run.

Paced generator traffic with incidents flows while the group changes twice. Rows and detection
state are stored per partition with the partition's offset (streaming/consumer.py), so whichever
consumer owns a partition next resumes from its stored offset and its detector checkpoint. What
must hold at the end: every event once in `logs`; every incident of the generator's ground truth
once in `anomalies`; and the episodes found equal those of one uninterrupted engine per partition
(no duplicate episode, none lost, none invented across the rebalances). Warm start is off, so a
partition's detection state can only arrive through its checkpoint.
"""

from __future__ import annotations

import re
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from loganalyzer.db.connection import connect
from loganalyzer.generator.incidents import EXPECTED_ANOMALY, Incident
from loganalyzer.generator.services import CATALOGUE, service_by_name
from loganalyzer.generator.traffic import TrafficModel
from tests.integration.consumer_harness import consumer_env, start_consumer_process, stop_gracefully
from tests.integration.test_detection_consumer import _uninterrupted
from tests.support import count, new_topic, produce, wait_for

pytestmark = pytest.mark.integration

MINUTES = 95
RATE = 20.0  # events per simulated second, scaled by hour and weekday (32,262 from _start())
CHUNKS = 12
PACE_SECONDS = 1.5  # between chunks: the run spans ~20 s of production


def _incident(
    kind: str, service: str, start: datetime, minutes: tuple[int, int], magnitude: float
) -> Incident:
    spec = service_by_name(service)
    return Incident(
        kind,
        spec.tenant,
        spec.name,
        start + timedelta(minutes=minutes[0]),
        start + timedelta(minutes=minutes[1]),
        magnitude,
    )


def _start() -> datetime:
    """Sunday 22:28 UTC, the latest at least a day back (its traffic is a day old, so no
    partition looks live, and well within the parser's 30 days).

    Why a fixed hour of a fixed weekday: the generator's traffic follows the hour and the
    weekday, and whether a new ERROR template and an error burst meet near a minute's close
    depends on it. Started at now - 3 h, the test compared different traffic at every hour, and
    the engine that closed minutes only per batch differed from the uninterrupted one at some
    hours and never at others (2026-12-07: 4 of 7 runs differed in the night, 7 of 7 passed at
    04:00 UTC). On this traffic it differed in 5 of 5 runs (2026-12-07)."""
    day = (datetime.now(UTC) - timedelta(days=2)).replace(hour=22, minute=28, second=0, microsecond=0)
    return day - timedelta(days=(day.weekday() - 6) % 7)


def _assigned(log: Path) -> bool:
    return log.exists() and b"assigned partitions [" in log.read_bytes().replace(
        b"assigned partitions []", b""
    )


def test_three_consumers_one_killed_one_added_every_event_and_incident_exactly_once(
    broker: str, database_url: str, tmp_path: Path
) -> None:
    start = _start()
    incidents = [
        _incident("error_burst", "search", start, (40, 50), 0.4),
        _incident("traffic_spike", "orders", start, (58, 66), 8.0),
        _incident("error_burst", "payments", start, (72, 82), 0.4),
    ]
    model = TrafficModel(CATALOGUE, RATE, seed=7, incidents=incidents)
    records = list(model.records(start, start + timedelta(minutes=MINUTES)))
    values: list[bytes | None] = [r.value for r in records]
    keys = [r.key for r in records]
    topic = new_topic(broker, partitions=4)
    env = consumer_env(
        database_url,
        broker,
        topic,
        group=f"scale-{topic}",
        DETECTION_CHECKPOINT_SECONDS="0.2",
        DETECTION_WARM_START_HOURS="0",
        MLFLOW_TRACKING_URI="",
    )
    logs = [tmp_path / f"consumer-{i}.log" for i in range(4)]
    procs = [start_consumer_process(env, logs[i]) for i in range(3)]
    try:
        wait_for(
            lambda: all(_assigned(log) for log in logs[:3]), 60, "three consumers sharing the partitions"
        )
        bounds = [len(values) * i // CHUNKS for i in range(CHUNKS + 1)]
        killed_log_offsets: dict[Path, int] = {}
        for chunk in range(CHUNKS):
            lo, hi = bounds[chunk], bounds[chunk + 1]
            produce(broker, topic, values[lo:hi], keys[lo:hi])
            if chunk == 3:
                # every partition has a checkpoint by now: what the next owners restore from
                wait_for(lambda h=hi: count(database_url) >= h, 60, "the first third stored")
                wait_for(
                    lambda: (
                        count(
                            database_url, "SELECT count(DISTINCT kafka_partition) FROM detector_checkpoints"
                        )
                        == 4
                    ),
                    30,
                    "a detector checkpoint for every partition",
                )
                procs[1].send_signal(signal.SIGKILL)  # a crash mid-stream, partitions held
                procs[1].wait(10)
                killed_log_offsets = {log: log.stat().st_size for log in logs[:3]}
            if chunk == 7:
                procs.append(start_consumer_process(env, logs[3]))
                killed_log_offsets[logs[3]] = 0
            time.sleep(PACE_SECONDS)
        wait_for(lambda: count(database_url) >= len(values), 120, f"all {len(values)} events stored")
        wait_for(lambda: _assigned(logs[3]), 30, "the added consumer owning partitions")
        wait_for(
            lambda: (
                count(
                    database_url,
                    "SELECT count(DISTINCT service) FROM anomalies WHERE service IN "
                    "('search', 'orders', 'payments')",
                )
                == 3
            ),
            60,
            "the three incidents as anomalies",
        )
        time.sleep(2)  # a late duplicate would arrive now
        for i in (0, 2, 3):
            stop_gracefully(procs[i], logs[i])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)

    # every event exactly once
    assert count(database_url) == len(values)
    assert count(database_url, "SELECT count(DISTINCT (kafka_partition, kafka_offset)) FROM logs") == len(
        values
    )
    with connect(database_url) as conn:
        anomalies = conn.execute("SELECT service, anomaly_type, window_start FROM anomalies").fetchall()
        partition_of: dict[str, int] = dict(
            conn.execute("SELECT DISTINCT service, kafka_partition FROM logs").fetchall()
        )
    # every incident of the ground truth exactly once
    for inc in model.injected or incidents:
        hits = [
            a
            for a in anomalies
            if a[0] == inc.service
            and a[1] == EXPECTED_ANOMALY[inc.type]
            and inc.start - timedelta(minutes=5) <= a[2] <= inc.end
        ]
        assert len(hits) == 1, (inc, hits)
    # no episode duplicated, lost or invented across the rebalances
    found = [(a[0], a[1], a[2]) for a in anomalies]
    assert len(found) == len(set(found)), "an episode was written twice"
    reference = _uninterrupted(values, partition_of)
    differs = f"only with rebalances: {set(found) - reference}, only without: {reference - set(found)}"
    # detection state moved with its partitions: after the crash no owner started a partition cold
    after_crash = b"".join(log.read_bytes()[offset:] for log, offset in killed_log_offsets.items())
    assert b"no detector checkpoint" not in after_crash, after_crash.decode()[-3000:]
    held = re.findall(rb"assigned partitions \[([\d, ]+)\]", logs[1].read_bytes())
    taken_over = re.findall(rb"assigned partitions \[([\d, ]+)\]", after_crash)
    assert held and taken_over, "the crashed consumer held partitions and the others took them"
    moved = {int(p) for p in held[-1].split(b",")}
    assert moved <= {int(p) for line in taken_over for p in line.split(b",")}
    # detection is a function of each partition's records in order (the engine closes minutes as
    # event time passes them, not when a batch ends), so restoring a checkpoint and replaying
    # from its offset, in other batches, finds what one uninterrupted engine finds
    assert set(found) == reference, f"episodes differ from an uninterrupted run: {differs}"
