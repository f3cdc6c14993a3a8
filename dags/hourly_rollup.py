"""### hourly_rollup

Recomputes `hourly_metrics` (per tenant, service and UTC hour of event time) from `logs` for the
hour of its data interval **and the hour before it**, so events that arrive late still count.
Idempotent: a re-run or a backfill of an hour writes the same rows (unchanged rows are not even
rewritten). Work: `loganalyzer.batch.rollup`.

- Schedule: every hour, for the hour that just ended (data interval = that hour).
- Backfill: `airflow backfill create --dag-id hourly_rollup --from-date 2026-11-29 --to-date 2026-12-06`
  (or the UI's "Backfill" button); runs go one at a time.
- Connection: `loganalyzer_db` (PostgreSQL).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import CronDataIntervalTimetable, dag, get_current_context, task

from loganalyzer.batch.dag_defaults import DEFAULT_ARGS, START_DATE


@dag(
    dag_id="hourly_rollup",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["loganalyzer", "rollup", "hourly"],
    doc_md=__doc__,
)
def hourly_rollup() -> None:
    @task
    def roll_up_hours() -> dict[str, Any]:
        from loganalyzer.batch.airflow_io import interval_end, open_database
        from loganalyzer.batch.rollup import hours_to_roll_up, roll_up

        start, end = hours_to_roll_up(interval_end(get_current_context()))
        with open_database() as conn:
            return roll_up(conn, start, end).to_dict()

    roll_up_hours()


hourly_rollup()
