"""Pure parts of the login users: URLs without passwords, the libpq password file, masking."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from loganalyzer.db.login_users import LoginUser, mask_password, url_for, write_passfile

USER = LoginUser("api", "loganalyzer_api_user", "loganalyzer_api", "p:w\\d")


def test_a_process_url_names_its_user_and_carries_no_password() -> None:
    url = url_for("postgresql://postgres:owner-secret@db.example:6432/la?sslmode=require", USER)
    assert url == "postgresql://loganalyzer_api_user@db.example:6432/la?sslmode=require"
    assert url_for("host=127.0.0.1 port=5432 dbname=t user=postgres password=x", USER) == (
        "postgresql://loganalyzer_api_user@127.0.0.1:5432/t"
    )


def test_the_password_file_escapes_colons_and_backslashes_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "pgpass"
    write_passfile(path, "postgresql://postgres@db.example:6432/la", [USER])
    assert path.read_text() == "db.example:6432:*:loganalyzer_api_user:p\\:w\\\\d\n"
    assert path.stat().st_mode & 0o777 == 0o600
    own = tmp_path / "own-pgpass"
    own.write_text("db.example:6432:*:postgres:owner-secret")
    write_passfile(path, "postgresql://postgres@db.example:6432/la", [USER], keep=own)
    assert path.read_text().splitlines() == [
        "db.example:6432:*:loganalyzer_api_user:p\\:w\\\\d",
        "db.example:6432:*:postgres:owner-secret",  # the caller's own lines still reach libpq
    ]


def test_libpq_reads_the_password_from_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What every child of `up` relies on: a URL without password + PGPASSFILE."""
    path = tmp_path / "pgpass"
    user = LoginUser("owner", "postgres", "", "p:w\\d")  # a user the local server always has
    write_passfile(path, "postgresql://postgres@127.0.0.1:5432/x", [user])
    monkeypatch.setenv("PGPASSFILE", str(path))
    conninfo = url_for("postgresql://postgres@127.0.0.1:5432/postgres", user)
    try:
        # the local server trusts; libpq still fills in the password it found in the file
        with psycopg.connect(conninfo, connect_timeout=3) as conn:
            assert conn.info.password == "p:w\\d"
    except psycopg.OperationalError as exc:
        pytest.skip(f"no local PostgreSQL: {exc}")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres:s3cr%40t@db/x",
        "host=db user=postgres password=s3cr@t dbname=x",
    ],
)
def test_printed_urls_hide_the_password(url: str) -> None:
    shown = mask_password(url)
    assert "s3cr" not in shown and "***" in shown


def test_a_url_without_password_is_printed_as_is() -> None:
    assert mask_password("postgresql://postgres@db/x") == "postgresql://postgres@db/x"
