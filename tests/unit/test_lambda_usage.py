"""Lambda billing of the summary function: rounding, what an event says, the CloudWatch source."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from loganalyzer.batch.cost_snapshot import SHARED_TENANT
from loganalyzer.costs.daily import LAMBDA_MEMORY_MB
from loganalyzer.lambda_fn.usage import CloudWatchInvocations, billed_ms, describe_event, gb_seconds
from loganalyzer.settings import AwsResources, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("seconds", "ms"), [(0.0, 1), (0.0004, 1), (0.001, 1), (0.0010001, 2), (0.2503, 251), (1.0, 1000)]
)
def test_duration_is_billed_rounded_up_to_the_millisecond(seconds: float, ms: int) -> None:
    assert billed_ms(seconds) == ms


def test_gb_seconds_are_memory_in_gb_times_billed_seconds() -> None:
    assert gb_seconds(1500, 1024) == 1.5
    assert gb_seconds(100, 512) == 0.05


def test_the_configured_memory_defaults_to_the_templates_memory_size() -> None:
    template = (ROOT / "deploy/aws/template.yaml").read_text()
    match = re.search(r"MemorySize:\n\s+Type: Number\n\s+Default: (\d+)", template)
    assert match is not None
    assert int(match.group(1)) == AwsResources().lambda_memory_mb == LAMBDA_MEMORY_MB
    assert load_settings({"LAMBDA_MEMORY_MB": "512"}).aws.lambda_memory_mb == 512


def test_an_event_names_the_exported_day_tenant_and_key() -> None:
    key = "logs/date=2026-11-30/tenant=acme+corp/service=svc-01/part-0.parquet"
    event = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "b"}, "object": {"key": key}},
            }
        ]
    }
    assert describe_event(event) == (
        date(2026, 11, 30),
        "acme corp",
        "logs/date=2026-11-30/tenant=acme corp/service=svc-01/part-0.parquet",
    )
    assert describe_event({"not": "s3"}) == (None, None, None)


@mock_aws
def test_cloudwatch_source_reads_the_functions_invocations_and_duration_of_the_day_after() -> None:
    cw = boto3.client("cloudwatch", region_name="us-east-1")
    day = date(2026, 11, 30)
    handled = datetime(2026, 12, 1, 0, 20, tzinfo=UTC)
    for when, fn, invocations, duration in (
        (handled, "process-daily-logs", 3, 900.0),
        (handled + timedelta(hours=5), "process-daily-logs", 1, 300.0),
        (handled, "another-function", 7, 7000.0),
        (handled - timedelta(days=1), "process-daily-logs", 9, 9000.0),  # the day before's work
    ):
        dims = [{"Name": "FunctionName", "Value": fn}]
        cw.put_metric_data(
            Namespace="AWS/Lambda",
            MetricData=[
                {"MetricName": "Invocations", "Dimensions": dims, "Timestamp": when, "Value": invocations},
                {"MetricName": "Duration", "Dimensions": dims, "Timestamp": when, "Value": duration},
            ],
        )
    got = CloudWatchInvocations(cw, "process-daily-logs", 1024).invocations(day)
    assert got is not None and len(got) == 4
    assert {i.tenant for i in got} == {SHARED_TENANT}
    assert sum(i.billed_ms for i in got) == pytest.approx(1200.0)
    assert CloudWatchInvocations(cw, "process-daily-logs", 1024).invocations(date(2026, 12, 5)) is None
