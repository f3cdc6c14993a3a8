"""The soak's Airflow part: the product's DAGs run through `dag.test()` in a loop, in one process.

Why `dag.test()` and not the scheduler: the scheduler runs `hourly_rollup` once an hour and
`cost_snapshot` once a day, so half an hour would show one run or none; a loop runs each DAG
every `--every` seconds through the same Airflow code paths (DagBag parsing, task execution
through the in-process execution API, XCom, the metadata database), which is what a leak in the
DAGs or in the tasks' batch code would show in. The bench samples this process's RSS.

Every run is printed as one line (`dag_id state seconds`); a failed run does not stop the loop
(the soak counts them). SIGTERM ends the loop after the current run.

Environment (set by bench/bench_soak.py): AIRFLOW_HOME with a migrated metadata database,
AIRFLOW_CONN_LOGANALYZER_DB, AIRFLOW_CONN_LOGANALYZER_AWS, S3_BUCKET, DYNAMODB_TABLE.

Usage: python bench/soak_dags.py [--every 60] [--cost-every 300]
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--every", type=float, default=60.0, help="seconds between hourly_rollup runs")
    ap.add_argument("--cost-every", type=float, default=300.0, help="seconds between cost_snapshot runs")
    args = ap.parse_args()
    stopping = False

    def on_term(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2's location
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    if bag.import_errors:
        sys.exit(f"DAG import errors: {bag.import_errors}")
    next_cost = time.monotonic() + 30  # the first cost snapshot once some rollups ran
    while not stopping:
        t0 = time.monotonic()
        now = datetime.now(UTC).replace(microsecond=0)
        # a manual run's data interval is the hour that ENDS at its logical date: the hour that
        # ends next (the current one, still filling) and the one before it are rolled up
        due: list[tuple[str, datetime, dict[str, str]]] = [("hourly_rollup", now, {})]
        if t0 >= next_cost:
            due.append(("cost_snapshot", now, {"day": (now - timedelta(days=1)).date().isoformat()}))
            next_cost = t0 + args.cost_every
        for dag_id, when, conf in due:
            started = time.monotonic()
            try:
                run = bag.dags[dag_id].test(logical_date=when, run_conf=conf or None)
                state = str(run.state).rsplit(".", 1)[-1]
            except Exception as exc:  # one failed run is a figure of the soak, not its end
                state = f"error:{type(exc).__name__}:{str(exc)[:200]}"
            print(f"{dag_id} {state} {time.monotonic() - started:.1f}", flush=True)
            # a task run may install its own handlers: keep SIGTERM ending this loop
            signal.signal(signal.SIGTERM, on_term)
        while not stopping and time.monotonic() < t0 + args.every:
            time.sleep(0.5)


if __name__ == "__main__":
    main()
