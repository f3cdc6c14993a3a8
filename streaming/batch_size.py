"""How many records to ask Kafka for next: big while catching up, small while live (pure).

Why adaptive: `consume(n)` waits until n records are there. A fixed 50,000 is what a backlog
needs (per-batch overhead amortised) but costs 1 s of waiting at 50k logs/s live, the whole
1-second detection-latency budget; a fixed 5,000 is the reverse.

The signal is the age of the NEWEST record of the batch (its Kafka timestamp): older than
`backlog_age` means records were still waiting behind it, so we are behind and batches grow
(halfway to the maximum each cycle). Otherwise the batch reached the head of the partition
and the next batch is what arrives in `target_wait` at the rate of the last cycle (records /
seconds between two consume() calls), so a live record waits about `target_wait` for its batch
to fill; a smaller estimate applies at once (latency), a larger one halfway (one odd cycle
does not swing it).

Why the newest and not the oldest record: the oldest record of a batch has waited for the whole
previous cycle, so after one large batch its age stays above `backlog_age` for as long as
batches take that long to process: the sizer kept itself in backlog mode (seen at 50k logs/s:
batches of 50,000 and anomaly rows 1-3 s late while the consumer had capacity to spare).
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

    def update(self, received: int, cycle_seconds: float, newest_age: float | None) -> int:
        """Record one loop: records returned, seconds since the previous consume() started, and
        the age in seconds of the batch's newest record (None: unknown). Returns the next size."""
        if not received:
            return self.size
        if newest_age is not None and newest_age > self.backlog_age:
            wanted = (self.size + self.maximum) / 2
        else:
            live = received / max(cycle_seconds, 1e-3) * self.target_wait
            wanted = live if live < self.size else (self.size + live) / 2
        self.size = max(self.minimum, min(self.maximum, round(wanted)))
        return self.size
