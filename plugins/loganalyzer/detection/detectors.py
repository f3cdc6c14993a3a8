"""The rule detectors: pure functions of a window, its expectation and the thresholds.

Each returns a Finding with the numbers and a sentence that says why, or None.

Guards, so that small numbers do not alarm:
- rate rules need `min_volume` logs in the window (and `min_errors` errors for error rates);
- the baseline error rate is floored at `error_rate_floor`: a clean baseline would otherwise
  make a single error an infinite ratio;
- a drop needs `min_expected_for_drop` expected logs: a service that logs twice an hour going
  quiet is not news, a busy one going silent is (silence included: the engine evaluates every
  tracked service when the watermark passes a minute, not when events arrive);
- every rule also needs the count to be `min_significance` standard deviations away from the
  expectation on the Poisson's square-root scale: 3× on 5 errors is noise, 3× on 50 is an
  incident;
- a volume spike or drop must also be improbable given the service's learned dispersion
  (negative binomial tails, evidence.py): below 10^-spike_evidence or 10^-drop_evidence, so an
  ordinary burst or dip of bursty traffic is neither.

Score and severity: `score` is how many times beyond the threshold the value is (ratio /
factor; for drops factor / ratio, the inverse). Severity bands on the score: < 1.5 low, < 3
medium, < 6 high, else critical. A silent service is critical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from loganalyzer.detection.baseline import Expected
from loganalyzer.detection.config import DetectorThresholds
from loganalyzer.detection.evidence import log10_tail_high, log10_tail_low
from loganalyzer.detection.features import Counts

#: a spike's run (spike_run) lasts while each minute is above this share of the spike factor
_RUN_FLOOR = 0.5
#: score assigned to a silent service (the inverse ratio is infinite)
SILENT_SCORE = 1e6


@dataclass(frozen=True, slots=True)
class Finding:
    type: str
    actual: float
    expected: float
    #: actual / expected (after the error-rate floor)
    ratio: float
    severity: str
    description: str
    #: times beyond the threshold (≥ 1 when the rule fires); orders findings of one type
    score: float = 1.0


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
    """Standard deviations between an observed count and a Poisson expectation, on the square-root
    scale where a Poisson count's deviation is ~1 whatever its mean: 2(√observed − √expected).

    Why not (observed − expected)/√expected: for small expectations the Poisson's upper tail is far
    heavier than a normal's, and that formula called 10 errors against 2.4 expected "4.8 σ" (a
    1-in-4,000 event, so a few times a day over a dozen services' minutes); here it is 3.2. The
    lower tail is the other way round, so a drop to near silence is recognised a little sooner."""
    return 2.0 * (math.sqrt(max(observed, 0.0)) - math.sqrt(max(expected, 0.0)))


def span(start: datetime, end: datetime) -> str:
    return f"{start:%H:%M}–{end:%H:%M} UTC"


def _times(x: float) -> str:
    return f"{x:.1f}×" if x < 100 else f"{x:.0f}×"


def error_rate_spike(
    w: Counts, exp: Expected, t: DetectorThresholds, start: datetime, end: datetime
) -> Finding | None:
    if w.total < t.min_volume or w.errors < t.min_errors:
        return None
    rate = w.errors / w.total
    base = max(exp.error_rate, t.error_rate_floor)
    ratio = rate / base
    if ratio <= t.error_rate_factor or significance(w.errors, base * w.total) < t.min_significance:
        return None
    score = ratio / t.error_rate_factor
    return Finding(
        "error_rate_spike",
        rate,
        base,
        ratio,
        severity(score),
        f"error rate {rate:.1%} ({w.errors} of {w.total} logs) vs expected {base:.1%} "
        f"({_times(ratio)} baseline, threshold {t.error_rate_factor:g}×) over {span(start, end)}",
        score,
    )


def log_volume_spike(
    w: Counts,
    expected_window: float,
    t: DetectorThresholds,
    start: datetime,
    end: datetime,
    tail_cv2: float | None = None,
) -> Finding | None:
    """`tail_cv2` (the window total's squared coefficient of variation, as for drops): the window
    must also be as improbable as `spike_evidence` asks, given the service's dispersion
    (evidence.log10_tail_high). The Poisson sigma test alone took one bursty minute of a quiet
    service (37 lines against 5.3 expected: 1e-18 for a Poisson count, 1e-6 at a cv of 0.5) for
    a spike. The sigma stays on the Poisson scale: scaling it by the dispersion slowed spikes on
    Poisson traffic, where the estimate is inflated by the baseline's own error."""
    if w.total < t.min_volume or expected_window <= 0:
        return None
    ratio = w.total / expected_window
    if ratio <= t.volume_spike_factor or significance(w.total, expected_window) < t.min_significance:
        return None
    if tail_cv2 is not None and -log10_tail_high(w.total, expected_window, tail_cv2) < t.spike_evidence:
        return None
    score = ratio / t.volume_spike_factor
    return Finding(
        "log_volume_spike",
        float(w.total),
        expected_window,
        ratio,
        severity(score),
        f"{w.total} logs vs {expected_window:.0f} expected ({_times(ratio)} baseline, "
        f"threshold {t.volume_spike_factor:g}×) over {span(start, end)}",
        score,
    )


def log_volume_drop(
    w: Counts,
    expected_window: float,
    t: DetectorThresholds,
    start: datetime,
    end: datetime,
    dispersion: float = 1.0,
    tail_cv2: float | None = None,
) -> Finding | None:
    """`tail_cv2` (the window total's squared coefficient of variation: a minute's cv2 over the
    window's minutes): the window must also be as improbable as `drop_evidence` asks of a run
    (evidence.log10_tail_low). The sigma test alone, at 4 sigma, let one near-empty minute of
    bursty traffic (a 1e-5 minute there) open a row."""
    if expected_window < t.min_expected_for_drop or expected_window <= 0:
        return None
    ratio = w.total / expected_window
    sigma = -significance(w.total, expected_window) / math.sqrt(max(1.0, dispersion))
    if ratio >= t.volume_drop_factor or sigma < t.min_significance:
        return None
    if tail_cv2 is not None and -log10_tail_low(w.total, expected_window, tail_cv2) < t.drop_evidence:
        return None
    return _drop_finding(w.total, expected_window, t, start, end)


def _drop_finding(
    total: int, expected_window: float, t: DetectorThresholds, start: datetime, end: datetime, why: str = ""
) -> Finding:
    ratio = total / expected_window
    silent = total == 0
    score = SILENT_SCORE if silent else t.volume_drop_factor / ratio
    what = "no logs at all (the service went silent)" if silent else f"only {total} logs"
    return Finding(
        "log_volume_drop",
        float(total),
        expected_window,
        ratio,
        "critical" if silent else severity(score),
        f"{what} vs {expected_window:.0f} expected ({ratio:.0%} of baseline, "
        f"threshold {t.volume_drop_factor:.0%}) over {span(start, end)}{why}",
        score,
    )


def sustained_drop(
    total: int,
    expected: float,
    log10_p: float,
    t: DetectorThresholds,
    start: datetime,
    end: datetime,
    capped: float = 0.0,
) -> Finding | None:
    """A run of low minutes whose joint probability is below 10^-drop_evidence, or below
    10^-drop_run_evidence with no minute counted below 10^-drop_minute_cap (`capped`;
    evidence.py)."""
    if expected <= 0 or (log10_p < t.drop_evidence and capped < t.drop_run_evidence):
        return None
    return _drop_finding(
        total, expected, t, start, end, f" (probability 1e-{log10_p:.0f} given its dispersion)"
    )


def spike_run(
    minutes: list[int], mu: float, cv2: float, t: DetectorThresholds, end: datetime
) -> Finding | None:
    """The newest minutes of a window (`minutes`, oldest first) that are each above half of
    volume_spike_factor x their expectation `mu` (a spike's minutes vary with the traffic's
    bursts, a 5x minute may be followed by a 4x one): a spike when at least two of them are
    above volume_spike_factor x mu and the joint probability of those (each minute's
    negative-binomial upper tail given the dispersion, independent minutes) is below
    10^-spike_evidence, or below 10^-spike_run_evidence with no minute counted below
    10^-spike_minute_cap, as a run of low minutes is a drop (evidence.DropEvidence). So two
    spike minutes of a bursty service are a spike where the one-minute window's tail test (a
    5x minute at cv 0.5 is 1e-6 to 1e-7) finds none, and one bursty minute never is. `end`:
    the end of the newest minute."""
    if mu <= 0:
        return None
    run: list[int] = []
    for x in reversed(minutes):
        if x <= _RUN_FLOOR * t.volume_spike_factor * mu:
            break
        run.append(x)
    high = [x for x in run if x > t.volume_spike_factor * mu]
    if len(high) < 2:  # one minute is the one-minute window's
        return None
    if sum(high) < t.min_volume or significance(sum(high), mu * len(high)) < t.min_significance:
        return None
    tails = [-log10_tail_high(x, mu, cv2) for x in high]
    capped = sum(min(p, t.spike_minute_cap) for p in tails)
    if sum(tails) < t.spike_evidence and capped < t.spike_run_evidence:
        return None
    start = end - timedelta(minutes=len(run))
    actual, expected = sum(high), mu * len(high)
    ratio = actual / expected
    score = ratio / t.volume_spike_factor
    return Finding(
        "log_volume_spike",
        float(actual),
        expected,
        ratio,
        severity(score),
        f"{actual} logs vs {expected:.0f} expected ({_times(ratio)} baseline, threshold "
        f"{t.volume_spike_factor:g}×) in {len(high)} of the {len(run)} minutes {span(start, end)}",
        score,
    )


def sustained_errors(
    errors: float, expected: float, base_rate: float, t: DetectorThresholds, start: datetime, end: datetime
) -> Finding:
    """An error CUSUM over its threshold: errors since the rise began against their expectation."""
    ratio = errors / expected if expected > 0 else float(errors)
    score = max(1.0, ratio / t.error_rate_factor)
    return Finding(
        "error_rate_spike",
        base_rate * ratio,
        base_rate,
        ratio,
        severity(score),
        f"{errors:.0f} errors vs {expected:.1f} expected ({_times(ratio)} baseline) accumulated over "
        f"{span(start, end)}: a sustained rise (CUSUM over {t.error_cusum:g})",
        score,
    )
