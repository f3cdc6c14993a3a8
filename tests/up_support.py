"""`loganalyzer up` with everything, Airflow included, as a test fixture: started once per session
(Airflow alone takes a minute or two and ~2 GB), stopped with SIGTERM at the end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import make_conninfo

from loganalyzer.db.connection import drop_database
from loganalyzer.platform.airflow import metadata_url_for
from loganalyzer.platform.processes import free_port
from tests.support import ADMIN_URL, fresh_database, wait_for

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class RunningPlatform:
    database_url: str
    state: Path
    api_url: str
    airflow_url: str
    mlflow_url: str
    metrics_url: str
    out_path: Path
    proc: subprocess.Popen[bytes]

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def api_key(self) -> str:
        return (self.state / "api-admin-key").read_text().strip()

    def banner_line(self, prefix: str) -> str:
        """The banner line that starts with `prefix` (e.g. 'Airflow UI/API:')."""
        for line in self.output().splitlines():
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no banner line starting with {prefix!r}")

    def try_after(self, prefix: str) -> str:
        """The command on the banner's `try:` line under the line that starts with `prefix`."""
        lines = self.output().splitlines()
        for i, line in enumerate(lines):
            if line.startswith(prefix):
                follow = lines[i + 1].strip()
                assert follow.startswith("try:"), follow
                return follow.removeprefix("try:").strip()
        raise AssertionError(f"no banner line starting with {prefix!r}")


@contextmanager
def platform_with_airflow(
    tmp: Path, seed_history: str = "2h", rate: float = 100
) -> Iterator[RunningPlatform]:
    kafka, aws, metrics, mlflow, api, airflow = (free_port() for _ in range(6))
    metadata_db = f"airflow_test_{uuid.uuid4().hex[:10]}"
    metadata = make_conninfo(ADMIN_URL, dbname=metadata_db)
    with fresh_database() as database_url:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("KAFKA_", "AWS_ENDPOINT", "MLFLOW_", "AIRFLOW", "GRAFANA_URL"))
        }
        state = tmp / "state"
        env.update(
            DATABASE_URL=database_url,
            LOGANALYZER_STATE_DIR=str(state),
            KAFKA_SESSION_TIMEOUT_MS="6000",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=metadata_url_for(metadata, metadata_db),
        )
        out_path = tmp / "up.out"
        with open(out_path, "wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "loganalyzer",
                    "up",
                    *("--kafka-port", str(kafka), "--aws-port", str(aws), "--metrics-port", str(metrics)),
                    *("--mlflow-port", str(mlflow), "--api-port", str(api), "--airflow-port", str(airflow)),
                    *("--seed-history", seed_history, "--rate", str(rate)),
                ],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        running = RunningPlatform(
            database_url=database_url,
            state=state,
            api_url=f"http://127.0.0.1:{api}",
            airflow_url=f"http://127.0.0.1:{airflow}",
            mlflow_url=f"http://127.0.0.1:{mlflow}",
            metrics_url=f"http://127.0.0.1:{metrics}/metrics",
            out_path=out_path,
            proc=proc,
        )
        try:
            wait_for(
                lambda: "Smart Log Analyzer is up" in running.output() or proc.poll() is not None,
                600,
                "the banner of `up` with Airflow",
                interval=1.0,
            )
            assert proc.poll() is None, running.output()[-4000:]
            yield running
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            time.sleep(1)
            drop_database(metadata)
