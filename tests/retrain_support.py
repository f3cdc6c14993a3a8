"""Minute-level traffic of many services written straight into `logs` (as the consumer stores it),
with labelled incidents: the data of the retraining tests and of bench/bench_retrain.py.

Generated inside PostgreSQL (INSERT ... SELECT over generate_series), so a month of 50 services
takes a minute, not an hour. Every service has its own normal: latency, error share, message
length; an incident multiplies latency by 8 and makes 40 % of its lines ERRORs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from loganalyzer.db.connection import connect

TENANT = "acme"
LATENCIES = (20.0, 80.0, 300.0, 1200.0, 45.0, 600.0, 150.0)

_INSERT = """
INSERT INTO logs ("timestamp", tenant, service, host, level, message, kafka_topic, kafka_partition,
                  kafka_offset, duration_ms)
SELECT %(start)s::timestamptz + m * interval '1 minute' + k * (interval '60 seconds' / %(lpm)s),
       %(tenant)s, 'svc-' || lpad(s::text, 2, '0'), 'host-' || (k %% 3),
       CASE WHEN inc AND r < 0.4 THEN 'ERROR'
            WHEN r < 0.005 + (s %% 5) * 0.005 THEN 'ERROR'
            WHEN r > 0.95 THEN 'WARN' ELSE 'INFO' END,
       'request ' || k || ' served' || repeat('.', (s %% 7) * 6 + (k %% 4)),
       'retrain-data', s, (%(minute0)s::bigint + m) * %(lpm)s::int + k,
       (%(latencies)s::float8[])[1 + s %% %(n_lat)s] * (0.7 + 0.6 * r2) * CASE WHEN inc THEN 8 ELSE 1 END
FROM generate_series(%(s0)s::int, %(s1)s::int) s,
     generate_series(%(m0)s::int, %(m1)s::int) m,
     generate_series(0, %(lpm)s::int - 1) k,
     LATERAL (SELECT (hashint8(m::bigint * 7919 + k * 104729 + s)::float8 + 2147483648) / 4294967296.0
                         AS r,
                     (hashint8(m::bigint * 15485863 + k * 31 + s * 7)::float8 + 2147483648) / 4294967296.0
                         AS r2,
                     EXISTS (SELECT 1 FROM unnest(%(inc_s)s::int[], %(inc_from)s::int[], %(inc_to)s::int[])
                             AS i(si, f, t) WHERE i.si = s AND m >= i.f AND m < i.t) AS inc) x
"""


@dataclass(frozen=True)
class Incident:
    service: int
    start: datetime
    end: datetime

    def ground_truth(self) -> dict[str, str]:
        return {
            "tenant": TENANT,
            "service": f"svc-{self.service:02d}",
            "type": "latency_degradation",
            "expected_anomaly": "isolation_forest",
            "start": self.start.isoformat().replace("+00:00", "Z"),
            "end": self.end.isoformat().replace("+00:00", "Z"),
            "magnitude": "8",
        }


def write_traffic(
    url: str,
    start: datetime,
    minutes: int,
    services: int,
    logs_per_minute: int,
    incidents: list[Incident],
    chunk_minutes: int = 1440,
) -> int:
    """Insert the traffic; returns the rows written."""
    day0 = start.astimezone(UTC).date()
    days = [day0 + timedelta(days=d) for d in range((minutes + 1439) // 1440 + 1)]
    minute0 = int(start.timestamp() // 60)
    with connect(url, autocommit=True) as conn:
        for d in days:
            conn.execute("SELECT ensure_log_partition(%s)", (d,))
        for m0 in range(0, minutes, chunk_minutes):
            m1 = min(minutes, m0 + chunk_minutes) - 1
            conn.execute(
                _INSERT,
                {
                    "start": start,
                    "tenant": TENANT,
                    "lpm": logs_per_minute,
                    "minute0": minute0,
                    "latencies": list(LATENCIES),
                    "n_lat": len(LATENCIES),
                    "s0": 0,
                    "s1": services - 1,
                    "m0": m0,
                    "m1": m1,
                    "inc_s": [i.service for i in incidents],
                    "inc_from": [int((i.start - start).total_seconds() // 60) for i in incidents],
                    "inc_to": [int((i.end - start).total_seconds() // 60) for i in incidents],
                },
            )
    return minutes * services * logs_per_minute


def write_ground_truth(path: Path, incidents: list[Incident]) -> Path:
    path.write_text("".join(json.dumps(i.ground_truth()) + "\n" for i in incidents))
    return path


def days_of(start: datetime, minutes: int) -> list[date]:
    return sorted({(start + timedelta(minutes=m)).date() for m in range(0, minutes, 60)})
