"""Prometheus metrics of the consumer, on a registry of its own (several consumers per test process)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from loganalyzer.platform.ports import bind


@dataclass
class ConsumerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.consumed = Counter("loganalyzer_events_consumed", "Kafka records read", registry=r)
        self.written = Counter("loganalyzer_events_written", "Events committed to logs", registry=r)
        self.dead_lettered = Counter(
            "loganalyzer_events_dead_lettered", "Records committed to dead_letters", ["reason"], registry=r
        )
        self.skipped = Counter(
            "loganalyzer_events_skipped_duplicate",
            "Records already in the database (replay or previous partition owner)",
            registry=r,
        )
        self.batch_seconds = Histogram(
            "loganalyzer_batch_write_seconds",
            "Time to write and commit one batch to PostgreSQL",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.stage_seconds = Histogram(
            "loganalyzer_batch_stage_seconds",
            "Where a batch's time goes before its write (loganalyzer_batch_write_seconds): "
            "delivery = age of its oldest record when consume() returned it (producer linger, "
            "broker, fetch, local queue and batch fill), parse, detect, previous_write = waiting "
            "for the batch before it to commit",
            ["stage"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.batch_size = Histogram(
            "loganalyzer_batch_records",
            "Records per batch",
            buckets=(1, 10, 100, 1000, 5000, 10000, 20000, 50000),
            registry=r,
        )
        self.committed_offset = Gauge(
            "loganalyzer_committed_offset",
            "Next offset stored in PostgreSQL per partition",
            ["topic", "partition"],
            registry=r,
        )
        self.db_retries = Counter(
            "loganalyzer_db_retries", "Batch writes retried because PostgreSQL was unavailable", registry=r
        )
        self.restarts = Counter(
            "loganalyzer_consumer_restarts",
            "Times the consumer started over from the offsets in PostgreSQL because they went back "
            "(commits lost in a crash, or offsets reset by hand)",
            registry=r,
        )
        self.anomalies = Counter(
            "loganalyzer_anomaly_changes",
            "Anomaly episode changes written (by type and resulting status)",
            ["type", "status"],
            registry=r,
        )
        self.detection_lag = Histogram(
            "loganalyzer_detection_lag_seconds",
            "Wall time from the Kafka arrival of the oldest event of the batch that changed an "
            "anomaly to the commit of that change (an upper bound of the triggering event's lag)",
            buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60),
            registry=r,
        )
        self.dropped_late = Counter(
            "loganalyzer_detection_dropped_late",
            "Events stored but not counted by detection: their event-time minute had closed "
            "(later than ALLOWED_LATENESS behind the newest event of their partition)",
            registry=r,
        )
        self.ahead = Counter(
            "loganalyzer_detection_events_ahead",
            "Events timestamped ahead of the consumer's clock (a producer's clock runs fast): "
            "stored as sent, counted by detection at the consumer's now so that they cannot carry "
            "the watermark into the future",
            registry=r,
        )
        self.tracked_services = Gauge(
            "loganalyzer_detection_services",
            "Services whose detection state this consumer holds (bounded by max_services per partition)",
            registry=r,
        )
        self.split_services = Gauge(
            "loganalyzer_services_on_several_partitions",
            "Services whose events this consumer sees on more than one partition (records not "
            "keyed by tenant/service): their detection state is split",
            registry=r,
        )
        self.assigned_partitions = Gauge(
            "loganalyzer_assigned_partitions", "Kafka partitions owned by this consumer", registry=r
        )

    def serve(self, port: int | None, *, fallback: bool = False) -> int | None:
        """Expose /metrics on 127.0.0.1 and return the port it listens on (None: `port` is None,
        the endpoint is off; 0: any free port). With `fallback` (the port was not chosen by
        the user) a taken port is followed by the next free one: a second consumer on one host
        must not die for a port. Raises loganalyzer.platform.ports.PortUnavailable otherwise."""
        if port is None:
            return None
        server, _thread = bind(
            lambda p: start_http_server(p, addr="127.0.0.1", registry=self.registry), port, fallback=fallback
        )
        return int(server.server_port)
