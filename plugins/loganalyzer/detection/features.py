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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

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


def window_feature_matrix(counts: np.ndarray, duration_sum: np.ndarray, window: int) -> np.ndarray:
    """`window_features` of every window of consecutive minutes at once, for training on weeks.

    `counts` holds one row per minute (missing minutes are zero rows) with the integer fields of
    Counts in this order: total, errors, warns, duration_n, length_sum; `duration_sum` the float
    field. Row i of the result is `window_features` of minutes i .. i+window-1, computed with the
    same arithmetic in the same order (integer sums, the float sum added oldest minute first
    from 0.0, then the same divisions), so the values are bit-identical; a test holds the two
    to that on arbitrary minutes.
    """
    import numpy as np

    n = len(counts) - window + 1
    if n <= 0:
        return np.zeros((0, len(FEATURE_NAMES)), dtype=np.float64)
    ints = counts[0:n].copy()
    dsum = 0.0 + duration_sum[0:n]
    for k in range(1, window):
        ints += counts[k : k + n]
        dsum = dsum + duration_sum[k : k + n]
    total, errors, warns, duration_n, length_sum = (ints[:, i] for i in range(5))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.empty((n, len(FEATURE_NAMES)), dtype=np.float64)
        out[:, 0] = total
        out[:, 1] = errors
        out[:, 2] = np.where(total > 0, errors / np.maximum(total, 1), 0.0)
        out[:, 3] = np.where(total > 0, warns / np.maximum(total, 1), 0.0)
        out[:, 4] = np.where(duration_n > 0, dsum / np.maximum(duration_n, 1), 0.0)
        out[:, 5] = np.where(total > 0, length_sum / np.maximum(total, 1), 0.0)
    return out
