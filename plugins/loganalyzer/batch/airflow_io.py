"""What a DAG task needs from Airflow: its connections, its interval, as plain values.

Why a module of its own: the batch jobs take a database URL or a boto3 client and know nothing of
Airflow; the DAGs import this module inside their tasks (never at parse time) to turn the
Airflow connections into those. Every failure here names the connection id and what to set, so
a wrong `AIRFLOW_CONN_*` or a connection edited in the UI is an error a person can act on.

Connections (docs/airflow.md):
- `loganalyzer_db`: the product's PostgreSQL (type postgres).
- `loganalyzer_aws`: the Amazon provider's AWS connection; `endpoint_url` in its extra points
  the clients at a local endpoint (moto), `region_name` sets the region.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

DB_CONN_ID = "loganalyzer_db"
AWS_CONN_ID = "loganalyzer_aws"


class ConnectionSettingError(RuntimeError):
    """An Airflow connection is missing or does not work; the message names it."""


def _connection(conn_id: str) -> Any:
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception as exc:  # AirflowNotFoundException and whatever a secrets backend raises
        raise ConnectionSettingError(
            f"Airflow connection {conn_id!r} is not defined ({exc}): create it in the UI or set "
            f"AIRFLOW_CONN_{conn_id.upper()} (see docs/airflow.md)"
        ) from None


def database_url(conn_id: str = DB_CONN_ID) -> str:
    """A libpq URL for the connection `conn_id` (type postgres)."""
    c = _connection(conn_id)
    if not c.host:
        raise ConnectionSettingError(f"Airflow connection {conn_id!r} has no host")
    params: dict[str, Any] = {"host": c.host, "port": c.port or 5432, "dbname": c.schema or "loganalyzer"}
    if c.login:
        params["user"] = c.login
    if c.password:
        params["password"] = c.password
    return make_conninfo("", **params)


@contextmanager
def open_database(conn_id: str = DB_CONN_ID, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
    """A psycopg connection through `conn_id`; a refused or unknown server names the connection."""
    from loganalyzer.db.connection import connect

    url = database_url(conn_id)
    try:
        conn = connect(url, autocommit=autocommit, application_name=f"airflow:{conn_id}")
    except psycopg.OperationalError as exc:
        raise ConnectionSettingError(
            f"cannot connect to PostgreSQL through Airflow connection {conn_id!r}: "
            f"{str(exc).strip().splitlines()[0]}"
        ) from None
    with conn:
        yield conn


def aws_client(service: str, conn_id: str = AWS_CONN_ID) -> Any:
    """A boto3 client built by the Amazon provider from `conn_id` (endpoint_url from its extra)."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    _connection(conn_id)  # a missing connection names itself here, not as a credentials error
    try:
        return AwsBaseHook(aws_conn_id=conn_id, client_type=service).get_conn()
    except Exception as exc:
        raise ConnectionSettingError(
            f"Airflow connection {conn_id!r} cannot make a {service} client: {exc}"
        ) from None


@contextmanager
def aws_errors(conn_id: str = AWS_CONN_ID) -> Iterator[None]:
    """Re-raise an unreachable endpoint or refused credentials as an error naming `conn_id`.

    The export's object store wraps botocore's errors in its own StoreError (naming the bucket
    and endpoint but not the Airflow connection), so that one is re-raised here too."""
    from botocore.exceptions import BotoCoreError, ClientError

    from loganalyzer.export.store import StoreError

    try:
        yield
    except (BotoCoreError, ClientError, StoreError) as exc:
        raise ConnectionSettingError(
            f"AWS call through Airflow connection {conn_id!r} failed: {exc}"
        ) from exc


def closed_day(interval_end: datetime) -> date:
    """The UTC day that ended at (or before) a daily run's interval end: the day to process."""
    return (interval_end.astimezone(UTC) - timedelta(microseconds=1)).date()


def interval_end(context: Any) -> datetime:
    """The run's data interval end (a manual run without one: its logical date)."""
    end = context.get("data_interval_end") or context.get("logical_date")
    if end is None:
        raise ValueError("this run has neither a data interval nor a logical date")
    return datetime.fromtimestamp(end.timestamp(), UTC)
