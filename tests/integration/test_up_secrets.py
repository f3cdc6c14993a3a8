"""`loganalyzer up` connects each process as its own least-privilege user and writes no secret
to any log: the admin API key, the database passwords and the Slack webhook URL appear in none
of the files it wrote nor in its own output."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import pytest
from psycopg.conninfo import make_conninfo

from loganalyzer.db.connection import connect
from loganalyzer.db.login_users import USERS
from loganalyzer.platform.processes import port_open
from tests.integration.slack_receiver import SlackReceiver
from tests.support import count, wait_for
from tests.up_support import launch_up

pytestmark = pytest.mark.integration


def _connected(url: str) -> dict[str, set[str]]:
    """application_name -> the users it is connected as, on this test's database."""
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT application_name, usename FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        ).fetchall()
    seen: dict[str, set[str]] = {}
    for app, user in rows:
        seen.setdefault(str(app), set()).add(str(user))
    return seen


def test_up_runs_each_process_as_its_user_and_logs_no_secret(database_url: str, tmp_path: Path) -> None:
    owner_password = "owner-" + secrets.token_urlsafe(16)  # the local server trusts; still never shown
    owner_url = make_conninfo(database_url, password=owner_password)
    receiver = SlackReceiver().start()
    webhook = receiver.url("T0" + secrets.token_hex(12))
    env = {"SLACK_WEBHOOK_URL": webhook, "LOG_LEVEL": "DEBUG"}  # DEBUG: the most a process would print
    # the seeder and the first model's retraining log too
    with launch_up(tmp_path, owner_url, "--rate", "300", "--seed-history", "20m", env=env) as up:
        try:
            wait_for(
                lambda: port_open("127.0.0.1", up.ports["metrics"]), 120, "the consumer's metrics endpoint"
            )
            wait_for(lambda: count(database_url) > 200, 120, "generated logs in PostgreSQL")
            wait_for(lambda: port_open("127.0.0.1", up.ports["api"]), 120, "the API")
            key = up.api_key
            base = f"{up.api_url}/api/v1/anomalies"
            r = httpx.get(f"{base}?limit=5", headers={"X-API-Key": key}, timeout=30)
            assert r.status_code == 200, r.text
            r = httpx.get(f"{base}/nope", headers={"X-API-Key": key}, timeout=30)
            assert r.status_code == 404
            wait_for(lambda: "loganalyzer-alerts" in _connected(database_url), 120, "the alerts process")
            users = _connected(database_url)
            assert users.get("loganalyzer-consumer") == {USERS["consumer"][0]}, users
            assert users.get("loganalyzer-api") == {USERS["api"][0]}, users
            assert users.get("loganalyzer-alerts") == {USERS["alerts"][0]}, users
            returncode = up.stop(timeout=90)
        finally:
            receiver.stop()
    out_file, state = up.out_path, up.state
    assert returncode == 0, up.output()[-3000:]

    db_users = state / "db-users"
    passwords = {p.name: p.read_text().strip() for p in db_users.iterdir() if p.name != "pgpass"}
    assert set(passwords) == set(USERS)
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in db_users.iterdir())
    assert len(key.split("_", 2)[2]) >= 40  # a fragment would match by chance
    needles = {
        "admin API key": key,
        "admin API key's secret part": key.split("_", 2)[2],  # la_<id>_<secret>; the secret may hold "_"
        "owner's database password": owner_password,
        "Slack webhook URL": webhook,
        "Slack webhook path": webhook.rsplit("/", 1)[1],
        **{f"{name} database password": pw for name, pw in passwords.items()},
    }
    written = [out_file, *(p for p in (state / "logs").rglob("*") if p.is_file())]
    assert len(written) >= 6, written  # up's output and the children's logs were all read
    found = [
        f"{what} in {path.relative_to(tmp_path)}"
        for path in written
        for what, needle in needles.items()
        if needle.encode() in path.read_bytes()
    ]
    assert found == []
    text = out_file.read_text(errors="replace")
    assert "Smart Log Analyzer is up" in text and "***" in text  # the owner's URL was shown masked
