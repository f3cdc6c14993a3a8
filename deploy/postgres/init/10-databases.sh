#!/usr/bin/env bash
# First start of the Compose PostgreSQL only (docker-entrypoint-initdb.d): the platform's
# database, Airflow's and MLflow's metadata databases, and the read-only role Grafana uses.
# The platform's tables come later, from `loganalyzer db migrate` (the migrate service); the
# default privileges below give Grafana SELECT on each of them as it is created.
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v grafana_password="$GRAFANA_PG_PASSWORD" <<'SQL'
CREATE DATABASE loganalyzer;
CREATE DATABASE airflow;
CREATE DATABASE mlflow;
CREATE ROLE grafana_reader LOGIN PASSWORD :'grafana_password';
ALTER ROLE grafana_reader SET default_transaction_read_only = on;
ALTER ROLE grafana_reader SET statement_timeout = '30s';
SQL

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname loganalyzer <<'SQL'
REVOKE ALL ON DATABASE loganalyzer FROM PUBLIC;
GRANT CONNECT ON DATABASE loganalyzer TO grafana_reader;
GRANT USAGE ON SCHEMA public TO grafana_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT SELECT ON TABLES TO grafana_reader;
SQL
