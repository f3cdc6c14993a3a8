"""process-daily-logs end to end: export → S3 notification → SQS → lambda runner → DynamoDB.

Real PostgreSQL, a real moto server (S3, SQS, DynamoDB) as its own process; no fakes.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer

from loganalyzer.aws import clients
from loganalyzer.aws.provision import Provisioned, ensure_resources
from loganalyzer.db.connection import connect
from loganalyzer.export.daily import export_day
from loganalyzer.lambda_fn.handler import Runtime
from loganalyzer.lambda_fn.process import SummaryError, process_event
from loganalyzer.lambda_fn.runner import RunnerStats, poll_once
from loganalyzer.settings import Settings, load_settings
from tests.export_support import insert_logs
from tests.support import moto_server

ROOT = Path(__file__).resolve().parents[2]
DAY = date(2026, 11, 30)


@pytest.fixture(scope="module")
def aws_endpoint() -> Iterator[str]:
    with moto_server(ROOT / ".state" / "test-logs") as url:
        yield url


@pytest.fixture
def platform(aws_endpoint: str) -> tuple[Settings, Provisioned]:
    tag = uuid.uuid4().hex[:8]
    settings = load_settings(
        {
            "AWS_ENDPOINT_URL": aws_endpoint,
            "S3_BUCKET": f"logs-{tag}",
            "DYNAMODB_TABLE": f"summaries-{tag}",
            "LAMBDA_QUEUE": f"events-{tag}",
            "LAMBDA_DLQ": f"events-{tag}-dlq",
            "LAMBDA_MAX_RECEIVES": "2",
            "LAMBDA_VISIBILITY_TIMEOUT_SECONDS": "1",
        }
    )
    args = (
        clients.s3(settings),
        clients.sqs(settings),
        clients.dynamodb(settings),
        settings.aws,
        "us-east-1",
    )
    ensure_resources(*args)
    return settings, ensure_resources(*args)  # twice: provisioning is idempotent


def _runtime(settings: Settings) -> Runtime:
    return Runtime(clients.s3(settings), clients.dynamodb(settings), settings.aws.dynamodb_table, "us-east-1")


def _drain(settings: Settings, url: str, invoke: Any, seconds: float = 3.0) -> RunnerStats:
    """Poll until the queue has been empty for `seconds` (what a running runner does)."""
    sqs = clients.sqs(settings)
    stats = RunnerStats()
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < seconds:
        if poll_once(sqs, url, invoke, stats, wait_seconds=1):
            quiet_since = time.monotonic()
    return stats


def _items(settings: Settings) -> dict[str, dict[str, Any]]:
    ddb = clients.dynamodb(settings)
    de = TypeDeserializer()
    resp = ddb.scan(TableName=settings.aws.dynamodb_table)
    items = [{k: de.deserialize(v) for k, v in it.items()} for it in resp["Items"]]
    return {f"{it['date']}|{it['tenant_service']}": it for it in items}


def _expected(url: str) -> dict[str, tuple[int, int, int]]:
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT tenant, service, count(*), count(*) FILTER (WHERE level IN ('ERROR', 'FATAL')),"
            " count(*) FILTER (WHERE level = 'WARN') FROM logs"
            " WHERE \"timestamp\" >= '2026-11-30' AND \"timestamp\" < '2026-12-01' GROUP BY 1, 2"
        ).fetchall()
    return {f"2026-11-30|{t}#{s}": (n, e, w) for t, s, n, e, w in rows}


def test_export_events_become_summaries(database_url: str, platform: tuple[Settings, Provisioned]) -> None:
    settings, res = platform
    insert_logs(database_url, DAY, 3000, tenants=2, services=3)
    with connect(database_url, autocommit=True) as conn:
        # a name that S3 URL-encodes in its events ('+' and a space and a non-ASCII letter)
        conn.execute("UPDATE logs SET service = 'svc 02+ü' WHERE service = 'svc-02'")
        conn.execute(
            "INSERT INTO anomalies (id, tenant, service, anomaly_type, severity, window_start, window_end,"
            " description) VALUES ('a1', 'tenant-0', 'svc-00', 'error_rate_spike', 'high', %s, %s, 'test')",
            (datetime(2026, 11, 30, 9, tzinfo=UTC), datetime(2026, 11, 30, 10, tzinfo=UTC)),
        )
    s3 = clients.s3(settings)
    manifest = export_day(database_url, s3, settings.aws.s3_bucket, DAY)
    assert len(manifest.objects) == 6

    seen: list[Mapping[str, Any]] = []
    runtime = _runtime(settings)

    def invoke(event: Mapping[str, Any]) -> Any:
        seen.append(event)
        return runtime.invoke(event)

    stats = _drain(settings, res.queue_url, invoke)
    assert stats.failed == 0 and stats.succeeded >= 6
    items = _items(settings)
    expected = _expected(database_url)
    assert set(items) == set(expected)
    for k, (n, errors, warns) in expected.items():
        it = items[k]
        assert (it["total_logs"], it["error_count"], it["warn_count"]) == (n, errors, warns), k
        assert float(it["error_rate"]) == pytest.approx(errors / n, abs=1e-6)
        assert errors and sum(e["count"] for e in it["top_errors"]) == errors
        assert it["estimated_costs"]["total_usd"] > 0
        assert it["export_run_id"] == manifest.run_id
    assert items["2026-11-30|tenant-0#svc-00"]["anomaly_count"] == 1
    assert items["2026-11-30|tenant-1#svc-00"]["anomaly_count"] == 0
    assert items["2026-11-30|tenant-0#svc 02+ü"]["service"] == "svc 02+ü"
    templates = {e["template"] for e in items["2026-11-30|tenant-0#svc-00"]["top_errors"]}
    assert "payment failed for order <*> timeout after <*> ms" in templates or any(
        t.startswith("payment failed") for t in templates
    )

    # the same event again (S3 delivers at least once): the same item, not a second one
    sqs = clients.sqs(settings)
    real_event = next(e for e in seen if "Records" in e)
    sqs.send_message(QueueUrl=res.queue_url, MessageBody=json.dumps(real_event))
    sqs.send_message(QueueUrl=res.queue_url, MessageBody=json.dumps(real_event))
    again = _drain(settings, res.queue_url, runtime.invoke)
    assert again.succeeded == 2 and again.failed == 0
    assert _items(settings) == items


def _dlq_bodies(settings: Settings, dlq_url: str) -> list[dict[str, Any]]:
    resp = clients.sqs(settings).receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [json.loads(m["Body"]) for m in resp.get("Messages", [])]


def test_corrupt_parquet_is_an_error_and_lands_in_the_dlq(platform: tuple[Settings, Provisioned]) -> None:
    settings, res = platform
    key = "logs/date=2026-11-30/tenant=t/service=broken/part-0.parquet"
    clients.s3(settings).put_object(Bucket=settings.aws.s3_bucket, Key=key, Body=b"PAR1 not really parquet")
    runtime = _runtime(settings)
    sqs = clients.sqs(settings)
    stats = RunnerStats()
    deadline = time.monotonic() + 30
    bodies: list[dict[str, Any]] = []
    while not bodies and time.monotonic() < deadline:
        poll_once(sqs, res.queue_url, runtime.invoke, stats, wait_seconds=1)
        bodies = [b for b in _dlq_bodies(settings, res.dlq_url) if "Records" in b]
    assert stats.failed == 2 and stats.succeeded == 0  # LAMBDA_MAX_RECEIVES tries, then the DLQ
    assert len(bodies) == 1 and bodies[0]["Records"][0]["s3"]["object"]["key"].endswith("part-0.parquet")
    with pytest.raises(SummaryError, match="is not a readable Parquet file"):
        runtime.invoke(bodies[0])
    assert _items(settings) == {}


def test_missing_object_names_it(platform: tuple[Settings, Provisioned]) -> None:
    settings, _ = platform
    event = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": settings.aws.s3_bucket},
                    "object": {"key": "logs/date=2026-11-30/tenant=t/service=gone/part-0.parquet"},
                },
            }
        ]
    }
    with pytest.raises(SummaryError, match=r"service=gone/part-0.parquet does not exist"):
        process_event(
            event,
            s3=clients.s3(settings),
            dynamodb=clients.dynamodb(settings),
            table=settings.aws.dynamodb_table,
            region="us-east-1",
        )


def test_runner_cli_names_a_missing_queue(aws_endpoint: str, database_url: str) -> None:
    import subprocess
    import sys

    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": aws_endpoint,
        "LAMBDA_QUEUE": f"nope-{uuid.uuid4().hex[:6]}",
        "DATABASE_URL": database_url,  # the runner records invocations: the test's own database
    }
    out = subprocess.run(
        [sys.executable, "-m", "loganalyzer", "lambda-runner", "--until-idle", "--wait-seconds", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "LAMBDA_QUEUE" in out.stderr and "aws bootstrap" in out.stderr


_RUN_FROM_ZIP = """
import json, sys
if sys.argv[3] == "own-pyarrow":
    sys.modules["numpy"] = None  # the python3.11 runtime has no numpy: pyarrow must not need it
