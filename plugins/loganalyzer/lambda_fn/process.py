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

import pyarrow as pa
import pyarrow.parquet as pq

from loganalyzer.export.layout import META_RUN_ID, META_STARTED_AT, PartKey, parse_part_key, service_prefix
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
class _Listed:
    key: str
    part: int
    #: (export start time, run id) from the object's S3 metadata; ("", "") when it has none
    run: tuple[str, str]


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _missing(exc: Exception) -> bool:
    return _code(exc) in ("NoSuchKey", "404", "NotFound")


def _get(s3: Any, bucket: str, key: str) -> bytes:
    try:
        return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except Exception as exc:
        if _missing(exc):
            raise SummaryError(
                f"s3://{bucket}/{key} does not exist (deleted after the event was sent?)"
            ) from exc
        raise SummaryError(f"s3://{bucket}/{key} could not be read: {exc}") from exc


def _open(bucket: str, key: str, body: bytes) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(io.BytesIO(body))
    except Exception as exc:
        raise SummaryError(f"s3://{bucket}/{key} is not a readable Parquet file: {exc}") from exc


def _listed(s3: Any, bucket: str, key: str) -> _Listed | None:
    """The part's run from a HEAD request; None when it was deleted since the listing."""
    try:
        meta = s3.head_object(Bucket=bucket, Key=key).get("Metadata", {})
    except Exception as exc:
        if _missing(exc):
            return None  # a stale part removed by a re-export
        raise SummaryError(f"s3://{bucket}/{key} could not be read: {exc}") from exc
    return _Listed(key, parse_part_key(key).part, (meta.get(META_STARTED_AT, ""), meta.get(META_RUN_ID, "")))


def _list_parts(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".parquet"))
    return keys


def _count(bucket: str, key: str, f: pq.ParquetFile) -> tuple[PartCounts, int]:
    """Counts of one part, a row group at a time (memory: one row group of two columns)."""
    counts = PartCounts()
    try:
        raw = f.schema_arrow.metadata or {}
        anomalies = int(raw.get(b"loganalyzer.anomaly_count", b"0"))
        for batch in f.iter_batches(batch_size=250_000, columns=["level", "message"]):
            counts = counts.merge(count_part(pa.Table.from_batches([batch])))
    except Exception as exc:
        raise SummaryError(f"s3://{bucket}/{key} is not a readable Parquet file: {exc}") from exc
    return counts, anomalies


def summarize_service_day(s3: Any, bucket: str, key: str, region: str) -> ServiceDaySummary:
    """The summary of the service-day `key` belongs to, from every part of its newest export.

    The event's own object must exist and be readable Parquet (else SummaryError); the other
    parts are found by listing, and only those of the newest run (S3 metadata, HEAD) are read,
    one at a time.
    """
    where: PartKey = parse_part_key(key)
    trigger_body = _get(s3, bucket, key)
    trigger_file = _open(bucket, key, trigger_body)
    listed = [
        p
        for other in _list_parts(
            s3, bucket, service_prefix(where.prefix, where.day, where.tenant, where.service)
        )
        if (p := _listed(s3, bucket, other)) is not None
    ]
    if not any(p.key == key for p in listed):
        raise SummaryError(f"s3://{bucket}/{key} does not exist any more (removed by a newer export?)")
    newest = max(p.run for p in listed)
    chosen = sorted((p for p in listed if p.run == newest), key=lambda p: p.part)
    counts = PartCounts()
    anomalies = 0
    size = 0
    for p in chosen:
        body = trigger_body if p.key == key else _get(s3, bucket, p.key)
        f = trigger_file if p.key == key else _open(bucket, p.key, body)
        part_counts, part_anomalies = _count(bucket, p.key, f)
        counts = counts.merge(part_counts)
        anomalies = max(anomalies, part_anomalies)  # every part of a run carries the same count
        size += len(body)
        del body, f
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
