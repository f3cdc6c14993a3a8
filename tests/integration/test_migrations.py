"""The migration runner against a real PostgreSQL: idempotent, recorded, refuses edited history."""

from __future__ import annotations

from pathlib import Path

import pytest

from loganalyzer.db.connection import connect
from loganalyzer.db.migrate import MigrationError, default_sql_dir, discover, migrate, pending

pytestmark = pytest.mark.integration


def test_migrate_is_idempotent_and_recorded(database_url: str) -> None:
    with connect(database_url) as conn:
        assert migrate(conn) == []  # the fixture already applied everything
        assert pending(conn) == []
        names = [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY version")]
    assert names == [m.name for m in discover(default_sql_dir())]


def test_every_table_has_a_comment(database_url: str) -> None:
    with connect(database_url) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relispartition = false "
            "AND c.relname <> 'schema_migrations' AND obj_description(c.oid, 'pg_class') IS NULL"
        ).fetchall()
    assert rows == []


def test_an_edited_applied_migration_is_refused(database_url: str, tmp_path: Path) -> None:
    for m in discover(default_sql_dir()):
        (tmp_path / m.name).write_text(m.sql)
    first = sorted(tmp_path.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with connect(database_url) as conn, pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(conn, tmp_path)


def test_a_new_migration_is_applied_once(database_url: str, tmp_path: Path) -> None:
    for m in discover(default_sql_dir()):
        (tmp_path / m.name).write_text(m.sql)
    (tmp_path / "999_extra_table.sql").write_text(
        "CREATE TABLE extra (id int); COMMENT ON TABLE extra IS 'test';"
    )
    with connect(database_url) as conn:
        assert migrate(conn, tmp_path) == ["999_extra_table.sql"]
        assert migrate(conn, tmp_path) == []


def test_a_failing_migration_leaves_nothing_behind(database_url: str, tmp_path: Path) -> None:
    for m in discover(default_sql_dir()):
        (tmp_path / m.name).write_text(m.sql)
    (tmp_path / "998_broken.sql").write_text("CREATE TABLE half (id int); SELECT 1/0;")
    with connect(database_url) as conn:
        with pytest.raises(Exception, match="division by zero"):
            migrate(conn, tmp_path)
        assert conn.execute("SELECT to_regclass('half')").fetchone() == (None,)
        assert "998_broken.sql" in pending(conn, tmp_path)


@pytest.mark.parametrize("name", ["1_short.sql", "002-dash.sql", "003_UPPER.sql", "notes.sql"])
def test_badly_named_files_are_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="must be named"):
        discover(tmp_path)


def test_partition_helpers(database_url: str) -> None:
    with connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT ensure_log_partition('2026-01-02')")
        conn.execute("SELECT ensure_log_partition('2026-01-02')")  # idempotent
        conn.execute("SELECT ensure_log_partition('2026-01-05')")
        dropped = [r[0] for r in conn.execute("SELECT drop_log_partitions_before('2026-01-05')")]
        left = [
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'logs'::regclass"
            )
        ]
    assert dropped == ["logs_p20260102"]
    assert left == ["logs_p20260105"]


def test_closed_days_get_the_full_service_index(database_url: str) -> None:
    with connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT ensure_log_partition('2026-01-02')")
        conn.execute("SELECT ensure_log_partition('2026-01-03')")
        built = [r[0] for r in conn.execute("SELECT index_closed_log_partitions('2026-01-03')")]
        again = [r[0] for r in conn.execute("SELECT index_closed_log_partitions('2026-01-03')")]
    # sql/014: a closed day is rebuilt once with its search column, GIN and time index too
    assert built == [
        "logs_p20260102_service_time_idx",
        "logs_p20260102_search_gin",
        "logs_p20260102_time_idx",
    ]
    assert again == []
