"""The API's defences, against the real app and database: key rotation with an overlap, request
size limits, CORS, per-key rate limits, and hostile values in every parameter of every endpoint
(taken from the app's own OpenAPI schema, so a new parameter is covered without editing this)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from loganalyzer.db.connection import connect
from serving.keys import key_id_of, rotate_key
from tests.integration.api_harness import Keys, client, make_keys, seed

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

SQL_INJECTION = [
    "' OR '1'='1",
    "1; DROP TABLE logs; --",
    "acme' UNION SELECT encode(key_sha256, 'hex'), tenant FROM api_keys --",
    "globex",
    "%' OR tenant LIKE '%",
    "a\x00b",
    "-1",
    "99999999999999999999999",
]
PATH_TRAVERSAL = ["../../../../etc/passwd", "..%2F..%2F..%2Fetc%2Fpasswd", "/etc/passwd", "..\\..\\windows"]
OVERSIZED = ["x" * 20_000]  # past the URL limit (8 KiB); httpx itself refuses 64 KiB
PAYLOADS = SQL_INJECTION + PATH_TRAVERSAL + OVERSIZED
#: valid values for required parameters, so that each request differs from a working one in the
#: fuzzed parameter only
BASELINE = {"service": "svc-a", "q": "timeout", "anomaly_id": "acme-an-001"}


@pytest.fixture
def seeded(database_url: str) -> Keys:
    seed(database_url, hours=3, earlier_days=3)
    return make_keys(database_url)


def table_checksums(url: str) -> dict[str, str]:
    """md5 of every row of every table of the schema (partitions included), in a stable order."""
    with connect(url) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1"
            )
        ]
        return {
            t: str(
                conn.execute(
                    f"SELECT md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) FROM \"{t}\" x"
                ).fetchone()
            )
            for t in tables
        }


def _resolve(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = doc
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, list[dict[str, Any]], list[str]]]:
    """(method, path, parameters, JSON body property names) of every operation in the schema."""
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            body_props: list[str] = []
            content = op.get("requestBody", {}).get("content", {}).get("application/json")
            if content:
                schema = _resolve(content["schema"], doc)
                for option in schema.get("anyOf", [schema]):
                    body_props += list(_resolve(option, doc).get("properties", {}))
            yield method.upper(), path, op.get("parameters", []), body_props


def _request(
    http: TestClient,
    key: str,
    method: str,
    path: str,
    params: list[dict[str, Any]],
    override: tuple[str, str, str] | None,
    body: dict[str, Any] | None,
) -> Any:
    path_values = {p["name"]: BASELINE.get(p["name"], "x") for p in params if p["in"] == "path"}
    query = {p["name"]: BASELINE[p["name"]] for p in params if p["in"] == "query" and p["name"] in BASELINE}
    query = {k: v for k, v in query.items() if any(p["name"] == k and p.get("required") for p in params)}
    if override is not None:
        where, name, value = override
        if where == "path":
            path_values[name] = value
        else:
            query[name] = value
    url = path
    for name, value in path_values.items():
        url = url.replace("{" + name + "}", quote(value, safe=""))
    return http.request(method, url, params=query, json=body, headers={"X-API-Key": key})


def test_hostile_values_in_every_parameter_of_every_endpoint(database_url: str, seeded: Keys) -> None:
    """No 500; a 4xx or a normal 200 that shows nothing of another tenant; the database unchanged.
    The calls use tenant acme's key; every globex row carries the word 'globex'. The anomaly
    actions get the other tenant's anomaly as their target, so that a body that passes
    validation must still change nothing (the action on one's own anomaly is tested below)."""
    before = table_checksums(database_url)
    tried: list[tuple[str, str, str, int]] = []
    with client(database_url, rate_limit_per_second=0) as http:
        doc = http.get("/openapi.json").json()
        ops = list(operations(doc))
        assert len(ops) >= 10, ops  # the schema was read: every route, not a handful
        for method, path, params, body_props in ops:
            is_action = method == "POST" and "{anomaly_id}" in path
            for p in params:
                if p["in"] not in {"path", "query"}:
                    continue
                for payload in PAYLOADS:
                    r = _request(http, seeded.acme, method, path, params, (p["in"], p["name"], payload), None)
                    tried.append((method, path, p["name"], r.status_code))
                    _check(r, method, path, p["name"], payload)
            for prop in body_props:
                for payload in PAYLOADS:
                    target = [{"in": "path", "name": "anomaly_id"}] if is_action else []
                    r = _request(
                        http,
                        seeded.acme,
                        method,
                        path,
                        params,
                        ("path", "anomaly_id", "globex-an-001") if target else None,
                        {prop: payload},
                    )
                    tried.append((method, path, f"body.{prop}", r.status_code))
                    _check(r, method, path, f"body.{prop}", payload)
                # a whole body over the limit
                r = http.request(
                    method,
                    path.replace("{anomaly_id}", "globex-an-001"),
                    json={prop: "y" * 2_000_000},
                    headers={"X-API-Key": seeded.acme},
                )
                assert r.status_code == 413, (method, path, r.status_code)
    assert table_checksums(database_url) == before
    fuzzed = {(m, p, n) for m, p, n, _ in tried}
    # every parameter of the schema was reached, and more than one status was seen (not all 401)
    assert len(fuzzed) >= 15, sorted(fuzzed)
    assert {s for *_, s in tried} - {401, 403} != set()


def _check(r: Any, method: str, path: str, name: str, payload: str) -> None:
    where = f"{method} {path} {name}={payload[:40]!r}"
    assert r.status_code < 500, f"{where}: {r.status_code} {r.text[:300]}"
    assert 400 <= r.status_code < 500 or r.status_code == 200, f"{where}: {r.status_code}"
    if r.status_code == 200 and payload != "globex":
        assert "globex" not in r.text, f"{where}: another tenant's data in {r.text[:300]}"
    if r.status_code == 200:
        assert "key_sha256" not in r.text and "passwd" not in r.text.replace(payload, ""), where


def test_an_injection_string_in_a_note_is_stored_as_text(database_url: str, seeded: Keys) -> None:
    note = "'); DELETE FROM anomalies; --"
    with client(database_url) as http:
        r = http.post(
            "/api/v1/anomalies/acme-an-001/acknowledge",
            json={"note": note},
            headers={"X-API-Key": seeded.acme},
        )
    assert r.status_code == 200, r.text
    with connect(database_url) as conn:
        assert conn.execute("SELECT note FROM anomaly_feedback").fetchall() == [(note,)]
        assert conn.execute("SELECT count(*) FROM anomalies").fetchone() == (60,)


def test_a_rotated_key_and_its_successor_both_work_until_the_grace_period_ends(
    database_url: str, seeded: Keys
) -> None:
    old_id = key_id_of(seeded.acme)
    assert old_id is not None
    with connect(database_url) as conn:
        rotated = rotate_key(conn, old_id, grace_seconds=3.0)
    assert rotated is not None and rotated.tenant == "acme"
    with client(database_url) as http:
        for key in (seeded.acme, rotated.new.secret_key):  # the overlap
            r = http.get("/api/v1/anomalies?limit=1", headers={"X-API-Key": key})
            assert r.status_code == 200, r.text
            assert r.json()["data"][0]["tenant"] == "acme"
        time.sleep(3.5)
        assert http.get("/api/v1/anomalies", headers={"X-API-Key": seeded.acme}).status_code == 401
        assert http.get("/api/v1/anomalies", headers={"X-API-Key": rotated.new.secret_key}).status_code == 200
    with connect(database_url) as conn:
        assert rotate_key(conn, old_id, 60) is None  # an expired key cannot be rotated again


def test_keys_rotate_cli_prints_the_successor_once(database_url: str, seeded: Keys) -> None:
    old_id = key_id_of(seeded.globex)
    env = {"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "loganalyzer", "keys", "rotate", str(old_id), "--grace-hours", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    new_key = done.stdout.strip()
    assert key_id_of(new_key) is not None
    assert f"key {old_id} expires at" in done.stderr
    with connect(database_url) as conn:
        row = conn.execute(
            "SELECT replaced_by, expires_at - now() BETWEEN interval '59 minutes' AND interval '1 hour' "
            "FROM api_keys WHERE id = %s",
            (old_id,),
        ).fetchone()
    assert row == (key_id_of(new_key), True)
    listed = subprocess.run(
        [sys.executable, "-m", "loganalyzer", "keys", "list"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert "expires " in listed.stdout and new_key not in listed.stdout


def test_request_size_limits_answer_413_414_431_with_a_reason(database_url: str, seeded: Keys) -> None:
    headers = {"X-API-Key": seeded.acme}
    with client(database_url, max_body_bytes=4096, max_url_bytes=512, max_header_bytes=2048) as http:
        r = http.post("/api/v1/costs/price", content=b"{" + b" " * 5000 + b"}", headers=headers)
        assert r.status_code == 413 and "at most 4096" in r.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            for _ in range(10):
                yield b" " * 1000

        r = http.post("/api/v1/costs/price", content=chunks(), headers=headers)
        assert r.status_code == 413 and "more than 4096" in r.json()["detail"]
        r = http.get("/api/v1/logs/search", params={"q": "a" * 600}, headers=headers)
        assert r.status_code == 414 and "at most 512" in r.json()["detail"]
        r = http.get("/api/v1/anomalies", headers={**headers, "X-Padding": "p" * 3000})
        assert r.status_code == 431 and "at most 2048" in r.json()["detail"]
        assert http.get("/api/v1/anomalies?limit=1", headers=headers).status_code == 200


def test_cors_is_closed_unless_origins_are_configured(database_url: str, seeded: Keys) -> None:
    preflight = {
        "Origin": "https://evil.example",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "X-API-Key",
    }
    with client(database_url) as http:
        r = http.options("/api/v1/anomalies", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
        r = http.get(
            "/api/v1/anomalies", headers={"Origin": "https://evil.example", "X-API-Key": seeded.acme}
        )
        assert "access-control-allow-origin" not in r.headers
    with client(database_url, cors_origins="https://grafana.example.com") as http:
        ok = http.options("/api/v1/anomalies", headers={**preflight, "Origin": "https://grafana.example.com"})
        assert ok.headers.get("access-control-allow-origin") == "https://grafana.example.com"
        bad = http.options("/api/v1/anomalies", headers=preflight)
        assert "access-control-allow-origin" not in bad.headers


def test_each_key_has_its_own_rate_limit_and_429_says_when_to_retry(database_url: str, seeded: Keys) -> None:
    with client(database_url, rate_limit_per_second=1, rate_limit_burst=5) as http:
        codes = [
            http.get("/api/v1/anomalies?limit=1", headers={"X-API-Key": seeded.acme}).status_code
            for _ in range(8)
        ]
        assert codes[:5] == [200] * 5 and 429 in codes[5:], codes
        r = http.get("/api/v1/anomalies?limit=1", headers={"X-API-Key": seeded.acme})
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) >= 1 and "retry in" in r.json()["detail"]
        # another key is not slowed by acme's burst; health is not limited
        assert http.get("/api/v1/anomalies?limit=1", headers={"X-API-Key": seeded.globex}).status_code == 200
        assert http.get("/health").status_code in (200, 503)
        time.sleep(1.2)
        assert http.get("/api/v1/anomalies?limit=1", headers={"X-API-Key": seeded.acme}).status_code == 200
