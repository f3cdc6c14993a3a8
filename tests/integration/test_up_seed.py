"""`loganalyzer up` seeds history before the live traffic: anomalies to look at within minutes,
a first model promoted to @champion, and event time that runs on from history into live traffic
without a hole."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import orjson
import pytest

from loganalyzer.platform.processes import free_port
from tests.support import count, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


# ~2 minutes on a quiet machine; the timeout leaves room for a machine at load average 20
@pytest.mark.timeout(600)
def test_up_seeds_history_finds_its_incidents_and_promotes_a_first_model(
    database_url: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    kafka, aws, metrics, mlflow, api = free_port(), free_port(), free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "AWS_ENDPOINT", "MLFLOW_"))}
    state = tmp_path / "state"
    env.update(DATABASE_URL=database_url, LOGANALYZER_STATE_DIR=str(state), KAFKA_SESSION_TIMEOUT_MS="6000")
    out_path = tmp_path / "up.out"
    began = time.monotonic()
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "loganalyzer",
                "up",
                *("--kafka-port", str(kafka), "--aws-port", str(aws), "--metrics-port", str(metrics)),
                *("--mlflow-port", str(mlflow), "--api-port", str(api)),
                "--no-airflow",
                *("--seed-history", "2h", "--rate", "100"),
            ],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def output() -> str:
            return out_path.read_text(errors="replace")

        wait_for(lambda: "Smart Log Analyzer is up" in output() or proc.poll() is not None, 300, "the banner")
        assert proc.poll() is None, output()[-3000:]
        seeded_in = time.monotonic() - began
        key = (state / "api-admin-key").read_text().strip()

        def anomalies() -> list[dict[str, object]]:
            answer = httpx.get(
                f"http://127.0.0.1:{api}/api/v1/anomalies?limit=50", headers={"X-API-Key": key}, timeout=30
            )
            assert answer.status_code == 200, answer.text
            return list(answer.json()["data"])

        # the seeded incidents are found: anomaly rows through the API
        wait_for(lambda: len(anomalies()) > 0, 60, "an anomaly row through the API")
        rows = anomalies()
        print(f"banner after {seeded_in:.0f}s; anomalies: {[(r['type'], r['service']) for r in rows]}")
        # ... and they are the injected incidents (the seed's five, then the live generator's demo
        # incidents), not noise
        truth = [orjson.loads(line) for line in (state / "ground_truth.jsonl").read_bytes().splitlines()]
        assert len(truth) >= 5
        injected = {t["service"] for t in truth}
        assert {r["service"] for r in rows} <= injected, (rows, injected)

        # the first model: trained on the seeded history by the retraining code, and promoted
        wait_for(lambda: "first model" in output().split("is up", 1)[-1], 300, "the first model's line")
        assert "promoted to @champion" in output(), output()[-3000:]
        champion = MlflowClient(f"http://127.0.0.1:{mlflow}").get_model_version_by_alias(
            "log-anomaly-detector", "champion"
        )
        assert champion.tags.get("decision") == "promoted"

        # history and live traffic meet: every minute from the seed's start to the live generator's
        # latest event holds logs (a hole would be a minute without any)
        wait_for(lambda: "records stored:" in output(), 30, "a live status line")
        first = count(database_url, 'SELECT extract(epoch FROM min("timestamp"))::bigint FROM logs')
        last = count(database_url, 'SELECT extract(epoch FROM max("timestamp"))::bigint FROM logs')
        assert last - first > 2 * 3600 - 120, (datetime.fromtimestamp(first), datetime.fromtimestamp(last))
        empty = count(
            database_url,
            "SELECT count(*) FROM generate_series("
            f"date_trunc('minute', to_timestamp({first})), date_trunc('minute', to_timestamp({last})) "
            "- interval '1 minute', interval '1 minute') AS m(minute) WHERE NOT EXISTS (SELECT 1 FROM logs "
            'WHERE "timestamp" >= m.minute AND "timestamp" < m.minute + interval \'1 minute\')',
        )
        assert empty == 0, f"{empty} minute(s) without logs between history and live traffic"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:  # a failed assertion: stop it as Ctrl-C would, so no child outlives it
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    text = output()
    assert proc.returncode == 0, text[-3000:]
    assert "history: " in text and "incident(s) in it" in text
