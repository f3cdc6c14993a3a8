"""### cost_snapshot

Measures one day's AWS usage per tenant (S3 bytes stored and requests, Lambda invocations and
GB-seconds, DynamoDB read/write units and storage) and stores it in `cost_snapshots`, with a
cost usage document per row that the cost API prices. Then, as of that day, it stores each
tenant's (and all tenants') next-month forecast with its 80 % interval and this month at other
traffic levels in `cost_outlook` (sql/026), computed by the cost engine calls the API's forecast
and what-if make: Grafana, which reads SQL only, shows them. Re-running a day replaces its rows.
Work: `loganalyzer.batch.cost_snapshot` (its docstring says what is measured and how the same
comes from CloudWatch or the Cost and Usage Report in production) and
`loganalyzer.batch.cost_outlook`.

- Schedule: on the Asset `daily_log_export`, i.e. right after each day's export; the day comes
  from the export's asset event. A manual run measures the param `day` (default: yesterday).
- Lambda invocations and GB-seconds: the local lambda runner's `lambda_invocations` rows, or
  with LAMBDA_USAGE_SOURCE=cloudwatch the function's AWS/Lambda metrics
  (`loganalyzer.lambda_fn.usage`).
- Connections: `loganalyzer_db`, `loganalyzer_aws`.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param, dag, get_current_context, task

from loganalyzer.batch.dag_defaults import DEFAULT_ARGS, EXPORT_ASSET, START_DATE


@dag(
    dag_id="cost_snapshot",
    schedule=[EXPORT_ASSET],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["loganalyzer", "costs", "daily"],
    doc_md=__doc__,
    params={
        "day": Param(
            "", type="string", description="YYYY-MM-DD to measure (empty: the exported day, else yesterday)"
        )
    },
)
def cost_snapshot() -> None:
    @task
    def measure_day() -> dict[str, Any]:
        from dataclasses import asdict
        from datetime import UTC, date, datetime

        from loganalyzer.batch.airflow_io import aws_client, aws_errors, closed_day, open_database
        from loganalyzer.batch.cost_outlook import write_outlook
        from loganalyzer.batch.cost_snapshot import snapshot_day
        from loganalyzer.lambda_fn.usage import invocation_source
        from loganalyzer.settings import load_settings

        context = get_current_context()
        day: date | None = None
        if context["params"].get("day"):
            day = date.fromisoformat(context["params"]["day"])
        else:
            for events in (context.get("triggering_asset_events") or {}).values():
                for event in events:
                    if event.extra.get("day"):
                        day = date.fromisoformat(event.extra["day"])
        if day is None:
            when = context.get("logical_date") or datetime.now(UTC)
            day = closed_day(when)
        settings = load_settings()
        names = settings.aws
        with aws_errors(), open_database() as conn:
            lambda_usage = invocation_source(
                names.lambda_usage_source,
                conn=conn,
                cloudwatch=aws_client("cloudwatch") if names.lambda_usage_source == "cloudwatch" else None,
                function_name=names.lambda_function_name,
                memory_mb=names.lambda_memory_mb,
            )
            usage = snapshot_day(
                conn,
                aws_client("s3"),
                aws_client("dynamodb"),
                bucket=settings.aws.s3_bucket,
                day=day,
                prefix=settings.aws.export_prefix,
                summaries_table=settings.aws.dynamodb_table,
                region=settings.aws_region,
                invocations=lambda_usage.invocations(day),
            )
            conn.commit()  # the measured day stays stored even if its outlook fails
            outlooks = write_outlook(conn, day, region=settings.aws_region)
        return {
            "day": day.isoformat(),
            "tenants": {t: asdict(u) for t, u in usage.items()},
            "outlook": {o.scope: o.forecast_error or "forecast and what-if stored" for o in outlooks},
        }

    measure_day()


cost_snapshot()
