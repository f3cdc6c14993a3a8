-- anomalies: the tenant-led indexes of 005 end with the API's full keyset order.
--
-- Why: every read with a tenant key is scoped to its tenant, and the list is ordered
-- (window_start DESC, id DESC). 005's (tenant, service, window_start DESC) made "this tenant,
-- this service" an index scan of the whole service followed by an incremental sort (EXPLAIN
-- ANALYZE on 10,000 anomalies: 52 rows read through a sort, 15 ms on a loaded machine); with
-- id appended the page is a plain index range scan that stops after `limit` rows. The same
-- for the open episodes: the API's `status=open|acknowledged` filter now also says
-- `status = 'open'` (both imply it), so this partial index serves it in keyset order.
-- Both new indexes serve every query the old ones did (same leading columns).
CREATE INDEX anomalies_tenant_service_time_id_idx ON anomalies (tenant, service, window_start DESC, id DESC);
DROP INDEX anomalies_service_time_idx;
CREATE INDEX anomalies_open_time_id_idx ON anomalies (tenant, window_start DESC, id DESC) WHERE status = 'open';
DROP INDEX anomalies_open_idx;
