"""`loganalyzer lambda-runner`: the summary function fed from the bucket's SQS notifications."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console

console = Console(stderr=True, soft_wrap=True)


def lambda_runner(
    wait_seconds: Annotated[int, typer.Option(min=0, max=20, help="Long-poll wait of each receive.")] = 20,
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="Exit when a poll finds the queue empty.")
    ] = False,
) -> None:
    """Run `process-daily-logs` on each S3 event of the LAMBDA_QUEUE queue, as Lambda would.

    A message is deleted after the function succeeded; a failed one comes back after the
    queue's visibility timeout and goes to LAMBDA_DLQ after LAMBDA_MAX_RECEIVES receives. Each
    call's billed duration and memory (LAMBDA_MEMORY_MB) go to the `lambda_invocations` table of
    DATABASE_URL, where the cost snapshot reads them.
    """
    import psycopg

    from loganalyzer.aws import clients
    from loganalyzer.cli import _migrate, _settings
    from loganalyzer.db.connection import connect
    from loganalyzer.lambda_fn.handler import Runtime
    from loganalyzer.lambda_fn.runner import QueueNotFoundError, queue_url, run
    from loganalyzer.lambda_fn.usage import InvocationRecorder

    settings = _settings()
    try:
        _migrate(settings)
        db = connect(settings.database_url, autocommit=True, application_name="loganalyzer:lambda-runner")
    except psycopg.Error as exc:
        console.print(f"[red]cannot record invocations in PostgreSQL (DATABASE_URL): {exc}[/red]")
        raise typer.Exit(2) from None
    recorder = InvocationRecorder(db, settings.aws.lambda_function_name, settings.aws.lambda_memory_mb)
    sqs = clients.sqs(settings)
    try:
        url = queue_url(sqs, settings.aws.lambda_queue)
    except QueueNotFoundError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    except Exception as exc:
        console.print(f"[red]{clients.unreachable(settings, exc)}[/red]")
        raise typer.Exit(2) from None
    runtime = Runtime(
        s3=clients.s3(settings),
        dynamodb=clients.dynamodb(settings),
        table=settings.aws.dynamodb_table,
        region=settings.aws_region,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    logging.getLogger(__name__).info("lambda runner polling %s", url)
    with db:
        stats = run(
            sqs,
            url,
            runtime.invoke,
            stop=stop,
            wait_seconds=wait_seconds,
            until_idle=until_idle,
            record=recorder,
        )
    console.print(f"events: {stats.succeeded} succeeded, {stats.failed} failed, {stats.skipped} test events")
