"""Backpressure: a slow or absent PostgreSQL slows the consumer down; its memory stays bounded.

The consumer writes a batch before it reads the next one, so while a write waits nothing more
is taken from librdkafka's local queue, and that queue stops fetching at
`queued.max.messages.kbytes` (64 MiB, streaming/consumer.py). A producer far ahead of the
database therefore costs the consumer at most that queue and one batch, however large the
backlog in Kafka. Both tests sample the consumer process's RSS (/proc/PID/status) throughout.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from loganalyzer.db.connection import connect, ensure_database
from loganalyzer.db.migrate import migrate
from tests.integration.consumer_harness import consumer_env, consumer_process, stop_gracefully
from tests.support import PrivatePostgres, count, new_topic, produce, valid_values, wait_for

pytestmark = pytest.mark.integration

WARM = 20_000
BACKLOG = 300_000  # ~80 MB of JSON: more than librdkafka's 64 MiB local queue
#: what the consumer may grow by while the database stalls: the local queue + one batch + slack
RSS_GROWTH_BOUND_MB = 200


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class RssSampler:
    """RSS of one process every 0.2 s on a thread, until stopped."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self.samples.append(rss_mb(self.pid))
            except OSError:
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def peak(self) -> float:
        return max(self.samples)


def test_a_stalled_database_holds_the_consumer_back_with_bounded_memory(
    broker: str, database_url: str, tmp_path: Path
) -> None:
    topic = new_topic(broker)
    env = consumer_env(database_url, broker, topic, MLFLOW_TRACKING_URI="")
    log = tmp_path / "consumer.log"
    produce(broker, topic, valid_values(WARM))
    backlog = valid_values(BACKLOG, start=WARM)
    with consumer_process(env, log) as proc:
        wait_for(lambda: count(database_url) == WARM, 60, "the warm-up rows")
        baseline = rss_mb(proc.pid)
        with RssSampler(proc.pid) as stalled, psycopg.connect(database_url) as blocker:
            # every batch takes its partitions' offsets FOR UPDATE first: this makes it wait
            blocker.execute("LOCK TABLE ingest_offsets IN ACCESS EXCLUSIVE MODE")
            produce(broker, topic, backlog)
            time.sleep(8)  # the consumer's fetcher fills its local queue and stops there
            during = count(database_url)
            blocker.rollback()
        with RssSampler(proc.pid) as catching_up:
            wait_for(lambda: count(database_url) == WARM + BACKLOG, 180, "the backlog after the stall")
        stop_gracefully(proc, log)
    backlog_mb = sum(len(v or b"") for v in backlog) / 2**20
    print(
        f"\nbacklog {backlog_mb:.0f} MB; RSS MB: baseline {baseline:.0f}, stalled peak {stalled.peak:.0f}, "
        f"catch-up peak {catching_up.peak:.0f}; rows during the stall {during}"
    )
    assert during <= WARM + 50_000, "the consumer wrote through the stall"  # at most a batch was under way
    assert stalled.peak - baseline < RSS_GROWTH_BOUND_MB, (baseline, stalled.samples)
    assert catching_up.peak - baseline < RSS_GROWTH_BOUND_MB + 100, (baseline, catching_up.samples)
    assert (
        count(database_url, "SELECT count(DISTINCT (kafka_partition, kafka_offset)) FROM logs")
        == WARM + BACKLOG
    )


#: 20 s in CI; `TEST_OUTAGE_SECONDS=180` runs the same test through a three-minute outage
OUTAGE_SECONDS = float(os.environ.get("TEST_OUTAGE_SECONDS", "20"))


def test_a_database_outage_is_waited_out_said_in_the_log_and_resumed(
    broker: str, private_pg: PrivatePostgres, tmp_path: Path
) -> None:
    url = make_conninfo(private_pg.url, dbname="loganalyzer")
    ensure_database(url)
    with connect(url) as conn:
        migrate(conn)
    topic = new_topic(broker)
    env = consumer_env(url, broker, topic, MLFLOW_TRACKING_URI="")
    log = tmp_path / "consumer.log"
    produce(broker, topic, valid_values(WARM))
    backlog = valid_values(BACKLOG // 2, start=WARM)
    with consumer_process(env, log) as proc:
        wait_for(lambda: count(url) == WARM, 60, "the rows before the outage")
        baseline = rss_mb(proc.pid)
        with RssSampler(proc.pid) as outage:
            private_pg.stop("immediate")
            down_at = time.monotonic()
            produce(broker, topic, backlog)  # traffic goes on while the database is down
            time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
            assert proc.poll() is None, "the consumer gave up during the outage"
            private_pg.start()
            up_at = time.monotonic()
        wait_for(lambda: count(url) == WARM + len(backlog), 120, "every row after the outage")
        resumed_after = time.monotonic() - up_at
        stop_gracefully(proc, log)
    text = log.read_text()
    print(
        f"\noutage {OUTAGE_SECONDS:.0f}s: RSS MB baseline {baseline:.0f}, peak {outage.peak:.0f}; "
        f"caught up {resumed_after:.1f}s after"
    )
    assert "PostgreSQL unavailable" in text and "retrying in" in text, text[-2000:]
    assert "Traceback" not in text
    assert outage.peak - baseline < RSS_GROWTH_BOUND_MB, (baseline, outage.samples)
    assert count(url, "SELECT count(DISTINCT (kafka_partition, kafka_offset)) FROM logs") == WARM + len(
        backlog
    )
