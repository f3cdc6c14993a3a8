-- logs.duration_ms: metadata.duration_ms as a column, filled by the consumer when it is a JSON number.
--
-- Why a column: request latency is the one metadata field the product computes with (the
-- forest's mean_duration_ms feature, training, latency panels). Reading it from jsonb costs a
-- jsonb_typeof() and a cast per row at query time; the consumer already holds the parsed number,
-- and writing it as a float8 is cheaper than the jsonb it is taken from.
ALTER TABLE logs ADD COLUMN duration_ms double precision;
COMMENT ON COLUMN logs.duration_ms IS 'metadata.duration_ms when it is a JSON number, else NULL (milliseconds)';

-- Rows stored before this migration: the same rule, so that training over a period that spans
-- the upgrade sees the same feature as the consumer (one pass; a fresh database has no rows).
UPDATE logs SET duration_ms = (metadata->>'duration_ms')::float8
WHERE jsonb_typeof(metadata->'duration_ms') = 'number';
