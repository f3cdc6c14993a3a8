"""Pricing rules: tier boundaries, free-tier plans, regions, dated prices, credits, rounding."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from loganalyzer.costs.engine import Quote, money_str, price, quote_json
from loganalyzer.costs.usage import parse_usage


def total(doc: dict[str, Any]) -> str:
    return money_str(price(parse_usage(doc)).total)


def lines(quote: Quote, item: str) -> list[tuple[str | None, str]]:
    return [(li.tier, money_str(li.cost)) for li in quote.line_items if li.item == item]


# --- tier boundaries (no free tier, so that the boundary is exactly where AWS puts it) -------

TIERS: list[tuple[str, dict[str, Any], str, list[tuple[str | None, str]]]] = [
    ("s3-at-50TB", {"s3": {"storage_gb": 51_200}}, "storage_standard", [("first 50 TB", "1177.60")]),
    (
        "s3-just-over-50TB",
        {"s3": {"storage_gb": 51_300}},
        "storage_standard",
        [("first 50 TB", "1177.60"), ("next 450 TB", "2.20")],
    ),
    (
        "s3-at-500TB",
        {"s3": {"storage_gb": 512_000}},
        "storage_standard",
        [("first 50 TB", "1177.60"), ("next 450 TB", "10137.60")],
    ),
    (
        "s3-over-500TB",
        {"s3": {"storage_gb": 513_000}},
        "storage_standard",
        [("first 50 TB", "1177.60"), ("next 450 TB", "10137.60"), ("over 500 TB", "21.00")],
    ),
    (
        # 1e9 requests x 6 s x 1 GB = 6B GB-s: exactly the first x86 tier
        "lambda-x86-at-6B",
        {"lambda": {"requests": 10**9, "duration_ms": 6000, "memory_mb": 1024}},
        "compute_x86_64",
        [("first 6B GB-s", "100000.20")],
    ),
    (
        "lambda-x86-20B",
        {"lambda": {"requests": 10**9, "duration_ms": 20_000, "memory_mb": 1024}},
        "compute_x86_64",
        [("first 6B GB-s", "100000.20"), ("next 9B GB-s", "135000.00"), ("over 15B GB-s", "66667.00")],
    ),
    (
        "lambda-arm-20B",
        {"lambda": {"requests": 10**9, "duration_ms": 20_000, "memory_mb": 1024, "architecture": "arm64"}},
        "compute_arm64",
        [
            ("first 7.5B GB-s", "100000.50"),
            ("next 11.25B GB-s", "135001.13"),
            ("over 18.75B GB-s", "13333.38"),
        ],
    ),
    ("egress-at-10TB", {"data_transfer_out_gb": 10_240}, "internet_out", [("first 10 TB", "921.60")]),
    (
        "egress-at-150TB",
        {"data_transfer_out_gb": 153_600},
        "internet_out",
        [("first 10 TB", "921.60"), ("next 40 TB", "3481.60"), ("next 100 TB", "7168.00")],
    ),
    (
        "egress-over-150TB",
        {"data_transfer_out_gb": 153_700},
        "internet_out",
        [
            ("first 10 TB", "921.60"),
            ("next 40 TB", "3481.60"),
            ("next 100 TB", "7168.00"),
            ("over 150 TB", "5.00"),
        ],
    ),
]


@pytest.mark.parametrize(("doc", "item", "expected"), [pytest.param(d, i, e, id=n) for n, d, i, e in TIERS])
def test_tier_boundaries(doc: dict[str, Any], item: str, expected: list[tuple[str | None, str]]) -> None:
    quote = price(parse_usage({"free_tier": "none", **doc}))
    assert lines(quote, item) == expected


# --- free-tier plans: boundaries and what each plan covers ----------------------------------

FREE: list[tuple[str, str, dict[str, Any], str]] = [
    ("lambda-requests-at-allowance", "always_free", {"lambda": {"requests": 1_000_000}}, "0.00"),
    ("lambda-requests-5M-over", "always_free", {"lambda": {"requests": 6_000_000}}, "1.00"),
    ("lambda-requests-none", "none", {"lambda": {"requests": 1_000_000}}, "0.20"),
    # 400,000 GB-s: 400,000 requests of 1 s at 1 GB
    (
        "lambda-gbs-at-allowance",
        "always_free",
        {"lambda": {"requests": 400_000, "duration_ms": 1000, "memory_mb": 1024}},
        "0.00",
    ),
    (
        "lambda-gbs-none",
        "none",
        {"lambda": {"requests": 400_000, "duration_ms": 1000, "memory_mb": 1024}},
        "6.75",  # 6.66668 compute + 0.08 requests
    ),
    ("egress-at-100GB", "always_free", {"data_transfer_out_gb": 100}, "0.00"),
    ("egress-110GB", "always_free", {"data_transfer_out_gb": 110}, "0.90"),
    ("egress-100GB-none", "none", {"data_transfer_out_gb": 100}, "9.00"),
    ("ddb-storage-at-25GB", "always_free", {"dynamodb": {"storage_gb": 25}}, "0.00"),
    ("ddb-storage-26GB", "always_free", {"dynamodb": {"storage_gb": 26}}, "0.25"),
    ("ddb-provisioned-at-25", "always_free", {"dynamodb": {"wcu": 25, "rcu": 25, "hours": 730}}, "0.00"),
    (
        # (100-25) x 730 x $0.00065 = 35.5875; (200-25) x 730 x $0.00013 = 16.6075
        "ddb-provisioned-100-200",
        "always_free",
        {"dynamodb": {"wcu": 100, "rcu": 200, "hours": 730}},
        "52.20",
    ),
    ("ddb-provisioned-none", "none", {"dynamodb": {"wcu": 25, "rcu": 25}}, "14.23"),  # 11.8625 + 2.3725
    (
        "s3-legacy-at-allowance",
        "legacy_12_month",
        {"s3": {"storage_gb": 5, "get_requests": 20_000, "put_requests": 2_000}},
        "0.00",
    ),
    (
        # 5 GB x 0.023 = 0.115 -> 0.12; 3,000 PUT -> 0.015 -> 0.02; 10,000 GET -> 0.004 -> 0.00
        "s3-legacy-over",
        "legacy_12_month",
        {"s3": {"storage_gb": 10, "get_requests": 30_000, "put_requests": 5_000}},
        "0.14",
    ),
    ("s3-always-free-has-no-s3", "always_free", {"s3": {"storage_gb": 5, "put_requests": 2_000}}, "0.13"),
    (
        "legacy-keeps-always-free",
        "legacy_12_month",
        {"lambda": {"requests": 1_000_000}, "data_transfer_out_gb": 100},
        "0.00",
    ),
]


@pytest.mark.parametrize(("plan", "doc", "expected"), [pytest.param(p, d, e, id=n) for n, p, d, e in FREE])
def test_free_tier_plans(plan: str, doc: dict[str, Any], expected: str) -> None:
    assert total({"free_tier": plan, **doc}) == expected


def test_free_quantity_is_reported_per_line() -> None:
    quote = price(parse_usage({"lambda": {"requests": 3_000_000, "duration_ms": 120, "memory_mb": 1536}}))
    by_item = {li.item: li for li in quote.line_items}
    assert by_item["requests"].free_quantity == 1_000_000
    assert by_item["requests"].billable_quantity == 2_000_000
    assert by_item["compute_x86_64"].free_quantity == 400_000
    assert by_item["compute_x86_64"].quantity == 540_000


# --- free plan credits --------------------------------------------------------------------

FREE_PLAN = {"free_tier": "free_plan", "free_plan": {"credits_usd": 200, "plan_end": "2026-01-15"}}


def test_free_plan_credits_draw_down_the_bill() -> None:
    quote = price(parse_usage({**FREE_PLAN, "as_of": "2025-12-01", "s3": {"storage_gb": 52_900}}))
    d = quote.to_dict()
    assert (d["subtotal_usd"], d["credits_usd"], d["total_usd"]) == ("1215.00", "200.00", "1015.00")
    assert d["line_items"][-1]["service"] == "credits"
    assert d["line_items"][-1]["cost"] == "-200.00"
    assert "free plan credits: 200.00 USD applied, 0.00 USD left" in d["notes"]


def test_free_plan_credits_never_make_the_total_negative() -> None:
    quote = price(
        parse_usage(
            {
                **FREE_PLAN,
                "as_of": "2025-12-01",
                "lambda": {"requests": 3e6, "duration_ms": 120, "memory_mb": 1536},
            }
        )
    )
    d = quote.to_dict()
    assert (d["subtotal_usd"], d["credits_usd"], d["total_usd"]) == ("2.73", "2.73", "0.00")
    assert any("197.27 USD left" in n for n in d["notes"])


def test_free_plan_keeps_the_always_free_offers() -> None:
    doc = {**FREE_PLAN, "free_plan": {"credits_usd": 0, "plan_end": "2026-01-15"}}
    assert total({**doc, "lambda": {"requests": 3e6, "duration_ms": 120, "memory_mb": 1536}}) == "2.73"


def test_free_plan_credits_stop_after_plan_end() -> None:
    quote = price(parse_usage({**FREE_PLAN, "as_of": "2026-02-01", "s3": {"storage_gb": 52_900}}))
    assert money_str(quote.total) == "1215.00"
    assert all(li.service != "credits" for li in quote.line_items)
    assert any("free plan ended 2026-01-15" in n for n in quote.notes)


# --- regions and dated prices --------------------------------------------------------------

DYNAMO: list[tuple[str, str, str, dict[str, Any], str]] = [
    # 10M WRU and 50M RRU on demand
    (
        "use1-before-cut",
        "us-east-1",
        "2024-10-31",
        {"write_request_units": 10e6, "read_request_units": 50e6},
        "25.00",
    ),
    (
        "use1-after-cut",
        "us-east-1",
        "2024-11-01",
        {"write_request_units": 10e6, "read_request_units": 50e6},
        "12.50",
    ),
    # 14.135 -> 14.14, 14.15
    (
        "euw1-before-cut",
        "eu-west-1",
        "2024-10-31",
        {"write_request_units": 10e6, "read_request_units": 50e6},
        "28.29",
    ),
    # half of the above, as the 2024-11-01 cut: 7.0675 -> 7.07, 7.075 -> 7.08 (half-up, not half-even)
    (
        "euw1-after-cut",
        "eu-west-1",
        "2024-11-01",
        {"write_request_units": 10e6, "read_request_units": 50e6},
        "14.15",
    ),
    # (100-25) x 730 x 0.000735 = 40.24125; (200-25) x 730 x 0.000147 = 18.77925; 15 GB x 0.283 = 4.245
    ("euw1-provisioned", "eu-west-1", "2025-03-01", {"wcu": 100, "rcu": 200, "storage_gb": 40}, "63.27"),
    ("use1-provisioned", "us-east-1", "2025-03-01", {"wcu": 100, "rcu": 200, "storage_gb": 40}, "55.95"),
]


@pytest.mark.parametrize(
    ("region", "as_of", "ddb", "expected"), [pytest.param(r, a, d, e, id=n) for n, r, a, d, e in DYNAMO]
)
def test_dynamodb_by_region_and_date(region: str, as_of: str, ddb: dict[str, Any], expected: str) -> None:
    assert total({"region": region, "as_of": as_of, "dynamodb": ddb}) == expected


def test_the_quote_names_the_prices_it_used() -> None:
    before = price(parse_usage({"as_of": "2024-10-31", "dynamodb": {"write_request_units": 1}})).to_dict()
    after = price(parse_usage({"as_of": "2024-11-01", "dynamodb": {"write_request_units": 1}})).to_dict()
    assert before["price_book"]["prices_effective_from"] == "2022-04-01"
    assert after["price_book"]["prices_effective_from"] == "2024-11-01"
    assert after["price_book"]["version"] == "2026-12-06"


def test_lambda_s3_and_egress_cost_the_same_in_both_regions() -> None:
    doc = {
        "lambda": {"requests": 5e6, "duration_ms": 300, "memory_mb": 2048, "ephemeral_storage_mb": 4096},
        "s3": {"storage_gb": 70_000, "put_requests": 1e6, "get_requests": 1e7},
        "data_transfer_out_gb": 20_000,
    }
    assert total({"region": "us-east-1", **doc}) == total({"region": "eu-west-1", **doc})


# --- rounding and output shape -------------------------------------------------------------


def test_each_line_rounds_half_up_and_the_total_is_the_sum_of_rounded_lines() -> None:
    # 1,000 PUT and 12,500 GET cost $0.005 each: each line shows $0.01, so the total is $0.02
    # (the exact $0.010 would show as $0.01 and the lines would not add up to it).
    quote = price(parse_usage({"free_tier": "none", "s3": {"put_requests": 1000, "get_requests": 12_500}}))
    exact = [li.cost_exact for li in quote.line_items if li.cost_exact]
    assert exact == [Decimal("0.005"), Decimal("0.005")]
    assert [money_str(li.cost) for li in quote.line_items] == ["0.00", "0.01", "0.01"]
    assert quote.to_dict()["total_usd"] == "0.02"


def test_output_is_json_ready_strings() -> None:
    quote = price(parse_usage({"lambda": {"requests": 3e6, "duration_ms": 120, "memory_mb": 1536}}))
    d = quote.to_dict()
    assert set(d) == {
        "currency", "region", "region_name", "as_of", "free_tier", "price_book", "line_items",
        "services", "subtotal_usd", "credits_usd", "total_usd", "rounding", "notes",
    }  # fmt: skip
    li = d["line_items"][1]
    assert li == {
        "service": "lambda",
        "item": "compute_x86_64",
        "tier": "first 6B GB-s",
        "quantity": "540000",
        "free_quantity": "400000",
        "billable_quantity": "140000",
        "unit": "GB-s",
        "unit_price": "0.0000166667",
        "rate": "$0.0000166667 per GB-s",
        "cost_unrounded": "2.333338",
        "cost": "2.33",
    }
    assert d["line_items"][0]["rate"] == "$0.20 per 1M requests"
    assert d["services"] == {"lambda": "2.73"}
    assert quote_json(quote) == quote_json(
        price(parse_usage({"lambda": {"requests": 3e6, "duration_ms": 120, "memory_mb": 1536}}))
    )


def test_absent_sections_are_not_priced_and_present_ones_always_show() -> None:
    assert price(parse_usage({})).line_items == ()
    quote = price(parse_usage({"s3": {}}))
    assert [li.item for li in quote.line_items] == [
        "storage_standard",
        "put_copy_post_list_requests",
        "get_select_requests",
    ]
    assert money_str(quote.total) == "0.00"
