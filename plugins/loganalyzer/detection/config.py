"""Detection thresholds, global and per service, with validation that names what is wrong."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from typing import Any


class DetectionConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Thresholds:
    #: error rate above this multiple of the baseline rate is an error_rate_spike
    error_rate_factor: float = 3.0
    #: volume above this multiple of the expected volume is a log_volume_spike
    volume_spike_factor: float = 5.0
    #: volume below this fraction of the expected volume is a log_volume_drop
    volume_drop_factor: float = 0.1
    #: fewer logs than this in the 5-minute window: rate rules do not fire (1 error of 2 logs)
    min_volume: int = 30
    #: fewer errors than this in the window: no error_rate_spike
    min_errors: int = 10
    #: a drop needs at least this many EXPECTED logs in the window (quiet services never alarm)
    min_expected_for_drop: float = 30.0
    #: the baseline error rate is never taken below this (a clean baseline makes 1 error infinite)
    error_rate_floor: float = 0.01
    #: how many standard deviations (Poisson) above/below expected a count must be: a 3× ratio
    #: on 5 errors is noise, on 50 it is an incident
    min_significance: float = 4.0
    #: IsolationForest score (negated decision function) above which a window is anomalous
    forest_score: float = 0.1


@dataclass(frozen=True)
class DetectionConfig:
    thresholds: Thresholds = field(default_factory=Thresholds)
    #: per service ("service" or "tenant/service") overrides of some thresholds
    overrides: Mapping[str, Thresholds] = field(default_factory=dict)
    bucket: timedelta = timedelta(minutes=1)
    window_buckets: int = 5
    #: how far behind the newest event time a bucket stays open for late events
    allowed_lateness: timedelta = timedelta(minutes=2)
    #: consecutive normal evaluations that resolve an episode
    resolve_after: int = 3
    #: minutes of history before a service's volume and error rules may fire
    warmup_minutes: int = 20
    #: messages and minutes of history a service needs before a never-seen ERROR template counts
    pattern_warmup_messages: int = 500
    pattern_warmup_minutes: int = 30
    #: a never-seen ERROR template must occur this often within `pattern_confirm_minutes` to be an
    #: anomaly: a rare but normal error showing up for the first time is not an incident
    pattern_min_occurrences: int = 3
    pattern_confirm_minutes: int = 5
    #: services tracked per engine; beyond it the least recently active one is forgotten
    max_services: int = 10_000

    def thresholds_for(self, tenant: str, service: str) -> Thresholds:
        return self.overrides.get(f"{tenant}/{service}") or self.overrides.get(service) or self.thresholds

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any]) -> DetectionConfig:
        """Build from a YAML/JSON-like mapping: {thresholds: {...}, services: {name: {...}}, ...}."""
        known = {f.name for f in fields(Thresholds)}

        def thresholds(base: Thresholds, raw: Any, where: str) -> Thresholds:
            if not isinstance(raw, Mapping):
                raise DetectionConfigError(f"{where} must be a mapping of threshold names to numbers")
            unknown = set(raw) - known
            if unknown:
                raise DetectionConfigError(
                    f"{where}: unknown thresholds {sorted(unknown)}; known: {sorted(known)}"
                )
            for k, v in raw.items():
                if not isinstance(v, int | float) or isinstance(v, bool) or v < 0:
                    raise DetectionConfigError(f"{where}.{k} must be a number >= 0, got {v!r}")
            return replace(base, **raw)

        base = thresholds(Thresholds(), doc.get("thresholds", {}), "thresholds")
        services = doc.get("services", {})
        if not isinstance(services, Mapping):
            raise DetectionConfigError("services must map service names to thresholds")
        overrides = {str(name): thresholds(base, raw, f"services.{name}") for name, raw in services.items()}
        extra = set(doc) - {"thresholds", "services", "allowed_lateness_seconds", "resolve_after"}
        if extra:
            raise DetectionConfigError(f"unknown keys {sorted(extra)}")
        lateness = doc.get("allowed_lateness_seconds", 120)
        resolve_after = doc.get("resolve_after", 3)
        if not isinstance(lateness, int) or lateness < 0:
            raise DetectionConfigError("allowed_lateness_seconds must be a whole number >= 0")
        if not isinstance(resolve_after, int) or resolve_after < 1:
            raise DetectionConfigError("resolve_after must be a whole number >= 1")
        return cls(base, overrides, allowed_lateness=timedelta(seconds=lateness), resolve_after=resolve_after)
