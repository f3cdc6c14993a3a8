"""`loganalyzer keys create` and `loganalyzer serve` as a user runs them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from loganalyzer.db.connection import connect
from loganalyzer.platform.processes import free_port, port_open

pytestmark = pytest.mark.integration


def _cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "loganalyzer", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_a_created_key_is_printed_once_stored_hashed_and_works(database_url: str) -> None:
    done = _cli("keys", "create", "--tenant", "acme", "--label", "ci", url=database_url)
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    assert key.startswith("la_") and len(key) > 40
    with connect(database_url) as conn:
        stored = conn.execute("SELECT tenant, is_admin, key_sha256 FROM api_keys").fetchall()
    assert len(stored) == 1 and stored[0][:2] == ("acme", False)
    assert key.encode() not in bytes(stored[0][2]) and len(bytes(stored[0][2])) == 32
    listed = _cli("keys", "list", url=database_url)
    assert "acme" in listed.stdout and key not in listed.stdout

    port = free_port()
    # a verified key is trusted API_KEY_CACHE_SECONDS (default 10): 0 makes revocation immediate
    env = {**os.environ, "DATABASE_URL": database_url, "API_KEY_CACHE_SECONDS": "0"}
    server = subprocess.Popen(
        [sys.executable, "-m", "loganalyzer", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", port):
            assert server.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/api/v1/anomalies", headers={"X-API-Key": key}).status_code == 200
        assert httpx.get(f"{base}/docs").status_code == 200
        key_id = key.split("_")[1]
        assert _cli("keys", "revoke", key_id, url=database_url).returncode == 0
        assert httpx.get(f"{base}/api/v1/anomalies", headers={"X-API-Key": key}).status_code == 401
    finally:
        server.terminate()
        server.wait(10)


def test_serve_on_a_taken_port_is_one_clear_line(database_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _cli("serve", "--port", str(port), url=database_url)
    assert done.returncode == 2
    assert f"port {port}" in done.stderr and "Traceback" not in done.stderr + done.stdout
    assert len(done.stderr.strip().splitlines()) == 1


def test_placeholder_password_is_refused_outside_dev() -> None:
    env = {**os.environ, "DATABASE_URL": "postgresql://app:changethis@127.0.0.1/x", "API_PROFILE": "prod"}
    done = subprocess.run(
        [sys.executable, "-m", "loganalyzer", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "placeholder password" in done.stderr and "Traceback" not in done.stderr
    assert "changethis" not in done.stderr  # the refused value is not echoed


def test_more_concurrent_requests_than_pooled_connections_all_complete(database_url: str) -> None:
    """Each request holds one pooled connection for its whole life (auth included): 16 at once
    against a pool of 2 queue and complete instead of deadlocking."""
    import asyncio

    from tests.integration.api_harness import create_key, uvicorn_server

    key = create_key(database_url, "acme")

    async def burst(base: str) -> list[int]:
        async with httpx.AsyncClient(base_url=base, timeout=20) as c:
            replies = await asyncio.gather(
                *(c.get("/api/v1/anomalies", headers={"X-API-Key": key}) for _ in range(16))
            )
        return [r.status_code for r in replies]

    with uvicorn_server(database_url, pool_size=2) as base:
        assert asyncio.run(burst(base)) == [200] * 16
