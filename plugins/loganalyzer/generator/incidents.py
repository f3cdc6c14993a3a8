"""Labelled incidents: what each type does to traffic, scenario files, random and demo schedules.

The ground truth of every injected incident is the yardstick of the detection benchmarks, so an
incident's effect is strictly limited to [start, end) of event time and to its own service.
Schedules are iterables in start order and may be endless (the demo rotation, a repeated
scenario): the traffic model pulls them lazily.
"""

from __future__ import annotations

import heapq
import itertools
import random
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from loganalyzer.events import parse_timestamp
from loganalyzer.generator.services import CATALOGUE, ServiceSpec, service_by_name

INCIDENT_TYPES = ("error_burst", "traffic_spike", "outage", "new_error_pattern", "latency_degradation")
#: Changes of a production fleet beyond the five classic incidents (scenario files and the hard
#: benchmark family; the random and demo schedules keep the five):
#: - error_ramp: the ERROR share climbs linearly from RAMP_START_SHARE to the magnitude over the
#:   incident (a slow degradation a recent baseline would follow);
#: - deploy: volume times the magnitude and new INFO templates from the start on, for as long as
#:   the "incident" lasts (give it the rest of the span): a release, not an incident.
FLEET_TYPES = ("error_ramp", "deploy")
SCENARIO_TYPES = INCIDENT_TYPES + FLEET_TYPES
#: ERROR share an error_ramp starts from
RAMP_START_SHARE = 0.02

#: What the detector should report for each injected type (the benchmark's mapping).
EXPECTED_ANOMALY = {
    "error_burst": "error_rate_spike",
    "traffic_spike": "log_volume_spike",
    "outage": "log_volume_drop",
    "new_error_pattern": "new_error_pattern",
    "latency_degradation": "isolation_forest",
    "error_ramp": "error_rate_spike",
}
#: Types that are not incidents: the detector should say at most one low-severity thing.
NOT_ANOMALOUS = frozenset({"deploy"})

DEFAULT_MAGNITUDE = {
    # <= 1: the share of ERROR lines during the incident (normal: ~1 %); > 1: a multiplier of
    # the service's normal ERROR share (30 -> ~30 %), capped at 95 %
    "error_burst": 0.3,
    "traffic_spike": 8.0,  # volume multiplier
    "outage": 0.02,  # volume multiplier: 0 = the service goes completely silent
    "new_error_pattern": 0.15,  # share of lines that are the new error
    "latency_degradation": 6.0,  # duration_ms multiplier
    "error_ramp": 0.2,  # ERROR share at the end of the ramp
    "deploy": 1.5,  # volume multiplier for good
}

#: Accepted magnitude per type: (lowest, lowest is allowed, highest), and what to write instead.
_MAGNITUDE_RANGE: dict[str, tuple[float, bool, float, str]] = {
    "error_burst": (0.0, False, 100.0, "a share of ERROR lines (0-1], or a multiplier of the normal share"),
    "traffic_spike": (1.0, False, 1000.0, "a volume multiplier above 1 (e.g. 8)"),
    "outage": (0.0, True, 1.0, "a volume multiplier in [0, 1): 0 = silent, 0.02 = 2 % of normal"),
    "new_error_pattern": (0.0, False, 1.0, "a share of lines in (0, 1] (e.g. 0.15)"),
    "latency_degradation": (1.0, False, 1000.0, "a duration multiplier above 1 (e.g. 6)"),
    "error_ramp": (RAMP_START_SHARE, False, 0.95, "the final ERROR share, above 0.02 (e.g. 0.2)"),
    "deploy": (0.0, False, 100.0, "a lasting volume multiplier (e.g. 1.5)"),
}


class ScenarioError(ValueError):
    """A scenario is invalid; the message says where and what to fix."""


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
            "expected_anomaly": EXPECTED_ANOMALY.get(self.type),
            "start": _rfc3339(self.start),
            "end": _rfc3339(self.end),
            "magnitude": self.magnitude,
        }


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(text: str) -> timedelta:
    """'90s', '15m', '2h30m', '1d' -> timedelta."""
    s = str(text).strip()
    m = _DURATION.fullmatch(s)
    if not s or m is None:
        raise ScenarioError(f"{text!r} is not a duration like 90s, 15m, 2h30m or 1d")
    d, h, mi, sec = (int(g or 0) for g in m.groups())
    return timedelta(days=d, hours=h, minutes=mi, seconds=sec)


def _when(value: Any, origin: datetime, where: str) -> datetime:
    if isinstance(value, datetime):  # YAML parses an unquoted timestamp itself
        if value.tzinfo is None:
            raise ScenarioError(f"{where}: start {value} has no UTC offset: append Z or +hh:mm")
        return value.astimezone(UTC)
    text = str(value).strip()
    if ":" in text or "T" in text:
        ts = parse_timestamp(text)
        if ts is None:
            raise ScenarioError(
                f"{where}: start {text!r} is not an RFC 3339 time with an offset "
                "(e.g. 2026-11-24T13:00:00Z) nor an offset from the start (e.g. 15m, 2h30m)"
            )
        return ts
    try:
        return origin + parse_duration(text)
    except ScenarioError as exc:
        raise ScenarioError(f"{where}: start: {exc} (or an RFC 3339 time)") from None


