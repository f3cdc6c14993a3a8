-- lambda_invocations: one row per invocation of the summary function by the local lambda runner
-- (`loganalyzer lambda-runner`), what Lambda would bill for it.
--
-- Why a table: no Lambda runtime runs locally, so nothing else measures what the function would
-- cost; the cost_snapshot DAG reads these rows for a day's Lambda invocations and GB-seconds.
-- In AWS the same numbers come from CloudWatch (AWS/Lambda Invocations and Duration), selected
-- by LAMBDA_USAGE_SOURCE=cloudwatch, and this table stays empty.
--
-- `day` and `tenant` are the exported day and tenant of the object the event named (its
-- `date=` and `tenant=` key segments): the snapshot of a day counts the work its export caused.
-- Failed invocations are billed too, so they are recorded with succeeded = false.
CREATE TABLE lambda_invocations (
    request_id    uuid        PRIMARY KEY,
    function_name text        COLLATE "C" NOT NULL,
    invoked_at    timestamptz NOT NULL,
    day           date,
    tenant        text        COLLATE "C",
    object_key    text,
    billed_ms     integer     NOT NULL CHECK (billed_ms >= 1),
    memory_mb     integer     NOT NULL CHECK (memory_mb BETWEEN 128 AND 10240),
    succeeded     boolean     NOT NULL
);
COMMENT ON TABLE lambda_invocations IS 'Invocations of the summary function by the local runner: billed duration and memory';
COMMENT ON COLUMN lambda_invocations.billed_ms IS 'Wall time of the handler call rounded up to the next millisecond, as Lambda bills it';
COMMENT ON COLUMN lambda_invocations.memory_mb IS 'The function''s configured memory (LAMBDA_MEMORY_MB; the template''s MemorySize default)';
COMMENT ON COLUMN lambda_invocations.day IS 'The exported day of the object the event named (its date= key segment)';

CREATE INDEX lambda_invocations_day_idx ON lambda_invocations (day);

-- the cost_snapshot DAG reads them (sql/016's roles)
GRANT SELECT ON lambda_invocations TO loganalyzer_airflow;
