-- log_patterns: the message templates mined per service, with how often each was seen.
-- Counts are added in the same transaction as the rows they count, so for every service the
-- counts add up to its rows in `logs` (replays are skipped before counting).
CREATE TABLE log_patterns (
    tenant         text        COLLATE "C" NOT NULL,
    service        text        COLLATE "C" NOT NULL,
    pattern_id     text        COLLATE "C" NOT NULL,
    template       text        NOT NULL,
    first_seen     timestamptz NOT NULL,
    last_seen      timestamptz NOT NULL,
    count          bigint      NOT NULL CHECK (count > 0),
    error_count    bigint      NOT NULL DEFAULT 0 CHECK (error_count >= 0),
    sample_message text        NOT NULL,
    PRIMARY KEY (tenant, service, pattern_id),
    CONSTRAINT log_patterns_seen_check CHECK (last_seen >= first_seen)
);
CREATE INDEX log_patterns_first_seen_idx ON log_patterns (tenant, first_seen DESC);
COMMENT ON TABLE log_patterns IS 'Message templates per service (template mining); counts add up to the rows of logs';
COMMENT ON COLUMN log_patterns.template IS 'The message with variable parts replaced by <*>';
COMMENT ON COLUMN log_patterns.first_seen IS 'Event time of the first message of this pattern';
COMMENT ON COLUMN log_patterns.error_count IS 'How many of the messages were ERROR or FATAL';

-- detector_checkpoints: each Kafka partition's detection state (windows, baselines, miner),
-- saved every few seconds by the consumer that owns the partition. A consumer that takes the
-- partition over (restart or rebalance) restores it and replays the records between
-- `next_offset` and the stored ingest offset through detection only, so a restart causes
-- neither a burst of false alarms nor blind minutes.
CREATE TABLE detector_checkpoints (
    kafka_topic     text        COLLATE "C" NOT NULL,
    kafka_partition integer     NOT NULL,
    next_offset     bigint      NOT NULL CHECK (next_offset >= 0),
    state           bytea       NOT NULL,
    saved_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kafka_topic, kafka_partition)
);
COMMENT ON TABLE detector_checkpoints IS 'Per Kafka partition: detection state as of next_offset (restored on assignment)';
