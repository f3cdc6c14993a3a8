"""Evidence that adds up over minutes: dispersion, drop/silence probability, error CUSUM.

One window's test misses what a fleet does: a quiet service's silence is never improbable in one
5-minute window, and a 4x error rate on a service of one event a second is not significant in
one window either; while bursty traffic (per-minute volume far beyond Poisson) makes single-
minute dips look significant under a Poisson test. So:

- `Dispersion`: each service's extra-Poisson variance of its per-minute volume, as the squared
  coefficient of variation of a gamma rate (negative binomial counts: Var = mu + cv2 * mu^2),
  estimated by moments from the residuals against the baseline's expectation (clipped per minute,
  so one odd minute does not define it);
- `log10_tail_low` / `log10_tail_high`: log10 P(X <= x) / P(X >= x) for such a count (Poisson
  when cv2 is 0): how improbable a window's drop or spike is given the service's dispersion;
- `DropEvidence`: the sum of those log-probabilities over the consecutive minutes that are below
  the drop threshold: the improbability of the whole low (or silent) span, whatever its length;
  beside it the same sum with each minute counted for at most `cap` (a run of several improbable
  minutes, which one odd minute of bursty traffic never is);
- `ErrorCusum`: a Poisson CUSUM of ERROR lines against the baseline error rate, conditioned on each
  minute's own volume (so bursty volume does not move it), for a shift to `factor` x: evidence of a
  sustained moderate rise accumulates, a single noisy minute does not reach the threshold. Its
  alarm lasts while its recent minutes still point up; "recent" is long enough to expect an
  error at the baseline rate (`recent_minutes`), so a quiet service's ordinary gap between errors
  does not end an incident that is still going on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

#: a minute's squared residual never counts for more than this (robustness to one odd minute)
_MAX_CV2_SAMPLE = 4.0
#: cv2 is kept within [0, this]: beyond, a service's volume says nothing about its incidents
MAX_CV2 = 1.0
_LOG10E = 1.0 / math.log(10.0)
#: at most this many terms of an upper tail are summed (log10_tail_high)
_TAIL_TERMS = 20_000
#: an error alarm is judged on its last minutes (ErrorCusum.recent): at least this many,
RECENT_MINUTES = 5
#: ... or as many as it takes to expect this many ERROR lines at the baseline rate,
RECENT_EXPECTED_ERRORS = 1.0
#: ... up to this many
RECENT_MAX_MINUTES = 30


def cv2_sample(x: float, mu: float) -> float:
    """One minute's moment estimate of cv2: ((x - mu)^2 - mu) / mu^2, clipped to [0, 4]."""
    if mu <= 0:
        return 0.0
    return min(_MAX_CV2_SAMPLE, max(0.0, ((x - mu) ** 2 - mu) / (mu * mu)))


@dataclass(slots=True)
class Dispersion:
    """EWMA of per-minute cv2 samples; only minutes with an expectation of at least `min_mu` count
    (below, a sample is mostly Poisson noise)."""

    cv2: float = 0.0
    n: int = 0

    def update(self, x: float, mu: float, span: int = 240, min_mu: float = 2.0) -> None:
        if mu < min_mu:
            return
        s = cv2_sample(x, mu)
        self.n += 1
        alpha = max(1.0 / self.n, 2.0 / (span + 1))
        self.cv2 = min(MAX_CV2, self.cv2 + alpha * (s - self.cv2))

    def index(self, mu: float) -> float:
        """Variance over mean of a minute's count with this mean: 1 + cv2 * mu (1 for Poisson)."""
        return 1.0 + self.cv2 * max(mu, 0.0)


def log10_tail_low(x: int, mu: float, cv2: float) -> float:
    """log10 P(X <= x) for a negative binomial of mean mu and Var = mu + cv2 mu^2 (Poisson at 0).

    Summed exactly in log space for x up to 400, beyond by the normal approximation on the
    square-root scale (a drop of that many lines is never the near-silence this is for)."""
    if mu <= 0:
        return 0.0
    if x < 0:
        return -math.inf
    if x > 400:
        sd = math.sqrt(1.0 + cv2 * mu)
        z = 2.0 * (math.sqrt(x) - math.sqrt(mu)) / sd
        return math.log10(max(1e-300, 0.5 * math.erfc(-z / math.sqrt(2.0))))
    poisson = cv2 <= 1e-9
    r = 0.0 if poisson else 1.0 / cv2  # gamma shape
    log_p0 = -mu if poisson else r * math.log(r / (r + mu))
    q = math.log(mu) if poisson else math.log(mu / (r + mu))
    terms = [log_p0]
    lp = log_p0
    for k in range(1, x + 1):  # P(k) / P(k - 1)
        lp += q - math.log(k) if poisson else q + math.log((k - 1 + r) / k)
        terms.append(lp)
    top = max(terms)
    total = top + math.log(sum(math.exp(t - top) for t in terms))
    return min(0.0, total * _LOG10E)