import process_daily_logs, loganalyzer, orjson, pyarrow
root = sys.argv[1]
assert loganalyzer.__file__.startswith(root), loganalyzer.__file__
assert orjson.__file__.startswith(root), orjson.__file__
assert pyarrow.__file__.startswith(root) == (sys.argv[3] == "own-pyarrow"), pyarrow.__file__
print(json.dumps(process_daily_logs.handler(json.loads(sys.argv[2]), None)))
"""


def _run_handler_from(
    zip_path: Path, database_url: str, settings: Settings, tmp_path: Path, pyarrow_from: str
) -> dict[str, Any]:
    """Unzip the function and run its handler on a real exported object, with only the zip's tree
    and the venv's site-packages (standing in for the runtime's boto3 and, with
    pyarrow_from="layer", the layer's pyarrow) on the path."""
    import site
    import subprocess
    import sys
    import zipfile

    tree = tmp_path / "fn"
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(tree)
    insert_logs(database_url, DAY, 200, tenants=1, services=1)
    manifest = export_day(database_url, clients.s3(settings), settings.aws.s3_bucket, DAY)
    key = manifest.objects[0].key
    event = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:CompleteMultipartUpload",
                "s3": {"bucket": {"name": settings.aws.s3_bucket}, "object": {"key": key.replace(" ", "+")}},
            }
        ]
    }
    # -S: no site-packages .pth files, so the project's own plugins/ is not on the path; the
    # venv's site-packages come after the zip's tree, so what the zip holds is what is imported.
    site_packages = [p for p in site.getsitepackages() if p.endswith("site-packages")]
    env = {
        "PYTHONPATH": ":".join([str(tree), *site_packages]),
        "AWS_ENDPOINT_URL": settings.aws_endpoint_url or "",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "DYNAMODB_TABLE": settings.aws.dynamodb_table,
    }
    out = subprocess.run(
        [sys.executable, "-S", "-c", _RUN_FROM_ZIP, str(tree), json.dumps(event), pyarrow_from],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def test_the_zip_holds_what_the_function_needs(
    database_url: str, platform: tuple[Settings, Provisioned], tmp_path: Path
) -> None:
    from loganalyzer.lambda_fn.package import MAX_UNZIPPED, MAX_ZIPPED, build_zip

    report = build_zip(tmp_path / "fn.zip")
    assert report.zipped_bytes < MAX_ZIPPED and report.unzipped_bytes < MAX_UNZIPPED
    assert report.unzipped_bytes < 2 * 1024 * 1024  # code only: pyarrow comes from the layer
    tops = {name.split("/", 1)[0] for name in report.entries}
    assert tops == {"process_daily_logs.py", "loganalyzer", "orjson"}
    assert not any(
        n.startswith(("loganalyzer/db/", "loganalyzer/detection/", "loganalyzer/cli")) for n in report.entries
    )
    settings, _ = platform
    result = _run_handler_from(report.path, database_url, settings, tmp_path, "layer")
    assert result["summaries"] == [
        {"date": "2026-11-30", "tenant_service": "tenant-0#svc-00", "total_logs": 200}
    ]


def test_the_localstack_zip_runs_on_the_pyarrow_it_bundles(
    database_url: str, platform: tuple[Settings, Provisioned], tmp_path: Path
) -> None:
    """The zip docker-compose.yml gives LocalStack, whose free edition applies no layers: pyarrow
    in a build for python3.11's Amazon Linux 2 (manylinux2014), without numpy, within Lambda's
    limits. (That it loads on Amazon Linux 2 itself needs the runtime's image: not here.)"""
    from loganalyzer.lambda_fn.package import (
        LOCALSTACK_PYARROW,
        MAX_UNZIPPED,
        MAX_ZIPPED,
        WheelError,
        build_zip,
        find_uv,
        install_for_lambda,
    )

    try:
        packages = install_for_lambda(LOCALSTACK_PYARROW, tmp_path / "packages", find_uv(ROOT))
    except WheelError as exc:  # neither in uv's cache nor reachable
        pytest.skip(str(exc))
    wheel_tags = (packages / "pyarrow-20.0.0.dist-info" / "WHEEL").read_text()
    assert "manylinux2014_x86_64" in wheel_tags and "cp311" in wheel_tags, wheel_tags
    report = build_zip(tmp_path / "fn.zip", extra=packages)
    assert report.zipped_bytes < MAX_ZIPPED and report.unzipped_bytes < MAX_UNZIPPED
    tops = {name.split("/", 1)[0] for name in report.entries}
    assert tops == {"process_daily_logs.py", "loganalyzer", "orjson", "pyarrow", "pyarrow-20.0.0.dist-info"}
    assert not any(n.startswith(("pyarrow/include/", "pyarrow/tests/", "numpy")) for n in report.entries)
    settings, _ = platform
    result = _run_handler_from(report.path, database_url, settings, tmp_path, "own-pyarrow")
    assert result["summaries"] == [
        {"date": "2026-11-30", "tenant_service": "tenant-0#svc-00", "total_logs": 200}
    ]


def test_bootstrap_cli_is_idempotent_and_names_a_bad_endpoint(aws_endpoint: str) -> None:
    import subprocess
    import sys

    from loganalyzer.platform.processes import free_port

    tag = uuid.uuid4().hex[:6]
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": aws_endpoint,
        "S3_BUCKET": f"boot-{tag}",
        "LAMBDA_QUEUE": f"boot-{tag}",
        "LAMBDA_DLQ": f"boot-{tag}-dlq",
        "DYNAMODB_TABLE": f"boot-{tag}",
    }
    cmd = [sys.executable, "-m", "loganalyzer", "aws", "bootstrap"]
    for _ in range(2):
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert f"s3://boot-{tag}" in out.stderr
    settings = load_settings(env)
    queue = clients.sqs(settings).get_queue_url(QueueName=f"boot-{tag}")["QueueUrl"]
    attrs = clients.sqs(settings).get_queue_attributes(QueueUrl=queue, AttributeNames=["RedrivePolicy"])
    assert json.loads(attrs["Attributes"]["RedrivePolicy"])["maxReceiveCount"] in (3, "3")

    bad = subprocess.run(
        cmd,
        env={**env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1 and "AWS_ENDPOINT_URL=http://127.0.0.1:" in bad.stderr
    worse = subprocess.run(
        cmd, env={**env, "AWS_ENDPOINT_URL": "127.0.0.1:5000"}, capture_output=True, text=True, timeout=60
    )
    assert worse.returncode == 2 and "AWS_ENDPOINT_URL" in worse.stderr and "Traceback" not in worse.stderr


def _event(bucket: str, *keys: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": k}},
            }
            for k in keys
        ]
    }


