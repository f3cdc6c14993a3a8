"""`airflow backfill create` against a real Airflow: a PostgreSQL metadata database migrated by
`airflow db migrate`, the api-server (the execution API the task processes report to) and a
scheduler with the LocalExecutor, started from the same ChildSpecs `loganalyzer up` uses.

Shared by tests/integration/test_airflow_backfill.py (3 hours) and bench/bench_backfill.py (a week).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from loganalyzer.platform.airflow import (
    AirflowSetup,
    airflow_env,
    airflow_specs,
    metadata_url_for,
    prepare_airflow,
)
from loganalyzer.platform.processes import Supervisor, free_port


@dataclass
class BackfillResult:
    #: dag_run states of the backfill's runs when it ended (state -> runs)
    states: dict[str, int]
    seconds_migrate: float
    seconds_runs: float


def airflow_setup(home: Path, metadata_db: str, database_url: str) -> AirflowSetup:
    return AirflowSetup(
        home=home,
        port=free_port(),
        metadata_url=metadata_url_for(metadata_db, str(conninfo_to_dict(metadata_db)["dbname"])),
        product_env={"DATABASE_URL": database_url},
    )


def _airflow(setup: AirflowSetup, *args: str, timeout: float = 600) -> str:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), *args],
        env={**os.environ, **airflow_env(setup)},
        cwd=setup.home,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode:
        raise RuntimeError(f"airflow {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def backfill_states(metadata_db: str, dag_id: str) -> dict[str, int]:
    with psycopg.connect(metadata_db) as conn:
        return {
            str(state): int(n)
            for state, n in conn.execute(
                "SELECT state, count(*) FROM dag_run WHERE dag_id = %s AND run_type = 'backfill' GROUP BY 1",
                (dag_id,),
            )
        }


def run_backfill(
    setup: AirflowSetup,
    metadata_db: str,
    dag_id: str,
    start: datetime,
    end: datetime,
    expected_runs: int,
    log_dir: Path,
    timeout: float,
    max_active_runs: int = 1,
) -> BackfillResult:
    """Migrate, register the DAGs, create the backfill, run the scheduler until every run of it is
    finished (or `timeout` seconds passed); returns the runs' states."""
    t = time.perf_counter()
    prepare_airflow(setup, timeout=timeout)  # creates the database, `airflow db migrate`
    _airflow(setup, "dags", "reserialize", timeout=timeout)  # what the dag-processor would store
    # the other DAGs are unpaused at creation (as `up` wants them): their latest scheduled runs
    # would compete with the backfill for the two task slots
    _airflow(setup, "dags", "pause", "-y", "--treat-dag-id-as-regex", f"^(?!{dag_id}$)")
    migrated = time.perf_counter() - t
    _airflow(
        setup,
        "backfill",
        "create",
        "--dag-id",
        dag_id,
        "--from-date",
        start.isoformat(),
        "--to-date",
        end.isoformat(),
        "--max-active-runs",
        str(max_active_runs),
    )
    t = time.perf_counter()
    sup = Supervisor(log_dir)
    states: dict[str, int] = {}
    try:
        for spec in airflow_specs(setup):
            if spec.name != "airflow-dag-processor":  # the DAGs are serialized already
                sup.start(spec)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = backfill_states(metadata_db, dag_id)
            finished = states.get("success", 0) + states.get("failed", 0)
            if sum(states.values()) >= expected_runs and finished == sum(states.values()):
                break
            time.sleep(2)
    finally:
        sup.stop()
    return BackfillResult(states, migrated, time.perf_counter() - t)
