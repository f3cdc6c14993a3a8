"""`loganalyzer aws`: the platform's AWS resources."""

from __future__ import annotations

import typer
from rich.console import Console

aws_app = typer.Typer(help="AWS resources of the platform (S3, SQS, DynamoDB).", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)


@aws_app.command("bootstrap")
def bootstrap() -> None:
    """Create (or confirm) the bucket, event queue + dead-letter queue, notification and table."""
    from loganalyzer.aws import clients
    from loganalyzer.aws.provision import ensure_resources
    from loganalyzer.cli import _settings

    settings = _settings()
    try:
        done = ensure_resources(
            clients.s3(settings),
            clients.sqs(settings),
            clients.dynamodb(settings),
            settings.aws,
            settings.aws_region,
        )
    except Exception as exc:
        console.print(f"[red]bootstrap failed:[/red] {clients.unreachable(settings, exc)}")
        raise typer.Exit(1) from None
    console.print(
        f"bucket s3://{done.bucket} (S3_BUCKET) notifies {done.queue_url} (LAMBDA_QUEUE) of new "
        f"{settings.aws.export_prefix}/…parquet objects; dead letters after "
        f"{settings.aws.lambda_max_receives} receives go to {done.dlq_url} (LAMBDA_DLQ); "
        f"DynamoDB table {done.table} (DYNAMODB_TABLE)"
    )
