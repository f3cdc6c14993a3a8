"""Connecting to PostgreSQL, and creating the project's database on first use."""

from __future__ import annotations

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo


def connect(
    url: str, *, autocommit: bool = False, application_name: str = "loganalyzer"
) -> psycopg.Connection:
    """Open a connection with a short connect timeout, so that an unavailable server is reported fast."""
    return psycopg.connect(url, autocommit=autocommit, connect_timeout=5, application_name=application_name)


def database_name(url: str) -> str:
    return str(conninfo_to_dict(url).get("dbname") or "postgres")


def ensure_database(url: str) -> bool:
    """Create the database named in `url` when it does not exist. Returns True when it was created.

    Why: `loganalyzer up` on a fresh machine must work with only the server running. The
    maintenance connection goes to the `postgres` database of the same server.
    """
    name = database_name(url)
    admin_url = make_conninfo(url, dbname="postgres")
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return False
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:
            return False  # created concurrently by another process: fine
        return True


def drop_database(url: str) -> None:
    """Drop the database named in `url` (tests only), terminating its other sessions first."""
    name = database_name(url)
    admin_url = make_conninfo(url, dbname="postgres")
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
