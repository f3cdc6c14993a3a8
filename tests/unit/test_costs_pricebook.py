"""The price book data file: complete for both regions, dated, sourced, and checked on load."""

from __future__ import annotations

import copy
import json
from datetime import date
from decimal import Decimal
from importlib import resources
from typing import Any

import pytest

from loganalyzer.costs.pricebook import PriceBookError, default_price_book, parse_price_book

KEYS = {
    "lambda.requests",
    "lambda.compute.x86_64",
    "lambda.compute.arm64",
    "lambda.ephemeral_storage",
    "s3.storage",
    "s3.put_requests",
    "s3.get_requests",
    "dynamodb.write_request_units",
    "dynamodb.read_request_units",
    "dynamodb.wcu_hours",
    "dynamodb.rcu_hours",
    "dynamodb.storage",
    "data_transfer.internet_out",
}


def raw_book() -> dict[str, Any]:
    text = resources.files("loganalyzer.costs").joinpath("pricebook.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def test_both_regions_price_every_key() -> None:
    book = default_price_book()
    assert book.regions == ("eu-west-1", "us-east-1")
    for region in book.regions:
        assert set(book.prices[region]) == KEYS


def test_every_source_has_a_url_and_a_retrieval_date() -> None:
    book = default_price_book()
    assert len(book.sources) >= 6
    for source in book.sources:
        assert source.url.startswith("https://aws.amazon.com/")
        date.fromisoformat(source.retrieved)


@pytest.mark.parametrize(
    ("as_of", "wru"),
    [(None, "0.625"), (date(2024, 10, 31), "1.25"), (date(2024, 11, 1), "0.625"), (date(2022, 4, 1), "1.25")],
)
def test_the_edition_in_force_is_chosen_by_date(as_of: date | None, wru: str) -> None:
    edition = default_price_book().edition("us-east-1", "dynamodb.write_request_units", as_of)
    assert edition.tiers[0].price == Decimal(wru)
    assert edition.per == 1_000_000


def test_anchored_prices() -> None:
    book = default_price_book()
    x86 = book.edition("us-east-1", "lambda.compute.x86_64", None)
    arm = book.edition("us-east-1", "lambda.compute.arm64", None)
    assert [(t.upto, t.price) for t in x86.tiers] == [
        (Decimal("6e9"), Decimal("0.0000166667")),
        (Decimal("15e9"), Decimal("0.000015")),
        (None, Decimal("0.0000133334")),
    ]
    assert [t.upto for t in arm.tiers] == [Decimal("7.5e9"), Decimal("18.75e9"), None]
    assert book.free_allowance("always_free", "lambda.compute") == 400_000
    assert book.free_allowance("legacy_12_month", "s3.get_requests") == 20_000
    assert book.free_allowance("none", "data_transfer.internet_out") == 0


def _broken(path: list[Any], value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(raw_book())
    node: Any = raw
    for p in path[:-1]:
        node = node[p]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return raw


S3 = ["regions", "us-east-1", "prices", "s3.storage", 0]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ([*S3, "tiers", 1, "upto"], "1000", "bounds must increase"),
        ([*S3, "tiers", 2, "upto"], "900000", "the last tier must be unbounded"),
        ([*S3, "tiers", 0, "upto"], None, "only the last tier may be unbounded"),
        ([*S3, "tiers", 0, "price"], 0.023, "prices and bounds are strings of decimals"),
        ([*S3, "tiers", 0, "price"], "-1", "must be a finite non-negative decimal"),
        ([*S3, "per"], "0", "per: must be positive"),
        ([*S3, "from"], "2023-01-01", "editions must be in date order and start by covers_from"),
        (["regions", "eu-west-1", "prices", "s3.storage"], KeyError, "must price the same keys"),
        (["free_tiers", "free_plan"], KeyError, "malformed price book"),
    ],
)
def test_a_malformed_book_is_refused(path: list[Any], value: Any, message: str) -> None:
    with pytest.raises(PriceBookError, match=message):
        parse_price_book(_broken(path, value))
