"""Properties over arbitrary valid usage documents: pricing never raises, never goes negative,
grows with every quantity, and scaling traffic up never lowers the bill."""

from __future__ import annotations

import copy
from datetime import date
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loganalyzer.costs.engine import CENT, price
from loganalyzer.costs.usage import UsageError, parse_usage
from loganalyzer.costs.whatif import scale_usage


def amount(hi: float) -> st.SearchStrategy[float | int]:
    return st.one_of(
        st.integers(min_value=0, max_value=int(hi)),
        st.floats(min_value=0, max_value=hi, allow_nan=False, allow_infinity=False),
    )


def optional_fields(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


lambda_doc = optional_fields(
    {
        "requests": amount(1e13),
        "duration_ms": amount(900_000),
        "memory_mb": st.integers(128, 10_240),
        "architecture": st.sampled_from(["x86_64", "arm64"]),
        "ephemeral_storage_mb": st.integers(512, 10_240),
    }
)
s3_doc = optional_fields(
    {"storage_gb": amount(1e9), "put_requests": amount(1e15), "get_requests": amount(1e15)}
)
on_demand_doc = optional_fields(
    {
        "mode": st.just("on_demand"),
        "write_request_units": amount(1e15),
        "read_request_units": amount(1e15),
        "storage_gb": amount(1e9),
    }
)
provisioned_doc = st.fixed_dictionaries(
    {"mode": st.just("provisioned")},
    optional={"wcu": amount(1e9), "rcu": amount(1e9), "hours": amount(744), "storage_gb": amount(1e9)},
)
free_plan = st.fixed_dictionaries(
    {
        "credits_usd": amount(10_000),
        "plan_end": st.dates(date(2025, 7, 15), date(2027, 12, 31)).map(date.isoformat),
    }
)


@st.composite
def usage_docs(draw: st.DrawFn) -> dict[str, Any]:
    doc = draw(
        optional_fields(
            {
                "region": st.sampled_from(["us-east-1", "eu-west-1"]),
                "as_of": st.dates(date(2022, 4, 1), date(2030, 12, 31)).map(date.isoformat),
                "free_tier": st.sampled_from(["none", "always_free", "legacy_12_month"]),
                "lambda": lambda_doc,
                "s3": s3_doc,
                "dynamodb": st.one_of(on_demand_doc, provisioned_doc),
                "data_transfer_out_gb": amount(1e9),
            }
        )
    )
    if draw(st.booleans()):
        doc["free_tier"] = "free_plan"
        doc["free_plan"] = draw(free_plan)
    return doc


# Every numeric field a document may hold, with a step that keeps it inside its bounds.
QUANTITIES = [
    ("lambda", "requests"),
    ("lambda", "duration_ms"),
    ("lambda", "memory_mb"),
    ("lambda", "ephemeral_storage_mb"),
    ("s3", "storage_gb"),
    ("s3", "put_requests"),
    ("s3", "get_requests"),
    ("dynamodb", "write_request_units"),
    ("dynamodb", "read_request_units"),
    ("dynamodb", "storage_gb"),
    ("dynamodb", "wcu"),
    ("dynamodb", "rcu"),
    ("dynamodb", "hours"),
    (None, "data_transfer_out_gb"),
]
BOUNDS = {
    "requests": 1e13,
    "duration_ms": 900_000,
    "memory_mb": 10_240,
    "ephemeral_storage_mb": 10_240,
    "storage_gb": 1e9,
    "put_requests": 1e15,
    "get_requests": 1e15,
    "write_request_units": 1e15,
    "read_request_units": 1e15,
    "wcu": 1e9,
    "rcu": 1e9,
    "hours": 744,
    "data_transfer_out_gb": 1e9,
}
DEFAULTS = {"memory_mb": 128, "ephemeral_storage_mb": 512, "hours": 730}

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(usage_docs())
def test_pricing_never_raises_and_is_never_negative(doc: dict[str, Any]) -> None:
    quote = price(parse_usage(doc))
    assert quote.total >= 0
    assert quote.total == sum(li.cost for li in quote.line_items)
    for li in quote.line_items:
        assert li.cost == li.cost.quantize(CENT)
        assert li.service == "credits" or (li.cost >= 0 and 0 <= li.free_quantity <= li.quantity)
    d = quote.to_dict()
    assert Decimal(d["total_usd"]) == quote.total


@SETTINGS
@given(usage_docs(), st.sampled_from(QUANTITIES), st.floats(min_value=0, max_value=1, allow_nan=False))
def test_total_is_monotone_in_each_quantity(
    doc: dict[str, Any], where: tuple[str | None, str], fraction: float
) -> None:
    section, key = where
    holder: dict[str, Any]
    bigger = copy.deepcopy(doc)
    if section is None:
        holder = bigger
    else:
        if section not in bigger:
            return
        holder = bigger[section]
        mode = holder.get("mode", "on_demand") if section == "dynamodb" else None
        if mode == "on_demand" and key in ("wcu", "rcu", "hours"):
            return
        if mode == "provisioned" and key in ("write_request_units", "read_request_units"):
            return
    current = float(holder.get(key, DEFAULTS.get(key, 0)))
    raised = current + (BOUNDS[key] - current) * fraction
    holder[key] = int(raised) if key in ("memory_mb", "ephemeral_storage_mb") else raised
    if holder[key] < current:
        return
    assert price(parse_usage(bigger)).total >= price(parse_usage(doc)).total


@SETTINGS
@given(usage_docs(), st.floats(min_value=1, max_value=1000, allow_nan=False))
def test_scaling_traffic_up_never_lowers_the_bill(doc: dict[str, Any], k: float) -> None:
    usage = parse_usage(doc)
    assert price(scale_usage(usage, k)).total >= price(usage).total


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
SECTION_KEYS = {
    "lambda": ["requests", "duration_ms", "memory_mb", "architecture", "ephemeral_storage_mb"],
    "s3": ["storage_gb", "put_requests", "get_requests"],
    "dynamodb": ["mode", "write_request_units", "read_request_units", "storage_gb", "wcu", "rcu", "hours"],
    "free_plan": ["credits_usd", "plan_end"],
}


@st.composite
def near_miss_docs(draw: st.DrawFn) -> Any:
    """Documents with the right keys and arbitrary values: what a careless client sends."""
    doc: dict[str, Any] = {}
    for key in ["region", "as_of", "free_tier", "data_transfer_out_gb", *SECTION_KEYS]:
        if draw(st.booleans()):
            if key in SECTION_KEYS and draw(st.booleans()):
                doc[key] = {k: draw(json_values) for k in SECTION_KEYS[key] if draw(st.booleans())}
            else:
                doc[key] = draw(json_values)
    return doc


@SETTINGS
@given(st.one_of(json_values, near_miss_docs()))
def test_any_json_is_either_priced_or_refused_with_a_usage_error(doc: Any) -> None:
    try:
        usage = parse_usage(doc)
    except UsageError as exc:
        assert exc.path and str(exc).startswith(exc.path + ": ")
        return
    assert price(usage).total >= 0
