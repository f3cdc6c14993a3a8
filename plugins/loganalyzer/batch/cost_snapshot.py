"""A day's measured AWS usage per tenant, into `cost_snapshots` (sql/011), for the cost API.

What is measured, locally and the same way against real AWS:
- S3 bytes and objects stored: ListObjectsV2 of the day's export folder (`PREFIX/date=D/`),
  grouped by the `tenant=` segment of each key.
- S3 requests: PUT-class = one PUT per exported object plus the LIST the export made and the
  manifest PUT (shared, carried by the `*` row); GET-class = one GET per object, the summary
  function reading it.
- Lambda invocations and GB-seconds: from invocation records (one per S3 event handled: billed
  duration and memory) when the caller has them (loganalyzer.lambda_fn.usage: the local
  runner's `lambda_invocations` rows, or CloudWatch's AWS/Lambda metrics); without records,
  invocations are the objects (one ObjectCreated event each) and GB-seconds are 0, and `source`
  says so.
- DynamoDB: the day's `anomaly_summaries` items (a Query on the partition key `date`): their count,
  their size by DynamoDB's item-size rules, write units = ceil(size / 1 KB) per write, read units
  = what the Query itself consumed (ConsumedCapacity) or ceil(size / 4 KB) per item; the table's
  totals (DescribeTable ItemCount/TableSizeBytes) go into the `*` row's document.

In production the same quantities come from CloudWatch (AWS/S3 BucketSizeBytes and request
metrics filtered by prefix, AWS/Lambda Invocations and Duration, AWS/DynamoDB
ConsumedRead/WriteCapacityUnits) or from the Cost and Usage Report (line items by usage type and
the `tenant` cost-allocation tag); docs/airflow.md says how. Only `measure_*` functions talk to
AWS; turning measurements into rows and usage documents is pure.

The usage document is the cost engine's, built by loganalyzer.costs.daily (the one translation
the cost API applies to these rows too): a day's requests as measured, its `storage_gb` what the
tenant has stored at the end of the day (earlier days' exports stay). Each row also stores the
day's price by the engine (`cost_usd`, `priced`: loganalyzer.costs.daily.price_day, storage as
one day of the month, no monthly free tier), which the Grafana Costs dashboard shows.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import unquote

import orjson
import psycopg

from loganalyzer.costs.daily import LAMBDA_MEMORY_MB, DayMeasure, day_document, day_usage, price_day
from loganalyzer.costs.usage import Usage

SHARED_TENANT = "*"


@dataclass
class TenantUsage:
    s3_bytes_stored: int = 0
    s3_objects: int = 0
    s3_put_requests: int = 0
    s3_get_requests: int = 0
    lambda_invocations: int = 0
    lambda_gb_seconds: float = 0.0
    lambda_billed_ms: float = 0.0
    lambda_memory_mb: int = 0
    dynamodb_read_units: float = 0.0
    dynamodb_write_units: float = 0.0
    dynamodb_bytes_stored: int = 0
    dynamodb_items: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Invocation:
    """One handled S3 event: the tenant of its object, billed duration and configured memory."""

    tenant: str
    billed_ms: float
    memory_mb: int


def tenant_of_key(key: str) -> str | None:
    """The tenant of an exported object's key (its `tenant=` segment, URL-decoded), if any."""
    for part in key.split("/"):
        if part.startswith("tenant="):
            return unquote(part.removeprefix("tenant="))
    return None


def dynamodb_item_size(item: Mapping[str, Any]) -> int:
    """Bytes of an item by DynamoDB's rules (attribute names + values; numbers ~1 byte per two
    digits + 1; maps and lists 3 bytes + 1 per element + their contents), in the low-level
    attribute-value form that Query returns."""
    return sum(len(name.encode()) + _value_size(v) for name, v in item.items())


def _value_size(v: Mapping[str, Any]) -> int:
    ((kind, value),) = v.items()
    if kind == "S":
        return len(str(value).encode())
    if kind == "N":
        digits = str(value).lstrip("-").replace(".", "").lstrip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind == "B":
        return len(value)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_size(x) + 1 for k, x in value.items())
    if kind == "L":
        return 3 + sum(_value_size(x) + 1 for x in value)
    if kind in ("SS", "NS", "BS"):
        return sum(_value_size({kind[0]: x}) for x in value)
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def item_tenant_service(item: Mapping[str, Any]) -> tuple[str, str]:
    """(tenant, service) of a summary item: its `tenant`/`service` attributes, or its sort key
    "tenant#service" (whatever the key attribute is called)."""
    tenant = item.get("tenant", {}).get("S")
    service = item.get("service", {}).get("S")
    if tenant is not None:
        return str(tenant), str(service or "")
    for name, value in item.items():
        text = value.get("S") if name != "date" else None
        if isinstance(text, str) and "#" in text:
            t, _, s = text.partition("#")
            return t, s
    return SHARED_TENANT, str(service or "")


