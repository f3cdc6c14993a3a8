"""Log search (full text over closed and open days, pages, highlights) and the cost endpoints."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from loganalyzer.db.connection import connect
from loganalyzer.db.search_hours import index_closed_hours
from tests.integration.api_harness import NOW, Keys, client, make_keys, seed
from tests.support import fresh_database

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api() -> Iterator[tuple[TestClient, Keys, str]]:
    with fresh_database() as url:
        seed(url, earlier_days=1)
        keys = make_keys(url)
        with client(url) as c:
            yield c, keys, url


def _pages(c: TestClient, key: str, path: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(200):
        r = c.get(path + cursor, headers={"X-API-Key": key})
        assert r.status_code == 200, r.text
        rows += r.json()["data"]
        if not r.json()["next_cursor"]:
            return rows
        cursor = f"&cursor={r.json()['next_cursor']}"
    raise AssertionError("no last page")


def test_search_finds_every_match_across_open_and_closed_days_newest_first(
    api: tuple[TestClient, Keys, str],
) -> None:
    c, keys, url = api
    since = (NOW - timedelta(days=3)).isoformat().replace("+00:00", "Z")
    until = (
        (NOW + timedelta(hours=3)).isoformat().replace("+00:00", "Z")
    )  # the seed writes up to NOW + 39 min
    rows = _pages(c, keys.acme, f"/api/v1/logs/search?q=timeout&limit=7&from={since}&to={until}")
    with connect(url) as conn:
        expected = conn.execute(
            "SELECT count(*) FROM logs WHERE tenant = 'acme' AND message LIKE '% timeout %'"
        ).fetchone()
    assert expected is not None and len(rows) == expected[0] > 0
    assert len({r["timestamp"][:10] for r in rows}) >= 2  # today (no GIN) and a closed day (GIN)
    keys_seen = [(r["kafka_partition"], r["kafka_offset"]) for r in rows]
    assert len(set(keys_seen)) == len(keys_seen)
    assert [r["timestamp"] for r in rows] == sorted((r["timestamp"] for r in rows), reverse=True)
    assert all(r["level"] == "ERROR" and "<b>timeout</b>" in r["highlight"] for r in rows)


def test_search_filters_and_phrases(api: tuple[TestClient, Keys, str]) -> None:
    c, keys, _ = api
    handled = _pages(c, keys.acme, "/api/v1/logs/search?q=handled&level=INFO&service=svc-b&limit=200")
    assert handled and all(r["service"] == "svc-b" and r["level"] == "INFO" for r in handled)
    none = _pages(c, keys.acme, "/api/v1/logs/search?q=timeout&level=INFO")
    assert none == []
    phrase = _pages(c, keys.acme, "/api/v1/logs/search?q=%22request%2012%20handled%22&limit=200")
    assert phrase and all("request 12 handled" in r["message"] for r in phrase)
    plain = _pages(c, keys.acme, "/api/v1/logs/search?service=svc-a&limit=200")
    assert plain and all(r["highlight"] is None for r in plain)


def test_a_search_out_of_time_answers_what_it_found_and_continues_from_there(
    api: tuple[TestClient, Keys, str],
) -> None:
    c, keys, url = api
    since = (NOW - timedelta(days=3)).isoformat().replace("+00:00", "Z")
    until = (NOW + timedelta(hours=3)).isoformat().replace("+00:00", "Z")
    path = f"/api/v1/logs/search?q=timeout&limit=7&from={since}&to={until}"
    unhurried = _pages(c, keys.acme, path)
    # one window per request, then a cursor; hundreds of requests: no per-key rate limit
    with client(url, search_budget_ms=1, rate_limit_per_second=0) as hurried:
        short_pages = 0
        rows: list[dict[str, Any]] = []
        cursor = ""
        for _ in range(2000):
            body = hurried.get(path + cursor, headers={"X-API-Key": keys.acme}).json()
            rows += body["data"]
            if not body["next_cursor"]:
                break
            short_pages += len(body["data"]) < 7
            cursor = f"&cursor={body['next_cursor']}"
    assert short_pages > 0
    assert rows == unhurried  # same rows, same order: nothing skipped or repeated at a stop


def test_a_query_without_words_is_422(api: tuple[TestClient, Keys, str]) -> None:
    c, keys, _ = api
    r = c.get("/api/v1/logs/search?q=%21%21%21", headers={"X-API-Key": keys.acme})
    assert r.status_code == 422 and "no searchable words" in r.json()["detail"]


def test_closed_days_get_a_search_gin_the_planner_can_use(api: tuple[TestClient, Keys, str]) -> None:
    _, _, url = api
    closed = f"logs_p{(NOW - timedelta(days=1)):%Y%m%d}"
    with connect(url) as conn:
        indexes = {
            r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", (closed,))
        }
        assert {f"{closed}_search_gin", f"{closed}_time_idx", f"{closed}_service_time_idx"} <= indexes
        today = f"logs_p{NOW:%Y%m%d}"
        today_idx = {
            r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", (today,))
        }
        assert not any(i.endswith("_search_gin") for i in today_idx)  # ingestion pays no GIN upkeep
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                f"EXPLAIN SELECT * FROM {closed} "
                "WHERE message_tsv @@ websearch_to_tsquery('simple', 'timeout')"
            )
        )
    assert f"{closed}_search_gin" in plan


def test_the_search_walk_starts_no_parallel_workers(api: tuple[TestClient, Keys, str]) -> None:
    """A window's bitmap scan over today's partition looks big enough to the planner for two
    workers, whose start costs more than the window (sql/027): the function turns them off for
    its own statements and leaves the session's setting alone."""
    _, _, url = api
    with connect(url) as conn:
        row = conn.execute("SELECT proconfig FROM pg_proc WHERE proname = 'search_log_page'").fetchone()
        assert row is not None and "max_parallel_workers_per_gather=0" in row[0]
        before = conn.execute("SHOW max_parallel_workers_per_gather").fetchone()
        conn.execute(
            "SELECT count(*) FROM search_log_page(ARRAY[now() - interval '1 hour'], ARRAY[now()], "
            "ARRAY['p'], 'timeout', ARRAY['%%timeout%%'], NULL, NULL, NULL, NULL, NULL, NULL, NULL, 10, 50)"
        )
        assert conn.execute("SHOW max_parallel_workers_per_gather").fetchone() == before


