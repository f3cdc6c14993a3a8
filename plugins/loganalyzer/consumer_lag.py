"""Consumer lag per partition from librdkafka's statistics, against offsets stored in PostgreSQL.

Why not librdkafka's own `consumer_lag`: it subtracts the offset committed to Kafka, and this
consumer keeps its offsets in PostgreSQL (committing to Kafka only as a courtesy), so that
figure is -1 or stale. Why not a ListOffsets ("latest") lookup: the embedded broker (Tansu)
answers it wrongly. The high watermark that each fetch response carries (`hi_offset` in the
statistics) was exact on Tansu 0.6.0 as on Kafka (tests/integration/test_consumer_lag.py), so
lag = that watermark - the next offset stored with the rows, per owned partition.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def high_watermarks(stats: Mapping[str, Any], topic: str) -> dict[int, int]:
    """Partition -> high watermark from one librdkafka statistics document (stats_cb's JSON).

    Partitions the client has not fetched yet report -1 (or -1001): they are left out, as is
    librdkafka's internal partition -1.
    """
    partitions = stats.get("topics", {}).get(topic, {}).get("partitions", {})
    out: dict[int, int] = {}
    for key, p in partitions.items():
        partition, hi = int(key), int(p.get("hi_offset", -1))
        if partition >= 0 and hi >= 0:
            out[partition] = hi
    return out


def lag(watermarks: Mapping[int, int], stored: Mapping[int, int]) -> dict[int, int]:
    """Records not yet in PostgreSQL, per partition known on both sides (never negative: a
    watermark from an older statistics document can trail a newer stored offset)."""
    return {p: max(0, hi - stored[p]) for p, hi in watermarks.items() if p in stored}
