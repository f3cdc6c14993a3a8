"""`loganalyzer model train` trains through the same code as the nightly retraining and registers
a version with a signature, an input example and the champion alias."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loganalyzer.cli import app
from tests.retrain_support import write_traffic

pytestmark = pytest.mark.integration


START = datetime(2026, 11, 10, tzinfo=UTC)


def _six_hours_of_traffic(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, str]:
    """Six hours of 3 services' traffic stored, the CLI pointed at it and at a fresh MLflow store:
    (the store's URI, the traffic's end as --until)."""
    write_traffic(database_url, START, 6 * 60, services=3, logs_per_minute=4, incidents=[])
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri, (START + timedelta(hours=6)).isoformat()


def test_model_train_registers_and_promotes(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow import MlflowClient

    uri, until = _six_hours_of_traffic(database_url, tmp_path, monkeypatch)
    result = CliRunner().invoke(app, ["model", "train", "--hours", "6", "--until", until])
    assert result.exit_code == 0, result.output
    assert "registered log-anomaly-detector version 1" in result.output
    mv = MlflowClient(uri).get_model_version_by_alias("log-anomaly-detector", "champion")
    assert str(mv.version) == "1" and mv.tags["profiles"] == "profiles.json"
    mlflow.set_tracking_uri(uri)
    info = mlflow.models.get_model_info("models:/log-anomaly-detector/1")
    assert info.signature is not None and info.saved_input_example_info is not None

    empty = CliRunner().invoke(app, ["model", "train", "--hours", "1", "--until", START.isoformat()])
    assert empty.exit_code == 1 and "need 50" in empty.output


def test_model_retrain_runs_the_nightly_code_and_if_no_champion_leaves_one_alone(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    uri, until = _six_hours_of_traffic(database_url, tmp_path, monkeypatch)
    args = ["model", "retrain", "--hours", "6", "--holdout-hours", "1", "--until", until, "--if-no-champion"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "version 1 promoted to @champion (no champion yet)" in first.output
    mv = MlflowClient(uri).get_model_version_by_alias("log-anomaly-detector", "champion")
    assert mv.tags["decision"] == "promoted"

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "is version 1: nothing to do" in again.output, again.output
    assert len(MlflowClient(uri).search_model_versions("name='log-anomaly-detector'")) == 1

    bad = CliRunner().invoke(app, ["model", "retrain", "--hours", "2", "--holdout-hours", "3"])
    assert bad.exit_code == 2 and "holdout_hours" in bad.output
