"""nightly_retrain through dag.test() against real PostgreSQL and an MLflow store in a temp folder:
the alias moves to a better candidate only, and the run says why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.airflow.conftest import run_dag
from tests.retrain_support import Incident, write_ground_truth, write_traffic

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 10, tzinfo=UTC)
END = START + timedelta(days=1)
#: in the held-out last 6 hours: a 40-minute latency + error incident on svc-01
INCIDENTS = [Incident(1, END - timedelta(hours=3), END - timedelta(hours=3) + timedelta(minutes=40))]


def retrain(dagbag: Any, truth: Path, worse: bool) -> dict[str, Any]:
    run = run_dag(
        dagbag,
        "nightly_retrain",
        END,
        days=1.0,
        holdout_hours=6.0,
        ground_truth=str(truth),
        calibration_quantile=0.5 if worse else 0.999,
    )
    (ti,) = run.get_task_instances()
    return {"run": run, "ti": ti}


def test_promotes_only_a_better_candidate_and_records_why(
    dagbag: Any, platform: dict[str, Any], tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    write_traffic(
        platform["database_url"], START, 24 * 60, services=4, logs_per_minute=5, incidents=INCIDENTS
    )
    truth = write_ground_truth(tmp_path / "ground_truth.jsonl", INCIDENTS)
    client = MlflowClient(platform["mlflow_uri"])

    def champion() -> str:
        return str(client.get_model_version_by_alias("log-anomaly-detector", "champion").version)

    def run_tags(version: str) -> dict[str, str]:
        mv = client.get_model_version("log-anomaly-detector", version)
        return dict(client.get_run(mv.run_id).data.tags)

    def metrics(version: str) -> dict[str, float]:
        mv = client.get_model_version("log-anomaly-detector", version)
        return dict(client.get_run(mv.run_id).data.metrics)

    # 1. A poor model (threshold at the training median: flags half of normal traffic) with no
    #    champion yet: promoted, because anything beats no model.
    retrain(dagbag, truth, worse=True)
    assert champion() == "1"
    assert run_tags("1")["decision_reason"] == "no champion yet"

    # 2. A real candidate beats it on the same held-out windows: promoted, with the comparison.
    retrain(dagbag, truth, worse=False)
    assert champion() == "2"
    tags, m = run_tags("2"), metrics("2")
    assert tags["decision"] == "promoted" and tags["decision_reason"].startswith("better:")
    assert m["candidate_f1"] > m["champion_f1"]
    assert m["candidate_positives"] > 0 and m["candidate_windows"] == m["champion_windows"]
    assert m["candidate_recall"] > 0.5

    # 3. The poor model again: worse than the champion, so registered but NOT promoted.
    retrain(dagbag, truth, worse=True)
    assert champion() == "2"
    tags, m = run_tags("3"), metrics("3")
    assert tags["decision"] == "kept" and tags["decision_reason"].startswith("not better:")
    assert m["candidate_f1"] < m["champion_f1"]

    # 4. Re-running the real candidate is a tie, and a tie does not move the alias.
    retrain(dagbag, truth, worse=False)
    assert champion() == "2"
    assert metrics("4")["candidate_f1"] == pytest.approx(metrics("2")["candidate_f1"])

    # The model is logged with a signature and an input example, next to the training summary.
    mv = client.get_model_version("log-anomaly-detector", "2")
    import mlflow

    mlflow.set_tracking_uri(platform["mlflow_uri"])
    info = mlflow.models.get_model_info("models:/log-anomaly-detector/2")
    assert info.signature is not None and len(info.signature.inputs.inputs) >= 1
    assert info.saved_input_example_info is not None
    summary = mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/training_summary.json")
    assert set(summary["services"]) == {f"acme/svc-0{i}" for i in range(4)}
    assert summary["train_windows"] > 0
