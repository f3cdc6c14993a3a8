"""Least privilege (sql/016_roles.sql): each role can do what its process needs and nothing more.

Every statement runs inside one transaction under `SET ROLE`, in a savepoint, and is rolled
back: forbidden ones must fail with PostgreSQL's insufficient-privilege error, allowed ones
must succeed. The consumer is also run for real, logged in as a member of its role only.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg
import pytest
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from loganalyzer.batch.maintenance import VACUUM_TABLES
from loganalyzer.db.connection import connect
from loganalyzer.db.login_users import USERS, LoginUserError, ensure_login_users, login_users
from tests.integration.consumer_harness import consumer_env, consumer_process, stop_gracefully
from tests.support import count, event_doc, new_topic, produce, wait_for

pytestmark = pytest.mark.integration

ROLES = (
    "loganalyzer_owner",
    "loganalyzer_consumer",
    "loganalyzer_api",
    "loganalyzer_grafana",
    "loganalyzer_airflow",
    "loganalyzer_alerts",
)
DAY = "2026-01-15"
LOG_ROW = (
    "INSERT INTO logs (timestamp, tenant, service, host, level, message, "
    "kafka_topic, kafka_partition, kafka_offset) "
    f"VALUES ('{DAY}T10:00:00Z', 't', 's', 'h', 'INFO', 'm', 'x', 0, 99)"
)
ANOMALY_ROW = (
    "INSERT INTO anomalies (id, tenant, service, anomaly_type, severity, "
    "window_start, window_end, description) "
    f"VALUES ('new', 't', 's', 'error_rate_spike', 'high', '{DAY}T10:00Z', '{DAY}T10:05Z', 'd')"
)
DEAD_LETTER = (
    "INSERT INTO dead_letters (kafka_topic, kafka_partition, kafka_offset, raw_size, reason, detail) "
    "VALUES ('x', 0, 7, 1, 'r', 'd')"
)
PATTERN = (
    "INSERT INTO log_patterns (tenant, service, pattern_id, template, first_seen, last_seen, "
    "count, sample_message) "
    "VALUES ('t', 's', 'p2', 'x <*>', now(), now(), 1, 'x 1') "
    "ON CONFLICT (tenant, service, pattern_id) DO UPDATE SET count = log_patterns.count + 1"
)
OFFSETS = (
    "INSERT INTO ingest_offsets (kafka_topic, kafka_partition, next_offset) VALUES ('x', 1, 5) "
    "ON CONFLICT (kafka_topic, kafka_partition) DO UPDATE SET next_offset = excluded.next_offset"
)
CHECKPOINT = (
    "INSERT INTO detector_checkpoints (kafka_topic, kafka_partition, next_offset, state) "
    "VALUES ('x', 1, 5, 'x') "
    "ON CONFLICT (kafka_topic, kafka_partition) DO UPDATE SET state = excluded.state"
)
HOURLY = (
    "INSERT INTO hourly_metrics (tenant, service, hour, log_count) "
    "VALUES ('t', 's2', '2026-01-15T11:00Z', 1) "
    "ON CONFLICT (tenant, service, hour) DO UPDATE SET log_count = excluded.log_count"
)
DELIVERY = (
    "INSERT INTO alert_deliveries (anomaly_id, event, route, created_at, next_attempt_at) "
    "VALUES ('a1', 'opened', 'ops', now(), now())"
)

COST_ROW = (
    "INSERT INTO cost_snapshots (day, tenant, usage, source) VALUES ('2026-01-15', 't', '{}', 'x') "
    "ON CONFLICT (day, tenant) DO UPDATE SET usage = excluded.usage"
)
FEEDBACK = (
    "INSERT INTO anomaly_feedback (tenant, anomaly_id, action, service) "
    "VALUES ('t', 'a1', 'acknowledge', 's')"
)
OUTLOOK_ROW = (
    "WITH o AS (INSERT INTO cost_outlook (day, tenant, region, free_tier, month_start, days_measured, "
    "month_estimate_usd, forecast_month, history_days, replicates, method, forecast_error) "
    "VALUES ('2026-01-15', NULL, 'us-east-1', 'none', '2026-01-01', 15, 1.5, '2026-02-01', 15, 400, 'm', "
    "'x') RETURNING id) "
    "INSERT INTO cost_outlook_what_if (outlook_id, multiplier, total_usd, delta_usd) "
    "SELECT id, 2, 3, 1.5 FROM o"
)
#: what the Anomalies dashboard reads of the operators' feedback (sql/026 grants these columns)
FEEDBACK_READ = (
    "SELECT count(*), max(created_at), min(action), min(scope), min(anomaly_id), min(tenant), min(service), "
    "min(anomaly_type), max(until), min(key_id), min(note), min(pattern_template) FROM anomaly_feedback"
)
READS = [
    f"SELECT count(*) FROM {t}"
    for t in ("logs", "anomalies", "hourly_metrics", "log_patterns", "dead_letters")
]
SCHEMA_CHANGES = [
    "CREATE TABLE intruder (x int)",
    "ALTER TABLE logs ADD COLUMN intruder int",
    "DROP TABLE anomalies",
    "TRUNCATE logs",
    f"SELECT drop_log_partitions_before('{DAY}')",
]

ALLOWED: dict[str, list[str]] = {
    "loganalyzer_consumer": [
        LOG_ROW,
        DEAD_LETTER,
        ANOMALY_ROW,
        "UPDATE anomalies SET window_end = window_end, status = 'resolved' WHERE id = 'a1'",
        PATTERN,
        OFFSETS,
        CHECKPOINT,
        "SELECT next_offset FROM ingest_offsets ORDER BY kafka_partition FOR UPDATE",
        f"SELECT ensure_log_partition('{DAY}'::date + 1)",
        "SELECT count(*) FROM logs",
        "CREATE TEMP TABLE logs_staging (LIKE logs INCLUDING DEFAULTS)",
        "SELECT count(*) FROM suppressions",
    ],
    "loganalyzer_api": [
        *READS,
        "SELECT count(*) FROM api_keys",
        "SELECT count(*) FROM suppressions",
        "UPDATE anomalies SET operator_state = 'acknowledged', operator_state_at = now(), "
        "operator_state_until = NULL WHERE id = 'a1'",
        "SELECT count(*) FROM anomaly_feedback",
        FEEDBACK,
        "SELECT count(*) FROM cost_snapshots",
        "SELECT max(updated_at) FROM ingest_offsets",
    ],
    "loganalyzer_grafana": [
        *READS,
        "SELECT count(*) FROM cost_snapshots",
        "SELECT count(*) FROM cost_outlook o JOIN cost_outlook_what_if w ON w.outlook_id = o.id",
        FEEDBACK_READ,
    ],
    "loganalyzer_airflow": [
        "SELECT count(*) FROM logs",
        "SELECT count(*) FROM anomalies",
        HOURLY,
        "DELETE FROM hourly_metrics WHERE hour = '2026-01-15T10:00Z'",
        "DELETE FROM minute_counts WHERE minute < '2000-01-01'",
        "SELECT count(*) FROM minute_count_hours",
        f"SELECT ensure_log_partition('{DAY}'::date + 2)",
        f"SELECT * FROM index_closed_log_partitions('{DAY}'::date + 1)",
        f"SELECT * FROM drop_log_partitions_before('{DAY}')",
        "SELECT drop_log_partition('logs_p20260115')",
        COST_ROW,
        "DELETE FROM cost_snapshots WHERE day = '2026-01-15' AND tenant <> 't'",
        "SELECT count(*) FROM cost_snapshots",
        "SELECT count(*) FROM anomaly_feedback",
        "DELETE FROM alert_deliveries WHERE state <> 'pending' AND created_at < '2000-01-01'",
        "DELETE FROM cost_outlook WHERE day = '2026-01-15'",
        OUTLOOK_ROW,
        "SELECT count(*) FROM cost_outlook o JOIN cost_outlook_what_if w ON w.outlook_id = o.id",
    ],
    "loganalyzer_alerts": [
        "SELECT count(*) FROM anomalies",
        DELIVERY,
        "UPDATE alert_deliveries SET attempts = attempts + 1",
        "SELECT count(*) FROM alert_deliveries",
    ],
}

FORBIDDEN: dict[str, list[str]] = {
    "loganalyzer_consumer": [
        "DELETE FROM anomalies",
        "SELECT count(*) FROM api_keys",
        "DELETE FROM logs",
        "UPDATE logs SET message = 'rewritten'",
        "DELETE FROM dead_letters",
        "DELETE FROM ingest_offsets",
        HOURLY,
        DELIVERY,
        COST_ROW,
        "SELECT drop_log_partition('logs_p20260115')",
        *SCHEMA_CHANGES,
    ],
    "loganalyzer_api": [
        LOG_ROW,
        ANOMALY_ROW,
        "DELETE FROM anomalies",
        "UPDATE anomalies SET status = 'resolved'",
        "DELETE FROM anomaly_feedback",
        "UPDATE api_keys SET revoked_at = now()",
        "DELETE FROM api_keys",
        "UPDATE anomalies SET description = 'rewritten'",
        "UPDATE logs SET message = 'rewritten'",
        DEAD_LETTER,
        OFFSETS,
        "SELECT count(*) FROM detector_checkpoints",
        "SELECT count(*) FROM alert_deliveries",
        f"SELECT ensure_log_partition('{DAY}')",
        COST_ROW,
        "DELETE FROM cost_snapshots",
        OUTLOOK_ROW,
        "SELECT count(*) FROM cost_outlook",  # the API computes its own forecasts
        "SELECT drop_log_partition('logs_p20260115')",
        *SCHEMA_CHANGES,
    ],
    "loganalyzer_grafana": [
        LOG_ROW,
        FEEDBACK,
        "SELECT count(*) FROM api_keys",
        "UPDATE anomalies SET status = 'resolved'",
        "DELETE FROM anomalies",
        HOURLY,
        "SELECT count(*) FROM detector_checkpoints",
        "SELECT count(*) FROM ingest_offsets",
        f"SELECT ensure_log_partition('{DAY}')",
        COST_ROW,
        "DELETE FROM cost_snapshots",
        OUTLOOK_ROW,
        "DELETE FROM cost_outlook",
        "DELETE FROM anomaly_feedback",
        *SCHEMA_CHANGES,
    ],
    "loganalyzer_airflow": [
        LOG_ROW,
        "DELETE FROM logs",
        ANOMALY_ROW,
        "UPDATE anomalies SET status = 'resolved'",
        "DELETE FROM anomalies",
        OFFSETS,
        "SELECT count(*) FROM detector_checkpoints",
        "SELECT count(*) FROM api_keys",
        "UPDATE api_keys SET revoked_at = now()",
        FEEDBACK,
        "DELETE FROM anomaly_feedback",
        *SCHEMA_CHANGES[:4],
    ],
    "loganalyzer_alerts": [
        LOG_ROW,
        "SELECT count(*) FROM minute_counts",
        "UPDATE anomalies SET status = 'resolved'",
        "DELETE FROM anomalies",
        "DELETE FROM alert_deliveries",
        "SELECT count(*) FROM logs",
        COST_ROW,
        "SELECT drop_log_partition('logs_p20260115')",
        *SCHEMA_CHANGES,
    ],
}


def _seed(url: str) -> None:
    with connect(url) as conn:
        conn.execute(f"SELECT ensure_log_partition('{DAY}')")
        conn.execute(LOG_ROW.replace("99", "1"))
        conn.execute(ANOMALY_ROW.replace("'new'", "'a1'"))
        conn.execute(HOURLY.replace("11:00Z", "10:00Z"))
        conn.execute(DELIVERY.replace("'opened'", "'resolved'"))


def _attempt(conn: psycopg.Connection[tuple[object, ...]], role: str, statement: str) -> Exception | None:
    """Run one statement as `role` in a savepoint; the error it raised, if any. Rolled back."""
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
            conn.execute(statement)
    except psycopg.Error as exc:
        return exc
    return None


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    _seed(database_url)
    with psycopg.connect(database_url, autocommit=True) as c:
        yield c


def test_every_role_exists_cannot_log_in_and_is_no_superuser(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    rows = conn.execute(
        "SELECT rolname, rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication "
        "FROM pg_roles WHERE rolname = ANY(%s) ORDER BY rolname",
        (list(ROLES),),
    ).fetchall()
    assert [r[0] for r in rows] == sorted(ROLES)
    assert all(r[1:] == (False,) * 6 for r in rows), rows
    owners = conn.execute(
        "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = relnamespace "
        "WHERE nspname = 'public' AND relkind IN ('r', 'p')"
    ).fetchall()
    assert owners == [("loganalyzer_owner",)]


@pytest.mark.parametrize("role", sorted(ALLOWED))
def test_each_role_can_do_what_its_process_needs(
    conn: psycopg.Connection[tuple[object, ...]], role: str
) -> None:
    failures = {
        s: str(e).splitlines()[0] for s in ALLOWED[role] if (e := _attempt(conn, role, s)) is not None
    }
    assert failures == {}


@pytest.mark.parametrize("role", sorted(FORBIDDEN))
def test_each_forbidden_action_is_refused(conn: psycopg.Connection[tuple[object, ...]], role: str) -> None:
    outcomes = {s: _attempt(conn, role, s) for s in FORBIDDEN[role]}
    allowed = [s for s, e in outcomes.items() if e is None]
    assert allowed == [], f"{role} was allowed: {allowed}"
    other = {
        s: str(e).splitlines()[0]
        for s, e in outcomes.items()
        if not isinstance(e, errors.InsufficientPrivilege)
    }
    assert other == {}, f"{role}: failed for another reason than privileges: {other}"


def test_the_airflow_role_analyzes_every_table_maintenance_vacuums(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    """maintenance.VACUUM_TABLES and the owner's analyze_table whitelist (sql/020) are two lists
    of one thing: a table in the first only makes the nightly maintenance fail as Airflow's role."""
    refused = {
        t: str(e).splitlines()[0]
        for t in VACUUM_TABLES
        if (e := _attempt(conn, "loganalyzer_airflow", f"SELECT analyze_table('{t}')")) is not None
    }
    assert refused == {}
    assert conn.execute(
        "SELECT bool_and(to_regclass(t) IS NOT NULL) FROM unnest(%s::text[]) t", (list(VACUUM_TABLES),)
    ).fetchone() == (True,)
    other = _attempt(conn, "loganalyzer_airflow", "SELECT analyze_table('api_keys')")
    assert isinstance(other, errors.InvalidParameterValue), other


