"""What every DAG shares: owner, retries with exponential backoff, start date, the export Asset.

Imported by the DAG files at parse time, so it imports nothing but the standard library and
`airflow.sdk` (already loaded by the dag-processor).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Asset

OWNER = "loganalyzer"
#: the first interval any DAG knows about; older hours are reached by `airflow backfill create`
START_DATE = datetime(2026, 1, 1, tzinfo=UTC)

DEFAULT_ARGS: dict[str, Any] = {
    "owner": OWNER,
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=10),
}

#: the daily Parquet export of `logs` (s3://BUCKET/PREFIX); an event per exported day carries
#: {"day": "YYYY-MM-DD", ...} in its extra. The URI names the default bucket: it identifies the
#: dataset for Airflow; the bucket a run writes to comes from S3_BUCKET at run time.
EXPORT_ASSET = Asset(name="daily_log_export", uri="s3://loganalyzer-logs/logs")
