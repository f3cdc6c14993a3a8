"""From an S3 event to DynamoDB items: the summary function's work, behind two small adapters.

An error is raised, never swallowed, for a missing or unreadable object: Lambda then retries
the event and, after its retries, hands it to the dead-letter queue, where someone can look.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import pyarrow.parquet as pq

from loganalyzer.export.layout import PartKey, parse_part_key, service_prefix
from loganalyzer.lambda_fn.events import created_objects
from loganalyzer.summaries import (
    PartCounts,
    ServiceDaySummary,
    count_part,
    estimate_costs,
    summarize,
    usage_of_service_day,
)

log = logging.getLogger(__name__)


class SummaryError(RuntimeError):
    """An object of the event cannot be summarised; the message names it and says why."""


@dataclass(frozen=True)
class _Part:
    key: str
    part: int
    size: int
    file: pq.ParquetFile
    meta: Mapping[str, str]

    @property
    def run(self) -> tuple[str, str]:
        return (self.meta.get("loganalyzer.export_started_at", ""), self.meta.get("loganalyzer.run_id", ""))


def _missing(exc: Exception) -> bool:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    return code in ("NoSuchKey", "404", "NotFound")


def _read(s3: Any, bucket: str, key: str, *, required: bool) -> _Part | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:
        if _missing(exc) and not required:
            return None  # a stale part deleted by a re-export after it was listed
        if _missing(exc):
            raise SummaryError(
                f"s3://{bucket}/{key} does not exist (deleted after the event was sent?)"
            ) from exc
        raise SummaryError(f"s3://{bucket}/{key} could not be read: {exc}") from exc
    try:
        f = pq.ParquetFile(io.BytesIO(body))
        raw = f.schema_arrow.metadata or {}
    except Exception as exc:
        raise SummaryError(f"s3://{bucket}/{key} is not a readable Parquet file: {exc}") from exc
    meta = {k.decode(): v.decode() for k, v in raw.items()}
    return _Part(key, parse_part_key(key).part, len(body), f, meta)


def _list_parts(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".parquet"))
    return keys


def summarize_service_day(s3: Any, bucket: str, key: str, region: str) -> ServiceDaySummary:
    """The summary of the service-day `key` belongs to, from every part of its newest export."""
    where: PartKey = parse_part_key(key)
    trigger = _read(s3, bucket, key, required=True)
    assert trigger is not None
    parts = [trigger]
    for other in _list_parts(
        s3, bucket, service_prefix(where.prefix, where.day, where.tenant, where.service)
    ):
        if other != key and (p := _read(s3, bucket, other, required=False)) is not None:
            parts.append(p)
    newest = max(p.run for p in parts)
    chosen = sorted((p for p in parts if p.run == newest), key=lambda p: p.part)
    counts = PartCounts()
    for p in chosen:
        try:
            table = p.file.read(columns=["level", "message"])
        except Exception as exc:
            raise SummaryError(f"s3://{bucket}/{p.key} is not a readable Parquet file: {exc}") from exc
        counts = counts.merge(count_part(table))
    size = sum(p.size for p in chosen)
    anomalies = max(int(p.meta.get("loganalyzer.anomaly_count", "0")) for p in chosen)
    summary = summarize(
        where.day.isoformat(),
        where.tenant,
        where.service,
        counts,
        anomaly_count=anomalies,
        source_objects=[p.key for p in chosen],
        source_bytes=size,
        export_run_id=newest[1],
        estimated_costs={},
    )
    # the item's own size decides its write units; the cost block adds about 1 KB
    usage = usage_of_service_day(len(chosen), size, item_kb=item_kb(summary) + 1, region=region)
    return replace(summary, estimated_costs=estimate_costs(usage))


def put_summary(dynamodb: Any, table: str, summary: ServiceDaySummary) -> None:
    """Write the item whole: the same summary always gives the same item (idempotent)."""
    from boto3.dynamodb.types import TypeSerializer

    ser = TypeSerializer()
    item = {k: ser.serialize(v) for k, v in summary.to_item().items()}
    dynamodb.put_item(TableName=table, Item=item)


def item_kb(summary: ServiceDaySummary) -> int:
    return math.ceil(len(repr(summary.to_item()).encode()) / 1024)


def process_event(
    event: Mapping[str, Any], *, s3: Any, dynamodb: Any, table: str, region: str
) -> list[dict[str, Any]]:
    """Summaries for every service-day an S3 event touches; raises on the first failure."""
    done: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for ref in created_objects(event):
        try:
            where = parse_part_key(ref.key)
        except ValueError:
            log.warning("s3://%s/%s is not an exported part; ignored", ref.bucket, ref.key)
            continue
        group = (ref.bucket, service_prefix(where.prefix, where.day, where.tenant, where.service))
        if group in seen:
            continue
        seen.add(group)
        summary = summarize_service_day(s3, ref.bucket, ref.key, region)
        put_summary(dynamodb, table, summary)
        done.append(
            {"date": summary.date, "tenant_service": summary.sort_key, "total_logs": summary.total_logs}
        )
    return done
