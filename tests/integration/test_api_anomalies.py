"""Anomalies through the API: filters, keyset pages under inserts, explanation, operator feedback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from loganalyzer.db.connection import connect
from tests.integration.api_harness import INSERT_ANOMALY, NOW, Keys, client, make_keys, seed
from tests.support import fresh_database

pytestmark = pytest.mark.integration


@pytest.fixture
def api() -> Iterator[tuple[TestClient, Keys, str]]:
    with fresh_database() as url:
        seed(url)
        keys = make_keys(url)
        with client(url) as c:
            yield c, keys, url


def _get(c: TestClient, key: str, path: str) -> Any:
    r = c.get(path, headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    return r.json()


def _insert_anomaly(url: str, anomaly_id: str, start: datetime, template: str | None = "t <*>") -> None:
    with connect(url) as conn:
        conn.execute(
            INSERT_ANOMALY,
            (
                anomaly_id,
                "acme",
                "svc-a",
                "log_volume_spike",
                "high",
                "open",
                start,
                start,
                1.0,
                5.0,
                "x",
                template,
                None,
            ),
        )
        conn.commit()


def test_keyset_pages_are_stable_while_anomalies_are_inserted(api: tuple[TestClient, Keys, str]) -> None:
    c, keys, url = api
    everything = [a["id"] for a in _get(c, keys.acme, "/api/v1/anomalies?limit=500")["data"]]
    assert len(everything) == 30
    first = _get(c, keys.acme, "/api/v1/anomalies?limit=7")
    seen = [a["id"] for a in first["data"]]
    _insert_anomaly(url, "acme-newest", NOW + timedelta(hours=1))  # lands before the cursor: not repeated
    cursor = first["next_cursor"]
    while cursor:
        page = _get(c, keys.acme, f"/api/v1/anomalies?limit=7&cursor={cursor}")
        seen += [a["id"] for a in page["data"]]
        cursor = page["next_cursor"]
    assert seen == everything  # nothing repeated, nothing skipped, same order
    windows = [a["window_start"] for a in _get(c, keys.acme, "/api/v1/anomalies?limit=500")["data"]]
    assert windows == sorted(windows, reverse=True)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("service=svc-a", 10),
        ("type=new_error_pattern", 10),
        ("severity=critical", 7),
        ("status=resolved", 4),
        ("status=open", 26),
        ("service=svc-a&severity=low", 3),
        (f"from={(NOW - timedelta(minutes=45)).isoformat().replace('+00:00', 'Z')}", 5),
        (f"to={(NOW - timedelta(minutes=240)).isoformat().replace('+00:00', 'Z')}", 5),
    ],
)
def test_filters(api: tuple[TestClient, Keys, str], query: str, expected: int) -> None:
    c, keys, _ = api
    assert len(_get(c, keys.acme, f"/api/v1/anomalies?limit=500&{query}")["data"]) == expected


def test_an_anomaly_explains_itself_with_sample_lines(api: tuple[TestClient, Keys, str]) -> None:
    c, keys, _ = api
    body = _get(c, keys.acme, "/api/v1/anomalies/acme-an-003")
    ex = body["explanation"]
    assert (ex["expected_value"], ex["actual_value"], ex["ratio"]) == (0.02, 0.2, 10.0)
    assert ex["window_start"] == body["window_start"] and ex["pattern_template"]
    samples = ex["sample_logs"]
    assert 0 < len(samples) <= 10
    assert samples[0]["level"] == "ERROR"  # problems first
    start, end = datetime.fromisoformat(body["window_start"]), datetime.fromisoformat(body["window_end"])
    assert all(start <= datetime.fromisoformat(s["timestamp"]) <= end for s in samples)
    assert body["feedback"] == []


def test_acknowledge_and_resolve_are_recorded_with_who_and_when(api: tuple[TestClient, Keys, str]) -> None:
    c, keys, url = api
    h = {"X-API-Key": keys.acme}
    r = c.post("/api/v1/anomalies/acme-an-001/acknowledge", headers=h, json={"note": "on it"})
    assert r.status_code == 200, r.text
    assert r.json()["anomaly"]["status"] == "acknowledged"
    assert (
        c.post("/api/v1/anomalies/acme-an-001/resolve", headers=h).json()["anomaly"]["status"] == "resolved"
    )
    key_id = keys.acme.split("_")[1]
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT action, key_id, note, tenant FROM anomaly_feedback "
            "WHERE anomaly_id = 'acme-an-001' ORDER BY id"
        ).fetchall()
    assert rows == [("acknowledge", key_id, "on it", "acme"), ("resolve", key_id, "", "acme")]
    detail = _get(c, keys.acme, "/api/v1/anomalies/acme-an-001")
    assert [f["action"] for f in detail["feedback"]] == ["resolve", "acknowledge"]
    assert "acme-an-001" in [a["id"] for a in _get(c, keys.acme, "/api/v1/anomalies?status=resolved")["data"]]


def test_a_pattern_suppression_is_listed_for_the_consumer(api: tuple[TestClient, Keys, str]) -> None:
    c, keys, url = api
    h = {"X-API-Key": keys.acme}
    r = c.post(
        "/api/v1/anomalies/acme-an-002/suppress", headers=h, json={"scope": "pattern", "duration_minutes": 90}
    )
    assert r.status_code == 200, r.text
    until = datetime.fromisoformat(r.json()["feedback"]["until"])
    assert timedelta(minutes=89) < until - datetime.now(UTC) <= timedelta(minutes=90)
    with connect(url) as conn:
        rows = conn.execute("SELECT tenant, service, pattern_template FROM suppressions").fetchall()
    assert rows == [("acme", "only-acme", "acme request <*> timeout after <*> ms")]
    assert [a["id"] for a in _get(c, keys.acme, "/api/v1/anomalies?status=suppressed")["data"]] == [
        "acme-an-002"
    ]
    patterns = _get(c, keys.acme, "/api/v1/patterns?service=only-acme")["data"]
    assert patterns[0]["suppressed"] is True and patterns[0]["suppressed_until"] is not None
    # for good: no end
    forever = c.post("/api/v1/anomalies/acme-an-005/suppress", headers=h, json={"note": "noise"})
    assert forever.json()["feedback"]["until"] is None and forever.json()["anomaly"]["status"] == "suppressed"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"duration_minutes": 5, "until": "2099-01-01T00:00:00Z"}, "not both"),
        ({"until": "2001-01-01T00:00:00Z"}, "in the past"),
        ({"until": "2099-01-01T00:00:00"}, "UTC offset"),
        ({"duration_minutes": 0}, "duration_minutes"),
        ({"scope": "everything"}, "scope"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_suppressions_are_422_naming_the_problem(
    api: tuple[TestClient, Keys, str], body: dict[str, Any], message: str
) -> None:
    c, keys, _ = api
    r = c.post("/api/v1/anomalies/acme-an-002/suppress", headers={"X-API-Key": keys.acme}, json=body)
    assert r.status_code == 422
    assert message in r.json()["detail"]


def test_suppressing_the_pattern_of_an_anomaly_without_one_is_422(api: tuple[TestClient, Keys, str]) -> None:
    c, keys, url = api
    _insert_anomaly(url, "acme-no-template", NOW, template=None)
    r = c.post(
        "/api/v1/anomalies/acme-no-template/suppress",
        headers={"X-API-Key": keys.acme},
        json={"scope": "pattern"},
    )
    assert r.status_code == 422 and "no pattern template" in r.json()["detail"]


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/api/v1/anomalies/nope", 404, "no anomaly"),
        ("/api/v1/anomalies?cursor=garbage", 422, "cursor"),
        ("/api/v1/anomalies?cursor=WyJ4Il0", 422, "cursor"),  # valid base64 JSON, wrong shape
        ("/api/v1/anomalies?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", 422, "before"),
        ("/api/v1/anomalies?severity=huge", 422, "severity"),
        ("/api/v1/anomalies?limit=0", 422, "limit"),
        ("/api/v1/anomalies?service=a%00b", 422, "invalid value"),
        ("/api/v1/metrics/hourly?from=yesterday", 422, "from"),
    ],
)
def test_bad_input_is_a_clear_4xx(
    api: tuple[TestClient, Keys, str], path: str, status: int, message: str
) -> None:
    c, keys, _ = api
    r = c.get(path, headers={"X-API-Key": keys.admin})
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]


def test_hourly_metrics_pages_and_filters(api: tuple[TestClient, Keys, str]) -> None:
    c, keys, _ = api
    rows: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = _get(c, keys.acme, f"/api/v1/metrics/hourly?limit=4{cursor}")
        rows += page["data"]
        if not page["next_cursor"]:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert len(rows) == 18 and len({(r["service"], r["hour"]) for r in rows}) == 18
    assert [r["hour"] for r in rows] == sorted((r["hour"] for r in rows), reverse=True)
    svc = _get(c, keys.acme, "/api/v1/metrics/hourly?service=svc-a")["data"]
    assert len(svc) == 6 and svc[0]["error_rate"] == pytest.approx(0.2)


def test_health_is_503_when_the_database_is_down() -> None:
    from loganalyzer.platform.processes import free_port

    with client(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing") as c:
        r = c.get("/health")
        assert r.status_code == 503
        assert r.json()["database"]["state"] == "down"
        r = c.get("/api/v1/anomalies", headers={"X-API-Key": "la_abcdefgh_" + "x" * 40})
        assert r.status_code == 503 and "database unavailable" in r.json()["detail"]


def test_health_reports_each_part(api: tuple[TestClient, Keys, str]) -> None:
    c, _, _ = api
    body = c.get("/health").json()
    assert body["database"]["state"] == "ok"
    assert body["consumer"]["data"]["records_stored"] == 2 * 7 * 40
    assert body["broker"]["state"] == body["model"]["state"] == "not_configured"


def test_list_pages_are_cached_briefly_and_feedback_clears_them(api: tuple[TestClient, Keys, str]) -> None:
    _, keys, url = api
    with client(url, page_cache_seconds=600) as c:
        first = _get(c, keys.acme, "/api/v1/anomalies?limit=500")["data"]
        _insert_anomaly(url, "acme-later", NOW + timedelta(hours=2))
        assert _get(c, keys.acme, "/api/v1/anomalies?limit=500")["data"] == first  # served from the cache
        c.post("/api/v1/anomalies/acme-an-001/acknowledge", headers={"X-API-Key": keys.acme})
        fresh = _get(c, keys.acme, "/api/v1/anomalies?limit=500")["data"]
        assert fresh[0]["id"] == "acme-later"
        assert next(a for a in fresh if a["id"] == "acme-an-001")["status"] == "acknowledged"


def test_repeated_pages_are_answered_before_routing_for_the_same_scope_only(
    api: tuple[TestClient, Keys, str],
) -> None:
    _, keys, url = api
    with client(url, page_cache_seconds=600, key_cache_seconds=600) as c:
        pages = c.app.state.page_cache  # type: ignore[attr-defined]
        path = "/api/v1/anomalies?limit=500"
        acme = _get(c, keys.acme, path)
        assert pages.front_hits == 0
        assert _get(c, keys.acme, path) == acme
        assert pages.front_hits == 1  # the second identical request never reached the route
        globex = _get(c, keys.globex, path)  # same URL, another tenant: its own page
        assert pages.front_hits == 1
        assert {a["tenant"] for a in globex["data"]} == {"globex"}
        assert {a["tenant"] for a in acme["data"]} == {"acme"}
        # an unknown key never gets a cached page, even for a URL that has one
        r = c.get(path, headers={"X-API-Key": keys.acme[:-4] + "xxxx"})
        assert r.status_code == 401 and pages.front_hits == 1
        # another query string is another page
        assert len(_get(c, keys.acme, path + "&severity=high")["data"]) < len(acme["data"])
        assert pages.front_hits == 1


@pytest.mark.parametrize("where", ["today", "closed_day", "across_midnight"])
def test_sample_lines_are_the_windows_first_whether_or_not_its_first_minute_holds_enough(
    api: tuple[TestClient, Keys, str], where: str
) -> None:
    """The samples are the window's first lines, problems first, however they are read: today's
    partition (no service/time index: the first minute first, the rest of the window only when
    that minute holds too few), a closed day with its index (one range scan), and a window across
    midnight (both days through `logs`)."""
    c, keys, url = api
    start = {
        "today": datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30),
        "closed_day": datetime(2026, 3, 10, 10, 0, tzinfo=UTC),
        "across_midnight": datetime(2026, 3, 11, 23, 55, tzinfo=UTC),
    }[where]
    offsets = {  # seconds after the window start -> level; the window is 10 minutes
        "sparse": [
            (5, "INFO"),
            (20, "INFO"),
            (50, "ERROR"),
            (90, "INFO"),
            *[(120 + 20 * k, "INFO") for k in range(12)],
        ],
        "dense": [(2 * k, "INFO") for k in range(25)] + [(59, "WARN"), (400, "ERROR")],
    }
    with connect(url) as conn:
        if where != "today":
            for day in {start.date(), (start + timedelta(minutes=10)).date()}:
                conn.execute("SELECT ensure_log_partition(%s)", (day,))
        for n, (service, lines) in enumerate(offsets.items()):
            conn.execute(
                INSERT_ANOMALY,
                (
                    f"acme-slice-{where}-{service}",
                    "acme",
                    f"svc-{where}-{service}",
                    "log_volume_spike",
                    "high",
                    "open",
                    start,
                    start + timedelta(minutes=10),
                    1.0,
                    5.0,
                    "x",
                    None,
                    None,
                ),
            )
            for k, (s, level) in enumerate(lines):
                conn.execute(
                    'INSERT INTO logs ("timestamp", tenant, service, host, level, message, kafka_topic, '
                    "kafka_partition, kafka_offset) VALUES (%s, 'acme', %s, 'h', %s, %s, 'slice', %s, %s)",
                    (start + timedelta(seconds=s), f"svc-{where}-{service}", level, f"line {s}", n, k),
                )
        if where != "today":  # as maintenance leaves a closed day: its service/time index built
            conn.execute("SELECT index_closed_log_partitions(%s)", (date(2026, 3, 13),)).fetchall()
        conn.commit()
    if where == "closed_day":
        with connect(url) as conn:
            assert conn.execute("SELECT to_regclass('logs_p20260310_service_time_idx')").fetchone() != (None,)
    for service, lines in offsets.items():
        path = f"/api/v1/anomalies/acme-slice-{where}-{service}"
        samples = _get(c, keys.acme, path)["explanation"]["sample_logs"]
        problems = sorted(s for s, level in lines if level != "INFO")
        others = sorted(s for s, level in lines if level == "INFO")
        expected = [f"line {s}" for s in (problems + others)[:10]]
        assert [s["message"] for s in samples] == expected, service