def test_the_real_consumer_runs_logged_in_as_a_member_of_its_role_only(
    broker: str, database_url: str, tmp_path: Path
) -> None:
    """Grants enough for the real thing: rows, dead letters, a new day's partition, offsets,
    patterns and detector checkpoints, written by a LOGIN user that has only the consumer role."""
    user = f"la_test_consumer_{uuid.uuid4().hex[:8]}"
    with connect(database_url) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN IN ROLE loganalyzer_consumer").format(sql.Identifier(user))
        )
    try:
        params = conninfo_to_dict(database_url)
        as_consumer = make_conninfo(database_url, user=user)
        assert params.get("user") != user
        topic = new_topic(broker, partitions=2)
        base = datetime.now(UTC) - timedelta(days=2)  # a day with no partition yet: the consumer creates it
        values: list[bytes | None] = [orjson.dumps(event_doc(i, base)) for i in range(500)]
        produce(broker, topic, values)
        env = consumer_env(
            as_consumer, broker, topic, DETECTION_CHECKPOINT_SECONDS="0.1", MLFLOW_TRACKING_URI=""
        )
        log = tmp_path / "consumer.log"
        with consumer_process(env, log) as proc:  # `loganalyzer consume`: its start-up checks included
            wait_for(lambda: count(database_url) == 500, 60, "the rows, written as the consumer role")
            time.sleep(0.5)  # a checkpoint is due with the next batch (DETECTION_CHECKPOINT_SECONDS)
            produce(broker, topic, [b"not json"] * 5)
            wait_for(
                lambda: count(database_url, "SELECT count(*) FROM dead_letters") == 5, 30, "the dead letters"
            )
            wait_for(
                lambda: count(database_url, "SELECT count(*) FROM detector_checkpoints") > 0,
                30,
                "a checkpoint",
            )
            stop_gracefully(proc, log)
        assert b"permission denied" not in log.read_bytes()
        assert count(database_url, "SELECT count(*) FROM ingest_offsets") == 2
        assert count(database_url, "SELECT sum(count) FROM log_patterns") == 500
    finally:
        with connect(database_url) as admin:
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(user)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(user)))


