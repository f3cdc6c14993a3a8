"""Export one UTC day of `logs` to Parquet objects and a manifest.

Order of effects, so that a crash at any point leaves a consistent bucket:
1. every part of the day is written (to a spool file, then uploaded, while the next is written);
2. the manifest is written: from here on the day counts as exported;
3. objects of the day that this run did not write (an earlier run's extra parts) are deleted.
A re-run therefore replaces exactly that day's objects; other days' keys never share its prefix.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from loganalyzer.export.checksum import RowChecksum, day_start
from loganalyzer.export.layout import META_RUN_ID, META_STARTED_AT, day_prefix, manifest_key
from loganalyzer.export.manifest import ExportManifest, ExportObject, exporter_version
from loganalyzer.export.source import SourceError, read_day
from loganalyzer.export.store import LocalStore, ObjectStore, S3Store
from loganalyzer.export.writer import MAX_ROWS_PER_FILE, DayWriter, FinishedFile

#: files finished and waiting for upload at most; bounds the spool's disk use and the run's RSS
_UPLOAD_BACKLOG = 2

Progress = Callable[[int], None]


def export_day(
    database_url: str,
    s3_client: Any,
    bucket: str,
    day: date,
    *,
    prefix: str = "logs",
    progress: Progress | None = None,
) -> ExportManifest:
    """Export `day` (UTC) from the database to `bucket` through a boto3 S3 client.

    `progress`, when given, is called with the number of rows of each batch read (for a bar).
    A day without logs writes a manifest with no objects. Raises StoreError or SourceError
    with a message naming the setting to check.
    """
    return export_day_to(database_url, S3Store(s3_client, bucket), day, prefix=prefix, progress=progress)


def export_day_to_folder(
    database_url: str, root: Path, day: date, *, prefix: str = "logs", progress: Progress | None = None
) -> ExportManifest:
    """The same export into a local folder laid out like the bucket."""
    return export_day_to(database_url, LocalStore(root), day, prefix=prefix, progress=progress)


def manifest_exists(s3_client: Any, bucket: str, day: date, prefix: str = "logs") -> bool:
    """Whether `day` has been exported completely (its manifest is written last)."""
    return S3Store(s3_client, bucket).exists(manifest_key(prefix, day))


def anomaly_counts(database_url: str, day: date) -> dict[tuple[str, str], int]:
    """Anomaly episodes per (tenant, service) that started on `day`.

    Why they travel with the export: the summary Lambda reads only S3 and has no access to
    the database, and `anomalies` is not derivable from the logs alone.
    """
    import psycopg

    from loganalyzer.db.connection import connect

    lo, hi = day_start(day), day_start(day + timedelta(days=1))
    try:
        with connect(database_url) as conn:
            rows = conn.execute(
                "SELECT tenant, service, count(*) FROM anomalies"
                " WHERE window_start >= %s AND window_start < %s GROUP BY tenant, service",
                (lo, hi),
            ).fetchall()
    except psycopg.Error as exc:
        raise SourceError(f"cannot read the day's anomalies from PostgreSQL (DATABASE_URL): {exc}") from exc
    return {(str(t), str(s)): int(n) for t, s, n in rows}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def export_day_to(
    database_url: str,
    store: ObjectStore,
    day: date,
    *,
    prefix: str = "logs",
    progress: Progress | None = None,
    bucket_name: str | None = None,
    max_rows_per_file: int = MAX_ROWS_PER_FILE,
) -> ExportManifest:
    started = datetime.now(UTC)
    run_id = uuid.uuid4().hex
    bucket = bucket_name or getattr(store, "bucket", None) or str(getattr(store, "root", ""))
    counts = anomaly_counts(database_url, day)
    file_metadata = {
        "loganalyzer.date": day.isoformat(),
        "loganalyzer.run_id": run_id,
        "loganalyzer.export_started_at": started.isoformat(),
        "loganalyzer.exporter": exporter_version(),
    }
    object_metadata = {META_RUN_ID: run_id, META_STARTED_AT: started.isoformat()}
    written: list[ExportObject] = []
    slots = threading.BoundedSemaphore(_UPLOAD_BACKLOG)
    futures: list[Future[ExportObject]] = []

    def upload(f: FinishedFile) -> ExportObject:
        try:
            size = f.path.stat().st_size
            digest = _sha256(f.path)
            store.put_file(f.key, f.path, object_metadata)
            return ExportObject(
                key=f.key,
                tenant=f.tenant,
                service=f.service,
                part=f.part,
                rows=f.rows,
                bytes=size,
                sha256=digest,
                min_timestamp=f.min_timestamp,
                max_timestamp=f.max_timestamp,
                anomaly_count=f.anomaly_count,
                checksum=f.checksum,
            )
        finally:
            f.path.unlink(missing_ok=True)
            slots.release()

    with tempfile.TemporaryDirectory(prefix="la-export-") as spool, ThreadPoolExecutor(1) as pool:

        def on_file(f: FinishedFile) -> None:
            slots.acquire()
            # a failed upload stops the export at the next file instead of at the end
            failed = next((x for x in futures[-_UPLOAD_BACKLOG - 1 :] if x.done() and x.exception()), None)
            if failed is not None:
                slots.release()
                f.path.unlink(missing_ok=True)
                raise failed.exception()  # type: ignore[misc]
            futures.append(pool.submit(upload, f))

        writer = DayWriter(
            day,
            prefix,
            Path(spool),
            on_file,
            file_metadata=file_metadata,
            anomaly_counts=counts,
            max_rows_per_file=max_rows_per_file,
        )
        try:
            for batch in read_day(database_url, day):
                writer.write(batch)
                if progress is not None:
                    progress(batch.num_rows)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        written = [fut.result() for fut in futures]

    total = RowChecksum()
    for o in written:
        total = total + o.checksum
    keep = {o.key for o in written} | {manifest_key(prefix, day)}
    stale = sorted(k for k in store.list_keys(day_prefix(prefix, day)) if k not in keep)
    manifest = ExportManifest(
        day=day,
        bucket=bucket,
        prefix=prefix,
        run_id=run_id,
        started_at=started,
        finished_at=datetime.now(UTC),
        objects=tuple(written),
        row_checksum=total,
        removed_objects=tuple(stale),
    )
    store.put_bytes(manifest_key(prefix, day), manifest.to_json(), "application/json")
    if stale:
        store.delete(stale)
    return manifest
