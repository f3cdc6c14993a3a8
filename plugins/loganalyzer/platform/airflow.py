"""Airflow 3 on a developer machine, for `loganalyzer up`: what to start and how to log in.

Three processes with the LocalExecutor, the metadata in an `airflow` database of the local
PostgreSQL (created on first use):
- `airflow api-server`: the UI, the REST API (v2) and the execution API the task processes use;
- `airflow scheduler`: schedules runs and runs the tasks (LocalExecutor: subprocesses of it);
- `airflow dag-processor`: parses `dags/`.

Why not `airflow standalone`: it runs the same components (plus a triggerer) under one parent
that cannot be restarted piecewise, and separate processes are what a deployment runs. Measured
2026-12-06 (tests/integration/test_airflow_platform.py, 2-core machine under heavy load from
other work): api-server 293 MiB, scheduler 1,473 MiB (with the LocalExecutor's task processes of
the first scheduled runs, which import MLflow and scikit-learn), dag-processor 365 MiB: 2,131 MiB
in all. bench/bench_platform_memory.py (2026-12-06, load average 15-22) measured the three
processes at 2,031 MiB RSS / 956 MiB PSS and `airflow standalone` with the same configuration
at 1,852 MiB RSS / 1,086 MiB PSS (it adds a triggerer and its own parent): no lighter.

Configuration is all environment (AIRFLOW__SECTION__KEY), so nothing writes airflow.cfg by hand:
AIRFLOW_HOME under the state folder, dags folder = the repository's dags/, plugins folder = its
plugins/, DAGs unpaused at creation, small parallelism for 2 cores, one api-server worker. Login:
Airflow's simple auth manager with one `admin` user whose password is generated once into
AIRFLOW_HOME/simple_auth_manager_passwords.json.generated (printed by `banner_lines`). The
product's connections are given as AIRFLOW_CONN_* from the same settings the other processes get.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from loganalyzer.platform.processes import ChildSpec
from loganalyzer.settings import project_root

ADMIN_USER = "admin"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"


@dataclass(frozen=True)
class AirflowSetup:
    """Where the local Airflow lives and what it talks to."""

    home: Path
    port: int
    #: SQLAlchemy URL of the metadata database
    metadata_url: str
    #: the product's own environment for the tasks (DATABASE_URL, AWS_ENDPOINT_URL, MLflow, ...)
    product_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def passwords_file(self) -> Path:
        return self.home / PASSWORDS_FILE


def metadata_url_for(database_url: str, dbname: str = "airflow") -> str:
    """The SQLAlchemy URL of an `airflow` database on the same server as the product's database."""
    d = conninfo_to_dict(database_url)
    user = quote(str(d.get("user") or "postgres"), safe="")
    password = f":{quote(str(d['password']), safe='')}" if d.get("password") else ""
    host = d.get("host") or "127.0.0.1"
    port = d.get("port") or 5432
    return f"postgresql+psycopg2://{user}{password}@{host}:{port}/{dbname}"


def _postgres_conn_uri(database_url: str) -> str:
    d = conninfo_to_dict(database_url)
    user = quote(str(d.get("user") or "postgres"), safe="")
    password = f":{quote(str(d['password']), safe='')}" if d.get("password") else ""
    host, port = d.get("host") or "127.0.0.1", d.get("port") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{d.get('dbname')}"


def _aws_conn(endpoint: str | None, region: str) -> str:
    extra: dict[str, str] = {"region_name": region}
    doc: dict[str, object] = {"conn_type": "aws", "extra": extra}
    if endpoint:
        extra["endpoint_url"] = endpoint
        doc.update(login="testing", password="testing")  # what the local endpoint accepts
    return json.dumps(doc)