def test_estimate_from_the_database_says_so(api: tuple[TestClient, Keys, str]) -> None:
    c, keys, _ = api
    body = c.get("/api/v1/costs/estimate", headers={"X-API-Key": keys.acme}).json()
    assert body["source"] == "estimated_from_database"
    assert body["assumptions"] and body["period"]["days_measured"] >= 1
    assert {li["service"] for li in body["line_items"]} >= {"s3", "lambda", "dynamodb"}
    assert Decimal(body["total_usd"]) == sum(Decimal(li["cost"]) for li in body["line_items"]) - Decimal(
        body["credits_usd"]
    )
    eu = c.get(
        "/api/v1/costs/estimate?region=eu-west-1&free_tier=none", headers={"X-API-Key": keys.acme}
    ).json()
    assert eu["region"] == "eu-west-1" and eu["free_tier"] == "none"


def test_estimate_and_forecast_use_measured_snapshots_when_there_are_some(
    api: tuple[TestClient, Keys, str],
) -> None:
    c, keys, url = api
    days = [NOW.date() - timedelta(days=d) for d in range(4, -1, -1)]
    with connect(url) as conn:
        for i, day in enumerate(days):
            conn.execute(
                "INSERT INTO cost_snapshots (day, tenant, s3_bytes_stored, s3_put_requests, s3_get_requests, "
                "lambda_invocations, lambda_gb_seconds, dynamodb_read_units, dynamodb_write_units, "
                "dynamodb_bytes_stored, usage, source) "
                "VALUES (%s, 'globex', %s, %s, 500, 50, 1000.0, 0, 50, 51200, '{}', 'local')",
                (day, 200 * 1024**3, 1000 + 100 * i),
            )
        conn.commit()
    try:
        body = c.get("/api/v1/costs/estimate?free_tier=none", headers={"X-API-Key": keys.globex}).json()
        assert body["source"] == "cost_snapshots"
        assert body["usage"]["s3"]["storage_gb"] > 0 and body["usage"]["lambda"]["requests"] > 0
        # acme has no snapshot row: still estimated, and globex's usage is not in it
        acme = c.get("/api/v1/costs/estimate?free_tier=none", headers={"X-API-Key": keys.acme}).json()
        assert acme["source"] == "estimated_from_database"
        assert acme["usage"]["s3"]["storage_gb"] < 1
        fc = c.get(
            "/api/v1/costs/forecast?free_tier=legacy_12_month", headers={"X-API-Key": keys.globex}
        ).json()
        assert fc["source"] == "cost_snapshots" and fc["history_days"] == len(days)
        # 200 GB more stored each day, PUTs growing by 100 a day: both trends go on
        assert fc["trend_per_day"]["s3.put_requests"] == pytest.approx(100)
        assert fc["trend_per_day"]["s3.storage_gb"] == pytest.approx(200, rel=1e-6)
        assert Decimal(fc["interval_80_usd"]["low"]) <= Decimal(fc["mean_usd"])
        assert Decimal(fc["mean_usd"]) <= Decimal(fc["interval_80_usd"]["high"])
        assert Decimal(fc["mean_usd"]) > 100  # over a terabyte stored at $0.023 per GB-month
    finally:
        with connect(url) as conn:
            conn.execute("DELETE FROM cost_snapshots")
            conn.commit()