def test_login_users_of_the_platform_are_no_superusers_and_belong_to_their_role_only(
    conn: psycopg.Connection[tuple[object, ...]], database_url: str, tmp_path: Path
) -> None:
    """What `loganalyzer up` (and compose's migrate service) create: one LOGIN user per process,
    its password from the environment, a file, or generated once (mode 0600)."""
    password_file = tmp_path / "consumer-password"
    password_file.write_text("from-a-file-" + uuid.uuid4().hex + "\n")
    env = {"LOGANALYZER_DB_PASSWORD_CONSUMER_FILE": str(password_file)}
    users = login_users(env, tmp_path / "generated")
    ensure_login_users(database_url, users)
    by_process = {u.process: u for u in users}
    assert by_process["consumer"].password == password_file.read_text().strip()
    assert (tmp_path / "generated" / "api").stat().st_mode & 0o777 == 0o600
    assert by_process["api"].password not in repr(by_process["api"])
    rows = conn.execute(
        "SELECT r.rolname, r.rolcanlogin, r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls, "
        "array(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
        "WHERE m.member = r.oid ORDER BY 1) FROM pg_roles r WHERE r.rolname = ANY(%s) ORDER BY 1",
        ([user for user, _ in USERS.values()],),
    ).fetchall()
    assert {r[0]: (r[1:6], r[6]) for r in rows} == {
        user: ((True, False, False, False, False), [group]) for user, group in USERS.values()
    }


