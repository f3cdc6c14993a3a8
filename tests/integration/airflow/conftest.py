"""A real Airflow for the DAG tests: one metadata DB per pytest session, real connections per test.

Why here and not in tests/conftest.py: importing Airflow and migrating its metadata DB takes
~15 s; only the tests in this folder pay it. Airflow reads its configuration when it is first
imported, so the environment is set before any test in this folder imports it (the test modules
import Airflow inside fixtures and tests only).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import airflow_home_env, moto_server

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("airflow-home")
    env = airflow_home_env(home)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    # A migrated empty metadata DB is kept per Airflow version: migrating costs 10-180 s on a
    # loaded machine, copying the template a few milliseconds.
    from importlib.metadata import version

    template = ROOT / ".state" / "test-airflow" / f"airflow-{version('apache-airflow-core')}.db"
    if not template.exists():
        airflow = Path(sys.executable).with_name("airflow")
        done = subprocess.run([str(airflow), "db", "migrate"], capture_output=True, text=True, timeout=900)
        if done.returncode:
            raise RuntimeError(f"airflow db migrate failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        template.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(home / "airflow.db", template.with_suffix(".tmp"))
        template.with_suffix(".tmp").replace(template)
    else:
        shutil.copyfile(template, home / "airflow.db")
    yield home
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def dagbag(airflow_home: Path) -> Any:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2's location
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    return DagBag(dag_folder=str(ROOT / "dags"))


@pytest.fixture(scope="session")
def aws_endpoint() -> Iterator[str]:
    with moto_server(ROOT / ".state" / "test-logs") as url:
        yield url


def postgres_conn_uri(database_url: str) -> str:
    """The Airflow connection URI of a libpq URL (postgresql:// -> postgres://)."""
    from psycopg.conninfo import conninfo_to_dict

    d = conninfo_to_dict(database_url)
    user = d.get("user", "postgres")
    return f"postgres://{user}@{d.get('host', '127.0.0.1')}:{d.get('port', 5432)}/{d['dbname']}"


@pytest.fixture
def platform(
    airflow_home: Path, database_url: str, aws_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> dict[str, Any]:
    """Connections for one test: its fresh database, the shared moto endpoint, its own bucket,
    queue and DynamoDB table (made by the platform's own provisioning, as `loganalyzer up` and
    `loganalyzer aws bootstrap` make them), and an MLflow store in a temp folder."""
    import boto3

    from loganalyzer.aws.provision import ensure_resources
    from loganalyzer.settings import load_settings

    tag = uuid.uuid4().hex[:8]
    names = load_settings(
        {
            "S3_BUCKET": f"la-test-{tag}",
            "DYNAMODB_TABLE": f"summaries-{tag}",
            "LAMBDA_QUEUE": f"events-{tag}",
            "LAMBDA_DLQ": f"events-{tag}-dlq",
        }
    ).aws
    kw: dict[str, Any] = {
        "endpoint_url": aws_endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    s3 = boto3.client("s3", **kw)
    ddb = boto3.client("dynamodb", **kw)
    provisioned = ensure_resources(s3, boto3.client("sqs", **kw), ddb, names, "us-east-1")
    bucket, table = provisioned.bucket, provisioned.table
    mlflow_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # the DAGs' tasks connect as the platform's Airflow login user (least privilege, sql/016 +
    # sql/020): a grant a DAG lacks fails its test; seeding and checks use the owner's URL
    from psycopg.conninfo import make_conninfo

    from loganalyzer.db.login_users import USERS, ensure_login_users, login_users

    ensure_login_users(database_url, login_users({}, tmp_path / "db-users"))
    as_airflow = make_conninfo(database_url, user=USERS["airflow"][0])
    monkeypatch.setenv("AIRFLOW_CONN_LOGANALYZER_DB", postgres_conn_uri(as_airflow))
    monkeypatch.setenv(
        "AIRFLOW_CONN_LOGANALYZER_AWS",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": aws_endpoint, "region_name": "us-east-1"},
            }
        ),
    )
    monkeypatch.setenv("S3_BUCKET", bucket)
    monkeypatch.setenv("DYNAMODB_TABLE", table)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    monkeypatch.setenv("MLFLOW_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root (./mlruns) lands in the temp folder
    return {
        "database_url": database_url,
        "s3": s3,
        "dynamodb": ddb,
        "bucket": bucket,
        "table": table,
        "mlflow_uri": mlflow_uri,
        "kw": kw,
        "provisioned": provisioned,
    }


def run_dag(dagbag: Any, dag_id: str, logical_date: Any, **conf: Any) -> Any:
    """dag.test() for one logical date; fails the test with the failed tasks' ids."""
    dag = dagbag.dags[dag_id]
    run = dag.test(logical_date=logical_date, run_conf=conf or None)
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state).endswith("success"), f"{dag_id} @ {logical_date}: {run.state} {states}"
    return run


@dataclass
class FailedRun:
    """A dag.test() run that failed, with what its failed tasks raised and logged."""

    run: Any
    #: task_id -> the exception the task raised, as handed to its on_failure_callback
    errors: dict[str, BaseException]
    #: the run's own output: the task runner logs "Task failed with exception" and the traceback
    log: str

    def connection_error(self, task_id: str, message: str) -> str:
        """The text of the ConnectionSettingError `task_id` raised, after checking that it starts
        with `message` and that the run's log shows it as the task's failure: what a person sees
        in the UI's log of the failed try."""
        from loganalyzer.batch.airflow_io import ConnectionSettingError

        error = self.errors[task_id]
        assert isinstance(error, ConnectionSettingError), repr(error)
        assert str(error).startswith(message), str(error)
        assert "Task failed with exception" in self.log
        assert f"ConnectionSettingError: {message}" in self.log
        return str(error)


def run_failing_dag(
    dagbag: Any,
    dag_id: str,
    logical_date: Any,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> FailedRun:
    """dag.test() of a run expected to fail at once: no retries, and every task's exception
    caught where Airflow hands it over (the on_failure_callback's context["exception"]), so a
    test checks the error that came out of the DAG run itself, not one it provokes afterwards."""
    dag = dagbag.dags[dag_id]
    errors: dict[str, BaseException] = {}

    def keep(context: Any) -> None:
        errors[context["ti"].task_id] = context["exception"]

    for task in dag.tasks:  # fail at once instead of after the production retry schedule
        monkeypatch.setattr(task, "retries", 0)
        monkeypatch.setattr(task, "on_failure_callback", [keep])
    capfd.readouterr()
    run = dag.test(logical_date=logical_date)
    out, err = capfd.readouterr()
    sys.stdout.write(out)  # still shown by pytest when the test fails
    sys.stderr.write(err)
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state).endswith("failed"), f"{dag_id} @ {logical_date}: {run.state} {states}"
    assert set(errors) == {t for t, s in states.items() if s.endswith("failed")}, (states, errors)
    return FailedRun(run, errors, out + err)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """dag.test() runs take seconds each, and many seconds on a loaded 2-core machine."""
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.timeout(1200))
