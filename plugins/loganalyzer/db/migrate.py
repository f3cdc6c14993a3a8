"""Applies the numbered SQL files in sql/ in order, once each, recording what it applied.

Why checksums: a migration that was edited after it ran would silently diverge between
machines; the runner refuses that with a message that says which file and what to do.
Why an advisory lock: several processes (`up`, tests, an Airflow task) may migrate at once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from loganalyzer.settings import project_root

_MIGRATION_NAME = re.compile(r"^(\d{3,})_[a-z0-9_]+\.sql$")
_LOCK_KEY = 7_345_210_001


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def default_sql_dir() -> Path:
    return project_root() / "sql"


def discover(sql_dir: Path) -> list[Migration]:
    """The migrations in `sql_dir`, ordered by version; refuses stray or duplicate names."""
    if not sql_dir.is_dir():
        raise MigrationError(f"migration folder {sql_dir} does not exist")
    found: dict[str, Migration] = {}
    for path in sorted(sql_dir.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files must be named NNN_lower_snake_name.sql")
        version = match.group(1)
        if version in found:
            raise MigrationError(
                f"two migrations share version {version}: {found[version].name}, {path.name}"
            )
        found[version] = Migration(version, path.name, path.read_text())
    return [found[v] for v in sorted(found, key=int)]


def migrate(conn: psycopg.Connection, sql_dir: Path | None = None) -> list[str]:
    """Apply pending migrations, each in its own transaction. Returns the names applied."""
    migrations = discover(sql_dir or default_sql_dir())
    conn.autocommit = True
    if _up_to_date(conn, migrations):
        # Nothing to do: return before CREATE TABLE IF NOT EXISTS, which needs CREATE on the
        # schema, so that a process logged in with an application role (sql/016_roles.sql)
        # starts on an up-to-date database; the checksums were verified read-only.
        return []
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    text PRIMARY KEY,
                name       text NOT NULL,
                checksum   text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        applied = {
            row[0]: (row[1], row[2])
            for row in conn.execute("SELECT version, name, checksum FROM schema_migrations")
        }
        done: list[str] = []
        for m in migrations:
            if m.version in applied:
                name, checksum = applied[m.version]
                if checksum != m.checksum:
                    raise MigrationError(
                        f"{m.name} changed after it was applied (as {name}); add a new numbered "
                        "migration instead of editing an applied one"
                    )
                continue
            with conn.transaction():
                conn.execute(m.sql)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (m.version, m.name, m.checksum),
                )
            done.append(m.name)
        return done
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


def _up_to_date(conn: psycopg.Connection, migrations: list[Migration]) -> bool:
    """Every migration applied, unchanged (raises MigrationError on an edited one); reads only."""
    exists = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
    if not exists or exists[0] is None:
        return False
    applied = {
        row[0]: (row[1], row[2])
        for row in conn.execute("SELECT version, name, checksum FROM schema_migrations")
    }
    for m in migrations:
        if m.version not in applied:
            return False
        name, checksum = applied[m.version]
        if checksum != m.checksum:
            raise MigrationError(
                f"{m.name} changed after it was applied (as {name}); add a new numbered "
                "migration instead of editing an applied one"
            )
    return True


def pending(conn: psycopg.Connection, sql_dir: Path | None = None) -> list[str]:
    """Names of migrations not applied yet (for `db status`)."""
    migrations = discover(sql_dir or default_sql_dir())
    exists = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
    if not exists or exists[0] is None:
        return [m.name for m in migrations]
    applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    return [m.name for m in migrations if m.version not in applied]


def create_and_migrate(database_url: str) -> tuple[bool, list[str]]:
    """Create the database when missing, then apply pending migrations: what every long-running
    command does at start. Returns (created, names applied)."""
    from loganalyzer.db.connection import connect, ensure_database

    created = ensure_database(database_url)
    with connect(database_url) as conn:
        return created, migrate(conn)
