"""### maintenance

Daily database upkeep (work: `loganalyzer.batch.maintenance`):
1. `loganalyzer db maintain`: the full (tenant, service, timestamp) index on every closed day;
2. retention: daily `logs` partitions older than `keep_days` are dropped **only when that day's
   export manifest exists in S3**; a day whose export is missing is kept and listed;
3. `VACUUM (ANALYZE)` of the tables updated in place (`detector_checkpoints`, `ingest_offsets`,
   `anomalies`, `log_patterns`, `hourly_metrics`, `cost_snapshots`).

- Schedule: daily at 03:00 UTC (after the export and the retraining).
- Params: `keep_days` (default 30; 0 keeps everything).
- Connections: `loganalyzer_db`, `loganalyzer_aws` (manifest checks).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import CronTriggerTimetable, Param, dag, get_current_context, task

from loganalyzer.batch.dag_defaults import DEFAULT_ARGS, START_DATE


@dag(
    dag_id="maintenance",
    schedule=CronTriggerTimetable("0 3 * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["loganalyzer", "maintenance", "daily"],
    doc_md=__doc__,
    params={"keep_days": Param(30, type="integer", minimum=0, description="days of logs kept in PostgreSQL")},
)
def maintenance() -> None:
    @task
    def maintain_database() -> dict[str, Any]:
        from datetime import date, timedelta

        from loganalyzer.batch.airflow_io import (
            aws_client,
            aws_errors,
            closed_day,
            interval_end,
            open_database,
        )
        from loganalyzer.batch.maintenance import maintain
        from loganalyzer.export.daily import manifest_exists
        from loganalyzer.settings import load_settings

        context = get_current_context()
        today = closed_day(interval_end(context)) + timedelta(days=1)
        aws = load_settings().aws
        s3 = aws_client("s3")

        def has_manifest(day: date) -> bool:
            with aws_errors():
                return manifest_exists(s3, aws.s3_bucket, day, aws.export_prefix)

        with open_database(autocommit=True) as conn:
            report = maintain(
                conn, today, keep_days=int(context["params"]["keep_days"]), has_manifest=has_manifest
            )
        return report.to_dict()

    maintain_database()


maintenance()