def _magnitude(kind: str, value: Any, where: str) -> float:
    if value is None:
        return DEFAULT_MAGNITUDE[kind]
    low, low_ok, high, hint = _MAGNITUDE_RANGE[kind]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(f"{where}: magnitude {value!r} is not a number; {kind} takes {hint}")
    if value < low or (value == low and not low_ok) or value > high:
        raise ScenarioError(f"{where}: magnitude {value} is out of range; {kind} takes {hint}")
    if kind == "outage" and value == 1:
        raise ScenarioError(f"{where}: an outage of magnitude 1 changes nothing; {kind} takes {hint}")
    return float(value)


_KEYS = ("type", "service", "tenant", "start", "duration", "magnitude")


def _incident(item: Any, where: str, origin: datetime) -> Incident:
    if not isinstance(item, Mapping):
        raise ScenarioError(f"{where}: expected a mapping with type, service, start, duration")
    unknown = sorted(set(item) - set(_KEYS))
    if unknown:
        raise ScenarioError(f"{where}: unknown keys {unknown}; allowed: {', '.join(_KEYS)}")
    kind = item.get("type")
    if kind not in SCENARIO_TYPES:
        raise ScenarioError(f"{where}: type {kind!r} is not one of {', '.join(SCENARIO_TYPES)}")
    try:
        spec = service_by_name(str(item.get("service")))
    except KeyError as exc:
        raise ScenarioError(f"{where}: {exc.args[0]}") from None
    tenant = item.get("tenant")
    if tenant is not None and tenant != spec.tenant:
        raise ScenarioError(
            f"{where}: service {spec.name!r} runs for tenant {spec.tenant!r} only; "
            f"drop 'tenant' or set it to {spec.tenant!r}"
        )
    missing = [k for k in ("start", "duration") if k not in item]
    if missing:
        raise ScenarioError(f"{where}: {' and '.join(repr(k) for k in missing)} required (e.g. 15m)")
    start = _when(item["start"], origin, where)
    if isinstance(item["duration"], int | float):
        raise ScenarioError(f"{where}: duration {item['duration']!r} needs a unit, e.g. {item['duration']}s")
    try:
        duration = parse_duration(str(item["duration"]))
    except ScenarioError as exc:
        raise ScenarioError(f"{where}: duration: {exc}") from None
    if duration <= timedelta(0):
        raise ScenarioError(f"{where}: duration must be longer than 0s")
    magnitude = _magnitude(kind, item.get("magnitude"), where)
    return Incident(kind, spec.tenant, spec.name, start, start + duration, magnitude)


@dataclass(frozen=True)
class Scenario:
    """Incidents from a scenario file; with `repeat`, the whole list recurs every period."""

    incidents: tuple[Incident, ...]
    repeat: timedelta | None = None

    def schedule(self) -> Iterator[Incident]:
        """Incidents in start order; endless when the scenario repeats."""
        if self.repeat is None or not self.incidents:
            yield from self.incidents
            return
        for k in itertools.count():
            shift = self.repeat * k
            for inc in self.incidents:
                yield replace(inc, start=inc.start + shift, end=inc.end + shift)


def scenario_from_mapping(doc: Any, origin: datetime, end: datetime | None = None) -> Scenario:
    """Validate a scenario document with messages that say what to fix.

    The document is a list of incidents, or a mapping {incidents: [...], repeat: 30m}.
    With `end` (the generated span's end), incidents that would never run are errors.
    """
    repeat: timedelta | None = None
    if isinstance(doc, list):
        items: Any = doc
    elif isinstance(doc, Mapping) and isinstance(doc.get("incidents"), list):
        unknown = sorted(set(doc) - {"incidents", "repeat"})
        if unknown:
            raise ScenarioError(f"unknown top-level keys {unknown}; allowed: incidents, repeat")
        items = doc["incidents"]
        if doc.get("repeat") is not None:
            try:
                repeat = parse_duration(str(doc["repeat"]))
            except ScenarioError as exc:
                raise ScenarioError(f"repeat: {exc}") from None
            if repeat <= timedelta(0):
                raise ScenarioError("repeat: the period must be longer than 0s")
    else:
        raise ScenarioError(
            "a scenario is a list of incidents, or a mapping with a list under 'incidents' "
            "(and optionally 'repeat: 30m')"
        )
    out: list[Incident] = []
    for i, item in enumerate(items):
        where = f"incidents[{i}]"
        inc = _incident(item, where, origin)
        if end is not None and inc.start >= end:
            raise ScenarioError(
                f"{where}: starts at {_rfc3339(inc.start)}, after the generated span ends "
                f"({_rfc3339(end)}): move it earlier or extend --duration"
            )
        if inc.end <= origin and repeat is None:
            raise ScenarioError(
                f"{where}: ends at {_rfc3339(inc.end)}, before the generator starts ({_rfc3339(origin)})"
            )
        if repeat is not None and (inc.start < origin or inc.end > origin + repeat):
            raise ScenarioError(
                f"{where}: with 'repeat: {doc['repeat']}', every incident must start at or after the "
                f"generator's start and end within one period; lengthen 'repeat' or move the incident"
            )
        out.append(inc)
    _check_no_overlap(out)
    return Scenario(tuple(sorted(out, key=lambda inc: inc.start)), repeat)


