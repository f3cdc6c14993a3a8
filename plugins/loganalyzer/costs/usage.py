"""The usage document: what a month of AWS usage looks like, validated into exact Decimals.

Every field is checked here, once, with an error that names the field's path, so that pricing
can trust its input and never raise on it. Numbers must be JSON numbers (not strings, not
booleans), finite, and inside a plausible range: a typo like 1e30 requests is an error, not a bill.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from loganalyzer.costs.pricebook import FREE_TIER_PLANS, PriceBook, default_price_book

ARCHITECTURES = ("x86_64", "arm64")
DYNAMODB_MODES = ("on_demand", "provisioned")
HOURS_PER_MONTH = Decimal(730)  # AWS's calculator month: 8,760 hours / 12
MAX_HOURS = Decimal(744)  # 31 days


class UsageError(ValueError):
    """A usage document field is wrong; the message starts with the field's path."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True, slots=True)
class LambdaUsage:
    requests: Decimal = Decimal(0)
    duration_ms: Decimal = Decimal(0)  # average billed duration per request
    memory_mb: int = 128
    architecture: str = "x86_64"
    ephemeral_storage_mb: int = 512


@dataclass(frozen=True, slots=True)
class S3Usage:
    storage_gb: Decimal = Decimal(0)  # average GB stored over the month (GB-months)
    put_requests: Decimal = Decimal(0)  # PUT, COPY, POST, LIST
    get_requests: Decimal = Decimal(0)  # GET, SELECT and all other requests


@dataclass(frozen=True, slots=True)
class DynamoDBUsage:
    mode: str = "on_demand"
    write_request_units: Decimal = Decimal(0)
    read_request_units: Decimal = Decimal(0)
    storage_gb: Decimal = Decimal(0)
    wcu: Decimal = Decimal(0)
    rcu: Decimal = Decimal(0)
    hours: Decimal = HOURS_PER_MONTH


@dataclass(frozen=True, slots=True)
class FreePlan:
    credits_usd: Decimal
    plan_end: date


@dataclass(frozen=True, slots=True)
class Usage:
    region: str = "us-east-1"
    as_of: date | None = None
    free_tier: str = "always_free"
    free_plan: FreePlan | None = None
    lambda_: LambdaUsage | None = None
    s3: S3Usage | None = None
    dynamodb: DynamoDBUsage | None = None
    data_transfer_out_gb: Decimal | None = None

    def to_dict(self) -> dict[str, Any]:
        """The document parse_usage would turn back into this Usage (numbers as int or float)."""
        doc: dict[str, Any] = {"region": self.region, "free_tier": self.free_tier}
        if self.as_of is not None:
            doc["as_of"] = self.as_of.isoformat()
        if self.free_plan is not None:
            doc["free_plan"] = {
                "credits_usd": _num(self.free_plan.credits_usd),
                "plan_end": self.free_plan.plan_end.isoformat(),
            }
        if self.lambda_ is not None:
            lam = self.lambda_
            doc["lambda"] = {
                "requests": _num(lam.requests),
                "duration_ms": _num(lam.duration_ms),
                "memory_mb": lam.memory_mb,
                "architecture": lam.architecture,
                "ephemeral_storage_mb": lam.ephemeral_storage_mb,
            }
        if self.s3 is not None:
            doc["s3"] = {
                "storage_gb": _num(self.s3.storage_gb),
                "put_requests": _num(self.s3.put_requests),
                "get_requests": _num(self.s3.get_requests),
            }
        if self.dynamodb is not None:
            d = self.dynamodb
            ddb: dict[str, Any] = {"mode": d.mode, "storage_gb": _num(d.storage_gb)}
            if d.mode == "on_demand":
                ddb["write_request_units"] = _num(d.write_request_units)
                ddb["read_request_units"] = _num(d.read_request_units)
            else:
                ddb.update(wcu=_num(d.wcu), rcu=_num(d.rcu), hours=_num(d.hours))
            doc["dynamodb"] = ddb
        if self.data_transfer_out_gb is not None:
            doc["data_transfer_out_gb"] = _num(self.data_transfer_out_gb)
        return doc


def _num(d: Decimal) -> int | float:
    return int(d) if d == d.to_integral_value() else float(d)


