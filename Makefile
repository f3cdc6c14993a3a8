# Smart Log Analyzer: every developer and CI command. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV_VERSION := 0.13.8
UV := .tools/bin/uv
export UV_SYSTEM_CERTS := 1
PY := .venv/bin/python

.PHONY: help setup up test-deps test lint typecheck unit integration audit bench bench-ingest bench-miner bench-detection bench-latency bench-state bench-export bench-api bench-retrain bench-backfill bench-fresh bench-memory bench-costs bench-alerts bench-soak lambda-zip lambda-zip-localstack serve fmt clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(UV):
	python3 -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

setup: $(UV) ## Install system services check + the locked Python environment in .venv/
	bash scripts/system-deps.sh
	$(UV) sync --locked --compile-bytecode

UP_ARGS ?=
up: setup ## Set up, then run the whole platform locally (Ctrl-C stops everything); options: make up UP_ARGS="--api-port 8001"
	.venv/bin/loganalyzer up $(UP_ARGS)

test-deps: ## System packages only the tests need (docker-compose, chromium)
	bash scripts/system-deps.sh --tests

test: setup test-deps lint typecheck ## Set up, then lint, type-check and run every test (what CI runs)
	.venv/bin/pytest -q -ra --durations=15

lint: ## ruff lint + format check
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck: ## mypy --strict over the project's packages
	.venv/bin/mypy

unit: ## Fast tests of pure logic only
	.venv/bin/pytest -q tests/unit

integration: ## Tests against real PostgreSQL and a real Kafka-protocol broker
	.venv/bin/pytest -q tests/integration

PIP_AUDIT_VERSION := 2.10.1
PIP_AUDIT := .tools/bin/pip-audit

$(PIP_AUDIT): $(UV)
	.tools/bin/pip install --quiet "pip-audit==$(PIP_AUDIT_VERSION)"

audit: $(PIP_AUDIT) ## pip-audit over uv.lock: fails on vulnerabilities with a fix; exit 3 = source unreachable, NOT audited
	$(UV) export --locked --no-hashes --no-emit-project --format requirements-txt --quiet > .tools/audit-requirements.txt
	.tools/bin/python scripts/dependency_audit.py $(PIP_AUDIT) .tools/audit-requirements.txt

bench: bench-ingest bench-miner bench-detection bench-latency bench-state bench-export bench-api bench-retrain bench-costs bench-alerts ## Run every benchmark (each prints its figure next to a same-run reference)

bench-ingest: setup ## Ingestion throughput vs raw binary COPY (N=1,000,000 by default)
	$(PY) bench/bench_ingest.py

bench-miner: setup ## Template miner: Grouping Accuracy on Loghub-2k vs Drain3, and msgs/s
	$(PY) bench/bench_template_miner.py

bench-detection: setup ## Detection quality: 3 simulated days (2 clean), labelled incidents (~3 min)
	$(PY) bench/bench_detection.py

bench-latency: setup ## Wall-clock detection lag at 50,000 logs/s (arrival -> committed anomaly row)
	$(PY) bench/bench_latency.py

bench-state: setup ## Detection state of 10,000 services: memory, checkpoint size and cost
	$(PY) bench/bench_detection_state.py

bench-retrain: setup ## Nightly retraining on 30 days x 50 services (budget 60 s) vs a plain SQL scan
	$(PY) bench/bench_retrain.py

bench-backfill: setup ## airflow backfill create of hourly_rollup over 7 days, run by a LocalExecutor scheduler
	$(PY) bench/bench_backfill.py

bench-fresh: setup ## `make up` on a fresh clone, timed until the first anomaly (target: 5 minutes)
	$(PY) bench/bench_fresh_clone.py

bench-memory: setup ## RSS and PSS of everything `loganalyzer up` starts, against airflow standalone
	$(PY) bench/bench_platform_memory.py

bench-export: setup ## Daily Parquet export of 10,000,000 rows vs PostgreSQL's own binary COPY (rows/s, peak RSS)
	$(PY) bench/bench_export.py

lambda-zip: setup ## Build the process-daily-logs Lambda zip (.state/lambda/) and print its sizes
	$(PY) lambda/build.py

lambda-zip-localstack: setup ## The Lambda zip docker compose's LocalStack runs: pyarrow bundled (first build fetches it)
	$(PY) lambda/build.py --localstack

bench-api: setup ## REST API: p50/p99 and req/s at 32 connections (wrk), 10M logs, vs a trivial endpoint (~15 min)
	bash scripts/system-deps.sh --bench
	$(PY) bench/bench_api.py

serve: setup ## Run the REST API on 127.0.0.1:8000 (docs at /docs; DATABASE_URL as for every command)
	.venv/bin/loganalyzer serve

bench-costs: setup ## Cost forecast accuracy on simulated histories vs a naive forecast (~4 min)
	$(PY) bench/bench_costs.py

bench-alerts: setup ## Ingest rate with and without the alerts process against a failing receiver
	$(PY) bench/bench_alerts_ingest.py

bench-soak: setup ## Soak: 30 min of traffic with incidents, API readers, DAGs (MINUTES=5 for a short run): RSS slopes, completeness, incidents
	$(PY) bench/bench_soak.py --minutes $(or $(MINUTES),30)

fmt: ## Format and auto-fix
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

clean: ## Remove the environment and local state
	rm -rf .venv .tools .state .mypy_cache .ruff_cache .pytest_cache
