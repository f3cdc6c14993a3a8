"""Several consumers on one host: the metrics port never stops a scale-out.

Both consumers run with CONSUMER_METRICS_PORT unset, as a user starts a second one. The port
they both try first is CONSUMER_METRICS_FIRST_PORT, a free port picked here instead of 9108, so
that the test collides with itself and never with another process on the machine; the fallback
logic is the one 9108 gets.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from loganalyzer.platform.processes import free_port
from tests.integration.consumer_harness import ROOT, consumer_env, consumer_process, stop_gracefully
from tests.support import count, new_topic, produce, valid_values, wait_for

pytestmark = pytest.mark.integration


def _served_port(log_path: Path) -> int | None:
    m = re.search(r"metrics: http://127\.0\.0\.1:(\d+)/metrics", log_path.read_text())
    return int(m.group(1)) if m else None


def _metrics(port: int) -> dict[str, float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    lines = (line.rsplit(" ", 1) for line in body.splitlines() if line and not line.startswith("#"))
    return {k: float(v) for k, v in lines}


def test_two_consumers_with_default_settings_share_the_partitions(
    broker: str, database_url: str, tmp_path: Path
) -> None:
    topic = new_topic(broker, partitions=4)
    first_port = free_port()
    env = consumer_env(database_url, broker, topic, CONSUMER_METRICS_FIRST_PORT=str(first_port))
    del env["CONSUMER_METRICS_PORT"]  # not set: the default port is only a first guess
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    with consumer_process(env, log_a) as a:
        wait_for(lambda: _served_port(log_a) is not None, 60, "the first consumer's metrics port")
        assert _served_port(log_a) == first_port
        wait_for(lambda: _metrics(first_port)["loganalyzer_assigned_partitions"] == 4, 60, "a owns all 4")
        with consumer_process(env, log_b) as b:
            wait_for(lambda: _served_port(log_b) is not None or b.poll() is not None, 60, "b's metrics port")
            assert b.poll() is None, log_b.read_text()[-2000:]
            second_port = _served_port(log_b)
            assert second_port is not None and second_port != first_port
            assert f"port {first_port} was taken" in log_b.read_text()

            def spread() -> bool:
                owned = [_metrics(p)["loganalyzer_assigned_partitions"] for p in (first_port, second_port)]
                return owned[0] > 0 and owned[1] > 0 and sum(owned) == 4

            wait_for(spread, 90, "the group to spread the 4 partitions over both consumers")
            values = valid_values(4000)
            produce(broker, topic, values, [f"k{i % 16}".encode() for i in range(len(values))])
            wait_for(lambda: count(database_url) >= len(values), 120, "every event stored")

            def written() -> list[float]:
                return [_metrics(p)["loganalyzer_events_written_total"] for p in (first_port, second_port)]

            # a batch is counted once its commit is seen, a moment after its rows are visible
            wait_for(lambda: sum(written()) == len(values), 30, "both consumers' counts")
            by_consumer = written()
            assert a.poll() is None and b.poll() is None, "both consumers stay alive"
            stop_gracefully(b, log_b)
        stop_gracefully(a, log_a)
    assert count(database_url) == len(values)
    assert (
        count(
            database_url,
            "SELECT count(*) FROM (SELECT 1 FROM logs GROUP BY kafka_partition, kafka_offset"
            " HAVING count(*) > 1) d",
        )
        == 0
    )
    assert all(w > 0 for w in by_consumer), by_consumer  # both did part of the work
    assert "Traceback" not in log_a.read_text() + log_b.read_text()


@contextmanager
def _taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


@pytest.mark.parametrize("via", ["CONSUMER_METRICS_PORT", "--metrics-port"])
def test_a_chosen_port_that_is_taken_stops_the_consumer_before_it_joins(
    broker: str, database_url: str, via: str
) -> None:
    topic = new_topic(broker, partitions=1)
    group = f"never-joins-{via.strip('-').lower().replace('_', '-')}"
    with _taken_port() as port:
        env = consumer_env(database_url, broker, topic, group=group)
        args = [sys.executable, "-m", "loganalyzer", "consume"]
        if via == "--metrics-port":
            del env["CONSUMER_METRICS_PORT"]
            args += ["--metrics-port", str(port)]
        else:
            env["CONSUMER_METRICS_PORT"] = str(port)
        proc = subprocess.run(
            args, env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True, timeout=60
        )
    output = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 2, output
    assert output.splitlines() == [
        f"port {port} for the consumer's /metrics is taken: stop what runs there, or set {via} "
        "to another port"
    ]
    # It stopped before creating its Kafka consumer, whose first act is the log line "consuming
    # <topic> from <broker> as group <group>" (the embedded broker does not list groups, so the
    # output is the evidence): the group never had this member.
    assert "consuming" not in output and group not in output


@pytest.mark.parametrize(
    ("option", "what"),
    [
        ("--kafka-port", "the embedded Kafka broker"),
        ("--aws-port", "the local AWS endpoint"),
        ("--mlflow-port", "MLflow"),
        ("--metrics-port", "the consumer's /metrics"),
    ],
)
def test_up_names_a_taken_port_in_one_line(tmp_path: Path, option: str, what: str) -> None:
    """`loganalyzer up` checks every port before it starts anything."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KAFKA_BOOTSTRAP_SERVERS", "AWS_ENDPOINT_URL", "MLFLOW_TRACKING_URI")
    }
    env["LOGANALYZER_STATE_DIR"] = str(tmp_path / "state")
    with _taken_port() as port:
        ports = {
            o: str(free_port()) for o in ("--kafka-port", "--aws-port", "--mlflow-port", "--metrics-port")
        }
        ports[option] = str(port)
        args = [sys.executable, "-m", "loganalyzer", "up", *(x for kv in ports.items() for x in kv)]
        proc = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    output = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 2, output
    assert output.splitlines() == [
        f"port {port} for {what} is taken: stop what runs there, or set {option} to another port"
        f' (with make: make up UP_ARGS="{option} PORT")'
    ]
    assert not (tmp_path / "state").exists()  # nothing was started