# Plausible ranges: anything outside is a unit mix-up or a typo, not a workload.
_COUNT_MAX = Decimal(10) ** 15  # a million billion requests in a month
_GB_MAX = Decimal(10) ** 9  # an exabyte
_BOUNDS: dict[str, tuple[Decimal, Decimal]] = {
    "lambda.requests": (Decimal(0), Decimal(10) ** 13),
    "lambda.duration_ms": (Decimal(0), Decimal(900_000)),  # Lambda's 15-minute timeout
    "lambda.memory_mb": (Decimal(128), Decimal(10_240)),
    "lambda.ephemeral_storage_mb": (Decimal(512), Decimal(10_240)),
    "s3.storage_gb": (Decimal(0), _GB_MAX),
    "s3.put_requests": (Decimal(0), _COUNT_MAX),
    "s3.get_requests": (Decimal(0), _COUNT_MAX),
    "dynamodb.write_request_units": (Decimal(0), _COUNT_MAX),
    "dynamodb.read_request_units": (Decimal(0), _COUNT_MAX),
    "dynamodb.storage_gb": (Decimal(0), _GB_MAX),
    "dynamodb.wcu": (Decimal(0), Decimal(10) ** 9),
    "dynamodb.rcu": (Decimal(0), Decimal(10) ** 9),
    "dynamodb.hours": (Decimal(0), MAX_HOURS),
    "data_transfer_out_gb": (Decimal(0), _GB_MAX),
    "free_plan.credits_usd": (Decimal(0), Decimal(10_000)),
}
_TOP_KEYS = ("region", "as_of", "free_tier", "free_plan", "lambda", "s3", "dynamodb", "data_transfer_out_gb")
_LAMBDA_KEYS = ("requests", "duration_ms", "memory_mb", "architecture", "ephemeral_storage_mb")
_S3_KEYS = ("storage_gb", "put_requests", "get_requests")
_DDB_KEYS = ("mode", "write_request_units", "read_request_units", "storage_gb", "wcu", "rcu", "hours")
_FREE_PLAN_KEYS = ("credits_usd", "plan_end")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _fmt_bound(d: Decimal) -> str:
    return f"{int(d):,}".replace(",", "_") if d >= 10**6 else str(int(d))


