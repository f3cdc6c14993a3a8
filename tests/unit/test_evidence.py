"""Evidence over minutes: dispersion estimate, negative-binomial tail, drop runs, error CUSUM."""

from __future__ import annotations

import math
import random

import pytest

from loganalyzer.detection.evidence import (
    MAX_CV2,
    Dispersion,
    DropEvidence,
    ErrorCusum,
    cv2_sample,
    log10_tail_high,
    log10_tail_low,
    recent_minutes,
)


@pytest.mark.parametrize(
    ("x", "mu", "expected"),
    [
        (10, 10, 0.0),  # at the mean: below Poisson noise, no extra variance
        (20, 10, 0.9),  # (100 - 10) / 100
        (0, 10, 0.9),
        (1000, 10, 4.0),  # clipped: one odd minute does not define the service
        (5, 0, 0.0),  # no expectation, no estimate
    ],
)
def test_cv2_sample(x: float, mu: float, expected: float) -> None:
    assert cv2_sample(x, mu) == pytest.approx(expected)


@pytest.mark.parametrize(("cv", "mu"), [(0.0, 60.0), (0.5, 60.0), (0.5, 10.0), (0.3, 200.0)])
def test_dispersion_learns_the_gamma_cv_of_per_minute_volume(cv: float, mu: float) -> None:
    rng = random.Random(1)
    d = Dispersion()
    for _ in range(6000):
        lam = mu * (rng.gammavariate(1 / cv**2, cv**2) if cv else 1.0)
        d.update(_poisson(rng, lam), mu, span=2000)
    # the clipping biases heavy tails down a little; Poisson stays near 0
    assert d.cv2 == pytest.approx(cv * cv, abs=0.06)
    assert d.index(mu) == pytest.approx(1 + d.cv2 * mu)


def test_dispersion_ignores_minutes_with_too_small_an_expectation() -> None:
    d = Dispersion()
    d.update(5, 0.5)
    assert (d.cv2, d.n) == (0.0, 0)
    for _ in range(100):
        d.update(1000, 10)
    assert d.cv2 == MAX_CV2


@pytest.mark.parametrize(
    ("x", "mu", "cv2", "expected"),
    [
        (0, 5.0, 0.0, math.log10(math.exp(-5.0))),  # Poisson P(0)
        (1, 5.0, 0.0, math.log10(6 * math.exp(-5.0))),
        (0, 60.0, 0.25, 4 * math.log10(4 / 64)),  # NB P(0) = (r / (r + mu))^r, r = 4
        (60, 60.0, 0.0, math.log10(0.5343)),  # about half the mass at or below the mean
        (-1, 5.0, 0.0, -math.inf),
        (3, 0.0, 0.0, 0.0),
    ],
)
def test_log10_tail_low(x: int, mu: float, cv2: float, expected: float) -> None:
    assert log10_tail_low(x, mu, cv2) == pytest.approx(expected, abs=2e-3)


def test_bursty_traffic_makes_a_dip_far_less_improbable() -> None:
    assert log10_tail_low(3, 60.0, 0.25) > log10_tail_low(3, 60.0, 0.0) + 15


@pytest.mark.parametrize("cv2", [0.0, 0.1])
def test_the_normal_approximation_for_large_counts_joins_the_exact_sum(cv2: float) -> None:
    exact = log10_tail_low(400, 420.0, cv2)  # summed
    approx = log10_tail_low(401, 420.0, cv2)  # approximated
    assert abs(exact - approx) < 0.15


@pytest.mark.parametrize(
    ("x", "mu", "cv2", "expected"),
    [
        (1, 5.0, 0.0, math.log10(1 - math.exp(-5.0))),  # Poisson P(X >= 1) = 1 - P(0)
        (1, 60.0, 0.25, math.log10(1 - (4 / 64) ** 4)),  # NB, r = 4
        (0, 5.0, 0.25, 0.0),  # every count is >= 0
        (3, 0.0, 0.0, -math.inf),  # nothing expected, something seen
    ],
)
def test_log10_tail_high(x: int, mu: float, cv2: float, expected: float) -> None:
    assert log10_tail_high(x, mu, cv2) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(("mu", "cv2"), [(5.3, 0.0), (5.3, 0.25), (60.0, 0.18), (120.0, 0.05)])
def test_the_two_tails_add_up_to_one(mu: float, cv2: float) -> None:
    for x in range(1, 300, 7):
        both = 10 ** log10_tail_low(x - 1, mu, cv2) + 10 ** log10_tail_high(x, mu, cv2)
        assert both == pytest.approx(1.0, abs=1e-9)


