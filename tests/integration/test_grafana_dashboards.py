"""The Grafana dashboards work, checked without a Grafana server (none can run on our machines).

Three checks, each of something a broken dashboard gets wrong:
- the JSON matches Grafana's published dashboard type (@grafana/schema, type-checked by `tsc`);
- every panel has a unique id and a grid position that fits the 24-column grid without overlap;
- every query (panels, template variables, annotations) runs against the real PostgreSQL, built
  by the real migrations and filled with generated data, with Grafana's variables and macros
  expanded as Grafana would (tests/grafana_sql.py), logged in as a member of the Grafana role
  (loganalyzer_grafana, read-only by default as the platform's Grafana user), and returns rows of
  the columns its panel needs: `time` plus numeric values for a time series, `time` and `text`
  for an annotation, every field a panel override names for a table.

The generated data goes through the real writers where there is one: the cost outlook by the
cost_snapshot DAG's work (loganalyzer.batch.cost_outlook), operator feedback by the API's
acknowledge/resolve/suppress endpoints.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import sql as pgsql
from psycopg.conninfo import make_conninfo

from loganalyzer.batch.cost_outlook import write_outlook
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
    """`sql` as Grafana's data source runs it: `url` logs in as a member of loganalyzer_grafana."""
    with connect(url) as conn:
        conn.read_only = True  # and read-only, as the provisioned user defaults to
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
    """The owner's URL of a migrated database filled with generated data."""
    from tests.support import fresh_database

    with fresh_database() as url:
        with connect(url) as conn:
            _generate(conn)
        _operator_feedback(url)
        yield url


@pytest.fixture(scope="module")
def grafana_url(filled_database: str) -> Iterator[str]:
    """A LOGIN user of the filled database that has only the Grafana role, as the platform's
    Grafana user (loganalyzer.db.login_users): what the dashboards' SQL may read is its grants."""
    user = f"la_grafana_test_{uuid.uuid4().hex[:10]}"
    ident = pgsql.Identifier(user)
    with connect(filled_database, autocommit=True) as conn:
        conn.execute(pgsql.SQL("CREATE ROLE {} LOGIN IN ROLE loganalyzer_grafana").format(ident))
        conn.execute(pgsql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(ident))
    try:
        yield make_conninfo(filled_database, user=user)
    finally:
        with connect(filled_database, autocommit=True) as conn:
            conn.execute(pgsql.SQL("DROP ROLE {}").format(ident))


def _has_table(url: str, name: str) -> bool:
    with connect(url) as conn:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
        return bool(row and row[0])


def test_the_dashboards_sql_runs_as_the_grafana_role_only(grafana_url: str) -> None:
    """What the panels read is what loganalyzer_grafana is granted: API keys are not among it."""
    with connect(grafana_url) as conn:
        roles = conn.execute(
            "SELECT array(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
            "WHERE m.member = r.oid) FROM pg_roles r WHERE r.rolname = current_user"
        ).fetchone()
        assert roles == (["loganalyzer_grafana"],)
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM api_keys")


@pytest.mark.parametrize("pick", ["all", "first"], ids=["all-selected", "first-value"])
@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_query_runs_on_postgresql_and_returns_what_its_panel_needs(
    filled_database: str, grafana_url: str, path: Path, pick: str
) -> None:
    board = _load(path)
    if path.stem == "costs" and not _has_table(filled_database, "cost_snapshots"):
        pytest.skip("cost_snapshots is not created by any migration in sql/ yet (it comes with the cost DAG)")
    start, end = _time(board["time"]["from"]), _time(board["time"]["to"])
    variables = _resolve_variables(grafana_url, board, start, end, pick)
    ran = 0
    for query in _queries(board):
        sql = render(query.sql, variables, start=start, end=end, interval=_interval(start, end, query.panel))
        columns, rows = _run(grafana_url, sql)
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
        # the outlook as the cost_snapshot DAG writes it after measuring each of the last two days
        for day in (NOW.date() - timedelta(days=1), NOW.date()):
            write_outlook(conn, day, region="us-east-1")
    conn.commit()


