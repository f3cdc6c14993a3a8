#!/usr/bin/env bash
# First start of the Compose PostgreSQL only (docker-entrypoint-initdb.d): the platform's
# database and Airflow's and MLflow's metadata databases. The platform's tables, roles and login
# users come later from the migrate service (`loganalyzer db migrate && loganalyzer db users`):
# each process then connects as its own least-privilege user (docs/security.md).
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<'SQL'
CREATE DATABASE loganalyzer;
CREATE DATABASE airflow;
CREATE DATABASE mlflow;
SQL

# only the users `loganalyzer db users` grants CONNECT to may open the platform's database
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname loganalyzer <<'SQL'
REVOKE ALL ON DATABASE loganalyzer FROM PUBLIC;
SQL