def test_placeholder_or_missing_passwords_are_refused(tmp_path: Path) -> None:
    with pytest.raises(LoginUserError, match="LOGANALYZER_DB_PASSWORD_API"):
        login_users({"LOGANALYZER_DB_PASSWORD_API": "changeme"}, tmp_path)
    with pytest.raises(LoginUserError, match="LOGANALYZER_DB_PASSWORD_CONSUMER"):
        login_users({}, None)  # outside the local platform a password must be given


@pytest.mark.parametrize("process", sorted(USERS))
def test_each_login_user_is_refused_each_forbidden_action(
    conn: psycopg.Connection[tuple[object, ...]], database_url: str, tmp_path: Path, process: str
) -> None:
    """The same forbidden statements, now logged in as the platform's user (not SET ROLE)."""
    users = login_users({}, tmp_path)
    ensure_login_users(database_url, users)
    user, group = USERS[process]
    with psycopg.connect(make_conninfo(database_url, user=user), autocommit=True) as as_user:
        assert as_user.execute("SELECT current_user").fetchone() == (user,)
        read_only = as_user.execute("SHOW default_transaction_read_only").fetchone()
        assert read_only == ("on" if process == "grafana" else "off",)
        if process == "grafana":
            assert as_user.execute("SHOW statement_timeout").fetchone() == ("30s",)
        # Grafana's read-only default is defence in depth (a session may turn it off): the
        # grants alone must refuse each statement
        as_user.execute("SET default_transaction_read_only = off")
        outcomes: dict[str, Exception | None] = {}
        for statement in FORBIDDEN[group]:
            try:
                with as_user.transaction(force_rollback=True):
                    as_user.execute(statement)
                outcomes[statement] = None
            except psycopg.Error as exc:
                outcomes[statement] = exc
    assert [s for s, e in outcomes.items() if e is None] == []
    other = {s: str(e) for s, e in outcomes.items() if not isinstance(e, errors.InsufficientPrivilege)}
    assert other == {}


