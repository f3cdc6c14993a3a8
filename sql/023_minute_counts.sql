-- minute_counts: per (tenant, service, minute of event time), the Counts the window features are
-- computed from (loganalyzer.detection.features.Counts), rolled up from logs by the hourly_rollup
-- DAG together with hourly_metrics.
--
-- Why: nightly retraining reads a month of minutes; aggregating 6.5 million logs into 2 million
-- minutes took 25-29 s of its 60 s budget, reading the rolled-up minutes takes a few seconds.
-- The columns are exactly what loganalyzer.db.minute_counts' query over logs returns, so the
-- features are the same numbers whichever the minutes come from (tested).
--
-- minute_count_hours says which hours have been rolled up: a service that logged nothing in an
-- hour has no rows, so the rows alone cannot tell "rolled up, empty" from "not rolled up".
-- Retraining aggregates logs for the hours not listed there.
CREATE TABLE minute_counts (
    minute       timestamptz      NOT NULL,
    tenant       text             COLLATE "C" NOT NULL,
    service      text             COLLATE "C" NOT NULL,
    total        bigint           NOT NULL,
    errors       bigint           NOT NULL,
    warns        bigint           NOT NULL,
    duration_sum double precision NOT NULL,
    duration_n   bigint           NOT NULL,
    length_sum   bigint           NOT NULL,
    PRIMARY KEY (minute, tenant, service),
    CONSTRAINT minute_counts_minute_check CHECK (date_trunc('minute', minute) = minute),
    CONSTRAINT minute_counts_counts_check CHECK (total > 0 AND errors + warns <= total AND duration_n <= total)
);
COMMENT ON TABLE minute_counts IS 'Per service and minute of event time: the counts window features are computed from, from logs';
COMMENT ON COLUMN minute_counts.minute IS 'Start of the UTC minute (event time)';
COMMENT ON COLUMN minute_counts.errors IS 'Events with level ERROR or FATAL';
COMMENT ON COLUMN minute_counts.duration_sum IS 'Sum of duration_ms over the events that carry one (duration_n of them)';
COMMENT ON COLUMN minute_counts.length_sum IS 'Sum of length(message) in characters';

CREATE TABLE minute_count_hours (
    hour        timestamptz NOT NULL PRIMARY KEY,
    first_rolled_up_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT minute_count_hours_hour_check CHECK (date_trunc('hour', hour) = hour)
);
COMMENT ON TABLE minute_count_hours IS 'Hours of event time whose minute_counts have been rolled up from logs';

-- Airflow tasks write both (hourly_rollup) and read them (nightly_retrain), as with hourly_metrics.
GRANT SELECT, INSERT, UPDATE, DELETE ON minute_counts, minute_count_hours TO loganalyzer_airflow;

-- Owned by the migrations' owner like every table (sql/016_roles.sql); lambda_invocations
-- (sql/021) was created after 016's hand-over and was left owned by whoever ran the migration.
ALTER TABLE minute_counts OWNER TO loganalyzer_owner;
ALTER TABLE minute_count_hours OWNER TO loganalyzer_owner;
ALTER TABLE lambda_invocations OWNER TO loganalyzer_owner;
