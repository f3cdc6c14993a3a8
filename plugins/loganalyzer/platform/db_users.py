"""Which PostgreSQL user each process of `loganalyzer up` connects as.

The database's administrator (DATABASE_URL) applies the migrations and creates the login users;
every long-running process then gets the URL of its own least-privilege user, and the passwords
reach libpq through one password file (PGPASSFILE) in the state folder, never a URL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from loganalyzer.db.login_users import (
    CannotCreateRoles,
    ensure_login_users,
    login_users,
    url_for,
    write_passfile,
)


@dataclass(frozen=True)
class ProcessDatabases:
    """DATABASE_URL per process (consumer, api, grafana, airflow, alerts) and the environment
    every child needs to use them (PGPASSFILE)."""

    urls: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)
    #: why the processes connect as the administrator instead, or None
    fallback_reason: str | None = None

    def url(self, process: str) -> str:
        return self.urls[process]


def prepare_process_databases(
    owner_url: str, state_dir: Path, environ: Mapping[str, str] | None = None
) -> ProcessDatabases:
    """Create/refresh the login users and the password file. Passwords come from
    LOGANALYZER_DB_PASSWORD_<NAME>[_FILE] or are generated once into state/db-users/ (the local
    platform is a dev profile); a placeholder raises LoginUserError. When the administrator may
    not create roles, every process uses `owner_url` and `fallback_reason` says why."""
    env = os.environ if environ is None else environ
    users = login_users(env, state_dir / "db-users")  # LoginUserError: a missing/placeholder password
    try:
        ensure_login_users(owner_url, users)
    except CannotCreateRoles as exc:
        names = ("consumer", "api", "grafana", "airflow", "alerts")
        return ProcessDatabases({n: owner_url for n in names}, {}, str(exc))
    passfile = state_dir / "db-users" / "pgpass"
    own = env.get("PGPASSFILE") or str(Path.home() / ".pgpass")
    write_passfile(passfile, owner_url, users, keep=Path(own))
    return ProcessDatabases({u.process: url_for(owner_url, u) for u in users}, {"PGPASSFILE": str(passfile)})