def test_the_real_api_serves_and_acts_logged_in_as_its_user(database_url: str, tmp_path: Path) -> None:
    """Every kind of endpoint, including an anomaly action and the cost estimate, answers 200
    for a server whose DATABASE_URL is the API's login user; a write it may not do stays refused."""
    import httpx

    from tests.integration.api_harness import make_keys, seed, uvicorn_server

    seed(database_url, hours=3, earlier_days=3)
    keys = make_keys(database_url)
    users = login_users({}, tmp_path)
    ensure_login_users(database_url, users)
    api_user = next(u for u in users if u.process == "api")
    as_api = make_conninfo(database_url, user=api_user.user)
    with connect(database_url) as c:
        row = c.execute("SELECT id FROM anomalies WHERE tenant = 'acme' LIMIT 1").fetchone()
    assert row is not None
    with uvicorn_server(as_api) as base, httpx.Client(base_url=base, timeout=30) as http:
        headers = {"X-API-Key": keys.acme}
        for path in (
            "/health",
            "/api/v1/anomalies?limit=5",
            f"/api/v1/anomalies/{row[0]}",
            "/api/v1/metrics/hourly?limit=5",
            "/api/v1/logs/search?q=error&limit=5",
            "/api/v1/patterns?service=svc-a",
            "/api/v1/costs/estimate",
        ):
            r = http.get(path, headers=headers)
            assert r.status_code == 200, (path, r.text)
        r = http.post(f"/api/v1/anomalies/{row[0]}/acknowledge", headers=headers, json={"note": "seen"})
        assert r.status_code == 200, r.text
    with psycopg.connect(as_api) as c:
        assert c.execute("SELECT current_user").fetchone() == (api_user.user,)
        with pytest.raises(errors.InsufficientPrivilege):
            c.execute(LOG_ROW)
    assert count(database_url, "SELECT count(*) FROM anomaly_feedback") == 1


def test_db_users_command_takes_passwords_from_the_environment_and_refuses_placeholders(
    database_url: str, tmp_path: Path
) -> None:
    """What compose's migrate service runs after `db migrate`."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    passwords = {f"LOGANALYZER_DB_PASSWORD_{p.upper()}": uuid.uuid4().hex for p in USERS}
    env = {**os.environ, "DATABASE_URL": database_url, **passwords}
    cmd = [sys.executable, "-m", "loganalyzer", "db", "users"]
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not any(pw in done.stdout + done.stderr for pw in passwords.values())
    with connect(database_url) as c:
        row = c.execute(
            "SELECT has_database_privilege(%s, current_database(), 'CONNECT')", (USERS["grafana"][0],)
        ).fetchone()
        assert row == (True,)
    env["LOGANALYZER_DB_PASSWORD_API"] = "changeme"
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "LOGANALYZER_DB_PASSWORD_API" in done.stderr
