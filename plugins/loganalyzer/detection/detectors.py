"""The rule detectors: pure functions of a window, its baseline and the thresholds.

Each returns a Finding with the numbers and a sentence that says why, or None. Severity grows
with how far beyond the threshold the value is: ratio/threshold < 1.5 low, < 3 medium,
< 6 high, else critical (for drops, the inverse ratio against the inverse threshold; a silent
service is critical).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from loganalyzer.detection.baseline import Expected
from loganalyzer.detection.config import Thresholds
from loganalyzer.detection.features import Counts


@dataclass(frozen=True, slots=True)
class Finding:
    type: str
    actual: float
    expected: float
    ratio: float
    severity: str
    description: str


def severity(excess: float) -> str:
    """`excess` = how many times over the threshold (≥ 1)."""
    if excess < 1.5:
        return "low"
    if excess < 3:
        return "medium"
    if excess < 6:
        return "high"
    return "critical"


def significance(observed: float, expected: float) -> float:
    """Standard deviations between an observed count and a Poisson expectation."""
    return (observed - expected) / math.sqrt(max(expected, 1.0))


def _span(start: datetime, end: datetime) -> str:
    return f"{start:%H:%M}–{end:%H:%M} UTC"


def error_rate_spike(
    w: Counts, exp: Expected, t: Thresholds, start: datetime, end: datetime
) -> Finding | None:
    if w.total < t.min_volume or w.errors < t.min_errors:
        return None
    rate = w.errors / w.total
    base = max(exp.error_rate, t.error_rate_floor)
    ratio = rate / base
    if ratio <= t.error_rate_factor or significance(w.errors, base * w.total) < t.min_significance:
        return None
    return Finding(
        "error_rate_spike",
        rate,
        base,
        ratio,
        severity(ratio / t.error_rate_factor),
        f"error rate {rate:.1%} ({w.errors} of {w.total} logs) vs expected {base:.1%}: "
        f"{ratio:.1f}× the baseline, threshold {t.error_rate_factor:g}×, over {_span(start, end)}",
    )


def log_volume_spike(
    w: Counts, expected_window: float, t: Thresholds, start: datetime, end: datetime
) -> Finding | None:
    if w.total < t.min_volume or expected_window <= 0:
        return None
    ratio = w.total / expected_window
    if ratio <= t.volume_spike_factor or significance(w.total, expected_window) < t.min_significance:
        return None
    return Finding(
        "log_volume_spike",
        float(w.total),
        expected_window,
        ratio,
        severity(ratio / t.volume_spike_factor),
        f"{w.total} logs vs {expected_window:.0f} expected: {ratio:.1f}× the baseline, "
        f"threshold {t.volume_spike_factor:g}×, over {_span(start, end)}",
    )


def log_volume_drop(
    w: Counts, expected_window: float, t: Thresholds, start: datetime, end: datetime
) -> Finding | None:
    if expected_window < t.min_expected_for_drop:
        return None
    ratio = w.total / expected_window
    if ratio >= t.volume_drop_factor or -significance(w.total, expected_window) < t.min_significance:
        return None
    silent = w.total == 0
    level = "critical" if silent else severity(t.volume_drop_factor / max(ratio, 1e-9))
    what = "no logs at all (the service went silent)" if silent else f"only {w.total} logs"
    return Finding(
        "log_volume_drop",
        float(w.total),
        expected_window,
        ratio,
        level,
        f"{what} vs {expected_window:.0f} expected: {ratio:.0%} of the baseline, "
        f"threshold {t.volume_drop_factor:.0%}, over {_span(start, end)}",
    )
