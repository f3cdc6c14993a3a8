"""### nightly_retrain

Retrains the IsolationForest on window features of the last `days` days (the consumer's own
feature code), evaluates the candidate and the current `log-anomaly-detector@champion` on the
same labelled held-out windows (the generator's ground truth, operator feedback once the
`anomaly_feedback` table exists), logs params, metrics, the model (signature, input example) and
a training data summary to MLflow, registers the version, and moves `@champion` only when the
candidate is better. The run's tags `decision` and `decision_reason` say why. The consumer
follows the alias and picks a new champion up without a restart. Work: `loganalyzer.batch.retrain`.

- Schedule: daily at 02:30 UTC.
- Params: `days`, `holdout_hours`, `ground_truth` (a path or s3:// URI of the generator's
  ground-truth JSONL; empty: LOGANALYZER_GROUND_TRUTH, else none), `calibration_quantile`
  (share of training windows below the threshold, default 0.999).
- Needs MLFLOW_TRACKING_URI in the workers' environment; connection `loganalyzer_db` (and
  `loganalyzer_aws` for an s3:// ground truth).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import CronTriggerTimetable, Param, dag, get_current_context, task

from loganalyzer.batch.dag_defaults import DEFAULT_ARGS, START_DATE


@dag(
    dag_id="nightly_retrain",
    schedule=CronTriggerTimetable("30 2 * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["loganalyzer", "mlflow", "model", "daily"],
    doc_md=__doc__,
    params={
        "days": Param(7.0, type="number", exclusiveMinimum=0, description="days of logs to learn from"),
        "holdout_hours": Param(
            24.0, type="number", exclusiveMinimum=0, description="latest hours kept for evaluation"
        ),
        "ground_truth": Param("", type="string", description="path or s3:// URI of ground-truth JSONL"),
        "calibration_quantile": Param(
            0.999, type="number", exclusiveMinimum=0, maximum=1, description="threshold quantile"
        ),
    },
)
def nightly_retrain() -> None:
    @task
    def retrain_and_decide() -> dict[str, Any]:
        import os

        from loganalyzer.batch.airflow_io import aws_client, interval_end, open_database
        from loganalyzer.batch.retrain import RetrainConfig, read_ground_truth_source, retrain
        from loganalyzer.settings import load_settings

        context = get_current_context()
        params = context["params"]
        uri = load_settings().detection.mlflow_tracking_uri
        if not uri:
            raise RuntimeError("MLFLOW_TRACKING_URI is not set in the Airflow workers' environment")
        source = params.get("ground_truth") or os.environ.get("LOGANALYZER_GROUND_TRUTH", "")
        truth = None
        if source:
            truth = read_ground_truth_source(source, aws_client("s3") if source.startswith("s3://") else None)
        config = RetrainConfig(
            days=float(params["days"]),
            holdout_hours=float(params["holdout_hours"]),
            calibration_quantile=float(params["calibration_quantile"]),
        )
        with open_database() as conn:
            report = retrain(conn, uri, interval_end(context), config, truth)
        return report.to_dict()

    retrain_and_decide()


nightly_retrain()
