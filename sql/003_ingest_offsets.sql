-- ingest_offsets: for each Kafka partition, the next offset NOT yet in the database.
--
-- Why offsets live here and not only in Kafka: the consumer writes a batch's rows, its dead
-- letters and the new offset in ONE transaction, and on partition assignment seeks to the
-- offset stored here ("storing offsets outside Kafka"). A crash between the database commit
-- and the Kafka commit therefore re-reads nothing that is already stored, and the consumer can
-- COPY straight into `logs`. The row is locked (SELECT ... FOR UPDATE) while a batch is written,
-- so two consumers that briefly both own a partition during a rebalance cannot both write it:
-- the second one sees the advanced offset and skips what is already stored. The offset is also
-- committed to Kafka afterwards, so standard lag tooling keeps working.
CREATE TABLE ingest_offsets (
    kafka_topic     text        NOT NULL,
    kafka_partition integer     NOT NULL,
    next_offset     bigint      NOT NULL CHECK (next_offset >= 0),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kafka_topic, kafka_partition)
);
COMMENT ON TABLE ingest_offsets IS 'Per Kafka partition: every record below next_offset is in logs or dead_letters';
