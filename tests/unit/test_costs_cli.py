"""`loganalyzer costs price|example`: the API's JSON on stdout, exit 2 with the path on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from loganalyzer.costs.cli import EXAMPLE_USAGE, costs_app
from loganalyzer.costs.engine import price, quote_json
from loganalyzer.costs.usage import parse_usage

runner = CliRunner()

MOBILE = {"lambda": {"requests": 3_000_000, "duration_ms": 120, "memory_mb": 1536}}


def test_price_prints_the_quote_json_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "usage.json"
    path.write_text(json.dumps(MOBILE))
    result = runner.invoke(costs_app, ["price", "--usage", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.encode() == quote_json(price(parse_usage(MOBILE))) + b"\n"
    assert json.loads(result.stdout)["total_usd"] == "2.73"


def test_price_reads_stdin() -> None:
    result = runner.invoke(costs_app, ["price", "--usage", "-"], input=json.dumps(MOBILE))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["services"] == {"lambda": "2.73"}


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ('{"lambda": {"memory_mb": 64}}', "error: lambda.memory_mb: must be between 128 and 10240"),
        ('{"s3": {"storage_gb": "lots"}}', "error: s3.storage_gb: must be a number, got string"),
        ('{"lambda": {"requests": NaN}}', "error: usage: not valid JSON"),
        ("[1, 2]", "error: usage: must be an object, got array"),
        ("", "error: usage: not valid JSON"),
    ],
)
def test_bad_input_exits_2_with_the_message(stdin: str, message: str) -> None:
    result = runner.invoke(costs_app, ["price", "--usage", "-"], input=stdin)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(message)


def test_missing_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(costs_app, ["price", "--usage", str(tmp_path / "nope.json")])
    assert result.exit_code == 2
    assert "cannot read" in result.stderr


def test_example_is_a_valid_document_covering_every_section() -> None:
    result = runner.invoke(costs_app, ["example"])
    assert result.exit_code == 0
    doc = orjson.loads(result.stdout)
    assert doc == EXAMPLE_USAGE
    quote = price(parse_usage(doc))
    assert {li.service for li in quote.line_items} == {"lambda", "s3", "dynamodb", "data_transfer"}


def test_costs_is_a_loganalyzer_subcommand() -> None:
    from loganalyzer.cli import _register_subapps, app

    _register_subapps()
    result = runner.invoke(app, ["costs", "price", "--usage", "-"], input=json.dumps(MOBILE))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total_usd"] == "2.73"
