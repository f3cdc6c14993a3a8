"""A production-like fleet: quiet services beside busy ones, and the incidents that are hard there.

The classic scenario (incidents.random_scenario) has sharp, short, large incidents on services of
a few events a second with Poisson traffic. A fleet also has (and the detectors must hold on):

- quiet services, a few lines a minute (a cron scheduler, a certificate renewer), whose silence
  matters although no single window expects many lines;
- slow ramps (error_ramp: 2 % -> 20 % of ERROR lines over 90 minutes);
- sustained moderate incidents (errors at 4x the normal share for 20 minutes on services of one
  to a few events a second);
- releases (deploy: volume x1.5 for good, new INFO templates) that are not incidents;
- bursty traffic, which is the traffic model's `burstiness`, not a schedule.

`fleet_scenario` places them like `random_scenario` does (never two on one service closer than
`min_gap`), with a label per incident saying which family it belongs to.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from loganalyzer.generator.incidents import DEFAULT_MAGNITUDE, Incident
from loganalyzer.generator.services import CATALOGUE, ServiceSpec, service_by_name

#: quiet services: weight per event-per-second of the catalogue's busiest ~ 1/100 of it; at a
#: total rate of 30 events/s they log about 2-6 lines a minute (less at night)
_QUIET = (
    ("cron-scheduler", "payments", 0.04),
    ("cert-renewer", "search", 0.03),
    ("audit-export", "billing", 0.05),
)


def quiet_services() -> tuple[ServiceSpec, ...]:
    """Three quiet services, cloned from catalogue ones (their templates and hosts), renamed."""
    return tuple(replace(service_by_name(src), name=name, weight=w) for name, src, w in _QUIET)


def fleet_services() -> tuple[ServiceSpec, ...]:
    """The catalogue plus the quiet services."""
    return (*CATALOGUE, *quiet_services())


@dataclass(frozen=True)
class FleetIncident:
    #: the family: error_ramp, sustained_errors, quiet_silence or deploy
    label: str
    incident: Incident


#: (label, incident type, magnitude, duration, which services)
_FAMILIES: tuple[tuple[str, str, float, timedelta, str], ...] = (
    ("error_ramp", "error_ramp", DEFAULT_MAGNITUDE["error_ramp"], timedelta(minutes=90), "busy"),
    ("sustained_errors", "error_burst", 4.0, timedelta(minutes=20), "moderate"),
    ("quiet_silence", "outage", 0.0, timedelta(minutes=30), "quiet"),
)


def fleet_scenario(
    services: Sequence[ServiceSpec],
    start: datetime,
    end: datetime,
    count_per_family: int,
    deploys: int = 0,
    seed: int = 0,
    min_gap: timedelta = timedelta(minutes=45),
    busy: set[tuple[str, datetime, datetime]] | None = None,
) -> list[FleetIncident]:
    """`count_per_family` incidents of each family over [start, end), plus `deploys` releases
    that last until `end` (each on its own service, placed in the first half so the adaptation
    is seen). "moderate" services are those of weight <= 1.5 (one to a few events a second at
    30 events/s), "quiet" ones those of weight < 0.1, "busy" any non-quiet one.

    `busy` (service, start, end) intervals are kept clear too (another schedule's incidents)."""
    if count_per_family < 0 or deploys < 0:
        raise ValueError("counts must be >= 0")
    rng = random.Random(seed)
    taken: dict[str, list[tuple[datetime, datetime]]] = {s.name: [] for s in services}
    for name, a, b in busy or ():
        taken.setdefault(name, []).append((a, b))
    pools = {
        "busy": [s for s in services if s.weight >= 0.1],
        "moderate": [s for s in services if 0.1 <= s.weight <= 1.5],
        "quiet": [s for s in services if s.weight < 0.1],
    }
    out: list[FleetIncident] = []

    def place(
        label: str,
        kind: str,
        mag: float,
        pool: list[ServiceSpec],
        lo: datetime,
        hi: datetime,
        length: timedelta | None,
    ) -> bool:
        if not pool:
            raise ValueError(f"no service fits the {label} family")
        seconds = int((hi - lo).total_seconds()) - int((length or timedelta(0)).total_seconds())
        if seconds <= 0:
            raise ValueError(f"the interval is shorter than one {label} incident")
        for _ in range(500):
            spec = pool[rng.randrange(len(pool))]
            t0 = lo + timedelta(seconds=rng.randrange(seconds))
            t1 = end if length is None else t0 + length
            if any(t0 < b + min_gap and a - min_gap < t1 for a, b in taken[spec.name]):
                continue
            taken[spec.name].append((t0, t1))
            out.append(FleetIncident(label, Incident(kind, spec.tenant, spec.name, t0, t1, mag)))
            return True
        return False

    for _ in range(deploys):
        if not place(
            "deploy",
            "deploy",
            DEFAULT_MAGNITUDE["deploy"],
            pools["busy"],
            start,
            start + (end - start) / 2,
            None,
        ):
            raise ValueError("could not place every deploy: fewer deploys or more services")
    for label, kind, mag, length, pool in _FAMILIES:
        for _ in range(count_per_family):
            if not place(label, kind, mag, pools[pool], start, end, length):
                raise ValueError(f"could not place {count_per_family} {label} incidents: a longer span")
    return sorted(out, key=lambda f: f.incident.start)