def test_the_upper_tail_of_a_busy_window_is_summed_to_the_end() -> None:
    # 5x a busy 5-minute window, far beyond the summed terms' peak; a shape of 20 (cv2 0.05)
    far = log10_tail_high(12_500, 2_500.0, 0.05)
    assert -25 < far < -20
    assert log10_tail_high(12_501, 2_500.0, 0.05) < far  # and monotone
    # a Poisson window as far out is beyond any double's range, yet stays finite
    assert log10_tail_high(12_500, 2_500.0, 0.0) < -1000


def test_bursty_traffic_makes_a_burst_far_less_improbable() -> None:
    # cert-renewer's minute: 37 lines against 5.3 expected
    assert log10_tail_high(37, 5.3, 0.0) < -18
    assert -7 < log10_tail_high(37, 5.3, 0.25) < -6


@pytest.mark.parametrize(
    ("minutes", "mu", "cv2", "fires_after"),
    [
        ([0] * 40, 4.0, 0.25, 7),  # a quiet service's silence adds up: 1.2 per minute
        ([0] * 40, 0.6, 0.25, 33),  # at night (0.24 per minute) it takes half an hour
        ([1] * 10, 60.0, 0.25, 2),  # a busy bursty service at 2 %: two minutes
        ([0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0], 4.0, 0.25, 12),  # a normal minute ends the run
    ],
)
def test_drop_evidence_accumulates_over_the_low_run(
    minutes: list[int], mu: float, cv2: float, fires_after: int
) -> None:
    ev = DropEvidence()
    fired = None
    for i, x in enumerate(minutes, 1):
        if ev.update(x, mu, cv2, 0.1) >= 8 and fired is None:
            fired = i
    assert fired == fires_after


def test_capped_evidence_counts_no_minute_beyond_the_cap_and_the_ended_run_is_reported() -> None:
    ev = DropEvidence()
    ev.update(0, 500.0, 0.25, 0.1, 3.0)  # one empty minute of a busy bursty service: ~1e-9
    assert ev.score > 8 and ev.capped == 3.0
    ev.update(1, 15.0, 0.2, 0.1, 3.0)  # a night minute at 1 of 15 counts fully (~1e-2.4)
    assert 3.0 < ev.capped < 6.0 and ev.capped < ev.score
    assert ev.ended is None
    ev.update(500, 500.0, 0.25, 0.1, 3.0)
    assert ev.ended == (2, 1) and ev.capped == 0.0 and ev.score == 0.0
    ev.update(500, 500.0, 0.25, 0.1, 3.0)
    assert ev.ended is None  # only the minute that ended it says so


def test_drop_evidence_resets_on_a_normal_minute() -> None:
    ev = DropEvidence()
    ev.update(0, 10.0, 0.0, 0.1)
    assert ev.minutes == 1 and ev.score > 4
    assert ev.update(9, 10.0, 0.0, 0.1) == 0.0 and ev.minutes == 0 and ev.expected == 0


@pytest.mark.parametrize(
    ("rate_factor", "expected_per_minute", "detected"),
    [
        (4.0, 0.6, True),  # a 1 event/s service at 4x its 1 % errors for 20 minutes
        (4.0, 3.0, True),
        (1.0, 0.6, False),  # normal traffic
        (1.0, 30.0, False),
    ],
)
def test_cusum_finds_a_sustained_rise_and_stays_quiet_on_normal_traffic(
    rate_factor: float, expected_per_minute: float, detected: bool
) -> None:
    rng = random.Random(3)
    hits = 0
    for _trial in range(20):
        c = ErrorCusum()
        fired = False
        for _ in range(20):
            c.update(_poisson(rng, expected_per_minute * rate_factor), expected_per_minute, 3.0)
            fired = fired or c.alarming(10.0)
        hits += fired
    assert (hits >= 17) if detected else (hits == 0)


def test_cusum_spends_its_evidence_once_the_rise_is_over() -> None:
    c = ErrorCusum()
    for _ in range(10):
        c.update(20, 2.0, 3.0)
    assert c.alarming(10.0) and c.errors == 200 and c.expected == 20
    for _ in range(5):
        c.update(0, 2.0, 3.0)
    assert not c.alarming(10.0)
    assert c.statistic == 0.0 and c.errors == 0.0


