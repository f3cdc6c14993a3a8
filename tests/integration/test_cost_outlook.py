"""The cost outlook the cost_snapshot DAG stores for Grafana (loganalyzer.batch.cost_outlook,
sql/026) is the API's answer: for the same cost_snapshots rows and day, each stored forecast and
what-if equals what GET /api/v1/costs/forecast and /what-if return (free tier none), for one
tenant, the shared row and every tenant together; and re-running a day replaces its rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.rows import dict_row

from loganalyzer.batch.cost_outlook import HISTORY_DAYS, MULTIPLIERS, REPLICATES, write_outlook
from loganalyzer.batch.cost_snapshot import SHARED_TENANT, TenantUsage, write_snapshot
from loganalyzer.db.connection import connect
from tests.integration.api_harness import client, create_key

pytestmark = pytest.mark.integration

#: the day measured last: its month has 12 days so far, its 60-day history reaches into October
DAY = date(2026, 11, 12)
FIRST = DAY - timedelta(days=40)
REGION = "us-east-1"


def _usage(tenant: str, k: int) -> TenantUsage:
    """Day k's measured usage: growing, with a weekly wobble, different per tenant."""
    scale = {"acme": 1.0, "globex": 3.0, "newco": 0.5, SHARED_TENANT: 0.01}[tenant]
    g = scale * (1 + 0.02 * k) * (1 + 0.1 * ((k * 3) % 7 - 3) / 3)
    return TenantUsage(
        s3_bytes_stored=int(4e8 * g),
        s3_objects=int(30 * g) + 1,
        s3_put_requests=int(1200 * g) + 1,
        s3_get_requests=int(500 * g),
        lambda_invocations=int(450 * g) + 1,
        lambda_gb_seconds=900.0 * g,
        lambda_memory_mb=1024,
        dynamodb_read_units=60.0 * g,
        dynamodb_write_units=5000.0 * g,
        dynamodb_bytes_stored=int(2e5 * g),
        dynamodb_items=int(30 * g) + 1,
    )


def _measure(conn: psycopg.Connection[Any], day: date) -> None:
    """The day's cost_snapshots rows through the DAG's writer; newco starts on the last two days."""
    k = (day - FIRST).days
    tenants = ["acme", "globex", SHARED_TENANT] + (["newco"] if day >= DAY - timedelta(days=1) else [])
    write_snapshot(conn, day, {t: _usage(t, k) for t in tenants}, REGION, "local")


@pytest.fixture
def measured(database_url: str) -> Iterator[str]:
    with connect(database_url) as conn:
        for k in range((DAY - FIRST).days + 1):
            _measure(conn, FIRST + timedelta(days=k))
    yield database_url


def _rows(url: str, day: date) -> dict[str | None, dict[str, Any]]:
    with connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("SELECT * FROM cost_outlook WHERE day = %s", (day,)).fetchall()
        for row in rows:
            row["what_ifs"] = {
                r["multiplier"]: r
                for r in cur.execute(
                    "SELECT multiplier, total_usd, delta_usd FROM cost_outlook_what_if WHERE outlook_id = %s",
                    (row["id"],),
                )
            }
    return {r["tenant"]: r for r in rows}


def _api(c: TestClient, admin: str, path: str, tenant: str | None, **params: Any) -> Any:
    query = {"free_tier": "none", "region": REGION, **params}
    if tenant is not None:
        query["tenant"] = tenant
    return c.get(f"/api/v1/costs/{path}", params=query, headers={"X-API-Key": admin})


def _assert_is_the_apis(c: TestClient, admin: str, tenant: str | None, row: dict[str, Any]) -> None:
    fc = _api(c, admin, "forecast", tenant)
    if row["forecast_error"] is None:
        assert fc.status_code == 200, fc.text
        body = fc.json()
        assert body["source"] == "cost_snapshots"
        assert row["forecast_mean_usd"] == Decimal(body["mean_usd"])
        assert row["forecast_low_usd"] == Decimal(body["interval_80_usd"]["low"])
        assert row["forecast_high_usd"] == Decimal(body["interval_80_usd"]["high"])
        assert row["forecast_point_usd"] == Decimal(body["point_usd"])
        assert row["forecast_month"].strftime("%Y-%m") == body["month"]
        assert (row["history_days"], row["replicates"]) == (body["history_days"], body["replicates"])
        assert (row["method"], row["notes"]) == (body["method"], body["notes"])
    else:
        assert fc.status_code == 422 and fc.json()["detail"].endswith(row["forecast_error"])
    assert set(row["what_ifs"]) == set(MULTIPLIERS)
    for m, stored in row["what_ifs"].items():
        wi = _api(c, admin, "what-if", tenant, traffic_multiplier=str(m))
        assert wi.status_code == 200, wi.text
        body = wi.json()
        assert body["source"] == "cost_snapshots"
        assert row["month_estimate_usd"] == Decimal(body["baseline_total_usd"])
        assert stored["total_usd"] == Decimal(body["scenario_total_usd"])
        assert stored["delta_usd"] == Decimal(body["delta_usd"])
        assert row["days_measured"] == body["period"]["days_measured"]


