"""The `loganalyzer` command: one entry point, a subcommand per job.

Each command reads configuration once (load_settings) and passes it down; nothing reads the
environment at import time.
"""

from __future__ import annotations

import gc
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from loganalyzer.db.connection import connect
from loganalyzer.db.migrate import MigrationError, create_and_migrate, pending
from loganalyzer.settings import (
    Settings,
    SettingsError,
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
    created, applied = create_and_migrate(settings.database_url)
    if created:
        from loganalyzer.db.login_users import mask_password

        console.print(f"created database for {mask_password(settings.database_url)}")
    return applied


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


@db_app.command("users")
def db_users() -> None:
    """Create or update the login user of each process (consumer, api, grafana, airflow, alerts),
    each a member of its least-privilege role only; run as the database's administrator after
    `db migrate`. Passwords: LOGANALYZER_DB_PASSWORD_<NAME>_FILE or LOGANALYZER_DB_PASSWORD_<NAME>
    (docs/security.md); a missing, empty or placeholder one stops the command."""
    from loganalyzer.db.login_users import LoginUserError, ensure_login_users, login_users

    settings = _settings()
    try:
        users = login_users(os.environ, None)
        ensure_login_users(settings.database_url, users)
    except LoginUserError as exc:
        console.print(f"[red]login users:[/red] {exc}")
        raise typer.Exit(2) from None
    console.print("login users ready: " + ", ".join(f"{u.user} ({u.group})" for u in users))


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


@db_app.command("index-hours")
def db_index_hours() -> None:
    """Today's closed hours: a small full-text GIN per hour (loganalyzer.db.search_hours).

    Built CONCURRENTLY (ingestion never waits), each once, as soon as its hour has closed,
    and one for the open hour's whole 5-minute steps so far, rebuilt a step longer each time;
    run it every 5 minutes. Opt-in: every hour index costs each inserted row a predicate check
    (22 of them: COPY at ~0.75, docs/measurements.md). The day's rebuild at close replaces them.
    """
    from loganalyzer.db.search_hours import index_closed_hours

    settings = _settings()
    with connect(settings.database_url, autocommit=True) as conn:
        built = index_closed_hours(conn, datetime.now(UTC))
    console.print(f"hour search indexes built: {len(built)}: {', '.join(built) or '-'}")


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
    from loganalyzer.batch.retrain import load_windows
    from loganalyzer.detection.features import FEATURE_NAMES
    from loganalyzer.model.registry import register_forest
    from loganalyzer.model.training import NotEnoughData, fit_candidate

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
        windows = load_windows(conn, start, end)
    try:
        candidate = fit_candidate({k: ws.features for k, ws in windows.items()})
    except NotEnoughData as exc:
        console.print(f"[red]{exc}[/red] between {start} and {end}")
        raise typer.Exit(1) from None
    rows, profiles = candidate.rows, candidate.profiles
    version = register_forest(
        uri,
        candidate.estimator,
        FEATURE_NAMES,
        rows,
        metrics={"windows": float(len(rows)), "services": float(len(profiles))},
        params={"from": start.isoformat(), "to": end.isoformat()},
        promote=promote,
        threshold=candidate.threshold,
        profiles=profiles,
    )
    console.print(
        f"registered log-anomaly-detector version {version} from {len(rows):,} windows "
        f"of {len(profiles)} services (services with under an hour of windows are not scored)"
        + (" and promoted it to @champion" if promote else "")
    )


@model_app.command("retrain")
def model_retrain(
    hours: Annotated[
        float, typer.Option(min=1, help="Learn from this many hours of logs before --until.")
    ] = 7 * 24,
    holdout_hours: Annotated[
        float, typer.Option(min=0.1, help="The latest hours, kept out of training for the evaluation.")
    ] = 24,
    until: Annotated[str | None, typer.Option(help="End of the span (RFC 3339; default now).")] = None,
    ground_truth: Annotated[
        Path | None, typer.Option(help="The generator's ground-truth JSONL: labels for the evaluation.")
    ] = None,
    if_no_champion: Annotated[
        bool, typer.Option(help="Do nothing when log-anomaly-detector@champion already exists.")
    ] = False,
    wait_for_mlflow: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for an http(s) tracking server to answer.")
    ] = 0,
) -> None:
    """What the nightly_retrain DAG runs, from the command line: train a candidate, evaluate it
    against the champion on held-out windows, register it, and promote it only when it is better.

    `loganalyzer up` runs it once after seeding history, so the forest works from the first minutes.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from loganalyzer.batch.retrain import LabelError, RetrainConfig, retrain
    from loganalyzer.model import CHAMPION_ALIAS, MODEL_NAME
    from loganalyzer.model.training import NotEnoughData

    settings = _settings()
    uri = settings.detection.mlflow_tracking_uri
    if not uri:
        console.print(
            "[red]MLFLOW_TRACKING_URI is not set[/red]: point it at the MLflow server (make up starts one)"
        )
        raise typer.Exit(2)
    if wait_for_mlflow and uri.startswith(("http://", "https://")):
        _wait_for_tracking_server(uri, wait_for_mlflow)
    if if_no_champion:
        try:
            existing = MlflowClient(uri).get_model_version_by_alias(MODEL_NAME, CHAMPION_ALIAS)
        except MlflowException:
            existing = None
        if existing is not None:
            console.print(f"{MODEL_NAME}@{CHAMPION_ALIAS} is version {existing.version}: nothing to do")
            return
    end = datetime.fromisoformat(until.replace("Z", "+00:00")) if until else datetime.now(UTC)
    try:
        config = RetrainConfig(days=hours / 24, holdout_hours=holdout_hours)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    truth = None
    if ground_truth is not None:
        if not ground_truth.is_file():
            console.print(f"[red]ground truth file {ground_truth} does not exist[/red]")
            raise typer.Exit(2)
        truth = ground_truth.read_text()
    try:
        with connect(settings.database_url) as conn:
            report = retrain(conn, uri, end, config, truth)
    except NotEnoughData as exc:
        console.print(f"[red]{exc}[/red] between {end - timedelta(hours=hours)} and {end}")
        raise typer.Exit(1) from None
    except LabelError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    verdict = "promoted to @champion" if report.promoted else "registered, @champion kept"
    console.print(
        f"{MODEL_NAME} version {report.version} {verdict} ({report.reason}); trained on "
        f"{report.train_windows:,} windows of {report.services} services, evaluated on "
        f"{report.eval_windows:,} (candidate F1 {report.candidate.f1:.3f})",
        soft_wrap=True,
    )


def _wait_for_tracking_server(uri: str, seconds: float) -> None:
    import time

    import httpx

    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{uri.rstrip('/')}/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            console.print(f"[red]the MLflow server at {uri} did not answer within {seconds:.0f}s[/red]")
            raise typer.Exit(1)
        time.sleep(1)


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


def _register_subapps() -> None:
    """Sub-apps live next to their domain code; they are imported when the command runs."""
    from loganalyzer.alerts.cli import alerts_app
    from loganalyzer.aws.cli import aws_app
    from loganalyzer.costs.cli import costs_app
    from loganalyzer.export.cli import export_app
    from loganalyzer.generator.cli import generate_app
    from loganalyzer.lambda_fn.cli import lambda_runner
    from loganalyzer.patterns.cli import patterns_app
    from loganalyzer.platform.up import up
    from serving.cli import register as register_serving

    app.add_typer(alerts_app, name="alerts")
    app.add_typer(generate_app, name="generate")
    app.add_typer(patterns_app, name="patterns")
    register_serving(app)
    app.add_typer(costs_app, name="costs")
    app.add_typer(export_app, name="export")
    app.add_typer(aws_app, name="aws")
    app.command("lambda-runner")(lambda_runner)
    app.command("up")(up)


def main() -> None:
    _setup_logging()
    _register_subapps()
    app()


if __name__ == "__main__":
    main()
