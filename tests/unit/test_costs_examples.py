"""The engine against AWS's own published worked examples (us-east-1 unless stated).

Each row: the example's usage as a usage document, then the per-item costs and the total the
AWS page prints. Costs are compared as cent strings: the engine must match to the cent.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import pytest

from loganalyzer.costs.engine import Quote, money_str, price
from loganalyzer.costs.pricebook import default_price_book
from loganalyzer.costs.usage import parse_usage

LAMBDA_PAGE = "https://aws.amazon.com/lambda/pricing/"
S3_BILLING_GUIDE = "https://docs.aws.amazon.com/AmazonS3/latest/userguide/aws-usage-report-understand.html"


def item_costs(quote: Quote) -> dict[str, str]:
    """Cost per service.item (tiers of one item summed), as AWS's examples show them."""
    out: dict[str, Decimal] = {}
    for li in quote.line_items:
        key = f"{li.service}.{li.item}"
        out[key] = out.get(key, Decimal(0)) + li.cost
    return {k: money_str(v) for k, v in out.items()}


EXAMPLES: list[tuple[str, str, dict[str, Any], dict[str, str], str]] = [
    (
        "lambda-mobile-backend",
        LAMBDA_PAGE + " (Example 1: 3M requests, 120 ms, 1536 MB, x86, free tier)",
        {"lambda": {"requests": 3_000_000, "duration_ms": 120, "memory_mb": 1536, "architecture": "x86_64"}},
        {"lambda.compute_x86_64": "2.33", "lambda.requests": "0.40"},
        "2.73",
    ),
    (
        "lambda-streaming-telemetry",
        LAMBDA_PAGE + " (Example 2: 10,000 vehicles hourly for 31 days, 2 s at 1 GB; no free tier applied)",
        {
            "free_tier": "none",
            "lambda": {"requests": 10_000 * 24 * 31, "duration_ms": 2000, "memory_mb": 1024},
        },
        {"lambda.requests": "1.49", "lambda.compute_x86_64": "248.00"},
        "249.49",
    ),
    (
        "lambda-bert-ephemeral-storage",
        LAMBDA_PAGE + " (Example 3: 6M requests, 280 ms, 4096 MB, 2048 MB ephemeral storage)",
        {
            "lambda": {
                "requests": 6_000_000,
                "duration_ms": 280,
                "memory_mb": 4096,
                "ephemeral_storage_mb": 2048,
            }
        },
        {"lambda.compute_x86_64": "105.33", "lambda.requests": "1.00", "lambda.ephemeral_storage": "0.08"},
        "106.41",
    ),
    (
        "lambda-durable-functions-arm",
        LAMBDA_PAGE + " (durable functions example, Lambda part: 1M executions of 2 invocations, "
        "32 s of compute each, 1 GB, Arm)",
        {
            "lambda": {
                "requests": 2_000_000,
                "duration_ms": 16_000,
                "memory_mb": 1024,
                "architecture": "arm64",
            }
        },
        {"lambda.compute_arm64": "421.34", "lambda.requests": "0.20"},
        "421.54",
    ),
    (
        "lambda-classic-example-2",
        LAMBDA_PAGE + " (earlier page, Example 2: 30M requests, 200 ms, 128 MB)",
        {"lambda": {"requests": 30_000_000, "duration_ms": 200, "memory_mb": 128}},
        {"lambda.compute_x86_64": "5.83", "lambda.requests": "5.80"},
        "11.63",
    ),
    (
        "s3-storage-two-tiers",
        S3_BILLING_GUIDE
        + " (100 GB for 15 days + 100 TB for 16 days of March = 52,900 GB-months; no free tier)",
        {"free_tier": "none", "s3": {"storage_gb": 52_900}},
        {
            "s3.storage_standard": "1215.00",
            "s3.put_copy_post_list_requests": "0.00",
            "s3.get_select_requests": "0.00",
        },
        "1215.00",
    ),
    (
        "s3-requests",
        S3_BILLING_GUIDE + " (10,000 PUTs and 20,000 GETs a day for 31 days)",
        {"free_tier": "none", "s3": {"put_requests": 310_000, "get_requests": 620_000}},
        {"s3.put_copy_post_list_requests": "1.55", "s3.get_select_requests": "0.25"},
        "1.80",
    ),
]


@pytest.mark.parametrize(
    ("doc", "expected_items", "expected_total"),
    [pytest.param(doc, items, total, id=name) for name, _source, doc, items, total in EXAMPLES],
)
def test_published_example(doc: dict[str, Any], expected_items: dict[str, str], expected_total: str) -> None:
    quote = price(parse_usage(doc))
    costs = item_costs(quote)
    for key, cost in expected_items.items():
        assert costs[key] == cost, key
    assert money_str(quote.total) == expected_total
    assert quote.to_dict()["total_usd"] == expected_total


def test_s3_storage_example_tier_lines() -> None:
    """The example's own breakdown: 51,200 GB x $0.023 = $1,177.60 and 1,700 GB x $0.022 = $37.40."""
    quote = price(parse_usage({"free_tier": "none", "s3": {"storage_gb": 52_900}}))
    storage = [li for li in quote.line_items if li.item == "storage_standard"]
    assert [(li.tier, li.quantity, money_str(li.cost_exact)) for li in storage] == [
        ("first 50 TB", Decimal(51_200), "1177.60"),
        ("next 450 TB", Decimal(1_700), "37.40"),
    ]


def test_data_transfer_example_with_the_allowance_of_its_time() -> None:
    """S3 billing guide: 62 TB out in a month = 63,488 GB over three tiers, $5,263.27.

    The example predates December 2021 and deducts the 1 GB free allowance of its time; the
    same book with that allowance reproduces it to the cent, line by line.
    """
    book = default_price_book()
    old = dataclasses.replace(
        book,
        free_tiers={**book.free_tiers, "always_free": {"data_transfer.internet_out": Decimal(1)}},
    )
    quote = price(parse_usage({"data_transfer_out_gb": 63_488}), old)
    lines = [(li.tier, li.billable_quantity, money_str(li.cost_exact)) for li in quote.line_items]
    assert lines == [
        ("first 10 TB", Decimal(10_239), "921.51"),
        ("next 40 TB", Decimal(40_960), "3481.60"),
        ("next 100 TB", Decimal(12_288), "860.16"),
    ]
    assert money_str(quote.total) == "5263.27"


@pytest.mark.parametrize(
    ("free_tier", "total"),
    [("none", "5263.36"), ("always_free", "5254.36")],  # 10,240 or 10,140 GB at $0.09, then as above
)
def test_data_transfer_example_today(free_tier: str, total: str) -> None:
    quote = price(parse_usage({"free_tier": free_tier, "data_transfer_out_gb": 63_488}))
    assert money_str(quote.total) == total


def test_classic_example_1_differs_by_the_unit_price_rounding_of_its_time() -> None:
    """The earlier page's Example 1 (3M x 1 s at 512 MB) printed $18.34 compute with the then
    rounded $0.00001667/GB-s; today's $0.0000166667 gives 1,100,000 GB-s x price = $18.33337."""
    quote = price(parse_usage({"lambda": {"requests": 3_000_000, "duration_ms": 1000, "memory_mb": 512}}))
    assert item_costs(quote) == {"lambda.requests": "0.40", "lambda.compute_x86_64": "18.33"}
