"""Detection settings: thresholds (global and per service), windows, baselines, episodes.

Everything is validated when the object is built (directly or by `from_mapping`), so a bad YAML
file or environment value fails at start-up with a message naming the key, instead of
surfacing as an odd alarm (or none) hours later.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from loganalyzer.events import service_key
from loganalyzer.patterns import MinerConfig


class DetectionConfigError(ValueError):
    pass


@dataclass(frozen=True)
class DetectorThresholds:
    """Rule thresholds; every field can be overridden per service."""

    #: error rate above this multiple of the baseline rate is an error_rate_spike
    error_rate_factor: float = 3.0
    #: volume above this multiple of the expected volume is a log_volume_spike
    volume_spike_factor: float = 5.0
    #: volume below this fraction of the expected volume is a log_volume_drop
    volume_drop_factor: float = 0.1
    #: fewer logs than this in the window: rate rules do not fire (1 error of 2 logs is not 50 %)
    min_volume: int = 30
    #: fewer errors than this in the window: no error_rate_spike
    min_errors: int = 10
    #: a drop needs at least this many EXPECTED logs in the window (quiet services never alarm)
    min_expected_for_drop: float = 30.0
    #: the baseline error rate is never taken below this (a clean baseline makes 1 error infinite)
    error_rate_floor: float = 0.01
    #: how many standard deviations above/below expected a count must be, on the Poisson's
    #: square-root scale (detectors.significance): a 3× ratio on 5 errors is noise, on 50 it is an
    #: incident
    min_significance: float = 4.0
    #: IsolationForest score (negated decision function) above which a window is anomalous
    forest_score: float = 0.1
    #: a run of minutes each below volume_drop_factor of its expectation is a log_volume_drop when
    #: the whole run's probability (negative binomial with the service's dispersion) is below
    #: 10^-this: a busy service's outage in ~2 minutes, a quiet service's silence over its span
    drop_evidence: float = 8.0
    #: ... or when that probability, with no minute counted below 10^-drop_minute_cap, is below
    #: 10^-this: a run of several improbable minutes (an outage at night, a quiet service's
    #: silence) is news sooner than 10^-drop_evidence, while one near-empty minute of bursty
    #: traffic, whose far tail the fitted dispersion does not know, never opens a row alone
    drop_run_evidence: float = 5.0
    drop_minute_cap: float = 3.0
    #: a window above volume_spike_factor is a log_volume_spike only when its probability
    #: (negative binomial upper tail with the service's dispersion) is below 10^-this, as a
    #: window's drop must be below 10^-drop_evidence: a burst of bursty or quiet traffic is not one
    spike_evidence: float = 8.0
    #: ... or, for a run of consecutive minutes each above volume_spike_factor, when its
    #: probability with no minute counted below 10^-spike_minute_cap is below 10^-this (as
    #: drop_run_evidence for drops): two such minutes of a bursty service are a spike, one is not
    spike_run_evidence: float = 5.0
    spike_minute_cap: float = 3.0
    #: Poisson CUSUM (log-likelihood ratio for errors at error_rate_factor x the baseline) at which
    #: a sustained error rise is an error_rate_spike; about e^this minutes between false alarms
    error_cusum: float = 10.0

    def __post_init__(self) -> None:
        _check_thresholds(self, "thresholds")


@dataclass(frozen=True)
class BaselineSettings:
    """How fast baselines learn and when a seasonal slot is trusted over the recent EWMA."""

    #: span in minutes of the recent EWMA (alpha = 2 / (span + 1)): the cold-start fallback
    recent_minutes: int = 30
    #: weight of the newest day (hour-of-day slots) or week (hour-of-week slots) in a slot's mean
    seasonal_alpha: float = 0.3
    #: minutes of history a slot needs before it is used (120 = two visits of the hour)
    seasonal_trusted_minutes: int = 120
    #: minutes of history before seasonal slots are allocated (short-lived services stay small)
    seasonal_after_minutes: int = 60
    #: a minute more than this factor away from the expectation is not learned from (the first
    #: minutes of a spike come before the window crosses a rule's threshold)
    max_deviation: float = 3.0
    #: after this many consecutive minutes NOT learned (an episode or max_deviation), non-zero
    #: minutes are learned again: a lasting level shift becomes the new normal instead of an
    #: alarm that never resolves. Silence is never learned. 0 disables (freeze for ever).
    relearn_after_minutes: int = 180
    #: half-life in minutes of the long-term EWMA kept beside the recent one (baseline.py): the
    #: reference a cold-start expected error rate may not outgrow by more than longterm_rate_factor
    longterm_half_life_minutes: int = 360
    #: while only the recent EWMA answers, its error rate counts for at most this factor times
    #: the long-term one (a ramp's first, learned minutes do not lift the expectation to the ramp)
    longterm_rate_factor: float = 1.25

    def __post_init__(self) -> None:
        where = "baseline"
        _int_at_least(self.recent_minutes, 1, f"{where}.recent_minutes")
        _number_in(self.seasonal_alpha, 0.0, 1.0, f"{where}.seasonal_alpha", low_open=True)
        _int_at_least(self.seasonal_trusted_minutes, 1, f"{where}.seasonal_trusted_minutes")
        _int_at_least(self.seasonal_after_minutes, 0, f"{where}.seasonal_after_minutes")
        _number_in(self.max_deviation, 1.0, math.inf, f"{where}.max_deviation", low_open=True)
        _int_at_least(self.relearn_after_minutes, 0, f"{where}.relearn_after_minutes")
        _int_at_least(self.longterm_half_life_minutes, 1, f"{where}.longterm_half_life_minutes")
        _number_in(self.longterm_rate_factor, 1.0, math.inf, f"{where}.longterm_rate_factor")


@dataclass(frozen=True)
class DetectionConfig:
    thresholds: DetectorThresholds = field(default_factory=DetectorThresholds)
    #: per service ("service" or "tenant/service") overrides of some thresholds
    overrides: Mapping[str, DetectorThresholds] = field(default_factory=dict)
    #: bucket width; the engine counts in minutes, so only 1 minute is accepted
    bucket: timedelta = timedelta(minutes=1)
    #: buckets per feature/rule window (5 × 1 minute)
    window_buckets: int = 5
    #: the rules also look at the newest this-many buckets, so a sharp change is reported within
    #: about that many minutes instead of waiting for the 5-minute window to fill
    fast_window_buckets: int = 1
    #: how far behind the newest event time a bucket stays open for late events
    allowed_lateness: timedelta = timedelta(seconds=15)
    #: consecutive normal evaluations that resolve an episode
    resolve_after: int = 3
    #: consecutive normal minutes that resolve a volume or error-rate episode: on bursty traffic
    #: an incident has ordinary minutes inside it, and 3 of them closed its row and opened a
    #: second one for the same incident (bench_detection_hard: 6 of 11 false alarms)
    rule_resolve_after: int = 10
    #: minutes of history before a service's volume and error rules may fire
    warmup_minutes: int = 20
    #: messages and minutes of history a service needs before a never-seen ERROR template counts
    pattern_warmup_messages: int = 500
    pattern_warmup_minutes: int = 30
    #: occurrences of a never-seen ERROR template within `pattern_confirm_minutes` that make it an
    #: anomaly. 1: the first such line is the anomaly (bench_detection: no false alarm on two clean
    #: days); raise it where rare but normal errors show up for the first time now and then
    pattern_min_occurrences: int = 1
    pattern_confirm_minutes: int = 5
    #: templates each service's miner keeps (least recently seen forgotten) and its fast-path
    #: cache size: a service's memory must not grow with its message cardinality
    pattern_max_templates: int = 1_000
    pattern_cache_size: int = 4_096
    #: services tracked per engine; beyond it the least recently active one is forgotten
    max_services: int = 10_000
    baseline: BaselineSettings = field(default_factory=BaselineSettings)

    def miner_config(self) -> MinerConfig:
        """The template miner each service gets: one definition, so that `patterns mine` and the
        miner benchmark show the accuracy the consumer has, not that of roomier limits."""
        return MinerConfig(cache_size=self.pattern_cache_size, max_patterns=self.pattern_max_templates)

    def __post_init__(self) -> None:
        if not isinstance(self.thresholds, DetectorThresholds):
            raise DetectionConfigError("thresholds must be a DetectorThresholds")
        for name, t in self.overrides.items():
            if not isinstance(t, DetectorThresholds):
                raise DetectionConfigError(f"services.{name} must be a DetectorThresholds")
        if self.bucket != timedelta(minutes=1):
            raise DetectionConfigError(
                f"bucket must be 1 minute (the engine counts minutes), got {self.bucket}"
            )
        _int_at_least(self.window_buckets, 1, "window_minutes")
        _int_at_least(self.fast_window_buckets, 1, "fast_window_minutes")
        if self.fast_window_buckets > self.window_buckets:
            raise DetectionConfigError(
                f"fast_window_minutes ({self.fast_window_buckets}) must not exceed "
                f"window_minutes ({self.window_buckets})"
            )
        if self.allowed_lateness < timedelta(0):
            raise DetectionConfigError(f"allowed_lateness must be >= 0, got {self.allowed_lateness}")
        _int_at_least(self.resolve_after, 1, "resolve_after")
        _int_at_least(self.rule_resolve_after, 1, "rule_resolve_after")
        for name in (
            "warmup_minutes",
            "pattern_warmup_messages",
            "pattern_warmup_minutes",
            "pattern_confirm_minutes",
        ):
            _int_at_least(getattr(self, name), 0, name)
        _int_at_least(self.pattern_max_templates, 1, "pattern_max_templates")
        _int_at_least(self.pattern_cache_size, 1, "pattern_cache_size")
        _int_at_least(self.pattern_min_occurrences, 1, "pattern_min_occurrences")
        _int_at_least(self.max_services, 1, "max_services")
        if not isinstance(self.baseline, BaselineSettings):
            raise DetectionConfigError("baseline must be a BaselineSettings")

    def thresholds_for(self, tenant: str, service: str) -> DetectorThresholds:
        """The most specific thresholds: "tenant/service", then "service", then the global ones."""
        if not self.overrides:
            return self.thresholds
        return (
            self.overrides.get(service_key(tenant, service)) or self.overrides.get(service) or self.thresholds
        )

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any]) -> DetectionConfig:
        """Build from a YAML/JSON-like mapping; every key is optional::

            thresholds: {error_rate_factor: 3, min_volume: 30, ...}   # DetectorThresholds fields
            services: {payments: {error_rate_factor: 2}, "acme/orders": {...}}
            baseline: {recent_minutes: 30, ...}                       # BaselineSettings fields
            allowed_lateness_seconds: 15
            window_minutes: 5
            fast_window_minutes: 1
            resolve_after: 3
            rule_resolve_after: 10
            warmup_minutes: 20
            max_services: 10000
            pattern_warmup_messages / pattern_warmup_minutes / pattern_min_occurrences /
            pattern_confirm_minutes / pattern_max_templates / pattern_cache_size

        Per-service thresholds start from the global ones, so an override names only what differs.
        """
        if not isinstance(doc, Mapping):
            raise DetectionConfigError(f"detection config must be a mapping, got {type(doc).__name__}")
        extra = set(doc) - _TOP_KEYS
        if extra:
            raise DetectionConfigError(f"unknown keys {sorted(map(str, extra))}; known: {sorted(_TOP_KEYS)}")
        base = _replace_checked(DetectorThresholds(), doc.get("thresholds", {}), "thresholds")
        services = doc.get("services", {})
        if not isinstance(services, Mapping):
            raise DetectionConfigError("services must map service names to thresholds")
        overrides = {
            str(name): _replace_checked(base, raw, f"services.{name}") for name, raw in services.items()
        }
        baseline = _replace_checked(BaselineSettings(), doc.get("baseline", {}), "baseline")
        kwargs: dict[str, Any] = {}
        for key, attr in _SCALAR_KEYS.items():
            if key in doc:
                value = doc[key]
                if not _is_int(value):
                    raise DetectionConfigError(f"{key} must be a whole number, got {value!r}")
                kwargs[attr] = value
        lateness = doc.get("allowed_lateness_seconds", 15)
        if not _is_int(lateness) or lateness < 0:
            raise DetectionConfigError(
                f"allowed_lateness_seconds must be a whole number >= 0, got {lateness!r}"
            )
        return cls(
            base,
            overrides,
            allowed_lateness=timedelta(seconds=lateness),
            baseline=baseline,
            **kwargs,
        )


_SCALAR_KEYS = {
    "window_minutes": "window_buckets",
    "fast_window_minutes": "fast_window_buckets",
    "resolve_after": "resolve_after",
    "rule_resolve_after": "rule_resolve_after",
    "warmup_minutes": "warmup_minutes",
    "max_services": "max_services",
    "pattern_warmup_messages": "pattern_warmup_messages",
    "pattern_warmup_minutes": "pattern_warmup_minutes",
    "pattern_min_occurrences": "pattern_min_occurrences",
    "pattern_confirm_minutes": "pattern_confirm_minutes",
    "pattern_max_templates": "pattern_max_templates",
    "pattern_cache_size": "pattern_cache_size",
}
_TOP_KEYS = {"thresholds", "services", "baseline", "allowed_lateness_seconds", *_SCALAR_KEYS}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _int_at_least(value: Any, low: int, where: str) -> None:
    if not _is_int(value) or value < low:
        raise DetectionConfigError(f"{where} must be a whole number >= {low}, got {value!r}")


def _number_in(value: Any, low: float, high: float, where: str, *, low_open: bool = False) -> None:
    ok = _is_number(value) and (value > low if low_open else value >= low) and value <= high
    if not ok:
        bound = f"> {low:g}" if low_open else f">= {low:g}"
        upper = "" if math.isinf(high) else f" and <= {high:g}"
        raise DetectionConfigError(f"{where} must be a number {bound}{upper}, got {value!r}")


def _check_thresholds(t: DetectorThresholds, where: str) -> None:
    _number_in(t.error_rate_factor, 1.0, math.inf, f"{where}.error_rate_factor", low_open=True)
    _number_in(t.volume_spike_factor, 1.0, math.inf, f"{where}.volume_spike_factor", low_open=True)
    _number_in(t.volume_drop_factor, 0.0, 1.0, f"{where}.volume_drop_factor", low_open=True)
    if t.volume_drop_factor >= 1.0:
        raise DetectionConfigError(f"{where}.volume_drop_factor must be < 1, got {t.volume_drop_factor!r}")
    _int_at_least(t.min_volume, 0, f"{where}.min_volume")
    _int_at_least(t.min_errors, 0, f"{where}.min_errors")
    _number_in(t.min_expected_for_drop, 0.0, math.inf, f"{where}.min_expected_for_drop")
    _number_in(t.error_rate_floor, 0.0, 1.0, f"{where}.error_rate_floor", low_open=True)
    _number_in(t.min_significance, 0.0, math.inf, f"{where}.min_significance")
    _number_in(t.forest_score, -math.inf, math.inf, f"{where}.forest_score")
    _number_in(t.drop_evidence, 0.0, math.inf, f"{where}.drop_evidence", low_open=True)
    _number_in(t.drop_run_evidence, 0.0, math.inf, f"{where}.drop_run_evidence", low_open=True)
    _number_in(t.drop_minute_cap, 0.0, math.inf, f"{where}.drop_minute_cap", low_open=True)
    _number_in(t.spike_evidence, 0.0, math.inf, f"{where}.spike_evidence", low_open=True)
    _number_in(t.spike_run_evidence, 0.0, math.inf, f"{where}.spike_run_evidence", low_open=True)
    _number_in(t.spike_minute_cap, 0.0, math.inf, f"{where}.spike_minute_cap", low_open=True)
    _number_in(t.error_cusum, 0.0, math.inf, f"{where}.error_cusum", low_open=True)


def _replace_checked(base: Any, raw: Any, where: str) -> Any:
    """`base` with the fields in `raw` replaced; unknown names and non-numbers are errors that
    say where (e.g. "services.payments.min_volume")."""
    if not isinstance(raw, Mapping):
        raise DetectionConfigError(f"{where} must be a mapping of names to numbers, got {raw!r}")
    known = {f.name for f in fields(base)}
    unknown = set(raw) - known
    if unknown:
        noun = "thresholds" if isinstance(base, DetectorThresholds) else "settings"
        raise DetectionConfigError(
            f"{where}: unknown {noun} {sorted(map(str, unknown))}; known: {sorted(known)}"
        )
    for k, v in raw.items():
        if not _is_number(v):
            raise DetectionConfigError(f"{where}.{k} must be a number, got {v!r}")
    try:
        return replace(base, **raw)
    except DetectionConfigError as exc:
        # the dataclass names the section generically ("thresholds."); name the real place
        msg = str(exc)
        section = "thresholds" if isinstance(base, DetectorThresholds) else "baseline"
        if msg.startswith(section + "."):
            msg = where + msg[len(section) :]
        raise DetectionConfigError(msg) from None


def load_detection_config(path: Path | None) -> DetectionConfig:
    """The configuration DETECTION_CONFIG names (the defaults when None); a file that cannot be
    read or parsed raises DetectionConfigError naming the file."""
    if path is None:
        return DetectionConfig()
    import yaml

    try:
        return DetectionConfig.from_mapping(yaml.safe_load(path.read_text()) or {})
    except (OSError, yaml.YAMLError, DetectionConfigError) as exc:
        raise DetectionConfigError(f"detection config {path}: {exc}") from None
