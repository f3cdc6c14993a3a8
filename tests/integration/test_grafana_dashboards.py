"""The Grafana dashboards work, checked without a Grafana server (none can run on our machines).

Three checks, each of something a broken dashboard gets wrong:
- the JSON matches Grafana's published dashboard type (@grafana/schema, type-checked by `tsc`);
- every panel has a unique id and a grid position that fits the 24-column grid without overlap;
- every query (panels, template variables, annotations) runs against the real PostgreSQL, built
  by the real migrations and filled with generated data, with Grafana's variables and macros
  expanded as Grafana would (tests/grafana_sql.py), read-only, and returns rows of the columns
  its panel needs: `time` plus numeric values for a time series, `time` and `text` for an
  annotation, every field a panel override names for a table.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from loganalyzer.costs.daily import DayMeasure, day_document, day_usages, price_day, read_day_document
from loganalyzer.db.connection import connect
from tests.grafana_sql import Variable, interval_seconds, render

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
SCHEMA_CHECK = GRAFANA / "schema-check"
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
TENANTS = ("acme", "globex")
SERVICES = ("checkout", "payments", "search", "auth")
#: Grafana's nice intervals, the steps $__interval is rounded up to
NICE = ("1s", "5s", "10s", "30s", "1m", "5m", "10m", "30m", "1h", "3h", "12h", "1d", "1w")


def _load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def _panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in board.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))  # panels of a collapsed row
    return out


# -- 1. the JSON against @grafana/schema ---------------------------------------------------------


def _npm_installed() -> bool:
    lock = json.loads((SCHEMA_CHECK / "package-lock.json").read_text())
    for name in ("@grafana/schema", "typescript"):
        manifest = SCHEMA_CHECK / "node_modules" / name / "package.json"
        want = lock["packages"][f"node_modules/{name}"]["version"]
        if not manifest.exists() or json.loads(manifest.read_text())["version"] != want:
            return False
    return True


def test_dashboards_type_check_against_grafanas_published_schema() -> None:
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.skip("npm/node not installed: cannot type-check dashboards against @grafana/schema")
    if not _npm_installed():
        # npm ci: exactly the versions of the committed package-lock.json, into a git-ignored folder
        installed = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
            cwd=SCHEMA_CHECK,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert installed.returncode == 0, f"npm ci failed:\n{installed.stdout}{installed.stderr}"
    checked = subprocess.run(
        [node, "check.mjs"], cwd=SCHEMA_CHECK, capture_output=True, text=True, timeout=300
    )
    assert checked.returncode == 0, (
        f"dashboards do not match @grafana/schema:\n{checked.stdout}{checked.stderr}"
    )
    assert f"{len(DASHBOARDS)} dashboards match" in checked.stdout


# -- 2. ids, grid positions, data source, provisioning -------------------------------------------


def test_there_are_the_three_dashboards_with_unique_uids() -> None:
    boards = [_load(p) for p in DASHBOARDS]
    uids = [b["uid"] for b in boards]
    assert sorted(uids) == ["loganalyzer-anomalies", "loganalyzer-costs", "loganalyzer-overview"]
    assert all(len(uid) <= 40 for uid in uids), "Grafana refuses uids longer than 40 characters"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_panel_has_a_unique_id_and_a_place_on_the_grid(path: Path) -> None:
    panels = _panels(_load(path))
    assert panels, f"{path.name} has no panels"
    ids = [p.get("id") for p in panels]
    assert all(isinstance(i, int) for i in ids), f"panels without an integer id: {ids}"
    assert len(set(ids)) == len(ids), f"duplicate panel ids in {path.name}: {ids}"
    titles = [p.get("title") for p in panels]
    assert len(set(titles)) == len(titles), f"two panels of {path.name} have the same title: {titles}"
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        g = p.get("gridPos")
        assert g is not None, f"panel {p.get('title')!r} has no gridPos"
        assert all(isinstance(g[k], int) for k in "xywh"), g
        assert g["w"] > 0 and g["h"] > 0 and g["x"] >= 0 and g["y"] >= 0
        assert g["x"] + g["w"] <= 24, f"panel {p['title']!r} is wider than the 24-column grid"
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"panels {cells[(x, y)]!r} and {p['title']!r} overlap"
                cells[(x, y)] = p["title"]


def test_every_query_uses_the_provisioned_data_source() -> None:
    config = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "postgres.yaml").read_text())
    (source,) = config["datasources"]
    assert source["type"] == "grafana-postgresql-datasource"
    # the connection comes from the environment, never from the repository
    for value in (
        source["url"],
        source["user"],
        source["jsonData"]["database"],
        source["secureJsonData"]["password"],
    ):
        assert re.fullmatch(r"(\$\{?GRAFANA_PG_\w+\}?:?)+", value), value
    expected = {"type": source["type"], "uid": source["uid"]}
    for path in DASHBOARDS:
        for query in _queries(_load(path)):
            assert query.datasource == expected, f"{path.name}: {query.where} uses {query.datasource}"


# -- 3. every query against the real database ----------------------------------------------------


class Query:
    def __init__(
        self, where: str, sql: str, kind: str, panel: dict[str, Any] | None, datasource: Any
    ) -> None:
        self.where, self.sql, self.kind, self.panel, self.datasource = where, sql, kind, panel, datasource


def _queries(board: dict[str, Any]) -> Iterator[Query]:
    for p in _panels(board):
        for t in p.get("targets", []):
            yield Query(
                f"panel {p['title']!r}", t["rawSql"], t["format"], p, t.get("datasource", p.get("datasource"))
            )
    for a in board["annotations"]["list"]:
        if "target" in a:
            yield Query(
                f"annotation {a['name']!r}", a["target"]["rawSql"], "annotation", None, a["datasource"]
            )
    for v in board["templating"]["list"]:
        if v["type"] == "query":
            yield Query(f"variable ${v['name']}", v["query"], "variable", None, v["datasource"])


def _time(expr: str) -> datetime:
    if expr == "now":
        return NOW
    m = re.fullmatch(r"now-(\d+)([mhd])", expr)
    assert m, f"unsupported time expression {expr!r}"
    return NOW - timedelta(**{dict(m="minutes", h="hours", d="days")[m.group(2)]: int(m.group(1))})


def _interval(start: datetime, end: datetime, panel: dict[str, Any] | None) -> str:
    """$__interval as Grafana picks it: the range over ~1000 points, rounded up, not below the panel's."""
    raw = (end - start).total_seconds() / 1000
    nice = next((n for n in NICE if interval_seconds(n) >= raw), NICE[-1])
    minimum = (panel or {}).get("interval")
    if minimum and interval_seconds(minimum) > interval_seconds(nice):
        return str(minimum)
    return nice