def test_a_stale_part_of_an_earlier_run_is_not_counted(
    database_url: str, platform: tuple[Settings, Provisioned]
) -> None:
    from loganalyzer.export.daily import export_day_to
    from loganalyzer.export.store import S3Store

    settings, _ = platform
    s3 = clients.s3(settings)
    bucket = settings.aws.s3_bucket
    insert_logs(database_url, DAY, 300, tenants=1, services=1)
    first = export_day_to(database_url, S3Store(s3, bucket), DAY, max_rows_per_file=100)
    assert len(first.objects) == 3
    stale_key = first.objects[2].key
    stale = s3.get_object(Bucket=bucket, Key=stale_key)
    stale_body, stale_meta = stale["Body"].read(), stale["Metadata"]

    second = export_day(database_url, s3, bucket, DAY)  # one part; removes part-1 and part-2
    assert [o.key for o in second.objects] == [first.objects[0].key] and second.removed_objects
    # the moment between a re-export's new parts and its clean-up: an old part is still there
    s3.put_object(Bucket=bucket, Key=stale_key, Body=stale_body, Metadata=stale_meta)

    runtime = _runtime(settings)
    for key in (second.objects[0].key, stale_key):  # whichever object the event names
        runtime.invoke(_event(bucket, key))
        [item] = _items(settings).values()
        assert item["total_logs"] == 300 and item["source_objects"] == [second.objects[0].key]
        assert item["export_run_id"] == second.run_id


