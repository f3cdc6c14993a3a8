-- cost_snapshots: one row per UTC day and tenant of MEASURED usage of the AWS services the
-- product uses, written by the `cost_snapshot` Airflow DAG (loganalyzer.batch.cost_snapshot)
-- after that day's export, read by the cost API.
--
-- Why quantities and not dollars: prices change and differ by region; the snapshot keeps what
-- was used, and pricing (loganalyzer.costs) turns it into money when asked. `usage` holds the
-- same quantities as a cost usage document of that day, so the cost code prices a stored day
-- without knowing this table's columns. Re-running a day replaces its rows (upsert on the key).
CREATE TABLE cost_snapshots (
    day                       date        NOT NULL,
    tenant                    text        COLLATE "C" NOT NULL,
    s3_bytes_stored           bigint      NOT NULL DEFAULT 0 CHECK (s3_bytes_stored >= 0),
    s3_objects                bigint      NOT NULL DEFAULT 0 CHECK (s3_objects >= 0),
    s3_put_requests           bigint      NOT NULL DEFAULT 0 CHECK (s3_put_requests >= 0),
    s3_get_requests           bigint      NOT NULL DEFAULT 0 CHECK (s3_get_requests >= 0),
    lambda_invocations        bigint      NOT NULL DEFAULT 0 CHECK (lambda_invocations >= 0),
    lambda_gb_seconds         double precision NOT NULL DEFAULT 0 CHECK (lambda_gb_seconds >= 0),
    dynamodb_read_units       double precision NOT NULL DEFAULT 0 CHECK (dynamodb_read_units >= 0),
    dynamodb_write_units      double precision NOT NULL DEFAULT 0 CHECK (dynamodb_write_units >= 0),
    dynamodb_bytes_stored     bigint      NOT NULL DEFAULT 0 CHECK (dynamodb_bytes_stored >= 0),
    dynamodb_items            bigint      NOT NULL DEFAULT 0 CHECK (dynamodb_items >= 0),
    usage                     jsonb       NOT NULL,
    source                    text        NOT NULL,
    measured_at               timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, tenant),
    CONSTRAINT cost_snapshots_usage_object CHECK (jsonb_typeof(usage) = 'object')
);
COMMENT ON TABLE cost_snapshots IS 'Measured AWS usage per UTC day and tenant (quantities, priced on read)';
COMMENT ON COLUMN cost_snapshots.s3_bytes_stored IS 'Bytes of the day''s export objects in S3 (ListObjectsV2 sizes)';
COMMENT ON COLUMN cost_snapshots.s3_put_requests IS 'PUT/POST/LIST-class requests of the day''s export (multipart parts, manifest)';
COMMENT ON COLUMN cost_snapshots.s3_get_requests IS 'GET-class requests: one read per exported object by the summary function';
COMMENT ON COLUMN cost_snapshots.lambda_invocations IS 'Invocations of process-daily-logs for the day''s objects';
COMMENT ON COLUMN cost_snapshots.lambda_gb_seconds IS 'Memory (GB) x billed duration (s) summed over those invocations';
COMMENT ON COLUMN cost_snapshots.dynamodb_read_units IS 'Read capacity units consumed for the day''s summaries';
COMMENT ON COLUMN cost_snapshots.dynamodb_write_units IS 'Write capacity units consumed writing the day''s summaries';
COMMENT ON COLUMN cost_snapshots.dynamodb_bytes_stored IS 'Bytes of the day''s summary items (share of DescribeTable TableSizeBytes)';
COMMENT ON COLUMN cost_snapshots.usage IS 'The same quantities as a cost usage document for that day (loganalyzer.costs)';
COMMENT ON COLUMN cost_snapshots.source IS 'Where the quantities came from: local (S3 listing, manifests, runner records) or cloudwatch';
