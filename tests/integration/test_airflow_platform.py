"""The local Airflow of `loganalyzer up`, started from its ChildSpecs: the API answers, the DAGs are
listed through REST API v2 unpaused and without import errors, and the processes stop cleanly."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from psycopg.conninfo import make_conninfo

from loganalyzer.db.connection import drop_database
from loganalyzer.platform.airflow import (
    AirflowSetup,
    airflow_specs,
    banner_lines,
    ensure_admin_password,
    metadata_url_for,
    prepare_airflow,
    process_tree_rss,
)
from loganalyzer.platform.processes import Supervisor, free_port
from tests.support import ADMIN_URL

pytestmark = pytest.mark.integration

DAGS = {"hourly_rollup", "nightly_retrain", "daily_s3_export", "cost_snapshot", "maintenance"}


@pytest.fixture
def metadata_db() -> Iterator[str]:
    url = make_conninfo(ADMIN_URL, dbname=f"airflow_test_{uuid.uuid4().hex[:10]}")
    yield url
    drop_database(url)


@pytest.mark.timeout(900)
def test_airflow_starts_lists_the_dags_and_stops(tmp_path: Path, metadata_db: str, database_url: str) -> None:
    from psycopg.conninfo import conninfo_to_dict

    setup = AirflowSetup(
        home=tmp_path / "airflow",
        port=free_port(),
        metadata_url=metadata_url_for(metadata_db, str(conninfo_to_dict(metadata_db)["dbname"])),
        product_env={"DATABASE_URL": database_url},
    )
    prepare_airflow(setup)
    password = ensure_admin_password(setup)
    assert any(password in line and setup.url in line for line in banner_lines(setup))
    sup = Supervisor(tmp_path / "logs")
    try:
        for spec in airflow_specs(setup):
            sup.start(spec)
        with httpx.Client(base_url=setup.url, timeout=120) as http:
            token = http.post("/auth/token", json={"username": "admin", "password": password})
            assert token.status_code in (200, 201), token.text
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            deadline = time.monotonic() + 600
            dags: dict[str, bool] = {}
            while time.monotonic() < deadline:  # the dag-processor parses dags/ after it starts
                try:
                    body = http.get("/api/v2/dags", headers=headers, params={"limit": 100}).json()
                except httpx.TimeoutException:  # busy running the first scheduled tasks: ask again
                    continue
                dags = {d["dag_id"]: d["is_paused"] for d in body.get("dags", [])}
                if set(dags) >= DAGS:
                    break
                assert not sup.poll(), "an Airflow process died; see its log under tmp_path/logs"
                time.sleep(3)
            assert set(dags) == DAGS
            assert not any(dags.values()), f"paused: {dags}"
            errors = http.get("/api/v2/importErrors", headers=headers).json()
            assert errors["total_entries"] == 0, errors
        rss = {c.spec.name: process_tree_rss(c.proc.pid) for c in sup.children}
        print(
            f"Airflow RSS (MiB): {', '.join(f'{k} {v / 2**20:.0f}' for k, v in rss.items())}; "
            f"total {sum(rss.values()) / 2**20:.0f}"
        )
        assert all(v > 0 for v in rss.values())
    finally:
        sup.stop()
    assert all(c.proc.poll() is not None for c in sup.children)
