"""The GitHub Actions workflow runs what .ci/run runs, on the services the tests expect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _workflow() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text()))


def test_the_workflow_runs_the_ci_entry_point_which_runs_make_test() -> None:
    (job,) = _workflow()["jobs"].values()
    commands = [step["run"] for step in job["steps"] if "run" in step]
    assert any(c.rstrip().endswith("bash .ci/run") for c in commands), commands
    assert "exec make test" in (ROOT / ".ci" / "run").read_text()


def test_the_workflow_has_postgresql_15_on_loopback_with_trust_and_python_311() -> None:
    (job,) = _workflow()["jobs"].values()
    pg = job["services"]["postgres"]
    assert pg["image"] == "postgres:15"
    assert pg["env"]["POSTGRES_HOST_AUTH_METHOD"] == "trust"
    assert "127.0.0.1:5432:5432" in pg["ports"]
    (python,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python")]
    assert python["with"]["python-version"] == "3.11"
    assert job["timeout-minutes"] <= 90
