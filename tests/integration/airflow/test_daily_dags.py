"""daily_s3_export, cost_snapshot and maintenance through dag.test(), against real PostgreSQL and
a moto server: what each leaves behind, that a re-run leaves the same, and that a bad connection
setting is an error naming the connection."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from loganalyzer.db.connection import connect
from loganalyzer.export.checksum import RowChecksum
from tests.export_support import insert_logs, postgres_checksum
from tests.integration.airflow.conftest import run_dag, run_failing_dag

pytestmark = pytest.mark.integration

DAY = date(2026, 11, 20)


def day_objects(platform: dict[str, Any], day: date) -> dict[str, tuple[int, str]]:
    """key -> (size, ETag) of every object of the day's export folder."""
    pages = (
        platform["s3"]
        .get_paginator("list_objects_v2")
        .paginate(Bucket=platform["bucket"], Prefix=f"logs/date={day.isoformat()}/")
    )
    return {o["Key"]: (o["Size"], o["ETag"]) for p in pages for o in p.get("Contents", [])}


def manifest(platform: dict[str, Any], day: date) -> dict[str, Any]:
    body = platform["s3"].get_object(Bucket=platform["bucket"], Key=f"logs/date={day}/_manifest.json")["Body"]
    return dict(json.loads(body.read()))


def export(dagbag: Any, day: date) -> Any:
    # a manual run's logical date is its run time: the run at 00:15 on D+1 exports D
    return run_dag(
        dagbag, "daily_s3_export", datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)
    )


def test_export_writes_the_day_and_a_rerun_replaces_exactly_it(dagbag: Any, platform: dict[str, Any]) -> None:
    url = platform["database_url"]
    insert_logs(url, DAY, 20_000, tenants=2, services=3)
    insert_logs(url, DAY + timedelta(days=1), 1_000, tenants=2, services=3, offset=50_000)
    export(dagbag, DAY)
    m = manifest(platform, DAY)
    assert m["total_rows"] == 20_000
    assert RowChecksum.from_dict(m["row_checksum"]) == postgres_checksum(url, DAY)
    first = day_objects(platform, DAY)
    assert len(first) == 2 * 3 + 1  # a part per tenant/service + the manifest
    assert {k for k in first if k.endswith(".parquet")} == {o["key"] for o in m["objects"]}

    def content(m: dict[str, Any]) -> dict[str, Any]:
        # a part's bytes carry its run's id; its rows and their checksum must not change
        return {o["key"]: (o["rows"], o["row_checksum"]) for o in m["objects"]}

    export(dagbag, DAY)
    again = day_objects(platform, DAY)
    assert set(again) == set(first)  # same keys: nothing added, nothing left behind
    m2 = manifest(platform, DAY)
    assert content(m2) == content(m) and m2["total_rows"] == 20_000
    assert m2["run_id"] != m["run_id"]
    assert day_objects(platform, DAY + timedelta(days=1)) == {}  # the next day is not touched


def test_a_day_without_logs_exports_an_empty_manifest(dagbag: Any, platform: dict[str, Any]) -> None:
    export(dagbag, DAY)
    m = manifest(platform, DAY)
    assert m["total_rows"] == 0 and m["objects"] == []


