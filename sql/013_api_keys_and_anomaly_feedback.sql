-- The REST API's own tables: API keys (one tenant each, or admin) and operator feedback on
-- anomalies (acknowledge / resolve / suppress), plus the indexes the API's filters need.

-- api_keys: a key is shown once when created (`loganalyzer keys create`) and only its SHA-256
-- is kept. Why SHA-256 and not a slow password hash: the secret part is 256 random bits, so a
-- stolen table cannot be brute-forced anyway, and each request pays one hash, not ~50 ms.
-- The key carries its own id (la_<id>_<secret>), so lookup is by primary key and the digest is
-- compared in constant time by the API.
CREATE TABLE api_keys (
    id          text        COLLATE "C" PRIMARY KEY,
    tenant      text        COLLATE "C" NOT NULL,
    is_admin    boolean     NOT NULL DEFAULT false,
    key_sha256  bytea       NOT NULL,
    label       text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    CONSTRAINT api_keys_id_check CHECK (id ~ '^[a-z0-9]{8,32}$'),
    CONSTRAINT api_keys_digest_check CHECK (octet_length(key_sha256) = 32)
);
COMMENT ON TABLE api_keys IS 'API keys: each maps to one tenant (or is an admin key that sees all); only a SHA-256 of the secret is stored';
COMMENT ON COLUMN api_keys.id IS 'Public key id, the middle part of la_<id>_<secret>; names the key in anomaly_feedback';
COMMENT ON COLUMN api_keys.is_admin IS 'An admin key reads and acts across tenants and may filter by tenant';
COMMENT ON COLUMN api_keys.revoked_at IS 'Set when the key stops working (rows are kept so feedback keeps its author)';

-- anomalies: what operators said about an episode. The detector owns status (open/resolved on
-- event time); the operator's word lives beside it so that the detector's upserts never erase it.
ALTER TABLE anomalies
    ADD COLUMN operator_state text,
    ADD COLUMN operator_state_at timestamptz,
    ADD COLUMN operator_state_until timestamptz,
    ADD CONSTRAINT anomalies_operator_state_check
        CHECK (operator_state IN ('acknowledged', 'resolved', 'suppressed'));
COMMENT ON COLUMN anomalies.operator_state IS 'Latest operator feedback (acknowledged/resolved/suppressed), NULL when none; history in anomaly_feedback';
COMMENT ON COLUMN anomalies.operator_state_until IS 'For suppressed: until when (NULL: for good)';

-- The status the API shows and filters on: suppression (while it lasts) wins, then resolution
-- by either side, then acknowledgement.
CREATE FUNCTION anomaly_effective_status(status text, operator_state text, until timestamptz)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN operator_state = 'suppressed' AND (until IS NULL OR until > now()) THEN 'suppressed'
        WHEN operator_state = 'resolved' OR status = 'resolved' THEN 'resolved'
        WHEN operator_state = 'acknowledged' THEN 'acknowledged'
        ELSE 'open'
    END
$$;
COMMENT ON FUNCTION anomaly_effective_status(text, text, timestamptz) IS 'open, acknowledged, resolved or suppressed, as the API reports an anomaly';

-- anomaly_feedback: every operator action, append-only. It is the audit trail, the source of
-- pattern suppressions the consumer honours, and labels for retraining (an acknowledged
-- anomaly was real; one suppressed for good was noise).
CREATE TABLE anomaly_feedback (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant           text        COLLATE "C" NOT NULL,
    anomaly_id       text        REFERENCES anomalies (id) ON DELETE SET NULL,
    action           text        NOT NULL,
    scope            text        NOT NULL DEFAULT 'anomaly',
    service          text        COLLATE "C" NOT NULL,
    pattern_template text,
    anomaly_type     text,
    until            timestamptz,
    key_id           text        COLLATE "C" REFERENCES api_keys (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    note             text        NOT NULL DEFAULT '',
    CONSTRAINT anomaly_feedback_action_check CHECK (action IN ('acknowledge', 'resolve', 'suppress')),
    CONSTRAINT anomaly_feedback_scope_check CHECK (scope IN ('anomaly', 'pattern')),
    CONSTRAINT anomaly_feedback_pattern_check CHECK (scope <> 'pattern' OR pattern_template IS NOT NULL),
    CONSTRAINT anomaly_feedback_until_check CHECK (until IS NULL OR action = 'suppress'),
    CONSTRAINT anomaly_feedback_note_check CHECK (length(note) <= 2000)
);
CREATE INDEX anomaly_feedback_anomaly_idx ON anomaly_feedback (anomaly_id, created_at DESC);
CREATE INDEX anomaly_feedback_pattern_suppress_idx ON anomaly_feedback (tenant, service)
    WHERE action = 'suppress' AND scope = 'pattern';
COMMENT ON TABLE anomaly_feedback IS 'Operator feedback on anomalies (acknowledge/resolve/suppress), append-only: audit trail, suppressions, retraining labels';
COMMENT ON COLUMN anomaly_feedback.scope IS 'anomaly: this episode only; pattern: every anomaly of this service and template';
COMMENT ON COLUMN anomaly_feedback.until IS 'For suppress: end of the suppression (NULL: for good)';
COMMENT ON COLUMN anomaly_feedback.key_id IS 'The API key that acted (who)';
COMMENT ON COLUMN anomaly_feedback.anomaly_type IS 'Type of the anomaly acted on (a pattern suppression covers every type unless the consumer narrows it)';

-- suppressions: what the consumer must honour right now. One row per active pattern
-- suppression: an anomaly of this tenant, service and template raises nothing until `until`.
CREATE VIEW suppressions AS
SELECT DISTINCT ON (tenant, service, pattern_template)
    tenant, service, pattern_template, until, created_at, key_id, id AS feedback_id
FROM anomaly_feedback
WHERE action = 'suppress' AND scope = 'pattern' AND (until IS NULL OR until > now())
ORDER BY tenant, service, pattern_template, until DESC NULLS FIRST, created_at DESC;
COMMENT ON VIEW suppressions IS 'Active pattern suppressions per tenant/service/template (the longest one wins)';

-- Indexes for the API's filters. The tenant-led index of 005 cannot serve an admin's query
-- without tenant (PostgreSQL 15 has no skip scan); these serve newest-first keyset pages.
CREATE INDEX anomalies_time_id_idx ON anomalies (window_start DESC, id DESC);
CREATE INDEX anomalies_service_time_id_idx ON anomalies (service, window_start DESC, id DESC);
CREATE INDEX anomalies_tenant_time_id_idx ON anomalies (tenant, window_start DESC, id DESC);
-- hourly_metrics pages are ordered (hour, tenant, service) DESC; each index serves one filter
-- shape (by service, by tenant, none) with a backward scan and no sort.
CREATE INDEX hourly_metrics_service_hour_idx ON hourly_metrics (service, hour, tenant);
CREATE INDEX hourly_metrics_tenant_hour_idx ON hourly_metrics (tenant, hour, service);
CREATE INDEX hourly_metrics_hour_idx ON hourly_metrics (hour, tenant, service);