def combine(
    day: date,
    objects: Iterable[tuple[str, int]],
    summaries: Iterable[Mapping[str, Any]],
    invocations: Sequence[Invocation] | None,
    query_read_units: float | None,
    table: Mapping[str, int] | None = None,
) -> dict[str, TenantUsage]:
    """Per-tenant usage of one day from what was measured (pure)."""
    usage: dict[str, TenantUsage] = defaultdict(TenantUsage)
    shared = usage[SHARED_TENANT]
    parts: dict[tuple[str, str], int] = defaultdict(int)
    for key, size in objects:
        if key.endswith("_manifest.json"):
            shared.s3_bytes_stored += size
            shared.s3_objects += 1
            shared.s3_put_requests += 1
            continue
        tenant = tenant_of_key(key)
        if tenant is None:
            continue
        u = usage[tenant]
        u.s3_bytes_stored += size
        u.s3_objects += 1
        u.s3_put_requests += 1
        u.s3_get_requests += 1
        service = next((unquote(p[8:]) for p in key.split("/") if p.startswith("service=")), "")
        parts[(tenant, service)] += 1
    shared.s3_put_requests += 1  # the export's LIST of the day's folder (PUT-class pricing)
    if invocations is None:
        for tenant, u in usage.items():
            if tenant != SHARED_TENANT:
                u.lambda_invocations = u.s3_objects
        shared.extra["lambda"] = "invocations counted from objects; no invocation records"
    else:
        shared.extra["lambda"] = f"{len(invocations)} invocation records"
        for inv in invocations:
            u = usage[inv.tenant]
            u.lambda_invocations += 1
            u.lambda_billed_ms += inv.billed_ms
            u.lambda_gb_seconds += inv.memory_mb / 1024 * inv.billed_ms / 1000
            u.lambda_memory_mb = max(u.lambda_memory_mb, inv.memory_mb)
    total_size = 0
    for item in summaries:
        size = dynamodb_item_size(item)
        total_size += size
        tenant, service = item_tenant_service(item)
        u = usage[tenant or SHARED_TENANT]
        u.dynamodb_items += 1
        u.dynamodb_bytes_stored += size
        # each part's invocation writes its service's item once (idempotent put)
        u.dynamodb_write_units += math.ceil(size / 1024) * max(1, parts.get((tenant, service), 1))
        if query_read_units is None:
            u.dynamodb_read_units += math.ceil(size / 4096)
    if query_read_units is not None:
        shared.dynamodb_read_units += query_read_units
    if table:
        shared.extra["dynamodb_table"] = ", ".join(f"{k}={v}" for k, v in sorted(table.items()))
    shared.extra["dynamodb_day_bytes"] = total_size
    shared.extra["day"] = day.isoformat()
    return dict(usage)


def day_usage_of(day: date, u: TenantUsage, region: str, stored_before: tuple[float, float]) -> Usage:
    """The tenant's day as the cost engine's Usage, through loganalyzer.costs.daily (the same
    translation the cost API applies to these rows). `stored_before`: the tenant's (S3, DynamoDB)
    bytes from earlier days, still stored."""
    return day_usage(
        day,
        DayMeasure(
            s3_bytes_added=u.s3_bytes_stored,
            s3_put_requests=u.s3_put_requests,
            s3_get_requests=u.s3_get_requests,
            lambda_invocations=u.lambda_invocations,
            lambda_gb_seconds=u.lambda_gb_seconds,
            dynamodb_read_units=u.dynamodb_read_units,
            dynamodb_write_units=u.dynamodb_write_units,
            dynamodb_bytes_added=u.dynamodb_bytes_stored,
        ),
        s3_bytes_stored=stored_before[0] + u.s3_bytes_stored,
        dynamodb_bytes_stored=stored_before[1] + u.dynamodb_bytes_stored,
        region=region,
        free_tier="none",
        memory_mb=max(128, u.lambda_memory_mb or LAMBDA_MEMORY_MB),
    )


# -- adapters ------------------------------------------------------------------------------------


def measure_objects(s3_client: Any, bucket: str, day: date, prefix: str = "logs") -> list[tuple[str, int]]:
    """(key, size) of every object of the day's export folder (ListObjectsV2, paginated)."""
    folder = f"{prefix.strip('/')}/date={day.isoformat()}/" if prefix.strip("/") else f"date={day}/"
    out: list[tuple[str, int]] = []
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder):
        out.extend((o["Key"], int(o["Size"])) for o in page.get("Contents", []))
    return out


