-- Full-text search over logs: a stored tsvector column, and per CLOSED daily partition a GIN
-- index on (service, message_tsv) plus a btree on timestamp.
--
-- Why a stored column and not an expression index: a GIN on to_tsvector(message) ANDed with the
-- BRIN on timestamp yields lossy bitmaps, and every recheck recomputes to_tsvector per row
-- (measured: p99 6.7 s for a search page); reading a stored tsvector is cheap. Its cost is paid
-- once, at insert: bench/bench_search_column.py measures COPY with and without it (docs/API.md).
-- Why 'simple': log lines are identifiers, paths and codes, not English prose; stemming would
-- fold distinct identifiers and costs more CPU per row.
-- Why only closed days get the GIN: building it costs ~80-125 s and ~800 MB per 10M rows;
-- maintaining it row by row on today's partition would slow ingestion far more than building it
-- once after midnight. Today's rows are searched through the BRIN on timestamp, an hour at a time.
CREATE EXTENSION IF NOT EXISTS btree_gin;

ALTER TABLE logs ADD COLUMN message_tsv tsvector
    GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, message)) STORED;
COMMENT ON COLUMN logs.message_tsv IS 'to_tsvector(''simple'', message), stored for full-text search (GIN on closed days)';

-- Build the indexes a closed day gets (every daily partition whose day is before `before`):
-- the full (tenant, service, timestamp) btree of 002, the search GIN and a timestamp btree.
-- Same signature as 002's, so `loganalyzer db maintain` and the maintenance DAG build them all.
CREATE OR REPLACE FUNCTION index_closed_log_partitions(before date) RETURNS SETOF text
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
        idx := r.relname || '_search_gin';
        IF to_regclass(idx) IS NULL THEN
            EXECUTE format('CREATE INDEX %I ON %I USING gin (service, message_tsv)', idx, r.relname);
            RETURN NEXT idx;
        END IF;
        idx := r.relname || '_time_idx';
        IF to_regclass(idx) IS NULL THEN
            EXECUTE format('CREATE INDEX %I ON %I ("timestamp")', idx, r.relname);
            RETURN NEXT idx;
        END IF;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION index_closed_log_partitions(date) IS 'Builds the service/time btree, the search GIN and the time btree on closed days';
