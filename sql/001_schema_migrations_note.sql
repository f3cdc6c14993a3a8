-- The migration runner (loganalyzer db migrate) owns `schema_migrations` itself, because it
-- must exist before any numbered file can be recorded. This file only documents that and
-- creates the schema comment, so that `\dt+` tells a newcomer where tables come from.
COMMENT ON SCHEMA public IS 'Smart Log Analyzer: every table is created by the numbered files in sql/';
