"""Ingestion end to end on a real broker and a real PostgreSQL: exact counts, always."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from loganalyzer.db.connection import connect
from tests.integration.consumer_harness import (
    consumer_env,
    consumer_process,
    running_consumer,
    stop_gracefully,
)
from tests.support import count, new_topic, produce, valid_values, wait_for

pytestmark = pytest.mark.integration

POISON: list[tuple[bytes | None, str]] = [
    (b"not json at all", "invalid_json"),
    (b"\xff\xfe\x00garbage", "invalid_utf8"),
    (b"[1, 2, 3]", "not_an_object"),
    (b'{"level": "INFO", "service": "a", "host": "h", "message": "m"}', "missing_field"),
    (
        b'{"timestamp": "yesterday", "level": "INFO", "service": "a", "host": "h", "message": "m"}',
        "bad_timestamp",
    ),
    (
        b'{"timestamp": "2026-01-01T00:00:00Z", "level": 5, "service": "a", "host": "h", "message": "m"}',
        "wrong_type",
    ),
    (b"x" * 70_000, "oversized"),
    (None, "not_an_object"),
]


def _with_poison(n_valid: int) -> tuple[list[bytes | None], dict[str, int]]:
    values = valid_values(n_valid)
    expected: dict[str, int] = {}
    step = max(1, n_valid // (len(POISON) * 5))
    out: list[bytes | None] = []
    for i, v in enumerate(values):
        out.append(v)
        if i % step == 0:
            raw, reason = POISON[(i // step) % len(POISON)]
            out.append(raw)
            expected[reason] = expected.get(reason, 0) + 1
    return out, expected


def test_every_valid_event_lands_and_every_bad_one_is_dead_lettered(broker: str, database_url: str) -> None:
    topic = new_topic(broker)
    values, expected_reasons = _with_poison(20_000)
    produce(broker, topic, values)
    n_bad = sum(expected_reasons.values())
    with running_consumer(consumer_env(database_url, broker, topic)):
        wait_for(
            lambda: (
                count(database_url) + count(database_url, "SELECT count(*) FROM dead_letters") >= len(values)
            ),
            60,
            "all records stored",
        )
    assert count(database_url) == 20_000
    with connect(database_url) as conn:
        reasons = dict(conn.execute("SELECT reason, count(*) FROM dead_letters GROUP BY reason").fetchall())
        dupes = conn.execute(
            "SELECT count(*) FROM (SELECT kafka_partition, kafka_offset FROM logs "
            "GROUP BY 1, 2 HAVING count(*) > 1) d"
        ).fetchone()
        stored = conn.execute("SELECT sum(next_offset) FROM ingest_offsets").fetchone()
        levels = dict(conn.execute("SELECT level, count(*) FROM logs GROUP BY level").fetchall())
        raw = conn.execute("SELECT raw FROM dead_letters WHERE reason = 'invalid_json' LIMIT 1").fetchone()
    assert reasons == expected_reasons
    assert sum(reasons.values()) == n_bad
    assert dupes == (0,)
    assert stored == (len(values),)
    assert set(levels) == {"INFO", "WARN", "ERROR", "DEBUG"}  # warning -> WARN, err -> ERROR
    assert raw is not None and bytes(raw[0]) == b"not json at all"


def test_replay_from_offset_zero_adds_no_rows(broker: str, database_url: str) -> None:
    topic = new_topic(broker)
    produce(broker, topic, valid_values(5_000))
    env = consumer_env(database_url, broker, topic)
    with running_consumer(env):
        wait_for(lambda: count(database_url) == 5_000, 60, "first pass")
    # A new consumer group, and the database's own offsets forgotten: everything is read again.
    with connect(database_url) as conn:
        conn.execute("UPDATE ingest_offsets SET next_offset = 0")
        conn.commit()
    replay = consumer_env(database_url, broker, topic)
    with running_consumer(replay) as consumer:
        wait_for(lambda: consumer.totals.skipped >= 5_000, 60, "replayed records skipped")
    assert count(database_url) == 5_000
    assert count(database_url, "SELECT sum(next_offset) FROM ingest_offsets") == 5_000


def test_new_group_resumes_from_database_offsets(broker: str, database_url: str) -> None:
    topic = new_topic(broker)
    produce(broker, topic, valid_values(3_000))
    with running_consumer(consumer_env(database_url, broker, topic)):
        wait_for(lambda: count(database_url) == 3_000, 60, "first pass")
    produce(broker, topic, valid_values(1_000, start=3_000))
    with running_consumer(consumer_env(database_url, broker, topic)) as consumer:
        wait_for(lambda: count(database_url) == 4_000, 60, "second pass")
    assert consumer.totals.skipped == 0  # it sought to the stored offsets instead of re-reading


def test_kill_9_mid_stream_then_restart_gives_exact_counts(
    broker: str, database_url: str, tmp_path: Path
) -> None:
    topic = new_topic(broker)
    n = 150_000
    produce(broker, topic, valid_values(n))
    env = consumer_env(database_url, broker, topic, CONSUMER_BATCH_MAX_MESSAGES="5000")
    log = tmp_path / "consumer.log"
    with consumer_process(env, log) as proc:
        wait_for(lambda: count(database_url) > 10_000, 90, "some rows before the kill")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed_at = count(database_url)
        assert killed_at < n, "the consumer finished before it could be killed: raise n"
    with consumer_process(env, log) as proc:
        wait_for(lambda: count(database_url) >= n, 120, "all rows after restart")
        time.sleep(1.0)  # anything extra would show up now
        assert count(database_url) == n
        stop_gracefully(proc, log)
    assert count(database_url, "SELECT count(DISTINCT (kafka_partition, kafka_offset)) FROM logs") == n


def test_sigterm_flushes_commits_and_exits_zero(broker: str, database_url: str, tmp_path: Path) -> None:
    from confluent_kafka import Consumer, TopicPartition

    topic = new_topic(broker)
    produce(broker, topic, valid_values(2_000))
    env = consumer_env(database_url, broker, topic)
    with consumer_process(env, tmp_path / "c.log") as proc:
        wait_for(lambda: count(database_url) == 2_000, 60, "rows")
        stop_gracefully(proc, tmp_path / "c.log")
    assert count(database_url, "SELECT sum(next_offset) FROM ingest_offsets") == 2_000
    # Kafka's copy of the offsets (for lag tooling) matches what the database holds.
    with connect(database_url) as conn:
        stored = dict(conn.execute("SELECT kafka_partition, next_offset FROM ingest_offsets").fetchall())
    probe = Consumer({"bootstrap.servers": broker, "group.id": env["KAFKA_GROUP_ID"]})
    try:
        committed = probe.committed([TopicPartition(topic, p) for p in stored], timeout=10)
    finally:
        probe.close()
    assert {tp.partition: tp.offset for tp in committed} == stored


def test_two_consumers_in_one_group_share_partitions_exactly(broker: str, database_url: str) -> None:
    topic = new_topic(broker)
    n = 40_000
    produce(broker, topic, valid_values(n))
    env = consumer_env(database_url, broker, topic, CONSUMER_BATCH_MAX_MESSAGES="2000")
    with running_consumer(env) as a, running_consumer(env) as b:
        wait_for(lambda: count(database_url) >= n, 90, "rows from both consumers")
        time.sleep(1.0)
    assert count(database_url) == n
    assert a.totals.written + b.totals.written == n


def test_events_land_in_daily_partitions(broker: str, database_url: str) -> None:
    topic = new_topic(broker)
    now = datetime.now(UTC)
    docs = [
        {
            "timestamp": (now - timedelta(days=d)).isoformat(),
            "level": "INFO",
            "service": "s",
            "host": "h",
            "message": f"day {d}",
        }
        for d in range(3)
    ]
    produce(broker, topic, [orjson.dumps(d) for d in docs])
    with running_consumer(consumer_env(database_url, broker, topic)):
        wait_for(lambda: count(database_url) == 3, 60, "rows")
    with connect(database_url) as conn:
        parts = conn.execute("SELECT count(DISTINCT tableoid) FROM logs").fetchone()
    assert parts == (len({(now - timedelta(days=d)).date() for d in range(3)}),)


def test_metrics_endpoint_reports_consumed_written_dead_lettered_and_offsets(
    broker: str, database_url: str
) -> None:
    import urllib.request

    from loganalyzer.platform.processes import free_port

    topic = new_topic(broker, partitions=2)
    produce(broker, topic, [*valid_values(500), b"{broken", None])
    port = free_port()
    with running_consumer(consumer_env(database_url, broker, topic)) as consumer:
        consumer.metrics.serve(port)
        wait_for(lambda: consumer.totals.written + consumer.totals.dead_lettered == 502, 60, "records")
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    lines = dict(line.rsplit(" ", 1) for line in body.splitlines() if line and not line.startswith("#"))
    assert float(lines["loganalyzer_events_consumed_total"]) == 502
    assert float(lines["loganalyzer_events_written_total"]) == 500
    assert float(lines['loganalyzer_events_dead_lettered_total{reason="invalid_json"}']) == 1
    assert float(lines['loganalyzer_events_dead_lettered_total{reason="not_an_object"}']) == 1
    offsets = sum(float(v) for k, v in lines.items() if k.startswith("loganalyzer_committed_offset{"))
    assert offsets == 502
    assert float(lines["loganalyzer_batch_write_seconds_count"]) >= 1
    # every batch's stages are timed (detection is off here, so there is no "detect")
    batches = float(lines['loganalyzer_batch_stage_seconds_count{stage="parse"}'])
    assert batches >= 1
    assert float(lines['loganalyzer_batch_stage_seconds_count{stage="delivery"}']) == batches
    assert float(lines['loganalyzer_batch_stage_seconds_count{stage="previous_write"}']) == batches
    assert 'loganalyzer_batch_stage_seconds_count{stage="detect"}' not in lines