#: (anomaly index, API action, request body): on both tenants and on every service of acme,
#: a pattern suppression (a8 is acme's new_error_pattern on checkout) and a timed one
FEEDBACK = [
    (0, "acknowledge", {"note": "looking into it"}),
    (1, "acknowledge", None),
    (6, "acknowledge", {"note": "auth latency, paged the owner"}),
    (6, "resolve", {"note": "fixed by a restart"}),
    (2, "resolve", None),
    (4, "suppress", {"duration_minutes": 60, "note": "planned load test"}),
    (8, "suppress", {"scope": "pattern", "note": "known noisy pattern"}),
    (9, "acknowledge", None),
    (14, "acknowledge", None),
    (3, "suppress", None),
]


def _operator_feedback(url: str) -> None:
    """Operator actions through the API's own endpoints (serving), as an admin key."""
    from tests.integration.api_harness import client, create_key

    admin = create_key(url, "ops", admin=True)
    with client(url) as c:
        for i, action, body in FEEDBACK:
            r = c.post(f"/api/v1/anomalies/a{i:03d}/{action}", json=body, headers={"X-API-Key": admin})
            assert r.status_code == 200, r.text
    # The API stamps each action now(), after NOW, where the dashboards' range ends in this test
    # (Grafana's `now` is when it asks): the actions move to one every 7 minutes before NOW, in order.
    with connect(url) as conn:
        conn.execute(
            "UPDATE anomaly_feedback f SET created_at = %s - (n.total - n.k + 1) * interval '7 minutes' "
            "FROM (SELECT id, row_number() OVER (ORDER BY id) AS k, count(*) OVER () AS total "
            "FROM anomaly_feedback) n WHERE n.id = f.id",
            (NOW,),
        )


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


def _panel_rows(url: str, board: dict[str, Any], title: str, pick: str = "all") -> list[dict[str, Any]]:
    start, end = _time(board["time"]["from"]), _time(board["time"]["to"])
    variables = _resolve_variables(url, board, start, end, pick)
    (panel,) = [p for p in _panels(board) if p["title"] == title]
    sql = render(panel["targets"][0]["rawSql"], variables, start=start, end=end, interval="1d")
    columns, rows = _run(url, sql)
    return [dict(zip(columns, r, strict=True)) for r in rows]


def test_the_cost_panels_show_the_engines_prices(filled_database: str, grafana_url: str) -> None:
    """Month to date is the sum of this month's daily bars, and both are the cost engine's price of
    each stored day (no price lives in the dashboard)."""
    if not _has_table(filled_database, "cost_snapshots"):
        pytest.skip("cost_snapshots is not created by any migration in sql/ yet (it comes with the cost DAG)")
    board = _load(GRAFANA / "dashboards" / "costs.json")
    assert [v["name"] for v in board["templating"]["list"]] == ["tenant", "service"]
    (mtd,) = _panel_rows(grafana_url, board, "Month to date")
    daily = _panel_rows(grafana_url, board, "Daily cost by AWS service")
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
    (last,) = _panel_rows(grafana_url, board, "Last measured day")
    assert Decimal(str(last["last_day"])) == pytest.approx(engine[max(engine)], abs=Decimal("0.000001"))


def test_the_overview_and_anomaly_stats_count_the_generated_data(grafana_url: str) -> None:
    """Known data, known answers: the variables' All selection filters nothing out."""
    overview = _load(GRAFANA / "dashboards" / "overview.json")
    (logs,) = _panel_rows(grafana_url, overview, "Logs in range")
    minutes = 6 * 60  # the default range, one event per minute per tenant and service
    assert logs["logs"] in range(minutes * 8, (minutes + 1) * 8 + 1)
    (share,) = _panel_rows(grafana_url, overview, "Error share")
    assert share["error_share"] == pytest.approx(1 / 7, abs=0.01)
    anomalies = _load(GRAFANA / "dashboards" / "anomalies.json")
    (open_,) = _panel_rows(grafana_url, anomalies, "Open episodes")
    assert open_["open"] == sum(1 for i in range(40) if i % 3 == 0)
    (started,) = _panel_rows(grafana_url, anomalies, "Episodes started in range")
    assert started["episodes"] == 40


def _outlook(url: str, tenant: str | None) -> tuple[dict[str, Any], dict[Decimal, Decimal]]:
    """The newest stored outlook row of `tenant` (None: all tenants) and its what-ifs."""
    with connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        row = cur.execute(
            "SELECT * FROM cost_outlook WHERE day = (SELECT max(day) FROM cost_outlook) "
            "AND tenant IS NOT DISTINCT FROM %s",
            (tenant,),
        ).fetchone()
        assert row is not None
        what_ifs = cur.execute(
            "SELECT multiplier, total_usd FROM cost_outlook_what_if WHERE outlook_id = %s", (row["id"],)
        ).fetchall()
    return row, {w["multiplier"]: w["total_usd"] for w in what_ifs}


