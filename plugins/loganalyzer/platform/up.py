"""`loganalyzer up`: the whole platform on one machine, supervised, stopped cleanly on Ctrl-C.

What it starts, in order (each only when the user did not point at their own): the Tansu broker,
moto (S3, SQS, DynamoDB) with the export bucket, event queues and summary table, the MLflow
server, Airflow (api-server, scheduler, dag-processor), the consumer, the lambda runner, the REST
API, the alerts process (when a Slack webhook is configured) and the log generator with
incidents. Every port it binds is checked before anything starts: a taken one is one line that
names it and the option to change, and exit code 2.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console

from loganalyzer.platform.processes import Supervisor
from loganalyzer.platform.seed import HistorySeeder, holdout_hours
from loganalyzer.settings import (
    DEFAULT_METRICS_PORT,
    AwsResources,
    Settings,
    SettingsError,
    kafka_client_config,
    load_settings,
)

console = Console(stderr=True)


def up(
    rate: Annotated[float, typer.Option(help="Generator: mean events per second of event time.")] = 200.0,
    kafka_port: Annotated[int, typer.Option(help="Port of the embedded broker (127.0.0.1 only).")] = 9092,
    aws_port: Annotated[int, typer.Option(help="Port of the local S3/DynamoDB endpoint.")] = 5000,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Port of the consumer's /metrics (default: 9108, or the next free one)."),
    ] = None,
    mlflow_port: Annotated[int, typer.Option(help="Port of the MLflow tracking server / registry.")] = 5001,
    api_port: Annotated[int, typer.Option(help="Port of the REST API (docs at /docs).")] = 8000,
    airflow_port: Annotated[int, typer.Option(help="Port of the Airflow UI and API.")] = 8080,
    mlflow: Annotated[bool, typer.Option(help="Start the MLflow tracking server.")] = True,
    api: Annotated[bool, typer.Option(help="Start the REST API.")] = True,
    airflow: Annotated[
        bool, typer.Option(help="Start Airflow (api-server, scheduler, dag-processor; ~2 GB of memory).")
    ] = True,
    generator: Annotated[bool, typer.Option(help="Start the log generator with demo incidents.")] = True,
    seed: Annotated[
        bool,
        typer.Option(
            help="Before the live generator, produce --seed-history of generated past traffic at "
            "full speed (warm baselines) and train and promote a first model when none exists."
        ),
    ] = True,
    seed_history: Annotated[
        str, typer.Option(help="How much event time of history to seed, e.g. 3h, 90m.")
    ] = "2h",
    exit_after: Annotated[
        float, typer.Option(help="Stop everything after this many seconds (0: run until Ctrl-C).")
    ] = 0.0,
) -> None:
    """Start the whole platform locally, supervise it, and stop everything on Ctrl-C / SIGTERM."""
    from loganalyzer.db.login_users import LoginUserError, mask_password
    from loganalyzer.db.migrate import MigrationError, create_and_migrate
    from loganalyzer.generator.incidents import ScenarioError, parse_duration
    from loganalyzer.kafka_admin import ensure_topic
    from loganalyzer.platform.db_users import prepare_process_databases
    from loganalyzer.platform.local import broker_spec, cli_spec, mlflow_spec, moto_spec
    from loganalyzer.platform.ports import first_free, is_free

    def require_free(port: int, what: str, option: str) -> None:
        """A port `up` binds for the user: taken means one line and exit code 2."""
        taken = is_free(port)
        if taken is not None:
            how = f' (with make: make up UP_ARGS="{option} PORT")'
            console.print(taken.explain(what, option) + how, soft_wrap=True, highlight=False)
            raise typer.Exit(2)

    try:
        seed_span = parse_duration(seed_history)
    except ScenarioError as exc:
        console.print(f"[red]--seed-history:[/red] {exc}")
        raise typer.Exit(2) from None
    try:
        settings = load_settings()
    except SettingsError as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None
    # Every port is checked before anything starts: a taken one is a line and exit code 2.
    if "KAFKA_BOOTSTRAP_SERVERS" not in os.environ:
        require_free(kafka_port, "the embedded Kafka broker", "--kafka-port")
    if not settings.aws_endpoint_url:
        require_free(aws_port, "the local AWS endpoint", "--aws-port")
    if mlflow and "MLFLOW_TRACKING_URI" not in os.environ:
        require_free(mlflow_port, "MLflow", "--mlflow-port")
    if api:
        require_free(api_port, "the REST API", "--api-port")
    if airflow:
        require_free(airflow_port, "the Airflow UI", "--airflow-port")
    chosen = settings.consumer
    if metrics_port is not None:
        require_free(metrics_port, "the consumer's /metrics", "--metrics-port")
    elif chosen.metrics_port_explicit and chosen.metrics_port:
        metrics_port = chosen.metrics_port
        require_free(metrics_port, "the consumer's /metrics", "CONSUMER_METRICS_PORT")
    else:
        metrics_port = first_free(chosen.metrics_port or DEFAULT_METRICS_PORT)
    state = settings.state_dir
    sup = Supervisor(state / "logs")
    first_model: subprocess.Popen[bytes] | None = None
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    env: dict[str, str] = {"DATABASE_URL": settings.database_url, "LOGANALYZER_STATE_DIR": str(state)}
    try:
        shown_url = mask_password(settings.database_url)
        console.print(f"database: {shown_url}")
        try:
            created, _ = create_and_migrate(settings.database_url)
        except MigrationError as exc:
            console.print(f"[red]migration error:[/red] {exc}")
            raise typer.Exit(1) from None
        if created:
            console.print(f"created database for {shown_url}")
        # DATABASE_URL's user migrates and creates one login user per process (least privilege)
        try:
            dbs = prepare_process_databases(settings.database_url, state)
        except LoginUserError as exc:
            console.print(f"[red]configuration error:[/red] {exc}")
            raise typer.Exit(2) from None
        if dbs.fallback_reason:
            console.print(
                f"[yellow]every process connects as DATABASE_URL's user:[/yellow] {dbs.fallback_reason}"
            )
        env.update(dbs.env)
        env["DATABASE_URL"] = dbs.url("grafana")  # read-only: for children that need no writes

        if "KAFKA_BOOTSTRAP_SERVERS" in os.environ:
            bootstrap = settings.kafka.bootstrap_servers
            console.print(f"Kafka: using {bootstrap} (KAFKA_BOOTSTRAP_SERVERS)")
        else:
            sup.start(broker_spec(kafka_port))
            bootstrap = f"127.0.0.1:{kafka_port}"
            console.print(f"Kafka: embedded Tansu broker on {bootstrap}")
        env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap

        if settings.aws_endpoint_url:
            aws_url = settings.aws_endpoint_url
            console.print(f"AWS: using {aws_url} (AWS_ENDPOINT_URL)")
        else:
            sup.start(moto_spec(aws_port))
            aws_url = f"http://127.0.0.1:{aws_port}"
            console.print(f"AWS: local S3/DynamoDB endpoint (moto) on {aws_url}")
            env.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
        env["AWS_ENDPOINT_URL"] = aws_url
        aws_names = _bootstrap_aws(replace(settings, aws_endpoint_url=aws_url))

        mlflow_line = "MLflow:              not started (--no-mlflow)"
        if "MLFLOW_TRACKING_URI" in os.environ:
            env["MLFLOW_TRACKING_URI"] = os.environ["MLFLOW_TRACKING_URI"]
            mlflow_line = f"MLflow:              {env['MLFLOW_TRACKING_URI']} (MLFLOW_TRACKING_URI)"
        elif mlflow:
            sup.start(mlflow_spec(mlflow_port, state))
            env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{mlflow_port}"
            mlflow_line = (
                f"MLflow UI/registry:  {env['MLFLOW_TRACKING_URI']}  (ready ~25 s after start; "
                "the model: /#/models/log-anomaly-detector)\n"
                f"  try:               curl -s '{env['MLFLOW_TRACKING_URI']}/api/2.0/mlflow/"
                "registered-models/alias?name=log-anomaly-detector&alias=champion'"
            )

        kafka = settings.kafka
        ensure_topic({**kafka_client_config(kafka), "bootstrap.servers": bootstrap}, kafka.topic, 4)
        env["CONSUMER_METRICS_PORT"] = str(metrics_port)
        sup.start(cli_spec("consumer", "consume", env={**env, "DATABASE_URL": dbs.url("consumer")}))
        # the runner stands in for AWS itself (Lambda's event source and CloudWatch's metering),
        # not for a deployable of the product: it records invocations as the owner
        sup.start(
            cli_spec("lambda-runner", "lambda-runner", env={**env, "DATABASE_URL": settings.database_url})
        )

        ground_truth = state / "ground_truth.jsonl"
        seeder = HistorySeeder(
            {**kafka_client_config(kafka), "bootstrap.servers": bootstrap},
            kafka.topic,
            settings.database_url,
            rate,
            ground_truth,
            console,
        )
        seeded_until: datetime | None = None
        if generator and seed:
            seeded_until = _seed(seeder, seed_span)
            if "MLFLOW_TRACKING_URI" in env:
                # as the nightly retraining runs in Airflow: the read-only user may not read feedback
                first_model = _start_first_model(
                    {**env, "DATABASE_URL": dbs.url("airflow")}, state, seed_span, seeded_until, ground_truth
                )

        api_lines = ["REST API:            not started (--no-api)"]
        if api:
            api_url = f"http://127.0.0.1:{api_port}"
            env["API_BASE_URL"] = api_url
            # before the API answers: whoever sees its port open can read the key at once
            key_file = _local_admin_key(settings.database_url, state)
            sup.start(
                replace(
                    cli_spec(
                        "api",
                        "serve",
                        "--port",
                        str(api_port),
                        env={**env, "API_PUBLIC_URL": api_url, "DATABASE_URL": dbs.url("api")},
                    ),
                    ready_port=api_port,
                )
            )
            api_lines = [
                f"REST API docs:       {api_url}/docs",
                f'  try:               curl -s -H "X-API-Key: $(cat {key_file})" '
                f"'{api_url}/api/v1/anomalies?limit=5'",
            ]

        airflow_lines = ["Airflow:             not started (--no-airflow)"]
        if airflow:
            airflow_lines = _start_airflow(
                sup, settings.database_url, state, airflow_port, {**env, "DATABASE_URL": dbs.url("airflow")}
            )

        alerts_line = "Slack alerts:        off (set SLACK_WEBHOOK_URL to send them; docs/alerts.md)"
        if os.environ.get("SLACK_WEBHOOK_URL"):
            sup.start(cli_spec("alerts", "alerts", env={**env, "DATABASE_URL": dbs.url("alerts")}))
            alerts_line = "Slack alerts:        on (SLACK_WEBHOOK_URL); deliveries in table alert_deliveries"

        if generator:
            live_from: list[str] = []
            if seeded_until is not None:
                # the live traffic starts where the history ends: no hole in event time
                live_from = ["--start", seeded_until.isoformat(), "--catch-up"]
            sup.start(
                cli_spec(
                    "generator",
                    "generate",
                    *live_from,
                    "--rate",
                    str(rate),
                    "--speedup",
                    "1",
                    "--demo-incidents",
                    "--ground-truth",
                    str(ground_truth),
                    "--quiet",
                    env=env,
                )
            )
        lines = [
            *api_lines,
            *airflow_lines,
            mlflow_line,
            f"consumer metrics:    http://127.0.0.1:{metrics_port}/metrics  (Prometheus)",
            f"  try:               curl -s http://127.0.0.1:{metrics_port}/metrics | grep -E "
            "'^loganalyzer_(events_written|anomaly_changes)'",
            f"logs in PostgreSQL:  psql '{shown_url}' -c "
            "'SELECT service, level, count(*) FROM logs GROUP BY 1, 2'",
            f"anomalies:           psql '{shown_url}' -c "
            "'SELECT anomaly_type, service, severity, status, description FROM anomalies "
            "ORDER BY window_start DESC LIMIT 10'",
            f"dead letters:        psql '{shown_url}' -c "
            "'SELECT reason, count(*) FROM dead_letters GROUP BY 1'",
            f"Kafka:               {bootstrap}  (topic {kafka.topic})",
            f"local AWS endpoint:  {aws_url}",
            f"daily export:        loganalyzer export day --date YYYY-MM-DD → s3://{aws_names.s3_bucket}/"
            f"{aws_names.export_prefix}/; the lambda runner writes summaries to DynamoDB "
            f"{aws_names.dynamodb_table}",
            alerts_line,
            *_grafana_lines(os.environ.get("GRAFANA_URL", "")),
            f"  its database user: {mask_password(dbs.url('grafana'))} (password in {state / 'db-users'})",
            f"incidents injected:  {ground_truth}" if generator else "generator:           off",
            f"process logs:        {state / 'logs'}",
            "stop:                Ctrl-C",
        ]
        console.rule("Smart Log Analyzer is up")
        for line in "\n".join(lines).splitlines():
            console.print(line, soft_wrap=True, highlight=False, markup=False)
        console.rule()
        started = time.monotonic()
        last_status = 0.0
        while not stopping:
            for note in sup.poll():
                console.print(f"[yellow]{note}[/yellow]")
            if first_model is not None and first_model.poll() is not None:
                _report_first_model(first_model, state)
                first_model = None
            now = time.monotonic()
            if now - last_status >= 10:
                last_status = now
                _print_status(settings)
            if exit_after and now - started >= exit_after:
                break
            time.sleep(0.5)
    finally:
        console.print("stopping…")
        if first_model is not None and first_model.poll() is None:
            first_model.terminate()
            first_model.wait(timeout=30)
        sup.stop()
        console.print("stopped")


def _grafana_lines(url: str) -> list[str]:
    """Grafana's address when GRAFANA_URL answers (no Grafana server runs on a developer machine
    by default), else where its dashboards are."""
    import httpx

    url = url.rstrip("/")
    if url:
        try:
            healthy = httpx.get(f"{url}/api/health", timeout=3).status_code == 200
        except httpx.HTTPError:
            healthy = False
        if healthy:
            return [
                f"Grafana:             {url}/d/loganalyzer-overview  (also loganalyzer-anomalies, "
                "loganalyzer-costs; provisioning in grafana/)",
                f"  try:               curl -s {url}/api/health",
            ]
        return [f"Grafana:             {url} (GRAFANA_URL) does not answer; dashboards in grafana/"]
    return [
        "Grafana:             dashboards and provisioning in grafana/ (set GRAFANA_URL to a Grafana "
        "that has them, and its address is listed here)"
    ]


def _seed(seeder: HistorySeeder, span: timedelta) -> datetime | None:
    """Seed the history; returns where event time stands (None when nothing is stored at all)."""
    console.print(
        f"seeding {span} of generated history at full speed through the broker and the consumer "
        "(--no-seed skips it)…"
    )
    try:
        result = seeder.seed(span)
    except TimeoutError as exc:
        console.print(f"[red]seeding stopped:[/red] {exc}")
        raise typer.Exit(1) from None
    if result is None:
        latest = seeder.latest_stored()
        if latest is None:
            console.print(f"history: {span} is too short to seed (at least a minute)")
        else:
            console.print(f"history: already stored up to {latest:%Y-%m-%d %H:%M:%S} UTC; nothing to seed")
        return latest
    console.print(
        f"history: {result.produced:,} events from {result.start:%H:%M} to {result.end:%H:%M} UTC "
        f"stored, {result.incidents} incident(s) in it",
        highlight=False,
    )
    return result.end


def _start_first_model(
    env: dict[str, str],
    state: Path,
    span: timedelta,
    until: datetime | None,
    ground_truth: Path,
) -> subprocess.Popen[bytes] | None:
    """Train and promote a first model in the background (the nightly retraining's code), when
    none is the champion yet. It waits for the MLflow server itself (~25 s to start, minutes on
    a busy machine), so nothing else waits for it."""
    if until is None:
        return None
    start = until - span
    argv = [
        sys.executable,
        "-m",
        "loganalyzer",
        "model",
        "retrain",
        "--if-no-champion",
        "--wait-for-mlflow",
        "300",
        "--hours",
        f"{max(span.total_seconds() / 3600, 1):.4f}",
        "--holdout-hours",
        f"{holdout_hours(start, until):.4f}",
        "--until",
        until.isoformat(),
    ]
    if ground_truth.exists():
        argv += ["--ground-truth", str(ground_truth)]
    log_path = state / "logs" / "first-model.log"
    console.print(f"training a first model in the background (log: {log_path})")
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env={**os.environ, **env}
        )


def _report_first_model(proc: subprocess.Popen[bytes], state: Path) -> None:
    lines = (state / "logs" / "first-model.log").read_text(errors="replace").strip().splitlines()
    last = lines[-1] if lines else "(no output)"
    if proc.returncode == 0:
        console.print(f"first model: {last}", soft_wrap=True, highlight=False)
    else:
        console.print(
            f"[yellow]first model not trained[/yellow] (exit {proc.returncode}): {last}; the nightly_retrain "
            "DAG or `loganalyzer model retrain` trains one later",
            soft_wrap=True,
            highlight=False,
        )


def _start_airflow(
    sup: Supervisor, database_url: str, state: Path, port: int, env: dict[str, str]
) -> list[str]:
    """Airflow on an `airflow` database of the same PostgreSQL, AIRFLOW_HOME in the state folder,
    the product's settings as its connections; returns the banner's lines."""
    from loganalyzer.platform.airflow import (
        AirflowSetup,
        airflow_specs,
        banner_lines,
        metadata_url_for,
        prepare_airflow,
    )

    setup = AirflowSetup(
        home=state / "airflow",
        port=port,
        # Airflow's own setting wins: a metadata database elsewhere, or one per test run
        metadata_url=os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
        or metadata_url_for(database_url, os.environ.get("LOGANALYZER_AIRFLOW_DB") or "airflow"),
        product_env=dict(env),
    )
    console.print("Airflow: preparing its metadata database (the first start takes a minute)…")
    try:
        prepare_airflow(setup)
    except RuntimeError as exc:
        console.print(f"[red]Airflow could not start:[/red] {exc}")
        raise typer.Exit(1) from None
    for spec in airflow_specs(setup):
        sup.start(spec)
    return banner_lines(setup)


def _local_admin_key(database_url: str, state: Path) -> Path:
    """An admin API key for the local platform, created once and kept in the state folder
    (mode 0600), so the banner's example works from the first start on."""
    from loganalyzer.db.connection import connect
    from serving.keys import key_id_of, store_new_key

    path = state / "api-admin-key"
    if path.exists():
        key_id = key_id_of(path.read_text().strip())
        with connect(database_url) as conn:
            row = conn.execute(
                "SELECT 1 FROM api_keys WHERE id = %s AND revoked_at IS NULL", (key_id,)
            ).fetchone()
        if row is not None:
            return path
    with connect(database_url) as conn:
        key = store_new_key(conn, "default", True, "loganalyzer up: local admin")
    path.write_text(key.secret_key + "\n")
    path.chmod(0o600)
    return path


def _bootstrap_aws(settings: Settings) -> AwsResources:
    """The export bucket, event queues and summary table, before the lambda runner polls them."""
    from loganalyzer.aws import clients
    from loganalyzer.aws.provision import ensure_resources

    try:
        ensure_resources(
            clients.s3(settings),
            clients.sqs(settings),
            clients.dynamodb(settings),
            settings.aws,
            settings.aws_region,
        )
    except Exception as exc:
        console.print(f"[red]AWS resources could not be created:[/red] {clients.unreachable(settings, exc)}")
        raise typer.Exit(1) from None
    return settings.aws


def _print_status(settings: Settings) -> None:
    from loganalyzer.db.connection import connect

    try:
        with connect(settings.database_url) as conn:
            row = conn.execute(
                "SELECT (SELECT coalesce(sum(next_offset), 0) FROM ingest_offsets),"
                " (SELECT count(*) FROM dead_letters),"
                " (SELECT count(*) FROM logs WHERE \"timestamp\" > now() - interval '1 minute'),"
                " (SELECT count(*) FROM anomalies WHERE status = 'open')"
            ).fetchone()
    except Exception as exc:  # status is informative only; never stop the platform for it
        console.print(f"status unavailable: {exc}")
        return
    assert row is not None
    console.print(
        f"{datetime.now(UTC):%H:%M:%S} records stored: {row[0]:,}  dead letters: {row[1]:,}  "
        f"logs in the last minute of event time: {row[2]:,}  open anomalies: {row[3]:,}",
        soft_wrap=True,
    )