def test_runner_records_billed_invocations_and_the_cost_snapshot_reports_them(
    database_url: str, aws_endpoint: str, platform: tuple[Settings, Provisioned]
) -> None:
    """Export → S3 notification → SQS → `loganalyzer lambda-runner` (the real CLI) → one
    lambda_invocations row per handler call → the cost snapshot of the day: its invocations and
    GB-seconds are those rows' (billed ms × configured memory), not objects and 0."""
    import subprocess
    import sys

    from loganalyzer.batch.cost_snapshot import snapshot_day
    from loganalyzer.lambda_fn.usage import gb_seconds, invocation_source

    settings, _ = platform
    insert_logs(database_url, DAY, 2000, tenants=2, services=2)
    manifest = export_day(database_url, clients.s3(settings), settings.aws.s3_bucket, DAY)
    assert len(manifest.objects) == 4
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "AWS_ENDPOINT_URL": aws_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "S3_BUCKET": settings.aws.s3_bucket,
        "DYNAMODB_TABLE": settings.aws.dynamodb_table,
        "LAMBDA_QUEUE": settings.aws.lambda_queue,
        "LAMBDA_DLQ": settings.aws.lambda_dlq,
        "LAMBDA_MEMORY_MB": "512",
    }
    out = subprocess.run(
        [sys.executable, "-m", "loganalyzer", "lambda-runner", "--until-idle", "--wait-seconds", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    with connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT tenant, billed_ms, memory_mb, succeeded, object_key FROM lambda_invocations"
            " WHERE day = %s",
            (DAY,),
        ).fetchall()
        assert {r[4] for r in rows} == {o.key for o in manifest.objects}
        assert all(r[1] >= 1 and r[2] == 512 and r[3] for r in rows)
        source = invocation_source(
            "records", conn=conn, cloudwatch=None, function_name="process-daily-logs", memory_mb=512
        )
        usage = snapshot_day(
            conn,
            clients.s3(settings),
            clients.dynamodb(settings),
            bucket=settings.aws.s3_bucket,
            day=DAY,
            summaries_table=settings.aws.dynamodb_table,
            invocations=source.invocations(DAY),
        )
        stored = {
            t: (n, g)
            for t, n, g in conn.execute(
                "SELECT tenant, lambda_invocations, lambda_gb_seconds FROM cost_snapshots WHERE day = %s",
                (DAY,),
            )
        }
    for tenant in ("tenant-0", "tenant-1"):
        mine = [r for r in rows if r[0] == tenant]
        invocations, gbs = stored[tenant]
        assert invocations == len(mine) >= 1
        assert gbs > 0
        assert gbs == pytest.approx(sum(gb_seconds(r[1], 512) for r in mine), rel=1e-12)
        assert usage[tenant].lambda_billed_ms == sum(r[1] for r in mine)
    assert "invocation records" in str(usage["*"].extra.get("lambda"))
