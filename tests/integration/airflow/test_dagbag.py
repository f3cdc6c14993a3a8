"""Every DAG file imports cleanly, carries the platform's conventions, and parses without heavy
imports or network connections."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import airflow_home_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]

EXPECTED = {"hourly_rollup", "nightly_retrain", "daily_s3_export", "cost_snapshot", "maintenance"}


def test_no_import_errors_and_every_dag_is_there(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dags) == EXPECTED


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_every_dag_has_docs_tags_owner_and_retries_with_backoff(dagbag: Any, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    assert dag.doc_md and dag.doc_md.lstrip().startswith(f"### {dag_id}")
    assert "loganalyzer" in dag.tags and len(dag.tags) >= 2
    for task in dag.tasks:
        assert task.owner == "loganalyzer"
        assert task.retries >= 1
        assert task.retry_exponential_backoff
        assert task.max_retry_delay is not None


def test_export_feeds_cost_snapshot_through_an_asset(dagbag: Any) -> None:
    export = dagbag.dags["daily_s3_export"]
    (task,) = export.tasks
    outlet_uris = {getattr(o, "uri", None) for o in task.outlets}
    assert "s3://loganalyzer-logs/logs" in outlet_uris
    timetable = dagbag.dags["cost_snapshot"].timetable
    assert "daily_log_export" in repr(timetable.asset_condition)


#: modules a DAG file must not load when it is parsed: the dag-processor parses every file every
#: 30 s or so, and these take seconds and hundreds of MB (they belong inside the tasks)
HEAVY = (
    "sklearn",
    "scipy",
    "mlflow",
    "pyarrow",
    "pandas",
    "numpy",
    "psycopg",
    "psycopg2",
    "confluent_kafka",
    "boto3",
    "botocore",
)

#: boto3 and botocore are loaded by Airflow itself for any DAG with an `s3://` Asset (the export's
#: Asset, shared by daily_s3_export and cost_snapshot): making the Asset normalises its URI
#: through the Amazon provider's handler, `airflow.providers.amazon.aws.assets.s3`, which imports
#: S3Hook and so boto3. They are allowed only while the probe below shows Airflow loading them for
#: an `s3://` Asset on its own; while it does, a DAG's own `import boto3` cannot be told apart.
LOADED_BY_AIRFLOW_FOR_S3_ASSETS = {"boto3", "botocore"}

_PARSE = """
import importlib.util, json, sys

def roots():
    return {name.partition(".")[0] for name in sys.modules}

heavy = set(json.loads(sys.argv[1]))
import airflow.sdk
sdk = roots() & heavy
from airflow.sdk import Asset
Asset(name="probe", uri="s3://probe-bucket/probe")
provider = roots() & heavy
connects = []
def audit(event, args):
    if event == "socket.getaddrinfo":
        connects.append(f"resolve {args[0]}:{args[1]}")
    elif event == "socket.connect":
        connects.append(f"connect {args[1]}")
sys.addaudithook(audit)
by_file = {}
for path in sys.argv[2:]:
    before = roots()
    spec = importlib.util.spec_from_file_location("dag_file_" + path.rsplit("/", 1)[-1][:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    by_file[path.rsplit("/", 1)[-1]] = sorted((roots() - before) & heavy)
seen = {"sdk": sorted(sdk), "provider": sorted(provider), "by_file": by_file, "connects": connects}
print(json.dumps(seen))
"""


def parse_dag_files_alone(tmp_path: Path, files: list[Path]) -> dict[str, Any]:
    """Import the DAG files in a fresh interpreter (as the dag-processor does): which heavy
    modules `import airflow.sdk` loads, which an s3:// Asset adds, which each file adds after
    those, and any network connection made while they were imported."""
    env = {**airflow_home_env(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "plugins")}
    done = subprocess.run(
        [sys.executable, "-c", _PARSE, json.dumps(HEAVY), *map(str, files)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_parsing_the_dag_files_loads_no_heavy_module_and_opens_no_connection(tmp_path: Path) -> None:
    files = sorted((ROOT / "dags").glob("*.py"))
    assert {f.stem for f in files} >= EXPECTED  # and any DAG file added later is checked too
    seen = parse_dag_files_alone(tmp_path, files)
    # nothing on the list comes with airflow.sdk itself: a file that loads one is to blame
    assert seen["sdk"] == [], f"airflow.sdk alone now loads {seen['sdk']}: HEAVY needs a new look"
    assert set(seen["provider"]) <= LOADED_BY_AIRFLOW_FOR_S3_ASSETS, seen["provider"]
    loaded = {name: mods for name, mods in seen["by_file"].items() if mods}
    assert loaded == {}, f"DAG files load heavy modules at parse time (import them inside the task): {loaded}"
    assert seen["connects"] == [], seen["connects"]
