-- dead_letters: also the rows the consumer derives from records (pattern counts, anomaly
-- episodes) when PostgreSQL refuses one of them.
--
-- Why: a value PostgreSQL refuses must never take its batch down with it (the consumer would
-- stop, be restarted, read the same batch and stop again). A refused log row was always a dead
-- letter; a refused pattern or anomaly row is one now too, with the server's message, so that
-- the rest of the batch lands and an operator can see what was dropped. Such a row has no Kafka
-- record of its own: it carries the partition and the last offset of the batch it came from,
-- which is why the coordinates are unique only among record dead letters.
ALTER TABLE dead_letters ADD COLUMN source text NOT NULL DEFAULT 'record'
    CONSTRAINT dead_letters_source_check CHECK (source IN ('record', 'pattern', 'anomaly'));
ALTER TABLE dead_letters DROP CONSTRAINT dead_letters_kafka_coordinates_key;
CREATE UNIQUE INDEX dead_letters_kafka_coordinates_key
    ON dead_letters (kafka_topic, kafka_partition, kafka_offset) WHERE source = 'record';
COMMENT ON COLUMN dead_letters.source IS 'record: a Kafka record (raw = its value); pattern or anomaly: a row derived from the batch ending at kafka_offset that PostgreSQL refused (raw = the row as JSON)';
COMMENT ON COLUMN dead_letters.reason IS 'Stable code: oversized, invalid_utf8, invalid_json, not_an_object, missing_field, wrong_type, empty_field, field_too_long, unknown_level, bad_timestamp, timestamp_out_of_range, db_rejected (a record), pattern_rejected, anomaly_rejected (derived rows)';