def _object(value: Any, path: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise UsageError(path, f"must be an object, got {_kind(value)}")
    for key in value:
        if not isinstance(key, str):
            raise UsageError(path, f"keys must be strings, got {key!r}")
        if key not in allowed:
            if not _PLAIN_KEY.fullmatch(key):
                shown = json.dumps(key[:64]) + ("..." if len(key) > 64 else "")  # never echo a megabyte
                where = f"{path}[{shown}]"
            else:
                where = f"{path}.{key}" if path != "usage" else key
            raise UsageError(where, f"unknown field (expected one of: {', '.join(allowed)})")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def _number(value: Any, path: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise UsageError(path, f"must be a number, got {_kind(value)}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UsageError(path, "must be a finite number")
        d = Decimal(repr(value))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise UsageError(path, "must be a finite number")
        d = value
    else:
        d = Decimal(value)
    lo, hi = _BOUNDS[path]
    if d < lo or d > hi:
        if lo == 0 and d < 0:
            raise UsageError(path, "must not be negative")
        raise UsageError(path, f"must be between {_fmt_bound(lo)} and {_fmt_bound(hi)}")
    return d


def _integer(value: Any, path: str) -> int:
    d = _number(value, path)
    if d != d.to_integral_value():
        raise UsageError(path, "must be a whole number of MB")
    return int(d)


def _choice(value: Any, path: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise UsageError(path, f"must be one of {', '.join(choices)}; got {_kind(value)}")
    if value not in choices:
        raise UsageError(path, f"unknown value {value!r} (expected one of: {', '.join(choices)})")
    return value


def _date(value: Any, path: str) -> date:
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        shown = repr(value) if isinstance(value, str) else _kind(value)
        raise UsageError(path, f"must be a date as YYYY-MM-DD, got {shown}")
    try:
        d = date.fromisoformat(value)
    except ValueError:
        raise UsageError(path, f"not a calendar date: {value!r}") from None
    if not 2006 <= d.year <= 2100:
        raise UsageError(path, "must be between 2006-01-01 and 2100-12-31")
    return d


def _lambda(raw: Any) -> LambdaUsage:
    doc = _object(raw, "lambda", _LAMBDA_KEYS)
    defaults = LambdaUsage()
    return LambdaUsage(
        requests=_number(doc["requests"], "lambda.requests") if "requests" in doc else defaults.requests,
        duration_ms=(
            _number(doc["duration_ms"], "lambda.duration_ms")
            if "duration_ms" in doc
            else defaults.duration_ms
        ),
        memory_mb=_integer(doc["memory_mb"], "lambda.memory_mb")
        if "memory_mb" in doc
        else defaults.memory_mb,
        architecture=(
            _choice(doc["architecture"], "lambda.architecture", ARCHITECTURES)
            if "architecture" in doc
            else defaults.architecture
        ),
        ephemeral_storage_mb=(
            _integer(doc["ephemeral_storage_mb"], "lambda.ephemeral_storage_mb")
            if "ephemeral_storage_mb" in doc
            else defaults.ephemeral_storage_mb
        ),
    )


def _s3(raw: Any) -> S3Usage:
    doc = _object(raw, "s3", _S3_KEYS)
    values = {k: _number(doc[k], f"s3.{k}") for k in _S3_KEYS if k in doc}
    return S3Usage(**values)


def _dynamodb(raw: Any) -> DynamoDBUsage:
    doc = _object(raw, "dynamodb", _DDB_KEYS)
    provisioned_keys = [k for k in ("wcu", "rcu", "hours") if k in doc]
    on_demand_keys = [k for k in ("write_request_units", "read_request_units") if k in doc]
    if "mode" in doc:
        mode = _choice(doc["mode"], "dynamodb.mode", DYNAMODB_MODES)
    else:
        # Inferred from the fields present, so a document need not repeat the obvious.
        mode = "provisioned" if provisioned_keys and not on_demand_keys else "on_demand"
    wrong = provisioned_keys if mode == "on_demand" else on_demand_keys
    if wrong:
        other = "provisioned" if mode == "on_demand" else "on_demand"
        raise UsageError(f"dynamodb.{wrong[0]}", f"only applies to mode {other}, and mode is {mode}")
    values = {k: _number(doc[k], f"dynamodb.{k}") for k in _DDB_KEYS if k != "mode" and k in doc}
    return DynamoDBUsage(mode=mode, **values)


def _free_plan(raw: Any) -> FreePlan:
    doc = _object(raw, "free_plan", _FREE_PLAN_KEYS)
    for key in _FREE_PLAN_KEYS:
        if key not in doc:
            raise UsageError(f"free_plan.{key}", "required")
    return FreePlan(
        credits_usd=_number(doc["credits_usd"], "free_plan.credits_usd"),
        plan_end=_date(doc["plan_end"], "free_plan.plan_end"),
    )


def parse_usage(doc: Mapping[str, Any], book: PriceBook | None = None) -> Usage:
    """Validate a usage document (see docs/costs.md) against `book`'s regions and dates.

    Raises UsageError naming the first bad field's path. Absent parts are simply not priced.
    """
    book = book or default_price_book()
    top = _object(doc, "usage", _TOP_KEYS)
    region = "us-east-1"
    if "region" in top:
        region = _choice(top["region"], "region", book.regions)
    as_of = _date(top["as_of"], "as_of") if "as_of" in top else None
    if as_of is not None and as_of < book.covers_from:
        raise UsageError("as_of", f"the price book covers usage from {book.covers_from.isoformat()} on")
    free_tier = "always_free"
    if "free_tier" in top:
        free_tier = _choice(top["free_tier"], "free_tier", FREE_TIER_PLANS)
    free_plan = None
    if "free_plan" in top:
        if free_tier != "free_plan":
            raise UsageError("free_plan", f"only applies when free_tier is free_plan (it is {free_tier})")
        free_plan = _free_plan(top["free_plan"])
    elif free_tier == "free_plan":
        raise UsageError("free_plan", "required when free_tier is free_plan: {credits_usd, plan_end}")
    return Usage(
        region=region,
        as_of=as_of,
        free_tier=free_tier,
        free_plan=free_plan,
        lambda_=_lambda(top["lambda"]) if "lambda" in top else None,
        s3=_s3(top["s3"]) if "s3" in top else None,
        dynamodb=_dynamodb(top["dynamodb"]) if "dynamodb" in top else None,
        data_transfer_out_gb=(
            _number(top["data_transfer_out_gb"], "data_transfer_out_gb")
            if "data_transfer_out_gb" in top
            else None
        ),
    )