def _secret(home: Path, name: str) -> str:
    """A random secret kept in AIRFLOW_HOME, the same for every component and every start."""
    path = home / name
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def airflow_env(setup: AirflowSetup) -> dict[str, str]:
    """The environment of every Airflow process (and of `airflow` CLI calls against it)."""
    home = setup.home
    home.mkdir(parents=True, exist_ok=True)
    root = project_root()
    product = dict(setup.product_env)
    if "LOGANALYZER_GROUND_TRUTH" not in product and product.get("LOGANALYZER_STATE_DIR"):
        # where `up`'s generator writes its incidents: the retraining's labels
        product["LOGANALYZER_GROUND_TRUTH"] = str(
            Path(product["LOGANALYZER_STATE_DIR"]) / "ground_truth.jsonl"
        )
    env = {
        **product,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "2",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{setup.url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(setup.passwords_file),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": setup.metadata_url,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "2",
        "AIRFLOW__API__PORT": str(setup.port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": setup.url,
        "AIRFLOW__API__SECRET_KEY": _secret(home, ".api_secret_key"),
        "AIRFLOW__API_AUTH__JWT_SECRET": _secret(home, ".jwt_secret"),
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        # the product's connections, from the settings every other process gets
        "AIRFLOW_CONN_LOGANALYZER_DB": _postgres_conn_uri(
            product.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/loganalyzer")
        ),
        "AIRFLOW_CONN_LOGANALYZER_AWS": _aws_conn(
            product.get("AWS_ENDPOINT_URL"), product.get("AWS_DEFAULT_REGION", "us-east-1")
        ),
    }
    return env


def ensure_admin_password(setup: AirflowSetup) -> str:
    """The admin's password: generated once into the simple auth manager's passwords file."""
    path = setup.passwords_file
    users: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    if ADMIN_USER not in users:
        users[ADMIN_USER] = secrets.token_urlsafe(12)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(users))
        path.chmod(0o600)
    return users[ADMIN_USER]


def _airflow_bin() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def prepare_airflow(setup: AirflowSetup, timeout: float = 600) -> None:
    """Create the metadata database if missing and migrate it (idempotent; run before the specs).

    Raises RuntimeError with the tail of Airflow's output when the migration fails.
    """
    from loganalyzer.db.connection import ensure_database

    d = conninfo_to_dict(setup.metadata_url.replace("postgresql+psycopg2://", "postgresql://"))
    ensure_database(make_conninfo("", **{k: v for k, v in d.items() if v is not None}))
    ensure_admin_password(setup)
    env = {**os.environ, **airflow_env(setup)}
    done = subprocess.run(
        [_airflow_bin(), "db", "migrate"], env=env, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"airflow db migrate failed (metadata {setup.metadata_url}):\n{tail}")


def airflow_specs(setup: AirflowSetup) -> list[ChildSpec]:
    """api-server (ready when its port answers), then scheduler and dag-processor."""
    env = airflow_env(setup)
    airflow = _airflow_bin()
    return [
        ChildSpec(
            name="airflow-api",
            argv=[airflow, "api-server", "--host", "127.0.0.1", "--port", str(setup.port), "--workers", "1"],
            env=env,
            ready_port=setup.port,
            ready_timeout=180.0,
            cwd=setup.home,
        ),
        ChildSpec(name="airflow-scheduler", argv=[airflow, "scheduler"], env=env, cwd=setup.home),
        ChildSpec(name="airflow-dag-processor", argv=[airflow, "dag-processor"], env=env, cwd=setup.home),
    ]


def banner_lines(setup: AirflowSetup) -> list[str]:
    """What `loganalyzer up` prints about Airflow: where the UI is and how to log in."""
    password = ensure_admin_password(setup)
    login = json.dumps({"username": ADMIN_USER, "password": password})
    token = (
        f"$(curl -s -X POST {setup.url}/auth/token -H 'Content-Type: application/json' -d '{login}' "
        """| python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"""
    )
    return [
        f"Airflow UI/API:      {setup.url}  (user {ADMIN_USER}, password {password}; "
        f"stored in {setup.passwords_file})",
        f'  try:               curl -s -H "Authorization: Bearer {token}" {setup.url}/api/v2/dags',
        f"Airflow CLI:         AIRFLOW_HOME={setup.home} .venv/bin/airflow dags list  "
        "(with the same AIRFLOW__* environment: see docs/airflow.md)",
    ]


def process_tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (Linux /proc), 0 when it is gone."""
    total = 0
    stack = [pid]
    seen: set[int] = set()
    page = os.sysconf("SC_PAGE_SIZE")
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * page
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                stack.extend(int(c) for c in children)
        except (OSError, ValueError, IndexError):
            continue
    return total
