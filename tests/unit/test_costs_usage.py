"""The usage document: every bad field is refused with its path; valid documents round-trip."""

from __future__ import annotations

import math
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from loganalyzer.costs.cli import EXAMPLE_USAGE
from loganalyzer.costs.usage import Usage, UsageError, parse_usage

FP = {"free_tier": "free_plan"}

BAD: list[tuple[str, Any, str]] = [
    ("top-not-object", [], "usage: must be an object, got array"),
    ("unknown-top-key", {"lambdas": {}}, "lambdas: unknown field"),
    ("unknown-lambda-key", {"lambda": {"invocations": 1}}, "lambda.invocations: unknown field"),
    ("unknown-s3-key", {"s3": {"storage_tb": 1}}, "s3.storage_tb: unknown field"),
    ("unknown-ddb-key", {"dynamodb": {"table_class": "standard"}}, "dynamodb.table_class: unknown field"),
    (
        "unknown-free-plan-key",
        {**FP, "free_plan": {"credits_usd": 1, "plan_end": "2026-01-01", "x": 1}},
        "free_plan.x: unknown field",
    ),
    ("section-not-object", {"lambda": [1]}, "lambda: must be an object, got array"),
    ("section-null", {"s3": None}, "s3: must be an object, got null"),
    ("negative", {"s3": {"storage_gb": -1}}, "s3.storage_gb: must not be negative"),
    ("negative-egress", {"data_transfer_out_gb": -0.5}, "data_transfer_out_gb: must not be negative"),
    ("nan", {"lambda": {"requests": math.nan}}, "lambda.requests: must be a finite number"),
    ("inf", {"dynamodb": {"storage_gb": math.inf}}, "dynamodb.storage_gb: must be a finite number"),
    (
        "decimal-nan",
        {"lambda": {"duration_ms": Decimal("NaN")}},
        "lambda.duration_ms: must be a finite number",
    ),
    ("string-number", {"lambda": {"requests": "1000"}}, "lambda.requests: must be a number, got string"),
    ("bool-number", {"s3": {"put_requests": True}}, "s3.put_requests: must be a number, got boolean"),
    ("null-number", {"data_transfer_out_gb": None}, "data_transfer_out_gb: must be a number, got null"),
    (
        "absurd-requests",
        {"lambda": {"requests": 1e30}},
        "lambda.requests: must be between 0 and 10_000_000_000_000",
    ),
    ("absurd-int", {"s3": {"get_requests": 10**40}}, "s3.get_requests: must be between"),
    ("absurd-storage", {"s3": {"storage_gb": 1e12}}, "s3.storage_gb: must be between"),
    (
        "duration-over-timeout",
        {"lambda": {"duration_ms": 900_001}},
        "lambda.duration_ms: must be between 0 and 900000",
    ),
    ("memory-low", {"lambda": {"memory_mb": 127}}, "lambda.memory_mb: must be between 128 and 10240"),
    ("memory-high", {"lambda": {"memory_mb": 10_241}}, "lambda.memory_mb: must be between 128 and 10240"),
    ("memory-fraction", {"lambda": {"memory_mb": 1536.5}}, "lambda.memory_mb: must be a whole number of MB"),
    (
        "ephemeral-low",
        {"lambda": {"ephemeral_storage_mb": 511}},
        "lambda.ephemeral_storage_mb: must be between 512",
    ),
    ("architecture", {"lambda": {"architecture": "sparc"}}, "lambda.architecture: unknown value 'sparc'"),
    (
        "architecture-type",
        {"lambda": {"architecture": 64}},
        "lambda.architecture: must be one of x86_64, arm64",
    ),
    (
        "region",
        {"region": "us-west-2"},
        "region: unknown value 'us-west-2' (expected one of: eu-west-1, us-east-1)",
    ),
    ("mode", {"dynamodb": {"mode": "serverless"}}, "dynamodb.mode: unknown value 'serverless'"),
    ("free-tier", {"free_tier": "gold"}, "free_tier: unknown value 'gold'"),
    ("hours", {"dynamodb": {"wcu": 1, "hours": 745}}, "dynamodb.hours: must be between 0 and 744"),
    (
        "wcu-on-demand",
        {"dynamodb": {"mode": "on_demand", "wcu": 5}},
        "dynamodb.wcu: only applies to mode provisioned",
    ),
    (
        "wru-provisioned",
        {"dynamodb": {"mode": "provisioned", "read_request_units": 5}},
        "dynamodb.read_request_units: only applies to mode on_demand",
    ),
    (
        "mixed-modes-inferred",
        {"dynamodb": {"rcu": 5, "write_request_units": 3}},
        "dynamodb.rcu: only applies to mode provisioned",
    ),
    ("as-of-month-13", {"as_of": "2024-13-01"}, "as_of: not a calendar date: '2024-13-01'"),
    ("as-of-feb-30", {"as_of": "2025-02-30"}, "as_of: not a calendar date"),
    ("as-of-format", {"as_of": "01/11/2024"}, "as_of: must be a date as YYYY-MM-DD, got '01/11/2024'"),
    ("as-of-compact", {"as_of": "20241101"}, "as_of: must be a date as YYYY-MM-DD"),
    ("as-of-number", {"as_of": 20241101}, "as_of: must be a date as YYYY-MM-DD, got int"),
    ("as-of-far-future", {"as_of": "2101-01-01"}, "as_of: must be between 2006-01-01 and 2100-12-31"),
    ("as-of-before-book", {"as_of": "2021-06-30"}, "as_of: the price book covers usage from 2022-04-01 on"),
    ("free-plan-missing", FP, "free_plan: required when free_tier is free_plan"),
    (
        "free-plan-unasked",
        {"free_plan": {"credits_usd": 1, "plan_end": "2026-01-01"}},
        "free_plan: only applies when free_tier is free_plan (it is always_free)",
    ),
    ("free-plan-no-end", {**FP, "free_plan": {"credits_usd": 100}}, "free_plan.plan_end: required"),
    (
        "free-plan-negative",
        {**FP, "free_plan": {"credits_usd": -5, "plan_end": "2026-01-01"}},
        "free_plan.credits_usd: must not be negative",
    ),
    (
        "free-plan-bad-date",
        {**FP, "free_plan": {"credits_usd": 5, "plan_end": "soon"}},
        "free_plan.plan_end: must be a date as YYYY-MM-DD",
    ),
]


