-- dead_letters: every record the consumer could not accept, with the raw bytes and the reason.
-- A record lands here instead of stopping the consumer, and never takes a valid record of the
-- same batch with it. `reason` is a stable code (see docs/event-contract.md), `detail` is for humans.
CREATE TABLE dead_letters (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kafka_topic     text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    kafka_key       bytea,
    kafka_timestamp timestamptz,
    raw             bytea,
    raw_size        integer     NOT NULL,
    reason          text        NOT NULL,
    detail          text        NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT dead_letters_kafka_coordinates_key UNIQUE (kafka_topic, kafka_partition, kafka_offset)
);
CREATE INDEX dead_letters_received_idx ON dead_letters (received_at);
CREATE INDEX dead_letters_reason_idx ON dead_letters (reason, received_at);
COMMENT ON TABLE dead_letters IS 'Rejected Kafka records: raw bytes, coordinates and why';
COMMENT ON COLUMN dead_letters.raw IS 'The record value exactly as received (NULL for a tombstone)';
COMMENT ON COLUMN dead_letters.reason IS 'Stable code: oversized, invalid_utf8, invalid_json, not_an_object, missing_field, wrong_type, empty_field, field_too_long, unknown_level, bad_timestamp, timestamp_out_of_range';
