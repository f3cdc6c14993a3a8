"""`loganalyzer up` end to end: everything starts, logs flow into PostgreSQL, Ctrl-C stops it all."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from loganalyzer.platform.processes import port_open
from tests.support import count, wait_for
from tests.up_support import launch_up

pytestmark = pytest.mark.integration


def test_up_runs_the_platform_and_stops_everything_on_sigterm(database_url: str, tmp_path: Path) -> None:
    # Airflow's processes are tested on their own (test_airflow_platform.py), the seeded history
    # too (test_up_seed.py)
    with launch_up(tmp_path, database_url, "--no-seed", "--rate", "300") as up:
        wait_for(lambda: port_open("127.0.0.1", up.ports["metrics"]), 90, "the consumer's metrics endpoint")
        wait_for(lambda: count(database_url) > 200, 90, "generated logs in PostgreSQL")
        wait_for(lambda: port_open("127.0.0.1", up.ports["mlflow"]), 240, "the MLflow server")
        # the banner's API example works: the local admin key reads the anomalies
        answer = httpx.get(
            f"{up.api_url}/api/v1/anomalies?limit=5", headers={"X-API-Key": up.api_key}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        assert "data" in answer.json()
        assert httpx.get(f"{up.api_url}/api/v1/anomalies", timeout=30).status_code == 401
        assert port_open("127.0.0.1", up.ports["kafka"]) and port_open("127.0.0.1", up.ports["aws"])
        returncode = up.stop(timeout=60)
    text = up.output()
    assert returncode == 0, text[-3000:]
    assert "Smart Log Analyzer is up" in text
    assert "stopped" in text
    assert "daily export:" in text  # the bucket, queues and table exist and the lambda runner runs