def test_the_stored_outlook_is_the_apis_forecast_and_what_if(
    measured: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import serving.api.routes.costs as routes

    # one figure of each: the API's history window and replicates are the DAG's
    assert (routes.FORECAST_HISTORY_DAYS, routes.FORECAST_REPLICATES) == (HISTORY_DAYS, REPLICATES)
    with connect(measured) as conn:
        stored = write_outlook(conn, DAY, region=REGION)
    assert [o.tenant for o in stored] == [SHARED_TENANT, "acme", "globex", "newco", None]
    rows = _rows(measured, DAY)
    assert set(rows) == {SHARED_TENANT, "acme", "globex", "newco", None}
    assert rows[None]["history_days"] == (DAY - FIRST).days + 1 and rows[None]["days_measured"] == DAY.day
    assert rows[None]["forecast_month"] == date(2026, 12, 1) and rows[None]["free_tier"] == "none"
    low, mean, high = (rows[None][f"forecast_{k}_usd"] for k in ("low", "mean", "high"))
    assert low <= mean <= high and mean > rows[None]["month_estimate_usd"]  # usage grows
    assert rows["newco"]["forecast_error"] is not None and "2 day(s)" in rows["newco"]["forecast_error"]
    assert rows["newco"]["forecast_mean_usd"] is None and rows["newco"]["what_ifs"]

    monkeypatch.setattr(routes, "_today", lambda: DAY)  # the API asked on the day the DAG measured
    admin = create_key(measured, "ops", admin=True)
    with client(measured) as c:
        for tenant in ("acme", "newco", SHARED_TENANT, None):
            _assert_is_the_apis(c, admin, tenant, rows[tenant])


def test_a_rerun_replaces_the_days_outlook_and_leaves_other_days(
    measured: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import serving.api.routes.costs as routes

    before = DAY - timedelta(days=1)
    with connect(measured) as conn:
        write_outlook(conn, before, region=REGION)
        write_outlook(conn, DAY, region=REGION)
    earlier, first = _rows(measured, before), _rows(measured, DAY)
    assert set(earlier) == set(first)

    # the day is measured again with more of acme's traffic, then its outlook is rewritten
    with connect(measured) as conn:
        k = (DAY - FIRST).days
        usage = {t: _usage(t, k) for t in ("globex", "newco", SHARED_TENANT)}
        usage["acme"] = _usage("acme", k + 30)
        write_snapshot(conn, DAY, usage, REGION, "local")
        write_outlook(conn, DAY, region=REGION)
    again = _rows(measured, DAY)
    assert set(again) == set(first)
    assert all(again[t]["id"] != first[t]["id"] for t in first)  # replaced, not added to
    with connect(measured) as conn:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM cost_outlook), (SELECT count(*) FROM cost_outlook_what_if)"
        ).fetchone()
    assert counts == (2 * len(first), 2 * len(first) * len(MULTIPLIERS))
    assert again["acme"]["month_estimate_usd"] > first["acme"]["month_estimate_usd"]
    assert again["globex"]["month_estimate_usd"] == first["globex"]["month_estimate_usd"]
    assert _rows(measured, before) == earlier  # another day's rows are not touched

    monkeypatch.setattr(routes, "_today", lambda: DAY)
    admin = create_key(measured, "ops", admin=True)
    with client(measured) as c:
        for tenant in ("acme", None):
            _assert_is_the_apis(c, admin, tenant, again[tenant])


def test_a_day_without_measured_rows_stores_no_outlook(database_url: str) -> None:
    with connect(database_url) as conn:
        assert write_outlook(conn, DAY, region=REGION) == []
        assert conn.execute("SELECT count(*) FROM cost_outlook").fetchone() == (0,)
