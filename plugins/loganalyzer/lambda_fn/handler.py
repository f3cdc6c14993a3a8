"""The Lambda runtime's entry: configuration from the function's environment, read once per
container (on the first invocation, not at import), then process_event."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loganalyzer.lambda_fn.process import process_event


@dataclass(frozen=True)
class Runtime:
    s3: Any
    dynamodb: Any
    table: str
    region: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Runtime:
        import boto3

        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        endpoint = env.get("AWS_ENDPOINT_URL") or None
        return cls(
            s3=boto3.client("s3", region_name=region, endpoint_url=endpoint),
            dynamodb=boto3.client("dynamodb", region_name=region, endpoint_url=endpoint),
            table=env.get("DYNAMODB_TABLE") or "anomaly_summaries",
            region=region,
        )

    def invoke(self, event: Mapping[str, Any]) -> dict[str, Any]:
        summaries = process_event(
            event, s3=self.s3, dynamodb=self.dynamodb, table=self.table, region=self.region
        )
        return {"summaries": summaries}


_runtime: Runtime | None = None


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """`process-daily-logs`: Lambda calls this with the S3 event."""
    global _runtime
    if _runtime is None:
        _runtime = Runtime.from_env(os.environ)
    return _runtime.invoke(event)
