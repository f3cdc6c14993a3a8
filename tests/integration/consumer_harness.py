"""Running the real consumer in a thread (fast) or as a process (for kill -9) against test services."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loganalyzer.settings import load_settings
from streaming.consumer import LogConsumer
from streaming.detection_stage import DetectionStage

ROOT = Path(__file__).resolve().parents[2]


def consumer_env(
    database_url: str, bootstrap: str, topic: str, group: str | None = None, **extra: str
) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPIC": topic,
        "KAFKA_GROUP_ID": group or f"g-{uuid.uuid4().hex[:8]}",
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
        "CONSUMER_METRICS_PORT": "off",
        "CONSUMER_BATCH_MAX_SECONDS": "0.2",
        **extra,
    }


@contextmanager
def running_consumer(
    env: dict[str, str], detection: DetectionStage | None = None, stop_within: float = 60
) -> Iterator[LogConsumer]:
    """The consumer in a thread of the test (its internals reachable); it must stop cleanly."""
    consumer = LogConsumer(load_settings(env), detection=detection)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(consumer.run()), daemon=True)
    thread.start()
    try:
        yield consumer
    finally:
        consumer.stop()
        thread.join(stop_within)
        assert not thread.is_alive(), f"consumer did not stop within {stop_within:.0f} s"
    assert result == [0], f"consumer exit code {result}"


def start_consumer_process(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    out = open(log_path, "ab")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "loganalyzer", "consume"],
        env={**os.environ, **env},
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )


@contextmanager
def consumer_process(env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`loganalyzer consume` as its own process for the block; killed on the way out if the test
    left it running (a failed assertion), so no consumer outlives its test."""
    proc = start_consumer_process(env, log_path)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def stop_gracefully(proc: subprocess.Popen[bytes], log_path: Path) -> None:
    """SIGTERM, and the clean exit the consumer promises: code 0 within 30 s (else its log's tail)."""
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, log_path.read_text()[-2000:]
