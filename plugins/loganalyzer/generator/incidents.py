"""Labelled incidents: what each type does to traffic, scenario files, random and demo schedules.

The ground truth of every injected incident is the yardstick of the detection benchmarks, so an
incident's effect is strictly limited to [start, end) of event time and to its own service.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from loganalyzer.generator.services import CATALOGUE, ServiceSpec, service_by_name

INCIDENT_TYPES = ("error_burst", "traffic_spike", "outage", "new_error_pattern", "latency_degradation")

#: What the detector should report for each injected type (the benchmark's mapping).
EXPECTED_ANOMALY = {
    "error_burst": "error_rate_spike",
    "traffic_spike": "log_volume_spike",
    "outage": "log_volume_drop",
    "new_error_pattern": "new_error_pattern",
    "latency_degradation": "isolation_forest",
}

DEFAULT_MAGNITUDE = {
    "error_burst": 0.3,  # share of ERROR lines during the incident (normal: ~1 %)
    "traffic_spike": 8.0,  # volume multiplier
    "outage": 0.0,  # volume multiplier: 0 = the service goes silent
    "new_error_pattern": 0.15,  # share of lines that are the new error
    "latency_degradation": 6.0,  # duration_ms multiplier
}


class ScenarioError(ValueError):
    """A scenario file is invalid; the message says where and what to fix."""


@dataclass(frozen=True)
class Incident:
    type: str
    tenant: str
    service: str
    start: datetime
    end: datetime
    magnitude: float

    def active(self, t: datetime) -> bool:
        return self.start <= t < self.end

    def ground_truth(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "service": self.service,
            "type": self.type,
            "expected_anomaly": EXPECTED_ANOMALY[self.type],
            "start": self.start.isoformat().replace("+00:00", "Z"),
            "end": self.end.isoformat().replace("+00:00", "Z"),
            "magnitude": self.magnitude,
        }


_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> timedelta:
    """'90s', '15m', '2h30m', '1d' -> timedelta."""
    m = _DURATION.match(text.strip())
    if not text.strip() or m is None or not any(m.groups()):
        raise ScenarioError(f"{text!r} is not a duration like 90s, 15m, 2h30m or 1d")
    d, h, mi, s = (int(g or 0) for g in m.groups())
    return timedelta(days=d, hours=h, minutes=mi, seconds=s)


def _when(value: Any, origin: datetime, where: str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value)
    if "T" in text or ":" in text:
        try:
            ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ScenarioError(
                f"{where}: start {text!r} is neither an RFC 3339 time nor an offset"
            ) from None
        return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    try:
        return origin + parse_duration(text)
    except ScenarioError as exc:
        raise ScenarioError(f"{where}: start: {exc}") from None


def incidents_from_mapping(doc: Any, origin: datetime) -> list[Incident]:
    """Validate a scenario document ({incidents: [...]}) with messages that say what to fix."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("incidents"), list):
        raise ScenarioError("a scenario is a mapping with a list under 'incidents'")
    out: list[Incident] = []
    for i, item in enumerate(doc["incidents"]):
        where = f"incidents[{i}]"
        if not isinstance(item, Mapping):
            raise ScenarioError(f"{where}: expected a mapping with type, service, start, duration")
        unknown = set(item) - {"type", "service", "tenant", "start", "duration", "magnitude"}
        if unknown:
            raise ScenarioError(f"{where}: unknown keys {sorted(unknown)}")
        kind = item.get("type")
        if kind not in INCIDENT_TYPES:
            raise ScenarioError(f"{where}: type {kind!r} is not one of {', '.join(INCIDENT_TYPES)}")
        try:
            spec = service_by_name(str(item.get("service")))
        except KeyError as exc:
            raise ScenarioError(f"{where}: {exc.args[0]}") from None
        if "start" not in item or "duration" not in item:
            raise ScenarioError(f"{where}: 'start' and 'duration' are required")
        start = _when(item["start"], origin, where)
        try:
            duration = parse_duration(str(item["duration"]))
        except ScenarioError as exc:
            raise ScenarioError(f"{where}: duration: {exc}") from None
        magnitude = item.get("magnitude", DEFAULT_MAGNITUDE[kind])
        if not isinstance(magnitude, int | float) or magnitude < 0:
            raise ScenarioError(f"{where}: magnitude must be a number >= 0")
        if kind in ("error_burst", "new_error_pattern") and magnitude > 1:
            raise ScenarioError(f"{where}: magnitude of {kind} is a share of lines, between 0 and 1")
        out.append(
            Incident(
                kind,
                str(item.get("tenant") or spec.tenant),
                spec.name,
                start,
                start + duration,
                float(magnitude),
            )
        )
    return sorted(out, key=lambda inc: inc.start)


def load_scenario(path: Path, origin: datetime) -> list[Incident]:
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path} is not valid YAML: {exc}") from None
    try:
        return incidents_from_mapping(doc, origin)
    except ScenarioError as exc:
        raise ScenarioError(f"{path}: {exc}") from None


def random_scenario(
    services: Sequence[ServiceSpec],
    start: datetime,
    end: datetime,
    count_per_type: int,
    seed: int = 0,
    duration: tuple[timedelta, timedelta] = (timedelta(minutes=8), timedelta(minutes=15)),
    min_gap: timedelta = timedelta(minutes=30),
) -> list[Incident]:
    """Spread `count_per_type` incidents of every type over [start, end), never two on one service
    closer than `min_gap` (so the detector's baseline recovers between them)."""
    rng = random.Random(seed)
    busy: dict[str, list[tuple[datetime, datetime]]] = {s.name: [] for s in services}
    out: list[Incident] = []
    span = (end - start - duration[1]).total_seconds()
    if span <= 0:
        raise ValueError("the interval is shorter than one incident")
    for kind in INCIDENT_TYPES:
        placed = 0
        for _attempt in range(count_per_type * 500):
            if placed == count_per_type:
                break
            spec = rng.choice(services)
            length = duration[0] + (duration[1] - duration[0]) * rng.random()
            t0 = start + timedelta(seconds=int(rng.uniform(0, span)))
            t1 = t0 + length
            if any(t0 < b + min_gap and a - min_gap < t1 for a, b in busy[spec.name]):
                continue
            busy[spec.name].append((t0, t1))
            out.append(Incident(kind, spec.tenant, spec.name, t0, t1, DEFAULT_MAGNITUDE[kind]))
            placed += 1
        if placed < count_per_type:
            raise ValueError(
                f"could place only {placed} of {count_per_type} {kind} incidents: "
                "use a longer interval, more services or fewer incidents"
            )
    return sorted(out, key=lambda inc: inc.start)


def demo_incidents(
    start: datetime,
    every: timedelta = timedelta(minutes=4),
    length: timedelta = timedelta(minutes=2),
    services: Sequence[ServiceSpec] = CATALOGUE,
) -> Iterator[Incident]:
    """An endless rotation for the always-on demo: one incident of the next type every `every`."""
    i = 0
    while True:
        kind = INCIDENT_TYPES[i % len(INCIDENT_TYPES)]
        spec = services[(i * 7 + 3) % len(services)]
        t0 = start + every * (i + 1)
        yield Incident(kind, spec.tenant, spec.name, t0, t0 + length, DEFAULT_MAGNITUDE[kind])
        i += 1


def merge(*streams: Iterable[Incident]) -> list[Incident]:
    return sorted((inc for s in streams for inc in s), key=lambda inc: inc.start)
