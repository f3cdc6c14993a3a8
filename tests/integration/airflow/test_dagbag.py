"""Every DAG file imports cleanly and carries the platform's conventions."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.integration

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
