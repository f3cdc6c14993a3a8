"""How many records to ask Kafka for next: big while catching up, small while live (pure).

Why adaptive: `consume(n)` waits until n records are there. A fixed 50,000 is what a backlog
needs (per-batch overhead amortised) but costs 1 s of waiting at 50k logs/s live, the whole
1-second detection-latency budget; a fixed 5,000 is the reverse.

The signal is the age of the oldest record of the batch (its Kafka timestamp): older than
`backlog_age` means we are behind, so batches go to the maximum; otherwise the next batch is
what arrives in `target_wait` at the rate of the last cycle (records / seconds between two
consume() calls), so a live record waits about `target_wait` for its batch to fill.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BatchSizer:
    maximum: int
    target_wait: float = 0.1
    backlog_age: float = 1.0
    minimum: int = 500
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.minimum = min(self.minimum, self.maximum)
        self.size = self.maximum

    def update(self, received: int, cycle_seconds: float, oldest_age: float | None) -> int:
        """Record one loop: records returned, seconds since the previous consume() started, and
        the age in seconds of the batch's oldest record (None: unknown). Returns the next size."""
        if not received:
            return self.size
        if oldest_age is not None and oldest_age > self.backlog_age:
            wanted = float(self.maximum)
        else:
            wanted = received / max(cycle_seconds, 1e-3) * self.target_wait
        # halfway towards the estimate: one odd cycle (a GC pause, a rebalance) does not swing it
        self.size = max(self.minimum, min(self.maximum, round((self.size + wanted) / 2)))
        return self.size
