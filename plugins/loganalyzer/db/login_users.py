"""LOGIN users of the least-privilege roles (sql/016, sql/020), one per deployable.

Why users are made here and not in a migration: a migration is the same text on every machine
and cannot know a password; the passwords come from the environment or from files. Why each
process then connects without a password in its URL: the password goes into a libpq password
file (mode 0600, `PGPASSFILE`), so it appears in no URL, no process listing and no log line
that prints a connection string.

A user's password, in this order: `LOGANALYZER_DB_PASSWORD_<NAME>_FILE` (a file holding it),
`LOGANALYZER_DB_PASSWORD_<NAME>`, and only where the caller allows it (the local platform, a dev
profile) a random one generated once into `<secrets_dir>/<name>` (mode 0600).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

#: process name -> (LOGIN user, the group role it belongs to)
USERS: dict[str, tuple[str, str]] = {
    "consumer": ("loganalyzer_consumer_user", "loganalyzer_consumer"),
    "api": ("loganalyzer_api_user", "loganalyzer_api"),
    "grafana": ("loganalyzer_grafana_user", "loganalyzer_grafana"),
    "airflow": ("loganalyzer_airflow_user", "loganalyzer_airflow"),
    "alerts": ("loganalyzer_alerts_user", "loganalyzer_alerts"),
}

#: what templates and examples ship; refused as a password everywhere
PLACEHOLDERS = frozenset({"", "changeme", "change-me", "changethis", "password", "secret", "example"})


class LoginUserError(RuntimeError):
    """A password is missing or a placeholder: the message names the variable."""


class CannotCreateRoles(LoginUserError):
    """The connecting user may not create roles (not the database's administrator)."""


@dataclass(frozen=True)
class LoginUser:
    process: str
    user: str
    group: str
    password: str

    def __repr__(self) -> str:  # never the password
        return f"LoginUser({self.process!r}, user={self.user!r}, group={self.group!r})"


def _env_name(process: str) -> str:
    return f"LOGANALYZER_DB_PASSWORD_{process.upper()}"


def password_for(process: str, env: Mapping[str, str], secrets_dir: Path | None) -> str:
    """The process's password from the environment or a file; generated into `secrets_dir` only
    when one is given (None: a missing password is an error naming the variables)."""
    name = _env_name(process)
    if env.get(f"{name}_FILE"):
        path = Path(env[f"{name}_FILE"])
        try:
            password = path.read_text().strip()
        except OSError as exc:
            raise LoginUserError(f"{name}_FILE={path}: cannot read it ({exc.strerror})") from None
    elif name in env:
        password = env[name]
    elif secrets_dir is not None:
        path = secrets_dir / process
        if not path.exists():
            secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(24) + "\n")
        password = path.read_text().strip()
    else:
        raise LoginUserError(f"no password for the {process} user: set {name}_FILE (a file) or {name}")
    if password.lower() in PLACEHOLDERS:
        raise LoginUserError(f"{name}: the password is empty or a placeholder; set a real one")
    return password


def login_users(env: Mapping[str, str], secrets_dir: Path | None) -> list[LoginUser]:
    return [
        LoginUser(process, user, group, password_for(process, env, secrets_dir))
        for process, (user, group) in USERS.items()
    ]


def ensure_login_users(owner_url: str, users: list[LoginUser]) -> None:
    """Create each user when missing (LOGIN, member of its group role only, never a superuser)
    and set its password; run as a role that may create roles (the database's administrator).

    The password is sent as a literal of ALTER ROLE (utility statements take no parameters):
    set `log_statement` below `ddl` on servers where the statement log is kept.
    """
    try:
        with psycopg.connect(owner_url, autocommit=True, connect_timeout=5) as conn:
            for u in users:
                ident = sql.Identifier(u.user)
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (u.user,))
                    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (u.user,)).fetchone()
                    if not exists:
                        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident))
                    conn.execute(
                        sql.SQL(
                            "ALTER ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                            "NOBYPASSRLS PASSWORD {}"
                        ).format(ident, sql.Literal(u.password))
                    )
                    conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(u.group), ident))
                    # a database whose CONNECT was revoked from PUBLIC (the compose set-up)
                    conn.execute(
                        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                            sql.Identifier(str(conn.info.dbname)), ident
                        )
                    )
                    if u.process == "grafana":  # defence in depth beside its read-only grants
                        conn.execute(
                            sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(ident)
                        )
                        # a panel's SQL is typed by whoever can edit it: bound what it can cost
                        conn.execute(sql.SQL("ALTER ROLE {} SET statement_timeout = '30s'").format(ident))
    except psycopg.errors.InsufficientPrivilege as exc:
        raise CannotCreateRoles(
            f"the database user cannot create the platform's login users ({str(exc).splitlines()[0]}): "
            "connect as an administrator, or create them yourself (docs/security.md)"
        ) from None


def _pgpass_field(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def write_passfile(path: Path, owner_url: str, users: list[LoginUser], keep: Path | None = None) -> None:
    """A libpq password file with one line per user for the database's host and port (0600),
    followed by the lines of `keep` (the caller's own password file: PGPASSFILE replaces it for
    the children, and their other connections, e.g. Airflow's metadata, may need its lines)."""
    d = conninfo_to_dict(owner_url)
    host, port = str(d.get("host") or "localhost"), str(d.get("port") or 5432)
    lines = [":".join(_pgpass_field(x) for x in (host, port, "*", u.user, u.password)) + "\n" for u in users]
    if keep is not None and keep.is_file() and keep.resolve() != path.resolve():
        kept = keep.read_text()
        lines.append(kept if kept.endswith("\n") else kept + "\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.writelines(lines)
    tmp.replace(path)


def url_for(owner_url: str, user: LoginUser) -> str:
    """The owner's URL with this user and without any password (libpq finds it in PGPASSFILE)."""
    d = {k: v for k, v in conninfo_to_dict(owner_url).items() if k != "password"}
    d["user"] = user.user
    return _as_url(make_conninfo("", **{k: v for k, v in d.items() if v is not None}))


def _as_url(conninfo: str) -> str:
    """postgresql://user@host:port/db from a key=value conninfo (what the CLIs and Airflow expect)."""
    from urllib.parse import quote, urlencode

    d = dict(conninfo_to_dict(conninfo))
    user = quote(str(d.pop("user", "")), safe="")
    host = str(d.pop("host", "127.0.0.1"))
    port = str(d.pop("port", "5432"))
    db = quote(str(d.pop("dbname", "")), safe="")
    query = f"?{urlencode({k: str(v) for k, v in d.items()})}" if d else ""
    return f"postgresql://{user}@{host}:{port}/{db}{query}"


def mask_password(url: str) -> str:
    """A connection string fit to print: the password replaced by ***."""
    try:
        d = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparsable connection string>"
    if not d.get("password"):
        return url
    password = str(d["password"])
    from urllib.parse import quote

    return url.replace(quote(password, safe=""), "***").replace(password, "***")
