"""The daily export against real PostgreSQL and a real moto S3 server."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest

from loganalyzer.aws import clients
from loganalyzer.db.connection import connect
from loganalyzer.export.checksum import RowChecksum, batch_checksum
from loganalyzer.export.daily import export_day, export_day_to, manifest_exists
from loganalyzer.export.layout import manifest_key, parse_part_key
from loganalyzer.export.store import S3Store, StoreError
from loganalyzer.settings import SettingsError, load_settings
from tests.export_support import insert_logs, postgres_checksum
from tests.support import moto_server

ROOT = Path(__file__).resolve().parents[2]
DAY = date(2026, 11, 30)
BUCKET = "loganalyzer-logs"


@pytest.fixture(scope="module")
def aws_endpoint() -> Iterator[str]:
    with moto_server(ROOT / ".state" / "test-logs") as url:
        yield url


@pytest.fixture
def s3(aws_endpoint: str) -> Any:
    client = clients.s3(load_settings({"AWS_ENDPOINT_URL": aws_endpoint}))
    bucket = f"b-{os.urandom(4).hex()}"
    client.create_bucket(Bucket=bucket)
    client.bucket = bucket  # the test's bucket travels with its client
    return client


def _three_days(url: str) -> None:
    insert_logs(url, DAY, 3000, tenants=2, services=3)
    insert_logs(url, date(2026, 11, 29), 500, offset=10_000)
    insert_logs(url, date(2026, 12, 1), 500, offset=20_000)
    with connect(url, autocommit=True) as conn:
        for i, svc in enumerate(["svc-00", "svc-00", "svc-01"]):
            conn.execute(
                "INSERT INTO anomalies (id, tenant, service, anomaly_type, severity, window_start,"
                " window_end, description) VALUES (%s, 'tenant-0', %s, 'error_rate_spike', 'high',"
                " %s, %s, 'test')",
                (
                    f"a{i}",
                    svc,
                    datetime(2026, 11, 30, 10 + i, tzinfo=UTC),
                    datetime(2026, 11, 30, 11 + i, tzinfo=UTC),
                ),
            )


def _keys(s3: Any, prefix: str = "") -> list[str]:
    resp = s3.list_objects_v2(Bucket=s3.bucket, Prefix=prefix)
    return sorted(o["Key"] for o in resp.get("Contents", []))


def test_round_trip_matches_postgres(database_url: str, s3: Any) -> None:
    _three_days(database_url)
    manifest = export_day(database_url, s3, s3.bucket, DAY)

    expected = postgres_checksum(database_url, DAY)
    assert manifest.total_rows == expected.rows == 3000
    assert manifest.row_checksum == expected
    assert len(manifest.objects) == 6  # 2 tenants x 3 services

    stored = json.loads(s3.get_object(Bucket=s3.bucket, Key=manifest_key("logs", DAY))["Body"].read())
    assert stored == manifest.to_dict()
    assert stored["row_checksum"]["rows"] == 3000

    read_back = RowChecksum()
    for obj in manifest.objects:
        body = s3.get_object(Bucket=s3.bucket, Key=obj.key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == obj.sha256 and len(body) == obj.bytes
        pf = pq.ParquetFile(io.BytesIO(body))
        assert pf.metadata.row_group(0).column(0).compression == "ZSTD"
        meta = {k.decode(): v.decode() for k, v in (pf.schema_arrow.metadata or {}).items()}
        part = parse_part_key(obj.key)
        assert (part.day, part.tenant, part.service) == (DAY, obj.tenant, obj.service)
        assert meta["loganalyzer.service"] == obj.service and meta["loganalyzer.run_id"] == manifest.run_id
        table = pf.read()
        assert table.num_rows == obj.rows
        ts = table.column("timestamp").to_pylist()
        assert ts == sorted(ts)
        read_back = read_back + batch_checksum(table, DAY)
    assert read_back == expected

    # the anomalies of the day travel with their service's objects
    counts = {(o.tenant, o.service): o.anomaly_count for o in manifest.objects}
    assert counts[("tenant-0", "svc-00")] == 2 and counts[("tenant-0", "svc-01")] == 1
    assert counts[("tenant-1", "svc-00")] == 0

    # one row, column by column, against PostgreSQL (jsonb as its JSON text)
    first = manifest.objects[0]
    table = pq.read_table(io.BytesIO(s3.get_object(Bucket=s3.bucket, Key=first.key)["Body"].read()))
    with connect(database_url) as conn:
        row = conn.execute(
            "SELECT host, level, message, metadata, kafka_offset FROM logs WHERE tenant = %s AND service = %s"
            ' AND "timestamp" = %s ORDER BY kafka_partition, kafka_offset LIMIT 1',
            (first.tenant, first.service, table.column("timestamp")[0].as_py()),
        ).fetchone()
    assert row is not None
    got = table.slice(0, 1).to_pylist()[0]
    assert (got["host"], got["level"], got["message"], got["kafka_offset"]) == (
        row[0],
        row[1],
        row[2],
        row[4],
    )
    assert json.loads(got["metadata"]) == row[3]


def test_rerun_replaces_exactly_that_day(database_url: str, s3: Any) -> None:
    _three_days(database_url)
    other_day = export_day(database_url, s3, s3.bucket, date(2026, 12, 1))
    first = export_day(database_url, s3, s3.bucket, DAY)
    stale = "logs/date=2026-11-30/tenant=gone/service=old/part-0.parquet"
    s3.put_object(Bucket=s3.bucket, Key=stale, Body=b"left by an earlier run")
    before_other = {
        k: s3.head_object(Bucket=s3.bucket, Key=k)["ETag"] for k in _keys(s3, "logs/date=2026-12-01/")
    }

    second = export_day(database_url, s3, s3.bucket, DAY)

    assert second.run_id != first.run_id
    assert [o.key for o in second.objects] == [o.key for o in first.objects]
    assert [o.rows for o in second.objects] == [o.rows for o in first.objects]
    assert second.row_checksum == first.row_checksum
    assert second.removed_objects == (stale,)
    assert _keys(s3, "logs/date=2026-11-30/") == sorted(
        [*(o.key for o in second.objects), manifest_key("logs", DAY)]
    )
    after_other = {
        k: s3.head_object(Bucket=s3.bucket, Key=k)["ETag"] for k in _keys(s3, "logs/date=2026-12-01/")
    }
    assert after_other == before_other and len(after_other) == len(other_day.objects) + 1


def test_parts_split_a_large_service_day(database_url: str, s3: Any) -> None:
    insert_logs(database_url, DAY, 2000, tenants=1, services=1)
    manifest = export_day_to(database_url, S3Store(s3, s3.bucket), DAY, max_rows_per_file=500)
    parts = [parse_part_key(o.key).part for o in manifest.objects]
    assert parts == list(range(len(parts))) and len(parts) >= 2
    assert manifest.row_checksum == postgres_checksum(database_url, DAY)


def test_empty_day_writes_an_empty_manifest(database_url: str, s3: Any) -> None:
    assert not manifest_exists(s3, s3.bucket, date(2026, 10, 1))
    manifest = export_day(database_url, s3, s3.bucket, date(2026, 10, 1))
    assert manifest.objects == () and manifest.total_rows == 0 and manifest.row_checksum == RowChecksum()
    assert manifest_exists(s3, s3.bucket, date(2026, 10, 1))
    assert not manifest_exists(s3, s3.bucket, date(2026, 10, 2))


def test_bad_endpoint_names_the_setting(database_url: str) -> None:
    with pytest.raises(SettingsError, match="AWS_ENDPOINT_URL"):
        load_settings({"AWS_ENDPOINT_URL": "localhost:5000"})
    from loganalyzer.platform.processes import free_port

    settings = load_settings({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(StoreError, match="AWS_ENDPOINT_URL"):
        export_day(database_url, clients.s3(settings), "loganalyzer-logs", DAY)


def test_missing_bucket_says_how_to_create_it(database_url: str, aws_endpoint: str) -> None:
    client = boto3.client(
        "s3",
        endpoint_url=aws_endpoint,
        region_name="us-east-1",
        aws_access_key_id="t",
        aws_secret_access_key="t",
    )
    with pytest.raises(StoreError, match="aws bootstrap"):
        export_day(database_url, client, "no-such-bucket", date(2026, 10, 1))


def test_cli_exports_a_day(database_url: str, s3: Any, aws_endpoint: str) -> None:
    insert_logs(database_url, DAY, 100)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "AWS_ENDPOINT_URL": aws_endpoint,
        "S3_BUCKET": s3.bucket,
    }
    out = subprocess.run(
        [sys.executable, "-m", "loganalyzer", "export", "day", "--date", DAY.isoformat()],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "exported 100 rows" in out.stderr.replace("\n", " ")
    assert manifest_exists(s3, s3.bucket, DAY)


def test_cli_names_an_unreachable_database(aws_endpoint: str) -> None:
    from loganalyzer.platform.processes import free_port

    env = {**os.environ, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/x"}
    env["AWS_ENDPOINT_URL"] = aws_endpoint
    out = subprocess.run(
        [sys.executable, "-m", "loganalyzer", "export", "day", "--date", "2026-11-30"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1 and "DATABASE_URL" in out.stderr and "Traceback" not in out.stderr


def test_large_parts_go_up_in_multipart_uploads(s3: Any, tmp_path: Path) -> None:
    big = tmp_path / "part.parquet"
    big.write_bytes(os.urandom(12 * 1024 * 1024))
    S3Store(s3, s3.bucket, part_bytes=5 * 1024 * 1024).put_file("logs/x/part-0.parquet", big, {"k": "v"})
    head = s3.head_object(Bucket=s3.bucket, Key="logs/x/part-0.parquet")
    assert head["ETag"].strip('"').endswith("-3")  # three parts of a multipart upload
    assert head["ContentLength"] == big.stat().st_size and head["Metadata"] == {"k": "v"}
    body = s3.get_object(Bucket=s3.bucket, Key="logs/x/part-0.parquet")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(big.read_bytes()).digest()
