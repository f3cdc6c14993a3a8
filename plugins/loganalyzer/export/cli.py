"""`loganalyzer export`: the daily Parquet export from the command line."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

export_app = typer.Typer(help="Export logs to Parquet in S3 (one day at a time).", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)


def _parse_day(raw: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise typer.BadParameter(f"{raw!r} is not a date (YYYY-MM-DD)", param_hint="--date") from None


def _day_rows(database_url: str, day: date) -> int:
    import psycopg

    from loganalyzer.db.connection import connect
    from loganalyzer.export.checksum import day_start
    from loganalyzer.export.source import SourceError

    try:
        with connect(database_url) as conn:
            row = conn.execute(
                'SELECT count(*) FROM logs WHERE "timestamp" >= %s AND "timestamp" < %s',
                (day_start(day), day_start(day + timedelta(days=1))),
            ).fetchone()
    except psycopg.Error as exc:
        raise SourceError(f"cannot connect to PostgreSQL (DATABASE_URL): {exc}") from exc
    return int(row[0]) if row else 0


@export_app.command("day")
def export_day_command(
    day: Annotated[str, typer.Option("--date", help="The UTC day to export (YYYY-MM-DD).")],
    bucket: Annotated[str | None, typer.Option(help="Target bucket (default: S3_BUCKET).")] = None,
    prefix: Annotated[str | None, typer.Option(help="Key prefix (default: S3_EXPORT_PREFIX).")] = None,
) -> None:
    """Write the day's logs as zstd Parquet per tenant and service, then its manifest.

    Re-running a day replaces exactly that day's objects.
    """
    from loganalyzer.aws import clients
    from loganalyzer.cli import _settings
    from loganalyzer.export.daily import export_day
    from loganalyzer.export.source import SourceError
    from loganalyzer.export.store import StoreError

    settings = _settings()
    when = _parse_day(day)
    target = bucket or settings.aws.s3_bucket
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    try:
        total = _day_rows(settings.database_url, when)
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task(f"export {when} → s3://{target}", total=total)
            manifest = export_day(
                settings.database_url,
                clients.s3(settings),
                target,
                when,
                prefix=prefix or settings.aws.export_prefix,
                progress=lambda n: bar.advance(task, n),
            )
    except (StoreError, SourceError) as exc:
        console.print(f"[red]export failed:[/red] {exc}")
        raise typer.Exit(1) from None
    seconds = (manifest.finished_at - manifest.started_at).total_seconds()
    console.print(
        f"exported {manifest.total_rows:,} rows of {when} in {len(manifest.objects)} object(s), "
        f"{manifest.total_bytes / 1e6:.1f} MB, in {seconds:.1f} s; "
        f"manifest s3://{target}/{manifest.prefix}/date={when}/_manifest.json"
    )
