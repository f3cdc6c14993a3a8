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


#: what the developer's shell may hold that would point `up` at something else than its own parts
FOREIGN_ENV = ("KAFKA_", "AWS_ENDPOINT", "MLFLOW_", "AIRFLOW", "GRAFANA_URL")
PARTS = ("kafka", "aws", "metrics", "mlflow", "api")


@dataclass
class UpProcess:
    """One `loganalyzer up` started by a test, on free ports, its output in a file."""

    database_url: str
    state: Path
    ports: dict[str, int]
    out_path: Path
    proc: subprocess.Popen[bytes]

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def url(self, part: str) -> str:
        return f"http://127.0.0.1:{self.ports[part]}"

    @property
    def api_url(self) -> str:
        return self.url("api")

    @property
    def airflow_url(self) -> str:
        return self.url("airflow")

    @property
    def mlflow_url(self) -> str:
        return self.url("mlflow")

    @property
    def metrics_url(self) -> str:
        return self.url("metrics") + "/metrics"

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

    def wait_for_banner(self, timeout: float) -> None:
        wait_for(
            lambda: "Smart Log Analyzer is up" in self.output() or self.proc.poll() is not None,
            timeout,
            "the banner of `up`",
            interval=1.0,
        )
        assert self.proc.poll() is None, self.output()[-4000:]

    def stop(self, timeout: float = 120) -> int:
        """SIGTERM, as Ctrl-C would; SIGKILL to the whole group if it does not end in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


#: the fixture's platform: the same process, Airflow included
RunningPlatform = UpProcess


@contextmanager
def launch_up(
    tmp: Path, database_url: str, *args: str, airflow: bool = False, env: dict[str, str] | None = None
) -> Iterator[UpProcess]:
    """Start `loganalyzer up` with `args` on free ports and a state folder under `tmp`; stop it
    (and every child) on the way out, whatever happened."""
    ports = {part: free_port() for part in (*PARTS, "airflow") if airflow or part != "airflow"}
    state = tmp / "state"
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV)}
    child_env.update(
        DATABASE_URL=database_url, LOGANALYZER_STATE_DIR=str(state), KAFKA_SESSION_TIMEOUT_MS="6000"
    )
    child_env.update(env or {})
    out_path = tmp / "up.out"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "loganalyzer",
                "up",
                *(x for part, port in ports.items() for x in (f"--{part}-port", str(port))),
                *(() if airflow else ("--no-airflow",)),
                *args,
            ],
            env=child_env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    up = UpProcess(database_url, state, ports, out_path, proc)
    try:
        yield up
    finally:
        up.stop()


@contextmanager
def platform_with_airflow(tmp: Path, seed_history: str = "2h", rate: float = 100) -> Iterator[UpProcess]:
    """Everything `up` runs, Airflow on its own metadata database, once its banner is out."""
    metadata_db = f"airflow_test_{uuid.uuid4().hex[:10]}"
    metadata = make_conninfo(ADMIN_URL, dbname=metadata_db)
    with fresh_database() as database_url:
        try:
            with launch_up(
                tmp,
                database_url,
                *("--seed-history", seed_history, "--rate", str(rate)),
                airflow=True,
                env={"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url_for(metadata, metadata_db)},
            ) as running:
                running.wait_for_banner(600)
                yield running
        finally:
            time.sleep(1)
            drop_database(metadata)
