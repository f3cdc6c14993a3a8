"""The statements that read measured usage back from `cost_snapshots` (sql/011, sql/017).

Why a module of their own: the REST API (serving/usage_source.py, async) and the cost DAG's
outlook (loganalyzer.batch.cost_outlook, sync) must read the same days the same way, or the
dashboard's stored forecast and the API's answer drift apart. Parameters: `t` the tenant (NULL:
every tenant together), `a` and `b` the first and last day.
"""

from __future__ import annotations

#: one row per measured day: what the day added (bytes stored) and used (requests, units)
DAYS = (
    "SELECT day, sum(s3_bytes_stored)::float8 AS s3_bytes_added, "
    "sum(s3_put_requests)::float8 AS s3_put_requests, "
    "sum(s3_get_requests)::float8 AS s3_get_requests, "
    "sum(lambda_invocations)::float8 AS lambda_invocations, "
    "sum(lambda_gb_seconds) AS lambda_gb_seconds, "
    "sum(dynamodb_read_units) AS dynamodb_read_units, "
    "sum(dynamodb_write_units) AS dynamodb_write_units, "
    "sum(dynamodb_bytes_stored)::float8 AS dynamodb_bytes_added FROM cost_snapshots "
    "WHERE (%(t)s::text IS NULL OR tenant = %(t)s) AND day BETWEEN %(a)s AND %(b)s "
    "GROUP BY day ORDER BY day"
)
#: bytes stored before the first day (S3 and DynamoDB), which every later day still pays for
STORED_BEFORE = (
    "SELECT coalesce(sum(s3_bytes_stored), 0)::float8 AS s3, "
    "coalesce(sum(dynamodb_bytes_stored), 0)::float8 AS ddb FROM cost_snapshots "
    "WHERE (%(t)s::text IS NULL OR tenant = %(t)s) AND day < %(a)s"
)
