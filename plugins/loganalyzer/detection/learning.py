"""Which closed minutes teach a service's baseline (and its dispersion) what normal is.

A closed minute updates the baseline only when it looks normal: no volume/error episode open
for the service, no evidence building up (a ramp or a silence is not learned before it alarms,
else the expectation follows the rise and the evidence never reaches its threshold), and the
volume within `max_deviation` of the expectation. The minutes of a run of low minutes
(evidence.DropEvidence) wait for the run to end: learned then if it opened no drop, as its
average minute, never while it lasts (a quiet service's first silent minutes, learned, took its
expectation to half before the silence was improbable enough to block learning). After
`relearn_after_minutes` consecutive skipped minutes, non-silent minutes are learned again: a
lasting level shift becomes the new normal (and its episode resolves) instead of alarming for
ever; the baseline's long-term EWMA then takes the recent level too (baseline.py). The error
evidence that blocks learning is the CUSUM against the uncapped expected error rate
(evidence.ErrorCusum.learning): judged against the cap of a cold-start baseline, a quiet
service's few errors held it over LEARN_BLOCK_CUSUM for most of an hour, its volume baseline
missed those minutes, and a silence was then expected at too low a level to alarm. Silence is
never learned: a dead service stays an open drop until it logs again. The forest's episodes do
not hold learning: it is the least precise signal, and a false positive would freeze the
baseline.

The same rule serves live minutes and the stored minutes of a warm start.
"""

from __future__ import annotations

import math

from loganalyzer.detection.baseline import Expected
from loganalyzer.detection.config import DetectionConfig
from loganalyzer.detection.features import Counts
from loganalyzer.detection.new_patterns import errors_outside
from loganalyzer.detection.rules import RULE_TYPES
from loganalyzer.detection.service_state import ServiceState

#: error CUSUM at which a minute is no longer learned: about two minutes at twice the expected
#: errors. Under normal traffic: ~5 % of minutes at one expected error a minute, under 2 % from
#: five on, up to ~9 % where errors are rarer and the error-rate floor is the expectation anyway
#: (tests/unit/test_evidence.py)
LEARN_BLOCK_CUSUM = 2.0


def is_warm(cfg: DetectionConfig, state: ServiceState) -> bool:
    """Has the service learned enough minutes for its rules to fire?"""
    return state.baseline.minutes >= cfg.warmup_minutes


def learn(
    cfg: DetectionConfig, state: ServiceState, m: int, minute: Counts, exp: Expected, warm: bool
) -> None:
    """Learn minute m unless it is anomalous (see the module docstring)."""
    bs = cfg.baseline
    episodes = state.episodes
    drop = state.drop
    ended, drop.ended = drop.ended, None
    rule_episode = bool(episodes) and any(k in episodes for k in RULE_TYPES)
    if ended is not None and not rule_episode:  # a low run that was no incident
        run_minutes, run_total = ended
        for _ in range(run_minutes):
            state.baseline.update(m, round(run_total / run_minutes), 0, bs)
    blocked = rule_episode or drop.minutes > 0 or state.cusum.learning >= LEARN_BLOCK_CUSUM
    total = minute.total
    vol = exp.volume
    # far: outside the factor band AND beyond Poisson noise (an empty minute of a service
    # that logs once every few minutes is normal)
    far = (
        warm
        and vol > 0
        and not (vol / bs.max_deviation <= total <= vol * bs.max_deviation)
        and abs(total - vol) > 3.0 * math.sqrt(max(vol, 1.0))
    )
    abnormal = blocked or far
    if abnormal:
        state.skipped += 1
        if not (bs.relearn_after_minutes and state.skipped > bs.relearn_after_minutes and total > 0):
            return
    else:
        state.skipped = 0
    errors = errors_outside(state, m, minute.errors)
    if warm and not abnormal:
        state.dispersion.update(total, vol)
    # an abnormal minute learned here is a lasting shift accepted as the new normal
    state.baseline.update(m, total, max(0, errors), bs, relearn=abnormal)
