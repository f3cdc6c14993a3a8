"""Tenant isolation through every endpoint: a tenant key never sees or changes another tenant's
anomalies, logs, metrics, patterns or costs; an admin key sees all and may filter by tenant."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from loganalyzer.db.connection import connect
from tests.integration.api_harness import NOW, Keys, client, make_keys, seed
from tests.support import fresh_database

pytestmark = pytest.mark.integration

#: past the newest seeded line (the seed writes up to NOW + 39 minutes; `to` defaults to now)
LATER = (NOW + timedelta(hours=3)).isoformat().replace("+00:00", "Z")
LISTS = [
    "/api/v1/anomalies?limit=500",
    "/api/v1/metrics/hourly?limit=1000",
    f"/api/v1/logs/search?limit=200&to={LATER}",
    f"/api/v1/logs/search?q=timeout&limit=200&to={LATER}",
    "/api/v1/patterns?limit=500",
]
COSTS = ["/api/v1/costs/estimate", "/api/v1/costs/forecast", "/api/v1/costs/what-if?traffic_multiplier=2"]
ACTIONS = ["acknowledge", "resolve", "suppress"]


@pytest.fixture(scope="module")
def api() -> Iterator[tuple[TestClient, Keys, str]]:
    with fresh_database() as url:
        seed(url)
        keys = make_keys(url)
        # caches on and long: a page cached for one tenant must never be served to another
        with client(url, page_cache_seconds=600, key_cache_seconds=600) as c:
            yield c, keys, url


def _all_rows(c: TestClient, path: str, key: str) -> list[dict[str, Any]]:
    """Every row of a list, following next_cursor to the end."""
    rows: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        sep = "&" if "?" in path else "?"
        r = c.get(path + (f"{sep}cursor={cursor}" if cursor else ""), headers={"X-API-Key": key})
        assert r.status_code == 200, r.text
        body = r.json()
        rows += body["data"]
        cursor = body["next_cursor"]
        if cursor is None:
            return rows
    raise AssertionError("pagination did not end")


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("tenant", ["acme", "globex"])
def test_a_tenant_key_lists_only_its_own_rows(
    api: tuple[TestClient, Keys, str], path: str, tenant: str
) -> None:
    c, keys, _ = api
    rows = _all_rows(c, path, keys.of(tenant))
    assert rows, f"{path} returned nothing for {tenant}"
    assert {r["tenant"] for r in rows} == {tenant}
    assert all(f"only-{'globex' if tenant == 'acme' else 'acme'}" != r["service"] for r in rows)


@pytest.mark.parametrize("path", LISTS)
def test_an_admin_key_sees_every_tenant_and_can_filter(api: tuple[TestClient, Keys, str], path: str) -> None:
    c, keys, _ = api
    everything = _all_rows(c, path, keys.admin)
    assert {r["tenant"] for r in everything} == {"acme", "globex"}
    only = _all_rows(c, path + "&tenant=globex", keys.admin)
    assert {r["tenant"] for r in only} == {"globex"}
    assert len(only) == len([r for r in everything if r["tenant"] == "globex"])


@pytest.mark.parametrize("path", LISTS + COSTS)
def test_a_tenant_key_asking_for_another_tenant_is_refused(
    api: tuple[TestClient, Keys, str], path: str
) -> None:
    c, keys, _ = api
    sep = "&" if "?" in path else "?"
    r = c.get(f"{path}{sep}tenant=globex", headers={"X-API-Key": keys.acme})
    assert r.status_code == 403
    assert "acme" in r.json()["detail"] and "globex" in r.json()["detail"]
    assert c.get(f"{path}{sep}tenant=acme", headers={"X-API-Key": keys.acme}).status_code == 200


@pytest.mark.parametrize("path", LISTS + COSTS + ["/api/v1/anomalies/acme-an-000"])
def test_no_key_or_a_wrong_key_is_401(api: tuple[TestClient, Keys, str], path: str) -> None:
    c, keys, _ = api
    assert c.get(path).status_code == 401
    forged = keys.acme[:-4] + ("AAAA" if not keys.acme.endswith("AAAA") else "BBBB")
    assert c.get(path, headers={"X-API-Key": forged}).status_code == 401
    assert c.get(path, headers={"X-API-Key": "not-a-key"}).status_code == 401


def test_another_tenants_anomaly_is_404_to_read(api: tuple[TestClient, Keys, str]) -> None:
    c, keys, _ = api
    assert c.get("/api/v1/anomalies/globex-an-001", headers={"X-API-Key": keys.acme}).status_code == 404
    assert c.get("/api/v1/anomalies/acme-an-001", headers={"X-API-Key": keys.acme}).status_code == 200
    assert c.get("/api/v1/anomalies/globex-an-001", headers={"X-API-Key": keys.admin}).status_code == 200


@pytest.mark.parametrize("action", ACTIONS)
def test_another_tenants_anomaly_cannot_be_changed(api: tuple[TestClient, Keys, str], action: str) -> None:
    c, keys, url = api
    r = c.post(f"/api/v1/anomalies/globex-an-002/{action}", headers={"X-API-Key": keys.acme}, json={})
    assert r.status_code == 404
    with connect(url) as conn:
        row = conn.execute(
            "SELECT operator_state, "
            "(SELECT count(*) FROM anomaly_feedback WHERE anomaly_id = 'globex-an-002') "
            "FROM anomalies WHERE id = 'globex-an-002'"
        ).fetchone()
    assert row == (None, 0)


def test_sample_logs_of_an_anomaly_are_the_tenants_own(api: tuple[TestClient, Keys, str]) -> None:
    c, keys, _ = api
    for tenant in ("acme", "globex"):
        body = c.get(f"/api/v1/anomalies/{tenant}-an-003", headers={"X-API-Key": keys.of(tenant)}).json()
        samples = body["explanation"]["sample_logs"]
        assert samples and all(s["message"].startswith(tenant) for s in samples)


@pytest.mark.parametrize("path", COSTS)
def test_costs_are_computed_from_the_tenants_own_usage(api: tuple[TestClient, Keys, str], path: str) -> None:
    c, keys, _ = api

    def usage(key: str, tenant: str | None = None) -> Any:
        sep = "&" if "?" in path else "?"
        r = c.get(path + (f"{sep}tenant={tenant}" if tenant else ""), headers={"X-API-Key": key})
        assert r.status_code == 200, r.text
        body = r.json()
        return body.get("usage") or body.get("mean") or body["scenario"]

    acme, globex = usage(keys.acme), usage(keys.globex)
    assert acme == usage(keys.admin, "acme")
    assert globex == usage(keys.admin, "globex")
    assert acme != globex  # globex logs 3x acme's volume
    assert usage(keys.admin) != acme