def log10_tail_high(x: int, mu: float, cv2: float) -> float:
    """log10 P(X >= x) for a negative binomial of mean mu and Var = mu + cv2 mu^2 (Poisson at 0).

    The upper tail of a spike test: summed from x upwards in log space (the terms' ratio falls
    towards mu / (r + mu) < 1, so the sum ends within a few thousand terms even for a busy
    service's window; what is left after the cap is bounded by a geometric series)."""
    if x <= 0:
        return 0.0
    if mu <= 0:
        return -math.inf
    poisson = cv2 <= 1e-9
    if poisson:
        lp = x * math.log(mu) - mu - math.lgamma(x + 1)
    else:
        r = 1.0 / cv2
        lp = (
            math.lgamma(x + r)
            - math.lgamma(r)
            - math.lgamma(x + 1)
            + r * math.log(r / (r + mu))
            + x * math.log(mu / (r + mu))
        )
        q = math.log(mu / (r + mu))
    top = lp
    total = 1.0  # the sum relative to the first term
    rel = 0.0  # log of the current term relative to the first
    k = x
    for _ in range(_TAIL_TERMS):
        step = math.log(mu / (k + 1)) if poisson else q + math.log((k + r) / (k + 1))
        rel += step
        term = math.exp(rel)
        total += term
        k += 1
        if step < 0 and term < 1e-12 * total:
            break
    else:  # the terms' ratio only falls from here on: a geometric series bounds the rest
        ratio = math.exp(step)
        if ratio < 1.0:
            total += term * ratio / (1.0 - ratio)
    return min(0.0, (top + math.log(total)) * _LOG10E)


@dataclass(slots=True)
class DropEvidence:
    """-log10 of the probability of the current run of low minutes, and how long the run is.

    `capped` is the same sum with no minute counted for more than the `cap` given to update():
    one minute's tail is only as good as the dispersion's fit far out in it (on bursty traffic a
    near-empty minute happens more often than the fitted negative binomial says), a run of
    several low minutes is not. `ended` is the run that the last update ended, (minutes, lines),
    for learning to take up in the same minute's close (not checkpointed: None between minutes)."""

    score: float = 0.0
    minutes: int = 0
    expected: float = 0.0
    actual: int = 0
    capped: float = 0.0
    ended: tuple[int, int] | None = None

    def update(self, x: int, mu: float, cv2: float, drop_factor: float, cap: float = math.inf) -> float:
        """Add a closed minute: a minute below `drop_factor` of its expectation extends the run,
        any other minute ends it. Returns the run's evidence."""
        self.ended = None
        if mu > 0 and x < drop_factor * mu:
            minute = -log10_tail_low(x, mu, cv2)
            self.score += minute
            self.capped += min(minute, cap)
            self.minutes += 1
            self.expected += mu
            self.actual += x
        else:
            if self.minutes:
                self.ended = (self.minutes, self.actual)
            self.score, self.minutes, self.expected, self.actual, self.capped = 0.0, 0, 0.0, 0, 0.0
        return self.score


def recent_minutes(typical_errors: float | None) -> int:
    """How many of its last minutes an error alarm is judged on, for a service expecting
    `typical_errors` ERROR lines a minute at its baseline rate (None: RECENT_MINUTES): enough
    to expect RECENT_EXPECTED_ERRORS of them, within [RECENT_MINUTES, RECENT_MAX_MINUTES].

    Five minutes of a quiet service at night (billing: 8 lines a minute at a 1 % floor, 0.4
    errors expected in five minutes) often hold no error even while its error rate is ten
    times the baseline; five minutes without one then spent the evidence of an incident that
    was still going on, and the next minutes opened a second row for it."""
    if typical_errors is None:
        return RECENT_MINUTES
    if typical_errors <= RECENT_EXPECTED_ERRORS / RECENT_MAX_MINUTES:
        return RECENT_MAX_MINUTES
    return max(RECENT_MINUTES, min(RECENT_MAX_MINUTES, math.ceil(RECENT_EXPECTED_ERRORS / typical_errors)))


@dataclass(slots=True)
class ErrorCusum:
    """Poisson CUSUM for ERROR lines rising to `factor` x their expectation.

    Per minute the log-likelihood ratio is e ln(factor) - (factor - 1) b (e errors, b expected);
    the statistic is the running sum, floored at 0. `recent` holds the last minutes' ratios
    (recent_minutes: five, more on a service that expects less than an error in five): an
    alarm continues while their sum is positive, and the evidence is spent (statistic back to
    0) when it is not, so one incident is one row and the next starts from scratch."""

    statistic: float = 0.0
    recent: list[float] = field(default_factory=list)
    #: errors and expected errors since the statistic last was 0 (what the finding reports)
    errors: float = 0.0
    expected: float = 0.0
    #: the same statistic against the uncapped expectation (`learning_expected`): what blocks
    #: learning (learning.py); never above `statistic`, and spent with it
    learning: float = 0.0

    def update(
        self,
        errors: float,
        expected: float,
        factor: float,
        typical_errors: float | None = None,
        learning_expected: float | None = None,
    ) -> float:
        """Add a closed minute: `errors` against `expected` (the baseline rate times the
        minute's volume); `typical_errors` (the baseline rate times the expected volume) sets
        how many minutes `recent` keeps (recent_minutes: a memory that grows one minute at a
        time as a service quietens, and shrinks at once)."""
        llr = errors * math.log(factor) - (factor - 1.0) * expected
        self.statistic = max(0.0, self.statistic + llr)
        llr_learning = llr
        if learning_expected is not None:
            llr_learning = errors * math.log(factor) - (factor - 1.0) * learning_expected
        self.learning = min(self.statistic, max(0.0, self.learning + llr_learning))
        if self.statistic == 0.0:
            self.errors = self.expected = 0.0
        else:
            self.errors += errors
            self.expected += expected
        self.recent.append(llr)
        keep = recent_minutes(typical_errors)
        if len(self.recent) > keep:
            del self.recent[:-keep]
        return self.statistic

    def alarming(self, threshold: float) -> bool:
        """Over the threshold with the recent minutes still pointing up; spends the evidence
        otherwise."""
        if self.statistic < threshold:
            return False
        if sum(self.recent) > 0:
            return True
        self.statistic, self.errors, self.expected, self.learning = 0.0, 0.0, 0.0, 0.0
        return False
