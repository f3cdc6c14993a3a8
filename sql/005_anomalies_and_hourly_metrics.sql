-- anomalies: one row per anomaly EPISODE (opened when a condition starts, updated while it
-- lasts, resolved when back to normal), so that one incident is one row, not one per window.
-- The id is derived from (tenant, service, type, window_start of the opening window), so a
-- replay or a second consumer upserts the same row instead of adding a duplicate.
CREATE TABLE anomalies (
    id               text        PRIMARY KEY,
    tenant           text        NOT NULL,
    service          text        NOT NULL,
    anomaly_type     text        NOT NULL,
    severity         text        NOT NULL,
    status           text        NOT NULL DEFAULT 'open',
    window_start     timestamptz NOT NULL,
    window_end       timestamptz NOT NULL,
    detected_at      timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    resolved_at      timestamptz,
    score            double precision,
    expected_value   double precision,
    actual_value     double precision,
    description      text        NOT NULL,
    pattern_template text,
    sample_message   text,
    model_version    text,
    details          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT anomalies_type_check CHECK (anomaly_type IN
        ('error_rate_spike', 'log_volume_spike', 'log_volume_drop', 'new_error_pattern', 'isolation_forest')),
    CONSTRAINT anomalies_severity_check CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    CONSTRAINT anomalies_status_check CHECK (status IN ('open', 'resolved')),
    CONSTRAINT anomalies_window_check CHECK (window_end >= window_start)
);
CREATE INDEX anomalies_service_time_idx ON anomalies (tenant, service, window_start DESC);
CREATE INDEX anomalies_open_idx ON anomalies (tenant, window_start DESC) WHERE status = 'open';
COMMENT ON TABLE anomalies IS 'Anomaly episodes: one row per incident, opened, updated and resolved on event time';
COMMENT ON COLUMN anomalies.window_start IS 'Event time the anomalous condition was first seen';
COMMENT ON COLUMN anomalies.window_end IS 'Event time the condition was last seen (or resolved)';
COMMENT ON COLUMN anomalies.expected_value IS 'The baseline the detector compared against';
COMMENT ON COLUMN anomalies.actual_value IS 'The peak observed value during the episode';
COMMENT ON COLUMN anomalies.description IS 'Why this is anomalous, in words (actual vs expected, threshold, window)';

-- hourly_metrics: per (tenant, service, hour of event time) rollup, recomputed idempotently
-- by the hourly Airflow DAG (an upsert on the primary key), read by the API and Grafana.
CREATE TABLE hourly_metrics (
    tenant           text        NOT NULL,
    service          text        NOT NULL,
    hour             timestamptz NOT NULL,
    log_count        bigint      NOT NULL,
    debug_count      bigint      NOT NULL DEFAULT 0,
    info_count       bigint      NOT NULL DEFAULT 0,
    warn_count       bigint      NOT NULL DEFAULT 0,
    error_count      bigint      NOT NULL DEFAULT 0,
    fatal_count      bigint      NOT NULL DEFAULT 0,
    host_count       integer     NOT NULL DEFAULT 0,
    avg_duration_ms  double precision,
    p95_duration_ms  double precision,
    computed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, service, hour),
    CONSTRAINT hourly_metrics_hour_check CHECK (date_trunc('hour', hour) = hour),
    CONSTRAINT hourly_metrics_counts_check CHECK (log_count >= 0 AND error_count + fatal_count <= log_count)
);
COMMENT ON TABLE hourly_metrics IS 'Per service and hour of event time: volumes by level and latency, from logs';
COMMENT ON COLUMN hourly_metrics.hour IS 'Start of the UTC hour (event time)';
