"""Seed data and clients for the API tests: two tenants with anomalies, logs, rollups, patterns."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from loganalyzer.db.connection import connect
from serving.keys import new_key
from serving.main import create_app
from serving.settings import ServingSettings

TENANTS = ("acme", "globex")
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
#: log lines per service-hour in the rollups: different per tenant, so cost figures differ too
VOLUME = {"acme": 100, "globex": 300}
INSERT_METRIC = (
    "INSERT INTO hourly_metrics (tenant, service, hour, log_count, info_count, error_count, host_count, "
    "avg_duration_ms) VALUES (%s, %s, %s, %s, %s, %s, 2, 12.5)"
)
INSERT_PATTERN = (
    "INSERT INTO log_patterns (tenant, service, pattern_id, template, first_seen, last_seen, count, "
    "error_count, sample_message) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)
INSERT_ANOMALY = (
    "INSERT INTO anomalies (id, tenant, service, anomaly_type, severity, status, window_start, window_end, "
    "expected_value, actual_value, description, pattern_template, sample_message) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


@dataclass
class Keys:
    acme: str
    globex: str
    admin: str

    def of(self, tenant: str) -> str:
        return {"acme": self.acme, "globex": self.globex}[tenant]


def create_key(url: str, tenant: str, admin: bool = False) -> str:
    key = new_key()
    with connect(url) as conn:
        conn.execute(
            "INSERT INTO api_keys (id, tenant, is_admin, key_sha256) VALUES (%s, %s, %s, %s)",
            (key.key_id, tenant, admin, key.digest),
        )
    return key.secret_key


def seed(url: str, hours: int = 6, per_hour: int = 40, earlier_days: int = 0) -> None:
    """Each tenant: services svc-a/svc-b (and a service named after the tenant), logs in the last
    `hours` hours (yesterday too, so a closed partition exists, and one hour on each of
    `earlier_days` days before: a forecast needs 3 days), rollups, patterns, anomalies."""
    with connect(url) as conn:
        for day in {(NOW - timedelta(hours=h)).date() for h in range(-1, hours + 30 + 24 * earlier_days)}:
            conn.execute("SELECT ensure_log_partition(%s)", (day,))
        offset = 0
        with conn.cursor().copy(
            'COPY logs ("timestamp", tenant, service, host, level, message, kafka_topic, kafka_partition, '
            "kafka_offset) FROM STDIN"
        ) as cp:
            for tenant in TENANTS:
                for h in [*range(hours), 26, *(26 + 24 * k for k in range(1, earlier_days + 1))]:
                    for i in range(per_hour):
                        level = "ERROR" if i % 5 == 0 else "INFO"
                        service = ("svc-a", "svc-b", f"only-{tenant}")[i % 3]
                        word = "timeout" if level == "ERROR" else "handled"
                        cp.write_row(
                            (
                                NOW - timedelta(hours=h) + timedelta(seconds=i * 60),
                                tenant,
                                service,
                                f"host-{i % 2}",
                                level,
                                f"{tenant} request {i} {word} after {i * 3} ms",
                                "logs",
                                0,
                                offset,
                            )
                        )
                        offset += 1
        for tenant in TENANTS:
            for h in range(hours):
                for service in ("svc-a", "svc-b", f"only-{tenant}"):
                    volume = VOLUME[tenant]
                    conn.execute(
                        INSERT_METRIC, (tenant, service, NOW - timedelta(hours=h), volume, volume - 20, 20)
                    )
                    conn.execute(
                        INSERT_PATTERN,
                        (
                            tenant,
                            service,
                            "p1",
                            f"{tenant} request <*> timeout after <*> ms",
                            NOW - timedelta(hours=hours),
                            NOW,
                            VOLUME[tenant] // 2,
                            10,
                            f"{tenant} request 5 timeout after 15 ms",
                        ),
                    )
            for i in range(30):
                start = NOW - timedelta(minutes=10 * i)
                conn.execute(
                    INSERT_ANOMALY,
                    (
                        f"{tenant}-an-{i:03d}",
                        tenant,
                        ("svc-a", "svc-b", f"only-{tenant}")[i % 3],
                        ("error_rate_spike", "log_volume_spike", "new_error_pattern")[i % 3],
                        ("low", "medium", "high", "critical")[i % 4],
                        "resolved" if i % 7 == 6 else "open",
                        start,
                        start + timedelta(minutes=5),
                        0.02,
                        0.2,
                        f"error rate 20% vs expected 2% on {tenant}",
                        f"{tenant} request <*> timeout after <*> ms",
                        f"{tenant} request 5 timeout after 15 ms",
                    ),
                )
        conn.execute(
            "INSERT INTO ingest_offsets (kafka_topic, kafka_partition, next_offset) VALUES ('logs', 0, %s)",
            (offset,),
        )
        conn.commit()
    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT index_closed_log_partitions(%s)", (NOW.date(),)).fetchall()
        conn.execute("ANALYZE")


def make_keys(url: str) -> Keys:
    return Keys(create_key(url, "acme"), create_key(url, "globex"), create_key(url, "ops", admin=True))


@contextmanager
def client(url: str, **overrides: object) -> Iterator[TestClient]:
    """The app in-process; caches off unless a test turns them on (`page_cache_seconds=...`), and
    searches without a time budget (a loaded test machine would cut pages short) unless a test
    sets `search_budget_ms`."""
    overrides = {"key_cache_seconds": 0, "page_cache_seconds": 0, "search_budget_ms": 600_000, **overrides}
    settings = ServingSettings(database_url=url, profile="dev", **overrides)  # type: ignore[arg-type]
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


@contextmanager
def uvicorn_server(url: str, **overrides: object) -> Iterator[str]:
    """The app under a real uvicorn (as `loganalyzer serve` runs it) on a free port, in a thread."""
    import threading
    import time

    import uvicorn

    from loganalyzer.platform.processes import free_port

    port = free_port()
    settings = ServingSettings(database_url=url, profile="dev", key_cache_seconds=0, **overrides)  # type: ignore[arg-type]
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        loop="asyncio",
        access_log=False,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
