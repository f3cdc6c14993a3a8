"""Grafana's SQL interpolation, done the way Grafana does it, so dashboard queries can run without Grafana.

No Grafana server can run on our machines, yet a dashboard whose SQL is wrong is broken. Grafana
turns a panel's SQL into a statement in two steps, and this module does both:

1. Template variables (the browser): `$name`, `${name}`, `${name:format}` and `[[name]]`, plus the
   global `$__interval`, `$__interval_ms`, `$__from`, `$__to`. The SQL data sources quote a
   multi-value or include-All variable's values as SQL strings ('a','b'); a single-value
   variable is inserted with its quotes doubled but unquoted (`${var:sqlstring}` quotes anyway).
2. Macros (the PostgreSQL data source's backend): `$__time`, `$__timeEpoch`, `$__timeFilter`,
   `$__timeFrom`, `$__timeTo`, `$__timeGroup`, `$__timeGroupAlias`, `$__unixEpochFilter`.

Anything it does not know is an error naming it, so a dashboard cannot use a macro or variable
that was never checked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_INTERVAL = re.compile(r"^(\d+)(ms|s|m|h|d|w|y)$")
#: ${name}, ${name:format}, [[name]], [[name:format]], $name: the forms Grafana accepts
_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)(?::(\w+))?\]\]|\$(\w+)")
_MACRO = re.compile(r"\$__(\w+)\(([^()]*)\)")


class InterpolationError(ValueError):
    """The SQL uses a variable, format or macro that Grafana would not expand as written."""


@dataclass(frozen=True)
class Variable:
    """A template variable's current selection."""

    values: tuple[str, ...]
    #: multi-value or include-All: Grafana's SQL data sources then quote each value
    multi: bool = False


def interval_seconds(text: str) -> float:
    """'5m' -> 300.0; Grafana's interval syntax (a number and one unit)."""
    m = _INTERVAL.match(text.strip().strip("'\""))
    if not m:
        raise InterpolationError(f"not an interval: {text!r} (expected e.g. '30s', '5m', '1h', '1d')")
    return int(m.group(1)) * _UNITS[m.group(2)]


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _format(name: str, var: Variable, fmt: str | None) -> str:
    values = var.values
    if not values:
        raise InterpolationError(f"variable ${name} has no value selected")
    if fmt is None:
        if var.multi:
            return ",".join(_sql_literal(v) for v in values)
        return values[0].replace("'", "''")
    if fmt == "sqlstring":
        return ",".join(_sql_literal(v) for v in values)
    if fmt == "csv":
        return ",".join(values)
    if fmt == "raw":
        return ",".join(values)
    if fmt == "singlequote":
        return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
    raise InterpolationError(f"variable ${name} uses format {fmt!r}, which this check does not know")


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def interpolate_variables(
    sql: str,
    variables: Mapping[str, Variable],
    *,
    start: datetime,
    end: datetime,
    interval: str,
) -> str:
    """Step 1: replace template and global variables; macros ($__name(...)) are left for step 2."""
    builtins = {
        "__interval": interval.strip("'\""),
        "__interval_ms": str(int(interval_seconds(interval) * 1000)),
        "__from": str(int(start.timestamp() * 1000)),
        "__to": str(int(end.timestamp() * 1000)),
    }

    def replace(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3) or m.group(5)
        fmt = m.group(2) or m.group(4)
        if name in builtins:
            return builtins[name]
        if name.startswith("__"):
            if m.group(5) and sql[m.end() : m.end() + 1] == "(":
                return m.group(0)  # a macro: step 2
            raise InterpolationError(f"unknown global variable ${name}")
        if name not in variables:
            raise InterpolationError(f"${name} is not a variable of this dashboard")
        return _format(name, variables[name], fmt)

    return _VARIABLE.sub(replace, sql)


def _args(raw: str) -> list[str]:
    return [a.strip() for a in raw.split(",")] if raw.strip() else []


def expand_macros(sql: str, *, start: datetime, end: datetime) -> str:
    """Step 2: the PostgreSQL data source's macros, as its backend writes them."""
    frm, to = _sql_literal(_iso(start)), _sql_literal(_iso(end))

    def replace(m: re.Match[str]) -> str:
        name, args = m.group(1), _args(m.group(2))

        def need(n: int) -> None:
            if len(args) < n:
                raise InterpolationError(f"$__{name}() needs {n} argument(s), got {m.group(0)!r}")

        if name == "time":
            need(1)
            return f'{args[0]} AS "time"'
        if name == "timeEpoch":
            need(1)
            return f'extract(epoch from {args[0]}) AS "time"'
        if name == "timeFilter":
            need(1)
            return f"{args[0]} BETWEEN {frm} AND {to}"
        if name == "timeFrom":
            return frm
        if name == "timeTo":
            return to
        if name == "unixEpochFilter":
            need(1)
            return f"{args[0]} >= {int(start.timestamp())} AND {args[0]} <= {int(end.timestamp())}"
        if name in ("timeGroup", "timeGroupAlias"):
            need(2)
            seconds = interval_seconds(args[1])
            step = int(seconds) if seconds == int(seconds) else seconds
            expr = f"floor(extract(epoch from {args[0]})/{step})*{step}"
            return expr + (' AS "time"' if name == "timeGroupAlias" else "")
        raise InterpolationError(f"unknown macro $__{name}")

    out = _MACRO.sub(replace, sql)
    if "$__" in out:
        left = out[out.index("$__") :][:40]
        raise InterpolationError(f"macro not expanded (nested or malformed): {left!r}")
    return out


def render(
    sql: str,
    variables: Mapping[str, Variable],
    *,
    start: datetime,
    end: datetime,
    interval: str,
) -> str:
    """The statement Grafana would send to PostgreSQL for this SQL and dashboard state."""
    return expand_macros(
        interpolate_variables(sql, variables, start=start, end=end, interval=interval), start=start, end=end
    )


def selection(values: Sequence[str], multi: bool = True) -> Variable:
    return Variable(tuple(values), multi)