def test_forecast_has_a_mean_inside_an_80_percent_interval(api: tuple[TestClient, Keys, str]) -> None:
    c, keys, _ = api
    body = c.get("/api/v1/costs/forecast?free_tier=none", headers={"X-API-Key": keys.admin}).json()
    low, mean, high = (
        Decimal(x)
        for x in (body["interval_80_usd"]["low"], body["mean_usd"], body["interval_80_usd"]["high"])
    )
    assert low <= mean <= high
    assert body["point_usage"]["s3"]["storage_gb"] > 0  # storage accumulates
    assert any("only 3 days" in n or "only 4 days" in n for n in body["notes"])
    assert Decimal(body["point_usd"]) == Decimal(body["point_quote"]["total_usd"])
    assert body["interval"] == "80%" and "least-squares" in body["method"].lower()
    assert body["replicates"] == 400 and body["history_days"] >= 3
    assert body["period"]["start"] > NOW.date().isoformat() and body["month"] == body["period"]["start"][:7]


def test_a_forecast_is_computed_once_per_cache_period_even_when_asked_at_once(
    api: tuple[TestClient, Keys, str],
) -> None:
    c, keys, _ = api
    cache = c.app.state.cost_cache  # type: ignore[attr-defined]
    before = cache.computations
    path = "/api/v1/costs/forecast?region=eu-west-1"
    with ThreadPoolExecutor(4) as pool:
        bodies = list(pool.map(lambda _: c.get(path, headers={"X-API-Key": keys.globex}).json(), range(4)))
    again = c.get(path, headers={"X-API-Key": keys.globex}).json()
    assert cache.computations == before + 1
    assert len({b["computed_at"] for b in [*bodies, again]}) == 1
    acme = c.get(path, headers={"X-API-Key": keys.acme}).json()  # another tenant: its own forecast
    assert cache.computations == before + 2 and acme["point_usage"] != again["point_usage"]


def test_what_if_scales_with_traffic(api: tuple[TestClient, Keys, str]) -> None:
    c, keys, _ = api
    h = {"X-API-Key": keys.acme}
    base = c.get("/api/v1/costs/what-if?free_tier=none", headers=h).json()
    assert base["volume_multiplier"] == 1 and base["delta_usd"] == "0.00"
    double = c.get("/api/v1/costs/what-if?free_tier=none&traffic_multiplier=2", headers=h).json()
    assert double["multiplier"] == "2"

    def quantities(quote: dict[str, Any]) -> dict[tuple[str, str], Decimal]:
        return {(li["service"], li["item"]): Decimal(li["quantity"]) for li in quote["line_items"]}

    before, after = quantities(double["baseline"]), quantities(double["scenario"])
    # without free tier and within the first tier, every line is linear in its quantity
    for line in [
        ("s3", "put_copy_post_list_requests"),
        ("s3", "get_select_requests"),
        ("lambda", "requests"),
    ]:
        assert before[line] > 0 and after[line] == 2 * before[line]
    assert Decimal(double["scenario_total_usd"]) == Decimal(double["baseline_total_usd"]) + Decimal(
        double["delta_usd"]
    )
    assert Decimal(double["baseline"]["total_usd"]) == Decimal(base["baseline_total_usd"])
    mixed = c.get(
        "/api/v1/costs/what-if?service_multipliers=svc-a:3&service_multipliers=svc-b:0,only-acme:1", headers=h
    ).json()
    assert mixed["service_multipliers"] == {"svc-a": 3, "svc-b": 0, "only-acme": 1}
    assert mixed["volume_multiplier"] == pytest.approx((3 + 0 + 1) / 3)  # equal shares of the logs
    bad = c.get("/api/v1/costs/what-if?service_multipliers=svc-a", headers=h)
    assert bad.status_code == 422 and "svc-a" in bad.json()["detail"]
    unknown = c.get("/api/v1/costs/what-if?service_multipliers=only-globex:2", headers=h)
    assert unknown.status_code == 422 and "only-globex: unknown service" in unknown.json()["detail"]


