#!/usr/bin/env bash
# System packages and services the project needs beyond Python: PostgreSQL 15 (server and
# client, running on 127.0.0.1:5432 with trust auth for local development and tests), and
# Debian's docker-compose (1.29), with which the tests validate docker-compose.yml: no Docker
# engine runs on our machines and the `docker compose` plugin is not packaged, but `config`
# needs neither. Debian's chromium, with which the tests open the platform's pages (API docs,
# Airflow, MLflow) headless as a user would and take the README's screenshots. Machines of our
# kind have PostgreSQL installed and running; this makes a fresh or stopped one work too.
# Those two only with --tests; wrk only with --bench. Idempotent: it installs only what is missing.
set -euo pipefail

apt_updated=""
apt_install() {  # apt_install PACKAGE WHY [WITHOUT]: install from Debian's packages as root, else a note
  local without="${3:-the tests that need it will be skipped}"
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "installing $1 from Debian's packages ($2)…"
    [[ -n "$apt_updated" ]] || { apt-get update -qq; apt_updated=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null \
      || echo "note: $1 could not be installed; $without" >&2
  else
    echo "note: $1 is missing (apt-get install $1); $without" >&2
  fi
}

# What only the benchmarks need: wrk, the load generator of bench/bench_api.py (C, one thread: on
# 2 cores a Python client would take as much CPU as the server it measures)
if [[ "${1:-}" == "--bench" ]]; then
  command -v wrk >/dev/null || apt_install wrk "the REST API benchmark's load generator" \
    "bench/bench_api.py falls back to its Python client, which takes CPU from the server it measures"
fi

# What only the tests need (`make test` passes --tests; `make up` does not wait for a browser):
if [[ "${1:-}" == "--tests" ]]; then
  command -v docker-compose >/dev/null || apt_install docker-compose "validates docker-compose.yml"
  command -v chromium >/dev/null || apt_install chromium "opens the platform's pages in the browser tests"
fi

have_pg_server() { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }
pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

if [[ -n "${DATABASE_URL:-}" && "${DATABASE_URL}" != *"127.0.0.1"* && "${DATABASE_URL}" != *"localhost"* ]]; then
  exit 0  # a remote database: nothing to install here
fi

if ! have_pg_server || ! command -v pg_isready >/dev/null; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "PostgreSQL is not installed: install postgresql (server + client) or set DATABASE_URL" >&2
    exit 1
  fi
  echo "installing PostgreSQL from Debian's packages…"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-client >/dev/null
fi

if ! pg_ready; then
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [[ -n "$version" ]]; then
    echo "starting PostgreSQL $version…"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  fi
  for _ in $(seq 1 30); do pg_ready && break; sleep 1; done
fi
pg_ready || { echo "PostgreSQL is not answering on 127.0.0.1:5432; set DATABASE_URL to a reachable server" >&2; exit 1; }
