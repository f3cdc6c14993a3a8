"""`loganalyzer up` end to end: everything starts, logs flow into PostgreSQL, Ctrl-C stops it all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from loganalyzer.platform.processes import free_port, port_open
from tests.support import count, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_up_runs_the_platform_and_stops_everything_on_sigterm(database_url: str, tmp_path: Path) -> None:
    kafka, aws, metrics, mlflow, api = free_port(), free_port(), free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "AWS_ENDPOINT", "MLFLOW_"))}
    env.update(
        DATABASE_URL=database_url,
        LOGANALYZER_STATE_DIR=str(tmp_path / "state"),
        KAFKA_SESSION_TIMEOUT_MS="6000",
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "loganalyzer",
            "up",
            "--kafka-port",
            str(kafka),
            "--aws-port",
            str(aws),
            "--metrics-port",
            str(metrics),
            "--mlflow-port",
            str(mlflow),
            "--api-port",
            str(api),
            "--no-airflow",  # its processes are tested on their own (test_airflow_platform.py)
            "--no-seed",  # the seeded history has its own test (test_up_seed.py)
            "--rate",
            "300",
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: port_open("127.0.0.1", metrics), 90, "the consumer's metrics endpoint")
        wait_for(lambda: count(database_url) > 200, 90, "generated logs in PostgreSQL")
        wait_for(lambda: port_open("127.0.0.1", mlflow), 240, "the MLflow server")
        # the banner's API example works: the local admin key reads the anomalies
        key = (tmp_path / "state" / "api-admin-key").read_text().strip()
        answer = httpx.get(
            f"http://127.0.0.1:{api}/api/v1/anomalies?limit=5", headers={"X-API-Key": key}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        assert "data" in answer.json()
        assert httpx.get(f"http://127.0.0.1:{api}/api/v1/anomalies", timeout=30).status_code == 401
        assert port_open("127.0.0.1", kafka) and port_open("127.0.0.1", aws)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    assert "Smart Log Analyzer is up" in text
    assert "stopped" in text
    assert "daily export:" in text  # the bucket, queues and table exist and the lambda runner runs
    time.sleep(0.5)
    assert f"http://127.0.0.1:{api}/docs" in text
    for port in (kafka, aws, metrics, mlflow, api):
        assert not port_open("127.0.0.1", port), f"something still listens on {port} after stop"
    logs = tmp_path / "state" / "logs"
    assert {p.name for p in logs.iterdir()} >= {
        "broker.log",
        "aws.log",
        "mlflow.log",
        "consumer.log",
        "generator.log",
        "api.log",
        "lambda-runner.log",
    }
    assert count(database_url, "SELECT count(DISTINCT service) FROM logs") >= 5