def test_a_bad_aws_connection_is_named(
    dagbag: Any, platform: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    bad = {"conn_type": "aws", "login": "x", "password": "y", "extra": {"endpoint_url": "http://127.0.0.1:1"}}
    monkeypatch.setenv("AIRFLOW_CONN_LOGANALYZER_AWS", json.dumps(bad))
    when = datetime(2026, 11, 21, tzinfo=UTC)
    failed = run_failing_dag(dagbag, "daily_s3_export", when, monkeypatch, capfd)
    error = failed.connection_error(
        "export_closed_day", "AWS call through Airflow connection 'loganalyzer_aws' failed"
    )
    assert "127.0.0.1:1" in error

    monkeypatch.delenv("AIRFLOW_CONN_LOGANALYZER_AWS")
    failed = run_failing_dag(dagbag, "daily_s3_export", when, monkeypatch, capfd)
    error = failed.connection_error(
        "export_closed_day", "Airflow connection 'loganalyzer_aws' is not defined"
    )
    assert "AIRFLOW_CONN_LOGANALYZER_AWS" in error


def put_summaries(platform: dict[str, Any], day: date, keys: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Summary items as the process-daily-logs function writes them (one per tenant/service)."""
    items = []
    for tenant, service in keys:
        item = {
            "date": {"S": day.isoformat()},
            "tenant_service": {"S": f"{tenant}#{service}"},
            "total_logs": {"N": "1234"},
            "error_count": {"N": "56"},
            "top_errors": {"L": [{"M": {"template": {"S": "connection refused <*>"}, "count": {"N": "50"}}}]},
        }
        platform["dynamodb"].put_item(TableName=platform["table"], Item=item)
        items.append(item)
    return items


def test_cost_snapshot_measures_the_exported_day(dagbag: Any, platform: dict[str, Any]) -> None:
    from loganalyzer.batch.cost_snapshot import dynamodb_item_size
    from loganalyzer.costs.daily import price_day, read_day_document
    from loganalyzer.costs.usage import parse_usage

    url = platform["database_url"]
    insert_logs(url, DAY, 6_000, tenants=2, services=2)
    export(dagbag, DAY)
    objects = day_objects(platform, DAY)
    items = put_summaries(platform, DAY, [(f"tenant-{t}", f"svc-0{s}") for t in range(2) for s in range(2)])
    run_dag(dagbag, "cost_snapshot", datetime(2026, 11, 21, 1, tzinfo=UTC), day=DAY.isoformat())

    query = "SELECT * FROM cost_snapshots WHERE day = %s ORDER BY tenant"
    with connect(url) as conn:
        cur = conn.execute(query, (DAY,))
        names = [d.name for d in cur.description or []]
        rows = {r[1]: dict(zip(names, r, strict=True)) for r in cur}
    assert set(rows) == {"*", "tenant-0", "tenant-1"}
    for t in ("tenant-0", "tenant-1"):
        mine = {k: v for k, v in objects.items() if f"/tenant={t}/" in k}
        row = rows[t]
        assert row["s3_objects"] == len(mine) == 2
        assert row["s3_bytes_stored"] == sum(size for size, _ in mine.values())
        assert row["s3_put_requests"] == row["s3_get_requests"] == row["lambda_invocations"] == 2
        assert row["dynamodb_items"] == 2
        sizes = [dynamodb_item_size(i) for i in items if i["tenant_service"]["S"].startswith(t + "#")]
        assert row["dynamodb_bytes_stored"] == sum(sizes)
        assert row["dynamodb_write_units"] == sum(math.ceil(s / 1024) for s in sizes)
        usage = row["usage"]
        assert usage["as_of"] == DAY.isoformat() and usage["free_tier"] == "none"
        assert usage["s3"]["put_requests"] == 2
        # the first day measured: what is stored is that day's export
        assert usage["s3"]["storage_gb"] == pytest.approx(row["s3_bytes_stored"] / 1024**3, abs=1e-9)
        assert usage["dynamodb"]["write_request_units"] == row["dynamodb_write_units"]
        # the day's price is the engine's, of the same stored document
        quote = price_day(read_day_document(usage))
        assert row["cost_usd"] == quote.total and row["priced"] == quote.to_dict()
    shared = rows["*"]
    manifest_size = objects[f"logs/date={DAY}/_manifest.json"][0]
    assert (
        shared["s3_bytes_stored"] == manifest_size and shared["s3_put_requests"] == 2
    )  # manifest PUT + LIST

    for row in rows.values():  # the documents are valid usage documents
        parse_usage(row["usage"])

    before = {t: {k: v for k, v in r.items() if k != "measured_at"} for t, r in rows.items()}
    run_dag(dagbag, "cost_snapshot", datetime(2026, 11, 21, 2, tzinfo=UTC), day=DAY.isoformat())
    with connect(url) as conn:
        cur = conn.execute(query, (DAY,))
        names = [d.name for d in cur.description or []]
        after = {r[1]: {k: v for k, v in zip(names, r, strict=True) if k != "measured_at"} for r in cur}
    assert after == before


def partitions(url: str) -> set[str]:
    with connect(url) as conn:
        return {
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'logs'::regclass"
            )
        }


def test_maintenance_drops_only_exported_days(dagbag: Any, platform: dict[str, Any]) -> None:
    from loganalyzer.export.daily import export_day

    url = platform["database_url"]
    days = [DAY + timedelta(days=i) for i in range(4)]  # 20, 21, 22, 23 November
    for i, d in enumerate(days):
        insert_logs(url, d, 500, tenants=1, services=2, offset=i * 1_000)
    for d in (days[0], days[2]):  # 21 November is never exported
        export_day(url, platform["s3"], platform["bucket"], d)
    with connect(url) as conn:  # a table updated in place, to be vacuumed (never analysed yet)
        conn.execute(
            "INSERT INTO detector_checkpoints (kafka_topic, kafka_partition, next_offset, state)"
            " VALUES ('logs', 0, 1, '\\x00')"
        )
        conn.execute("UPDATE detector_checkpoints SET next_offset = 2")
        conn.commit()

    # the run on 26 November keeps 3 days: 20-22 November are past retention, 23 is not
    when = datetime(2026, 11, 26, 3, tzinfo=UTC)
    run_dag(dagbag, "maintenance", when, keep_days=3)
    left = partitions(url)
    assert left == {"logs_p20261121", "logs_p20261123"}
    with connect(url) as conn:
        indexes = {
            r[0]
            for r in conn.execute("SELECT indexname FROM pg_indexes WHERE indexname LIKE '%service_time_idx'")
        }
        # reltuples is -1 until a VACUUM or ANALYZE has looked at the table (and it is transactional,
        # unlike the statistics views)
        (reltuples,) = conn.execute(
            "SELECT reltuples FROM pg_class WHERE relname = 'detector_checkpoints'"
        ).fetchone() or (-1,)
    assert {"logs_p20261121_service_time_idx", "logs_p20261123_service_time_idx"} <= indexes
    assert reltuples == 1

    run_dag(dagbag, "maintenance", when, keep_days=3)  # a re-run changes nothing
    assert partitions(url) == left