@pytest.mark.parametrize(("doc", "message"), [pytest.param(d, m, id=n) for n, d, m in BAD])
def test_bad_documents_name_the_field(doc: Any, message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_usage(doc)
    assert str(info.value).startswith(message)
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith(info.value.path + ": ")


def test_every_part_is_optional() -> None:
    usage = parse_usage({})
    assert usage == Usage()
    assert (usage.region, usage.free_tier, usage.as_of) == ("us-east-1", "always_free", None)


def test_defaults_inside_sections() -> None:
    usage = parse_usage({"lambda": {}, "dynamodb": {"wcu": 10}})
    assert usage.lambda_ is not None and usage.dynamodb is not None
    assert (usage.lambda_.memory_mb, usage.lambda_.architecture, usage.lambda_.ephemeral_storage_mb) == (
        128,
        "x86_64",
        512,
    )
    assert (usage.dynamodb.mode, usage.dynamodb.hours) == ("provisioned", Decimal(730))


def test_numbers_are_exact_decimals() -> None:
    usage = parse_usage({"s3": {"storage_gb": 0.1}, "lambda": {"memory_mb": 1536.0}})
    assert usage.s3 is not None and usage.s3.storage_gb == Decimal("0.1")
    assert usage.lambda_ is not None and usage.lambda_.memory_mb == 1536


@pytest.mark.parametrize(
    "doc",
    [
        EXAMPLE_USAGE,
        {
            "region": "eu-west-1",
            "as_of": "2024-10-31",
            "dynamodb": {"mode": "provisioned", "wcu": 3, "hours": 24},
        },
        {"free_tier": "free_plan", "free_plan": {"credits_usd": 100, "plan_end": "2026-03-01"}, "s3": {}},
        {"free_tier": "none", "data_transfer_out_gb": 12.5},
    ],
)
def test_to_dict_round_trips(doc: dict[str, Any]) -> None:
    usage = parse_usage(doc)
    assert parse_usage(usage.to_dict()) == usage


def test_as_of_is_a_date() -> None:
    assert parse_usage({"as_of": "2024-11-01"}).as_of == date(2024, 11, 1)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"": 1}, 'usage[""]: unknown field'),
        ({"lambda": {"a b": 1}}, 'lambda["a b"]: unknown field'),
        ({"s3": {"x" * 100: 1}}, 's3["' + "x" * 64 + '"...]: unknown field'),
    ],
)
def test_odd_unknown_keys_are_quoted_in_the_path(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_usage(doc)
    assert str(info.value).startswith(message)