def _check_no_overlap(incidents: Sequence[Incident]) -> None:
    """Two incidents at once on one service would blur each other's ground truth."""
    by_service: dict[str, list[Incident]] = {}
    for inc in incidents:
        by_service.setdefault(inc.service, []).append(inc)
    for service, incs in by_service.items():
        incs.sort(key=lambda inc: inc.start)
        for a, b in itertools.pairwise(incs):
            if b.start < a.end:
                raise ScenarioError(
                    f"{a.type} and {b.type} overlap on {service} ({_rfc3339(b.start)} < {_rfc3339(a.end)}): "
                    "one incident per service at a time"
                )


def incidents_from_mapping(doc: Any, origin: datetime, end: datetime | None = None) -> list[Incident]:
    """The incidents of a scenario document (one cycle when it repeats)."""
    return list(scenario_from_mapping(doc, origin, end).incidents)


def read_scenario(path: Path, origin: datetime, end: datetime | None = None) -> Scenario:
    """A YAML or JSON scenario file (JSON is valid YAML)."""
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path} is not valid YAML or JSON: {exc}") from None
    try:
        return scenario_from_mapping(doc, origin, end)
    except ScenarioError as exc:
        raise ScenarioError(f"{path}: {exc}") from None


def load_scenario(path: Path, origin: datetime, end: datetime | None = None) -> list[Incident]:
    """The incidents of a scenario file (one cycle when it repeats)."""
    return list(read_scenario(path, origin, end).incidents)


def random_scenario(
    services: Sequence[ServiceSpec],
    start: datetime,
    end: datetime,
    count_per_type: int,
    seed: int = 0,
    min_gap: timedelta = timedelta(minutes=30),
    duration: tuple[timedelta, timedelta] = (timedelta(minutes=8), timedelta(minutes=15)),
) -> list[Incident]:
    """Spread `count_per_type` incidents of every type over [start, end), never two on one service
    closer than `min_gap` (so the detector's baseline recovers between them).

    Boundaries fall on whole seconds, like the detectors' buckets, so no second is half-affected.
    """
    if count_per_type < 0:
        raise ValueError("count_per_type must be >= 0")
    if not services:
        raise ValueError("random_scenario needs at least one service")
    rng = random.Random(seed)
    busy: dict[str, list[tuple[datetime, datetime]]] = {s.name: [] for s in services}
    out: list[Incident] = []
    lo_s, hi_s = int(duration[0].total_seconds()), int(duration[1].total_seconds())
    span = int((end - start).total_seconds()) - hi_s
    if span <= 0 or lo_s <= 0 or hi_s < lo_s:
        raise ValueError("the interval is shorter than one incident, or the duration range is empty")
    for kind in INCIDENT_TYPES:
        placed = 0
        for _attempt in range(count_per_type * 500):
            if placed == count_per_type:
                break
            spec = services[rng.randrange(len(services))]
            t0 = start + timedelta(seconds=rng.randrange(span + 1))
            t1 = t0 + timedelta(seconds=rng.randint(lo_s, hi_s))
            if any(t0 < b + min_gap and a - min_gap < t1 for a, b in busy[spec.name]):
                continue
            busy[spec.name].append((t0, t1))
            out.append(Incident(kind, spec.tenant, spec.name, t0, t1, DEFAULT_MAGNITUDE[kind]))
            placed += 1
        if placed < count_per_type:
            raise ValueError(
                f"could place only {placed} of {count_per_type} {kind} incidents: "
                "use a longer interval, more services, a shorter min_gap or fewer incidents"
            )
    return sorted(out, key=lambda inc: inc.start)


def demo_incidents(
    start: datetime,
    every: timedelta = timedelta(minutes=4),
    length: timedelta = timedelta(minutes=2),
    services: Sequence[ServiceSpec] = CATALOGUE,
) -> Iterator[Incident]:
    """The built-in always-on scenario: one incident of the next type every `every`, rotating over
    services (7 is coprime with the catalogue size, so every service gets every type), forever."""
    if length >= every:
        raise ValueError("demo incidents must be shorter than the interval between them")
    for i in itertools.count():
        kind = INCIDENT_TYPES[i % len(INCIDENT_TYPES)]
        spec = services[(i * 7 + 3) % len(services)]
        t0 = start + every * (i + 1)
        yield Incident(kind, spec.tenant, spec.name, t0, t0 + length, DEFAULT_MAGNITUDE[kind])


def merge(*streams: Iterable[Incident]) -> Iterator[Incident]:
    """Merge schedules that are each in start order (possibly endless) into one, lazily."""
    return heapq.merge(*streams, key=lambda inc: inc.start)