def _run(url: str, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    with connect(url) as conn:
        conn.read_only = True  # dashboards only read: the provisioned role is read-only
        with conn.cursor() as cur:
            try:
                cur.execute(sql.encode())
            except psycopg.Error as exc:
                raise AssertionError(f"{exc}\n--- SQL as Grafana would send it ---\n{sql}") from exc
            assert cur.description is not None
            return [c.name for c in cur.description], cur.fetchall()


def _numeric(v: Any) -> bool:
    return v is None or (isinstance(v, int | float | Decimal) and not isinstance(v, bool))


def _resolve_variables(
    url: str, board: dict[str, Any], start: datetime, end: datetime, pick: str
) -> dict[str, Variable]:
    """Each variable's selection, in dashboard order (a query may use the ones before it)."""
    resolved: dict[str, Variable] = {}
    for v in board["templating"]["list"]:
        multi = bool(v.get("multi") or v.get("includeAll"))
        if v["type"] == "query":
            sql = render(v["query"], resolved, start=start, end=end, interval="1m")
            columns, rows = _run(url, sql)
            assert rows, f"variable ${v['name']} has no values on generated data:\n{sql}"
            values = [str(r[columns.index("__value")] if "__value" in columns else r[0]) for r in rows]
        elif v["type"] == "custom":
            values = [o["value"] for o in v["options"]]
            if not multi:
                values = [v["current"]["value"]]
        elif v["type"] in ("constant", "textbox"):
            values = [v["query"]]
        else:
            raise AssertionError(
                f"variable ${v['name']} has type {v['type']!r}, which this test cannot resolve"
            )
        if pick == "first" and v["type"] == "query":
            values = values[:1]  # one tenant, one service: the single-value form of the SQL
        resolved[v["name"]] = Variable(tuple(values), multi)
    return resolved


def _check_result(query: Query, columns: list[str], rows: list[tuple[Any, ...]], sql: str) -> None:
    where = f"{query.where} ({query.kind})"
    assert rows, f"{where} returned no rows on generated data:\n{sql}"
    assert len(set(columns)) == len(columns), f"{where}: duplicate column names {columns}"
    if query.kind in ("time_series", "annotation"):
        assert "time" in columns, f"{where} has no `time` column: {columns}"
        times = [r[columns.index("time")] for r in rows]
        assert all(isinstance(t, datetime | int | float | Decimal) for t in times), (
            f"{where}: `time` {times[:3]}"
        )
    if query.kind == "time_series":
        assert times == sorted(times), f"{where}: rows are not in time order (Grafana needs ascending time)"
        values = [c for c in columns if c not in ("time", "metric")]
        assert values, f"{where}: no value column besides time/metric: {columns}"
        for c in values:
            assert all(_numeric(r[columns.index(c)]) for r in rows), f"{where}: column {c!r} is not numeric"
        assert any(r[columns.index(c)] is not None for r in rows for c in values), (
            f"{where}: every value is NULL"
        )
        if "metric" in columns:
            assert all(isinstance(r[columns.index("metric")], str) for r in rows), (
                f"{where}: metric is not text"
            )
    if query.kind == "annotation":
        assert "text" in columns, f"{where}: an annotation needs a `text` column: {columns}"
    if query.panel is not None and query.panel["type"] == "stat":
        assert all(_numeric(v) for r in rows for v in r), (
            f"{where}: a stat panel's values must be numbers: {rows}"
        )
        assert any(v is not None for r in rows for v in r), f"{where}: the stat is NULL on generated data"
    if query.panel is not None and "metric" not in columns:
        for o in query.panel.get("fieldConfig", {}).get("overrides", []):
            if o["matcher"]["id"] == "byName":
                name = o["matcher"]["options"]
                assert name in columns, f"{where}: an override styles field {name!r}, not in {columns}"


@pytest.fixture(scope="module")
def filled_database() -> Iterator[str]:
    from tests.support import fresh_database

    with fresh_database() as url:
        with connect(url) as conn:
            _generate(conn)
        yield url


def _has_table(url: str, name: str) -> bool:
    with connect(url) as conn:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
        return bool(row and row[0])


@pytest.mark.parametrize("pick", ["all", "first"], ids=["all-selected", "first-value"])
@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_query_runs_on_postgresql_and_returns_what_its_panel_needs(
    filled_database: str, path: Path, pick: str
) -> None:
    board = _load(path)
    if path.stem == "costs" and not _has_table(filled_database, "cost_snapshots"):
        pytest.skip("cost_snapshots is not created by any migration in sql/ yet (it comes with the cost DAG)")
    start, end = _time(board["time"]["from"]), _time(board["time"]["to"])
    variables = _resolve_variables(filled_database, board, start, end, pick)
    ran = 0
    for query in _queries(board):
        sql = render(query.sql, variables, start=start, end=end, interval=_interval(start, end, query.panel))
        columns, rows = _run(filled_database, sql)
        _check_result(query, columns, rows, sql)
        ran += 1
    assert ran == sum(1 for _ in _queries(board))
    assert ran >= 5


# -- generated data: a day and a half of two tenants' traffic, its rollups, patterns, anomalies ---


def _generate(conn: psycopg.Connection) -> None:
    start = NOW - timedelta(hours=36)
    for day in {(start + timedelta(hours=h)).date() for h in range(0, 38)}:
        conn.execute("SELECT ensure_log_partition(%s)", (day,))
    # one event per minute per tenant and service, every 7th an ERROR, with a duration
    conn.execute(
        """
        INSERT INTO logs ("timestamp", tenant, service, host, level, message, metadata, duration_ms,
                          kafka_topic, kafka_partition, kafka_offset)
        SELECT ts, t, s, 'host-' || (m %% 3),
               (ARRAY['INFO', 'INFO', 'DEBUG', 'WARN', 'INFO', 'INFO', 'ERROR'])[m %% 7 + 1],
               'request ' || m || ' handled', jsonb_build_object('duration_ms', 20 + m %% 200), 20 + m %% 200,
               'logs', 0, row_number() OVER ()
        FROM unnest(%s::text[]) AS t, unnest(%s::text[]) AS s,
             generate_series(0, 36 * 60 - 1) AS m, LATERAL (SELECT %s + m * interval '1 minute' AS ts) AS x
        """,
        (list(TENANTS), list(SERVICES), start),
    )
    conn.execute(
        """
        INSERT INTO hourly_metrics (tenant, service, hour, log_count, debug_count, info_count, warn_count,
                                    error_count, fatal_count, host_count, avg_duration_ms, p95_duration_ms)
        SELECT tenant, service, date_trunc('hour', "timestamp"), count(*),
               count(*) FILTER (WHERE level = 'DEBUG'), count(*) FILTER (WHERE level = 'INFO'),
               count(*) FILTER (WHERE level = 'WARN'), count(*) FILTER (WHERE level = 'ERROR'),
               count(*) FILTER (WHERE level = 'FATAL'), count(DISTINCT host), avg(duration_ms),
               percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)
        FROM logs GROUP BY 1, 2, 3
        """
    )
    for i, (tenant, service) in enumerate((t, s) for t in TENANTS for s in SERVICES):
        for j, template in enumerate(
            ("request <*> handled", "cache miss for key <*>", "payment <*> declined")
        ):
            first = start if j < 2 else NOW - timedelta(hours=2, minutes=i)
            conn.execute(
                "INSERT INTO log_patterns VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    tenant,
                    service,
                    f"p{j}",
                    template,
                    first,
                    NOW - timedelta(minutes=1),
                    100 * (3 - j) + i,
                    7 * j,
                    template,
                ),
            )
    types = (
        "error_rate_spike",
        "log_volume_spike",
        "log_volume_drop",
        "new_error_pattern",
        "isolation_forest",
    )
    severities = ("low", "medium", "high", "critical")
    for i in range(40):
        tenant, service = TENANTS[i % 2], SERVICES[(i // 2) % 4]  # every pair, open and resolved
        begin = NOW - timedelta(hours=20) + timedelta(minutes=29 * i)
        resolved = i % 3 != 0
        conn.execute(
            """
            INSERT INTO anomalies (id, tenant, service, anomaly_type, severity, status, window_start,
                                   window_end, resolved_at, score, expected_value, actual_value,
                                   description, pattern_template)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            """,
            (
                f"a{i:03d}",
                tenant,
                service,
                types[i % 5],
                severities[i % 4],
                "resolved" if resolved else "open",
                begin,
                begin + timedelta(minutes=5 + i),
                begin + timedelta(minutes=6 + i) if resolved else None,
                3.5 + i / 10,
                10.0,
                40.0 + i,
                f"{types[i % 5]} on {service}: {40 + i} against a baseline of 10",
                "payment <*> declined" if types[i % 5] == "new_error_pattern" else None,
            ),
        )
    conn.execute(
        """
        INSERT INTO dead_letters (kafka_topic, kafka_partition, kafka_offset, raw, raw_size, reason, detail,
                                  received_at)
        VALUES ('logs', 0, 1, 'not json', 8, 'invalid_json', 'expected a JSON object', %s)
        """,
        (NOW - timedelta(minutes=30),),
    )
    if conn.execute("SELECT to_regclass('cost_snapshots') IS NOT NULL").fetchone() == (True,):
        _generate_cost_snapshots(conn)
    conn.commit()


def _generate_cost_snapshots(conn: psycopg.Connection) -> None:
    """45 days of two tenants' measured usage, growing ~1 % a day, in the columns of sql/011, with
    the day's usage document and price (sql/017) from loganalyzer.costs.daily, as the DAG writes."""
    for k, tenant in enumerate(TENANTS):
        measured = []
        for d in range(45):
            g = (1 + 0.01 * d) * (k + 1)
            measured.append(
                (
                    NOW.date() - timedelta(days=44 - d),
                    DayMeasure(
                        s3_bytes_added=int(3e8 * g),
                        s3_put_requests=int(900 * g),
                        s3_get_requests=int(400 * g),
                        lambda_invocations=int(400 * g),
                        lambda_gb_seconds=1200.0 * g,
                        dynamodb_read_units=50.0 * g,
                        dynamodb_write_units=4000.0 * g,
                        dynamodb_bytes_added=int(2e5 * g),
                    ),
                )
            )
        for (day, m), (_, usage) in zip(measured, day_usages(measured, region="us-east-1"), strict=True):
            quote = price_day(usage)
            conn.execute(
                """
                INSERT INTO cost_snapshots (day, tenant, s3_bytes_stored, s3_objects, s3_put_requests,
                    s3_get_requests, lambda_invocations, lambda_gb_seconds, dynamodb_read_units,
                    dynamodb_write_units, dynamodb_bytes_stored, dynamodb_items, usage, source,
                    cost_usd, priced)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'local', %s, %s)
                """,
                (
                    day,
                    tenant,
                    int(m.s3_bytes_added),
                    40,
                    int(m.s3_put_requests),
                    int(m.s3_get_requests),
                    int(m.lambda_invocations),
                    m.lambda_gb_seconds,
                    m.dynamodb_read_units,
                    m.dynamodb_write_units,
                    int(m.dynamodb_bytes_added),
                    50,
                    json.dumps(day_document(usage)),
                    quote.total,
                    json.dumps(quote.to_dict()),
                ),
            )


def _panel_rows(url: str, board: dict[str, Any], title: str) -> list[dict[str, Any]]:
    start, end = _time(board["time"]["from"]), _time(board["time"]["to"])
    variables = _resolve_variables(url, board, start, end, "all")
    (panel,) = [p for p in _panels(board) if p["title"] == title]
    sql = render(panel["targets"][0]["rawSql"], variables, start=start, end=end, interval="1d")
    columns, rows = _run(url, sql)
    return [dict(zip(columns, r, strict=True)) for r in rows]


def test_the_cost_panels_show_the_engines_prices(filled_database: str) -> None:
    """Month to date is the sum of this month's daily bars, and both are the cost engine's price of
    each stored day (no price lives in the dashboard)."""
    if not _has_table(filled_database, "cost_snapshots"):
        pytest.skip("cost_snapshots is not created by any migration in sql/ yet (it comes with the cost DAG)")
    board = _load(GRAFANA / "dashboards" / "costs.json")
    assert [v["name"] for v in board["templating"]["list"]] == ["tenant"]
    (mtd,) = _panel_rows(filled_database, board, "Month to date")
    daily = _panel_rows(filled_database, board, "Daily cost by AWS service")
    month = NOW.date().replace(day=1)
    bars = {r["time"].date(): Decimal(str(r["S3"] + r["Lambda"] + r["DynamoDB"])) for r in daily}
    with connect(filled_database) as conn:
        stored = conn.execute("SELECT day, usage FROM cost_snapshots ORDER BY day, tenant").fetchall()
    engine: dict[date, Decimal] = {}
    for day, doc in stored:
        engine[day] = engine.get(day, Decimal(0)) + price_day(read_day_document(doc)).total
    assert bars and all(abs(v - engine[d]) < Decimal("0.000001") for d, v in bars.items())
    this_month = sum((v for d, v in engine.items() if d >= month), Decimal(0))
    assert Decimal(str(mtd["month_to_date"])) == pytest.approx(this_month, abs=Decimal("0.000001"))
    assert this_month > 0
    (last,) = _panel_rows(filled_database, board, "Last measured day")
    assert Decimal(str(last["last_day"])) == pytest.approx(engine[max(engine)], abs=Decimal("0.000001"))


def test_the_overview_and_anomaly_stats_count_the_generated_data(filled_database: str) -> None:
    """Known data, known answers: the variables' All selection filters nothing out."""
    overview = _load(GRAFANA / "dashboards" / "overview.json")
    (logs,) = _panel_rows(filled_database, overview, "Logs in range")
    minutes = 6 * 60  # the default range, one event per minute per tenant and service
    assert logs["logs"] in range(minutes * 8, (minutes + 1) * 8 + 1)
    (share,) = _panel_rows(filled_database, overview, "Error share")
    assert share["error_share"] == pytest.approx(1 / 7, abs=0.01)
    anomalies = _load(GRAFANA / "dashboards" / "anomalies.json")
    (open_,) = _panel_rows(filled_database, anomalies, "Open episodes")
    assert open_["open"] == sum(1 for i in range(40) if i % 3 == 0)
    (started,) = _panel_rows(filled_database, anomalies, "Episodes started in range")
    assert started["episodes"] == 40
