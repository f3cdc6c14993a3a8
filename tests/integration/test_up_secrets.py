"""`loganalyzer up` connects each process as its own least-privilege user and writes no secret
to any log: the admin API key, the database passwords and the Slack webhook URL appear in none
of the files it wrote nor in its own output."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from psycopg.conninfo import make_conninfo

from loganalyzer.db.connection import connect
from loganalyzer.db.login_users import USERS
from loganalyzer.platform.processes import free_port, port_open
from tests.integration.slack_receiver import SlackReceiver
from tests.support import count, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


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
    state = tmp_path / "state"
    kafka, aws, metrics, mlflow, api = free_port(), free_port(), free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "AWS_ENDPOINT", "MLFLOW_"))}
    env.update(
        DATABASE_URL=owner_url,
        LOGANALYZER_STATE_DIR=str(state),
        KAFKA_SESSION_TIMEOUT_MS="6000",
        SLACK_WEBHOOK_URL=webhook,
        LOG_LEVEL="DEBUG",  # the most a process would ever print
    )
    out_file = tmp_path / "up.out"
    with out_file.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "loganalyzer",
                "up",
                *("--kafka-port", str(kafka), "--aws-port", str(aws), "--metrics-port", str(metrics)),
                *("--mlflow-port", str(mlflow), "--api-port", str(api), "--no-airflow", "--rate", "300"),
                *("--seed-history", "20m"),  # the seeder and the first model's retraining log too
            ],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: port_open("127.0.0.1", metrics), 120, "the consumer's metrics endpoint")
        wait_for(lambda: count(database_url) > 200, 120, "generated logs in PostgreSQL")
        wait_for(lambda: port_open("127.0.0.1", api), 120, "the API")
        key = (state / "api-admin-key").read_text().strip()
        base = f"http://127.0.0.1:{api}/api/v1/anomalies"
        r = httpx.get(f"{base}?limit=5", headers={"X-API-Key": key}, timeout=30)
        assert r.status_code == 200, r.text
        r = httpx.get(f"{base}/nope", headers={"X-API-Key": key}, timeout=30)
        assert r.status_code == 404
        wait_for(lambda: "loganalyzer-alerts" in _connected(database_url), 120, "the alerts process")
        users = _connected(database_url)
        assert users.get("loganalyzer-consumer") == {USERS["consumer"][0]}, users
        assert users.get("loganalyzer-api") == {USERS["api"][0]}, users
        assert users.get("loganalyzer-alerts") == {USERS["alerts"][0]}, users
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        receiver.stop()
    assert proc.returncode == 0, out_file.read_text(errors="replace")[-3000:]

    db_users = state / "db-users"
    passwords = {p.name: p.read_text().strip() for p in db_users.iterdir() if p.name != "pgpass"}
    assert set(passwords) == set(USERS)
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in db_users.iterdir())
    needles = {
        "admin API key": key,
        "admin API key's secret part": key.rsplit("_", 1)[1],
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