def test_price_a_usage_document(api: tuple[TestClient, Keys, str]) -> None:
    c, keys, _ = api
    h = {"X-API-Key": keys.acme}
    doc = {"lambda": {"requests": 3_000_000, "duration_ms": 120, "memory_mb": 1536, "architecture": "x86_64"}}
    body = c.post("/api/v1/costs/price", headers=h, json=doc).json()
    assert body["total_usd"] == "2.73"  # AWS's Lambda pricing page example: $2.33 + $0.40
    bad = c.post("/api/v1/costs/price", headers=h, json={"s3": {"storage_gb": -1}})
    assert bad.status_code == 422 and bad.json()["path"] == "s3.storage_gb"
    assert c.post("/api/v1/costs/price", headers=h, json=[1, 2]).status_code == 422
    assert c.post("/api/v1/costs/price", headers=h, content=b"{").status_code == 422


@pytest.mark.parametrize(
    "indexed_at",
    [timedelta(hours=3), timedelta(minutes=23)],  # all hours closed; or the open hour's first 20 minutes
    ids=["closed-hours", "open-hour-prefix"],
)
def test_todays_hour_indexes_answer_the_same_pages(
    api: tuple[TestClient, Keys, str], indexed_at: timedelta
) -> None:
    c, keys, url = api
    since = (NOW - timedelta(days=2)).isoformat().replace("+00:00", "Z")
    until = (NOW + timedelta(hours=3)).isoformat().replace("+00:00", "Z")
    paths = [
        f"/api/v1/logs/search?q=timeout&limit=7&from={since}&to={until}",
        f"/api/v1/logs/search?q=handled&service=svc-b&limit=50&from={since}&to={until}",
    ]
    parsed = [_pages(c, keys.acme, p) for p in paths]
    with connect(url, autocommit=True) as conn:
        built = index_closed_hours(conn, NOW + indexed_at)
        try:
            assert built
            if indexed_at < timedelta(hours=1):
                assert built[-1] == f"logs_p{NOW:%Y%m%d}_search_h{NOW:%H}_m20"
            with client(url) as indexed:  # a new app: it sees the new indexes at once
                assert [_pages(indexed, keys.acme, p) for p in paths] == parsed
                assert all(parsed)
        finally:
            for name in built:
                conn.execute(f'DROP INDEX "{name}"')


def test_the_substring_shortcut_on_unindexed_lines_finds_what_to_tsvector_finds(
    api: tuple[TestClient, Keys, str],
) -> None:
    """Today's lines are parsed after a cheap substring test per word: upper case, non-ASCII
    letters that lower() of the C collation leaves alone, LIKE's wildcards and words only inside
    longer tokens must give the same lines as to_tsvector alone."""
    c, keys, url = api
    at = NOW + timedelta(minutes=50)
    messages = [
        "ZQX-Timeout in PAYMENT_gw",  # upper case, hyphenated token
        "\u212aelvin zqx probe",  # KELVIN SIGN: the locale lowers it to 'k', lower() of "C" does not
        "ÉCOLE zqx 50%_off",  # non-ASCII upper case; LIKE wildcards in the text
        "zqxtimeout glued",  # 'zqx' only inside a longer word: a substring, not a lexeme
    ]
    with connect(url) as conn:
        for i, m in enumerate(messages):
            conn.execute(
                'INSERT INTO logs ("timestamp", tenant, service, host, level, message, kafka_topic, '
                "kafka_partition, kafka_offset) "
                "VALUES (%s, 'acme', 'svc-sub', 'h', 'INFO', %s, 'sub', 0, %s)",
                (at + timedelta(seconds=i), m, i),
            )
        conn.commit()
    until = (NOW + timedelta(hours=3)).isoformat().replace("+00:00", "Z")
    try:
        for q, expected in [
            ("zqx", {0, 1, 2}),
            ("ZQX timeout", {0}),
            ("kelvin", {1}),
            ("école", {2}),
            ("50 off", {2}),
            ('"zqx timeout"', {0}),
            ("payment_gw", {0}),
            ("zqx -probe", {0, 2}),
            ("kelvin or école", {1, 2}),
        ]:
            rows = _pages(c, keys.acme, f"/api/v1/logs/search?q={q}&service=svc-sub&to={until}&limit=2")
            with connect(url) as conn:
                truth = {
                    messages.index(r[0])
                    for r in conn.execute(
                        "SELECT message FROM logs WHERE kafka_topic = 'sub' "
                        "AND to_tsvector('simple', message) @@ websearch_to_tsquery('simple', %s)",
                        (q,),
                    )
                }
            assert {messages.index(r["message"]) for r in rows} == truth == expected, q
    finally:
        with connect(url) as conn:
            conn.execute("DELETE FROM logs WHERE kafka_topic = 'sub'")
            conn.commit()
