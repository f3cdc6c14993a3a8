"""Hostile records among valid traffic, through the real broker and `loganalyzer consume`.

The consumer must stay up, store every valid event exactly once, and account for every Kafka
record (partition, offset) in `logs` or `dead_letters`. `run_mixed_corpus` takes any list of
records, so a corpus from elsewhere runs the same way (docs/ingestion.md):

    LOGANALYZER_HOSTILE_CORPUS=/path/to/corpus .venv/bin/pytest -q -s \
        tests/integration/test_hostile_ingest.py::test_external_corpus

A directory holds one record per file; a file holds one record per line.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from loganalyzer.db.connection import connect
from tests.hostile_corpus import hostile_cases, load_external_corpus, valid_event
from tests.integration.consumer_harness import consumer_env, consumer_process, stop_gracefully
from tests.support import new_topic, produce, wait_for

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class CorpusRun:
    #: position in the produced sequence of each hostile record
    hostile_at: list[int]
    #: reasons of the dead letters, by position of the record in the produced sequence
    reasons: dict[int, str]
    #: positions of the records stored in `logs`
    stored: set[int]


def run_mixed_corpus(
    broker: str, database_url: str, hostile: list[bytes | None], log_path: Path, n_valid: int = 2000
) -> CorpusRun:
    """Produce `hostile` spread evenly through `n_valid` valid events on one topic, consume it
    with `loganalyzer consume` (a process of its own, detection on, as a user runs it), and
    check what must hold for any corpus. Returns where each record ended up, for more checks."""
    now = datetime.now(UTC)
    step = max(1, n_valid // max(1, len(hostile)))
    values: list[bytes | None] = []
    hostile_at: list[int] = []
    valid_at: list[int] = []
    taken = 0
    for i in range(n_valid):
        valid_at.append(len(values))
        values.append(valid_event(now, i))
        if i % step == step - 1 and taken < len(hostile):
            hostile_at.append(len(values))
            values.append(hostile[taken])
            taken += 1
    for h in hostile[taken:]:
        hostile_at.append(len(values))
        values.append(h)
    keys = [f"k{i % 16}".encode() for i in range(len(values))]
    topic = new_topic(broker, partitions=4)
    produce(broker, topic, values, keys)

    env = consumer_env(database_url, broker, topic, LOG_LEVEL="INFO")
    with consumer_process(env, log_path) as proc, connect(database_url, autocommit=True) as conn:

        def stored() -> int:
            if proc.poll() is not None:
                raise AssertionError(
                    f"the consumer exited with {proc.returncode}: {log_path.read_text()[-3000:]}"
                )
            row = conn.execute("SELECT coalesce(sum(next_offset), 0) FROM ingest_offsets").fetchone()
            return int(row[0]) if row else 0

        wait_for(lambda: stored() >= len(values), 180, "every record stored or dead-lettered")
        assert proc.poll() is None, "the consumer stays up"
        stop_gracefully(proc, log_path)

    with connect(database_url) as conn:
        rows = conn.execute(
            "SELECT kafka_partition, kafka_offset, (metadata->>'corpus_valid_id')::int FROM logs"
            " WHERE kafka_topic = %s",
            (topic,),
        ).fetchall()
        letters = conn.execute(
            "SELECT kafka_partition, kafka_offset, reason, raw FROM dead_letters WHERE kafka_topic = %s",
            (topic,),
        ).fetchall()
        ends: dict[int, int] = dict(
            conn.execute("SELECT kafka_partition, next_offset FROM ingest_offsets").fetchall()
        )

    # every record offset is accounted for exactly once, in logs or in dead_letters
    coordinates = Counter([(p, o) for p, o, _ in rows] + [(p, o) for p, o, _, _ in letters])
    assert max(coordinates.values()) == 1, [c for c, n in coordinates.items() if n > 1][:5]
    assert set(coordinates) == {(p, o) for p, end in ends.items() for o in range(end)}
    assert sum(ends.values()) == len(values)

    # every valid event is in logs exactly once
    valid_ids = Counter(v for _, _, v in rows if v is not None)
    assert set(valid_ids) == set(range(n_valid)), sorted(set(range(n_valid)) - set(valid_ids))[:10]
    assert max(valid_ids.values()) == 1

    # Map coordinates back to positions in `values`: a key always goes to one partition (read
    # from where the valid events landed), and a partition's offsets follow production order.
    partition_of = {keys[valid_at[v]]: p for p, _, v in rows if v is not None}
    by_partition: dict[int, list[int]] = {}
    for pos, key in enumerate(keys):
        by_partition.setdefault(partition_of[key], []).append(pos)
    position = {(p, o): pos for p, positions in by_partition.items() for o, pos in enumerate(positions)}
    reasons = {position[(p, o)]: reason for p, o, reason, _ in letters}
    for p, o, _, raw in letters:
        assert (bytes(raw) if raw is not None else None) == values[position[(p, o)]], "the raw bytes are kept"
    stored_at = {position[(p, o)] for p, o, _ in rows}
    return CorpusRun(hostile_at, reasons, stored_at)


def test_hostile_corpus_among_valid_traffic(broker: str, database_url: str, tmp_path: Path) -> None:
    cases = hostile_cases(datetime.now(UTC))
    run = run_mixed_corpus(broker, database_url, [c.raw for c in cases], tmp_path / "consumer.log")
    for case, pos in zip(cases, run.hostile_at, strict=True):
        if case.reason is None:
            assert pos in run.stored, case.kind
        else:
            assert run.reasons.get(pos) == case.reason, (case.kind, run.reasons.get(pos))
    assert len(run.reasons) == sum(c.reason is not None for c in cases)


@pytest.mark.skipif(
    not os.environ.get("LOGANALYZER_HOSTILE_CORPUS"), reason="LOGANALYZER_HOSTILE_CORPUS is not set"
)
def test_external_corpus(broker: str, database_url: str, tmp_path: Path) -> None:
    corpus = load_external_corpus(Path(os.environ["LOGANALYZER_HOSTILE_CORPUS"]))
    assert corpus, "the corpus is empty"
    run = run_mixed_corpus(broker, database_url, corpus, tmp_path / "consumer.log")
    assert set(run.hostile_at) <= run.stored | set(run.reasons)
    reasons = Counter(run.reasons[pos] for pos in run.hostile_at if pos in run.reasons)
    stored = sum(pos in run.stored for pos in run.hostile_at)
    print(f"\n{len(corpus)} records: {stored} stored, dead letters by reason: {dict(reasons.most_common())}")
