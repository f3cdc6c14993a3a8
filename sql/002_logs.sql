-- logs: one row per accepted event, partitioned by day of EVENT time (UTC).
--
-- Why partitioned by day: retention drops a whole day (DROP TABLE of one partition, no VACUUM
-- debt), and a query for a time range touches only its days. Partitions are created ahead of
-- the writes by ensure_log_partition(), called by the consumer before a batch that holds a new
-- day; the event contract bounds event time (30 days back, 2 hours ahead by default), so a
-- hostile producer cannot create partitions for arbitrary days. There is no DEFAULT partition
-- on purpose: rows parked there would block creating the partition of their day later.
--
-- Identifiers (tenant, service, host, topic) use the "C" collation: they are names, not prose,
-- and byte-order comparison makes their b-trees ~10 % cheaper to maintain (measured).
--
-- Why these indexes, and no more (measured by bench/bench_ingest.py; docs/schema.md has the table):
--   * the unique Kafka-coordinates key: replays can never duplicate a row. A unique index on a
--     partitioned table must include the partition key; the same Kafka record always carries
--     the same timestamp, so it always lands in the same partition and the key is exact.
--   * BRIN on timestamp: time-range scans at almost no write cost (rows arrive nearly in time order).
--   * a PARTIAL btree (tenant, service, timestamp) over WARN/ERROR/FATAL rows only: "this
--     service's problems in this range", the question of an incident, at ~5 % of the rows' cost.
--   * the full btree (tenant, service, timestamp) costs ~40 % of ingestion speed, so today's
--     partition does without it; `loganalyzer db maintain` builds it on each closed day
--     (index_closed_log_partitions), where it costs nothing on the write path.
CREATE TABLE logs (
    "timestamp"     timestamptz NOT NULL,
    tenant          text        COLLATE "C" NOT NULL,
    service         text        COLLATE "C" NOT NULL,
    host            text        COLLATE "C" NOT NULL,
    level           text        NOT NULL,
    message         text        NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    kafka_topic     text        COLLATE "C" NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    ingested_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT logs_level_check CHECK (level IN ('TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL')),
    CONSTRAINT logs_kafka_coordinates_key UNIQUE (kafka_topic, kafka_partition, kafka_offset, "timestamp")
) PARTITION BY RANGE ("timestamp");

COMMENT ON TABLE logs IS 'Accepted log events, one partition per UTC day of event time';
COMMENT ON COLUMN logs."timestamp" IS 'Event time: the event''s own RFC 3339 timestamp, in UTC';
COMMENT ON COLUMN logs.tenant IS 'Owning tenant; events without one belong to ''default''';
COMMENT ON COLUMN logs.level IS 'Normalised level: TRACE, DEBUG, INFO, WARN, ERROR or FATAL';
COMMENT ON COLUMN logs.metadata IS 'The event''s free-form metadata object, as sent';
COMMENT ON COLUMN logs.kafka_offset IS 'With topic and partition: the record this row came from (replays never duplicate)';
COMMENT ON COLUMN logs.ingested_at IS 'Wall-clock time of the transaction that wrote the row';

CREATE INDEX logs_timestamp_brin ON logs USING brin ("timestamp");
CREATE INDEX logs_service_problems_idx ON logs (tenant, service, "timestamp")
    WHERE level IN ('WARN', 'ERROR', 'FATAL');

-- Create the partition of one UTC day if it does not exist. Safe under concurrency (several
-- consumers of one group may meet the same new day at once): an advisory lock serialises them.
CREATE FUNCTION ensure_log_partition(day date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    part text := format('logs_p%s', to_char(day, 'YYYYMMDD'));
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('ensure_log_partition'));
    IF to_regclass(part) IS NULL THEN
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF logs FOR VALUES FROM (%L) TO (%L)',
            part,
            (day::timestamp AT TIME ZONE 'UTC'),
            ((day + 1)::timestamp AT TIME ZONE 'UTC')
        );
    END IF;
    RETURN part;
END;
$$;
COMMENT ON FUNCTION ensure_log_partition(date) IS 'Creates logs_pYYYYMMDD for one UTC day if missing';

-- Build the full (tenant, service, timestamp) index on every daily partition whose day is
-- before `before` (closed days). Returns the names of the indexes created.
CREATE FUNCTION index_closed_log_partitions(before date) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    idx text;
BEGIN
    FOR r IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'logs'::regclass
          AND c.relname ~ '^logs_p[0-9]{8}$'
          AND to_date(substr(c.relname, 7), 'YYYYMMDD') < before
        ORDER BY c.relname
    LOOP
        idx := r.relname || '_service_time_idx';
        IF to_regclass(idx) IS NULL THEN
            EXECUTE format('CREATE INDEX %I ON %I (tenant, service, "timestamp")', idx, r.relname);
            RETURN NEXT idx;
        END IF;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION index_closed_log_partitions(date) IS 'Builds the full service/time index on closed days';

-- Retention: drop every daily partition whose whole day is before `before`. Returns the names.
CREATE FUNCTION drop_log_partitions_before(before date) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'logs'::regclass
          AND c.relname ~ '^logs_p[0-9]{8}$'
          AND to_date(substr(c.relname, 7), 'YYYYMMDD') < before
        ORDER BY c.relname
    LOOP
        EXECUTE format('DROP TABLE %I', r.relname);
        RETURN NEXT r.relname;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION drop_log_partitions_before(date) IS 'Retention: drops daily log partitions older than a day';
