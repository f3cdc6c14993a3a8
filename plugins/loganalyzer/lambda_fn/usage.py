"""What the summary function's invocations would be billed for, and where a cost snapshot reads it.

Lambda bills each invocation's duration rounded up to the next millisecond, times the function's
configured memory (GB-seconds = memory MB / 1024 × billed ms / 1000), plus a price per request.

Two sources behind one small interface (`InvocationSource.invocations(day)`), chosen by
configuration (LAMBDA_USAGE_SOURCE):
- `records`: the local lambda runner times each handler call and writes a row per invocation to
  `lambda_invocations` (sql/021). No Lambda runtime runs locally, so this is the only measurement
  there is; the runner does what Lambda's meter does (wall time of the call, rounded up).
- `cloudwatch`: in AWS, the function's own AWS/Lambda metrics: `Invocations` (Sum) and
  `Duration` (Sum, milliseconds) over the 24 hours after the day ends, when its export runs and
  its objects' events are handled. CloudWatch has no tenant dimension, so the day's invocations
  are the shared tenant's (`*`), and its Duration is not rounded per invocation (at most 1 ms
  per invocation less than the bill).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

import psycopg

from loganalyzer.batch.cost_snapshot import SHARED_TENANT, Invocation, tenant_of_key
from loganalyzer.lambda_fn.events import EventError, created_objects


def billed_ms(seconds: float) -> int:
    """A call's wall time as Lambda bills it: rounded up to the next millisecond, at least 1."""
    return max(1, math.ceil(seconds * 1000 - 1e-9))


def gb_seconds(billed: float, memory_mb: int) -> float:
    return memory_mb / 1024 * billed / 1000


@dataclass(frozen=True)
class InvocationRecord:
    """One handler call by the local runner."""

    function_name: str
    invoked_at: datetime
    billed_ms: int
    memory_mb: int
    succeeded: bool
    #: the exported day, tenant and key of the (first) object the event named; None when the
    #: event named none that the export writes (a malformed event is billed all the same)
    day: date | None
    tenant: str | None
    object_key: str | None
    request_id: uuid.UUID


def describe_event(event: Mapping[str, Any]) -> tuple[date | None, str | None, str | None]:
    """(day, tenant, key) of the first object an S3 event names, from its `date=`/`tenant=` key
    segments; Nones when there is none (pure)."""
    try:
        refs = created_objects(event)
    except EventError:
        return None, None, None
    if not refs:
        return None, None, None
    key = refs[0].key
    day = None
    for part in key.split("/"):
        if part.startswith("date="):
            try:
                day = date.fromisoformat(part.removeprefix("date="))
            except ValueError:
                day = None
    return day, tenant_of_key(key), key


def new_record(
    event: Mapping[str, Any],
    *,
    function_name: str,
    memory_mb: int,
    started: datetime,
    seconds: float,
    succeeded: bool,
) -> InvocationRecord:
    day, tenant, key = describe_event(event)
    return InvocationRecord(
        function_name=function_name,
        invoked_at=started,
        billed_ms=billed_ms(seconds),
        memory_mb=memory_mb,
        succeeded=succeeded,
        day=day,
        tenant=tenant,
        object_key=key,
        request_id=uuid.uuid4(),
    )


# -- the local record --------------------------------------------------------------------------


def write_record(conn: psycopg.Connection, r: InvocationRecord) -> None:
    """Store one invocation (committed by the caller's connection: use autocommit)."""
    conn.execute(
        "INSERT INTO lambda_invocations (request_id, function_name, invoked_at, day, tenant, object_key,"
        " billed_ms, memory_mb, succeeded) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            r.request_id,
            r.function_name,
            r.invoked_at,
            r.day,
            r.tenant,
            r.object_key,
            r.billed_ms,
            r.memory_mb,
            r.succeeded,
        ),
    )


@dataclass
class InvocationRecorder:
    """The runner's `record` callback: one `lambda_invocations` row per handler call."""

    conn: psycopg.Connection  # autocommit
    function_name: str
    memory_mb: int

    def __call__(self, event: Mapping[str, Any], started: datetime, seconds: float, succeeded: bool) -> None:
        write_record(
            self.conn,
            new_record(
                event,
                function_name=self.function_name,
                memory_mb=self.memory_mb,
                started=started,
                seconds=seconds,
                succeeded=succeeded,
            ),
        )


def invocation_source(
    kind: str, *, conn: psycopg.Connection, cloudwatch: Any, function_name: str, memory_mb: int
) -> InvocationSource:
    """The source LAMBDA_USAGE_SOURCE names (`cloudwatch` needs a CloudWatch client)."""
    if kind == "cloudwatch":
        return CloudWatchInvocations(cloudwatch, function_name, memory_mb)
    if kind == "records":
        return RecordedInvocations(conn, function_name)
    raise ValueError(f"LAMBDA_USAGE_SOURCE={kind!r} is not one of records, cloudwatch")


class InvocationSource(Protocol):
    #: what the snapshot's `source` says the Lambda figures came from
    name: str

    def invocations(self, day: date) -> list[Invocation] | None:
        """The day's invocations (None: this source has nothing for the day)."""
        ...


@dataclass
class RecordedInvocations:
    """The local runner's rows of `lambda_invocations` for an exported day."""

    conn: psycopg.Connection
    function_name: str
    name: str = "lambda_invocations"

    def invocations(self, day: date) -> list[Invocation] | None:
        rows = self.conn.execute(
            "SELECT coalesce(tenant, %s), billed_ms, memory_mb FROM lambda_invocations"
            " WHERE day = %s AND function_name = %s ORDER BY invoked_at",
            (SHARED_TENANT, day, self.function_name),
        ).fetchall()
        if not rows:
            return None
        return [Invocation(str(t), float(ms), int(mb)) for t, ms, mb in rows]


@dataclass
class CloudWatchInvocations:
    """AWS/Lambda `Invocations` and `Duration` of the function in the 24 h after the day."""

    cloudwatch: Any
    function_name: str
    memory_mb: int
    name: str = "cloudwatch"

    def invocations(self, day: date) -> list[Invocation] | None:
        start = datetime.combine(day + timedelta(days=1), time(), UTC)
        count = self._sum("Invocations", start)
        if count is None or count < 1:
            return None
        duration = self._sum("Duration", start) or 0.0
        n = round(count)
        return [Invocation(SHARED_TENANT, duration / n, self.memory_mb) for _ in range(n)]

    def _sum(self, metric: str, start: datetime) -> float | None:
        resp = self.cloudwatch.get_metric_statistics(
            Namespace="AWS/Lambda",
            MetricName=metric,
            Dimensions=[{"Name": "FunctionName", "Value": self.function_name}],
            StartTime=start,
            EndTime=start + timedelta(days=1),
            Period=86400,
            Statistics=["Sum"],
        )
        points: Sequence[Mapping[str, Any]] = resp.get("Datapoints", [])
        return sum(float(p["Sum"]) for p in points) if points else None
