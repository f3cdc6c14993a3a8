"""Where a day's objects live in the bucket (pure): one place for the key scheme.

Hive-style keys (`date=…/tenant=…/service=…`) let Athena, Spark and pyarrow.dataset prune by
day, tenant and service without reading the files; the same values are therefore NOT repeated
as columns inside the files (query engines refuse a column that is also a partition key).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from urllib.parse import quote, unquote

MANIFEST_NAME = "_manifest.json"

#: S3 user metadata of every part: which export run wrote it, readable with a HEAD request
#: (the summary function picks the newest run's parts without downloading the others).
META_RUN_ID = "loganalyzer-run-id"
META_STARTED_AT = "loganalyzer-export-started-at"

_PART = re.compile(
    r"^(?P<prefix>.*?)/?date=(?P<date>\d{4}-\d{2}-\d{2})/tenant=(?P<tenant>[^/]+)"
    r"/service=(?P<service>[^/]+)/part-(?P<part>\d+)\.parquet$"
)


def _clean(prefix: str) -> str:
    return prefix.strip("/")


def day_prefix(prefix: str, day: date) -> str:
    """The folder of one day, with its trailing slash so that no other day shares it."""
    p = _clean(prefix)
    return f"{p}/date={day.isoformat()}/" if p else f"date={day.isoformat()}/"


def manifest_key(prefix: str, day: date) -> str:
    return day_prefix(prefix, day) + MANIFEST_NAME


def service_prefix(prefix: str, day: date, tenant: str, service: str) -> str:
    # Names are quoted so that a '/' or '=' inside a tenant or service cannot change the layout.
    return f"{day_prefix(prefix, day)}tenant={quote(tenant, safe='')}/service={quote(service, safe='')}/"


def part_key(prefix: str, day: date, tenant: str, service: str, part: int) -> str:
    return f"{service_prefix(prefix, day, tenant, service)}part-{part}.parquet"


@dataclass(frozen=True)
class PartKey:
    prefix: str
    day: date
    tenant: str
    service: str
    part: int


def parse_part_key(key: str) -> PartKey:
    """The day, tenant, service and part of an exported object's key (ValueError if it is not one)."""
    m = _PART.match(key)
    if not m:
        raise ValueError(
            f"{key!r} is not an exported part "
            "(expected PREFIX/date=YYYY-MM-DD/tenant=T/service=S/part-N.parquet)"
        )
    return PartKey(
        prefix=m["prefix"],
        day=date.fromisoformat(m["date"]),
        tenant=unquote(m["tenant"]),
        service=unquote(m["service"]),
        part=int(m["part"]),
    )
