"""Producers that do not key by tenant and service: one service's events on several partitions.

Detection state is per partition, so each partition's engine sees part of the service's traffic
and may open the same episode (same type, same window start) as another. The consumer says so
(a gauge, one log line per service) and stores each partition's episode under its own id."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from loganalyzer.db.connection import connect
from streaming.derived import AnomalyRow, PartitionDerived
from streaming.detection_stage import DetectionStage
from streaming.sink import PostgresSink
from tests.unit.test_idle_partitions import NOW, Clocks, _batch, _drops, _stage

pytestmark = pytest.mark.integration


def _silence_on_both(stage: DetectionStage, clocks: Clocks) -> list[AnomalyRow]:
    """An hour of one service on partitions 0 and 1, then nothing: both report the silence."""
    found: list[AnomalyRow] = []
    for _ in range(8 * 60):
        clocks.tick(1.0)
        found += _drops(stage.idle())
    return found


def test_one_service_on_two_partitions_is_reported_once_and_its_episodes_kept_apart(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    clocks = Clocks()
    stage = _stage(clocks)
    for p in (0, 1):
        stage.assign(p, 0, None)
    caplog.set_level(logging.WARNING, "streaming.detection_stage")
    for half in (0, 1):  # two batches per partition: the second must not log again
        for p in (0, 1):
            start = NOW - timedelta(minutes=60 - 30 * half)
            stage.process(_batch(p, start, 30, first_offset=1800 * half))
    assert stage.services_on_several_partitions() == 1
    lines = [r.getMessage() for r in caplog.records if "arrives on partitions" in r.getMessage()]
    assert lines == [
        "service t/api arrives on partitions [0, 1]: its detection state is split between them "
        "(each sees part of its traffic); key records by tenant/service (docs/ingestion.md)"
    ]

    found = _silence_on_both(stage, clocks)
    assert sorted(a.status for a in found) == ["open", "open"]
    assert len({a.id for a in found}) == 2  # the same episode of the same service, twice

    # a replay of partition 0 (a new owner, a restart) finds the same id again
    clocks2 = Clocks()
    again = _stage(clocks2)
    again.assign(0, 0, None)
    for half in (0, 1):
        again.process(_batch(0, NOW - timedelta(minutes=60 - 30 * half), 30, first_offset=1800 * half))
    [replayed] = _silence_on_both(again, clocks2)
    assert replayed.id in {a.id for a in found}

    with connect(database_url) as conn:
        sink = PostgresSink(conn, "logs")
        sink.stored_offsets([0, 1])
        for p in (0, 1):
            for half in (0, 1):
                sink.write(_batch(p, NOW - timedelta(minutes=60 - 30 * half), 30, first_offset=1800 * half))
        by_partition = {
            0: [a for a in found if a.id == replayed.id],
            1: [a for a in found if a.id != replayed.id],
        }
        written = sink.write_idle(
            {p: PartitionDerived(anomalies=rows) for p, rows in by_partition.items()}, {0: 3600, 1: 3600}
        )
        assert written == {0, 1}
        stored = conn.execute("SELECT service, anomaly_type, status FROM anomalies").fetchall()
    assert stored == [("api", "log_volume_drop", "open")] * 2

    stage.revoke(1)
    assert stage.services_on_several_partitions() == 0
