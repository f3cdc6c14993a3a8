"""`loganalyzer alerts [--once]`: deliver Slack alerts for anomaly episodes, apart from ingestion."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Annotated

import psycopg
import typer
import yaml
from rich.console import Console

from loganalyzer.alerts.config import AlertsConfig, AlertsConfigError, build_config
from loganalyzer.alerts.delivery import WebhookSender
from loganalyzer.alerts.service import AlertService
from loganalyzer.alerts.store import AlertStore
from loganalyzer.db.connection import connect, ensure_database
from loganalyzer.db.migrate import MigrationError, migrate
from loganalyzer.settings import SettingsError, load_settings

log = logging.getLogger("loganalyzer.alerts")
console = Console(stderr=True, soft_wrap=True)  # one line each, whatever the terminal width
alerts_app = typer.Typer(invoke_without_command=True)  # help: the callback's docstring


@dataclass(frozen=True)
class AlertsEnv:
    database_url: str
    config: AlertsConfig
    poll_seconds: float


def load_alerts_env(env: Mapping[str, str]) -> AlertsEnv:
    """SLACK_WEBHOOK_URL, ALERTS_CONFIG, API_BASE_URL, ALERTS_POLL_SECONDS (docs/configuration.md)."""
    settings = load_settings(env)
    doc = None
    path = env.get("ALERTS_CONFIG")
    if path:
        try:
            doc = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise AlertsConfigError(f"ALERTS_CONFIG={path}: cannot read: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise AlertsConfigError(f"ALERTS_CONFIG={path}: not valid YAML: {exc}") from None
    config = build_config(
        doc,
        slack_webhook_url=env.get("SLACK_WEBHOOK_URL") or None,
        api_base_url=env.get("API_BASE_URL") or None,
    )
    raw = env.get("ALERTS_POLL_SECONDS") or "2"
    try:
        poll = float(raw)
    except ValueError:
        raise AlertsConfigError(f"ALERTS_POLL_SECONDS={raw!r} is not a number") from None
    if not 0.05 <= poll <= 3600:
        raise AlertsConfigError(f"ALERTS_POLL_SECONDS={poll} must be between 0.05 and 3600")
    return AlertsEnv(settings.database_url, config, poll)


@alerts_app.callback()
def alerts(
    once: Annotated[
        bool, typer.Option("--once", help="One poll: discover, send what is due, record it; then exit.")
    ] = False,
) -> None:
    """Follow the anomalies table and post Slack messages when episodes open and resolve.

    Without any webhook (no SLACK_WEBHOOK_URL and no route in ALERTS_CONFIG) it says so and
    exits 0: alerts are optional. One process per database holds the lock; a second one waits.
    """
    try:
        cfg = load_alerts_env(os.environ)
    except (AlertsConfigError, SettingsError) as exc:
        console.print(f"[red]alerts configuration error:[/red] {exc}")
        raise typer.Exit(2) from None
    if not cfg.config.has_webhook:
        console.print(
            "alerts: no Slack webhook configured (SLACK_WEBHOOK_URL or ALERTS_CONFIG routes); nothing to do"
        )
        raise typer.Exit(0)
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    sender = WebhookSender(timeout=cfg.config.timeout_seconds)
    routes = ", ".join(r.name for r in (*cfg.config.routes, *filter(None, [cfg.config.default_route])))
    log.info("alerts: routes %s; polling every %gs", routes, cfg.poll_seconds)
    while not stop.is_set():
        try:
            ensure_database(cfg.database_url)
            with connect(cfg.database_url, application_name="loganalyzer-alerts") as conn:
                migrate(conn)  # like `consume`: alert_deliveries exists before the first poll
                # no WAL flush per commit: the consumer's async commits keep the disk to themselves.
                # A server crash can undo the newest state changes only: a lost 'pending' row is
                # found again (a new connection rescans lookback_hours), a lost 'sent' is resent.
                conn.execute("SET synchronous_commit = off")
                conn.autocommit = False
                store = AlertStore(conn)
                waited = False
                while not store.try_lock():
                    if once:
                        console.print("alerts: another `loganalyzer alerts` holds the lock; nothing done")
                        raise typer.Exit(1)
                    if not waited:
                        log.info("alerts: another process delivers alerts; standing by")
                        waited = True
                    if stop.wait(cfg.poll_seconds):
                        return
                service = AlertService(store, cfg.config, sender)
                while not stop.is_set():
                    report = service.run_once()
                    if once:
                        console.print(f"alerts: {report}")
                        return
                    if report.discovered or report.messages_sent or report.retried or report.failed:
                        log.info("alerts: %s", report)
                    stop.wait(cfg.poll_seconds)
        except MigrationError as exc:
            console.print(f"[red]alerts: migration error:[/red] {exc}")
            raise typer.Exit(1) from None
        except psycopg.OperationalError as exc:
            if once:
                console.print(f"[red]alerts: database unavailable:[/red] {str(exc).strip().splitlines()[0]}")
                raise typer.Exit(1) from None
            log.warning(
                "alerts: database unavailable (%s); retrying in %gs", str(exc).strip(), cfg.poll_seconds
            )
            stop.wait(cfg.poll_seconds)
