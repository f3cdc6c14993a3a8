"""`loganalyzer costs`: price a usage document exactly as the API's POST /api/v1/costs/price does."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from loganalyzer.costs.engine import price, quote_json
from loganalyzer.costs.usage import UsageError, parse_usage

costs_app = typer.Typer(help="AWS cost engine: price a usage document to the cent.", no_args_is_help=True)

EXAMPLE_USAGE: dict[str, Any] = {
    "region": "us-east-1",
    "as_of": "2026-12-01",
    "free_tier": "always_free",
    "lambda": {
        "requests": 3_000_000,
        "duration_ms": 120,
        "memory_mb": 1536,
        "architecture": "x86_64",
        "ephemeral_storage_mb": 512,
    },
    "s3": {"storage_gb": 250, "put_requests": 1_200_000, "get_requests": 4_000_000},
    "dynamodb": {
        "mode": "on_demand",
        "write_request_units": 20_000_000,
        "read_request_units": 60_000_000,
        "storage_gb": 40,
    },
    "data_transfer_out_gb": 180,
}


def _fail(message: str) -> typer.Exit:
    sys.stderr.write(f"error: {message}\n")
    return typer.Exit(2)


def _read(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise _fail(f"cannot read {source}: {exc.strerror or exc}") from None


@costs_app.command("price")
def price_command(
    usage: Annotated[str, typer.Option("--usage", help="Usage document (JSON) file, or - for stdin.")],
) -> None:
    """Print the quote (line items, free tier applied, total_usd) as JSON; exit 2 on a bad document."""
    raw = _read(usage)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _fail(f"usage: not valid JSON: {exc}") from None
    try:
        quote = price(parse_usage(doc))
    except UsageError as exc:
        raise _fail(str(exc)) from None
    sys.stdout.buffer.write(quote_json(quote) + b"\n")


@costs_app.command("example")
def example_command() -> None:
    """Print a sample usage document (every section), ready for `costs price --usage -`."""
    sys.stdout.buffer.write(orjson.dumps(EXAMPLE_USAGE, option=orjson.OPT_INDENT_2) + b"\n")