def test_the_outlook_panels_show_the_stored_forecast_and_what_ifs(
    filled_database: str, grafana_url: str
) -> None:
    """All tenants selected: the outlook of every tenant together (not a sum of percentiles); one
    tenant: that tenant's. The figures are the stored ones, written by the DAG's work."""
    board = _load(GRAFANA / "dashboards" / "costs.json")
    for pick, tenant in (("all", None), ("first", TENANTS[0])):
        row, what_ifs = _outlook(filled_database, tenant)
        assert row["forecast_error"] is None and row["history_days"] == 45 - (row["day"] != NOW.date())
        (stat,) = _panel_rows(grafana_url, board, "Next month: forecast and 80 % interval", pick)
        assert stat == {
            "low (P10)": float(row["forecast_low_usd"]),
            "mean": float(row["forecast_mean_usd"]),
            "high (P90)": float(row["forecast_high_usd"]),
        }
        assert stat["low (P10)"] <= stat["mean"] <= stat["high (P90)"]
        bars = _panel_rows(grafana_url, board, "What-if: this month at other traffic", pick)
        assert [b["traffic"] for b in bars] == ["x0.5", "x1", "x2", "x5", "x10"]
        assert {Decimal(b["traffic"][1:]): Decimal(str(b["month_usd"])) for b in bars} == what_ifs
        assert what_ifs[Decimal(1)] == row["month_estimate_usd"]
        series = _panel_rows(grafana_url, board, "Next month's forecast as computed each day", pick)
        assert [r["time"].date() for r in series] == [NOW.date() - timedelta(days=1), NOW.date()]
        assert series[-1]["mean"] == stat["mean"]
    table = _panel_rows(grafana_url, board, "Outlook by tenant")
    assert [r["tenant"] for r in table] == ["(all tenants)", *TENANTS]
    # every tenant together costs about what the tenants cost apart (prices are nearly linear here)
    assert table[0]["this_month"] == pytest.approx(sum(r["this_month"] for r in table[1:]), rel=0.01)


def test_the_service_panels_apportion_the_tenants_cost_by_logged_lines(grafana_url: str) -> None:
    board = _load(GRAFANA / "dashboards" / "costs.json")
    (mtd,) = _panel_rows(grafana_url, board, "Month to date")
    rows = _panel_rows(grafana_url, board, "Month to date by service (apportioned)")
    assert sorted(r["service"] for r in rows) == sorted(SERVICES)
    # the generated services log alike: equal shares, and together they are the whole month
    assert all(r["share_of_lines_pct"] == 25.0 for r in rows)
    assert sum(r["apportioned_usd"] for r in rows) == pytest.approx(mtd["month_to_date"], rel=1e-9)
    (one,) = _panel_rows(grafana_url, board, "Month to date by service (apportioned)", "first")
    assert one["service"] == sorted(SERVICES)[0]


def test_the_anomaly_panels_show_the_operators_actions(grafana_url: str) -> None:
    """What the API recorded (FEEDBACK) is what the panels count and list."""
    board = _load(GRAFANA / "dashboards" / "anomalies.json")
    latest = _panel_rows(grafana_url, board, "Latest operator actions")
    assert len(latest) == len(FEEDBACK)
    assert [(r["anomaly_id"], r["action"]) for r in reversed(latest)] == [
        (f"a{i:03d}", action) for i, action, _ in FEEDBACK
    ]
    by_id = {(r["anomaly_id"], r["action"]): r for r in latest}
    assert by_id[("a006", "resolve")]["note"] == "fixed by a restart"
    assert by_id[("a008", "suppress")]["scope"] == "pattern"
    assert by_id[("a004", "suppress")]["suppressed_until"] is not None
    assert all(r["key_id"] for r in latest)
    actions = _panel_rows(grafana_url, board, "Operator actions")
    counted: dict[str, int] = {}
    for r in actions:
        counted[r["metric"]] = counted.get(r["metric"], 0) + r["value"]
    expected: dict[str, int] = {}
    for _, action, _ in FEEDBACK:
        expected[action] = expected.get(action, 0) + 1
    assert counted == expected
    statuses = {r["metric"] for r in _panel_rows(grafana_url, board, "Episodes per day by status")}
    assert statuses == {"open", "acknowledged", "resolved", "suppressed"}
