-- logs.duration_ms: metadata.duration_ms as a column, filled by the consumer when it is a JSON number.
--
-- Why a column: request latency is the one metadata field the product computes with (the
-- forest's mean_duration_ms feature, training, latency panels). Reading it from jsonb costs a
-- jsonb_typeof() and a cast per row at query time; the consumer already holds the parsed number,
-- and writing it as a float8 is cheaper than the jsonb it is taken from. Rows written before
-- this migration keep NULL here; their metadata still holds the value.
ALTER TABLE logs ADD COLUMN duration_ms double precision;
COMMENT ON COLUMN logs.duration_ms IS 'metadata.duration_ms when it is a JSON number, else NULL (milliseconds)';
