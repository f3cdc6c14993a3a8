"""Daily database upkeep: index closed days, drop exported days past retention, VACUUM.

Why retention asks S3 first: a day's partition is the only copy of its logs until its export
is complete, and the export's manifest is written after all of the day's objects
(loganalyzer.export). So a day older than the retention horizon is dropped only when its
manifest exists; a day whose export failed stays, and the report names it.

Why alert_deliveries are trimmed here: one row per episode event is kept for ever otherwise.
Settled rows (sent, failed, skipped) older than `alert_keep_days` go, except those of episodes
still open: their 'opened' row is what stops the alerts process from announcing them again.

Why VACUUM here: `detector_checkpoints` and `ingest_offsets` are rewritten every few seconds,
`anomalies`, `log_patterns`, `hourly_metrics` and `cost_snapshots` are upserted; with autovacuum
off their dead row versions are never reclaimed otherwise (docs/schema.md). VACUUM cannot run in
a transaction block, so the connection must be in autocommit mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg
from psycopg import sql

#: tables updated in place (upserts and rewrites), vacuumed when they exist
VACUUM_TABLES = (
    "detector_checkpoints",
    "ingest_offsets",
    "anomalies",
    "log_patterns",
    "hourly_metrics",
    "cost_snapshots",
    "alert_deliveries",
)

#: settled alert deliveries are kept this many days by default (the audit of what was sent)
ALERT_KEEP_DAYS = 30

_TRIM_DELIVERIES = """
DELETE FROM alert_deliveries d
WHERE d.state <> 'pending' AND d.created_at < %s
  AND NOT EXISTS (SELECT 1 FROM anomalies a WHERE a.id = d.anomaly_id AND a.status = 'open')
"""

_PARTITIONS = """
SELECT c.relname, to_date(substr(c.relname, 7), 'YYYYMMDD')
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'logs'::regclass AND c.relname ~ '^logs_p[0-9]{8}$'
ORDER BY 2
"""


@dataclass
class MaintenanceReport:
    indexed: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    #: days past retention kept because their export manifest is missing
    kept_unexported: list[str] = field(default_factory=list)
    vacuumed: list[str] = field(default_factory=list)
    #: analyzed only: the connecting role does not own them (autovacuum vacuums them)
    analyzed: list[str] = field(default_factory=list)
    #: settled alert_deliveries rows deleted by retention
    alert_deliveries_deleted: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert_deliveries_deleted": self.alert_deliveries_deleted,
            "indexed": self.indexed,
            "dropped": self.dropped,
            "kept_unexported": self.kept_unexported,
            "vacuumed": self.vacuumed,
            "analyzed": self.analyzed,
        }


def _exists(conn: psycopg.Connection, table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    return bool(row and row[0])


def log_partitions(conn: psycopg.Connection) -> list[tuple[str, date]]:
    return [(str(name), day) for name, day in conn.execute(_PARTITIONS)]


def retention_plan(
    partitions: list[tuple[str, date]], before: date, has_manifest: Callable[[date], bool]
) -> tuple[list[tuple[str, date]], list[tuple[str, date]]]:
    """(partitions to drop, partitions past retention kept for lack of a manifest)."""
    drop: list[tuple[str, date]] = []
    keep: list[tuple[str, date]] = []
    for name, day in partitions:
        if day >= before:
            continue
        (drop if has_manifest(day) else keep).append((name, day))
    return drop, keep


def maintain(
    conn: psycopg.Connection,
    today: date,
    *,
    keep_days: int = 0,
    has_manifest: Callable[[date], bool] | None = None,
    vacuum: bool = True,
    alert_keep_days: int = ALERT_KEEP_DAYS,
) -> MaintenanceReport:
    """`loganalyzer db maintain` + manifest-guarded retention + VACUUM (ANALYZE).

    `keep_days` = 0 keeps every day. With retention on, `has_manifest(day)` must be given.
    `alert_keep_days` = 0 keeps every alert delivery.
    """
    if not conn.autocommit:
        raise ValueError("maintenance needs an autocommit connection (VACUUM cannot run in a transaction)")
    report = MaintenanceReport()
    report.indexed = [str(r[0]) for r in conn.execute("SELECT index_closed_log_partitions(%s)", (today,))]
    if keep_days:
        if has_manifest is None:
            raise ValueError(
                "retention needs a manifest check: refusing to drop days not known to be exported"
            )
        drop, keep = retention_plan(log_partitions(conn), today - timedelta(days=keep_days), has_manifest)
        for name, _ in drop:
            # through the owner's function: the Airflow role may not DROP a table itself
            conn.execute("SELECT drop_log_partition(%s)", (name,))
            report.dropped.append(name)
        report.kept_unexported = [name for name, _ in keep]
    if alert_keep_days and _exists(conn, "alert_deliveries"):
        horizon = datetime.combine(today - timedelta(days=alert_keep_days), time.min, UTC)
        report.alert_deliveries_deleted = conn.execute(_TRIM_DELIVERIES, (horizon,)).rowcount
    if vacuum:
        for table in VACUUM_TABLES:
            row = conn.execute(
                "SELECT to_regclass(%s) IS NOT NULL, "
                "pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = to_regclass(%s)), "
                "'MEMBER')",
                (table, table),
            ).fetchone()
            if not (row and row[0]):
                continue
            if row[1]:
                conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))
                report.vacuumed.append(table)
            else:  # the Airflow role: autovacuum vacuums, the owner's function analyzes (sql/020)
                conn.execute("SELECT analyze_table(%s)", (table,))
                report.analyzed.append(table)
    return report
