"""The Grafana interpolation that runs dashboard SQL offline: each rule as Grafana documents it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.grafana_sql import (
    InterpolationError,
    Variable,
    expand_macros,
    interpolate_variables,
    interval_seconds,
    render,
)

START = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
END = datetime(2026, 12, 6, 16, 30, 15, tzinfo=UTC)
VARS = {
    "tenant": Variable(("acme", "o'brien"), multi=True),
    "service": Variable(("api",), multi=True),
    "price": Variable(("0.023",)),
    "name": Variable(("it's",)),
}


def _vars(sql: str) -> str:
    return interpolate_variables(sql, VARS, start=START, end=END, interval="5m")


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("tenant IN ($tenant)", "tenant IN ('acme','o''brien')"),
        ("tenant IN (${tenant})", "tenant IN ('acme','o''brien')"),
        ("tenant IN ([[tenant]])", "tenant IN ('acme','o''brien')"),
        ("service IN (${service:sqlstring})", "service IN ('api')"),
        ("x = '${tenant:csv}'", "x = 'acme,o'brien'"),
        ("x * $price", "x * 0.023"),
        ("x = '$name'", "x = 'it''s'"),
        ("x = ${price:sqlstring}", "x = '0.023'"),
        ("'$__interval' / $__interval_ms", "'5m' / 300000"),
        ("$__from to $__to", f"{int(START.timestamp() * 1000)} to {int(END.timestamp() * 1000)}"),
        ("$__timeFilter(ts) AND a = $price", "$__timeFilter(ts) AND a = 0.023"),
        ("no variables at all", "no variables at all"),
    ],
)
def test_variables_are_formatted_as_grafanas_sql_data_sources_do(sql: str, expected: str) -> None:
    assert _vars(sql) == expected


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("$__timeFilter(ts)", "ts BETWEEN '2026-12-06T10:00:00Z' AND '2026-12-06T16:30:15Z'"),
        (
            '$__timeFilter("timestamp")',
            "\"timestamp\" BETWEEN '2026-12-06T10:00:00Z' AND '2026-12-06T16:30:15Z'",
        ),
        ("$__timeFrom() < $__timeTo()", "'2026-12-06T10:00:00Z' < '2026-12-06T16:30:15Z'"),
        ("$__time(ts)", 'ts AS "time"'),
        ("$__timeEpoch(ts)", 'extract(epoch from ts) AS "time"'),
        ("$__timeGroup(ts, '5m')", "floor(extract(epoch from ts)/300)*300"),
        ("$__timeGroup(ts,1h)", "floor(extract(epoch from ts)/3600)*3600"),
        (
            '$__timeGroupAlias("timestamp", 1d)',
            'floor(extract(epoch from "timestamp")/86400)*86400 AS "time"',
        ),
        ("$__unixEpochFilter(t)", f"t >= {int(START.timestamp())} AND t <= {int(END.timestamp())}"),
    ],
)
def test_macros_expand_as_the_postgres_backend_writes_them(sql: str, expected: str) -> None:
    assert expand_macros(sql, start=START, end=END) == expected


def test_render_does_variables_first_then_macros() -> None:
    sql = (
        "SELECT $__timeGroupAlias(ts, $__interval), count(*) FROM t "
        "WHERE $__timeFilter(ts) AND tenant IN ($tenant)"
    )
    assert render(sql, VARS, start=START, end=END, interval="1h") == (
        'SELECT floor(extract(epoch from ts)/3600)*3600 AS "time", count(*) FROM t '
        "WHERE ts BETWEEN '2026-12-06T10:00:00Z' AND '2026-12-06T16:30:15Z' AND tenant IN ('acme','o''brien')"
    )


@pytest.mark.parametrize(
    ("sql", "error"),
    [
        ("$unknown", r"\$unknown is not a variable"),
        ("${tenant:json}", "format 'json'"),
        ("$__nope", "unknown global variable"),
        ("$__timeShift(ts)", "unknown macro"),
        ("$__timeGroup(ts)", "needs 2 argument"),
        ("$__timeGroup(ts, 5 minutes)", "not an interval"),
        ("$__timeFilter(date_trunc('day', ts))", "not expanded"),
    ],
)
def test_what_grafana_would_not_expand_is_an_error_naming_it(sql: str, error: str) -> None:
    with pytest.raises(InterpolationError, match=error):
        render(sql, VARS, start=START, end=END, interval="5m")


def test_an_empty_selection_is_an_error() -> None:
    with pytest.raises(InterpolationError, match="no value"):
        render("$t", {"t": Variable(())}, start=START, end=END, interval="1m")


@pytest.mark.parametrize(
    ("text", "seconds"), [("100ms", 0.1), ("30s", 30), ("5m", 300), ("'1h'", 3600), ("2d", 172800)]
)
def test_intervals(text: str, seconds: float) -> None:
    assert interval_seconds(text) == seconds


@given(st.text().filter(lambda s: "$" not in s and "[[" not in s))
def test_sql_without_variables_or_macros_is_unchanged(sql: str) -> None:
    assert render(sql, {}, start=START, end=END, interval="1m") == sql


@given(st.lists(st.text(min_size=1), min_size=1, max_size=5))
def test_quoted_values_split_back_into_the_selection(values: list[str]) -> None:
    quoted = _vars_of(values)
    parsed, i = [], 0
    while i < len(quoted):
        assert quoted[i] == "'"
        j, buf = i + 1, []
        while True:
            if quoted[j] == "'" and quoted[j + 1 : j + 2] == "'":
                buf.append("'")
                j += 2
            elif quoted[j] == "'":
                break
            else:
                buf.append(quoted[j])
                j += 1
        parsed.append("".join(buf))
        i = j + 2  # past the closing quote and the comma
    assert parsed == values


def _vars_of(values: list[str]) -> str:
    return interpolate_variables(
        "$v", {"v": Variable(tuple(values), multi=True)}, start=START, end=END, interval="1m"
    )
