"""Generated history for `loganalyzer up`: a few hours of past traffic, produced at full speed.

Why: a detector judges a window against the service's own baseline, and the IsolationForest
needs an hour of windows per service before it scores it. Started on an empty database, the
platform would stay quiet for an hour. So `up` produces the last few hours of event time through
the same broker and the same running consumer (nothing is written around them), with a random
incident of every type in it (labels for the first model's evaluation, and anomalies to look at
at once), and waits until the consumer has stored it all. The history ends HISTORY_LAG before
now; the live generator takes over from that instant and catches up with the clock at full
speed: event time runs on without a hole that the volume-drop detector would report.

Pure planning (`plan_history`, `holdout_hours`) is separate from producing (`HistorySeeder`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from loganalyzer.generator.incidents import Incident, random_scenario
from loganalyzer.generator.producer import KafkaSink
from loganalyzer.generator.services import CATALOGUE, ServiceSpec
from loganalyzer.generator.traffic import TrafficModel
from streaming.detection_stage import LIVE_HORIZON

#: shorter than this is not worth seeding (a restart a few minutes after the last run)
MIN_SEED = timedelta(minutes=1)
#: the history ends this far before now, and the live generator produces the rest at full speed
#: (`generate --catch-up`): the consumer takes a partition whose newest event is over
#: LIVE_HORIZON old for a replay, and a replay's silence while `up` waits for the consumer,
#: trains the model and starts the generator is not an outage. History that reached now would be
#: live, and those seconds of silence would close its minutes empty: a volume drop on every service.
HISTORY_LAG = LIVE_HORIZON + timedelta(minutes=1)


def plan_history(now: datetime, span: timedelta, latest: datetime | None) -> tuple[datetime, datetime] | None:
    """The event-time interval to seed: the `span` that ends HISTORY_LAG before `now`, but never
    before what is already stored (a second `up` fills only the gap since the last one). None:
    nothing to do."""
    end = now - HISTORY_LAG
    start = end - span
    if latest is not None and latest > start:
        start = latest + timedelta(milliseconds=1)
    if end - start < MIN_SEED:
        return None
    return start, end


def holdout_hours(start: datetime, end: datetime) -> float:
    """Hours at the end of the seeded span kept out of the first model's training for its
    evaluation: a quarter, at most a day (the nightly retraining's own holdout)."""
    return min(24.0, (end - start).total_seconds() / 3600 / 4)


def seed_incidents(
    start: datetime, end: datetime, seed: int, services: Sequence[ServiceSpec] = CATALOGUE
) -> list[Incident]:
    """One incident of every type in the second half of the history, once the baselines have
    learnt the services (in the first half the detectors are still warming up and would miss
    them); none when that half is too short for them."""
    try:
        return random_scenario(services, start + (end - start) / 2, end, 1, seed=seed)
    except ValueError:  # shorter than one incident
        return []


@dataclass
class SeedResult:
    start: datetime
    end: datetime
    produced: int
    stored: int
    incidents: int


class HistorySeeder:
    """Produces generated history to Kafka and follows how much of it the consumer stored."""

    def __init__(
        self,
        kafka_config: dict[str, Any],
        topic: str,
        database_url: str,
        rate: float,
        ground_truth: Path,
        console: Console,
        services: Sequence[ServiceSpec] = CATALOGUE,
    ) -> None:
        self.kafka_config = kafka_config
        self.topic = topic
        self.database_url = database_url
        self.rate = rate
        self.ground_truth = ground_truth
        self.console = console
        self.services = services
        self._chunks = 0

    def latest_stored(self) -> datetime | None:
        from loganalyzer.db.connection import connect

        with connect(self.database_url) as conn:
            row = conn.execute('SELECT max("timestamp") FROM logs').fetchone()
        return row[0] if row else None

    def stored_since(self, start: datetime) -> int:
        from loganalyzer.db.connection import connect

        with connect(self.database_url) as conn:
            row = conn.execute('SELECT count(*) FROM logs WHERE "timestamp" >= %s', (start,)).fetchone()
        return int(row[0]) if row else 0

    def _produce(
        self,
        start: datetime,
        end: datetime,
        incidents: Sequence[Incident],
        on_progress: Callable[[datetime, int], None],
    ) -> int:
        self._chunks += 1
        self.ground_truth.parent.mkdir(parents=True, exist_ok=True)
        with open(self.ground_truth, "ab") as truth:
            for inc in incidents:
                truth.write(orjson.dumps(inc.ground_truth()) + b"\n")
        model = TrafficModel(self.services, self.rate, seed=10_000 + self._chunks, incidents=list(incidents))
        sink = KafkaSink(self.kafka_config, self.topic)
        n = 0
        for rec in model.records(start, end):
            sink.send(rec.key, rec.value)
            n += 1
            if n % 5000 == 0:
                sink.poll()
                on_progress(rec.timestamp, n)
        sink.flush()
        on_progress(end, n)
        return n

    def seed(self, span: timedelta, stall_timeout: float = 120.0) -> SeedResult | None:
        """Produce the last `span` of history (what is missing of it) and wait until it is stored.

        Returns None when the database already holds that history. Raises TimeoutError when the
        consumer stores nothing for `stall_timeout` seconds.
        """
        planned = plan_history(datetime.now(UTC), span, self.latest_stored())
        if planned is None:
            return None
        start, end = planned
        incidents = seed_incidents(start, end, seed=int(start.timestamp()))
        before = self.stored_since(start)
        total_s = (end - start).total_seconds()
        progress = Progress(
            TextColumn("{task.description:<24}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=self.console,
            disable=not self.console.is_terminal,
        )
        plain_every = 10.0
        last_plain = time.monotonic()

        def plain(line: str) -> None:
            nonlocal last_plain
            if not self.console.is_terminal and time.monotonic() - last_plain >= plain_every:
                last_plain = time.monotonic()
                self.console.print(line, highlight=False)

        with progress:
            produce = progress.add_task("history produced (min)", total=round(total_s / 60), note="")
            store = progress.add_task("stored by the consumer", total=None, note="")

            def on_progress(t: datetime, n: int) -> None:
                progress.update(
                    produce,
                    completed=round((t - start).total_seconds() / 60),
                    note=f"{n:,} events, event time {t:%H:%M}",
                )
                plain(f"seeding history: {n:,} events produced, up to {t:%H:%M:%S} of event time")

            produced = self._produce(start, end, incidents, on_progress)
            progress.update(store, total=produced)
            stored, last_change, last = 0, time.monotonic(), -1
            while stored < produced:
                stored = self.stored_since(start) - before
                progress.update(store, completed=min(stored, produced), note="")
                plain(f"seeding history: {stored:,} of {produced:,} events stored")
                if stored != last:
                    last, last_change = stored, time.monotonic()
                elif time.monotonic() - last_change > stall_timeout:
                    raise TimeoutError(
                        f"the consumer stored nothing for {stall_timeout:.0f}s ({stored:,} of "
                        f"{produced:,} seeded events); see its log"
                    )
                if stored < produced:
                    time.sleep(1.0)
        return SeedResult(start, end, produced, stored, len(incidents))
