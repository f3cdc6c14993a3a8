"""### daily_s3_export

Exports one closed UTC day of `logs` to S3 as zstd Parquet,
`logs/date=YYYY-MM-DD/tenant=T/service=S/part-N.parquet`, and writes the day's manifest (row
counts, byte sizes, checksums, exporter version) last. Re-running a day replaces exactly that
day's objects; a day without logs gets an empty manifest. Work: `loganalyzer.export.daily`.

- Schedule: daily at 00:15 UTC, for the day that just ended.
- Produces the Asset `daily_log_export` (its event's extra names the day), which schedules
  `cost_snapshot`.
- Connections: `loganalyzer_db` (PostgreSQL), `loganalyzer_aws` (S3; `endpoint_url` in its
  extra for a local endpoint). The bucket (S3_BUCKET, default `loganalyzer-logs`) is created by
  the platform (`loganalyzer aws bootstrap`), not by this DAG.
- Re-export a day: trigger with logical date = the day after it, or backfill a range.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import CronTriggerTimetable, dag, get_current_context, task

from loganalyzer.batch.dag_defaults import DEFAULT_ARGS, EXPORT_ASSET, START_DATE


@dag(
    dag_id="daily_s3_export",
    schedule=CronTriggerTimetable("15 0 * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["loganalyzer", "export", "s3", "daily"],
    doc_md=__doc__,
)
def daily_s3_export() -> None:
    @task(outlets=[EXPORT_ASSET])
    def export_closed_day() -> dict[str, Any]:
        from loganalyzer.batch.airflow_io import (
            ConnectionSettingError,
            aws_client,
            aws_errors,
            closed_day,
            database_url,
            interval_end,
        )
        from loganalyzer.export.daily import export_day
        from loganalyzer.export.source import SourceError
        from loganalyzer.settings import load_settings

        context = get_current_context()
        day = closed_day(interval_end(context))
        aws = load_settings().aws
        s3 = aws_client("s3")
        try:
            with aws_errors():
                manifest = export_day(database_url(), s3, aws.s3_bucket, day, prefix=aws.export_prefix)
        except SourceError as exc:
            raise ConnectionSettingError(
                f"export through Airflow connection 'loganalyzer_db': {exc}"
            ) from None
        summary = {k: v for k, v in manifest.to_dict().items() if k not in ("objects", "removed_objects")}
        context["outlet_events"][EXPORT_ASSET].extra = {
            "day": day.isoformat(),
            "bucket": aws.s3_bucket,
            "prefix": aws.export_prefix,
            "rows": manifest.total_rows,
            "objects": len(manifest.objects),
        }
        return summary

    export_closed_day()


daily_s3_export()