@pytest.mark.parametrize(
    ("typical_errors", "minutes"),
    [
        (None, 5),
        (2.0, 5),  # a busy service: five minutes expect ten errors
        (0.2, 5),
        (0.13, 8),  # billing at night: 13 lines a minute at the 1 % floor
        (0.08, 13),
        (0.01, 30),  # a line a minute: capped
        (0.0, 30),
    ],
)
def test_an_alarm_is_judged_on_enough_minutes_to_expect_an_error(
    typical_errors: float | None, minutes: int
) -> None:
    assert recent_minutes(typical_errors) == minutes


def test_an_ordinary_gap_between_a_quiet_services_errors_does_not_end_its_alarm() -> None:
    """8 lines a minute at the 1 % floor expect 0.08 errors a minute: an error a minute is 12x
    the baseline, and five minutes without one happen during such an incident (e^-5 a time, a
    few times over a long ramp). Judged on five minutes they spent the evidence while the
    incident went on; judged on the 13 minutes that expect an error, they do not, and 13
    minutes without an error do."""
    quiet, five = ErrorCusum(), ErrorCusum()
    for c, typical in ((quiet, 0.08), (five, None)):
        for _ in range(20):
            c.update(1, 0.08, 3.0, typical)
        assert c.alarming(10.0)
        for _ in range(5):
            c.update(0, 0.08, 3.0, typical)
    assert quiet.alarming(10.0) and len(quiet.recent) == 13
    assert not five.alarming(10.0) and five.statistic == 0.0
    for _ in range(8):
        quiet.update(0, 0.08, 3.0, 0.08)
    assert not quiet.alarming(10.0) and quiet.statistic == 0.0


def test_the_memory_grows_a_minute_at_a_time_and_shrinks_at_once() -> None:
    c = ErrorCusum()
    for k in range(40):
        c.update(0, 0.01, 3.0, 0.01)
        assert len(c.recent) == min(k + 1, 30)
    c.update(0, 2.0, 3.0, 2.0)  # busy again: five minutes say enough
    assert len(c.recent) == 5


def test_the_learning_statistic_follows_the_uncapped_expectation_and_is_spent_with_the_alarm() -> None:
    """A cold service's capped expected error rate (baseline.py) judges the alarm; learning is
    blocked by the same CUSUM against the uncapped rate (learning.py), so the cap does not
    stop a quiet service from learning its volume (cert-renewer's silence, docs/detection.md)."""
    c = ErrorCusum()
    c.update(1, 0.1, 3.0, 0.1)  # no cap: the same statistic
    assert c.learning == c.statistic > 0
    c = ErrorCusum()
    for _ in range(3):
        c.update(1, 0.1, 3.0, 0.1, learning_expected=0.4)
    assert 0.0 < c.learning < c.statistic
    for _ in range(2):
        c.update(0, 0.1, 3.0, 0.1, learning_expected=0.4)
    assert c.learning == 0.0 < c.statistic
    c.update(5, 0.1, 3.0, 0.1, learning_expected=0.4)
    c.recent = [-1.0]  # the recent minutes no longer point up: the evidence is spent
    assert not c.alarming(c.statistic) and c.statistic == c.learning == 0.0


def test_a_single_noisy_minute_does_not_reach_the_threshold() -> None:
    c = ErrorCusum()
    c.update(6, 1.0, 3.0)  # 6 errors against 1 expected: LLR 4.6
    assert not c.alarming(10.0)


def _poisson(rng: random.Random, lam: float) -> int:
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    threshold, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= threshold:
            return k
        k += 1


@pytest.mark.parametrize(
    ("expected_per_minute", "at_most"), [(0.1, 0.10), (0.3, 0.08), (1.0, 0.06), (5.0, 0.02), (30.0, 0.001)]
)
def test_normal_traffic_rarely_holds_the_cusum_where_learning_stops(
    expected_per_minute: float, at_most: float
) -> None:
    """The engine stops learning a minute at a statistic of 2 (learning.LEARN_BLOCK_CUSUM): under
    normal traffic that must be rare, or the error baseline would learn only the quiet minutes.
    Where errors are rare it is not (two errors in a row do it): there the error-rate floor, not
    the learned rate, is the expectation."""
    from loganalyzer.detection.learning import LEARN_BLOCK_CUSUM

    rng = random.Random(5)
    c = ErrorCusum()
    held = 0
    for _ in range(20_000):
        c.update(_poisson(rng, expected_per_minute), expected_per_minute, 3.0)
        held += c.statistic >= LEARN_BLOCK_CUSUM
    assert held / 20_000 < at_most
