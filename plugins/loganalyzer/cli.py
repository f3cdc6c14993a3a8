"""The `loganalyzer` command: one entry point, a subcommand per job.

Each command reads configuration once (load_settings) and passes it down; nothing reads the
environment at import time.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from loganalyzer.db.connection import connect, ensure_database
from loganalyzer.db.migrate import MigrationError, migrate, pending
from loganalyzer.settings import (
    DEFAULT_METRICS_PORT,
    AwsResources,
    Settings,
    SettingsError,
    kafka_client_config,
    load_settings,
)

if TYPE_CHECKING:
    from streaming.detection_stage import DetectionStage

app = typer.Typer(
    help="Smart Log Analyzer: Kafka → PostgreSQL log ingestion with anomaly detection.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema: migrations and retention.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console(stderr=True)


def _setup_logging() -> None:
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None


def _migrate(settings: Settings) -> list[str]:
    created = ensure_database(settings.database_url)
    if created:
        console.print(f"created database for {settings.database_url}")
    with connect(settings.database_url) as conn:
        return migrate(conn)


@db_app.command("migrate")
def db_migrate() -> None:
    """Create the database if missing and apply pending sql/ migrations (idempotent)."""
    settings = _settings()
    try:
        applied = _migrate(settings)
    except MigrationError as exc:
        console.print(f"[red]migration error:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")


@db_app.command("status")
def db_status() -> None:
    """List migrations not applied yet."""
    settings = _settings()
    with connect(settings.database_url) as conn:
        todo = pending(conn)
    console.print("up to date" if not todo else f"pending: {', '.join(todo)}")
    raise typer.Exit(0 if not todo else 1)


@db_app.command("maintain")
def db_maintain(
    keep_days: Annotated[
        int, typer.Option(min=0, help="Also drop partitions older than this many days (0: keep all).")
    ] = 0,
) -> None:
    """Closed days: full service/time index and full-text search (and optionally retention).

    Each closed day is rebuilt once with its search column and GIN (sql/014: a copy, then a swap
    of seconds under a lock on `logs`); later runs make late-arriving rows searchable.

    Today's partition has only the cheap indexes (see docs/schema.md); run this once a day
    (the platform's maintenance DAG will), so that yesterday's logs get the full index.
    """
    settings = _settings()
    today = datetime.now(UTC).date()
    with connect(settings.database_url, autocommit=True) as conn:
        built = [r[0] for r in conn.execute("SELECT index_closed_log_partitions(%s)", (today,))]
        dropped: list[str] = []
        if keep_days:
            before = today - timedelta(days=keep_days)
            dropped = [r[0] for r in conn.execute("SELECT drop_log_partitions_before(%s)", (before,))]
    console.print(f"closed days: {len(built)} index(es) built or updates: {', '.join(built) or '-'}")
    if keep_days:
        console.print(f"dropped {len(dropped)} partition(s): {', '.join(dropped) or '-'}")


@db_app.command("retention")
def db_retention(
    keep_days: Annotated[int, typer.Option(min=1, help="Keep this many whole UTC days of logs.")] = 30,
) -> None:
    """Drop daily `logs` partitions older than --keep-days (a DROP TABLE each: no VACUUM debt)."""
    settings = _settings()
    before = datetime.now(UTC).date() - timedelta(days=keep_days)
    with connect(settings.database_url, autocommit=True) as conn:
        dropped = [r[0] for r in conn.execute("SELECT drop_log_partitions_before(%s)", (before,))]
    console.print(f"dropped {len(dropped)} partition(s) before {before}: {', '.join(dropped) or '-'}")


model_app = typer.Typer(
    help="The IsolationForest model: train from logs, register in MLflow.", no_args_is_help=True
)
app.add_typer(model_app, name="model")


@model_app.command("train")
def model_train(
    hours: Annotated[
        float, typer.Option(min=1, help="Train on this many hours of logs before --until.")
    ] = 24,
    until: Annotated[
        str | None, typer.Option(help="End of the training span (RFC 3339; default now).")
    ] = None,
    promote: Annotated[
        bool, typer.Option(help="Point log-anomaly-detector@champion at the new version.")
    ] = True,
) -> None:
    """Train the IsolationForest on window features of stored logs and register it in MLflow.

    Needs MLFLOW_TRACKING_URI. The consumer picks up a promoted version without a restart.
    """
    from loganalyzer.db.minute_counts import minute_counts
    from loganalyzer.detection.features import FEATURE_NAMES
    from loganalyzer.model.forest import calibrate, train_forest
    from loganalyzer.model.profiles import fit_profiles, standardise
    from loganalyzer.model.registry import register_forest
    from loganalyzer.model.training import feature_rows_by_service

    settings = _settings()
    uri = settings.detection.mlflow_tracking_uri
    if not uri:
        console.print(
            "[red]MLFLOW_TRACKING_URI is not set[/red]: point it at the MLflow server (make up starts one)"
        )
        raise typer.Exit(2)
    end = datetime.fromisoformat(until.replace("Z", "+00:00")) if until else datetime.now(UTC)
    start = end - timedelta(hours=hours)
    with connect(settings.database_url) as conn:
        by_service = feature_rows_by_service(minute_counts(conn, start, end))
    profiles = fit_profiles(by_service)
    rows = [standardise(r, profiles[k]) for k, rs in by_service.items() if k in profiles for r in rs]
    if len(rows) < 50:
        console.print(
            f"[red]only {len(rows)} feature windows between {start} and {end}[/red]: need 50 or more"
        )
        raise typer.Exit(1)
    estimator = train_forest(rows)
    threshold = calibrate(estimator, rows)
    version = register_forest(
        uri,
        estimator,
        FEATURE_NAMES,
        rows,
        metrics={"windows": float(len(rows)), "services": float(len(profiles))},
        params={"from": start.isoformat(), "to": end.isoformat()},
        promote=promote,
        threshold=threshold,
        profiles=profiles,
    )
    console.print(
        f"registered log-anomaly-detector version {version} from {len(rows):,} windows "
        f"of {len(profiles)} services (services with under an hour of windows are not scored)"
        + (" and promoted it to @champion" if promote else "")
    )


def _detection_stage(settings: Settings) -> DetectionStage | None:
    """Detection as configured: thresholds from DETECTION_CONFIG, the forest from MLflow."""
    from loganalyzer.detection.config import DetectionConfigError, load_detection_config
    from loganalyzer.detection.features import FEATURE_NAMES
    from streaming.detection_stage import DetectionStage

    d = settings.detection
    if not d.enabled:
        logging.getLogger(__name__).info("DETECTION_ENABLED=false: ingesting without detection")
        return None
    try:
        config = load_detection_config(d.config_file)
    except DetectionConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    scorer = None
    if d.mlflow_tracking_uri:
        from loganalyzer.model.registry import ChampionWatcher

        # Loading a model imports MLflow and sklearn: ~320,000 objects that live as long as the
        # process. The consumer froze its start-up objects (LogConsumer.run); these arrive later,
        # and a full collection over them holds the GIL for ~270 ms (measured), a latency spike
        # in the middle of a batch. Freeze them too.
        watcher = ChampionWatcher(
            d.mlflow_tracking_uri,
            FEATURE_NAMES,
            refresh_seconds=d.model_refresh_seconds,
            on_load=lambda _model: gc.freeze(),
        )
        watcher.start()
        scorer = watcher.scorer
    else:
        logging.getLogger(__name__).info(
            "MLFLOW_TRACKING_URI is not set: the IsolationForest detector is skipped, the rules still run"
        )
    return DetectionStage(
        config, scorer, d.checkpoint_seconds, warm_start=timedelta(hours=d.warm_start_hours)
    )


@app.command()
def consume(
    metrics_port: Annotated[
        str | None,
        typer.Option(
            help="Port of the Prometheus /metrics endpoint on 127.0.0.1 (overrides "
            "CONSUMER_METRICS_PORT): 0 for any free port, -1 or off for no endpoint. When neither "
            "is set, 9108 or the next free port is used (several consumers on one host), and the "
            "log says which; a port set here or in CONSUMER_METRICS_PORT that is taken stops the "
            "consumer (exit code 2) before it joins the group.",
        ),
    ] = None,
) -> None:
    """Run the always-on consumer: Kafka topic → validated events → PostgreSQL (exactly once)."""
    from loganalyzer.platform.ports import PortUnavailable, parse_port
    from streaming.consumer import LogConsumer
    from streaming.metrics import ConsumerMetrics

    settings = _settings()
    port, explicit = settings.consumer.metrics_port, settings.consumer.metrics_port_explicit
    setting = "CONSUMER_METRICS_PORT"
    if metrics_port is not None:
        try:
            port, explicit = parse_port(metrics_port, "--metrics-port"), True
        except ValueError as exc:
            console.print(f"[red]configuration error:[/red] {exc}")
            raise typer.Exit(2) from None
        setting = "--metrics-port"
    # Bound first, before the database and the group: a consumer that cannot serve the port it
    # was told to serve stops here, and the group never sees it.
    metrics = ConsumerMetrics()
    try:
        served = metrics.serve(port, fallback=not explicit)
    except PortUnavailable as exc:
        console.print(exc.explain("the consumer's /metrics", setting), soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None
    log = logging.getLogger("loganalyzer.consume")
    if served is None:
        log.info("metrics endpoint off (%s)", setting)
    elif port == 0:
        log.info("metrics: http://127.0.0.1:%d/metrics (any free port, %s=0)", served, setting)
    elif served != port:
        log.info(
            "metrics: http://127.0.0.1:%d/metrics (port %d was taken: another consumer on this "
            "host?; set %s to choose one)",
            served,
            port,
            setting,
        )
    else:
        log.info("metrics: http://127.0.0.1:%d/metrics", served)
    _migrate(settings)
    consumer = LogConsumer(settings, metrics=metrics, detection=_detection_stage(settings))
    consumer.install_signal_handlers()
    raise typer.Exit(consumer.run())


@app.command()
def up(
    rate: Annotated[float, typer.Option(help="Generator: mean events per second of event time.")] = 200.0,
    kafka_port: Annotated[int, typer.Option(help="Port of the embedded broker (127.0.0.1 only).")] = 9092,
    aws_port: Annotated[int, typer.Option(help="Port of the local S3/DynamoDB endpoint.")] = 5000,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Port of the consumer's /metrics (default: 9108, or the next free one)."),
    ] = None,
    mlflow_port: Annotated[int, typer.Option(help="Port of the MLflow tracking server / registry.")] = 5001,
    mlflow: Annotated[bool, typer.Option(help="Start the MLflow tracking server.")] = True,
    generator: Annotated[bool, typer.Option(help="Start the log generator with demo incidents.")] = True,
    exit_after: Annotated[
        float, typer.Option(help="Stop everything after this many seconds (0: run until Ctrl-C).")
    ] = 0.0,
) -> None:
    """Start the whole platform locally, supervise it, and stop everything on Ctrl-C / SIGTERM."""
    from loganalyzer.kafka_admin import ensure_topic
    from loganalyzer.platform.local import broker_spec, cli_spec, mlflow_spec, moto_spec
    from loganalyzer.platform.ports import first_free, is_free
    from loganalyzer.platform.processes import Supervisor

    def require_free(port: int, what: str, option: str) -> None:
        """A port `up` binds for the user: taken means one line and exit code 2."""
        taken = is_free(port)
        if taken is not None:
            console.print(taken.explain(what, option), soft_wrap=True, highlight=False)
            raise typer.Exit(2)

    settings = _settings()
    # Every port is checked before anything starts: a taken one is a line and exit code 2.
    if "KAFKA_BOOTSTRAP_SERVERS" not in os.environ:
        require_free(kafka_port, "the embedded Kafka broker", "--kafka-port")
    if not settings.aws_endpoint_url:
        require_free(aws_port, "the local AWS endpoint", "--aws-port")
    if mlflow and "MLFLOW_TRACKING_URI" not in os.environ:
        require_free(mlflow_port, "MLflow", "--mlflow-port")
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
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    env: dict[str, str] = {"DATABASE_URL": settings.database_url, "LOGANALYZER_STATE_DIR": str(state)}
    try:
        console.print(f"database: {settings.database_url}")
        _migrate(settings)

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
            mlflow_line = f"MLflow UI/registry:  {env['MLFLOW_TRACKING_URI']}  (ready ~25 s after start)"

        kafka = settings.kafka
        ensure_topic({**kafka_client_config(kafka), "bootstrap.servers": bootstrap}, kafka.topic, 4)
        env["CONSUMER_METRICS_PORT"] = str(metrics_port)
        sup.start(cli_spec("consumer", "consume", env=env))
        sup.start(cli_spec("lambda-runner", "lambda-runner", env=env))
        ground_truth = state / "ground_truth.jsonl"
        if generator:
            sup.start(
                cli_spec(
                    "generator",
                    "generate",
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
            f"logs in PostgreSQL:  psql '{settings.database_url}' -c "
            "'SELECT service, level, count(*) FROM logs GROUP BY 1, 2'",
            f"dead letters:        psql '{settings.database_url}' -c "
            "'SELECT reason, count(*) FROM dead_letters GROUP BY 1'",
            f"consumer metrics:    http://127.0.0.1:{metrics_port}/metrics",
            f"Kafka:               {bootstrap}  (topic {kafka.topic})",
            f"local AWS endpoint:  {aws_url}",
            f"daily export:        loganalyzer export day --date YYYY-MM-DD → s3://{aws_names.s3_bucket}/"
            f"{aws_names.export_prefix}/; the lambda runner writes summaries to DynamoDB "
            f"{aws_names.dynamodb_table}",
            mlflow_line,
            f"incidents injected:  {ground_truth}" if generator else "generator:           off",
            f"process logs:        {state / 'logs'}",
            "stop:                Ctrl-C",
        ]
        console.rule("Smart Log Analyzer is up")
        for line in lines:
            console.print(line, soft_wrap=True, highlight=False)
        console.rule()
        started = time.monotonic()
        last_status = 0.0
        while not stopping:
            for note in sup.poll():
                console.print(f"[yellow]{note}[/yellow]")
            now = time.monotonic()
            if now - last_status >= 10:
                last_status = now
                _print_status(settings)
            if exit_after and now - started >= exit_after:
                break
            time.sleep(0.5)
    finally:
        console.print("stopping…")
        sup.stop()
        console.print("stopped")


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
    try:
        with connect(settings.database_url) as conn:
            row = conn.execute(
                "SELECT (SELECT coalesce(sum(next_offset), 0) FROM ingest_offsets),"
                " (SELECT count(*) FROM dead_letters),"
                " (SELECT count(*) FROM logs WHERE \"timestamp\" > now() - interval '1 minute')"
            ).fetchone()
    except Exception as exc:  # status is informative only; never stop the platform for it
        console.print(f"status unavailable: {exc}")
        return
    assert row is not None
    console.print(
        f"{datetime.now(UTC):%H:%M:%S} records stored: {row[0]:,}  dead letters: {row[1]:,}  "
        f"logs in the last minute of event time: {row[2]:,}",
        soft_wrap=True,
    )


def _register_subapps() -> None:
    """Sub-apps live next to their domain code; they are imported when the command runs."""
    from loganalyzer.alerts.cli import alerts_app
    from loganalyzer.aws.cli import aws_app
    from loganalyzer.costs.cli import costs_app
    from loganalyzer.export.cli import export_app
    from loganalyzer.generator.cli import generate_app
    from loganalyzer.lambda_fn.cli import lambda_runner
    from loganalyzer.patterns.cli import patterns_app
    from serving.cli import register as register_serving

    app.add_typer(alerts_app, name="alerts")
    app.add_typer(generate_app, name="generate")
    app.add_typer(patterns_app, name="patterns")
    register_serving(app)
    app.add_typer(costs_app, name="costs")
    app.add_typer(export_app, name="export")
    app.add_typer(aws_app, name="aws")
    app.command("lambda-runner")(lambda_runner)


def main() -> None:
    _setup_logging()
    _register_subapps()
    app()


if __name__ == "__main__":
    main()
