"""The six window features: ONE definition for the consumer and for training (no skew).

A window is `window_buckets` (5) consecutive minute buckets of one service; a minute without
events is an empty bucket, not a missing row. Each bucket is a `Counts` record, built in the
consumer from events (windows.py) and in training from SQL over `logs`
(loganalyzer.model.training), and `window_features` turns a window of them into the model's
input, in FEATURE_NAMES order:

===================== ==========================================================================
log_count             events in the window
error_count           events with level ERROR or FATAL (events.ERROR_LEVELS)
error_rate            error_count / log_count (0 for an empty window)
warn_rate             WARN events / log_count (0 for an empty window)
mean_duration_ms      mean of metadata.duration_ms over the events that carry a JSON number
                      there (0 when none does)
mean_message_length   mean len(message) in characters (0 for an empty window)
===================== ==========================================================================

Why no "unique templates" feature: a distinct count is not additive over minutes (the SQL side
would need the templates of every row), and the template signal is already covered by the
new_error_pattern rule. Changing this tuple invalidates registered models: they are trained on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

FEATURE_NAMES = (
    "log_count",
    "error_count",
    "error_rate",
    "warn_rate",
    "mean_duration_ms",
    "mean_message_length",
)


@dataclass(slots=True)
class Counts:
    """What one service logged in one minute of event time."""

    total: int = 0
    errors: int = 0  # ERROR + FATAL
    warns: int = 0
    duration_sum: float = 0.0
    duration_n: int = 0
    length_sum: int = 0

    def add(self, other: Counts) -> None:
        self.total += other.total
        self.errors += other.errors
        self.warns += other.warns
        self.duration_sum += other.duration_sum
        self.duration_n += other.duration_n
        self.length_sum += other.length_sum


def window_counts(buckets: Sequence[Counts]) -> Counts:
    total = Counts()
    for b in buckets:
        total.add(b)
    return total


def window_features(buckets: Sequence[Counts]) -> tuple[float, ...]:
    """Features of one window, in FEATURE_NAMES order. An empty window is all zeros."""
    w = window_counts(buckets)
    n = w.total
    return (
        float(n),
        float(w.errors),
        w.errors / n if n else 0.0,
        w.warns / n if n else 0.0,
        w.duration_sum / w.duration_n if w.duration_n else 0.0,
        w.length_sum / n if n else 0.0,
    )
