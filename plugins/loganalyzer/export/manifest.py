"""The manifest of one exported day: what was written, and how to check it (pure data).

Why a manifest: S3 has no transaction over several objects. The manifest is written after every
part of the day, so its presence says "this day is complete" (maintenance drops a day's
partition only then), and it lists exactly the objects of the run, their sizes and sha256, and
a row checksum that PostgreSQL can recompute (checksum.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib import metadata
from typing import Any

from loganalyzer.export.checksum import RowChecksum

#: Version of the export's format (layout, schema, manifest). Bump when a reader must change.
FORMAT_VERSION = 1


def exporter_version() -> str:
    try:
        package = metadata.version("smart-log-analyzer")
    except metadata.PackageNotFoundError:
        package = "unknown"
    return f"loganalyzer-export/{FORMAT_VERSION} (smart-log-analyzer {package})"


@dataclass(frozen=True)
class ExportObject:
    key: str
    tenant: str
    service: str
    part: int
    rows: int
    bytes: int
    sha256: str
    min_timestamp: str
    max_timestamp: str
    #: anomaly episodes of this tenant/service that started on the day (from `anomalies`)
    anomaly_count: int
    checksum: RowChecksum

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "tenant": self.tenant,
            "service": self.service,
            "part": self.part,
            "rows": self.rows,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "min_timestamp": self.min_timestamp,
            "max_timestamp": self.max_timestamp,
            "anomaly_count": self.anomaly_count,
            "row_checksum": self.checksum.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExportObject:
        return cls(
            key=d["key"],
            tenant=d["tenant"],
            service=d["service"],
            part=int(d["part"]),
            rows=int(d["rows"]),
            bytes=int(d["bytes"]),
            sha256=d["sha256"],
            min_timestamp=d["min_timestamp"],
            max_timestamp=d["max_timestamp"],
            anomaly_count=int(d["anomaly_count"]),
            checksum=RowChecksum.from_dict(d["row_checksum"]),
        )


@dataclass(frozen=True)
class ExportManifest:
    day: date
    bucket: str
    prefix: str
    run_id: str
    started_at: datetime
    finished_at: datetime
    objects: tuple[ExportObject, ...]
    row_checksum: RowChecksum
    #: keys of the day left by an earlier run and removed by this one
    removed_objects: tuple[str, ...] = ()
    exporter: str = field(default_factory=exporter_version)
    format_version: int = FORMAT_VERSION

    @property
    def total_rows(self) -> int:
        return sum(o.rows for o in self.objects)

    @property
    def total_bytes(self) -> int:
        return sum(o.bytes for o in self.objects)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "exporter": self.exporter,
            "date": self.day.isoformat(),
            "bucket": self.bucket,
            "prefix": self.prefix,
            "run_id": self.run_id,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "total_rows": self.total_rows,
            "total_bytes": self.total_bytes,
            "object_count": len(self.objects),
            "row_checksum": self.row_checksum.to_dict(),
            "objects": [o.to_dict() for o in self.objects],
            "removed_objects": list(self.removed_objects),
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False).encode()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExportManifest:
        return cls(
            day=date.fromisoformat(d["date"]),
            bucket=d["bucket"],
            prefix=d["prefix"],
            run_id=d["run_id"],
            started_at=datetime.fromisoformat(d["started_at"]),
            finished_at=datetime.fromisoformat(d["finished_at"]),
            objects=tuple(ExportObject.from_dict(o) for o in d["objects"]),
            row_checksum=RowChecksum.from_dict(d["row_checksum"]),
            removed_objects=tuple(d.get("removed_objects", ())),
            exporter=d["exporter"],
            format_version=int(d["format_version"]),
        )
