"""Slack, S3/SQS/DynamoDB and MLflow down while the real consumer runs: ingestion and detection go
on, the dependent work waits with backoff, says why, and is done once the dependency is back.

Each test runs `loganalyzer consume` as its own process against a real Tansu broker and
PostgreSQL, and the dependency's real client process (`loganalyzer alerts`, `loganalyzer
lambda-runner`, the consumer's own champion watcher) against a real server that goes away: the
Slack stand-in stopped, moto behind a TCP gate that refuses connections (moto keeps its state in
memory, so stopping it would wipe the queue instead of making it unreachable), the MLflow server
killed with SIGKILL and started again on its store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from loganalyzer.db.connection import connect
from loganalyzer.generator.incidents import Incident
from loganalyzer.generator.services import CATALOGUE, service_by_name
from loganalyzer.generator.traffic import Record, TrafficModel
from loganalyzer.platform.local import mlflow_spec
from loganalyzer.platform.processes import free_port, port_open
from tests.integration.consumer_harness import consumer_env, consumer_process, stop_gracefully
from tests.integration.slack_receiver import SlackReceiver
from tests.integration.tcp_gate import TcpGate
from tests.support import count, moto_server, new_topic, produce, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[2]
RATE = 40.0  # events/s of event time over the 12 services


def traffic(
    start: datetime, end: datetime, incidents: list[Incident] | None = None, seed: int = 5
) -> list[Record]:
    return list(TrafficModel(CATALOGUE, RATE, seed=seed, incidents=incidents or []).records(start, end))


def send(broker: str, topic: str, records: list[Record]) -> None:
    produce(broker, topic, [r.value for r in records], [r.key for r in records])


def before(records: list[Record], when: datetime) -> tuple[list[Record], list[Record]]:
    cut = next((i for i, r in enumerate(records) if r.timestamp >= when), len(records))
    return records[:cut], records[cut:]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "loganalyzer", *args]


@contextmanager
def process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def log_text(log: Path) -> str:
    return log.read_text(errors="replace")


# -- Slack ---------------------------------------------------------------------------------------

BURSTS = "SELECT count(*) FROM anomalies WHERE service = 'search' AND anomaly_type = 'error_rate_spike'"


def test_slack_down_delays_the_alert_not_the_ingestion(
    broker: str, database_url: str, tmp_path: Path
) -> None:
    start = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
    search = service_by_name("search")
    burst = Incident(
        "error_burst",
        search.tenant,
        search.name,
        start + timedelta(minutes=35),
        start + timedelta(minutes=42),
        0.4,
    )
    first, rest = before(
        traffic(start, start + timedelta(minutes=60), [burst]), start + timedelta(minutes=48)
    )
    receiver = SlackReceiver().start()
    port = receiver.port
    receiver.stop()  # Slack unreachable from the start: connection refused
    cfg = tmp_path / "alerts.yaml"
    cfg.write_text(
        yaml.safe_dump({"group_wait_seconds": 0, "retry_base_seconds": 0.5, "retry_max_seconds": 2})
    )
    topic = new_topic(broker)
    alerts_env = {
        "DATABASE_URL": database_url,
        "SLACK_WEBHOOK_URL": f"http://127.0.0.1:{port}/hook/a",
        "ALERTS_CONFIG": str(cfg),
        "ALERTS_POLL_SECONDS": "0.2",
        "API_BASE_URL": "http://api.test",
    }
    log, alerts_log = tmp_path / "consumer.log", tmp_path / "alerts.log"
    pending_failed = (
        "SELECT count(*) FROM alert_deliveries WHERE state = 'pending' AND attempts >= 2 "
        "AND last_error LIKE 'connection failed%'"
    )
    with (
        consumer_process(consumer_env(database_url, broker, topic), log) as consumer,
        process(cli("alerts"), alerts_env, alerts_log) as alerts,
    ):
        send(broker, topic, first)
        wait_for(lambda: count(database_url) >= len(first), 180, "the first part stored")
        wait_for(lambda: count(database_url, BURSTS) == 1, 60, "the error burst as an anomaly")
        wait_for(lambda: count(database_url, pending_failed) >= 1, 60, "failed attempts recorded")
        # Slack still down: the rest of the traffic is stored and judged all the same
        send(broker, topic, rest)
        wait_for(lambda: count(database_url) == len(first) + len(rest), 180, "everything stored")
        assert alerts.poll() is None, log_text(alerts_log)[-2000:]
        assert count(database_url, "SELECT count(*) FROM alert_deliveries WHERE state = 'sent'") == 0
        with connect(database_url) as conn:
            row = conn.execute(
                "SELECT id FROM anomalies WHERE service = 'search' AND anomaly_type = 'error_rate_spike'"
            ).fetchone()
        assert row is not None
        back = SlackReceiver(port=port).start()  # Slack is back
        try:
            wait_for(
                lambda: (
                    count(database_url, "SELECT count(*) FROM alert_deliveries WHERE state <> 'sent'") == 0
                ),
                60,
                "every delivery sent once Slack answers",
            )
            texts = [m["text"] for m in back.delivered()]
        finally:
            back.stop()
        stop_gracefully(consumer, log)
    assert any(row[0] in t for t in texts), texts
    with connect(database_url) as conn:
        attempts = conn.execute(
            "SELECT event, attempts FROM alert_deliveries WHERE anomaly_id = %s", (row[0],)
        ).fetchall()
    assert ("opened",) in [(e,) for e, _ in attempts]
    assert max(a for _, a in attempts) >= 3  # failed at least twice, then sent


# -- S3, SQS and DynamoDB (the export and the lambda runner) ---------------------------------------


def test_aws_unreachable_never_touches_ingestion_and_the_summaries_come_later(
    broker: str, database_url: str, tmp_path: Path
) -> None:
    day = (datetime.now(UTC) - timedelta(days=2)).date()
    start = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    first, rest = before(traffic(start, start + timedelta(minutes=20)), start + timedelta(minutes=10))
    with moto_server(tmp_path) as direct:
        gate = TcpGate(int(direct.rsplit(":", 1)[1])).open()
        aws_env = {
            "AWS_ENDPOINT_URL": gate.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "DATABASE_URL": database_url,
        }
        subprocess.run(
            cli("aws", "bootstrap"), env={**os.environ, **aws_env}, check=True, capture_output=True
        )

        def export_day() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                cli("export", "day", "--date", day.isoformat()),
                env={**os.environ, **aws_env},
                capture_output=True,
                text=True,
                timeout=300,
            )

        topic = new_topic(broker)
        log, runner_log = tmp_path / "consumer.log", tmp_path / "runner.log"
        # the consumer gets the platform's whole environment, AWS included: it must not need it
        cenv = {**consumer_env(database_url, broker, topic), **aws_env}
        try:
            with (
                consumer_process(cenv, log) as consumer,
                process(cli("lambda-runner", "--wait-seconds", "1"), aws_env, runner_log) as runner,
            ):
                send(broker, topic, first)
                wait_for(lambda: count(database_url) >= len(first), 120, "the first part stored")
                gate.close()  # S3, SQS and DynamoDB unreachable
                send(broker, topic, rest)
                wait_for(
                    lambda: count(database_url) == len(first) + len(rest), 120, "stored during the outage"
                )
                # the day's export fails now, naming the endpoint (Airflow's retries run it again)
                failed = export_day()
                assert failed.returncode != 0
                assert gate.url.split("//")[1] in failed.stdout + failed.stderr, failed.stderr[-2000:]
                wait_for(
                    lambda: "SQS queue unavailable" in log_text(runner_log),
                    120,
                    "the runner saying why it waits",
                )
                assert runner.poll() is None, log_text(runner_log)[-2000:]
                assert _summaries(direct, day) == 0
                gate.open()  # back
                done = export_day()
                assert done.returncode == 0, done.stderr[-2000:]
                # the export's notifications waited on the queue; the runner picks them up
                wait_for(lambda: _summaries(direct, day) > 0, 180, "the day's summaries in DynamoDB")
                # said once the poll that carried them returns, which is after the lambda wrote them
                wait_for(
                    lambda: "SQS queue reachable again" in log_text(runner_log),
                    60,
                    "the runner saying the queue is back",
                )
                assert runner.poll() is None
                stop_gracefully(consumer, log)
        finally:
            gate.close()
    assert "retrying in" in log_text(runner_log)
    assert count(database_url) == len(first) + len(rest)


def _summaries(endpoint: str, day: date) -> int:
    import boto3

    ddb = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    items = ddb.scan(TableName="anomaly_summaries")["Items"]
    return sum(1 for i in items if i.get("date", {}).get("S") == day.isoformat())


# -- MLflow ------------------------------------------------------------------------------------------


@contextmanager
def mlflow_server(port: int, state: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    spec = mlflow_spec(port, state)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(spec.argv), env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_for(lambda: port_open("127.0.0.1", port) or proc.poll() is not None, 300, "the MLflow server")
        assert proc.poll() is None, log_text(log)[-2000:]
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # a crash, workers included
            proc.wait()


def _register(uri: str, seed: int) -> str:
    import numpy as np

    from loganalyzer.detection.features import FEATURE_NAMES
    from loganalyzer.model.forest import calibrate, train_forest
    from loganalyzer.model.registry import register_forest

    rows = np.random.default_rng(seed).normal(size=(300, len(FEATURE_NAMES))).tolist()
    estimator = train_forest(rows)
    return register_forest(uri, estimator, FEATURE_NAMES, rows, threshold=calibrate(estimator, rows))


def test_mlflow_down_keeps_the_champion_in_use_and_a_new_one_is_picked_up_after(
    broker: str, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
    records = traffic(start, start + timedelta(minutes=30))
    a, rest = before(records, start + timedelta(minutes=10))
    b, c = before(rest, start + timedelta(minutes=20))
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    monkeypatch.chdir(tmp_path)
    topic = new_topic(broker)
    log, mlflow_log = tmp_path / "consumer.log", tmp_path / "mlflow.log"
    # MLflow's own HTTP retries inside one call (7 by default, up to two minutes) shortened: the
    # watcher's loop around them is what is under test
    env = consumer_env(
        database_url,
        broker,
        topic,
        MLFLOW_TRACKING_URI=uri,
        MODEL_REFRESH_SECONDS="1",
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="1",
        MLFLOW_HTTP_REQUEST_TIMEOUT="5",
    )
    with consumer_process(env, log) as consumer:
        # MLflow is not even started yet: the consumer stores and judges without the forest
        send(broker, topic, a)
        wait_for(lambda: count(database_url) >= len(a), 120, "stored before MLflow ever answered")
        with mlflow_server(port, tmp_path / "state", mlflow_log):
            v1 = _register(uri, 1)
            wait_for(lambda: f"version {v1} (" in log_text(log), 120, "the consumer loading the champion")
        # MLflow crashed: ingestion and detection (with the model in memory) go on
        send(broker, topic, b)
        wait_for(lambda: count(database_url) >= len(a) + len(b), 120, "stored while MLflow is down")
        wait_for(
            lambda: "could not check log-anomaly-detector@champion" in log_text(log),
            120,
            "the outage noticed",
        )
        assert consumer.poll() is None
        with mlflow_server(port, tmp_path / "state", mlflow_log):  # back, on the same store
            v2 = _register(uri, 2)
            assert v2 != v1
            wait_for(lambda: f"version {v2} (" in log_text(log), 180, "the new champion picked up")
            send(broker, topic, c)
            wait_for(lambda: count(database_url) == len(records), 120, "everything stored")
        stop_gracefully(consumer, log)
    assert count(database_url, "SELECT count(DISTINCT metadata->>'request_id') FROM logs") == len(records)