def measure_summaries(
    dynamodb_client: Any, table: str, day: date
) -> tuple[list[dict[str, Any]], float | None, dict[str, int]]:
    """The day's summary items (Query on `date`), the read units the Query consumed (None when
    the endpoint does not say), and the table's totals from DescribeTable."""
    items: list[dict[str, Any]] = []
    consumed: float | None = None
    kwargs: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "#d = :d",
        "ExpressionAttributeNames": {"#d": "date"},
        "ExpressionAttributeValues": {":d": {"S": day.isoformat()}},
        "ReturnConsumedCapacity": "TOTAL",
    }
    while True:
        page = dynamodb_client.query(**kwargs)
        items.extend(page.get("Items", []))
        cap = page.get("ConsumedCapacity", {}).get("CapacityUnits")
        if cap is not None:
            consumed = (consumed or 0.0) + float(cap)
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    desc = dynamodb_client.describe_table(TableName=table)["Table"]
    totals = {
        "item_count": int(desc.get("ItemCount", 0)),
        "table_size_bytes": int(desc.get("TableSizeBytes", 0)),
    }
    return items, consumed, totals


_UPSERT = """
INSERT INTO cost_snapshots (day, tenant, s3_bytes_stored, s3_objects, s3_put_requests, s3_get_requests,
    lambda_invocations, lambda_gb_seconds, dynamodb_read_units, dynamodb_write_units,
    dynamodb_bytes_stored, dynamodb_items, usage, source, cost_usd, priced, measured_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s::jsonb, now())
ON CONFLICT (day, tenant) DO UPDATE SET
    s3_bytes_stored = excluded.s3_bytes_stored, s3_objects = excluded.s3_objects,
    s3_put_requests = excluded.s3_put_requests, s3_get_requests = excluded.s3_get_requests,
    lambda_invocations = excluded.lambda_invocations, lambda_gb_seconds = excluded.lambda_gb_seconds,
    dynamodb_read_units = excluded.dynamodb_read_units, dynamodb_write_units = excluded.dynamodb_write_units,
    dynamodb_bytes_stored = excluded.dynamodb_bytes_stored, dynamodb_items = excluded.dynamodb_items,
    usage = excluded.usage, source = excluded.source, cost_usd = excluded.cost_usd,
    priced = excluded.priced, measured_at = now()
"""


def write_snapshot(
    conn: psycopg.Connection, day: date, usage: Mapping[str, TenantUsage], region: str, source: str
) -> int:
    """Replace the day's rows with these (a tenant measured before but not now is removed)."""
    with conn.transaction():
        conn.execute(
            "DELETE FROM cost_snapshots WHERE day = %s AND NOT (tenant = ANY(%s))", (day, list(usage))
        )
        before = {
            str(r[0]): (float(r[1]), float(r[2]))
            for r in conn.execute(
                "SELECT tenant, sum(s3_bytes_stored)::float8, sum(dynamodb_bytes_stored)::float8 "
                "FROM cost_snapshots WHERE day < %s GROUP BY tenant",
                (day,),
            )
        }
        for tenant, u in sorted(usage.items()):
            day_use = day_usage_of(day, u, region, before.get(tenant, (0.0, 0.0)))
            quote = price_day(day_use)
            doc = day_document(day_use)
            note = "; ".join(f"{k}: {v}" for k, v in sorted(u.extra.items()))
            conn.execute(
                _UPSERT,
                (
                    day,
                    tenant,
                    u.s3_bytes_stored,
                    u.s3_objects,
                    u.s3_put_requests,
                    u.s3_get_requests,
                    u.lambda_invocations,
                    u.lambda_gb_seconds,
                    u.dynamodb_read_units,
                    u.dynamodb_write_units,
                    u.dynamodb_bytes_stored,
                    u.dynamodb_items,
                    orjson.dumps(doc).decode(),
                    f"{source} ({note})" if note else source,
                    quote.total,
                    orjson.dumps(quote.to_dict()).decode(),
                ),
            )
    return len(usage)


def snapshot_day(
    conn: psycopg.Connection,
    s3_client: Any,
    dynamodb_client: Any,
    *,
    bucket: str,
    day: date,
    prefix: str = "logs",
    summaries_table: str = "anomaly_summaries",
    region: str = "us-east-1",
    invocations: Sequence[Invocation] | None = None,
    source: str = "local",
) -> dict[str, TenantUsage]:
    """Measure the day and store it; returns what was stored, by tenant."""
    objects = measure_objects(s3_client, bucket, day, prefix)
    items, consumed, totals = measure_summaries(dynamodb_client, summaries_table, day)
    usage = combine(day, objects, items, invocations, consumed, totals)
    write_snapshot(conn, day, usage, region, source)
    return usage
